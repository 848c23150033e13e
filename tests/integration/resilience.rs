//! Never losing the place: a cut connection, and input a real engine never sends.

use crate::support::engine::PrivateEngine;
use crate::support::fake_engine::FakeEngine;
use crate::support::proxy::Proxy;
use crate::support::{
    Cleanup, DEADLINE, Exporter, container_labels, docker, test_image, unique, wait_status,
    wait_until,
};

/// An exporter that reaches the engine through a proxy the test controls (pinging every
/// second), with a first container `a` counted before anything happens to the connection.
struct Proxied {
    proxy: Proxy,
    exporter: Exporter,
    a: String,
    b: String,
    _cleanup: Cleanup,
}

fn through_a_proxy(what: &str) -> Proxied {
    let image = test_image();
    let proxy = Proxy::start(std::path::Path::new("/var/run/docker.sock"));
    let host = proxy.docker_host();
    let exporter = Exporter::start_with_env(
        &["--docker.ping-interval", "1s"],
        &[("DOCKER_HOST", host.as_str())],
    );
    let (a, b) = (unique(&format!("{what}-a")), unique(&format!("{what}-b")));
    let cleanup = Cleanup(vec![a.clone(), b.clone()]);
    docker(&["run", "-d", "--name", &a, image, "sh", "-c", "exit 0"]);
    exporter.wait_for(
        "docker_container_exits_total",
        &container_labels(&a, &[("exit_code", "0")]),
        1.0,
    );
    Proxied {
        proxy,
        exporter,
        a,
        b,
        _cleanup: cleanup,
    }
}

#[test]
fn events_during_a_connection_cut_are_counted_exactly_once() {
    let image = test_image();
    let p = through_a_proxy("cut");
    let (proxy, e, a, b) = (&p.proxy, &p.exporter, p.a.clone(), p.b.clone());

    proxy.cut();
    e.wait_for("docker_events_exporter_up", &[], 0.0);
    for _ in 0..2 {
        wait_status(&a, "exited");
        docker(&["start", &a]);
    }
    wait_status(&a, "exited");
    docker(&["run", "-d", "--name", &b, image, "sh", "-c", "exit 1"]);
    wait_status(&b, "exited");
    assert_eq!(
        e.value("docker_container_starts_total", &container_labels(&a, &[])),
        Some(1.0)
    );
    proxy.restore();

    e.wait_for("docker_events_exporter_up", &[], 1.0);
    e.wait_for(
        "docker_container_exits_total",
        &container_labels(&a, &[("exit_code", "0")]),
        3.0,
    );
    e.wait_for(
        "docker_container_exits_total",
        &container_labels(&b, &[("exit_code", "1")]),
        1.0,
    );
    let s = e.scrape();
    assert_eq!(
        s.value("docker_container_starts_total", &container_labels(&a, &[])),
        Some(3.0)
    );
    assert_eq!(
        s.value(
            "docker_container_restarts_total",
            &container_labels(&a, &[])
        ),
        Some(2.0)
    );
    assert_eq!(
        s.value(
            "docker_container_run_duration_seconds_count",
            &container_labels(&a, &[])
        ),
        Some(3.0)
    );
    assert_eq!(
        s.value("docker_container_starts_total", &container_labels(&b, &[])),
        Some(1.0)
    );
    assert_eq!(
        s.value("docker_events_exporter_reconnects_total", &[]),
        Some(1.0)
    );
    assert_eq!(
        s.value("docker_events_exporter_decode_errors_total", &[]),
        Some(0.0)
    );
    // The engine held everything: a resume, not a gap.
    s.assert_resumed_without_gap(7.0, "a: 2 starts, 2 dies; b: create, start, die");
}

#[test]
fn malformed_and_unknown_events_are_counted_and_the_stream_lives_on() {
    let t = 1_767_225_600_000_000_000_i64; // 2026-01-01, as the stand-in engine's clock says
    let ev = |typ: &str, action: &str, n: i64| {
        format!(
            r#"{{"Type":"{typ}","Action":"{action}","Actor":{{"ID":"c1","Attributes":{{"name":"ghost","image":"img"}}}},"scope":"local","time":{},"timeNano":{}}}"#,
            (t + n) / 1_000_000_000,
            t + n
        )
        .into_bytes()
    };
    let fake = FakeEngine::start(vec![
        b"{not json".to_vec(),
        br#"{"Action":"start","time":1767225600}"#.to_vec(),
        b"{\"Type\":\"container\",\"Action\":\"\xff\xfe\",\"time\":1767225600}".to_vec(),
        ev("gizmo", "frob", 1),
        ev("container", "teleport: far away", 2),
        ev("container", "oom", 3),
        ev("container", "oom", 3), // the same line again, as a resume replays it
        Vec::new(),
        ev("container", "oom", 4),
    ]);
    let host = fake.docker_host();
    let e = Exporter::start_with_env(&[], &[("DOCKER_HOST", host.as_str())]);
    let ghost = [
        ("name", "ghost"),
        ("image", "img"),
        ("compose_project", ""),
        ("compose_service", ""),
        ("swarm_service", ""),
        ("swarm_stack", ""),
    ];
    e.wait_for("docker_container_oom_kills_total", &ghost, 2.0);
    let s = e.scrape();
    assert_eq!(
        s.value("docker_events_exporter_decode_errors_total", &[]),
        Some(3.0)
    );
    assert_eq!(
        s.value(
            "docker_events_total",
            &[("object", "unknown"), ("action", "unknown")]
        ),
        Some(1.0)
    );
    assert_eq!(
        s.value(
            "docker_events_total",
            &[("object", "container"), ("action", "unknown")]
        ),
        Some(1.0)
    );
    assert_eq!(
        s.value(
            "docker_events_total",
            &[("object", "container"), ("action", "oom")]
        ),
        Some(2.0)
    );
    assert_eq!(s.value("docker_events_exporter_up", &[]), Some(1.0));
    assert_eq!(
        s.value("docker_events_exporter_reconnects_total", &[]),
        Some(0.0)
    );
    assert_eq!(
        s.value(
            "docker_engine_info",
            &[
                ("version", "99.0.0-fake"),
                ("api_version", "1.41"),
                ("os", "linux"),
                ("arch", "amd64")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        s.value("docker_events_exporter_last_event_timestamp_seconds", &[]),
        Some(1_767_225_600.000_000_004)
    );
    assert_eq!(fake.open_streams(), 1, "one subscription, never dropped");
    let log = e.log();
    assert!(
        log.contains("skipping an event line that cannot be read"),
        "{log}"
    );
    assert!(log.contains("error=\"event has no Type\""), "{log}");
    assert!(log.contains("type=gizmo action=frob"), "{log}");
}

#[test]
fn a_silent_half_open_stream_is_detected_by_ping_and_resumed() {
    let image = test_image();
    let p = through_a_proxy("frozen");
    let (proxy, e, a, b) = (&p.proxy, &p.exporter, p.a.clone(), p.b.clone());

    proxy.freeze();
    // Nothing closes: only the failing ping can tell the stream is dead.
    e.wait_for("docker_events_exporter_up", &[], 0.0);
    docker(&["run", "-d", "--name", &b, image, "sh", "-c", "exit 4"]);
    wait_status(&b, "exited");
    proxy.thaw();

    e.wait_for("docker_events_exporter_up", &[], 1.0);
    e.wait_for(
        "docker_container_exits_total",
        &container_labels(&b, &[("exit_code", "4")]),
        1.0,
    );
    let s = e.scrape();
    assert_eq!(
        s.value("docker_container_starts_total", &container_labels(&b, &[])),
        Some(1.0)
    );
    assert_eq!(
        s.value("docker_container_starts_total", &container_labels(&a, &[])),
        Some(1.0)
    );
    assert_eq!(
        s.value("docker_events_exporter_reconnects_total", &[]),
        Some(1.0)
    );
    assert!(e.log().contains("ping failed"), "{}", e.log());
}

#[test]
fn hanging_and_concurrent_scrapes_and_a_reload_leave_the_counts_exact() {
    use std::io::Write as _;
    let image = test_image();
    let dir = crate::support::tempdir("scrapes");
    let a = unique("scrapes");
    let _cleanup = Cleanup(vec![a.clone()]);
    let cfg = dir.join("rules.yml");
    std::fs::write(
        &cfg,
        format!(
            "events_reactor:\n  audit:\n    event: {{type: container, action: die, actor: {{name: {a}}}}}\n    log: {:?}\n",
            dir.join("audit.jsonl").display().to_string()
        ),
    )
    .expect("write config");
    let e = Exporter::start(&["--config", cfg.to_str().expect("utf-8")]);
    // Clients that ask and never read, and one that never finishes asking.
    let mut idle = Vec::new();
    for request in [
        "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /metr",
    ] {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", e.port)).expect("connect");
        s.write_all(request.as_bytes()).expect("write");
        idle.push(s);
    }
    let reloaded_before = e
        .value(
            "docker_events_exporter_config_last_reload_success_timestamp_seconds",
            &[],
        )
        .expect("reload time");
    let port = e.port;
    let scrapers: Vec<_> = (0..20)
        .map(|_| {
            std::thread::spawn(move || {
                let (status, body) =
                    crate::support::http_get(port, "/metrics").expect("a scrape answers");
                (status, body.contains("docker_events_exporter_up 1\n"))
            })
        })
        .collect();
    let _ = std::process::Command::new("kill")
        .args(["-HUP", &e.pid().to_string()])
        .status();
    for _ in 0..3 {
        docker(&["run", "-d", "--name", &a, image, "sh", "-c", "exit 4"]);
        wait_status(&a, "exited");
        docker(&["rm", &a]);
    }
    for s in scrapers {
        assert_eq!(s.join().expect("scraper"), (200, true));
    }
    e.wait_for(
        "docker_container_exits_total",
        &container_labels(&a, &[("exit_code", "4")]),
        3.0,
    );
    e.wait_for(
        "docker_events_exporter_rule_matches_total",
        &[("rule", "audit")],
        3.0,
    );
    let s = e.scrape();
    assert_eq!(
        s.value("docker_container_starts_total", &container_labels(&a, &[])),
        Some(3.0)
    );
    assert_eq!(
        s.value("docker_events_exporter_config_last_reload_successful", &[]),
        Some(1.0)
    );
    let reloaded_after = s
        .value(
            "docker_events_exporter_config_last_reload_success_timestamp_seconds",
            &[],
        )
        .expect("reload time");
    assert!(reloaded_after > reloaded_before, "the SIGHUP reloaded");
    drop(idle);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_hundred_cuts_at_random_moments_lose_nothing_and_count_nothing_twice() {
    const RUNS: usize = 25;
    // An engine of its own: the other tests' events must not push this one's out of the
    // engine's 256-event buffer while the backoff grows (that would be a real gap, counted
    // as one, and is tested elsewhere).
    let engine = std::sync::Arc::new(PrivateEngine::start());
    let proxy = Proxy::start(&engine.socket());
    let host = proxy.docker_host();
    let e = Exporter::start_with_env(
        &["--docker.ping-interval", "1s"],
        &[("DOCKER_HOST", host.as_str())],
    );
    let a = "cut-runner".to_owned();
    engine.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &a,
        crate::support::IMAGE,
        "sh",
        "-c",
        "exit 0",
    ]);
    e.wait_for(
        "docker_container_exits_total",
        &container_labels(&a, &[("exit_code", "0")]),
        1.0,
    );
    let proxy = &proxy;
    // The container runs again and again while the connection is cut under it.
    let runner = {
        let (a, engine) = (a.clone(), engine.clone());
        std::thread::spawn(move || {
            for _ in 0..RUNS {
                engine.docker(&["start", &a]);
                let exited = wait_until(DEADLINE, || {
                    engine.docker(&["inspect", "-f", "{{.State.Status}}", &a]) == "exited"
                });
                assert!(exited, "{a} did not exit");
            }
        })
    };
    // A fixed pseudo-random sequence: the moments vary, the run is reproducible.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |range: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % range
    };
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(20 + next(100)));
        proxy.cut();
        std::thread::sleep(std::time::Duration::from_millis(5 + next(50)));
        proxy.restore();
    }
    runner.join().expect("runner");
    // The backoff may have grown during the cuts (up to 30 s): wait past it.
    let mut last = None;
    let counted = wait_until(std::time::Duration::from_secs(90), || {
        last = e.value(
            "docker_container_exits_total",
            &container_labels(&a, &[("exit_code", "0")]),
        );
        last == Some(1.0 + RUNS as f64)
    });
    assert!(
        counted,
        "exits: {last:?}; log:\n{}",
        crate::support::tail(&e.log(), 40)
    );
    let s = e.scrape();
    assert_eq!(
        s.value("docker_container_starts_total", &container_labels(&a, &[])),
        Some(1.0 + RUNS as f64),
        "log:\n{}",
        crate::support::tail(&e.log(), 40)
    );
    assert_eq!(
        s.value(
            "docker_container_restarts_total",
            &container_labels(&a, &[])
        ),
        Some(RUNS as f64)
    );
    assert_eq!(
        s.value("docker_events_exporter_decode_errors_total", &[]),
        Some(0.0)
    );
    assert_eq!(
        s.value("docker_events_exporter_stream_gaps_total", &[]),
        Some(0.0)
    );
    // The cuts hit the stream and the attempts to resubscribe (which back off meanwhile).
    let log = e.log();
    let losses = log.matches("event stream lost; resubscribing").count();
    assert!(
        losses >= 5,
        "the cuts cut the stream only {losses} times; log:\n{}",
        crate::support::tail(&log, 60)
    );
    assert!(
        s.value("docker_events_exporter_reconnects_total", &[])
            .is_some_and(|r| r >= 1.0)
    );
}

/// Engines from 29 on (API 1.52) negotiate the events' framing: the exporter asks for
/// newline-delimited JSON, and still reads an RFC 7464 JSON text sequence (each record after a
/// 0x1E) should an engine send one anyway.
#[test]
fn events_are_asked_for_as_ndjson_and_json_seq_records_are_read_too() {
    let t = 1_767_225_600_000_000_000_i64; // the stand-in engine's clock
    let oom = |n: i64, framing: &[u8]| {
        let mut line = framing.to_vec();
        line.extend_from_slice(
            format!(
                r#"{{"Type":"container","Action":"oom","Actor":{{"ID":"c1","Attributes":{{"name":"seq","image":"img"}}}},"scope":"local","time":{},"timeNano":{}}}"#,
                (t + n) / 1_000_000_000,
                t + n
            )
            .as_bytes(),
        );
        line
    };
    let fake = FakeEngine::start(vec![oom(1, b"\x1e"), oom(2, b""), oom(3, b"\x1e ")]);
    let host = fake.docker_host();
    let e = Exporter::start_with_env(&[], &[("DOCKER_HOST", host.as_str())]);
    let labels = [
        ("name", "seq"),
        ("image", "img"),
        ("compose_project", ""),
        ("compose_service", ""),
        ("swarm_service", ""),
        ("swarm_stack", ""),
    ];
    e.wait_for("docker_container_oom_kills_total", &labels, 3.0);
    assert_eq!(
        e.value("docker_events_exporter_decode_errors_total", &[]),
        Some(0.0)
    );
    let accepts = fake.events_accepts();
    assert!(!accepts.is_empty(), "the exporter subscribed");
    for accept in accepts {
        assert_eq!(
            accept,
            "application/jsonl, application/x-ndjson, application/json;q=0.5"
        );
    }
}
