//! Our own image, run as the README and the Dockerfile say: built with no pull by
//! scripts/image.sh from this test run's binary under the Dockerfile's own runtime stage, run as
//! its non-root user with the socket's group and the socket read-only, on a read-only root
//! filesystem, its state file and history in a volume; and the compose file's exporter service.

use crate::support::{
    Cleanup, DEADLINE, Scrape, container_labels, docker, docker_output, free_port, http_get,
    repo_root, run_exiting, run_ok, test_image, unique, wait_until,
};

const TAG: &str = "docker-events-exporter:test";
const STATE: &str = "/var/lib/docker-events-exporter";

/// The image, built once per test run from the binary under test.
fn image() -> &'static str {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let out = std::process::Command::new("bash")
            .arg(repo_root().join("scripts/image.sh"))
            .arg(TAG)
            .env("BIN", env!("CARGO_BIN_EXE_docker-events-exporter"))
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "scripts/image.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    TAG
}

/// The metrics on `port`, once they answer.
fn scrape(port: u16) -> Scrape {
    let mut text = None;
    let ok = wait_until(DEADLINE, || {
        text = http_get(port, "/metrics")
            .filter(|(s, _)| *s == 200)
            .map(|(_, t)| t);
        text.is_some()
    });
    assert!(ok, "no metrics on {port}");
    Scrape::parse(&text.unwrap_or_default())
}

/// Waits until the exporter on `port` counts `name`'s exit with `code` as `want`.
fn wait_exit(port: u16, name: &str, code: &str, want: f64) {
    let labels = container_labels(name, &[("exit_code", code)]);
    let ok = wait_until(DEADLINE, || {
        scrape(port).value("docker_container_exits_total", &labels) == Some(want)
    });
    assert!(
        ok,
        "{name}'s exit {code}: {:?}",
        scrape(port).value("docker_container_exits_total", &labels)
    );
}

fn inspect(name: &str, format: &str) -> String {
    docker(&["inspect", "-f", format, name])
}

/// The Dockerfile's runtime stage is the image's: its user, port, entrypoint and healthcheck.
#[test]
fn the_image_is_the_dockerfiles_runtime_stage() {
    let dockerfile =
        std::fs::read_to_string(repo_root().join("Dockerfile")).expect("the Dockerfile");
    let stage = dockerfile.rsplit("\nFROM ").next().unwrap_or_default();
    let after = |key: &str| {
        stage
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    let image = image();
    let config = |f: &str| docker(&["image", "inspect", "-f", f, image]);
    assert_eq!(config("{{.Config.User}}"), after("USER "));
    assert_eq!(
        config("{{range $p, $_ := .Config.ExposedPorts}}{{$p}}{{end}}"),
        format!("{}/tcp", after("EXPOSE "))
    );
    let entrypoint: Vec<String> = serde_json::from_str(&after("ENTRYPOINT ")).expect("JSON");
    assert_eq!(
        config("{{json .Config.Entrypoint}}"),
        serde_json::to_string(&entrypoint).expect("JSON")
    );
    let check: Vec<String> = serde_json::from_str(&after("    CMD ")).expect("JSON");
    let mut want = vec!["CMD".to_owned()];
    want.extend(check);
    assert_eq!(
        config("{{json .Config.Healthcheck.Test}}"),
        serde_json::to_string(&want).expect("JSON")
    );
}

/// Run as the README says: `/metrics` counts a real exit; `docker stop` ends it with 0 within
/// the stop timeout, its state file and history written; started again while a container
/// exited, it counts that exit once and the first not again; its healthcheck turns healthy.
#[test]
fn the_image_runs_non_root_read_only_and_resumes_from_its_volume() {
    let image = image();
    let name = unique("image");
    let volume = unique("image-state");
    let (a, b) = (unique("image-a"), unique("image-b"));
    let _c = Cleanup(vec![name.clone(), a.clone(), b.clone()]);
    let _v = RemoveVolume(volume.clone());
    let gid = run_ok("stat", &["-c", "%g", "/var/run/docker.sock"])
        .trim()
        .to_owned();
    let port = free_port();
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--group-add",
        &gid,
        "--read-only",
        "-v",
        "/var/run/docker.sock:/var/run/docker.sock:ro",
        "-v",
        &format!("{volume}:{STATE}"),
        "-p",
        &format!("127.0.0.1:{port}:10050"),
        "--health-interval",
        "1s",
        image,
        "--docker.state-file",
        &format!("{STATE}/state.json"),
        "--history.dir",
        &format!("{STATE}/history"),
    ]);
    assert_eq!(
        inspect(&name, "{{.Config.User}}"),
        "65532:65532",
        "non-root"
    );
    scrape(port);
    run_exiting(&a, "3");
    wait_exit(port, &a, "3", 1.0);
    let healthy = wait_until(DEADLINE, || {
        inspect(&name, "{{.State.Health.Status}}") == "healthy"
    });
    assert!(
        healthy,
        "health: {}",
        inspect(&name, "{{json .State.Health}}")
    );

    // Within the timeout: past it the engine kills it, and it exits with 137.
    docker(&["stop", "-t", "10", &name]);
    assert_eq!(
        inspect(&name, "{{.State.ExitCode}}"),
        "0",
        "a clean drain on SIGTERM"
    );
    let files = docker(&[
        "run",
        "--rm",
        "-v",
        &format!("{volume}:/d"),
        test_image(),
        "sh",
        "-c",
        "test -s /d/state.json && ls /d/history | wc -l",
    ]);
    assert_ne!(files.trim(), "0", "the history's segments are written");

    run_exiting(&b, "4");
    docker(&["start", &name]);
    wait_exit(port, &b, "4", 1.0);
    let s = scrape(port);
    assert_eq!(
        s.value(
            "docker_container_exits_total",
            &container_labels(&a, &[("exit_code", "3")])
        ),
        None,
        "the exit before the stop is not counted again"
    );
}

/// The compose file's exporter service, brought up with docker-compose (the image under the
/// name it gives, nothing built) and scraped on its port.
#[test]
fn the_compose_files_exporter_service_runs_and_counts() {
    let image = image();
    docker(&["tag", image, "docker-events-exporter:latest"]);
    let project = unique("compose");
    let gid = run_ok("stat", &["-c", "%g", "/var/run/docker.sock"])
        .trim()
        .to_owned();
    let compose = |args: &[&str]| {
        std::process::Command::new("docker-compose")
            .current_dir(repo_root())
            .env("DOCKER_GID", &gid)
            .args(["-p", &project, "-f", "docker-compose.yml"])
            .args(args)
            .output()
            .expect("docker-compose runs")
    };
    let _ = docker_output(&["rm", "-f", "docker-events-exporter"]);
    let _down = Down(Box::new({
        let project = project.clone();
        move || {
            let _ = std::process::Command::new("docker-compose")
                .current_dir(repo_root())
                .args(["-p", &project, "-f", "docker-compose.yml", "down", "-v"])
                .output();
        }
    }));
    let up = compose(&["up", "-d", "--no-build", "exporter"]);
    assert!(
        up.status.success(),
        "docker-compose up: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    let a = unique("compose-a");
    let _c = Cleanup(vec![a.clone()]);
    scrape(10050);
    run_exiting(&a, "5");
    wait_exit(10050, &a, "5", 1.0);
}

struct RemoveVolume(String);

impl Drop for RemoveVolume {
    fn drop(&mut self) {
        let _ = docker_output(&["volume", "rm", "-f", &self.0]);
    }
}

/// Runs its closure when dropped, also when the test panics.
struct Down(Box<dyn FnMut()>);

impl Drop for Down {
    fn drop(&mut self) {
        (self.0)();
    }
}
