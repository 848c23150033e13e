//! A real Alertmanager (Debian's prometheus-alertmanager) on loopback, read back with amtool.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use super::{DEADLINE, free_port, tempdir, wait_until};

pub struct Alertmanager {
    child: Child,
    pub port: u16,
    dir: PathBuf,
}

impl Alertmanager {
    /// Starts one with a receiver that sends nowhere; fails loudly if it cannot.
    pub fn start() -> Self {
        let dir = tempdir("alertmanager");
        let config = dir.join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: nowhere\n  group_wait: 1s\nreceivers:\n  - name: nowhere\n",
        )
        .expect("write config");
        let port = free_port();
        let child = Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // No cluster: nothing listens beyond this port.
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("log")).expect("log file"))
            .spawn()
            .expect("prometheus-alertmanager runs (apt-get install prometheus-alertmanager)");
        let am = Self { child, port, dir };
        assert!(
            wait_until(DEADLINE, || am.amtool(&["config", "show"]).is_ok()),
            "Alertmanager answers: {}",
            am.log()
        );
        am
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// amtool with this Alertmanager's URL; its standard output, or why it failed.
    pub fn amtool(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("amtool")
            .arg(format!("--alertmanager.url={}", self.url()))
            .args(args)
            .output()
            .map_err(|e| format!("amtool: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// `amtool alert query -o json` with `args` (flags and matchers).
    pub fn query(&self, args: &[&str]) -> Vec<Value> {
        let mut all = vec!["alert", "query", "-o", "json"];
        all.extend_from_slice(args);
        let out = self.amtool(&all).expect("amtool alert query");
        serde_json::from_str::<Vec<Value>>(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
