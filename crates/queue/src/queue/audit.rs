//! The accounting check behind `tsp-job jobs audit [--repair]`: every job whose spec is stored
//! is in exactly one state, no state lists a job without a spec, and every worker's active set
//! has its lease in `workers` (else nobody would ever take its jobs back).
//!
//! A scan reads the queue in pages without blocking Redis (O(jobs) work and memory for the ids,
//! an operator's tool, not a hot path); jobs keep moving meanwhile, so what the scan finds is
//! only a suspect. Each suspect is then decided by `audit.lua` atomically, and mended there
//! with `repair` (docs/queue.md#audit).

use std::collections::HashMap;

use async_recursion::async_recursion as boxed;
use redis::Value;

use super::{Queue, SCRIPTS};
use crate::error::QueueError;

/// Entries read per command while scanning.
const PAGE: isize = 5_000;
/// Suspects decided per script call.
const DECIDE: usize = 200;

/// One job whose accounting is wrong.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// The job id.
    pub id: String,
    /// `orphan` (stored, in no state: it would never run), `ghost` (listed in a state, nothing
    /// stored) or `duplicate` (in several states: it could run twice).
    pub kind: String,
    /// The states it was found in.
    pub states: Vec<String>,
}

/// What an audit found (and, with repair, mended).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AuditReport {
    /// The queue.
    pub queue: String,
    /// Jobs with a stored spec, as scanned.
    pub jobs: u64,
    /// Jobs per state, as scanned.
    pub states: HashMap<String, u64>,
    /// Jobs whose accounting is wrong, each confirmed atomically.
    pub findings: Vec<Finding>,
    /// Lease ids holding jobs without an entry in `workers`.
    pub stray_leases: Vec<String>,
    /// Whether the findings were mended.
    pub repaired: bool,
}

impl AuditReport {
    /// Whether nothing is wrong.
    pub fn clean(&self) -> bool {
        self.findings.is_empty() && self.stray_leases.is_empty()
    }
}

fn glob_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| match c {
            '*' | '?' | '[' | ']' | '\\' => vec!['\\', c],
            _ => vec![c],
        })
        .collect()
}

impl Queue {
    /// Checks this queue's accounting; with `repair`, mends what it finds (see `audit.lua`).
    #[boxed]
    pub async fn audit(&self, repair: bool) -> Result<AuditReport, QueueError> {
        let mut report = AuditReport {
            queue: self.inner.name.clone(),
            ..AuditReport::default()
        };
        let specs = self.scan_specs().await?;
        report.jobs = specs.len() as u64;
        let (places, strays) = self.scan_states().await?;
        for states in places.values() {
            for s in states {
                *report.states.entry(s.to_string()).or_default() += 1;
            }
        }
        let mut suspects: Vec<String> = specs
            .iter()
            .filter(|id| places.get(*id).is_none_or(|s| s.len() != 1))
            .cloned()
            .collect();
        suspects.extend(places.keys().filter(|id| !specs.contains(*id)).cloned());
        suspects.sort();
        suspects.dedup();
        report.stray_leases = self.decide(&[], &strays, repair).await?.1;
        for part in suspects.chunks(DECIDE) {
            let (findings, _) = self.decide(part, &[], repair).await?;
            report.findings.extend(findings);
        }
        report.repaired = repair;
        Ok(report)
    }

    /// Every job id with a stored spec (HSCAN, a page at a time).
    async fn scan_specs(&self) -> Result<std::collections::HashSet<String>, QueueError> {
        let mut conn = self.conn().await?;
        let key = format!("{}data", self.inner.base);
        let mut ids = std::collections::HashSet::new();
        let mut cursor = 0u64;
        loop {
            let (next, page): (u64, Vec<Vec<u8>>) = redis::cmd("HSCAN")
                .arg(&key)
                .arg(cursor)
                .arg("COUNT")
                .arg(PAGE)
                .query_async(&mut conn)
                .await
                .map_err(|e| self.err("audit scan", &e))?;
            for field in page.chunks(2) {
                ids.insert(String::from_utf8_lossy(&field[0]).into_owned());
            }
            if next == 0 {
                return Ok(ids);
            }
            cursor = next;
        }
    }

    /// Every job id in each state, and the lease ids whose active set has no `workers` entry.
    async fn scan_states(
        &self,
    ) -> Result<(HashMap<String, Vec<&'static str>>, Vec<String>), QueueError> {
        let base = &self.inner.base;
        let mut conn = self.conn().await?;
        let mut places: HashMap<String, Vec<&'static str>> = HashMap::new();
        let mut add = |ids: Vec<String>, state: &'static str| {
            for id in ids {
                let id = id.strip_prefix('~').map(str::to_string).unwrap_or(id);
                places.entry(id).or_default().push(state);
            }
        };
        let prios: Vec<String> = self.range(&mut conn, "ZRANGE", "prios", 0, -1).await?;
        for p in prios {
            self.each_page(&mut conn, "LRANGE", &format!("wait:{p}"), |ids| {
                add(ids, "waiting")
            })
            .await?;
        }
        self.each_page(&mut conn, "ZRANGE", "delayed", |ids| add(ids, "delayed"))
            .await?;
        self.each_page(&mut conn, "LRANGE", "done", |ids| add(ids, "completed"))
            .await?;
        self.each_page(&mut conn, "ZRANGE", "dead", |ids| add(ids, "dead"))
            .await?;
        let workers: Vec<String> = self.range(&mut conn, "ZRANGE", "workers", 0, -1).await?;
        let mut strays = Vec::new();
        let pattern = format!("{}active:*", glob_escape(base));
        let keys = self
            .inner
            .store
            .keys_matching(&pattern)
            .await
            .map_err(QueueError::Hub)?;
        for key in keys {
            let holder = key[base.len() + "active:".len()..].to_string();
            let ids: Vec<String> = redis::cmd("SMEMBERS")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .map_err(|e| self.err("audit scan", &e))?;
            add(ids, "active");
            if !workers.contains(&holder) {
                strays.push(holder);
            }
        }
        Ok((places, strays))
    }

    async fn range(
        &self,
        conn: &mut tsp_hub::RedisConn,
        cmd: &str,
        part: &str,
        start: isize,
        stop: isize,
    ) -> Result<Vec<String>, QueueError> {
        redis::cmd(cmd)
            .arg(format!("{}{part}", self.inner.base))
            .arg(start)
            .arg(stop)
            .query_async(conn)
            .await
            .map_err(|e| self.err("audit scan", &e))
    }

    /// Hands `f` the members of list or sorted set `part`, a page at a time.
    async fn each_page(
        &self,
        conn: &mut tsp_hub::RedisConn,
        cmd: &str,
        part: &str,
        mut f: impl FnMut(Vec<String>),
    ) -> Result<(), QueueError> {
        let mut start = 0isize;
        loop {
            let ids = self.range(conn, cmd, part, start, start + PAGE - 1).await?;
            let n = ids.len() as isize;
            f(ids);
            if n < PAGE {
                return Ok(());
            }
            start += PAGE;
        }
    }

    /// Decides (and mends) `ids` and `strays` atomically: the confirmed findings and strays.
    async fn decide(
        &self,
        ids: &[String],
        strays: &[String],
        repair: bool,
    ) -> Result<(Vec<Finding>, Vec<String>), QueueError> {
        let mut conn = self.conn().await?;
        let answer: Vec<Value> = SCRIPTS
            .audit
            .key(&self.inner.base)
            .arg(if repair { "repair" } else { "check" })
            .arg(strays.len())
            .arg(strays)
            .arg(ids)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.err("audit", &e))?;
        let mut findings = Vec::new();
        let mut still = Vec::new();
        let text = |v: &Value| match v {
            Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            Value::SimpleString(s) => s.clone(),
            _ => String::new(),
        };
        for (i, item) in answer.iter().enumerate() {
            let Value::Array(parts) = item else {
                continue;
            };
            if i == ids.len() {
                still = parts.iter().map(text).collect();
                continue;
            }
            let verdict = parts.first().map(text).unwrap_or_default();
            if verdict == "ok" {
                continue;
            }
            let states = parts.get(1).map(text).unwrap_or_default();
            findings.push(Finding {
                id: ids[i].clone(),
                kind: verdict,
                states: states
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
            });
        }
        Ok((findings, still))
    }
}
