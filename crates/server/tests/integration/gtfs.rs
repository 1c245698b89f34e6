//! GTFS over the CLI and HTTP, against the real services in a sandbox: `gtfs import` (and a
//! refused feed), the transit routes, uploads, and `gtfs.import` jobs run by a worker.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use crate::common;

use std::time::Duration;

use crate::common::{ALL_SCOPES, Server, api_key, run, shared_data as feed, text, worker_on};
use tsp_mobility::sandbox::Sandbox;

fn with_sets<'a>(args: &[&'a str], sets: &'a [String]) -> Vec<&'a str> {
    let mut all = args.to_vec();
    for s in sets {
        all.extend(["--set", s.as_str()]);
    }
    all
}

/// Polls the job until it settles (completed or dead), bounded.
fn settled(server: &Server, id: &str) -> serde_json::Value {
    let what = format!("job {id} settled");
    tsp_testkit::eventually_blocking(&what, Duration::from_secs(120), || {
        let (code, body) = server.get(&format!("/jobs/{id}"));
        assert_eq!(code, 200, "{body}");
        let job: serde_json::Value = serde_json::from_str(&body).unwrap();
        if matches!(job["state"].as_str(), Some("completed" | "dead")) {
            Ok(job)
        } else {
            Err(job)
        }
    })
}

#[test]
fn imports_queries_uploads_and_jobs_over_the_cli_and_http() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sandbox = rt
        .block_on(Sandbox::create(&common::load_options()))
        .unwrap();
    let uploads = tempfile::tempdir().unwrap();
    let mut sets = sandbox.overrides.clone();
    sets.push(format!("gtfs.upload_dir={}", uploads.path().display()));

    // The CLI: an import as JSON, then a refused feed (exit 1, the place named, nothing live
    // changed).
    let cairns = feed("gtfs-cairns/cairns_gtfs.zip");
    let cairns = cairns.to_str().unwrap();
    let out = run(
        &with_sets(&["gtfs", "import", cairns, "--json"], &sets),
        &[],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        (report["outcome"].as_str(), report["rows"].as_u64()),
        (Some("imported"), Some(62_365))
    );
    let version = report["version"].as_u64().unwrap();
    let bad = tempfile::tempdir().unwrap();
    std::fs::write(
        bad.path().join("agency.txt"),
        "agency_name,agency_url,agency_timezone\nA,http://a,UTC\n",
    )
    .unwrap();
    std::fs::write(
        bad.path().join("routes.txt"),
        "route_id,route_short_name,route_type\nr1,1,3\n",
    )
    .unwrap();
    std::fs::write(
        bad.path().join("calendar_dates.txt"),
        "service_id,date,exception_type\ns,20260101,1\n",
    )
    .unwrap();
    std::fs::write(
        bad.path().join("stops.txt"),
        "stop_id,stop_name,stop_lat,stop_lon\nx,X,1,1\n",
    )
    .unwrap();
    std::fs::write(
        bad.path().join("trips.txt"),
        "route_id,service_id,trip_id\nr1,s,t1\n",
    )
    .unwrap();
    std::fs::write(bad.path().join("stop_times.txt"), "trip_id,arrival_time,departure_time,stop_id,stop_sequence\nt1,08:00:00,08:00:00,x,1\nt1,07:00:00,07:00:00,x,2\n").unwrap();
    let out = run(
        &with_sets(&["gtfs", "import", bad.path().to_str().unwrap()], &sets),
        &[],
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("nothing live changed"), "{stderr}");
    assert!(
        stderr.contains(
            "stop_times.txt:3: arrival_time 07:00:00 is before the previous stop's 08:00:00"
        ),
        "{stderr}"
    );
    let out = run(&with_sets(&["gtfs", "versions", "--json"], &sets), &[]);
    let versions: serde_json::Value = serde_json::from_str(text(&out).0.trim()).unwrap();
    assert_eq!(versions[0]["status"], "failed");
    assert_eq!(versions[1]["version"].as_u64(), Some(version));
    assert_eq!(versions[1]["status"], "live");
    // The same query under `tsp-job query`.
    let out = run(
        &with_sets(
            &[
                "query",
                "stops-near",
                "--lat",
                "-16.925",
                "--lng",
                "145.77",
                "--radius-km",
                "1",
            ],
            &sets,
        ),
        &[],
    );
    let near: serde_json::Value = serde_json::from_str(&text(&out).0).unwrap();
    assert!(!near["stops"].as_array().unwrap().is_empty(), "{near}");

    // HTTP.
    let key = api_key(
        &sets.iter().map(String::as_str).collect::<Vec<_>>(),
        ALL_SCOPES,
    );
    let all: Vec<&str> = sets.iter().map(String::as_str).collect();
    let server = Server::start(&all, &[]).with_credential(key);
    let get = |path: &str| {
        let (code, body) = server.get(path);
        (
            code,
            serde_json::from_str::<serde_json::Value>(&body).unwrap_or_default(),
        )
    };
    let (code, near) = get("/stops/near?lat=-16.925&lng=145.77&radius_km=1&limit=5");
    assert_eq!(code, 200, "{near}");
    assert_eq!(near["version"].as_u64(), Some(version));
    let stops = near["stops"].as_array().unwrap();
    assert!(!stops.is_empty() && stops.len() <= 5, "{near}");
    let d: Vec<f64> = stops
        .iter()
        .map(|s| s["distanceM"].as_f64().unwrap())
        .collect();
    assert!(
        d.windows(2).all(|w| w[0] <= w[1]) && d[d.len() - 1] <= 1000.0,
        "{d:?}"
    );
    let (code, e) = get("/stops/near?lat=100&lng=145.77&radius_km=1");
    assert_eq!(
        (code, e["error"].as_str().unwrap().starts_with("lat:")),
        (400, true),
        "{e}"
    );
    let (code, e) = get("/stops/near?lat=1&lng=1&radius=1");
    assert_eq!(code, 400, "{e}");
    let (code, dep) = get("/stops/750000/departures?date=2014-06-02&from=08:00&limit=3");
    assert_eq!(code, 200, "{dep}");
    let first = &dep["departures"][0];
    assert!(first["clockTime"].as_str().unwrap() >= "08:00:00", "{dep}");
    assert_eq!(get("/stops/nope/departures").0, 404);
    assert_eq!(get("/stops/750000/departures?date=2014-13-01").0, 400);
    let (code, routes) = get("/routes");
    assert_eq!(
        (code, routes["routes"].as_array().unwrap().len()),
        (200, 22)
    );
    let (code, route) = get("/routes/110-423");
    assert_eq!(code, 200, "{route}");
    assert_eq!(route["route"]["shortName"], "110");
    assert_eq!(get("/routes/nope").0, 404);
    assert_eq!(
        server.send(reqwest::Method::GET, "/routes", None, None).0,
        401
    );

    // An upload, then a job importing it in a worker; a job naming a path outside the upload
    // folder is refused.
    let client = reqwest::blocking::Client::new();
    let upload = |bytes: Vec<u8>| {
        let resp = client
            .post(format!("{}/gtfs/uploads", server.base))
            .bearer_auth(server.credential.as_deref().unwrap())
            .header("content-type", "application/zip")
            .body(bytes)
            .send()
            .unwrap();
        (
            resp.status().as_u16(),
            resp.json::<serde_json::Value>().unwrap_or_default(),
        )
    };
    assert_eq!(upload(b"not a zip".to_vec()).0, 400);
    let barrie = std::fs::read(feed("gtfs-barrie/mdb-3-202402080013.zip")).unwrap();
    let (code, up) = upload(barrie.clone());
    assert_eq!(code, 200, "{up}");
    let id = up["upload"].as_str().unwrap().to_string();
    assert_eq!(up["bytes"].as_u64(), Some(barrie.len() as u64));
    let mut worker = worker_on(&sets, "default", 2, "30s", &[]);
    let post = |payload: serde_json::Value| {
        let (code, body) = server.post(
            "/jobs",
            &serde_json::json!({"type": "gtfs.import", "payload": payload}),
        );
        assert_eq!(code, 201, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let job = settled(
        &server,
        &post(serde_json::json!({"upload": id, "feed": "barrie"})),
    );
    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(job["result"]["outcome"], "imported");
    assert_eq!(job["result"]["rows"].as_u64(), Some(73_431));
    // Its progress, written as it went: the last phase and each file loaded.
    assert_eq!(job["progress"]["phase"], "prune", "{job}");
    assert_eq!(
        job["progress"]["files"].as_array().map(Vec::len),
        Some(7),
        "{job}"
    );
    let (code, routes) = get("/routes?feed=barrie");
    assert_eq!(
        (code, routes["routes"].as_array().unwrap().len()),
        (200, 20)
    );
    let job = settled(&server, &post(serde_json::json!({"path": cairns})));
    assert_eq!(job["state"], "dead", "{job}");
    assert!(job.to_string().contains("outside gtfs.upload_dir"), "{job}");
    let (code, body) = server.post(
        "/jobs",
        &serde_json::json!({"type": "gtfs.import", "payload": {}}),
    );
    assert_eq!(code, 400, "{body}");
    let _ = worker.kill();
    let _ = worker.wait();
    drop(server);
    let failed = rt.block_on(sandbox.remove());
    assert!(failed.is_empty(), "{failed:?}");
}
