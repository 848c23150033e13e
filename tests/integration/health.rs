//! Healthchecks: probes are exec events on the engine; they count as healthchecks, not execs.

use crate::support::{
    Cleanup, DEADLINE, Exporter, container_labels, docker, engine_event_count, now_secs,
    test_image, unique, wait_until,
};

#[test]
fn passing_and_failing_healthchecks() {
    let image = test_image();
    let e = Exporter::start(&[]);
    let since = now_secs();
    let (good, bad) = (unique("healthy"), unique("unhealthy"));
    let _c = Cleanup(vec![good.clone(), bad.clone()]);
    crate::support::run_healthy(&good);
    docker(&[
        "run",
        "-d",
        "--name",
        &bad,
        "--health-cmd",
        "exit 1",
        "--health-interval",
        "1s",
        "--health-retries",
        "2",
        image,
        "sleep",
        "300",
    ]);
    e.wait_for(
        "docker_container_health_status",
        &container_labels(&good, &[("status", "healthy")]),
        1.0,
    );
    e.wait_for(
        "docker_container_health_status",
        &container_labels(&bad, &[("status", "unhealthy")]),
        1.0,
    );
    let s = e.scrape();
    for (name, status) in [(&good, "healthy"), (&bad, "unhealthy")] {
        for other in ["starting", "healthy", "unhealthy"] {
            let want = if other == status { 1.0 } else { 0.0 };
            let got = s.value(
                "docker_container_health_status",
                &container_labels(name, &[("status", other)]),
            );
            assert_eq!(got, Some(want), "{name} {other}");
        }
    }
    // A user exec beside the probes stays a user exec.
    docker(&["exec", &good, "true"]);
    docker(&["stop", "-t", "0", &good, &bad]);

    // Every probe the engine reports, counted once: compare with the engine's own events.
    // A probe cut short by the stop may end non-zero, so both results are compared.
    let mut probes = Vec::new();
    for (name, user_execs) in [(&good, 1), (&bad, 0)] {
        let mut last = (0, 0, None, None);
        let agreed = wait_until(DEADLINE, || {
            let until = now_secs();
            let all = engine_event_count(name, &since, &until, "exec_die", None);
            let zero =
                engine_event_count(name, &since, &until, "exec_die", Some(("exitCode", "0")));
            let (success, failure) = (zero.saturating_sub(user_execs), all - zero);
            let s = e.scrape();
            let ours = |r| {
                s.value(
                    "docker_container_healthchecks_total",
                    &container_labels(name, &[("result", r)]),
                )
            };
            last = (success, failure, ours("success"), ours("failure"));
            success + failure >= 2
                && last.2 == Some(success as f64)
                && last.3 == Some(failure as f64)
        });
        assert!(
            agreed,
            "{name}: engine (success, failure) vs ours: {last:?}"
        );
        let total = e.value(
            "docker_container_healthcheck_duration_seconds_count",
            &container_labels(name, &[]),
        );
        assert_eq!(
            total,
            Some((last.0 + last.1) as f64),
            "{name}: one duration per probe"
        );
        probes.push(last);
    }
    assert!(
        probes[0].0 >= 2,
        "the passing check passed: {:?}",
        probes[0]
    );
    assert_eq!(probes[1].0, 0, "the failing check never passed");
    // The probes agreeing says nothing of the user exec, which may still be in the batch
    // window (--docker.batch-window): wait for it, then check it is counted once.
    e.wait_for(
        "docker_container_execs_total",
        &container_labels(&good, &[("exit_code", "0")]),
        1.0,
    );
    let s = e.scrape();
    assert_eq!(
        s.value(
            "docker_container_execs_total",
            &container_labels(&good, &[("exit_code", "0")])
        ),
        Some(1.0)
    );
    assert!(
        s.matching("docker_container_execs_total", &[("name", &bad)])
            .is_empty()
    );
    // A stopped container has no current health.
    e.wait_for(
        "docker_container_state",
        &container_labels(&bad, &[("state", "exited")]),
        1.0,
    );
    for status in ["starting", "healthy", "unhealthy"] {
        assert_eq!(
            e.value(
                "docker_container_health_status",
                &container_labels(&bad, &[("status", status)])
            ),
            Some(0.0)
        );
    }
}
