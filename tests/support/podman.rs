//! A Podman of the test's own, serving the Docker API (`podman system service --time=0
//! unix://PATH`) from its own storage, run and tmp directories and `containers.conf`: its
//! containers, images and event log are the test's alone, and the test may stop and start the
//! service while its containers (and the `podman` CLI, which writes the same event log) go on.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use super::{docker_at, docker_output, stdout_of, test_image_root, unique, wait_until};

/// The image its containers run: the test image's busybox, imported with `podman import`.
pub const PODMAN_IMAGE: &str = "localhost/dee-test-busybox:latest";

/// On this kind of machine runc may not raise a container's limits above the service's own,
/// and Podman's defaults ask for more: `default_ulimits` sets them below.
const CONTAINERS_CONF: &str = r#"[containers]
default_ulimits = ["nproc=4096:4096", "nofile=4096:4096"]
[engine]
events_logger = "file"
cgroup_manager = "cgroupfs"
"#;

pub struct Podman {
    dir: PathBuf,
    child: Option<Child>,
}

impl Podman {
    /// Starts the service and imports the test image into its storage.
    pub fn start() -> Self {
        // The socket's path must fit in a sockaddr_un: a short directory of its own in /tmp.
        let dir = PathBuf::from(format!("/tmp/{}", unique("pm")));
        std::fs::create_dir_all(&dir).expect("create the podman directory");
        std::fs::write(dir.join("containers.conf"), CONTAINERS_CONF).expect("containers.conf");
        let mut p = Self { dir, child: None };
        let root = test_image_root();
        let tar = p.dir.join("image.tar");
        let ok = Command::new("tar")
            .arg("-C")
            .arg(root)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .expect("tar runs");
        assert!(ok.success(), "packing the test image");
        p.podman(&[
            "import",
            "-c",
            "CMD [\"/bin/sh\"]",
            "-c",
            "ENV PATH=/bin",
            tar.to_str().expect("a UTF-8 path"),
            PODMAN_IMAGE,
        ]);
        p.up();
        p
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.join("api.sock").display())
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new("podman");
        cmd.env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("run"))
            .arg("--tmpdir")
            .arg(self.dir.join("tmp"))
            .args(["--storage-driver", "vfs"])
            .stdin(Stdio::null());
        cmd
    }

    pub fn podman_output(&self, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .output()
            .expect("podman runs (apt-get install podman)")
    }

    /// `podman ARGS` on this Podman's storage; panics with stderr on failure.
    pub fn podman(&self, args: &[&str]) -> String {
        stdout_of("podman", args, &self.podman_output(args))
    }

    /// `docker -H <this service> ARGS`, as a Docker user would drive it.
    pub fn docker_output(&self, args: &[&str]) -> Output {
        let host = self.host();
        let mut all = vec!["-H", host.as_str()];
        all.extend_from_slice(args);
        docker_output(&all)
    }

    /// The same; panics with stderr on failure.
    pub fn docker(&self, args: &[&str]) -> String {
        docker_at(&self.host(), args)
    }

    /// Starts the service and waits until it answers.
    pub fn up(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("service.log"))
            .expect("service log");
        let child = self
            .command()
            .args(["system", "service", "--time=0", &self.host()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("podman runs (apt-get install podman)");
        self.child = Some(child);
        let host = self.host();
        let ok = wait_until(Duration::from_secs(30), || {
            docker_output(&["-H", &host, "version"]).status.success()
        });
        assert!(
            ok,
            "podman system service did not answer; log:\n{}",
            self.log()
        );
    }

    /// Stops the service (its containers go on under conmon) and waits until it has exited.
    pub fn down(&mut self) {
        let mut child = self.child.take().expect("running");
        let _ = child.kill();
        let _ = child.wait();
    }

    pub fn log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("service.log")).unwrap_or_default();
        super::tail(&log, 40)
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.podman_output(&["rm", "-f", "-a", "-t", "0"]);
        if self.child.is_some() {
            self.down();
        }
        let _ = self.podman_output(&["system", "reset", "-f"]);
        // An exec's conmon may outlive its removed container.
        let _ = Command::new("pkill")
            .arg("-f")
            .arg(format!("conmon.*{}/", self.dir.display()))
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
