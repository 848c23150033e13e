//! The tracker's rules, event by event: what each sequence of events does to the metrics.

use super::*;
use crate::docker::{AfterExit, ContainerSnapshot};
use crate::metrics::containers::{Code, Termination};
use crate::metrics::families::{
    CONTAINER_CREATED_TIMESTAMP, CONTAINER_EXECS, CONTAINER_EXITS, CONTAINER_FINISHED_TIMESTAMP,
    CONTAINER_HEALTH_STATUS, CONTAINER_HEALTHCHECK_DURATION, CONTAINER_HEALTHCHECKS,
    CONTAINER_LAST_EXIT_CODE, CONTAINER_LAST_TERMINATION_REASON, CONTAINER_OOM_KILLS,
    CONTAINER_RESTART_COUNT, CONTAINER_RESTARTS, CONTAINER_RUN_DURATION,
    CONTAINER_STARTED_TIMESTAMP, CONTAINER_STARTS, CONTAINER_STATE,
};

fn event(action: &str, id: &str, time_nano: i64, attrs: &[(&str, &str)]) -> Event {
    Event::new(
        "container",
        action,
        id,
        attrs.iter().copied(),
        "local",
        time_nano,
    )
}

fn tracker() -> (Tracker, Arc<Metrics>) {
    let m = Arc::new(Metrics::new(&["team".to_owned()]).expect("metrics"));
    (Tracker::new(m.clone(), Duration::from_secs(60)), m)
}

/// The IDs of the inspects asked for since the last call.
fn asked(t: &mut Tracker) -> Vec<String> {
    let mut out = Vec::new();
    t.take_inspects(&mut out);
    out.into_iter().map(|r| r.id).collect()
}

/// An inspect at first sight; at a `die` only if the engine may start the container again,
/// as its create-time inspect said (a container not inspected yet is asked about).
#[test]
fn a_die_asks_the_engine_only_when_its_policy_may_restart_it() {
    let (t, _m) = tracker();
    let mut t = t.asking_inspects();
    let with = |after_exit| ContainerSnapshot {
        after_exit,
        ..snap("c1", "web", ContainerState::Created, 0, 0)
    };
    let cases = [
        (Some(AfterExit::Stays), "1", false),
        (Some(AfterExit::Removed), "0", false),
        (Some(AfterExit::RestartsOnFailure), "0", false),
        (Some(AfterExit::RestartsOnFailure), "1", true),
        (Some(AfterExit::Restarts), "0", true),
        (None, "0", true),
    ];
    for (i, (after_exit, code, asks)) in cases.into_iter().enumerate() {
        let id = format!("c{i}");
        let base = 100 * i as i64;
        t.apply(&event("create", &id, base + 1, WEB));
        assert_eq!(asked(&mut t), std::slice::from_ref(&id), "first sight");
        if let Some(after_exit) = after_exit {
            let req = InspectRequest {
                id: id.clone(),
                seq: t.seq(),
            };
            t.apply_inspect(
                &req,
                &ContainerSnapshot {
                    id: id.clone(),
                    ..with(after_exit)
                },
            );
        }
        t.apply(&event("start", &id, base + 2, WEB));
        t.apply(&event(
            "die",
            &id,
            base + 3,
            &[("name", "web"), ("exitCode", code)],
        ));
        let expected: Vec<String> = if asks { vec![id.clone()] } else { Vec::new() };
        assert_eq!(asked(&mut t), expected, "{after_exit:?} exit {code}");
        t.apply(&event("destroy", &id, base + 4, WEB));
    }
}

const WEB: &[(&str, &str)] = &[("name", "web"), ("image", "nginx"), ("team", "a")];

/// The value of `metric{<web's labels>[,extra]}` in the exposition, if that series exists.
fn value(m: &Metrics, metric: &str, extra: Option<(&str, &str)>) -> Option<f64> {
    let extra = extra.map_or(String::new(), |(k, v)| format!(",{k}=\"{v}\""));
    let prefix = format!(
        "{metric}{{name=\"web\",image=\"nginx\",compose_project=\"\",compose_service=\"\",swarm_service=\"\",swarm_stack=\"\",label_team=\"a\"{extra}}} "
    );
    let text = m.encode();
    let line = text.lines().find(|l| l.starts_with(&prefix))?;
    line[prefix.len()..].parse().ok()
}

/// The healthcheck probes: successes, failures, and their durations' sum.
fn probes(m: &Metrics) -> (Option<f64>, Option<f64>, Option<f64>) {
    let result = |r| Some(("result", r));
    let sum = format!("{}_sum", CONTAINER_HEALTHCHECK_DURATION.name);
    (
        value(m, CONTAINER_HEALTHCHECKS.name, result("success")),
        value(m, CONTAINER_HEALTHCHECKS.name, result("failure")),
        value(m, &sum, None),
    )
}

#[test]
fn second_start_is_a_restart() {
    let (mut t, m) = tracker();
    t.apply(&event("create", "c1", 1, WEB));
    t.apply(&event("start", "c1", 2, WEB));
    assert_eq!(value(&m, CONTAINER_RESTARTS.name, None), Some(0.0));
    t.apply(&event(
        "die",
        "c1",
        3_000_000_002,
        &[("name", "web"), ("exitCode", "1")],
    ));
    t.apply(&event("start", "c1", 4_000_000_000, WEB));
    assert_eq!(value(&m, CONTAINER_STARTS.name, None), Some(2.0));
    assert_eq!(value(&m, CONTAINER_RESTARTS.name, None), Some(1.0));
    let run = format!("{}_count", CONTAINER_RUN_DURATION.name);
    assert_eq!(value(&m, &run, None), Some(1.0));
    let run = format!("{}_sum", CONTAINER_RUN_DURATION.name);
    assert_eq!(value(&m, &run, None), Some(3.0));
    assert_eq!(
        value(&m, CONTAINER_EXITS.name, Some(("exit_code", "1"))),
        Some(1.0)
    );
    assert_eq!(
        value(&m, CONTAINER_STATE.name, Some(("state", "running"))),
        Some(1.0)
    );
    assert_eq!(
        value(&m, CONTAINER_STATE.name, Some(("state", "exited"))),
        Some(0.0)
    );
}

#[test]
fn probe_execs_count_as_healthchecks_not_execs() {
    let (mut t, m) = tracker();
    t.seed(
        &ContainerSnapshot {
            id: "c1".into(),
            name: "web".into(),
            image: "nginx".into(),
            labels: [("team".to_owned(), "a".to_owned())].into(),
            state: Some(ContainerState::Running),
            health: Some(Health::Starting),
            healthcheck_command: Some("/bin/sh -c true".into()),
            started_at_nano: Some(1),
            finished_at_nano: None,
            exit_code: Some(0),
            oom_killed: false,
            restart_count: 0,
            after_exit: AfterExit::Stays,
            ..ContainerSnapshot::default()
        },
        10,
    );
    let probe = [("name", "web"), ("execID", "p1")];
    t.apply(&event("exec_create: /bin/sh -c true", "c1", 20, &probe));
    t.apply(&event("exec_start: /bin/sh -c true", "c1", 30, &probe));
    t.apply(&event(
        "exec_die",
        "c1",
        50_000_030,
        &[("execID", "p1"), ("exitCode", "0")],
    ));
    let user = [("name", "web"), ("execID", "u1")];
    t.apply(&event("exec_create: sh -c exit 3", "c1", 60, &user));
    t.apply(&event("exec_start: sh -c exit 3", "c1", 70, &user));
    t.apply(&event(
        "exec_die",
        "c1",
        80,
        &[("execID", "u1"), ("exitCode", "3")],
    ));
    t.apply(&event("health_status: healthy", "c1", 90, WEB));
    assert_eq!(
        probes(&m),
        (Some(1.0), Some(0.0), Some(0.05)),
        "successes, failures, seconds"
    );
    assert_eq!(
        value(&m, CONTAINER_EXECS.name, Some(("exit_code", "3"))),
        Some(1.0)
    );
    assert_eq!(
        value(&m, CONTAINER_EXECS.name, Some(("exit_code", "0"))),
        None,
        "an exit code appears with its first exec"
    );
    let status = |s| Some(("status", s));
    assert_eq!(
        value(&m, CONTAINER_HEALTH_STATUS.name, status("healthy")),
        Some(1.0)
    );
    assert_eq!(
        value(&m, CONTAINER_HEALTH_STATUS.name, status("starting")),
        Some(0.0)
    );
}

#[test]
fn series_of_a_destroyed_container_expire_after_the_ttl() {
    let (t, m) = tracker();
    let mut t = t.with_clock(Clock::Events);
    let s = 1_000_000_000;
    t.apply(&event("create", "c1", s, WEB));
    t.apply(&event("die", "c1", 2 * s, &[("exitCode", "0")]));
    t.apply(&event("destroy", "c1", 3 * s, WEB));
    t.apply(&event("create", "other", 62 * s, &[("name", "other")]));
    t.sweep();
    assert!(
        m.encode().contains("docker_container_exits_total{"),
        "kept until the TTL"
    );
    t.apply(&event("start", "other", 64 * s, &[("name", "other")]));
    t.sweep();
    let text = m.encode();
    assert!(!text.contains("name=\"web\""), "{text}");
    assert_eq!(t.series_count(), 1, "only the live container's");
}

fn snap(
    id: &str,
    name: &str,
    state: ContainerState,
    started: i64,
    finished: i64,
) -> ContainerSnapshot {
    ContainerSnapshot {
        id: id.into(),
        name: name.into(),
        image: "nginx".into(),
        labels: [("team".to_owned(), "a".to_owned())].into(),
        state: Some(state),
        health: None,
        healthcheck_command: None,
        started_at_nano: Some(started),
        finished_at_nano: Some(finished),
        exit_code: Some(137),
        oom_killed: true,
        restart_count: 0,
        after_exit: AfterExit::Unknown,
        ..ContainerSnapshot::default()
    }
}

/// The reason of the last exit and its exit code, from the events of the run.
#[test]
fn each_way_a_run_ends_is_its_own_termination_reason() {
    let (t, m) = tracker();
    let mut t = t.asking_inspects();
    let reason = |m: &Metrics| {
        Termination::ALL
            .into_iter()
            .filter(|r| {
                value(
                    m,
                    CONTAINER_LAST_TERMINATION_REASON.name,
                    Some(("reason", r.as_str())),
                ) == Some(1.0)
            })
            .map(Termination::as_str)
            .collect::<Vec<_>>()
    };
    t.apply(&event("create", "c1", 1_000_000_000, WEB));
    assert_eq!(value(&m, CONTAINER_LAST_EXIT_CODE.name, None), None);
    assert!(reason(&m).is_empty(), "absent until the first exit");
    assert_eq!(value(&m, CONTAINER_CREATED_TIMESTAMP.name, None), Some(1.0));
    assert_eq!(value(&m, CONTAINER_RESTART_COUNT.name, None), Some(0.0));
    let exit = |code| [("name", "web"), ("exitCode", code)];
    let runs: [(&[&str], &str, &str, f64); 5] = [
        (&[], "3", "error", 3.0),
        (&["oom"], "137", "oom_killed", 137.0),
        (&["kill 15"], "0", "killed", 0.0),
        (&[], "0", "completed", 0.0),
        // A reload signal, then an exit of its own.
        (&["kill 1"], "1", "error", 1.0),
    ];
    for (i, (before, code, want, want_code)) in runs.into_iter().enumerate() {
        let base = (10 + 10 * i as i64) * 1_000_000_000;
        t.apply(&event("start", "c1", base, WEB));
        for e in before {
            match e.split_once(' ') {
                Some((verb, signal)) => {
                    t.apply(&event(verb, "c1", base + 1, &[("signal", signal)]));
                }
                None => t.apply(&event(e, "c1", base + 1, WEB)),
            }
        }
        t.apply(&event("die", "c1", base + 2_500_000_000, &exit(code)));
        assert_eq!(reason(&m), [want], "run {i}");
        assert_eq!(
            value(&m, CONTAINER_LAST_EXIT_CODE.name, None),
            Some(want_code)
        );
        assert_eq!(
            value(&m, CONTAINER_STARTED_TIMESTAMP.name, None),
            Some(base as f64 / 1e9)
        );
        assert_eq!(
            value(&m, CONTAINER_FINISHED_TIMESTAMP.name, None),
            Some(base as f64 / 1e9 + 2.5)
        );
    }
    t.apply(&event("destroy", "c1", 100_000_000_000, WEB));
    assert_eq!(
        value(&m, CONTAINER_LAST_EXIT_CODE.name, None),
        Some(1.0),
        "kept with the other series until the TTL"
    );
    // A replay has no inspects, so no engine restart count to show.
    let (mut replay, m) = tracker();
    replay.apply(&event("create", "c1", 1, WEB));
    assert_eq!(value(&m, CONTAINER_RESTART_COUNT.name, None), None);
    assert_eq!(
        value(&m, CONTAINER_CREATED_TIMESTAMP.name, None),
        Some(1e-9)
    );
}

/// The engine's restart count comes with inspect answers, which may come back in any
/// order: the one about the newer start or exit wins.
#[test]
fn the_restart_count_is_the_newest_inspect_answers() {
    let (t, m) = tracker();
    let mut t = t.asking_inspects();
    t.apply(&event("create", "c1", 1, WEB));
    let asked = |t: &mut Tracker| {
        let mut out = Vec::new();
        t.take_inspects(&mut out);
        out
    };
    let first = asked(&mut t).remove(0);
    let answer = |started, finished, restart_count| ContainerSnapshot {
        id: "c1".into(),
        image_id: "81e8efb5dfa4".into(),
        restart_policy: Some(crate::docker::RestartPolicy::Always),
        after_exit: AfterExit::Restarts,
        restart_count,
        ..snap("c1", "web", ContainerState::Running, started, finished)
    };
    t.apply_inspect(&first, &answer(0, 0, 0));
    let info = "docker_container_info{name=\"web\",image=\"nginx\",compose_project=\"\",compose_service=\"\",swarm_service=\"\",swarm_stack=\"\",label_team=\"a\",image_id=\"81e8efb5dfa4\",restart_policy=\"always\"} 1\n";
    assert!(m.encode().contains(info), "{}", m.encode());
    t.apply(&event("start", "c1", 10, WEB));
    t.apply(&event("die", "c1", 20, &[("exitCode", "0")]));
    let die = asked(&mut t).remove(0);
    t.apply(&event("start", "c1", 30, WEB));
    // Still `exited` when the start came (the die's answer was not back): asked again.
    let start = asked(&mut t).remove(0);
    t.apply_inspect(&start, &answer(30, 19, 1));
    t.apply_inspect(&die, &answer(10, 19, 1));
    assert_eq!(value(&m, CONTAINER_RESTART_COUNT.name, None), Some(1.0));
    // A person's `docker restart`: the engine counts from 0 again, and an answer about an
    // earlier run that comes back late does not undo that.
    t.apply(&event("kill", "c1", 40, &[("signal", "15")]));
    t.apply(&event("die", "c1", 41, &[("exitCode", "137")]));
    let die = asked(&mut t).remove(0);
    t.apply(&event("start", "c1", 42, WEB));
    let start = asked(&mut t).remove(0);
    t.apply_inspect(&start, &answer(42, 41, 0));
    t.apply_inspect(&die, &answer(30, 41, 1));
    assert_eq!(value(&m, CONTAINER_RESTART_COUNT.name, None), Some(0.0));
}

/// A restart that fails sends no event: a container `restarting` for longer than the
/// engine ever waits is asked about again, and shows `exited` when the engine says so.
#[test]
fn a_restart_that_never_comes_is_asked_about() {
    let (t, m) = tracker();
    let mut t = t.asking_inspects().with_clock(Clock::Events);
    let s = 1_000_000_000;
    t.apply(&event("create", "c1", s, WEB));
    t.apply(&event("start", "c1", 2 * s, WEB));
    t.apply(&event("die", "c1", 3 * s, &[("exitCode", "1")]));
    let mut asked = Vec::new();
    t.take_inspects(&mut asked);
    let die = asked.pop().expect("asked at the die");
    asked.clear();
    let restarting = ContainerSnapshot {
        after_exit: AfterExit::Restarts,
        ..snap("c1", "web", ContainerState::Restarting, 2 * s, 3 * s)
    };
    t.apply_inspect(&die, &restarting);
    t.ask_overdue_restarts();
    t.take_inspects(&mut asked);
    assert!(asked.is_empty(), "not yet due");
    let overdue = i64::try_from(RESTART_OVERDUE.as_nanos()).expect("fits");
    t.apply(&event(
        "create",
        "other",
        3 * s + overdue,
        &[("name", "other")],
    ));
    t.take_inspects(&mut asked);
    asked.clear();
    t.ask_overdue_restarts();
    t.take_inspects(&mut asked);
    assert_eq!(
        asked.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["c1"]
    );
    t.ask_overdue_restarts();
    let mut again = Vec::new();
    t.take_inspects(&mut again);
    assert!(again.is_empty(), "asked once per overdue period");
    t.apply_inspect(
        &asked[0],
        &ContainerSnapshot {
            after_exit: AfterExit::Restarts,
            ..snap("c1", "web", ContainerState::Exited, 2 * s, 3 * s)
        },
    );
    assert_eq!(
        value(&m, CONTAINER_STATE.name, Some(("state", "exited"))),
        Some(1.0)
    );
}

/// An exporter started after the exit: the inspect's exit code and the engine's held
/// events say how it ended, else the exit code alone.
#[test]
fn a_seeded_exit_takes_its_reason_from_the_engine() {
    let cases = [
        (Some(0), false, Some(true), "killed"),
        (Some(0), false, None, "completed"),
        (Some(137), true, None, "oom_killed"),
        (Some(137), false, Some(false), "error"),
        (Some(137), false, None, "killed"),
        (Some(143), false, None, "killed"),
        (Some(2), false, None, "error"),
    ];
    for (code, oom_killed, last_exit_killed, want) in cases {
        let (mut t, m) = tracker();
        t.seed(
            &ContainerSnapshot {
                exit_code: code,
                oom_killed,
                last_exit_killed,
                created_at_nano: Some(500_000_000),
                ..snap(
                    "c1",
                    "web",
                    ContainerState::Exited,
                    1_000_000_000,
                    3_000_000_000,
                )
            },
            10_000_000_000,
        );
        let is = |r: &str| {
            value(
                &m,
                CONTAINER_LAST_TERMINATION_REASON.name,
                Some(("reason", r)),
            )
        };
        assert_eq!(
            is(want),
            Some(1.0),
            "{code:?} {oom_killed} {last_exit_killed:?}"
        );
        assert_eq!(
            Termination::ALL
                .iter()
                .filter(|r| is(r.as_str()) == Some(0.0))
                .count(),
            3
        );
        let code = code.map(|c| c as f64);
        assert_eq!(value(&m, CONTAINER_LAST_EXIT_CODE.name, None), code);
        assert_eq!(value(&m, CONTAINER_CREATED_TIMESTAMP.name, None), Some(0.5));
        assert_eq!(value(&m, CONTAINER_STARTED_TIMESTAMP.name, None), Some(1.0));
        assert_eq!(
            value(&m, CONTAINER_FINISHED_TIMESTAMP.name, None),
            Some(3.0)
        );
    }
}

#[test]
fn a_reconcile_counts_what_the_gap_hid_and_only_that() {
    let (t, m) = tracker();
    let mut t = t.with_clock(Clock::Events);
    t.seed(&snap("c1", "web", ContainerState::Running, 5, 0), 10);
    t.seed(&snap("gone", "old", ContainerState::Running, 5, 0), 10);
    t.apply(&event("kill", "c1", 20, &[("signal", "15")]));
    // The engine restarted at 30: web was killed (OOM, 137) and its policy restarted it
    // twice, the last start at 40; "old" was removed; "new" was created and exited.
    let mut web = snap("c1", "web", ContainerState::Running, 40, 35);
    web.restart_count = 2;
    let new = snap("c9", "new", ContainerState::Exited, 32, 33);
    let changes = t.reconcile(&[web.clone(), new], 20, 50, t.seq());
    assert_eq!(
        value(&m, CONTAINER_STARTS.name, None),
        Some(2.0),
        "two policy restarts"
    );
    assert_eq!(value(&m, CONTAINER_RESTARTS.name, None), Some(2.0));
    assert_eq!(
        value(&m, CONTAINER_EXITS.name, Some(("exit_code", "137"))),
        Some(1.0),
        "the last exit"
    );
    assert_eq!(value(&m, CONTAINER_OOM_KILLS.name, None), Some(1.0));
    assert_eq!(
        value(&m, CONTAINER_STATE.name, Some(("state", "running"))),
        Some(1.0)
    );
    // The gauges say how it last ended and when, as the engine does.
    assert_eq!(value(&m, CONTAINER_LAST_EXIT_CODE.name, None), Some(137.0));
    assert_eq!(
        value(
            &m,
            CONTAINER_LAST_TERMINATION_REASON.name,
            Some(("reason", "oom_killed"))
        ),
        Some(1.0)
    );
    assert_eq!(value(&m, CONTAINER_RESTART_COUNT.name, None), Some(2.0));
    assert_eq!(
        value(&m, CONTAINER_STARTED_TIMESTAMP.name, None),
        Some(40e-9)
    );
    assert_eq!(
        value(&m, CONTAINER_FINISHED_TIMESTAMP.name, None),
        Some(35e-9)
    );
    let text = m.encode();
    assert!(text.contains("docker_container_state{name=\"old\",image=\"nginx\",compose_project=\"\",compose_service=\"\",swarm_service=\"\",swarm_stack=\"\",label_team=\"a\",state=\"running\"} 0\n"), "{text}");
    assert!(text.contains("docker_container_starts_total{name=\"new\",image=\"nginx\",compose_project=\"\",compose_service=\"\",swarm_service=\"\",swarm_stack=\"\",label_team=\"a\"} 1\n"), "{text}");
    assert!(text.contains("docker_container_exits_total{name=\"new\",image=\"nginx\",compose_project=\"\",compose_service=\"\",swarm_service=\"\",swarm_stack=\"\",label_team=\"a\",exit_code=\"137\"} 1\n"), "{text}");
    // old removed, new created + started + exited, web started + exited.
    assert_eq!(changes, 6);
    // The same snapshot again finds nothing new: nothing is counted twice.
    assert_eq!(
        t.reconcile(&[web], 20, 50, t.seq()),
        1,
        "only new's removal"
    );
    assert_eq!(value(&m, CONTAINER_STARTS.name, None), Some(2.0));
    // A start after the snapshot is left to its event.
    let mut later = snap("c1", "web", ContainerState::Running, 60, 35);
    later.restart_count = 3;
    assert_eq!(t.reconcile(&[later.clone()], 20, 50, t.seq()), 0);
    assert_eq!(value(&m, CONTAINER_STARTS.name, None), Some(2.0));
    // Events between the snapshot request and its answer win: a container created since
    // stays, one destroyed since does not come back.
    let asked = t.seq();
    t.apply(&event("create", "c7", 55, &[("name", "fresh")]));
    t.apply(&event("destroy", "c1", 56, WEB));
    assert_eq!(t.reconcile(&[later], 20, 50, asked), 0);
    let text = m.encode();
    assert!(text.contains("{name=\"fresh\""), "{text}");
    assert_eq!(
        value(&m, CONTAINER_STATE.name, Some(("state", "running"))),
        Some(0.0)
    );
}

#[test]
fn recreated_name_keeps_its_series() {
    let (mut t, m) = tracker();
    t.apply(&event("create", "c1", 1, WEB));
    t.apply(&event("start", "c1", 2, WEB));
    t.apply(&event("destroy", "c1", 3, WEB));
    t.apply(&event("create", "c2", 4, WEB));
    t.apply(&event("start", "c2", 5, WEB));
    t.sweep();
    assert_eq!(value(&m, CONTAINER_STARTS.name, None), Some(2.0));
    assert_eq!(
        value(&m, CONTAINER_RESTARTS.name, None),
        Some(0.0),
        "a new container is not a restart"
    );
}

#[test]
fn unbounded_values_become_bounded_labels() {
    assert_eq!(Code::exit(Some("137")), Code::exit(Some("137")));
    assert_ne!(Code::exit(Some("137")), Code::OTHER);
    assert_eq!(Code::exit(Some("3221225477")), Code::OTHER);
    assert_eq!(Code::exit(Some("256")), Code::OTHER);
    assert_eq!(Code::exit(None), Code::OTHER);
    assert_ne!(Code::signal(Some("9")), Code::OTHER);
    assert_eq!(Code::signal(Some("65")), Code::OTHER);
    assert_eq!(Code::signal(Some("SIGKILL")), Code::OTHER);
    assert_eq!(repository("127.0.0.1:5000/app:v1"), "127.0.0.1:5000/app");
    assert_eq!(
        repository("127.0.0.1:5000/app@sha256:60ae"),
        "127.0.0.1:5000/app"
    );
    assert_eq!(repository("127.0.0.1:5000/app"), "127.0.0.1:5000/app");
    assert_eq!(repository("nginx:1.25"), "nginx");
    let long = "é".repeat(200);
    assert_eq!(cap(&long).len(), 256);
}

/// Podman 4.3's events for one container (its exec events carry no ID; a probe shows as a
/// `health_status` with the status before it, then an ID-less `exec_died`; no `oom` event;
/// `stop` before the die; a kill without a signal) give Docker's metrics.
#[test]
fn podman_events_give_the_same_metrics_as_dockers() {
    use crate::metrics::families::{CONTAINER_EXEC_DURATION, CONTAINER_KILLS};
    let (t, m) = tracker();
    let mut t = t.asking_inspects();
    let s = 1_000_000_000;
    let ev = |action: &str, at: i64, attrs: &[(&str, &str)]| {
        // The first of a key is its value: the event's own exit code before the default.
        let mut all = attrs.to_vec();
        all.push(("containerExitCode", "0"));
        all.extend_from_slice(WEB);
        event(action, "c1", at, &all)
    };
    t.apply(&ev("create", s, &[]));
    t.apply(&ev("init", s, &[]));
    t.apply(&ev("start", 2 * s, &[]));
    let _ = asked(&mut t);
    // A person's exec, then a probe that fails, then one that passes.
    t.apply(&ev("exec", 3 * s, &[]));
    t.apply(&ev("exec_died", 5 * s, &[("containerExitCode", "5")]));
    t.apply(&ev("health_status", 6 * s, &[]).with_health_status("starting"));
    t.apply(&ev(
        "exec_died",
        6 * s + s / 4,
        &[("containerExitCode", "1")],
    ));
    assert_eq!(
        asked(&mut t),
        ["c1"],
        "the probe's outcome, from an inspect"
    );
    t.apply(&ev("health_status", 7 * s, &[]).with_health_status("unhealthy"));
    t.apply(&ev("exec_died", 7 * s + s / 2, &[]));
    let _ = asked(&mut t);
    assert_eq!(
        probes(&m),
        (Some(1.0), Some(1.0), Some(0.75)),
        "successes, failures, seconds"
    );
    assert_eq!(
        value(&m, CONTAINER_EXECS.name, Some(("exit_code", "5"))),
        Some(1.0)
    );
    let exec_sum = format!("{}_sum", CONTAINER_EXEC_DURATION.name);
    assert_eq!(value(&m, &exec_sum, None), Some(2.0));
    let status = |st| Some(("status", st));
    assert_eq!(
        value(&m, CONTAINER_HEALTH_STATUS.name, status("unhealthy")),
        Some(1.0)
    );
    // `docker kill`: a kill without a signal, then the die.
    t.apply(&ev("kill", 8 * s, &[]));
    t.apply(&ev("die", 8 * s, &[("exitCode", "137")]));
    assert_eq!(
        value(&m, CONTAINER_KILLS.name, Some(("signal", "unknown"))),
        Some(1.0)
    );
    let reason = |r| Some(("reason", r));
    assert_eq!(
        value(&m, CONTAINER_LAST_TERMINATION_REASON.name, reason("killed")),
        Some(1.0)
    );
    // `docker stop`: a stop before the die.
    t.apply(&ev("start", 9 * s, &[]));
    t.apply(&ev("stop", 10 * s, &[]));
    t.apply(&ev("die", 10 * s, &[("exitCode", "137")]));
    assert_eq!(
        value(&m, CONTAINER_LAST_TERMINATION_REASON.name, reason("killed")),
        Some(1.0)
    );
    assert_eq!(value(&m, CONTAINER_OOM_KILLS.name, None), Some(0.0));
    // An OOM kill: only a 137 and the engine's inspect say so.
    t.apply(&ev("start", 11 * s, &[]));
    let _ = asked(&mut t);
    t.apply(&ev("die", 12 * s, &[("exitCode", "137")]));
    let req = InspectRequest {
        id: "c1".into(),
        seq: t.seq(),
    };
    assert_eq!(asked(&mut t), ["c1"], "an unexplained 137 asks the engine");
    let answer = |finished| ContainerSnapshot {
        state: Some(ContainerState::Exited),
        oom_killed: true,
        started_at_nano: Some(11 * s),
        finished_at_nano: Some(finished),
        ..snap("c1", "web", ContainerState::Exited, 11 * s, finished)
    };
    t.apply_inspect(&req, &answer(12 * s - 1_000));
    assert_eq!(value(&m, CONTAINER_OOM_KILLS.name, None), Some(1.0));
    assert_eq!(
        value(
            &m,
            CONTAINER_LAST_TERMINATION_REASON.name,
            reason("oom_killed")
        ),
        Some(1.0)
    );
    t.apply_inspect(&req, &answer(12 * s - 1_000));
    assert_eq!(
        value(&m, CONTAINER_OOM_KILLS.name, None),
        Some(1.0),
        "counted once"
    );
    // A container is removed with `remove`.
    t.apply(&ev("cleanup", 13 * s, &[]));
    t.apply(&ev("remove", 13 * s, &[]));
    assert!(t.containers.is_empty(), "removed");
    assert_eq!(
        value(&m, CONTAINER_STATE.name, Some(("state", "exited"))),
        Some(0.0)
    );
}

/// Swarm replaces a task that died with a new container in the same slot: one series for
/// the slot, a restart when the task before died on its own, none when a service update
/// (or a scale-down) stopped it, and the gauges of the slot's newest task.
#[test]
fn a_swarm_slot_is_one_series_and_a_replaced_task_is_a_restart() {
    use crate::metrics::families::SERVICE_UPDATES;
    let m = Arc::new(Metrics::new(&[]).expect("metrics"));
    let mut t = Tracker::new(m.clone(), Duration::from_secs(60));
    let s = 1_000_000_000;
    let task = |action: &str, n: usize, at: i64, extra: &[(&str, &str)]| {
        let ids = ["a1", "b2", "c3"];
        let task_name = format!("web.1.{}", ids[n]);
        let name = task_name.clone();
        let mut attrs: Vec<(String, String)> = extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        attrs.extend([
            ("com.docker.stack.namespace".to_owned(), "shop".to_owned()),
            ("com.docker.swarm.service.name".to_owned(), "web".to_owned()),
            ("com.docker.swarm.task.id".to_owned(), ids[n].to_owned()),
            ("com.docker.swarm.task.name".to_owned(), task_name),
            ("image".to_owned(), "nginx".to_owned()),
            ("name".to_owned(), name),
        ]);
        Event::new(
            "container",
            action,
            &format!("id-{n}"),
            attrs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            "local",
            at,
        )
    };
    let slot = "name=\"web.1\",image=\"nginx\",compose_project=\"\",compose_service=\"\",swarm_service=\"web\",swarm_stack=\"shop\"";
    let value = |metric: &str, extra: &str| {
        let prefix = format!("{metric}{{{slot}{extra}}} ");
        let text = m.encode();
        let line = text.lines().find(|l| l.starts_with(&prefix))?.to_owned();
        line[prefix.len()..].parse::<f64>().ok()
    };
    // The first task crashes; Swarm starts a second in the slot.
    t.apply(&task("create", 0, s, &[]));
    t.apply(&task("start", 0, 2 * s, &[]));
    t.apply(&task("die", 0, 3 * s, &[("exitCode", "4")]));
    t.apply(&task("create", 1, 4 * s, &[]));
    t.apply(&task("start", 1, 5 * s, &[]));
    assert_eq!(value(CONTAINER_STARTS.name, ""), Some(2.0));
    assert_eq!(value(CONTAINER_RESTARTS.name, ""), Some(1.0));
    assert_eq!(value(CONTAINER_STATE.name, ",state=\"running\""), Some(1.0));
    // A service update stops it (SIGTERM) and starts a third: not a crash.
    t.apply(&task("kill", 1, 6 * s, &[("signal", "15")]));
    t.apply(&task("die", 1, 6 * s, &[("exitCode", "143")]));
    t.apply(&task("create", 2, 7 * s, &[]));
    t.apply(&task("start", 2, 8 * s, &[]));
    assert_eq!(value(CONTAINER_STARTS.name, ""), Some(3.0));
    assert_eq!(value(CONTAINER_RESTARTS.name, ""), Some(1.0));
    // Swarm prunes an old task: the running one's state stays.
    t.apply(&task("destroy", 0, 9 * s, &[]));
    assert_eq!(value(CONTAINER_STATE.name, ",state=\"running\""), Some(1.0));
    assert_eq!(value(CONTAINER_STARTED_TIMESTAMP.name, ""), Some(8.0));
    // The container series only: the build's revision (a hex hash) may hold "a1" too.
    let text = m.encode();
    let series = text.lines().filter(|l| l.starts_with("docker_container_"));
    for line in series {
        assert!(
            !line.contains("a1") && !line.contains("b2"),
            "no task ID in a label: {line}"
        );
    }
    // Service events: a spec change is an update, its rollout's progress is not.
    let service = |action: &str, attrs: &[(&str, &str)]| {
        Event::new(
            "service",
            action,
            "svc",
            attrs.iter().copied(),
            "swarm",
            10 * s,
        )
    };
    t.apply(&service("update", &[("name", "web")]));
    t.apply(&service(
        "update",
        &[("name", "web"), ("updatestate.new", "updating")],
    ));
    t.apply(&service(
        "update",
        &[
            ("name", "web"),
            ("replicas.new", "2"),
            ("replicas.old", "1"),
        ],
    ));
    let updates = format!("{}{{service=\"web\"}} 2", SERVICE_UPDATES.name);
    assert!(m.encode().contains(&updates), "{}", m.encode());
}

/// A container's verbs say what changed without touching any series: the tracker writes it.
#[test]
fn a_containers_verbs_say_what_changed() {
    let mut c = Container::new(1, SlotId::first(), false, 0);
    let start = |c: &mut Container, at| c.apply(&event("start", "c", at, &[]), 1);
    let first = start(&mut c, 1_000);
    assert_eq!(
        (first.own, first.gauges, first.start),
        (true, true, Some(container::Start { again: false }))
    );
    assert_eq!(c.state, Some(ContainerState::Running));
    // A SIGTERM ends the run: not a crash, whatever the code.
    let kill = c.apply(&event("kill", "c", 2_000, &[("signal", "15")]), 2);
    assert_eq!(kill.kill, Some(Code::signal(Some("15"))));
    assert!(!kill.gauges, "a kill changes no gauge");
    let die = c.apply(&event("die", "c", 1_000_001_000, &[("exitCode", "143")]), 3);
    let exit = die.exit.expect("an exit");
    assert_eq!(
        (exit.code, exit.on_own, exit.crashed_at, exit.run_seconds),
        (Code::exit(Some("143")), false, None, Some(1.0))
    );
    assert_eq!(
        c.life.last_exit,
        Some((143, Termination::Killed)),
        "its lifecycle"
    );
    // The next start is a restart; a crash after it is one.
    assert!(start(&mut c, 2_000_000_000).start.is_some_and(|s| s.again));
    let crash = c.apply(&event("die", "c", 3_000_000_000, &[("exitCode", "1")]), 5);
    assert_eq!(crash.exit.and_then(|e| e.crashed_at), Some(3_000_000_000));
    // An exec's events: nothing to show until it dies.
    let exec = [("execID", "e1")];
    assert!(!c.apply(&event("exec_start: ls", "c", 4, &exec), 6).counts());
    let ended = c.apply(
        &event("exec_die", "c", 5, &[("execID", "e1"), ("exitCode", "2")]),
        7,
    );
    assert_eq!(
        ended.exec.map(|e| (e.probe, e.code, e.seconds)),
        Some((false, Code::exit(Some("2")), Some(1e-9)))
    );
}
