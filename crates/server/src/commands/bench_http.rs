//! `tsp-job bench http`: authenticated cached reads of `GET /users/{id}/stats` at a fixed
//! number of connections, against three servers on the same sandbox in one run: without
//! authentication and limits (every request taken for the user; the rest of the guard, the
//! layers and the request metrics as usual), with them (the activity log off), and as
//! configured (with the activity log). The load generator runs in the same process
//! (docs/benchmarks.md).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use serde_json::json;
use tsp_config::LoadOptions;
use tsp_mobility::auth::Principal;
use tsp_mobility::batch::Percentiles;
use tsp_mobility::sandbox::Sandbox;

use crate::app::App;
use crate::cli::HttpBenchArgs;
use crate::http::{Activity, AppState, router, router_without_auth};

/// What one variant served.
struct Served {
    requests: u64,
    errors: u64,
    seconds: f64,
    latency_us: Percentiles,
}

/// Serves `router` on a loopback port in this process; its base URL.
pub(crate) async fn spawn(router: Router) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, service).await {
            tracing::error!(error = %e, "bench server stopped");
        }
    });
    Ok(format!("http://{addr}"))
}

/// `connections` clients asking `url` as fast as they are answered, for `seconds`.
async fn load(url: &str, token: &str, connections: usize, seconds: f64) -> Served {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .unwrap_or_default();
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (client, url, token) = (client.clone(), url.to_string(), token.to_string());
        tasks.push(tokio::spawn(async move {
            let (mut times, mut errors) = (Vec::new(), 0u64);
            while Instant::now() < until {
                let t = Instant::now();
                let ok = match client.get(&url).bearer_auth(&token).send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if ok {
                    times.push(t.elapsed().as_secs_f64() * 1e6);
                } else {
                    errors += 1;
                }
            }
            (times, errors)
        }));
    }
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        if let Ok((times, e)) = t.await {
            all.extend(times);
            errors += e;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    Served {
        requests: all.len() as u64,
        errors,
        seconds,
        latency_us: Percentiles::of(all),
    }
}

/// `tsp-job bench http`: one JSON line.
pub async fn bench_http(
    options: &LoadOptions,
    args: &HttpBenchArgs,
) -> anyhow::Result<serde_json::Value> {
    let mut opts = options.clone();
    // Limits are checked on every request but set out of reach: the benchmark measures their
    // cost, not their effect.
    for key in ["read", "write", "address"] {
        opts.overrides
            .push(format!("limits.{key}.per_second=10000000"));
        opts.overrides.push(format!("limits.{key}.burst=10000000"));
    }
    let sandbox = Sandbox::create(&opts).await?;
    let result = run(&sandbox, args).await;
    sandbox.dispose().await;
    result
}

async fn run(sandbox: &Sandbox, args: &HttpBenchArgs) -> anyhow::Result<serde_json::Value> {
    let hub = &sandbox.hub;
    tsp_mobility::seed::seed_users(hub, 1).await?;
    let app = App::build(hub)?;
    let state = |activity| AppState::new(app.clone(), None, activity);
    let bare = spawn(router_without_auth(
        state(Activity::off()),
        Principal::User { id: 1 },
    ))
    .await?;
    let guarded = spawn(router(state(Activity::off()))).await?;
    let activity = Activity::start(hub).await?;
    let full = spawn(router(state(activity.clone()))).await?;
    let token = app
        .auth()
        .start_session(&Principal::User { id: 1 })
        .await?
        .token;
    let path = "/users/1/stats";
    // Warm: every server has the entry in L1 and its connections open.
    for base in [&bare, &guarded, &full] {
        load(&format!("{base}{path}"), &token, args.connections, 0.5).await;
    }
    let mut variants = Vec::new();
    for (name, base) in [
        ("none", &bare),
        ("auth_and_limits", &guarded),
        ("full", &full),
    ] {
        let s = load(
            &format!("{base}{path}"),
            &token,
            args.connections,
            args.seconds,
        )
        .await;
        anyhow::ensure!(s.errors == 0, "{name}: {} requests failed", s.errors);
        variants.push((name, s));
    }
    // The document store may be far behind: stop its writer before the sandbox goes.
    activity.close(Duration::from_secs(2)).await;
    let rate = |s: &Served| s.requests as f64 / s.seconds;
    let by_name: serde_json::Map<String, serde_json::Value> = variants
        .iter()
        .map(|(name, s)| {
            (
                name.to_string(),
                json!({
                    "requests": s.requests,
                    "req_per_s": rate(s).round(),
                    "p50_us": s.latency_us.p50.round(),
                    "p99_us": s.latency_us.p99.round(),
                }),
            )
        })
        .collect();
    let none = rate(&variants[0].1);
    let guarded_rate = rate(&variants[1].1);
    Ok(json!({
        "bench": "http",
        "route": path,
        "connections": args.connections,
        "seconds_each": args.seconds,
        "variants": by_name,
        "auth_and_limits_cost": if none > 0.0 { ((none - guarded_rate) / none * 1000.0).round() / 1000.0 } else { 0.0 },
    }))
}
