//! The two accounts of every store instance: the app account the service runs with, and the
//! migrator account (`<store>.<instance>.migrate.*`) for DDL, indexes, retention, backups and
//! restores (docs/store-security.md#least-privilege).

use secrecy::{ExposeSecret, SecretString};

use crate::settings::{Config, MigrateAccount};

impl MigrateAccount {
    /// Whether a migrator account is configured (otherwise the app account does both).
    pub fn is_set(&self) -> bool {
        !self.user.is_empty()
    }
}

impl Config {
    /// This configuration with every instance's two accounts swapped where a migrator account
    /// is configured: what `migrate`, `backup`, `restore` and sandboxes connect with. The
    /// `migrate` block then names the app account, which migrations grant access to (InfluxDB
    /// databases they create). A connection URL keeps its hosts and options and takes the
    /// migrator's user and password.
    pub fn as_migrator(&self) -> Config {
        let mut c = self.clone();
        for s in c.mysql.values_mut() {
            if s.migrate.is_set() {
                s.url = s.url.as_ref().map(|u| with_account(u, &s.migrate));
                swap(&mut s.user, &mut s.password, &mut s.migrate);
            }
        }
        for s in c.redis.values_mut() {
            if s.migrate.is_set() {
                s.url = s.url.as_ref().map(|u| with_account(u, &s.migrate));
                swap(&mut s.username, &mut s.password, &mut s.migrate);
            }
        }
        for s in c.mongo.values_mut() {
            if s.migrate.is_set() {
                s.uri = s.uri.as_ref().map(|u| with_account(u, &s.migrate));
                swap(&mut s.username, &mut s.password, &mut s.migrate);
            }
        }
        for s in c.influx.values_mut() {
            if s.migrate.is_set() {
                swap(&mut s.username, &mut s.password, &mut s.migrate);
            }
            if let Some(token) = &mut s.migrate.token
                && !token.expose_secret().is_empty()
            {
                std::mem::swap(&mut s.token, token);
            }
        }
        c
    }
}

fn swap(user: &mut String, password: &mut SecretString, other: &mut MigrateAccount) {
    std::mem::swap(user, &mut other.user);
    std::mem::swap(password, &mut other.password);
}

/// `url` with its user information replaced by `account`'s, percent-encoded. Works on URLs the
/// `url` crate cannot parse too (MongoDB's `host1,host2` lists): only the part between `://`
/// and the first `@` before the path changes.
fn with_account(url: &SecretString, account: &MigrateAccount) -> SecretString {
    let url = url.expose_secret();
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return SecretString::from(url.to_string());
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let hosts = match rest[..authority_end].rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    let userinfo = format!(
        "{}:{}@",
        encode_userinfo(&account.user),
        encode_userinfo(account.password.expose_secret())
    );
    SecretString::from(format!("{}{userinfo}{hosts}", &url[..scheme_end]))
}

/// Percent-encodes everything but RFC 3986's unreserved characters: a user name or password
/// fit for a URL's user information (`form_urlencoded` is not: it turns a space into `+`, which
/// URL parsers keep as a plus).
pub fn encode_userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(user: &str, password: &str) -> MigrateAccount {
        MigrateAccount {
            user: user.into(),
            password: SecretString::from(password.to_string()),
            token: None,
        }
    }

    #[test]
    fn a_url_takes_the_migrator_s_account_encoded_and_keeps_the_rest() {
        let cases = [
            (
                "mysql://app:old@db.example:3306/tsp_portal?ssl-mode=required",
                "mysql://mig:p%40ss%3Aw%2Frd%3F%23%25%2B%20%C3%A9@db.example:3306/tsp_portal?ssl-mode=required",
            ),
            (
                "mongodb://a:1,b:2/?replicaSet=rs0",
                "mongodb://mig:p%40ss%3Aw%2Frd%3F%23%25%2B%20%C3%A9@a:1,b:2/?replicaSet=rs0",
            ),
            (
                "rediss://h:6380",
                "rediss://mig:p%40ss%3Aw%2Frd%3F%23%25%2B%20%C3%A9@h:6380",
            ),
            (
                "redis://:p@ss@h:6379/0",
                "redis://mig:p%40ss%3Aw%2Frd%3F%23%25%2B%20%C3%A9@h:6379/0",
            ),
        ];
        for (url, want) in cases {
            let got = with_account(
                &SecretString::from(url.to_string()),
                &account("mig", "p@ss:w/rd?#%+ é"),
            );
            assert_eq!(got.expose_secret(), want, "{url}");
        }
    }
}
