//! Headless Chromium driven over WebDriver (chromedriver), for the console's tests: Debian's
//! `chromium` and `chromium-driver`, installed by `scripts/services.sh up --browser`.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use super::PASSWORD;

/// Where the tests leave the console's screenshots.
fn screenshots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// chromedriver on a free port and a headless Chromium session through it.
pub struct Browser {
    driver: Child,
    pub client: Client,
    base: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start(base: &str) -> Browser {
        let port = super::closed_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver on PATH (scripts/services.sh up --browser installs it)");
        let listening = || async { TcpStream::connect(("127.0.0.1", port)).map(drop) };
        tsp_testkit::eventually("chromedriver listening", Duration::from_secs(20), listening).await;
        let profile = tempfile::tempdir().unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1360,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        // chromedriver speaks plain HTTP, but the builder wants a TLS provider chosen.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = ClientBuilder::rustls()
            .unwrap()
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session");
        Browser {
            driver,
            client,
            base: base.to_string(),
            _profile: profile,
        }
    }

    pub async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    /// Waits (bounded) for an element matching `css`: the page's own update is the signal.
    pub async fn wait_for(&self, css: &str, within: Duration) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(within)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` within {within:?}: {e}"))
    }

    /// The text of the element matching `css`; found again if a live update replaced it
    /// between finding and reading.
    pub async fn text(&self, css: &str) -> String {
        let mut last = None;
        for _ in 0..5 {
            match self
                .wait_for(css, Duration::from_secs(10))
                .await
                .text()
                .await
            {
                Ok(t) => return t,
                Err(e) => last = Some(e),
            }
        }
        panic!("`{css}` kept going stale: {last:?}");
    }

    pub async fn click(&self, css: &str) {
        self.wait_for(css, Duration::from_secs(10))
            .await
            .click()
            .await
            .unwrap();
    }

    pub async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    pub async fn login(&self, username: &str) {
        self.client.delete_all_cookies().await.unwrap();
        self.goto("/console").await;
        // Without a session, the console sends the browser to its login page.
        self.wait_for("form.login", Duration::from_secs(10)).await;
        let form = self.client.form(Locator::Css("form.login")).await.unwrap();
        form.set_by_name("username", username).await.unwrap();
        form.set_by_name("password", PASSWORD).await.unwrap();
        form.submit().await.unwrap();
        // The overview's alerts section exists on no other page: the login went through.
        self.wait_for("section.alerts", Duration::from_secs(20))
            .await;
        assert_eq!(self.text("main h1").await, "Overview");
    }

    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
