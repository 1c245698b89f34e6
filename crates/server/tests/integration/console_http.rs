//! The operator console over plain HTTP, against a `serve` process on a sandbox: the access
//! rule of every console route, cancelling outside the console, the header's search across
//! queues, and a deep link kept through the login. The browser's side is in `console.rs`.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use crate::common;

use crate::common::{PASSWORD, Site};
use crate::console::{delayed, noops};
use serde_json::{Value, json};
use tsp_mobility::auth::Role;
use tsp_queue::{NewJob, Outcome};

/// Over plain HTTP: every console route without a session (login page or 401), with a viewer's
/// session (reads yes, actions 403), with an operator's (actions need the CSRF token, and a
/// form from another origin is refused), and a platform user's session refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_console_route_keeps_its_rule() {
    let site = Site::new(&[]).await;
    let operator = site.operator(Role::Operator).await;
    let viewer = site.operator(Role::Viewer).await;
    let user_email = site.user_with_password(1).await;
    let server = site.server(&[]);
    let q = site.app.queue("console").unwrap();
    let id = q
        .enqueue(NewJob::new("builtin.noop", &1).unwrap())
        .await
        .unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let session = |name: String| {
        let http = http.clone();
        let base = server.base.clone();
        async move {
            let r = http
                .post(format!("{base}/console/login"))
                .form(&[("username", name.as_str()), ("password", PASSWORD)])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 303);
            let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
            cookie.split(';').next().unwrap().to_string()
        }
    };
    let op_cookie = session(operator).await;
    let viewer_cookie = session(viewer).await;
    let csrf_of = |cookie: &str| tsp_server_csrf(cookie);
    let concrete = |path: &str| {
        path.replace("{name}", "console")
            .replace("{id}", &id)
            .replace("{file}", "console.css")
    };
    for (method, path) in tsp_server::http::console::ROUTES {
        let rule = tsp_server::http::console::access(method, path);
        let url = format!("{}{}", server.base, concrete(path));
        let send = |cookie: Option<&str>, csrf: Option<String>| {
            let mut req = if *method == "GET" {
                http.get(&url)
            } else {
                http.post(&url)
            };
            if let Some(c) = cookie {
                req = req.header("cookie", c);
            }
            if *method == "POST" {
                req = req.form(&[("csrf", csrf.unwrap_or_default())]);
            }
            req.send()
        };
        if path.ends_with("/events") {
            continue; // a stream: checked below
        }
        let r = send(None, None).await.unwrap();
        let anonymous = r.status().as_u16();
        let body = r.text().await.unwrap();
        match (rule, *method) {
            // The login form itself refuses the empty credentials; the guard let it through.
            ("anyone", "POST") => assert!(body.contains("Wrong username or password"), "{body}"),
            ("anyone", _) => assert_eq!(anonymous, 200, "{method} {path}"),
            (_, "GET") => assert_eq!(anonymous, 303, "{method} {path}"),
            _ => assert_eq!(anonymous, 401, "{method} {path}"),
        }
        if rule == "operator or admin" {
            let as_viewer = send(Some(&viewer_cookie), Some(csrf_of(&viewer_cookie)));
            assert_eq!(
                as_viewer.await.unwrap().status(),
                403,
                "viewer {method} {path}"
            );
            let forged = send(Some(&op_cookie), Some("0".repeat(64))).await.unwrap();
            assert_eq!(forged.status(), 403, "no CSRF token: {method} {path}");
        }
        if rule == "any operator" && *method == "GET" {
            let r = send(Some(&viewer_cookie), None).await.unwrap();
            assert_eq!(r.status(), 200, "viewer {method} {path}");
            assert!(
                r.headers()["content-security-policy"]
                    .to_str()
                    .unwrap()
                    .contains("script-src 'self'")
            );
        }
    }
    // A form posted from another origin is refused even with the right token.
    let cross = http
        .post(format!("{}/console/queues/console/pause", server.base))
        .header("cookie", &op_cookie)
        .header("origin", "http://evil.example")
        .form(&[("csrf", csrf_of(&op_cookie))])
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    assert!(!q.counts().await.unwrap().paused);
    // The operator's own form works.
    let ok = http
        .post(format!("{}/console/queues/console/pause", server.base))
        .header("cookie", &op_cookie)
        .form(&[("csrf", csrf_of(&op_cookie))])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 303);
    assert!(q.counts().await.unwrap().paused);
    // A platform user's session (from the API login) opens nothing.
    let (code, body) = tokio::task::block_in_place(|| {
        server.send(
            reqwest::Method::POST,
            "/auth/login",
            Some(&json!({"email": user_email, "password": PASSWORD})),
            None,
        )
    });
    assert_eq!(code, 200, "{body}");
    let token: Value = serde_json::from_str(&body).unwrap();
    let user_cookie = format!("tsp_console={}", token["token"].as_str().unwrap());
    let r = http
        .get(format!("{}/console", server.base))
        .header("cookie", &user_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Logging out ends the session for good.
    let out = http
        .post(format!("{}/console/logout", server.base))
        .header("cookie", &op_cookie)
        .form(&[("csrf", csrf_of(&op_cookie))])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    let after = http
        .get(format!("{}/console", server.base))
        .header("cookie", &op_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 303);
    drop(server);
    site.done().await;
}

/// The CSRF token of the session in `cookie` ("tsp_console=<token>"), as the console derives it.
fn tsp_server_csrf(cookie: &str) -> String {
    let token = cookie.trim_start_matches("tsp_console=");
    tsp_server::http::console::csrf_token(token)
}

/// Cancelling outside the console: `jobs cancel` and `POST /jobs/{id}/cancel` remove waiting
/// and delayed jobs and refuse the others, naming what each is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_from_the_cli_and_the_api() {
    let site = Site::new(&[]).await;
    let q = site.app.queue("cancels").unwrap();
    let ids = q.enqueue_many(noops(3)).await.unwrap();
    let later = q.enqueue(delayed(3, 600)).await.unwrap();
    let cli = |args: &[&str]| site.cli(args);
    let out = cli(&["jobs", "cancel", &ids[0], &later, "--queue", "cancels"]);
    let (stdout, stderr) = common::text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains(&format!("{}: cancelled", ids[0])),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("{later}: cancelled")), "{stdout}");
    let out = cli(&["jobs", "cancel", &ids[0], &ids[1], "--queue", "cancels"]);
    let (_, stderr) = common::text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("{}: no such job in cancels", ids[0])),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{}: cancelled", ids[1])),
        "{stderr}"
    );

    let key = site.key(&[tsp_mobility::auth::Scope::Admin]).await;
    let server = site.server(&[]).with_credential(key);
    let path = format!("/jobs/{}/cancel?queue=cancels", ids[2]);
    let (code, body) = tokio::task::block_in_place(|| server.post(&path, &json!({})));
    assert_eq!(code, 200, "{body}");
    let (code, body) = tokio::task::block_in_place(|| server.post(&path, &json!({})));
    assert_eq!(code, 404, "{body}");
    // A finished job is not cancelled: 409, naming its state.
    let done = q
        .enqueue(NewJob::new("builtin.noop", &4).unwrap())
        .await
        .unwrap();
    let fetched = q.fetch(1, "cancel-test").await.unwrap();
    let completed = Outcome::Completed {
        result: "null".into(),
    };
    q.finish(&[(&fetched.jobs[0], completed)], false)
        .await
        .unwrap();
    let path = format!("/jobs/{done}/cancel?queue=cancels");
    let (code, body) = tokio::task::block_in_place(|| server.post(&path, &json!({})));
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("is completed"), "{body}");
    assert_eq!(q.counts().await.unwrap().totals.get("cancelled"), Some(&4));
    drop(server);
    site.done().await;
}

/// The header's search box finds a job in any queue by its id in any case, by its dedup key as
/// the job page shows it, and by its trip id; lists several matches; and a miss is a 404 page
/// that keeps the navigation. The queue page's old search goes to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_search_box_finds_a_job_in_any_queue() {
    let site = Site::new(&[]).await;
    let server = site.server(&[]);
    let viewer = site.operator(Role::Viewer).await;
    let (_, v) =
        common::api::login(&server, json!({"username": viewer, "password": PASSWORD})).await;
    let cookie = format!("tsp_console={}", v["token"].as_str().unwrap());
    let (nightly, default) = (
        site.app.queue("nightly").unwrap(),
        site.app.queue("default").unwrap(),
    );
    let id = nightly
        .enqueue(NewJob::new("builtin.noop", &1).unwrap())
        .await
        .unwrap();
    let keyed = |n: u32| {
        NewJob::new("builtin.noop", &n)
            .unwrap()
            .with_dedup_key("report:42")
    };
    let (first, twin) = (
        nightly.enqueue(keyed(2)).await.unwrap(),
        default.enqueue(keyed(3)).await.unwrap(),
    );
    // A trip posted and not completed yet: its trip id finds its job.
    let payload = common::api::trip("t-find", 1, 4, 2).to_string();
    let trip = site
        .app
        .prepare(NewJob::raw("trip.complete", payload))
        .unwrap();
    site.app.trips().claim("t-find", 1).await.unwrap();
    let trips = site.app.queue("trips").unwrap();
    let trip_job = trips.enqueue(trip).await.unwrap();

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: String| {
        client
            .get(format!("{}{path}", server.base))
            .header("cookie", &cookie)
            .send()
    };
    for (q, queue, job) in [
        (id.to_lowercase(), "nightly", &id),
        ("t-find".to_string(), "trips", &trip_job),
    ] {
        let r = get(format!("/console/find?q={q}")).await.unwrap();
        assert_eq!(r.status().as_u16(), 303, "{q}");
        let to = format!("/console/queues/{queue}/jobs/{job}");
        assert_eq!(r.headers()["location"], to.as_str(), "{q}");
    }
    let r = get("/console/find?q=report:42".into()).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let page = r.text().await.unwrap();
    assert!(page.contains(r#"data-found="2""#), "{page}");
    for job in [&first, &twin] {
        assert!(page.contains(job.as_str()), "{job} not listed");
    }
    let r = get("/console/find?q=no-such-job".into()).await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let page = r.text().await.unwrap();
    assert!(page.contains(r#"data-found="0""#), "{page}");
    assert!(
        page.contains(r#"action="/console/find""#),
        "the navigation is lost: {page}"
    );
    let r = get(format!("/console/queues/default?q={id}"))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(
        r.headers()["location"],
        format!("/console/find?q={id}").as_str()
    );
    drop(server);
    site.done().await;
}

/// A link into the console opened without a session comes back to its page after the login;
/// a `next` that is not a console page of this site goes to the overview.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deep_link_survives_the_login() {
    let site = Site::new(&[]).await;
    let server = site.server(&[]);
    let operator = site.operator(Role::Viewer).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let deep = "/console/queues/default?state=dead";
    let r = http
        .get(format!("{}{deep}", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let login = r.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(
        login,
        "/console/login?next=%2Fconsole%2Fqueues%2Fdefault%3Fstate%3Ddead"
    );
    let page = http
        .get(format!("{}{login}", server.base))
        .send()
        .await
        .unwrap();
    let page = page.text().await.unwrap();
    assert!(
        page.contains(r#"name="next" value="/console/queues/default?state=dead""#),
        "{page}"
    );
    for (next, lands) in [
        (deep, deep),
        ("//evil.example/console", "/console"),
        ("https://evil.example/console", "/console"),
        ("/consolex", "/console"),
        ("/console\\..\\x", "/console"),
    ] {
        let r = http
            .post(format!("{}/console/login", server.base))
            .form(&[
                ("username", operator.as_str()),
                ("password", PASSWORD),
                ("next", next),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 303, "{next}");
        assert_eq!(r.headers()["location"], lands, "{next}");
    }
    drop(server);
    site.done().await;
}
