//! A Prometheus of a test's own (Debian's `prometheus`: `scripts/services.sh up --monitoring`
//! installs it): its own port and data folder, scraping the test's processes every second and
//! evaluating deploy/prometheus/alerts.yml every second, with each rule's `for:` cut to 2 s so
//! an alert goes pending and firing within a test. Queried over its HTTP API.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// A running Prometheus, stopped and its data removed on drop.
pub struct Prometheus {
    child: Child,
    dir: PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

/// The repository's alert rules, each `for:` cut to `hold`.
fn rules_holding(hold: &str) -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/prometheus/alerts.yml"
    );
    let text = std::fs::read_to_string(path).expect("deploy/prometheus/alerts.yml");
    text.lines()
        .map(|l| match l.split_once("for: ") {
            Some((indent, _)) if indent.trim().is_empty() => format!("{indent}for: {hold}"),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl Prometheus {
    /// Scrapes each `(job, address)` with `token` as the bearer credential.
    pub fn start(targets: &[(&str, &str)], token: &str) -> Prometheus {
        let dir = std::env::temp_dir().join(tsp_testkit::unique("tsp-prometheus-"));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join("token"), token).unwrap();
        std::fs::write(dir.join("alerts.yml"), rules_holding("2s")).unwrap();
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files: [alerts.yml]\nscrape_configs:\n",
        );
        for (job, address) in targets {
            config.push_str(&format!(
                "  - job_name: {job}\n    authorization: {{credentials_file: token}}\n    \
                 static_configs: [{{targets: ['{address}']}}]\n"
            ));
        }
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let port = tsp_testkit::closed_port();
        let child = Command::new("prometheus")
            .current_dir(&dir)
            .arg("--config.file=prometheus.yml")
            .arg("--storage.tsdb.path=data")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("prometheus on PATH (scripts/services.sh up --monitoring): {e}")
            });
        let p = Prometheus {
            child,
            dir,
            base: format!("http://127.0.0.1:{port}"),
        };
        let ready = format!("{}/-/ready", p.base);
        tsp_testkit::eventually_blocking("prometheus ready", Duration::from_secs(30), || {
            match reqwest::blocking::get(&ready) {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(r.status().to_string()),
                Err(e) => Err(e.to_string()),
            }
        });
        p
    }

    fn api(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let url = format!("{}/api/v1/{path}", self.base);
        let resp = reqwest::blocking::Client::new()
            .get(url)
            .query(query)
            .send()
            .expect("prometheus answers");
        resp.json().expect("prometheus answers JSON")
    }

    /// An instant query: `Ok(series)`, or `Err(Prometheus's error)` for a query it refuses.
    pub fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let v = self.api("query", &[("query", expr)]);
        if v["status"] != "success" {
            return Err(format!("{}: {}", v["errorType"], v["error"]));
        }
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    /// The alert `name` whose labels include `labels`: its state (`pending`, `firing`), if any.
    pub fn alert_state(&self, name: &str, labels: &[(&str, &str)]) -> Option<String> {
        let v = self.api("alerts", &[]);
        let alerts = v["data"]["alerts"].as_array().cloned().unwrap_or_default();
        alerts
            .iter()
            .find(|a| {
                a["labels"]["alertname"] == name
                    && labels.iter().all(|(k, want)| a["labels"][*k] == *want)
            })
            .and_then(|a| a["state"].as_str().map(str::to_string))
    }

    /// The health of every scrape target, by job.
    pub fn targets(&self) -> Vec<(String, String, String)> {
        let v = self.api("targets", &[]);
        let active = v["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        active
            .iter()
            .map(|t| {
                let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
                (s(&t["labels"]["job"]), s(&t["health"]), s(&t["lastError"]))
            })
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
