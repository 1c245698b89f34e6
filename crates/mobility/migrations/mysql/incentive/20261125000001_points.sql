-- Points, rewards, challenges and badges. This instance's connection charset is utf8 (the
-- original service's); tables use the same.
CREATE TABLE points_transactions (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    user_id BIGINT UNSIGNED NOT NULL,
    transaction_type ENUM('earn', 'redeem', 'expire', 'adjust', 'reversal') NOT NULL,
    points INT NOT NULL,
    reference_type VARCHAR(32) NOT NULL,
    reference_id VARCHAR(64) NOT NULL,
    description VARCHAR(255) NULL,
    created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    -- At most one earn (or redeem, ...) per referenced thing: retried jobs cannot double-award.
    UNIQUE KEY uq_points_reference (reference_type, reference_id, transaction_type),
    KEY ix_points_user (user_id, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8;

CREATE TABLE rewards (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(128) NOT NULL,
    points_cost INT UNSIGNED NOT NULL,
    stock INT UNSIGNED NULL,
    active TINYINT(1) NOT NULL DEFAULT 1,
    created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
) ENGINE=InnoDB DEFAULT CHARSET=utf8;

CREATE TABLE challenge_definitions (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    code VARCHAR(64) NOT NULL,
    name VARCHAR(128) NOT NULL,
    rule JSON NOT NULL,
    points_reward INT UNSIGNED NOT NULL DEFAULT 0,
    starts_at DATETIME(3) NULL,
    ends_at DATETIME(3) NULL,
    UNIQUE KEY uq_challenge_code (code)
) ENGINE=InnoDB DEFAULT CHARSET=utf8;

CREATE TABLE user_challenges (
    user_id BIGINT UNSIGNED NOT NULL,
    challenge_id BIGINT UNSIGNED NOT NULL,
    progress DECIMAL(12, 2) NOT NULL DEFAULT 0,
    completed_at DATETIME(3) NULL,
    PRIMARY KEY (user_id, challenge_id),
    CONSTRAINT fk_user_challenges_challenge FOREIGN KEY (challenge_id) REFERENCES challenge_definitions (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8;

CREATE TABLE user_badges (
    user_id BIGINT UNSIGNED NOT NULL,
    badge_code VARCHAR(64) NOT NULL,
    awarded_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (user_id, badge_code)
) ENGINE=InnoDB DEFAULT CHARSET=utf8;
