//! Swarm services on a single-node swarm the test makes: a task is its slot, and a task that
//! replaces one that died is a restart of the slot (and its crashes a crash loop of the slot).

use crate::support::swarm::{RemoveServices, Swarm, create_service};
use crate::support::{
    DEADLINE, Exporter, IMAGE, PYTHON, RECORD_ARGV, docker, recorded_argv, rules_config, tempdir,
    test_image, unique, wait_until,
};

fn slot_labels<'a>(slot: &'a str, service: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("name", slot),
        ("image", IMAGE),
        ("compose_project", ""),
        ("compose_service", ""),
        ("swarm_service", service),
        ("swarm_stack", ""),
    ]
}

/// The slot's crashes across its tasks are one crash loop, told once; removing the service
/// ends it, once.
#[test]
fn a_looping_service_is_one_series_per_slot_with_restarts_and_an_update_is_not_a_crash() {
    let image = test_image();
    let _swarm = Swarm::join();
    let (looping, steady) = (unique("sw-loop"), unique("sw-steady"));
    let _services = RemoveServices(vec![looping.clone(), steady.clone()]);
    let dir = tempdir("sw-loop");
    let out = dir.join("argv.jsonl");
    let cfg = rules_config(
        &dir,
        &format!(
            "events_reactor:\n  looping:\n    condition: crash_loop\n    \
             event: {{actor: {{com.docker.swarm.service.name: {looping}}}}}\n    \
             run: [{PYTHON:?}, \"-c\", {RECORD_ARGV:?}, {out:?}, \"%%status%%\", \"%%exits%%\", \"%%last_exit_code%%\"]\n",
            out = out.display().to_string()
        ),
    );
    let e = Exporter::start(&["--config", cfg.to_str().expect("utf-8")]);
    create_service(&looping, image, "sleep 1; exit 4");
    create_service(&steady, image, "exec sleep 300");
    let slot = format!("{looping}.1");
    let labels = slot_labels(&slot, &looping);
    let mut last = None;
    let looped = wait_until(DEADLINE * 2, || {
        last = e.value("docker_container_restarts_total", &labels);
        last.is_some_and(|v| v >= 3.0)
    });
    assert!(
        looped,
        "restarts of {slot}: last saw {last:?}; log:\n{}",
        e.log()
    );
    let s = e.scrape();
    let starts = s.matching(
        "docker_container_starts_total",
        &[("swarm_service", &looping)],
    );
    assert_eq!(starts.len(), 1, "one series for the slot: {starts:?}");
    let (started, restarted) = (
        s.value("docker_container_starts_total", &labels)
            .unwrap_or_default(),
        s.value("docker_container_restarts_total", &labels)
            .unwrap_or_default(),
    );
    assert_eq!(
        restarted,
        started - 1.0,
        "every task after the first is a restart"
    );
    let exits = s.value(
        "docker_container_exits_total",
        &[labels.as_slice(), &[("exit_code", "4")]].concat(),
    );
    assert!(exits.is_some_and(|x| x >= restarted), "exits {exits:?}");
    // No task ID in any label.
    let tasks = docker(&["service", "ps", "-q", "--no-trunc", &looping]);
    let text = crate::support::http_get(e.port, "/metrics")
        .expect("scrape")
        .1;
    for id in tasks.split_whitespace() {
        assert!(!text.contains(id), "task ID {id} in the metrics");
    }

    // A forced update of a steady service replaces its task: an update, not a restart.
    let steady_slot = format!("{steady}.1");
    let steady_labels = slot_labels(&steady_slot, &steady);
    e.wait_for(
        "docker_container_state",
        &[steady_labels.as_slice(), &[("state", "running")]].concat(),
        1.0,
    );
    docker(&["service", "update", "-d", "--force", &steady]);
    e.wait_for("docker_service_updates_total", &[("service", &steady)], 1.0);
    e.wait_for("docker_container_starts_total", &steady_labels, 2.0);
    e.wait_for(
        "docker_container_state",
        &[steady_labels.as_slice(), &[("state", "running")]].concat(),
        1.0,
    );
    let s = e.scrape();
    assert_eq!(
        s.value("docker_container_restarts_total", &steady_labels),
        Some(0.0)
    );
    assert_eq!(
        s.value(
            "docker_container_last_termination_reason",
            &[steady_labels.as_slice(), &[("reason", "killed")]].concat()
        ),
        None,
        "the gauges are the new task's, which has not exited"
    );
    let created = s.value(
        "docker_events_total",
        &[("object", "service"), ("action", "create")],
    );
    assert!(
        created.is_some_and(|c| c >= 2.0),
        "service events: {created:?}"
    );

    // Its tasks' crashes were one loop of the slot, told once; the service's removal ends it.
    assert_eq!(recorded_argv(&out), [["firing", "3", "4"]]);
    docker(&["service", "rm", &looping]);
    let ended = wait_until(DEADLINE, || recorded_argv(&out).len() >= 2);
    assert!(ended, "{:?}; log:\n{}", recorded_argv(&out), e.log());
    assert_eq!(
        recorded_argv(&out),
        [["firing", "3", "4"], ["resolved", "3", "4"]]
    );
}
