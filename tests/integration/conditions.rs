//! Conditions against the real engine: a container crash-looping under `--restart always`,
//! one restarted by its policy and one by hand, probes failing for longer and shorter than a
//! rule's `for`, a private engine stopped and started again, and an exporter SIGKILLed while a
//! condition is open. Each firing is recorded by a command that writes its argv.

use std::path::Path;

use crate::support::{
    Cleanup, DEADLINE, Exporter, PYTHON, RECORD_ARGV, container_labels, docker, make_healthy,
    recorded_argv, rules_config, run_probed, run_unhealthy, tempdir, test_image, unique,
    wait_until,
};

/// A rule `name` with `condition`, selecting containers named `prefix`-*, that records
/// `fields` (placeholders) after the container's name and the firing's status.
fn rule(name: &str, condition: &str, prefix: &str, out: &Path, fields: &[&str]) -> String {
    let fields: String = fields.iter().map(|f| format!(", \"{f}\"")).collect();
    format!(
        "  {name}:\n    condition: {condition}\n    event: {{actor: {{name: \"{prefix}-*\"}}}}\n    \
         run: [{PYTHON:?}, \"-c\", {RECORD_ARGV:?}, {out:?}, \"%%actor.name%%\", \"%%status%%\"{fields}]\n",
        out = out.display().to_string()
    )
}

/// The records of the container (or engine) `who`, without its name.
fn of(records: &[Vec<String>], who: &str) -> Vec<Vec<String>> {
    records
        .iter()
        .filter(|r| r[0] == who)
        .map(|r| r[1..].to_vec())
        .collect()
}

/// `--restart always sh -c 'echo boom; sleep 1; exit 3'`: one firing, with its exits, exit
/// code 3, reason `error` and the line `boom`; the exporter SIGKILLed and started again with
/// its state file does not send it again; the container's removal sends one recovery. The
/// same loop labelled `docker-events-exporter.mute=true` sends nothing.
#[test]
fn a_crash_loop_is_told_once_with_its_why_across_a_sigkill_and_recovers_once() {
    let dir = tempdir("cond-crash");
    let out = dir.join("argv.jsonl");
    let state = dir.join("state.json");
    let prefix = unique("crashloop");
    let fields = [
        "%%condition%%",
        "%%exits%%",
        "%%last_exit_code%%",
        "%%reason%%",
        "%%logs%%",
    ];
    let cfg = rules_config(
        &dir,
        &format!(
            "events_reactor:\n{}",
            rule("looping", "crash_loop", &prefix, &out, &fields)
        ),
    );
    let args = [
        "--config",
        cfg.to_str().expect("utf-8"),
        "--docker.state-file",
        state.to_str().expect("utf-8"),
    ];
    let first = Exporter::start(&args);
    let (looping, muted) = (format!("{prefix}-web"), format!("{prefix}-muted"));
    let _c = Cleanup(vec![looping.clone(), muted.clone()]);
    let script = "echo boom; sleep 1; exit 3";
    for (name, label) in [
        (&looping, "x=y"),
        (&muted, "docker-events-exporter.mute=true"),
    ] {
        docker(&[
            "run",
            "-d",
            "--restart",
            "always",
            "--label",
            label,
            "--name",
            name,
            test_image(),
            "sh",
            "-c",
            script,
        ]);
    }
    let fired = wait_until(DEADLINE, || !recorded_argv(&out).is_empty());
    assert!(fired, "the crash loop fired; log:\n{}", first.log());
    let firing = &of(&recorded_argv(&out), &looping)[0];
    assert_eq!(firing[..5], ["firing", "crash_loop", "3", "3", "error"]);
    assert!(
        firing[5].lines().count() >= 3 && firing[5].lines().all(|l| l == "boom"),
        "the container's last lines: {:?}",
        firing[5]
    );
    first.wait_for(
        "docker_events_exporter_rule_muted_total",
        &[("rule", "looping")],
        1.0,
    );
    let saved = wait_until(DEADLINE, || {
        std::fs::read_to_string(&state).is_ok_and(|s| s.contains("\"crash_loop\""))
    });
    assert!(saved, "the open firing is in the state file");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first.pid() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("SIGKILL");

    let second = Exporter::start(&args);
    // Two more crashes seen by the second exporter: the loop goes on, and is not told again.
    let exits = |e: &Exporter| {
        e.value(
            "docker_container_exits_total",
            &container_labels(&looping, &[("exit_code", "3")]),
        )
        .unwrap_or(0.0)
    };
    let before = exits(&second);
    second.wait_for(
        "docker_container_exits_total",
        &container_labels(&looping, &[("exit_code", "3")]),
        before + 2.0,
    );
    assert_eq!(
        second.value("docker_events_exporter_rule_firing", &[("rule", "looping")]),
        Some(1.0),
        "open again from the state file"
    );
    docker(&["rm", "-f", &looping]);
    let recovered = wait_until(DEADLINE, || recorded_argv(&out).len() >= 2);
    assert!(recovered, "the recovery; log:\n{}", second.log());
    second.wait_for(
        "docker_events_exporter_rule_firing",
        &[("rule", "looping")],
        0.0,
    );
    let told = recorded_argv(&out);
    let statuses: Vec<&str> = told.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(statuses, ["firing", "resolved"], "{told:?}");
    assert_eq!(
        told[1][..6],
        [
            looping.as_str(),
            "resolved",
            "crash_loop",
            "3",
            "3",
            "error"
        ]
    );
    assert!(
        of(&told, &muted).is_empty(),
        "the muted container: {told:?}"
    );
}

/// `restart_loop` fires for `sh -c 'sleep 1; exit 0'` under `--restart always`; three `docker
/// restart`s by hand of another container do not fire it.
#[test]
fn a_restart_loop_is_the_policys_and_not_a_persons() {
    let dir = tempdir("cond-restart");
    let out = dir.join("argv.jsonl");
    let prefix = unique("restartloop");
    let cfg = rules_config(
        &dir,
        &format!(
            "events_reactor:\n{}",
            rule(
                "restarting",
                "restart_loop",
                &prefix,
                &out,
                &["%%exits%%", "%%reason%%"]
            )
        ),
    );
    let e = Exporter::start(&["--config", cfg.to_str().expect("utf-8")]);
    let (by_hand, looping) = (format!("{prefix}-byhand"), format!("{prefix}-loop"));
    let _c = Cleanup(vec![by_hand.clone(), looping.clone()]);
    docker(&[
        "run",
        "-d",
        "--restart",
        "always",
        "--name",
        &by_hand,
        test_image(),
        "sleep",
        "300",
    ]);
    for _ in 0..3 {
        docker(&["restart", "-t", "1", &by_hand]);
    }
    docker(&[
        "run",
        "-d",
        "--restart",
        "always",
        "--name",
        &looping,
        test_image(),
        "sh",
        "-c",
        "sleep 1; exit 0",
    ]);
    let fired = wait_until(DEADLINE, || !recorded_argv(&out).is_empty());
    assert!(fired, "the restart loop fired; log:\n{}", e.log());
    let told = recorded_argv(&out);
    assert_eq!(
        told,
        [vec![
            looping.clone(),
            "firing".into(),
            "3".into(),
            "completed".into()
        ]],
        "only the loop; by hand: {:?}",
        of(&told, &by_hand)
    );
}

/// `unhealthy: {for: 3s}`: a probe failing for longer fires once and recovers once when it
/// passes; one failing for less (once, then passing a second later) sends nothing.
#[test]
fn unhealthy_for_longer_than_for_fires_once_and_recovers_once() {
    let dir = tempdir("cond-unhealthy");
    let out = dir.join("argv.jsonl");
    let prefix = unique("unhealthyfor");
    let cfg = rules_config(
        &dir,
        &format!(
            "events_reactor:\n{}",
            rule(
                "sick",
                "{unhealthy: {for: 3s}}",
                &prefix,
                &out,
                &["%%condition%%"]
            )
        ),
    );
    let since = crate::support::now_secs();
    let e = Exporter::start(&["--config", cfg.to_str().expect("utf-8")]);
    let (long, brief) = (format!("{prefix}-long"), format!("{prefix}-brief"));
    let _c = Cleanup(vec![long.clone(), brief.clone()]);
    run_probed(
        &brief,
        "test -e /tmp/ok || { touch /tmp/ok; exit 1; }",
        &["sleep", "300"],
    );
    run_unhealthy(&long);
    let fired = wait_until(DEADLINE, || !recorded_argv(&out).is_empty());
    assert!(fired, "the long one fired; log:\n{}", e.log());
    make_healthy(&long);
    let recovered = wait_until(DEADLINE, || recorded_argv(&out).len() >= 2);
    assert!(recovered, "the recovery; log:\n{}", e.log());
    let until = crate::support::now_secs();
    let unhealthy = |name: &str| {
        crate::support::engine_event_count(name, &since, &until, "health_status: unhealthy", None)
    };
    assert!(unhealthy(&brief) >= 1, "the brief one was unhealthy too");
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Health.Status}}", &brief]),
        "healthy"
    );
    let told = recorded_argv(&out);
    assert_eq!(
        told,
        [
            vec![long.clone(), "firing".into(), "unhealthy".into()],
            vec![long.clone(), "resolved".into(), "unhealthy".into()]
        ]
    );
}

/// `engine_down`: a private engine stopped for longer than `for` fires once; started again,
/// it recovers once.
#[test]
fn an_engine_stopped_for_longer_than_for_fires_once_and_recovers_once() {
    let mut engine = crate::support::engine::PrivateEngine::start();
    let dir = tempdir("cond-engine");
    let out = dir.join("argv.jsonl");
    let cfg = rules_config(
        &dir,
        &format!(
            "events_reactor:\n  lost:\n    condition: {{engine_down: {{for: 2s}}}}\n    \
             run: [{PYTHON:?}, \"-c\", {RECORD_ARGV:?}, {out:?}, \"%%status%%\", \"%%condition%%\", \"%%actor.name%%\"]\n",
            out = out.display().to_string()
        ),
    );
    let host = engine.host();
    let e = Exporter::start(&[
        "--config",
        cfg.to_str().expect("utf-8"),
        "--docker.host",
        &format!("private={host}"),
    ]);
    engine.down();
    let fired = wait_until(DEADLINE, || !recorded_argv(&out).is_empty());
    assert!(fired, "engine_down fired; log:\n{}", e.log());
    engine.up();
    let recovered = wait_until(DEADLINE, || recorded_argv(&out).len() >= 2);
    assert!(recovered, "the recovery; log:\n{}", e.log());
    e.wait_for(
        "docker_events_exporter_rule_firing",
        &[("rule", "lost")],
        0.0,
    );
    assert_eq!(
        recorded_argv(&out),
        [
            ["firing", "engine_down", "private"],
            ["resolved", "engine_down", "private"]
        ]
    );
}

/// `mute --for 8s --match name=PREFIX-*` over a crash-looping container: nothing is sent while
/// it holds (the firing counted as muted), and the firing goes out once when it ends while the
/// loop goes on. `mute list` shows it while it holds; the mute is kept in the state file.
#[test]
fn a_mute_made_with_the_mute_command_holds_a_loop_back_until_it_ends() {
    let dir = tempdir("cond-mute");
    let out = dir.join("argv.jsonl");
    let state = dir.join("state.json");
    let prefix = unique("muted");
    let cfg = rules_config(
        &dir,
        &format!(
            "events_reactor:\n{}",
            rule(
                "looping",
                "{crash_loop: {exits: 2}}",
                &prefix,
                &out,
                &["%%exits%%"]
            )
        ),
    );
    let e = Exporter::start(&[
        "--config",
        cfg.to_str().expect("utf-8"),
        "--docker.state-file",
        state.to_str().expect("utf-8"),
    ]);
    let url = format!("http://127.0.0.1:{}", e.port);
    let pattern = format!("name={prefix}-*");
    let id = crate::support::exporter_stdout(&[
        "mute",
        "--for",
        "8s",
        "--match",
        &pattern,
        "--comment",
        "deploy",
        "--url",
        &url,
    ]);
    let id = id.trim().to_owned();
    assert_eq!(id.len(), 32, "a mute ID: {id:?}");
    let listed = crate::support::exporter_stdout(&["mute", "list", "--url", &url]);
    let row = listed.lines().nth(1).unwrap_or_default();
    assert!(
        row.starts_with(&format!("{id}  active")) && row.ends_with("deploy"),
        "{listed}"
    );
    assert!(
        std::fs::read_to_string(&state).is_ok_and(|s| s.contains(&id)),
        "the mute is in the state file"
    );
    let looping = format!("{prefix}-web");
    let _c = Cleanup(vec![looping.clone()]);
    docker(&[
        "run",
        "-d",
        "--restart",
        "always",
        "--name",
        &looping,
        test_image(),
        "sh",
        "-c",
        "sleep 1; exit 3",
    ]);
    e.wait_for(
        "docker_events_exporter_rule_muted_total",
        &[("rule", "looping")],
        1.0,
    );
    assert_eq!(recorded_argv(&out), Vec::<Vec<String>>::new(), "muted");
    let fired = wait_until(DEADLINE, || !recorded_argv(&out).is_empty());
    assert!(fired, "the firing once the mute ended; log:\n{}", e.log());
    assert_eq!(
        of(&recorded_argv(&out), &looping),
        [["firing", "2"]],
        "its exits when it began"
    );
    let listed = crate::support::exporter_stdout(&["mute", "list", "--url", &url]);
    assert!(
        listed
            .lines()
            .nth(1)
            .is_some_and(|r| r.starts_with(&format!("{id}  expired"))),
        "{listed}"
    );
}
