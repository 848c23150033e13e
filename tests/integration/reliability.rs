//! Gaps the engine cannot replay: an exporter killed and restarted with its state file, and an
//! engine restarted under a running exporter.

use crate::support::engine::PrivateEngine;
use crate::support::{
    Cleanup, DEADLINE, Exporter, container_labels, docker, event_times, logged_actions,
    make_healthy, now_secs, run_unhealthy, tempdir, test_image, unique, wait_status, wait_until,
};

/// The position the state file holds for its one engine (`timeNano` of the newest applied
/// event), if any.
fn saved_position(state: &std::path::Path) -> Option<i64> {
    let text = std::fs::read_to_string(state).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["engines"][0]["position_nano"].as_i64()
}

#[test]
fn a_sigkilled_exporter_resumes_from_its_state_file_without_counting_twice() {
    let image = test_image();
    let dir = tempdir("state");
    let state = dir.join("state.json");
    let state_arg = state.to_str().expect("utf-8 path");
    let a = unique("sigkill");
    let _cleanup = Cleanup(vec![a.clone()]);

    let since = now_secs();
    let first = Exporter::start(&["--docker.state-file", state_arg]);
    docker(&["run", "-d", "--name", &a, image, "sh", "-c", "exit 0"]);
    let id = docker(&["inspect", "-f", "{{.Id}}", &a]);
    first.wait_for(
        "docker_container_exits_total",
        &container_labels(&a, &[("exit_code", "0")]),
        1.0,
    );
    // The position is written after every batch; wait until it is at or past the container's
    // die (other tests' events move it too), then kill without warning.
    let dies = event_times(
        "unix:///var/run/docker.sock",
        &since,
        &[&format!("container={id}"), "event=die"],
    );
    let [die] = dies[..] else {
        panic!("one die event, saw {dies:?}");
    };
    let ok = wait_until(DEADLINE, || {
        saved_position(&state).is_some_and(|p| p >= die)
    });
    assert!(
        ok,
        "state file never reached the die at {die}: {:?}",
        saved_position(&state)
    );
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &first.pid().to_string()])
        .status();
    drop(first);

    // Two runs while no exporter watches.
    for _ in 0..2 {
        docker(&["start", &a]);
        wait_status(&a, "exited");
    }
    let second = Exporter::start(&["--docker.state-file", state_arg]);
    second.wait_for(
        "docker_container_exits_total",
        &container_labels(&a, &[("exit_code", "0")]),
        2.0,
    );
    let s = second.scrape();
    assert_eq!(
        s.value("docker_container_starts_total", &container_labels(&a, &[])),
        Some(2.0),
        "the two starts while down, not the one before; log:\n{}",
        second.log()
    );
    // The second is a restart; the first would need the engine to say that the container ran
    // before the saved position, and all it tells is its last start (README, Reliability).
    assert_eq!(
        s.value(
            "docker_container_restarts_total",
            &container_labels(&a, &[])
        ),
        Some(1.0)
    );
    s.assert_resumed_without_gap(4.0, "two starts and two dies");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_engine_restart_is_reported_as_a_gap_and_reconciled() {
    let mut engine = PrivateEngine::start();
    let host = engine.host();
    let exporter = Exporter::start_with_env(
        &["--docker.ping-interval", "1s"],
        &[("DOCKER_HOST", host.as_str())],
    );
    // Running when the engine goes down: it is stopped while no subscriber hears it.
    engine.run("victim", "sleep 600");
    engine.run("early", "exit 3");
    exporter.wait_for(
        "docker_container_exits_total",
        &container_labels("early", &[("exit_code", "3")]),
        1.0,
    );
    exporter.wait_for(
        "docker_container_state",
        &container_labels("victim", &[("state", "running")]),
        1.0,
    );

    for round in 1..=2 {
        engine.down();
        exporter.wait_for("docker_events_exporter_up", &[], 0.0);
        engine.up();
        // Events after the restart: held by the new engine, so replayed or streamed exactly.
        engine.docker(&["start", "early"]);
        exporter.wait_for("docker_events_exporter_up", &[], 1.0);
        exporter.wait_for(
            "docker_container_exits_total",
            &container_labels("early", &[("exit_code", "3")]),
            1.0 + f64::from(round),
        );
        exporter.wait_for(
            "docker_events_exporter_stream_gaps_total",
            &[],
            f64::from(round),
        );
        if round == 1 {
            // The victim died with the engine; no event said so. The reconcile does.
            let code = engine.docker(&["inspect", "-f", "{{.State.ExitCode}}", "victim"]);
            exporter.wait_for(
                "docker_container_state",
                &container_labels("victim", &[("state", "exited")]),
                1.0,
            );
            exporter.wait_for(
                "docker_container_exits_total",
                &container_labels("victim", &[("exit_code", code.as_str())]),
                1.0,
            );
            // How it ended, from the inspect: the restarted engine holds none of the old
            // events, so the exit code tells (137 and 143 are deaths by SIGKILL and SIGTERM).
            let victim = container_labels("victim", &[]);
            let s = exporter.scrape();
            let code: f64 = code.parse().expect("an exit code");
            assert_eq!(
                s.value("docker_container_last_exit_code", &victim),
                Some(code)
            );
            let reason = if code == 137.0 || code == 143.0 {
                "killed"
            } else {
                "error"
            };
            assert_eq!(
                s.value(
                    "docker_container_last_termination_reason",
                    &container_labels("victim", &[("reason", reason)])
                ),
                Some(1.0),
                "exit code {code}"
            );
            let finished = engine.docker(&["inspect", "-f", "{{.State.FinishedAt}}", "victim"]);
            assert_eq!(
                s.value("docker_container_finished_timestamp_seconds", &victim),
                crate::support::rfc3339_secs(&finished),
                "the engine's FinishedAt"
            );
        }
    }
    let s = exporter.scrape();
    assert_eq!(
        s.value(
            "docker_container_starts_total",
            &container_labels("early", &[])
        ),
        Some(3.0),
        "log:\n{}",
        exporter.log()
    );
    assert_eq!(
        s.value(
            "docker_container_starts_total",
            &container_labels("victim", &[])
        ),
        Some(1.0)
    );
    let reconciled = s
        .value("docker_events_exporter_reconciled_changes_total", &[])
        .unwrap_or_default();
    assert!(
        reconciled >= 2.0,
        "victim's exit and state, saw {reconciled}"
    );
    assert!(
        exporter
            .log()
            .contains("events may have been lost while the stream was down"),
        "the gap is logged"
    );
}

/// A firing of a rule with `resolve` outlives a SIGKILL through the state file: after the
/// restart, the same condition met again is held back (not sent twice), and the recovery is
/// sent once.
#[test]
fn an_open_firing_outlives_a_sigkill_and_its_recovery_is_sent_once() {
    let dir = tempdir("open-firing");
    let state = dir.join("state.json");
    let audit = dir.join("audit.jsonl");
    let name = unique("open");
    let _cleanup = Cleanup(vec![name.clone()]);
    let cfg = crate::support::rules_config(
        &dir,
        &format!(
            "events_reactor:\n  sick:\n    event: {{type: container, action: \"health_status: unhealthy\", actor: {{name: {name}}}}}\n    \
             resolve: {{action: \"health_status: healthy\"}}\n    log: {:?}\n",
            audit.display().to_string()
        ),
    );
    let args = [
        "--docker.state-file",
        state.to_str().expect("utf-8 path"),
        "--config",
        cfg.to_str().expect("utf-8 path"),
    ];
    let first = Exporter::start(&args);
    // Unhealthy from its first probe, and again after each restart.
    run_unhealthy(&name);
    let id = docker(&["inspect", "-f", "{{.Id}}", &name]);
    assert!(
        wait_until(DEADLINE, || logged_actions(&audit).len() == 1),
        "the firing; log:\n{}",
        first.log()
    );
    let saved = || -> Vec<String> {
        let text = std::fs::read_to_string(&state).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        v["engines"][0]["open_firings"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|o| format!("{} {}", o["rule"], o["actor_id"]))
            .collect()
    };
    let want = vec![format!("\"sick\" \"{id}\"")];
    assert!(
        wait_until(DEADLINE, || saved() == want),
        "the state file keeps the open firing: {:?}",
        saved()
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first.pid() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("SIGKILL");
    drop(first);

    let second = Exporter::start(&args);
    // Unhealthy again after a restart: still open, so held back.
    docker(&["restart", "-t", "0", &name]);
    second.wait_for(
        "docker_events_exporter_actions_total",
        &[
            ("rule", "sick"),
            ("action", "log"),
            ("outcome", "throttled"),
        ],
        1.0,
    );
    make_healthy(&name);
    second.wait_for(
        "docker_events_exporter_rule_resolutions_total",
        &[("rule", "sick")],
        1.0,
    );
    assert!(
        wait_until(DEADLINE, || logged_actions(&audit).len() == 2),
        "the recovery; log:\n{}",
        second.log()
    );
    assert_eq!(
        logged_actions(&audit),
        ["health_status: unhealthy", "health_status: healthy"],
        "one firing before the SIGKILL, one recovery after"
    );
    assert!(
        wait_until(DEADLINE, || saved().is_empty()),
        "resolved: the state file keeps no open firing: {:?}",
        saved()
    );
}
