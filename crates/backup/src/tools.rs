//! Running the stores' own tools: bounded by `backup.timeout`, stdout streamed, the end of
//! stderr kept for the error. Credentials never go on a command line (see `mysql.rs`).

use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use crate::error::BackupError;

/// Who runs the tool, for errors.
#[derive(Clone, Copy)]
pub(crate) struct Who<'a> {
    pub(crate) store: &'static str,
    pub(crate) instance: &'a str,
}

impl Who<'_> {
    pub(crate) fn failed(&self, tool: &str, message: impl Into<String>) -> BackupError {
        BackupError::Tool {
            store: self.store,
            instance: self.instance.to_string(),
            tool: tool.to_string(),
            message: message.into(),
        }
    }
}

fn program(cmd: &Command) -> String {
    cmd.as_std().get_program().to_string_lossy().into_owned()
}

fn spawn(cmd: &mut Command, who: Who<'_>, stdin: bool) -> Result<Child, BackupError> {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
        .kill_on_drop(true);
    cmd.spawn().map_err(|e| {
        let tool = program(cmd);
        if e.kind() == std::io::ErrorKind::NotFound {
            who.failed(
                &tool,
                "not installed (not found on PATH); see docs/backup.md#tools",
            )
        } else {
            who.failed(&tool, format!("cannot start: {e}"))
        }
    })
}

/// The last 2 000 characters of what the tool wrote to stderr.
fn tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    let start = text.char_indices().rev().nth(2_000).map_or(0, |(i, _)| i);
    text[start..].to_string()
}

async fn finish(
    mut child: Child,
    tool: &str,
    who: Who<'_>,
    stderr: tokio::task::JoinHandle<Vec<u8>>,
) -> Result<(), BackupError> {
    let status = child
        .wait()
        .await
        .map_err(|e| who.failed(tool, format!("cannot wait for it: {e}")))?;
    let err = stderr.await.unwrap_or_default();
    if status.success() {
        Ok(())
    } else {
        Err(who.failed(tool, format!("{status}: {}", tail(&err))))
    }
}

fn drain_stderr(child: &mut Child) -> tokio::task::JoinHandle<Vec<u8>> {
    let mut pipe = child.stderr.take();
    tokio::spawn(async move {
        let mut buf = Vec::new();
        if let Some(p) = pipe.as_mut() {
            let _ = p.read_to_end(&mut buf).await;
        }
        buf
    })
}

/// Runs `work` (feeding or draining `child`) within `timeout`; past it, kills the child.
async fn bounded(
    child: &mut Child,
    work: impl std::future::Future<Output = Result<(), BackupError>>,
    tool: &str,
    who: Who<'_>,
    timeout: Duration,
) -> Result<(), BackupError> {
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => {
            let _ = child.kill().await;
            Err(who.failed(
                tool,
                format!("took longer than {timeout:?} (backup.timeout)"),
            ))
        }
    }
}

/// Runs `cmd`, handing each piece of its stdout to `each`, within `timeout`.
pub(crate) async fn stream_stdout(
    mut cmd: Command,
    who: Who<'_>,
    timeout: Duration,
    mut each: impl FnMut(&[u8]) -> Result<(), BackupError>,
) -> Result<(), BackupError> {
    let tool = program(&cmd);
    let mut child = spawn(&mut cmd, who, false)?;
    let stderr = drain_stderr(&mut child);
    let mut out = child
        .stdout
        .take()
        .ok_or_else(|| who.failed(&tool, "no stdout"))?;
    let work = async {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = out
                .read(&mut buf)
                .await
                .map_err(|e| who.failed(&tool, format!("reading its output: {e}")))?;
            if n == 0 {
                return Ok::<(), BackupError>(());
            }
            each(&buf[..n])?;
        }
    };
    bounded(&mut child, work, &tool, who, timeout).await?;
    finish(child, &tool, who, stderr).await
}

/// Runs `cmd` with `input` on its stdin, within `timeout`; returns its stdout.
pub(crate) async fn feed_stdin(
    mut cmd: Command,
    who: Who<'_>,
    timeout: Duration,
    mut input: Box<dyn Read + Send>,
) -> Result<String, BackupError> {
    let tool = program(&cmd);
    let mut child = spawn(&mut cmd, who, true)?;
    let stderr = drain_stderr(&mut child);
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| who.failed(&tool, "no stdin"))?;
    let mut stdout = child.stdout.take();
    let out = tokio::spawn(async move {
        let mut buf = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_end(&mut buf).await;
        }
        buf
    });
    let work = async {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = input
                .read(&mut buf)
                .map_err(|e| who.failed(&tool, format!("reading the part: {e}")))?;
            if n == 0 {
                break;
            }
            if let Err(e) = stdin.write_all(&buf[..n]).await {
                // The tool stopped reading: its exit status and stderr say why.
                tracing::debug!(error = %e, "tool closed its input");
                break;
            }
        }
        drop(stdin);
        Ok::<(), BackupError>(())
    };
    bounded(&mut child, work, &tool, who, timeout).await?;
    finish(child, &tool, who, stderr).await?;
    Ok(String::from_utf8_lossy(&out.await.unwrap_or_default()).into_owned())
}

/// Runs `cmd` to its end within `timeout`; returns its stdout.
pub(crate) async fn run(
    cmd: Command,
    who: Who<'_>,
    timeout: Duration,
) -> Result<String, BackupError> {
    let mut out = Vec::new();
    stream_stdout(cmd, who, timeout, |piece| {
        out.extend_from_slice(piece);
        Ok(())
    })
    .await?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// `program --version`'s first line, or why there is none.
pub(crate) async fn version(program: &str, flag: &str) -> String {
    let out = Command::new(program)
        .arg(flag)
        .stdin(Stdio::null())
        .output()
        .await;
    match out {
        Ok(o) => String::from_utf8_lossy(if o.stdout.is_empty() {
            &o.stderr
        } else {
            &o.stdout
        })
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string(),
        Err(e) => format!("unavailable: {e}"),
    }
}

/// Runs `first | second` within `timeout`: `first`'s stdout is `second`'s stdin. Either failing
/// fails the whole, with its stderr.
pub(crate) async fn pipe(
    mut first: Command,
    mut second: Command,
    who: Who<'_>,
    timeout: Duration,
) -> Result<(), BackupError> {
    let (tool1, tool2) = (program(&first), program(&second));
    let mut a = spawn(&mut first, who, false)?;
    let a_err = drain_stderr(&mut a);
    let a_out: Stdio = a
        .stdout
        .take()
        .ok_or_else(|| who.failed(&tool1, "no stdout"))?
        .try_into()
        .map_err(|e| who.failed(&tool1, format!("cannot pipe its output: {e}")))?;
    second
        .stdin(a_out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut b = second
        .spawn()
        .map_err(|e| who.failed(&tool2, format!("cannot start: {e}")))?;
    let b_err = drain_stderr(&mut b);
    let both = async {
        let first = finish(a, &tool1, who, a_err).await;
        let second = finish(b, &tool2, who, b_err).await;
        first.and(second)
    };
    match tokio::time::timeout(timeout, both).await {
        Ok(r) => r,
        Err(_) => Err(who.failed(
            &format!("{tool1} | {tool2}"),
            format!("took longer than {timeout:?} (backup.timeout)"),
        )),
    }
}
