//! `tsp-bench http`: authenticated cached reads of `GET /users/{id}/stats` at a fixed
//! number of connections, against three servers on the same sandbox in one run: without
//! authentication and limits (every request taken for the user; the rest of the guard, the
//! layers and the request metrics as usual), with them (the activity log off), and as
//! configured (with the activity log). Then the login path: many clients at once, each logging
//! in as a user of its own again and again, with the process's resident memory sampled. The
//! load generator runs in the same process (docs/benchmarks.md).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use serde_json::json;
use tsp_config::LoadOptions;
use tsp_mobility::auth::Principal;
use tsp_mobility::batch::Percentiles;
use tsp_mobility::sandbox::Sandbox;

use crate::cli::HttpBenchArgs;
use tsp_server::app::App;
use tsp_server::http::{Activity, AppState, router, router_without_auth};

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

/// `tsp-bench http`: one JSON line.
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
    let app = App::build(hub)?;
    tsp_mobility::seed::seed_users(&app.stores().auth.portal, 1).await?;
    let state = |activity| AppState::new(app.clone(), None, activity);
    let bare = spawn(router_without_auth(
        state(Activity::off()),
        Principal::User { id: 1 },
    ))
    .await?;
    let guarded = spawn(router(state(Activity::off()))).await?;
    let activity = Activity::start(&app.stores().activity, &hub.config().activity).await;
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
    let logins = logins(&app, &guarded, args).await?;
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
        "login": logins,
    }))
}

/// This process's resident memory, MiB (Linux; 0 elsewhere).
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

const LOGIN_PASSWORD: &str = "bench passphrase of the login path";

/// Users `1..=n`, each with [`LOGIN_PASSWORD`]: their emails, by id.
async fn login_users(app: &App, n: u64, password: &str) -> anyhow::Result<Vec<String>> {
    let portal = &app.stores().auth.portal;
    tsp_mobility::seed::seed_users(portal, n).await?;
    let setting = (1..=n).map(|id| {
        let auth = app.auth().clone();
        async move { auth.set_user_password(id, password.into()).await }
    });
    for r in futures::future::join_all(setting).await {
        r?;
    }
    Ok(
        sqlx::query_scalar("SELECT email FROM users WHERE id <= ? ORDER BY id")
            .bind(n)
            .fetch_all(portal.pool())
            .await?,
    )
}

/// The highest resident memory seen (MiB), sampled every 10 ms from `start` until the task is
/// aborted.
fn sample_peak_rss(
    start: f64,
) -> (
    std::sync::Arc<std::sync::Mutex<f64>>,
    tokio::task::JoinHandle<()>,
) {
    let peak = std::sync::Arc::new(std::sync::Mutex::new(start));
    let sampling = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                let now = rss_mib();
                if let Ok(mut p) = peak.lock() {
                    *p = p.max(now);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    (peak, sampling)
}

/// `login_clients` clients, each a user of its own, logging in over and over for
/// `login_seconds` against the guarded server: logins/s, latency, and the resident memory
/// before and at its highest (sampled every 10 ms).
async fn logins(app: &App, base: &str, args: &HttpBenchArgs) -> anyhow::Result<serde_json::Value> {
    if args.login_clients == 0 || args.login_seconds <= 0.0 {
        return Ok(serde_json::Value::Null);
    }
    let emails = login_users(app, args.login_clients as u64, LOGIN_PASSWORD).await?;
    let before = rss_mib();
    let (peak, sampling) = sample_peak_rss(before);
    let until = Instant::now() + Duration::from_secs_f64(args.login_seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, email) in emails.into_iter().enumerate() {
        // Each client from an address of its own (127.0.x.y: all loopback), as users are: the
        // per-address count holds a guess from one address while its hash is checked.
        let local = std::net::Ipv4Addr::new(127, 0, (i / 250) as u8, (i % 250 + 2) as u8);
        let client = reqwest::Client::builder()
            .local_address(std::net::IpAddr::V4(local))
            .build()?;
        let url = format!("{base}/auth/login");
        tasks.push(tokio::spawn(async move {
            let (mut times, mut refused) = (Vec::new(), 0u64);
            let body = json!({"email": email, "password": LOGIN_PASSWORD});
            while Instant::now() < until {
                let t = Instant::now();
                match client.post(&url).json(&body).send().await {
                    Ok(r) if r.status().is_success() => times.push(t.elapsed().as_secs_f64() * 1e3),
                    _ => refused += 1,
                }
            }
            (times, refused)
        }));
    }
    let (mut all, mut refused) = (Vec::new(), 0);
    for t in tasks {
        if let Ok((times, r)) = t.await {
            all.extend(times);
            refused += r;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    sampling.abort();
    let peak = peak.lock().map(|p| *p).unwrap_or(before);
    let count = all.len();
    let ms = Percentiles::of(all);
    Ok(json!({
        "clients": args.login_clients,
        "seconds": (seconds * 10.0).round() / 10.0,
        "logins": count,
        "refused": refused,
        "logins_per_s": (count as f64 / seconds).round(),
        "p50_ms": (ms.p50 * 10.0).round() / 10.0,
        "p99_ms": (ms.p99 * 10.0).round() / 10.0,
        "hashes_at_once": app.hub().config().auth.argon2.max_concurrent,
        "rss_before_mib": before.round(),
        "rss_peak_mib": peak.round(),
    }))
}
