//! The Lua scripts, loaded once per process (`EVALSHA` after the first call).

use std::sync::LazyLock;

use redis::Script;

pub(super) struct Scripts {
    pub(super) enqueue: Script,
    pub(super) fetch: Script,
    pub(super) finish: Script,
    pub(super) extend: Script,
    pub(super) recover: Script,
    pub(super) release: Script,
    pub(super) requeue: Script,
    pub(super) rerun: Script,
    pub(super) deadclaim: Script,
    pub(super) counts: Script,
    pub(super) job: Script,
    pub(super) list: Script,
    pub(super) glance: Script,
    pub(super) cancel: Script,
    pub(super) audit: Script,
    pub(super) upgrade: Script,
    pub(super) tick: Script,
}

/// Each script is `common.lua` (shared helpers) followed by its own file.
macro_rules! script {
    ($file:literal) => {
        Script::new(concat!(
            include_str!("../lua/common.lua"),
            "\n",
            include_str!($file)
        ))
    };
}

pub(super) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    enqueue: script!("../lua/enqueue.lua"),
    fetch: script!("../lua/fetch.lua"),
    finish: script!("../lua/finish.lua"),
    extend: script!("../lua/extend.lua"),
    recover: script!("../lua/recover.lua"),
    release: script!("../lua/release.lua"),
    requeue: script!("../lua/requeue.lua"),
    rerun: script!("../lua/rerun.lua"),
    deadclaim: script!("../lua/deadclaim.lua"),
    counts: script!("../lua/counts.lua"),
    job: script!("../lua/job.lua"),
    list: script!("../lua/list.lua"),
    glance: script!("../lua/glance.lua"),
    cancel: script!("../lua/cancel.lua"),
    audit: script!("../lua/audit.lua"),
    upgrade: script!("../lua/upgrade.lua"),
    tick: script!("../lua/tick.lua"),
});
