//! `tsp-job health`: a table or JSON.

use tsp_hub::{HubHealth, Status};

/// A fixed-width table, one row per instance.
pub fn table(h: &HubHealth) -> String {
    let mut out = format!(
        "{:<7} {:<11} {:<9} {:<6} {:>10}  {:<28} {:<16} {}\n",
        "STORE", "INSTANCE", "REQUIRED", "STATUS", "LATENCY", "VERSION", "POOL s/i/u/max", "ERROR"
    );
    for i in &h.instances {
        let pool = i
            .pool
            .map(|p| format!("{}/{}/{}/{}", p.size, p.idle, p.in_use, p.max))
            .unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "{:<7} {:<11} {:<9} {:<6} {:>8.1}ms  {:<28} {:<16} {}\n",
            i.store,
            i.instance,
            if i.required { "yes" } else { "no" },
            match i.status {
                Status::Up => "up",
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
            Status::Down => "DOWN (a required store does not answer)",
        }
    ));
    for w in &h.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    out
}
