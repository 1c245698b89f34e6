//! A `redis-server` of the backup's own, on a private Unix socket, that loads a snapshot: how a
//! Redis part is read back (docs/backup.md#redis).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::error::BackupError;
use crate::tools::Who;

/// A `redis-server` of our own on a Unix socket in a temporary folder, loading `dump.rdb` there.
pub(crate) struct Scratch {
    child: Child,
    pub(crate) socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Scratch {
    /// A temporary folder to put `dump.rdb` in before [`Scratch::start`].
    pub(crate) fn folder() -> Result<tempfile::TempDir, BackupError> {
        tempfile::Builder::new()
            .prefix("tsp-redis-")
            .tempdir()
            .map_err(|e| BackupError::io(Path::new("(temporary folder)"), "cannot create", e))
    }

    pub(crate) async fn start(
        program: &str,
        dir: tempfile::TempDir,
        who: Who<'_>,
    ) -> Result<Scratch, BackupError> {
        let socket = dir.path().join("r.sock");
        let child = Command::new(program)
            .args(["--port", "0", "--unixsocket"])
            .arg(&socket)
            .args(["--unixsocketperm", "700", "--dir"])
            .arg(dir.path())
            .args([
                "--dbfilename",
                "dump.rdb",
                "--appendonly",
                "no",
                "--save",
                "",
                "--databases",
                "256",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| who.failed(program, format!("cannot start a scratch server: {e}")))?;
        let scratch = Scratch {
            child,
            socket,
            _dir: dir,
        };
        // Loading a large snapshot takes a while: PING answers once it is loaded.
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Ok(mut c) = scratch.conn(0).await
                && redis::cmd("PING")
                    .query_async::<String>(&mut c)
                    .await
                    .is_ok()
            {
                return Ok(scratch);
            }
            if Instant::now() > deadline {
                return Err(who.failed(
                    program,
                    "the scratch server did not load the snapshot within 300 s",
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A connection without a response timeout: a `DUMP` of a large key takes as long as it
    /// takes, and the whole copy is bounded by `backup.timeout`.
    pub(crate) async fn conn(
        &self,
        db: u32,
    ) -> Result<redis::aio::MultiplexedConnection, redis::RedisError> {
        let url = format!("redis+unix://{}?db={db}", self.socket.display());
        let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
        redis::Client::open(url)?
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    pub(crate) async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
