//! The exporter against Podman's Docker-compatible API (Debian's Podman 4.3), driven as a
//! Docker user would drive it (the docker CLI) plus `podman healthcheck run`, which is how
//! Podman runs a probe where no systemd timer does: the same metrics as Docker's.

use crate::support::podman::{PODMAN_IMAGE, Podman};
use crate::support::{DEADLINE, Exporter, wait_until};

fn labels(name: &str) -> Vec<(&str, &str)> {
    vec![
        ("name", name),
        ("image", PODMAN_IMAGE),
        ("compose_project", ""),
        ("compose_service", ""),
        ("swarm_service", ""),
        ("swarm_stack", ""),
    ]
}

fn with<'a>(name: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut l = labels(name);
    l.extend_from_slice(extra);
    l
}

/// Waits until `cond` holds of the exporter's value of the series; panics with the last value.
fn wait_value(e: &Exporter, metric: &str, labels: &[(&str, &str)], cond: impl Fn(f64) -> bool) {
    let mut last = None;
    let ok = wait_until(DEADLINE, || {
        last = e.value(metric, labels);
        last.is_some_and(&cond)
    });
    assert!(
        ok,
        "{metric}{labels:?}: last saw {last:?}; log:\n{}",
        e.log()
    );
}

#[test]
fn podman_events_map_onto_the_docker_metrics() {
    let podman = Podman::start();
    let host = podman.host();
    let e = Exporter::start_with_env(&[], &[("DOCKER_HOST", host.as_str())]);
    let run = |args: &[&str]| {
        let mut all = vec!["run", "-d", "--network", "none"];
        all.extend_from_slice(args);
        podman.docker(&all)
    };

    // Exit codes, and the reason of each exit.
    run(&["--name", "pm-exit", PODMAN_IMAGE, "sh", "-c", "exit 3"]);
    e.wait_for(
        "docker_container_exits_total",
        &with("pm-exit", &[("exit_code", "3")]),
        1.0,
    );
    e.wait_for("docker_container_last_exit_code", &labels("pm-exit"), 3.0);
    e.wait_for(
        "docker_container_last_termination_reason",
        &with("pm-exit", &[("reason", "error")]),
        1.0,
    );

    // A restart policy's loop: every start after the first is a restart, and the engine's
    // own count is read as Docker's is.
    run(&[
        "--name",
        "pm-loop",
        "--restart",
        "always",
        PODMAN_IMAGE,
        "sh",
        "-c",
        "sleep 1; exit 2",
    ]);
    wait_value(
        &e,
        "docker_container_restarts_total",
        &labels("pm-loop"),
        |v| v >= 3.0,
    );
    wait_value(
        &e,
        "docker_container_restart_count",
        &labels("pm-loop"),
        |v| v >= 2.0,
    );

    // Execs by exit code, and probes run by `podman healthcheck run`: a failing one turns the
    // container unhealthy (one retry), a passing one healthy, as Podman's own inspect says.
    run(&[
        "--name",
        "pm-health",
        "--health-cmd",
        "test -e /tmp/ok",
        "--health-retries",
        "1",
        "--health-interval",
        "1h",
        PODMAN_IMAGE,
        "sleep",
        "300",
    ]);
    e.wait_for(
        "docker_container_state",
        &with("pm-health", &[("state", "running")]),
        1.0,
    );
    let exec = podman.docker_output(&["exec", "pm-health", "sh", "-c", "exit 5"]);
    assert_eq!(exec.status.code(), Some(5));
    e.wait_for(
        "docker_container_execs_total",
        &with("pm-health", &[("exit_code", "5")]),
        1.0,
    );
    let failed = podman.podman_output(&["healthcheck", "run", "pm-health"]);
    assert_eq!(failed.status.code(), Some(1), "the probe fails");
    e.wait_for(
        "docker_container_healthchecks_total",
        &with("pm-health", &[("result", "failure")]),
        1.0,
    );
    let status =
        |name: &str| podman.podman(&["inspect", "--format", "{{.State.Health.Status}}", name]);
    assert_eq!(status("pm-health"), "unhealthy");
    e.wait_for(
        "docker_container_health_status",
        &with("pm-health", &[("status", "unhealthy")]),
        1.0,
    );
    podman.docker(&["exec", "pm-health", "touch", "/tmp/ok"]);
    e.wait_for(
        "docker_container_execs_total",
        &with("pm-health", &[("exit_code", "0")]),
        1.0,
    );
    podman.podman(&["healthcheck", "run", "pm-health"]);
    assert_eq!(status("pm-health"), "healthy");
    e.wait_for(
        "docker_container_healthchecks_total",
        &with("pm-health", &[("result", "success")]),
        1.0,
    );
    e.wait_for(
        "docker_container_health_status",
        &with("pm-health", &[("status", "healthy")]),
        1.0,
    );
    assert_eq!(
        e.value(
            "docker_container_execs_total",
            &with("pm-health", &[("exit_code", "5")])
        ),
        Some(1.0),
        "probes are not counted as execs"
    );

    // A kill (Podman names no signal) ends the run: reason killed. (Podman 4.3 sends a
    // `docker stop` no kill and only at times a `stop` event, so a stop is not told apart.)
    podman.docker(&["kill", "pm-health"]);
    e.wait_for(
        "docker_container_kills_total",
        &with("pm-health", &[("signal", "unknown")]),
        1.0,
    );
    e.wait_for(
        "docker_container_last_termination_reason",
        &with("pm-health", &[("reason", "killed")]),
        1.0,
    );
    // An OOM kill: Podman sends no `oom` event; its inspect after the die is the one source,
    // so the exporter's count is what Podman itself says.
    run(&[
        "--name",
        "pm-oom",
        "-m",
        "8m",
        "--memory-swap",
        "8m",
        PODMAN_IMAGE,
        "tail",
        "/dev/zero",
    ]);
    e.wait_for("docker_container_last_exit_code", &labels("pm-oom"), 137.0);
    let oom_killed = podman.podman(&["inspect", "--format", "{{.State.OOMKilled}}", "pm-oom"]);
    let want = if oom_killed == "true" { 1.0 } else { 0.0 };
    e.wait_for("docker_container_oom_kills_total", &labels("pm-oom"), want);

    // A container removed with `remove` (Podman's destroy) is no longer tracked.
    podman.docker(&["rm", "pm-exit"]);
    e.wait_for(
        "docker_events_total",
        &[("object", "container"), ("action", "destroy")],
        1.0,
    );
    assert_eq!(
        e.value(
            "docker_container_state",
            &with("pm-exit", &[("state", "exited")])
        ),
        Some(0.0)
    );
    assert_eq!(
        e.value(
            "docker_events_total",
            &[("object", "container"), ("action", "unknown")]
        ),
        None,
        "every container event Podman sent is one we know; log:\n{}",
        e.log()
    );
}

/// Podman's `/info` answers a new random ID each time and its event log is on disk: a cut in
/// the subscription is resumed from the log, not taken for a gap, and what happened meanwhile
/// (the `podman` CLI writes the same log) is counted once.
#[test]
fn a_podman_resubscription_is_not_a_gap() {
    let mut podman = Podman::start();
    let host = podman.host();
    let e = Exporter::start_with_env(&[], &[("DOCKER_HOST", host.as_str())]);
    podman.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "pm-cut",
        PODMAN_IMAGE,
        "sh",
        "-c",
        "exit 4",
    ]);
    let exits = with("pm-cut", &[("exit_code", "4")]);
    e.wait_for("docker_container_exits_total", &exits, 1.0);
    podman.down();
    e.wait_for("docker_events_exporter_up", &[], 0.0);
    podman.podman(&["start", "pm-cut"]);
    let ok = wait_until(DEADLINE, || {
        podman.podman(&["inspect", "--format", "{{.State.Status}}", "pm-cut"]) == "exited"
    });
    assert!(ok, "pm-cut ran again");
    podman.up();
    e.wait_for("docker_events_exporter_up", &[], 1.0);
    e.wait_for("docker_container_exits_total", &exits, 2.0);
    let s = e.scrape();
    assert_eq!(
        s.value("docker_events_exporter_stream_gaps_total", &[]),
        Some(0.0),
        "log:\n{}",
        e.log()
    );
    assert_eq!(
        s.value("docker_events_exporter_reconnects_total", &[]),
        Some(1.0)
    );
    assert_eq!(
        s.value("docker_container_starts_total", &labels("pm-cut")),
        Some(2.0)
    );
    assert_eq!(
        s.value("docker_container_restarts_total", &labels("pm-cut")),
        Some(1.0)
    );
}

/// Podman 3.3 and later may write an attached `podman exec`'s `exec_died` twice, the same but
/// for their time and with no exec ID (see the tracker's `unnamed_execs`): a race between the
/// `podman exec` process and conmon's cleanup process, won by the cleanup about two times in
/// three on an idle machine, and seen lost twelve times in twelve under CI's load. Each exec is
/// counted once, with its exit code, whichever way it was run: attached, detached, through the
/// Docker API, two at once, and probes; `podman events` is the truth, and the replay of the
/// engine's saved log counts the same as the live stream did. Since this run may have no
/// second write, `a_recorded_podman_log_with_second_writes_replays_exactly` replays a log that
/// has them.
#[test]
fn a_podman_exec_written_twice_is_counted_once() {
    const NAME: &str = "pm-execs";
    const REPEATS: usize = 10;
    let podman = Podman::start();
    let host = podman.host();
    let e = Exporter::start_with_env(&[], &[("DOCKER_HOST", host.as_str())]);
    podman.podman(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        NAME,
        "--health-cmd",
        "true",
        "--health-interval",
        "1h",
        PODMAN_IMAGE,
        "sleep",
        "300",
    ]);
    e.wait_for(
        "docker_container_state",
        &with(NAME, &[("state", "running")]),
        1.0,
    );
    let exec = |args: &[&str]| {
        let mut all = vec!["exec", NAME];
        all.extend_from_slice(args);
        podman.podman_output(&all).status.code()
    };
    assert_eq!(exec(&["sh", "-c", "exit 5"]), Some(5));
    for _ in 0..REPEATS {
        assert_eq!(exec(&["true"]), Some(0));
    }
    // Detached: it ends after `podman exec -d` has returned.
    podman.podman(&["exec", "-d", NAME, "sh", "-c", "sleep 0.2; exit 7"]);
    e.wait_for(
        "docker_container_execs_total",
        &with(NAME, &[("exit_code", "7")]),
        1.0,
    );
    let docker_exec = podman.docker_output(&["exec", NAME, "sh", "-c", "exit 4"]);
    assert_eq!(docker_exec.status.code(), Some(4));
    // Two at once, with different exit codes.
    std::thread::scope(|s| {
        let a = s.spawn(|| exec(&["sh", "-c", "sleep 0.5; exit 3"]));
        let b = s.spawn(|| exec(&["sh", "-c", "sleep 0.5; exit 6"]));
        assert_eq!(a.join().expect("exec 3"), Some(3));
        assert_eq!(b.join().expect("exec 6"), Some(6));
    });
    for _ in 0..2 {
        podman.podman(&["healthcheck", "run", NAME]);
    }

    // The engine's truth (its whole log: this Podman is the test's own): every exec it began,
    // and every `exec_died` it wrote.
    let podman_events = |event: &str| {
        podman
            .podman(&[
                "events",
                "--stream=false",
                "--filter",
                &format!("container={NAME}"),
                "--filter",
                &format!("event={event}"),
                "--format",
                "{{.ContainerExitCode}}",
            ])
            .lines()
            .count()
    };
    let execs = podman_events("exec");
    let exec_dieds = podman_events("exec_died");
    let probes = 2;
    assert_eq!(execs, REPEATS + 5, "the execs Podman began");
    assert!(
        exec_dieds >= execs + probes,
        "{exec_dieds} exec_died for {execs} execs and {probes} probes"
    );
    eprintln!(
        "Podman wrote {} exec_died twice",
        exec_dieds - execs - probes
    );
    // Every `exec_died` has been read before the counts are read.
    e.wait_for(
        "docker_events_total",
        &[("object", "container"), ("action", "exec_die")],
        exec_dieds as f64,
    );
    assert_exec_counts(&e.scrape(), "live", NAME, REPEATS, probes);

    // The engine's log as its Docker API sends it, saved and replayed.
    let path = podman_log(&podman);
    let replayed = crate::support::exporter_stdout(&["replay", path.to_str().expect("utf-8")]);
    let replayed = crate::support::Scrape::parse(&replayed);
    assert_exec_counts(&replayed, "replay", NAME, REPEATS, probes);
}

/// A log Podman 4.3.1 wrote here (`tests/fixtures/podman-4.3.1-execs.jsonl`, saved as
/// `podman_log` saves one) of the scenario above, in which six of the twelve attached execs
/// have their `exec_died` twice: replayed, every exec is counted once.
#[test]
fn a_recorded_podman_log_with_second_writes_replays_exactly() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/podman-4.3.1-execs.jsonl"
    );
    let log = std::fs::read_to_string(path).expect("the recorded log");
    let count = |action: &str| {
        log.lines()
            .filter(|l| l.contains(&format!("\"Action\":\"{action}\"")))
            .count()
    };
    let (execs, probes) = (count("exec"), count("health_status"));
    assert_eq!((execs, probes, count("exec_died")), (15, 2, 23), "the log");
    let replayed = crate::support::exporter_stdout(&["replay", path]);
    let replayed = crate::support::Scrape::parse(&replayed);
    assert_exec_counts(&replayed, "recorded", "pm-execs", 10, probes);
}

/// The scenario's counts: one exec a code (ten of them `true`), `probes` successful probes.
fn assert_exec_counts(
    s: &crate::support::Scrape,
    what: &str,
    name: &str,
    repeats: usize,
    probes: usize,
) {
    let want = [
        ("5", 1.0),
        ("0", repeats as f64),
        ("7", 1.0),
        ("4", 1.0),
        ("3", 1.0),
        ("6", 1.0),
    ];
    for (code, n) in want {
        assert_eq!(
            s.value(
                "docker_container_execs_total",
                &with(name, &[("exit_code", code)])
            ),
            Some(n),
            "{what}: execs with exit code {code}"
        );
    }
    let execs = repeats + 5;
    let counted: f64 = s
        .matching("docker_container_execs_total", &labels(name))
        .iter()
        .map(|(_, v)| v)
        .sum();
    assert_eq!(counted, execs as f64, "{what}: one count an exec");
    assert_eq!(
        s.value(
            "docker_container_exec_duration_seconds_count",
            &labels(name)
        ),
        Some(execs as f64),
        "{what}: one duration an exec"
    );
    assert_eq!(
        s.value(
            "docker_container_healthchecks_total",
            &with(name, &[("result", "success")])
        ),
        Some(probes as f64),
        "{what}: probes"
    );
}

/// The engine's whole log as its Docker API sends it, in a file.
fn podman_log(podman: &Podman) -> std::path::PathBuf {
    let socket = podman.host();
    let socket = socket.trim_start_matches("unix://");
    let path = crate::support::tempdir("podman-log").join("events.jsonl");
    // Podman reads a `since` of 0 as none. `stream=false` ends the answer with the log's end;
    // an `until` would not do: Podman's reader stops when the clock reaches it, wherever its
    // reading has got to (libpod/events/logfile.go), which cut the log short under load.
    let url = "http://podman/events?since=1&stream=false";
    let to = path.to_str().expect("utf-8");
    crate::support::run_ok(
        "curl",
        &["-sS", "--fail", "--unix-socket", socket, "-o", to, url],
    );
    path
}
