//! A real Prometheus (Debian's package) on 127.0.0.1, and its HTTP API.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use super::{DEADLINE, free_port, http_get, tempdir, wait_until};

pub struct Prometheus {
    child: Child,
    pub port: u16,
}

impl Prometheus {
    /// Starts Prometheus with this configuration (written into a fresh folder, so relative
    /// rule file paths resolve there) and waits until it is ready.
    pub fn start(config: &str, files: &[(&str, &str)]) -> Self {
        let dir = tempdir("prometheus");
        std::fs::write(dir.join("prometheus.yml"), config).expect("write config");
        for (name, text) in files {
            std::fs::write(dir.join(name), text).expect("write file");
        }
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("log")).expect("log file"))
            .spawn()
            .expect("prometheus runs (apt-get install prometheus)");
        let p = Self { child, port };
        assert!(
            wait_until(DEADLINE, || http_get(port, "/-/ready")
                .is_some_and(|(s, _)| s == 200)),
            "prometheus did not become ready; log:\n{}",
            std::fs::read_to_string(dir.join("log")).unwrap_or_default()
        );
        p
    }

    /// GET an API path; returns the parsed `data` of a successful answer, or the error text.
    pub fn api(&self, path_and_query: &str) -> Result<Value, String> {
        let (status, body) = http_get(self.port, path_and_query).ok_or("no answer")?;
        let v: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
        if status != 200 || v["status"] != "success" {
            return Err(format!("{status}: {body}"));
        }
        Ok(v["data"].clone())
    }

    pub fn query_range(
        &self,
        expr: &str,
        start: f64,
        end: f64,
        step: &str,
    ) -> Result<Value, String> {
        self.api(&format!(
            "/api/v1/query_range?query={}&start={start}&end={end}&step={step}",
            encode(expr)
        ))
    }

    /// The alerts Prometheus holds now: (alertname, state, labels).
    pub fn alerts(&self) -> Vec<(String, String, Value)> {
        let data = self.api("/api/v1/alerts").unwrap_or_default();
        data["alerts"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| {
                        (
                            x["labels"]["alertname"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned(),
                            x["state"].as_str().unwrap_or_default().to_owned(),
                            x["labels"].clone(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes a query parameter value.
pub fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Renders the mixin (`mixin/render.sh`) into a fresh folder with these `_config` overrides
/// (jsonnet, e.g. `selector: 'job="docker"'`); returns the folder, which holds `alerts/` and
/// `dashboards/` as the repository does.
pub fn render_mixin(repo: &Path, config: &str) -> std::path::PathBuf {
    let out = super::tempdir("mixin");
    let overrides = format!("{{ _config+:: {{ {config} }} }}");
    let render = repo.join("mixin/render.sh");
    super::run_ok(
        render.to_str().expect("utf-8"),
        &[out.to_str().expect("utf-8"), &overrides],
    );
    out
}

/// The mixin's rules with every `for` at 0s and the thresholds in `config` (jsonnet fields of
/// `_config`), so a test need not wait minutes for an alert to go from pending to firing.
pub fn rules_for_test(repo: &Path, config: &str) -> String {
    let out = render_mixin(
        repo,
        &format!("'for': std.mapWithKey(function(alert, for_) '0s', super['for']), {config}"),
    );
    std::fs::read_to_string(out.join("alerts/docker-events-exporter.rules.yml")).expect("rules")
}
