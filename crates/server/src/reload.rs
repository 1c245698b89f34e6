//! Credential reloads in a running process (docs/store-security.md#rotation): on `SIGHUP`, on
//! `POST /admin/reload`, and when the content of a secret file (`…_FILE`, `…_file`) changes.
//! The configuration is loaded again and the hub takes each instance's new credentials once they
//! work; refused ones leave the old in use, said in the log and the
//! `tsp_credential_rotations_total` metric.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::Mutex;
use tsp_config::{Config, LoadOptions};
use tsp_hub::{Hub, Rotation, RotationOutcome};

/// Reloads credentials for one hub. Clones share one lock, so reloads never overlap.
#[derive(Clone)]
pub struct Reloader {
    hub: Hub,
    opts: Arc<LoadOptions>,
    seen: Arc<Mutex<Seen>>,
}

/// What the last reload saw of the secret files.
#[derive(Default)]
struct Seen {
    /// The files' fingerprint when every new credential was taken.
    accepted: Option<u64>,
    /// The fingerprint last refused (logged once, tried again at every poll).
    refused: Option<u64>,
}

/// Why a reload did not get as far as the stores.
#[derive(Debug, thiserror::Error)]
#[error("the configuration does not load; the credentials in use stay")]
pub struct ReloadError(#[source] pub tsp_config::ConfigError);

impl Reloader {
    /// A reloader that loads the configuration as `opts` says.
    pub fn new(hub: &Hub, opts: &LoadOptions) -> Reloader {
        let seen = Seen {
            accepted: Some(fingerprint(&secret_files(hub.config()))),
            refused: None,
        };
        Reloader {
            hub: hub.clone(),
            opts: Arc::new(opts.clone()),
            seen: Arc::new(Mutex::new(seen)),
        }
    }

    /// Loads the configuration again and rotates every instance's credentials; `why` goes to
    /// the log.
    pub async fn reload(&self, why: &str) -> Result<Vec<Rotation>, ReloadError> {
        let mut seen = self.seen.lock().await;
        self.reload_locked(&mut seen, why).await
    }

    async fn reload_locked(
        &self,
        seen: &mut Seen,
        why: &str,
    ) -> Result<Vec<Rotation>, ReloadError> {
        let config = match tsp_config::load(&self.opts) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(why, error = %e, "credential reload: the configuration does not load; the credentials in use stay");
                return Err(ReloadError(e));
            }
        };
        let files = fingerprint(&secret_files(&config));
        let timeout = config.secrets.timeout;
        let done = self.hub.rotate_credentials(&config, timeout).await;
        let refused = done.iter().any(|r| r.outcome == RotationOutcome::Refused);
        for r in &done {
            match r.outcome {
                RotationOutcome::Replaced => {
                    tracing::info!(why, store = r.store, instance = %r.instance, "credentials replaced");
                }
                RotationOutcome::Refused if seen.refused != Some(files) => {
                    tracing::warn!(why, store = r.store, instance = %r.instance, error = r.error.as_deref().unwrap_or(""), "new credentials refused; the old ones stay in use (tried again at each poll)");
                }
                _ => {}
            }
        }
        if refused {
            seen.refused = Some(files);
        } else {
            seen.accepted = Some(files);
            seen.refused = None;
        }
        Ok(done)
    }

    /// Reloads when the secret files changed since the last full success.
    async fn poll(&self) {
        let mut seen = self.seen.lock().await;
        // The files the configuration names as it loads now: a new `…_file` path is a change
        // too. One that does not load (a secret file half written) changes nothing yet.
        let Ok(config) = tsp_config::load(&self.opts) else {
            return;
        };
        if seen.accepted == Some(fingerprint(&secret_files(&config))) {
            return;
        }
        let _ = self.reload_locked(&mut seen, "a secret file changed").await;
    }

    /// Runs until dropped (abort the handle): reloads on `SIGHUP`, and looks at the secret
    /// files every `secrets.poll_interval` and whenever a server refuses the credentials in use.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let interval = self.hub.config().secrets.poll_interval;
            let files = secret_files(self.hub.config()).len();
            tracing::info!(
                files,
                ?interval,
                "watching secret files for new credentials"
            );
            let mut hangups = hangup_signals();
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    Some(()) = recv_hangup(&mut hangups) => {
                        let _ = self.reload("SIGHUP").await;
                    }
                    _ = tick.tick() => self.poll().await,
                    // A server refused the credentials in use: its password has just changed,
                    // and the secret file may already say the new one.
                    () = self.hub.credentials_refused() => self.poll().await,
                }
            }
        })
    }
}

type Hangups = Option<tokio::signal::unix::Signal>;

fn hangup_signals() -> Hangups {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

async fn recv_hangup(h: &mut Hangups) -> Option<()> {
    match h {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

/// Every file a secret of `config` was read from, sorted.
fn secret_files(config: &Config) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = config
        .shown
        .iter()
        .filter_map(|v| v.origin.secret_file().cloned())
        .collect();
    files.sort();
    files.dedup();
    files
}

/// A hash of the files' names and contents (an unreadable file hashes as such).
fn fingerprint(files: &[PathBuf]) -> u64 {
    let mut h = DefaultHasher::new();
    for f in files {
        f.hash(&mut h);
        std::fs::read(f).ok().hash(&mut h);
    }
    h.finish()
}
