//! `tsp-job health`: a table or JSON.

use tsp_hub::{Hub, HubHealth, Status};

use crate::EXIT_FAILURE;

/// `tsp-job health`: 0 when every required store is up (not down, not degraded).
pub async fn health(hub: &Hub, json: bool) -> anyhow::Result<u8> {
    let h = hub.health().await;
    if json {
        println!("{}", serde_json::to_string_pretty(&h)?);
    } else {
        print!("{}", table(&h));
    }
    Ok(if h.status == Status::Up {
        0
    } else {
        EXIT_FAILURE
    })
}

/// A fixed-width table, one row per instance.
pub fn table(h: &HubHealth) -> String {
    let mut out = format!(
        "{:<7} {:<11} {:<9} {:<8} {:>10}  {:<28} {:<16} {}\n",
        "STORE", "INSTANCE", "REQUIRED", "STATUS", "LATENCY", "VERSION", "POOL s/i/u/max", "ERROR"
    );
    for i in &h.instances {
        let pool = i
            .pool
            .map(|p| format!("{}/{}/{}/{}", p.size, p.idle, p.in_use, p.max))
            .unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "{:<7} {:<11} {:<9} {:<8} {:>8.1}ms  {:<28} {:<16} {}\n",
            i.store,
            i.instance,
            if i.required { "yes" } else { "no" },
            match i.status {
                Status::Up => "up",
                Status::Degraded => "DEGRADED",
                Status::Down => "DOWN",
            },
            i.latency_ms,
            i.version.as_deref().unwrap_or("-"),
            pool,
            i.error.as_deref().unwrap_or("")
        ));
    }
    out.push_str(&format!(
        "overall: {}\n",
        match h.status {
            Status::Up => "up (every required store answers)",
            Status::Degraded => "DEGRADED (a required store answers pings but not reads)",
            Status::Down => "DOWN (a required store does not answer)",
        }
    ));
    for w in &h.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    out
}
