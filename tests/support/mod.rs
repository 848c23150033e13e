//! Helpers for tests against the real Docker Engine: the docker CLI, a local test image, unique
//! names with clean-up guards, the exporter as a child process, and scraping with deadlines.

#![allow(dead_code)]

pub mod alertmanager;
pub mod capture;
pub mod chromium;
pub mod engine;
pub mod fake_engine;
pub mod podman;
pub mod prometheus;
pub mod proxy;
pub mod registry;
pub mod sshd;
pub mod stores;
pub mod swarm;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The image every test container runs: busybox-static imported into the engine, because no
/// image can be pulled here.
pub const IMAGE: &str = "dee-test-busybox:latest";
/// How long a test waits for something the engine does in a second or two.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Runs `docker ARGS` and returns its stdout; panics with stderr on failure.
pub fn docker(args: &[&str]) -> String {
    stdout_of("docker", args, &docker_output(args))
}

/// The times (`timeNano`) of the events the engine at `host` holds from `since` until now that
/// pass `filters` (`docker events --filter` values: `event=die`, `container=ID`).
pub fn event_times(host: &str, since: &str, filters: &[&str]) -> Vec<i64> {
    let until = now_secs();
    let mut args = vec!["events", "--since", since, "--until", &until];
    for f in filters {
        args.extend(["--filter", f]);
    }
    args.extend(["--format", "{{.TimeNano}}"]);
    docker_at(host, &args)
        .lines()
        .map(|t| t.parse().expect("a timeNano"))
        .collect()
}

/// `docker -H HOST ARGS`: the docker CLI against another engine; panics on failure.
pub fn docker_at(host: &str, args: &[&str]) -> String {
    let mut all = vec!["-H", host];
    all.extend_from_slice(args);
    docker(&all)
}

/// The trimmed stdout of `cmd ARGS` that ended as `out`; panics with its stderr if it failed.
pub fn stdout_of(cmd: &str, args: &[&str], out: &Output) -> String {
    assert!(
        out.status.success(),
        "{cmd} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

pub fn docker_output(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the docker CLI runs (install docker.io)")
}

/// Builds the test image once per test run if the engine lacks it.
pub fn test_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        if docker_output(&["image", "inspect", IMAGE]).status.success() {
            return;
        }
        let script = format!(
            "tar -C {} -c . | docker import -c 'CMD [\"/bin/sh\"]' -c 'ENV PATH=/bin' - {IMAGE}",
            test_image_root().display()
        );
        run_ok("sh", &["-c", &script]);
    });
    IMAGE
}

/// The test image's files, made once per test run: busybox-static with a link for each of
/// its applets.
pub fn test_image_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let busybox = ["/usr/bin/busybox", "/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("busybox-static is installed (apt-get install busybox-static)");
        let root = tempdir("image");
        let script = format!(
            "set -e; mkdir -p {r}/bin {r}/tmp; cp {b} {r}/bin/busybox; \
             for a in $({b} --list); do [ \"$a\" = busybox ] || ln -s busybox {r}/bin/$a; done",
            r = root.display(),
            b = busybox
        );
        run_ok("sh", &["-c", &script]);
        root
    })
}

/// A name no other test (or earlier run) uses.
pub fn unique(what: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "dee-{what}-{}-{}-{nanos:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn tempdir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique(what));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Writes a rules file (`--config`) into `dir`; its path.
pub fn rules_config(dir: &Path, yaml: &str) -> PathBuf {
    let path = dir.join("rules.yml");
    std::fs::write(&path, yaml).expect("write config");
    path
}

/// The count of `rule`'s `action` with `outcome`, if the exporter has that series.
pub fn actions(e: &Exporter, rule: &str, action: &str, outcome: &str) -> Option<f64> {
    e.value(
        "docker_events_exporter_actions_total",
        &[("rule", rule), ("action", action), ("outcome", outcome)],
    )
}

/// Removes the named containers when dropped, also when the test panics.
pub struct Cleanup(pub Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = docker_output(&["rm", "-f", "-v", name]);
        }
    }
}

/// Removes the named image when dropped.
pub struct RemoveImage(pub String);

impl Drop for RemoveImage {
    fn drop(&mut self) {
        let _ = docker_output(&["rmi", "-f", &self.0]);
    }
}

/// A TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// The exporter binary running as a child process; killed when dropped.
pub struct Exporter {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl Exporter {
    /// Starts the exporter against the local engine and waits until it is subscribed.
    pub fn start(args: &[&str]) -> Self {
        Self::start_with_env(args, &[])
    }

    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        let e = Self::spawn(args, env);
        e.wait_ready();
        e
    }

    /// Starts the exporter as an unprivileged user (65534, "nobody") when the tests run as
    /// root, and waits until it is ready. (Run as non-root, the tests are unprivileged already.)
    pub fn start_unprivileged(args: &[&str], env: &[(&str, &str)]) -> Self {
        let e = Self::spawn_with(args, env, true);
        e.wait_ready();
        e
    }

    /// Starts the exporter without waiting for it to be ready.
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn_with(args, env, false)
    }

    fn spawn_with(args: &[&str], env: &[(&str, &str)], unprivileged: bool) -> Self {
        use std::os::unix::process::CommandExt as _;
        let port = free_port();
        let log = std::env::temp_dir().join(format!("{}.log", unique("exporter")));
        let listen = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_docker-events-exporter"));
        if unprivileged && nix_is_root() {
            // std drops the supplementary groups too when root sets a uid.
            cmd.uid(NOBODY).gid(NOBODY);
        }
        let child = cmd
            .args(["--web.listen-address", &listen, "--log.level", "debug"])
            .args(args)
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_TLS_VERIFY")
            // No context of the machine's CLI: the engine is the default socket unless a test
            // says otherwise.
            .env_remove("DOCKER_CONTEXT")
            .env("DOCKER_CONFIG", empty_docker_config())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("create log file"))
            .spawn()
            .expect("start the exporter");
        Self { child, port, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn wait_ready(&self) {
        let ok = wait_until(DEADLINE, || {
            http_get(self.port, "/-/ready").is_some_and(|(status, _)| status == 200)
        });
        assert!(
            ok,
            "exporter not ready within {DEADLINE:?}; log:\n{}",
            self.log()
        );
    }

    pub fn scrape(&self) -> Scrape {
        self.try_scrape().unwrap_or_else(|why| {
            panic!(
                "scrape /metrics failed ({why}): {}; log tail:\n{}",
                self.why_silent(),
                tail(&self.log(), 30)
            )
        })
    }

    /// A scrape, or why there was none.
    pub fn try_scrape(&self) -> Result<Scrape, String> {
        let (status, body) = http_get_why(self.port, "/metrics")?;
        assert_eq!(status, 200, "{body}");
        Ok(Scrape::parse(&body))
    }

    /// Why the exporter did not answer: it exited, or (alive) where its threads are, as gdb
    /// sees them.
    fn why_silent(&self) -> String {
        let pid = self.child.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let state = status
            .lines()
            .find_map(|l| l.strip_prefix("State:"))
            .map(str::trim);
        match state {
            None | Some("Z (zombie)") => format!("the exporter (pid {pid}) has exited"),
            Some(state) => {
                let bt = Command::new("gdb")
                    .args([
                        "-p",
                        &pid.to_string(),
                        "-batch",
                        "-ex",
                        "thread apply all bt 30",
                    ])
                    .output();
                let bt = match bt {
                    Ok(out) => tail(&String::from_utf8_lossy(&out.stdout), 150),
                    Err(e) => format!("(no backtrace: gdb: {e})"),
                };
                format!("the exporter (pid {pid}) is alive ({state}); its threads:\n{bt}")
            }
        }
    }

    /// The value of one series, or None if absent.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.scrape().value(name, labels)
    }

    /// Waits until the series has exactly `want`, then returns; panics with the last value seen.
    /// A scrape that fails on the way is tried again (a loaded machine can leave one
    /// unanswered); if the last one failed too, the panic says why and where the exporter is.
    pub fn wait_for(&self, name: &str, labels: &[(&str, &str)], want: f64) {
        let mut last = Ok(None);
        let ok = wait_until(DEADLINE, || {
            last = self.try_scrape().map(|s| s.value(name, labels));
            last == Ok(Some(want))
        });
        if ok {
            return;
        }
        let silent = match &last {
            Err(_) => format!("; {}", self.why_silent()),
            Ok(_) => String::new(),
        };
        panic!(
            "{name}{labels:?}: wanted {want}, last saw {last:?} within {DEADLINE:?}{silent}; log tail:\n{}",
            tail(&self.log(), 30)
        );
    }

    /// Waits until the series is gone.
    pub fn wait_absent(&self, name: &str, labels: &[(&str, &str)]) {
        let ok = wait_until(Duration::from_secs(60), || {
            self.value(name, labels).is_none()
        });
        assert!(ok, "{name}{labels:?} still present");
    }

    /// Sends SIGTERM and returns the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the exporter") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "exporter did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// The unprivileged user and group the exporter image runs as too.
pub const NOBODY: u32 = 65534;

pub fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Polls `cond` every 50 ms until it holds or `deadline` passes.
pub fn wait_until(deadline: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A minimal HTTP/1.0 GET on 127.0.0.1: (status, body). None if nothing listens yet.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http_get_why(port, path).ok()
}

/// The same, or which step failed and how.
pub fn http_get_why(port: u16, path: &str) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| format!("set a read timeout: {e}"))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| format!("read, after {} bytes: {e}", raw.len()))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP head in the {} bytes answered", raw.len()))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    Ok((status, body.to_owned()))
}

/// A parsed scrape: (name, labels) -> value.
pub struct Scrape {
    pub series: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Scrape {
    pub fn parse(text: &str) -> Self {
        let mut series = Vec::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (name, rest) = match line.find('{') {
                Some(i) => (&line[..i], &line[i..]),
                None => line.split_at(line.find(' ').expect("a value")),
            };
            let mut labels = BTreeMap::new();
            let mut rest = rest;
            if let Some(r) = rest.strip_prefix('{') {
                let mut chars = r.char_indices();
                let mut end = 0;
                while let Some((start, c)) = chars.next() {
                    if c == '}' {
                        end = start + 1;
                        break;
                    }
                    if c == ',' {
                        continue;
                    }
                    let mut key = String::from(c);
                    for (_, c) in chars.by_ref() {
                        if c == '=' {
                            break;
                        }
                        key.push(c);
                    }
                    chars.next(); // opening quote
                    let mut value = String::new();
                    while let Some((_, c)) = chars.next() {
                        match c {
                            '\\' => match chars.next().map(|(_, c)| c) {
                                Some('n') => value.push('\n'),
                                Some(other) => value.push(other),
                                None => {}
                            },
                            '"' => break,
                            c => value.push(c),
                        }
                    }
                    labels.insert(key, value);
                }
                rest = &r[end..];
            }
            let value: f64 = rest.trim().parse().unwrap_or(f64::NAN);
            series.push((name.to_owned(), labels, value));
        }
        Self { series }
    }

    /// The value of the one series with exactly these labels.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.series
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && l.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).is_some_and(|x| x == v))
            })
            .map(|(_, _, v)| *v)
    }

    /// Asserts that a resume lost nothing: no gap reported, and at least `min_replayed`
    /// events recovered from the engine's buffer (`what` says which).
    pub fn assert_resumed_without_gap(&self, min_replayed: f64, what: &str) {
        assert_eq!(
            self.value("docker_events_exporter_stream_gaps_total", &[]),
            Some(0.0)
        );
        let replayed = self
            .value("docker_events_exporter_replayed_events_total", &[])
            .unwrap_or_default();
        assert!(replayed >= min_replayed, "{what} replayed, saw {replayed}");
    }

    /// Every series of `name` whose labels include these.
    pub fn matching(
        &self,
        name: &str,
        labels: &[(&str, &str)],
    ) -> Vec<(BTreeMap<String, String>, f64)> {
        self.series
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).is_some_and(|x| x == v))
            })
            .map(|(_, l, v)| (l.clone(), *v))
            .collect()
    }
}

/// The labels of a plain container (no compose labels) plus extras.
pub fn container_labels<'a>(
    name: &'a str,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut l = vec![
        ("name", name),
        ("image", IMAGE),
        ("compose_project", ""),
        ("compose_service", ""),
        ("swarm_service", ""),
        ("swarm_stack", ""),
    ];
    l.extend_from_slice(extra);
    l
}

/// Starts `sleep 300` in a container whose healthcheck (`true`, every second) passes.
pub fn run_healthy(name: &str) {
    docker(&[
        "run",
        "-d",
        "--name",
        name,
        "--health-cmd",
        "true",
        "--health-interval",
        "1s",
        test_image(),
        "sleep",
        "300",
    ]);
}

/// Starts a container whose health probe `probe` runs every second and marks it unhealthy at
/// its first failure; it runs `command`.
pub fn run_probed(name: &str, probe: &str, command: &[&str]) {
    let mut args = vec![
        "run",
        "-d",
        "--name",
        name,
        "--health-cmd",
        probe,
        "--health-interval",
        "1s",
        "--health-retries",
        "1",
        test_image(),
    ];
    args.extend_from_slice(command);
    docker(&args);
}

/// Starts a container that is unhealthy from its first probe (and again after each restart)
/// until [`make_healthy`].
pub fn run_unhealthy(name: &str) {
    run_probed(
        name,
        "test ! -e /tmp/bad",
        &["sh", "-c", "touch /tmp/bad; exec sleep 300"],
    );
}

/// Lets a container of [`run_unhealthy`] pass its probes.
pub fn make_healthy(name: &str) {
    docker(&["exec", name, "rm", "/tmp/bad"]);
}

/// `docker run -d --name NAME IMAGE sh -c "exit CODE"`: a container that exits with `code`.
pub fn run_exiting(name: &str, code: &str) {
    docker(&[
        "run",
        "-d",
        "--name",
        name,
        test_image(),
        "sh",
        "-c",
        &format!("exit {code}"),
    ]);
}

/// A docker CLI configuration folder with nothing in it, made once per test run.
pub fn empty_docker_config() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| tempdir("docker-config"))
}

/// Debian's Python: the one python3-aiosmtpd installs into.
pub const PYTHON: &str = "/usr/bin/python3";
/// Appends its arguments after the first, as one JSON array per line, to the file named first.
pub const RECORD_ARGV: &str =
    "import json,sys; print(json.dumps(sys.argv[2:]), file=open(sys.argv[1], 'a'))";

/// The lines of the file at `path` (none if it is not there yet).
pub fn file_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The argument lists a [`RECORD_ARGV`] command wrote to `path`, in order.
pub fn recorded_argv(path: &Path) -> Vec<Vec<String>> {
    file_lines(path)
        .iter()
        .map(|l| serde_json::from_str(l).expect("a JSON array"))
        .collect()
}

/// The `Action` of each event a `log` action wrote to `path`, in order.
pub fn logged_actions(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            v["Action"].as_str().unwrap_or_default().to_owned()
        })
        .collect()
}

/// Starts a container that the kernel OOM-kills within a second: busybox `tail` buffers the
/// endless line of /dev/zero until the 8 MiB limit (no swap) kills it (exit code 137,
/// `OOMKilled`, an `oom` event before its `die`). It waits a second first: containerd's shim
/// watches a container's cgroup for OOM only once the container has started, and under load
/// a kill in between is one the engine never reports (containerd/containerd#8180; seen here
/// twice in a day of parallel runs: the kernel's log had the kill, the engine no `oom`).
pub fn run_oom_killed(name: &str) {
    docker(&[
        "run",
        "-d",
        "--name",
        name,
        "-m",
        "8m",
        "--memory-swap",
        "8m",
        test_image(),
        "sh",
        "-c",
        "sleep 1; exec tail /dev/zero",
    ]);
}

/// The container's IP address, as `docker inspect` gives it (empty without one).
pub fn container_ip(name: &str) -> String {
    docker(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        name,
    ])
}

/// Waits until `docker inspect` shows the container in `status` (e.g. "exited").
pub fn wait_status(name: &str, status: &str) {
    let mut last = String::new();
    let ok = wait_until(DEADLINE, || {
        last = docker(&["inspect", "-f", "{{.State.Status}}", name]);
        last == status
    });
    assert!(ok, "{name}: wanted status {status}, last {last}");
}

/// The engine's own count of events for a container between two times (seconds since the
/// epoch), filtered by event name, with an optional attribute value to match.
pub fn engine_event_count(
    name: &str,
    since: &str,
    until: &str,
    event: &str,
    attr: Option<(&str, &str)>,
) -> usize {
    let out = docker(&[
        "events",
        "--since",
        since,
        "--until",
        until,
        "--filter",
        &format!("container={name}"),
        "--filter",
        &format!("event={event}"),
        "--format",
        "{{json .Actor.Attributes}}",
    ]);
    out.lines()
        .filter(|l| !l.is_empty())
        .filter(|l| match attr {
            None => true,
            Some((k, v)) => l.contains(&format!("\"{k}\":\"{v}\"")),
        })
        .count()
}

/// Two event lists alike, or a message that says where they part: their lengths, and the
/// first place they differ.
#[track_caller]
pub fn assert_same<T: PartialEq + std::fmt::Debug>(got: &[T], want: &[T], what: &str) {
    if got == want {
        return;
    }
    let at = got
        .iter()
        .zip(want)
        .position(|(g, w)| g != w)
        .unwrap_or(got.len().min(want.len()));
    panic!(
        "{what}: {} events, not {}; first difference at {at}:\n  got:  {:?}\n  want: {:?}",
        got.len(),
        want.len(),
        got.get(at..(at + 3).min(got.len())),
        want.get(at..(at + 3).min(want.len()))
    );
}

/// The stdout of the exporter run as a command (`replay`, `events`, ...); panics with its
/// stderr if it failed.
pub fn exporter_stdout(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_docker-events-exporter"))
        .args(args)
        .output()
        .expect("run the exporter");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Seconds since the epoch, for `docker events --since/--until`.
pub fn now_secs() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Seconds since the epoch of an RFC 3339 time (as the engine writes them), read as the
/// exporter writes them: the exact decimal of its nanoseconds.
pub fn rfc3339_secs(rfc3339: &str) -> Option<f64> {
    let t = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()?;
    format!("{}.{:09}", t.unix_timestamp(), t.nanosecond())
        .parse()
        .ok()
}

/// Runs `cmd` in the repository and returns what it printed (standard output, then standard
/// error); panics with that text if it fails.
pub fn run_ok(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("{cmd} runs: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd} {args:?} failed:\n{text}");
    text
}
