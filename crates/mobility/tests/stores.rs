//! The trip flows resolve their store instances at start-up: a configuration without one is
//! refused there, naming every missing instance, before any job runs.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use tsp_hub::{ErrorKind, Hub};
use tsp_mobility::stores::TripStores;

fn config() -> tsp_config::Config {
    tsp_testkit::config(&[])
}

#[tokio::test]
async fn every_instance_resolves_on_the_configured_stores() {
    // Building the hub and resolving touch no store: this holds with every server down too.
    let hub = Hub::connect(&config()).await.unwrap();
    let stores = TripStores::resolve(&hub).unwrap();
    assert_eq!(stores.dataset.name(), "dataset");
    assert_eq!(stores.documents.name(), "dataset");
    assert_eq!(stores.metrics.name(), "primary");
}

#[tokio::test]
async fn missing_instances_are_named_at_start_up() {
    let mut config = config();
    config.mysql.remove("incentive");
    config.mongo.remove("dataset");
    let hub = Hub::connect(&config).await.unwrap();
    let Err(e) = TripStores::resolve(&hub) else {
        panic!("resolved without mysql.incentive and mongo.dataset");
    };
    assert_eq!(e.kind(), ErrorKind::Config);
    let message = e.to_string();
    assert!(
        message.contains("mysql.incentive, mongo.dataset"),
        "{message}"
    );
    // The component that needs them fails to build, with the same message.
    let cache = tsp_hub::Cache::start(hub.redis("cache").unwrap().clone(), &config.cache);
    let Err(e) = tsp_mobility::complete::Trips::new(&hub, cache) else {
        panic!("trips built without their stores");
    };
    assert_eq!(e.to_string(), message);
}
