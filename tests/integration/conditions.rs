//! Conditions against the real engine: a container crash-looping under `--restart always`,
//! one restarted by its policy and one by hand, probes failing for longer and shorter than a
//! rule's `for`, a private engine stopped and started again, an exporter SIGKILLed while a
//! condition is open, and a mute made with the `mute` command. Each firing is recorded by a
//! command that writes its argv.

use std::path::{Path, PathBuf};

use crate::support::{
    Cleanup, DEADLINE, Exporter, PYTHON, RECORD_ARGV, container_labels, docker, exporter_stdout,
    make_healthy, recorded_argv, rules_config, run_probed, run_unhealthy, tempdir, test_image,
    unique, wait_until,
};

/// A rule `name` with `condition`, selecting the containers named `prefix`-* (all, without
/// one), that records `fields` (placeholders) after its actor's name and the firing's status.
fn rule(name: &str, condition: &str, prefix: Option<&str>, out: &Path, fields: &[&str]) -> String {
    let fields: String = fields.iter().map(|f| format!(", \"{f}\"")).collect();
    let event = prefix
        .map(|p| format!("    event: {{actor: {{name: \"{p}-*\"}}}}\n"))
        .unwrap_or_default();
    format!(
        "  {name}:\n    condition: {condition}\n{event}    \
         run: [{PYTHON:?}, \"-c\", {RECORD_ARGV:?}, {out:?}, \"%%actor.name%%\", \"%%status%%\"{fields}]\n",
        out = out.display().to_string()
    )
}

/// A test's folder, the file its rule records its firings to, the prefix of its containers'
/// names, and its rules file.
struct Setup {
    dir: PathBuf,
    out: PathBuf,
    prefix: String,
    cfg: PathBuf,
}

impl Setup {
    /// The one rule `name` with `condition` (see [`rule`]), for containers named `what`-*.
    fn new(what: &str, name: &str, condition: &str, fields: &[&str]) -> Self {
        Self::with(what, name, condition, fields, true)
    }

    fn with(what: &str, name: &str, condition: &str, fields: &[&str], selects: bool) -> Self {
        let dir = tempdir(what);
        let out = dir.join("argv.jsonl");
        let prefix = unique(what);
        let selected = selects.then_some(prefix.as_str());
        let yaml = format!(
            "events_reactor:\n{}",
            rule(name, condition, selected, &out, fields)
        );
        let cfg = rules_config(&dir, &yaml);
        Self {
            dir,
            out,
            prefix,
            cfg,
        }
    }

    fn config(&self) -> &str {
        self.cfg.to_str().expect("utf-8")
    }

    /// What the rule recorded, a firing a list: its actor's name, its status, its fields.
    fn told(&self) -> Vec<Vec<String>> {
        recorded_argv(&self.out)
    }

    /// Waits until the rule has recorded `n` firings (`what`), or fails with `e`'s log.
    fn wait_told(&self, e: &Exporter, n: usize, what: &str) {
        let ok = wait_until(DEADLINE, || self.told().len() >= n);
        assert!(ok, "{what}: {:?}; log:\n{}", self.told(), e.log());
    }
}

/// The records of the container (or engine) `who`, without its name.
fn of(records: &[Vec<String>], who: &str) -> Vec<Vec<String>> {
    records
        .iter()
        .filter(|r| r[0] == who)
        .map(|r| r[1..].to_vec())
        .collect()
}

/// `docker run -d --restart always --label LABEL --name NAME IMAGE sh -c SCRIPT`.
fn run_restarting(name: &str, label: &str, script: &str) {
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

/// `--restart always sh -c 'echo boom; sleep 1; exit 3'`: one firing, with its exits, exit
/// code 3, reason `error` and the line `boom`; the exporter SIGKILLed and started again with
/// its state file does not send it again; the container's removal sends one recovery. The
/// same loop labelled `docker-events-exporter.mute=true` sends nothing.
#[test]
fn a_crash_loop_is_told_once_with_its_why_across_a_sigkill_and_recovers_once() {
    let fields = [
        "%%condition%%",
        "%%exits%%",
        "%%last_exit_code%%",
        "%%reason%%",
        "%%logs%%",
    ];
    let s = Setup::new("crashloop", "looping", "crash_loop", &fields);
    let state = s.dir.join("state.json");
    let args = [
        "--config",
        s.config(),
        "--docker.state-file",
        state.to_str().expect("utf-8"),
    ];
    let first = Exporter::start(&args);
    let (looping, muted) = (format!("{}-web", s.prefix), format!("{}-muted", s.prefix));
    let _c = Cleanup(vec![looping.clone(), muted.clone()]);
    let script = "echo boom; sleep 1; exit 3";
    run_restarting(&looping, "x=y", script);
    run_restarting(&muted, "docker-events-exporter.mute=true", script);
    s.wait_told(&first, 1, "the crash loop fired");
    let firing = &of(&s.told(), &looping)[0];
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
    let exits = container_labels(&looping, &[("exit_code", "3")]);
    let before = second
        .value("docker_container_exits_total", &exits)
        .unwrap_or(0.0);
    second.wait_for("docker_container_exits_total", &exits, before + 2.0);
    assert_eq!(
        second.value("docker_events_exporter_rule_firing", &[("rule", "looping")]),
        Some(1.0),
        "open again from the state file"
    );
    docker(&["rm", "-f", &looping]);
    s.wait_told(&second, 2, "the recovery");
    second.wait_for(
        "docker_events_exporter_rule_firing",
        &[("rule", "looping")],
        0.0,
    );
    let told = s.told();
    let statuses: Vec<&str> = told.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(statuses, ["firing", "resolved"], "{told:?}");
    assert_eq!(
        told[1][..6],
        [&looping, "resolved", "crash_loop", "3", "3", "error"]
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
    let s = Setup::new(
        "restartloop",
        "restarting",
        "restart_loop",
        &["%%exits%%", "%%reason%%"],
    );
    let e = Exporter::start(&["--config", s.config()]);
    let (by_hand, looping) = (format!("{}-byhand", s.prefix), format!("{}-loop", s.prefix));
    let _c = Cleanup(vec![by_hand.clone(), looping.clone()]);
    run_restarting(&by_hand, "x=y", "exec sleep 300");
    for _ in 0..3 {
        docker(&["restart", "-t", "1", &by_hand]);
    }
    run_restarting(&looping, "x=y", "sleep 1; exit 0");
    s.wait_told(&e, 1, "the restart loop fired");
    let told = s.told();
    assert_eq!(
        told,
        [[looping.as_str(), "firing", "3", "completed"]],
        "only the loop; by hand: {:?}",
        of(&told, &by_hand)
    );
}

/// `unhealthy: {for: 3s}`: a probe failing for longer fires once and recovers once when it
/// passes; one failing for less (once, then passing a second later) sends nothing.
#[test]
fn unhealthy_for_longer_than_for_fires_once_and_recovers_once() {
    let s = Setup::new(
        "unhealthyfor",
        "sick",
        "{unhealthy: {for: 3s}}",
        &["%%condition%%"],
    );
    let since = crate::support::now_secs();
    let e = Exporter::start(&["--config", s.config()]);
    let (long, brief) = (format!("{}-long", s.prefix), format!("{}-brief", s.prefix));
    let _c = Cleanup(vec![long.clone(), brief.clone()]);
    run_probed(
        &brief,
        "test -e /tmp/ok || { touch /tmp/ok; exit 1; }",
        &["sleep", "300"],
    );
    run_unhealthy(&long);
    s.wait_told(&e, 1, "the long one fired");
    make_healthy(&long);
    s.wait_told(&e, 2, "the recovery");
    let until = crate::support::now_secs();
    let unhealthy = |name: &str| {
        crate::support::engine_event_count(name, &since, &until, "health_status: unhealthy", None)
    };
    assert!(unhealthy(&brief) >= 1, "the brief one was unhealthy too");
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Health.Status}}", &brief]),
        "healthy"
    );
    assert_eq!(
        s.told(),
        [
            [long.as_str(), "firing", "unhealthy"],
            [long.as_str(), "resolved", "unhealthy"]
        ]
    );
}

/// `engine_down`: a private engine stopped for longer than `for` fires once; started again,
/// it recovers once.
#[test]
fn an_engine_stopped_for_longer_than_for_fires_once_and_recovers_once() {
    let mut engine = crate::support::engine::PrivateEngine::start();
    let s = Setup::with(
        "enginedown",
        "lost",
        "{engine_down: {for: 2s}}",
        &["%%condition%%"],
        false,
    );
    let host = format!("private={}", engine.host());
    let e = Exporter::start(&["--config", s.config(), "--docker.host", &host]);
    engine.down();
    s.wait_told(&e, 1, "engine_down fired");
    engine.up();
    s.wait_told(&e, 2, "the recovery");
    e.wait_for(
        "docker_events_exporter_rule_firing",
        &[("rule", "lost")],
        0.0,
    );
    assert_eq!(
        s.told(),
        [
            ["private", "firing", "engine_down"],
            ["private", "resolved", "engine_down"]
        ]
    );
}

/// `mute --for 8s --match name=PREFIX-*` over a crash-looping container: nothing is sent while
/// it holds (the firing counted as muted), and the firing goes out once when it ends while the
/// loop goes on. `mute list` shows it while it holds; the mute is kept in the state file.
#[test]
fn a_mute_made_with_the_mute_command_holds_a_loop_back_until_it_ends() {
    let s = Setup::new(
        "muted",
        "looping",
        "{crash_loop: {exits: 2}}",
        &["%%exits%%"],
    );
    let state = s.dir.join("state.json");
    let e = Exporter::start(&[
        "--config",
        s.config(),
        "--docker.state-file",
        state.to_str().expect("utf-8"),
    ]);
    let url = format!("http://127.0.0.1:{}", e.port);
    let pattern = format!("name={}-*", s.prefix);
    let id = exporter_stdout(&[
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
    let second_row = || {
        let listed = exporter_stdout(&["mute", "list", "--url", &url]);
        listed.lines().nth(1).unwrap_or_default().to_owned()
    };
    let row = second_row();
    assert!(
        row.starts_with(&format!("{id}  active")) && row.ends_with("deploy"),
        "{row}"
    );
    assert!(
        std::fs::read_to_string(&state).is_ok_and(|s| s.contains(&id)),
        "the mute is in the state file"
    );
    let looping = format!("{}-web", s.prefix);
    let _c = Cleanup(vec![looping.clone()]);
    run_restarting(&looping, "x=y", "sleep 1; exit 3");
    e.wait_for(
        "docker_events_exporter_rule_muted_total",
        &[("rule", "looping")],
        1.0,
    );
    assert_eq!(s.told(), Vec::<Vec<String>>::new(), "muted");
    s.wait_told(&e, 1, "the firing once the mute ended");
    assert_eq!(
        of(&s.told(), &looping),
        [["firing", "2"]],
        "its exits when it began"
    );
    let row = second_row();
    assert!(row.starts_with(&format!("{id}  expired")), "{row}");
}
