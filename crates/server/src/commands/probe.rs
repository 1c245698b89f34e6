//! `tsp-job probe`: the container health check, by the binary itself (the image has no curl).

use std::time::Duration;

/// [`probe`] on a small runtime of its own (the binary has none yet; see [`crate::dispatch`] for
/// why the waiting happens here rather than in `main.rs`).
pub fn run(url: &str, timeout: Duration) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(probe(url, timeout))
}

/// GETs `url` (the process's own `/health/live` by default, `TSP_PROBE_URL` in the image);
/// Ok when it answers 2xx within `timeout`, else an error naming the status or the failure.
pub async fn probe(url: &str, timeout: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let status = client
        .get(url)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{url}: {}", without_url(&e)))?
        .status();
    if status.is_success() {
        Ok(())
    } else {
        anyhow::bail!("{url}: {status}")
    }
}

/// reqwest's error text repeats the URL; keep the cause only.
fn without_url(e: &reqwest::Error) -> String {
    let mut cause = std::error::Error::source(e);
    let mut last = None;
    while let Some(c) = cause {
        last = Some(c.to_string());
        cause = c.source();
    }
    last.unwrap_or_else(|| e.to_string())
}
