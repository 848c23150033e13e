//! Several engines from one exporter: the local engine and two private dockerds, each watched
//! on its own and told apart by the `engine` label.

use crate::support::engine::{PrivateEngine, run_at as run};
use crate::support::{
    Cleanup, DEADLINE, Exporter, container_labels, docker_at, docker_output, event_times, http_get,
    now_secs, tempdir, test_image, unique, wait_until,
};

const LOCAL: &str = "unix:///var/run/docker.sock";

/// The container labels of `name` on the engine shown as `engine`.
fn on<'a>(engine: &'a str, name: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut l = vec![("engine", engine)];
    l.extend(container_labels(name, extra));
    l
}

/// `docker start -a NAME` on the engine at `host`: one more run, to its end with `code`.
fn run_again(host: &str, name: &str, code: i32) {
    let out = docker_output(&["-H", host, "start", "-a", name]);
    assert_eq!(
        out.status.code(),
        Some(code),
        "docker -H {host} start -a {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The engine's own account of one container: a `docker events` subscriber of its own,
/// started before the container is made (the engine's buffer of 256 events would lose the
/// early ones while other tests run). Stopped when dropped.
struct EngineAccount {
    child: std::process::Child,
    path: std::path::PathBuf,
}

impl EngineAccount {
    fn start(host: &str, name: &str, dir: &std::path::Path) -> Self {
        let path = dir.join(unique("events"));
        let child = std::process::Command::new("docker")
            .args(["-H", host, "events", "--filter"])
            .arg(format!("container={name}"))
            .args(["--format", "{{.Action}}"])
            .stdout(std::fs::File::create(&path).expect("events file"))
            .spawn()
            .expect("docker events runs");
        Self { child, path }
    }

    /// How many `action` events the engine has sent, once it has sent `want` (or the
    /// deadline passed).
    fn count(&self, action: &str, want: usize) -> f64 {
        let n = || {
            std::fs::read_to_string(&self.path)
                .unwrap_or_default()
                .lines()
                .filter(|l| *l == action)
                .count()
        };
        wait_until(DEADLINE, || n() >= want);
        n() as f64
    }
}

impl Drop for EngineAccount {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_same_name_on_two_engines_is_two_series_and_a_stopped_engine_changes_nothing_for_the_others()
{
    test_image();
    let (a, mut b) = (PrivateEngine::start(), PrivateEngine::start());
    let local_name = docker_at(LOCAL, &["info", "--format", "{{.Name}}"]);
    let twin = unique("twin");
    let _cleanup = Cleanup(vec![twin.clone()]);
    let dir = tempdir("engines");
    let accounts = [
        EngineAccount::start(LOCAL, &twin, &dir),
        EngineAccount::start(&a.host(), &twin, &dir),
    ];
    let exporter = Exporter::start(&[
        "--docker.ping-interval",
        "1s",
        // Unnamed: shown by its own name.
        "--docker.host",
        LOCAL,
        "--docker.host",
        &format!("a={}", a.host()),
        "--docker.host",
        &format!("b={}", b.host()),
    ]);
    for engine in [local_name.as_str(), "a", "b"] {
        exporter.wait_for("docker_events_exporter_up", &[("engine", engine)], 1.0);
    }

    run(LOCAL, &twin, "exit 3");
    run(&a.host(), &twin, "exit 3");
    run(&b.host(), "victim", "sleep 600");
    for engine in [local_name.as_str(), "a"] {
        exporter.wait_for(
            "docker_container_exits_total",
            &on(engine, &twin, &[("exit_code", "3")]),
            1.0,
        );
    }
    let s = exporter.scrape();
    assert_eq!(
        s.matching("docker_container_starts_total", &[("name", &twin)])
            .len(),
        2,
        "one series for each engine"
    );
    exporter.wait_for(
        "docker_container_state",
        &on("b", "victim", &[("state", "running")]),
        1.0,
    );

    // b goes down; the others go on, each counting exactly what its engine says happened.
    b.down();
    exporter.wait_for("docker_events_exporter_up", &[("engine", "b")], 0.0);
    assert_eq!(
        http_get(exporter.port, "/-/ready").map(|(status, _)| status),
        Some(200),
        "ready while two of the three engines are subscribed"
    );
    for _ in 0..2 {
        run_again(LOCAL, &twin, 3);
        run_again(&a.host(), &twin, 3);
    }
    for (engine, account) in [local_name.as_str(), "a"].into_iter().zip(&accounts) {
        let dies = account.count("die", 3);
        assert_eq!(dies, 3.0, "{engine}: the engine's own die events");
        exporter.wait_for(
            "docker_container_exits_total",
            &on(engine, &twin, &[("exit_code", "3")]),
            dies,
        );
        let s = exporter.scrape();
        assert_eq!(
            s.value("docker_container_starts_total", &on(engine, &twin, &[])),
            Some(account.count("start", 3)),
            "{engine}: starts"
        );
        for family in [
            "docker_events_exporter_stream_gaps_total",
            "docker_events_exporter_reconnects_total",
        ] {
            assert_eq!(
                s.value(family, &[("engine", engine)]),
                Some(0.0),
                "{engine}: {family}"
            );
        }
        assert_eq!(
            s.value("docker_events_exporter_up", &[("engine", engine)]),
            Some(1.0)
        );
    }

    // b comes back: its gap is counted, and its victim's death (no event told it) reconciled.
    b.up();
    exporter.wait_for("docker_events_exporter_up", &[("engine", "b")], 1.0);
    exporter.wait_for(
        "docker_events_exporter_stream_gaps_total",
        &[("engine", "b")],
        1.0,
    );
    let code = b.docker(&["inspect", "-f", "{{.State.ExitCode}}", "victim"]);
    exporter.wait_for(
        "docker_container_state",
        &on("b", "victim", &[("state", "exited")]),
        1.0,
    );
    exporter.wait_for(
        "docker_container_exits_total",
        &on("b", "victim", &[("exit_code", code.as_str())]),
        1.0,
    );
    let s = exporter.scrape();
    for engine in [local_name.as_str(), "a"] {
        assert_eq!(
            s.value(
                "docker_events_exporter_stream_gaps_total",
                &[("engine", engine)]
            ),
            Some(0.0),
            "{engine}: no gap of its own"
        );
    }
    assert!(
        s.value(
            "docker_events_exporter_reconciled_changes_total",
            &[("engine", "b")]
        )
        .is_some_and(|n| n >= 2.0),
        "the victim's exit and state"
    );
    let log = exporter.log();
    for what in [
        "events may have been lost while the stream was down",
        "reconciled: exited while the events were lost",
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains(what) && l.ends_with("engine=b")),
            "{what:?} is logged as b's; log:\n{log}"
        );
    }
    drop(accounts);
    let _ = std::fs::remove_dir_all(dir);
}

/// The engine's position in the state file.
fn saved_position(state: &std::path::Path, engine: &str) -> Option<i64> {
    let text = std::fs::read_to_string(state).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["engines"]
        .as_array()?
        .iter()
        .find(|e| e["engine"] == engine)?["position_nano"]
        .as_i64()
}

#[test]
fn a_sigkilled_exporter_resumes_every_engine_from_its_own_position() {
    test_image();
    let (a, b) = (PrivateEngine::start(), PrivateEngine::start());
    let dir = tempdir("engines-state");
    let state = dir.join("state.json");
    let args = [
        "--docker.state-file",
        state.to_str().expect("utf-8 path"),
        "--docker.host",
        &format!("a={}", a.host()),
        "--docker.host",
        &format!("b={}", b.host()),
    ];
    let since = now_secs();
    let first = Exporter::start(&args);
    for (engine, e) in [("a", &a), ("b", &b)] {
        run(&e.host(), "job", "exit 0");
        first.wait_for(
            "docker_container_exits_total",
            &on(engine, "job", &[("exit_code", "0")]),
            1.0,
        );
    }
    // Each engine's entry reaches its own die before the kill.
    for (engine, e) in [("a", &a), ("b", &b)] {
        let dies = event_times(&e.host(), &since, &["event=die"]);
        let [die] = dies[..] else {
            panic!("{engine}: one die, saw {dies:?}");
        };
        let ok = wait_until(DEADLINE, || {
            saved_position(&state, engine).is_some_and(|p| p >= die)
        });
        assert!(ok, "{engine} never saved past its die at {die}");
    }
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &first.pid().to_string()])
        .status();
    drop(first);

    // While no exporter watches: two runs on a, one on b.
    run_again(&a.host(), "job", 0);
    run_again(&a.host(), "job", 0);
    run_again(&b.host(), "job", 0);
    let second = Exporter::start(&args);
    for (engine, runs) in [("a", 2.0), ("b", 1.0)] {
        second.wait_for(
            "docker_container_exits_total",
            &on(engine, "job", &[("exit_code", "0")]),
            runs,
        );
        let s = second.scrape();
        assert_eq!(
            s.value("docker_container_starts_total", &on(engine, "job", &[])),
            Some(runs),
            "{engine}: the runs while down, not the one before"
        );
        assert_eq!(
            s.value(
                "docker_events_exporter_stream_gaps_total",
                &[("engine", engine)]
            ),
            Some(0.0),
            "{engine}: resumed from its own position"
        );
        let replayed = s
            .value(
                "docker_events_exporter_replayed_events_total",
                &[("engine", engine)],
            )
            .unwrap_or_default();
        assert!(
            replayed >= 2.0 * runs,
            "{engine}: a start and a die a run replayed, saw {replayed}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A context made with `docker context create` (in a CLI configuration of the test's own) is
/// the engine watched when given only as `DOCKER_CONTEXT`, and again when it is only the CLI's
/// current context (`docker context use`); an unknown one is one line naming the contexts
/// there are.
#[test]
fn a_docker_context_is_the_engine_watched() {
    let engine = PrivateEngine::start();
    let config = tempdir("docker-config");
    let config_dir = config.to_str().expect("utf-8");
    let context = unique("ctx");
    let cli = |args: &[&str]| {
        let out = std::process::Command::new("docker")
            .env("DOCKER_CONFIG", &config)
            .args(args)
            .output()
            .expect("docker runs");
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    cli(&[
        "context",
        "create",
        &context,
        "--docker",
        &format!("host={}", engine.host()),
    ]);
    let host = engine.host();
    for (given, code) in [(Some(context.as_str()), "3"), (None, "4")] {
        if given.is_none() {
            cli(&["context", "use", &context]);
        }
        let mut env = vec![("DOCKER_CONFIG", config_dir)];
        env.extend(given.map(|c| ("DOCKER_CONTEXT", c)));
        let e = Exporter::start_with_env(&[], &env);
        let name = unique("ctx-exit");
        run(&host, &name, &format!("exit {code}"));
        // The container is the private engine's: the default socket's engine never sees it.
        e.wait_for(
            "docker_container_exits_total",
            &container_labels(&name, &[("exit_code", code)]),
            1.0,
        );
        assert!(
            e.log().contains(&format!("context={context}")),
            "the log says which context: {}",
            e.log()
        );
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_docker-events-exporter"))
        .args(["--docker.context", "nope"])
        .env("DOCKER_CONFIG", &config)
        .env_remove("DOCKER_HOST")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        format!(
            "docker-events-exporter: error: docker context \"nope\": no such context in {config_dir}/contexts; there are: {}",
            {
                let mut known = ["default".to_owned(), context.clone()];
                known.sort();
                known.join(", ")
            }
        )
    );
}

/// `ssh://` to an sshd of the test's own: the exporter, through the system's `ssh` and `docker
/// system dial-stdio` on the other side, counts a container's exit exactly; its ssh
/// connections killed, it resubscribes and loses and doubles nothing. An unknown host key, a
/// refused key and no `ssh` at all are said in the log with what failed.
#[test]
fn an_engine_over_ssh_counts_exactly_and_a_killed_connection_loses_nothing() {
    let sshd = crate::support::sshd::Sshd::start();
    let path = sshd.path();
    let host = format!("ssh://{}", crate::support::sshd::HOST);
    let e = Exporter::start_with_env(&["--docker.host", &host], &[("PATH", &path)]);
    let (a, b) = (unique("ssh-a"), unique("ssh-b"));
    let _c = Cleanup(vec![a.clone(), b.clone()]);
    crate::support::run_exiting(&a, "3");
    e.wait_for(
        "docker_container_exits_total",
        &container_labels(&a, &[("exit_code", "3")]),
        1.0,
    );
    let killed = sshd.kill_clients();
    assert!(killed >= 1, "the exporter's ssh connections: {killed}");
    crate::support::run_exiting(&b, "4");
    e.wait_for("docker_events_exporter_reconnects_total", &[], 1.0);
    e.wait_for(
        "docker_container_exits_total",
        &container_labels(&b, &[("exit_code", "4")]),
        1.0,
    );
    let s = e.scrape();
    assert_eq!(
        s.value(
            "docker_container_exits_total",
            &container_labels(&a, &[("exit_code", "3")])
        ),
        Some(1.0),
        "not counted twice after the resubscription"
    );

    // A host whose key the client does not know: ssh refuses, and the log says so.
    let unknown = format!("ssh://127.0.0.1:{}", sshd.port);
    let refused = Exporter::spawn(&["--docker.host", &unknown], &[("PATH", &path)]);
    let said = wait_until(DEADLINE, || {
        refused.log().contains("ssh: Host key verification failed.")
    });
    assert!(said, "the log says why:\n{}", refused.log());
    // A login the server refuses: the key is authorized for the user running the tests only.
    let refused_key = format!("ssh://nobody@{}", crate::support::sshd::HOST);
    let denied = Exporter::spawn(&["--docker.host", &refused_key], &[("PATH", &path)]);
    let said = wait_until(DEADLINE, || {
        denied.log().contains("Permission denied (publickey)")
    });
    assert!(said, "the log says why:\n{}", denied.log());
    // No ssh at all.
    let none = Exporter::spawn(&["--docker.host", &host], &[("PATH", "/nonexistent")]);
    let said = wait_until(DEADLINE, || {
        none.log()
            .contains("ssh:// needs the ssh command, and there is none on the PATH")
    });
    assert!(said, "the log says why:\n{}", none.log());
}
