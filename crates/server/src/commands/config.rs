//! `tsp-job config show | check | reference | reload`.

use serde_json::{Map, Value};
use tsp_config::Config;

/// The effective configuration, secrets masked; with `origin`, where each value came from.
pub fn show(config: &Config, json: bool, origin: bool, folder: &str) -> String {
    if json {
        let value = if origin {
            Value::Array(
                config
                    .shown
                    .iter()
                    .map(|v| {
                        serde_json::json!({"key": v.key, "value": v.json, "origin": v.origin.to_string()})
                    })
                    .collect(),
            )
        } else {
            let mut root = Map::new();
            for v in &config.shown {
                insert_nested(&mut root, &v.key, v.json.clone());
            }
            Value::Object(root)
        };
        return serde_json::to_string_pretty(&value).unwrap_or_default();
    }
    let mut out = format!(
        "# environment: {}\n# configuration folder: {folder}\n",
        config.env
    );
    let files: Vec<String> = config
        .files
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    out.push_str(&format!(
        "# files read: {}\n",
        if files.is_empty() {
            "none".into()
        } else {
            files.join(", ")
        }
    ));
    let width = config
        .shown
        .iter()
        .map(|v| v.key.len() + v.display.len() + 3)
        .max()
        .unwrap_or(0);
    for v in &config.shown {
        let line = format!("{} = {}", v.key, v.display);
        if origin {
            out.push_str(&format!("{line:<width$}  # {}\n", v.origin));
        } else {
            out.push_str(&line);
            out.push('\n');
        }
    }
    for w in &config.warnings {
        out.push_str(&format!("# warning: {w}\n"));
    }
    out
}

fn insert_nested(root: &mut Map<String, Value>, key: &str, value: Value) {
    let mut parts = key.split('.').peekable();
    let mut node = root;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            node.insert(part.to_string(), value);
            return;
        }
        let entry = node
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        match entry {
            Value::Object(m) => node = m,
            _ => return,
        }
    }
}

/// The reference of every key as a Markdown table (the README's "Configuration" section).
pub fn reference() -> String {
    let mut out = String::from(
        "| key | type | default | environment | description |\n|---|---|---|---|---|\n",
    );
    for r in tsp_config::reference() {
        let env: Vec<String> = r.env.iter().map(|e| format!("`{e}`")).collect();
        out.push_str(&format!(
            "| `{}` | {} | `{}` | {} | {} |\n",
            r.key,
            r.ty.replace('|', "\\|"),
            r.default.replace('|', "\\|"),
            env.join(" "),
            r.doc.replace('|', "\\|")
        ));
    }
    out
}

/// `config reload [--pid PID]`: every instance's health with the configured credentials (the
/// checks authenticate); when all answer and `pid` is given, `SIGHUP` to it. Exit 1 otherwise.
pub async fn reload(hub: &tsp_hub::Hub, pid: Option<i32>) -> anyhow::Result<u8> {
    let h = hub.health().await;
    print!("{}", super::health::table(&h));
    let down: Vec<String> = h
        .instances
        .iter()
        .filter(|i| i.status != tsp_hub::Status::Up)
        .map(|i| format!("{}.{}", i.store, i.instance))
        .collect();
    if !down.is_empty() {
        eprintln!(
            "error: refused or unreachable with these credentials: {}; nothing signalled",
            down.join(", ")
        );
        return Ok(1);
    }
    if let Some(pid) = pid {
        use nix::sys::signal::{Signal, kill};
        kill(nix::unistd::Pid::from_raw(pid), Signal::SIGHUP)
            .map_err(|e| anyhow::anyhow!("cannot signal process {pid}: {e}"))?;
        println!("every store accepts these credentials; process {pid} reloads them (SIGHUP)");
    } else {
        println!("every store accepts these credentials");
    }
    Ok(0)
}
