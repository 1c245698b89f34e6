//! `tsp-job roundtrip`: every store instance written and read back ([`Hub::roundtrip`]), then
//! health.

use std::time::Duration;

use tsp_hub::{Hub, Status};

use crate::EXIT_FAILURE;

/// `tsp-job roundtrip`: 1 when a required store failed its round trip or is down.
pub async fn roundtrip(hub: &Hub) -> u8 {
    let outcomes = hub.roundtrip(Duration::from_secs(15)).await;
    let mut failed_required = false;
    for o in &outcomes {
        println!(
            "{} {:<7} {:<11} {:>8.1}ms  {}",
            if o.ok { "ok  " } else { "FAIL" },
            o.store,
            o.instance,
            o.ms,
            o.detail
        );
        failed_required |= !o.ok && o.required;
    }
    let h = hub.health().await;
    println!();
    print!("{}", super::health::table(&h));
    if failed_required || h.status != Status::Up {
        EXIT_FAILURE
    } else {
        0
    }
}
