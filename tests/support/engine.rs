//! A Docker Engine of the test's own: a second `dockerd` with its own socket, data and exec
//! roots and its own bridge, so that a test may stop and start it without touching the engine
//! the other tests use. No iptables rules; its containers run with `--network none`.
//! (`--bridge none` would not do: a dockerd started so deletes the host's `docker0`.)

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{IMAGE, docker_output, tempdir, test_image, unique, wait_until};

/// Private engines started by this test process: each gets its own bridge and /24 (from
/// 172.31.240.0/24 up, unlikely to be in use).
static STARTED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

pub struct PrivateEngine {
    dir: PathBuf,
    bridge: String,
    exec_root: PathBuf,
    child: Option<Child>,
}

impl PrivateEngine {
    /// Starts it and loads the test image into it.
    pub fn start() -> Self {
        let dir = tempdir("engine");
        // containerd's sockets live under the exec root, and unix socket paths are short.
        let exec_root = PathBuf::from(format!("/tmp/{}", unique("x")));
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        assert!(n < 15, "more private engines than subnets set aside");
        let bridge = format!("deebr{}-{n}", std::process::id() % 100_000);
        let address = format!("172.31.{}.1/24", 240 + n);
        let ip = |args: &[&str]| {
            let out = Command::new("ip")
                .args(args)
                .output()
                .expect("ip runs (iproute2)");
            assert!(
                out.status.success(),
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        ip(&["link", "add", &bridge, "type", "bridge"]);
        ip(&["addr", "add", &address, "dev", &bridge]);
        let mut e = Self {
            dir,
            bridge,
            exec_root,
            child: None,
        };
        e.up();
        let image = test_image();
        let ok = Command::new("sh")
            .args([
                "-c",
                &format!("docker save {image} | docker -H {} load", e.host()),
            ])
            .status()
            .expect("sh runs");
        assert!(ok.success(), "loading {IMAGE} into the private engine");
        e
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// `docker run -d --network none --name NAME IMAGE sh -c CMD` on this engine.
    pub fn run(&self, name: &str, cmd: &str) {
        run_at(&self.host(), name, cmd);
    }

    /// `docker -H <this engine> ARGS`; panics with stderr on failure.
    pub fn docker(&self, args: &[&str]) -> String {
        super::docker_at(&self.host(), args)
    }

    /// Starts dockerd and waits until it answers.
    pub fn up(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("dockerd.log"))
            .expect("dockerd log");
        // Its own (empty) config file: the machine's /etc/docker/daemon.json would clash with
        // the flags. vfs storage works anywhere and the test image is 2 MB.
        let config = self.dir.join("daemon.json");
        std::fs::write(&config, "{}").expect("write daemon.json");
        let child = Command::new("dockerd")
            .arg("--config-file")
            .arg(&config)
            .args(["--storage-driver", "vfs"])
            .arg("--host")
            .arg(self.host())
            .arg("--data-root")
            .arg(self.dir.join("root"))
            .arg("--exec-root")
            .arg(&self.exec_root)
            .arg("--pidfile")
            .arg(self.dir.join("dockerd.pid"))
            .arg("--bridge")
            .arg(&self.bridge)
            .args([
                "--iptables=false",
                "--ip-masq=false",
                "--shutdown-timeout",
                "1",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("dockerd runs (apt-get install docker.io)");
        self.child = Some(child);
        let host = self.host();
        let mut exited = false;
        let ok = wait_until(Duration::from_secs(60), || {
            exited = self
                .child
                .as_mut()
                .is_some_and(|c| c.try_wait().ok().flatten().is_some());
            exited || docker_output(&["-H", &host, "info"]).status.success()
        });
        assert!(!exited, "the private dockerd exited; log:\n{}", self.log());
        assert!(
            ok,
            "the private dockerd did not answer; log:\n{}",
            self.log()
        );
    }

    /// Stops dockerd (SIGTERM: it stops its containers) and waits until it has exited.
    pub fn down(&mut self) {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let ok = wait_until(Duration::from_secs(60), || {
            child.try_wait().ok().flatten().is_some()
        });
        assert!(ok, "the private dockerd did not stop; log:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default();
        super::tail(&log, 40)
    }
}

/// `docker run -d --network none --name NAME IMAGE sh -c CMD` on the engine at `host` (the
/// test image: loaded into every private engine).
pub fn run_at(host: &str, name: &str, cmd: &str) {
    super::docker_at(
        host,
        &[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            name,
            IMAGE,
            "sh",
            "-c",
            cmd,
        ],
    );
}

impl Drop for PrivateEngine {
    fn drop(&mut self) {
        if self.child.is_some() {
            let host = self.host();
            // Its containers go with it: remove them first so no mount is left behind.
            let ids = docker_output(&["-H", &host, "ps", "-aq"]);
            for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
                let _ = docker_output(&["-H", &host, "rm", "-f", id]);
            }
            self.down();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_dir_all(&self.exec_root);
    }
}
