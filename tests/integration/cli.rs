//! The binary's contract: errors on bad input, the engine's identity, a clean drain.

use std::process::{Command, Stdio};

use crate::support::{Exporter, docker};

fn run_fails(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_docker-events-exporter"))
        .args(args)
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_TLS_VERIFY")
        .stdin(Stdio::null())
        .output()
        .expect("run the exporter");
    assert_eq!(out.status.code(), Some(1), "{args:?} should fail");
    String::from_utf8_lossy(&out.stderr).trim().to_owned()
}

#[test]
fn bad_docker_host_is_refused_with_what_to_use() {
    assert_eq!(
        run_fails(&["--docker.host", "ssh://me@host/var/run/docker.sock"]),
        "docker-events-exporter: error: docker host \"ssh://me@host/var/run/docker.sock\": no path after the host; the remote's docker finds its own engine"
    );
}

#[test]
fn tls_without_certificates_is_an_error_never_plain_http() {
    let dir = crate::support::tempdir("no-certs");
    let err = run_fails(&[
        "--docker.host",
        "tcp://127.0.0.1:2376",
        "--docker.tls-verify",
        "--docker.cert-path",
        dir.to_str().expect("utf-8 path"),
    ]);
    assert!(
        err.starts_with(&format!(
            "docker-events-exporter: error: cannot read CA certificate {}/ca.pem: ",
            dir.display()
        )),
        "{err}"
    );
}

#[test]
fn clashing_container_labels_are_refused() {
    assert_eq!(
        run_fails(&["--container-label", "a.b", "--container-label", "a_b"]),
        "docker-events-exporter: error: --container-label \"a.b\" and \"a_b\" both become the Prometheus label label_a_b; allow-list only one of them"
    );
}

/// The daemon, `replay --serve` and `check-config` check the flags alike: a path the router
/// cannot take is one line naming the flag, never a panic (exit 101).
#[test]
fn a_bad_telemetry_path_is_one_line_naming_the_flag_for_every_command() {
    for path in ["metrics", "/-/ready", "/api/v1/events"] {
        let expected = format!(
            "docker-events-exporter: error: --web.telemetry-path {path:?} must start with /, differ from /, /-/healthy and /-/ready and be outside /api/ and /static/"
        );
        for command in [
            &["replay", "events.jsonl", "--serve"][..],
            &["replay", "events.jsonl"],
            &["check-config", "rules.yml"],
            &["events"],
            &[],
        ] {
            let mut args = command.to_vec();
            args.extend(["--web.telemetry-path", path]);
            assert_eq!(run_fails(&args), expected, "{args:?}");
        }
    }
}

/// The `events` command's bad input: one line naming what is wrong, exit 1.
#[test]
fn events_refuses_bad_filters_times_and_places_by_name() {
    let keys = "config, container, daemon, engine, event, image, label, network, node, plugin, scope, secret, service, type, volume";
    assert_eq!(
        run_fails(&["events", "--filter", "colour=red"]),
        format!("docker-events-exporter: error: invalid filter \"colour\"; the keys are {keys}")
    );
    assert_eq!(
        run_fails(&["events", "--filter", "web"]),
        "docker-events-exporter: error: --filter \"web\": not KEY=VALUE"
    );
    assert_eq!(
        run_fails(&["events", "--since", "yesterday"]),
        "docker-events-exporter: error: --since \"yesterday\": not a time; give a Unix time (1700000000 or 1700000000.5), an RFC 3339 time (2026-12-01T10:00:00Z) or a duration before now (2h, 30m)"
    );
    assert_eq!(
        run_fails(&["events", "--history.dir", "/nonexistent/dee-history"]),
        "docker-events-exporter: error: --history.dir /nonexistent/dee-history: no such folder"
    );
    let port = crate::support::free_port();
    let refused = run_fails(&[
        "events",
        "--url",
        &format!("http://me:s3cret@127.0.0.1:{port}"),
    ]);
    assert!(
        refused.starts_with(&format!(
            "docker-events-exporter: error: asking http://me:***@127.0.0.1:{port}/api/v1/events; is the exporter running there? (--url): "
        )),
        "{refused}"
    );
    assert!(!refused.contains("s3cret"), "{refused}");
    assert_eq!(
        run_fails(&["--history.retention", "forever"]),
        "docker-events-exporter: error: --history.retention \"forever\": \"forever\" is neither a duration (7d, 12h) nor a size (512MiB, 1GB)"
    );
}

#[test]
fn busy_listen_address_names_the_flag() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let out = run_fails(&["--web.listen-address", &addr]);
    // The error is the last line (the log may say which engine it was about to watch).
    let err = out.lines().last().unwrap_or_default();
    assert!(
        err.starts_with(&format!(
            "docker-events-exporter: error: cannot listen on --web.listen-address \"{addr}\": "
        )),
        "{err}"
    );
}

#[test]
fn engine_identity_a_clean_drain_on_sigterm_and_the_healthcheck() {
    let e = Exporter::start(&[]);
    let version = docker(&["version", "-f", "{{.Server.Version}}"]);
    let api = docker(&["version", "-f", "{{.Server.APIVersion}}"]);
    let s = e.scrape();
    let info = s.matching(
        "docker_engine_info",
        &[("version", &version), ("api_version", &api)],
    );
    assert_eq!(info.len(), 1, "{version} {api}");
    assert_eq!(info[0].1, 1.0);
    assert_eq!(s.value("docker_events_exporter_up", &[]), Some(1.0));
    assert!(
        s.value("process_resident_memory_bytes", &[])
            .is_some_and(|v| v > 0.0)
    );
    assert!(
        !s.matching(
            "docker_events_exporter_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        )
        .is_empty()
    );
    // The image's HEALTHCHECK: 0 while it serves, 1 with why once it is gone.
    let url = format!("http://127.0.0.1:{}", e.port);
    crate::support::exporter_stdout(&["healthcheck", "--url", &url]);
    let status = e.terminate();
    assert!(status.success(), "SIGTERM drains and exits 0, got {status}");
    let why = run_fails(&["healthcheck", "--url", &url]);
    assert!(
        why.starts_with(&format!(
            "docker-events-exporter: error: asking {url}/-/healthy; is the exporter running there? (--url): "
        )),
        "{why}"
    );
}

#[test]
fn generated_events_replay_into_exact_metrics() {
    let bin = env!("CARGO_BIN_EXE_docker-events-exporter");
    let dir = crate::support::tempdir("replay");
    let file = dir.join("events.jsonl");
    let out = Command::new(bin)
        .args([
            "generate-events",
            "--events",
            "20000",
            "--containers",
            "30",
            "--engine",
            "20.10",
        ])
        .output()
        .expect("generate");
    assert!(out.status.success());
    std::fs::write(&file, &out.stdout).expect("write");
    let lines = out
        .stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    // Two lines the pipeline must skip and count.
    std::fs::write(
        dir.join("bad.jsonl"),
        b"{not json\n{\"Type\":\"container\"}\n",
    )
    .expect("write");
    let all = format!(
        "{}\n{}",
        std::fs::read_to_string(&file).expect("read").trim_end(),
        std::fs::read_to_string(dir.join("bad.jsonl")).expect("read")
    );
    std::fs::write(&file, all).expect("write");
    let out = Command::new(bin)
        .args(["replay", file.to_str().expect("utf-8")])
        .output()
        .expect("replay");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(
        summary.contains(&format!("replayed {lines} events (2 unreadable)")),
        "{summary}"
    );
    let s = crate::support::Scrape::parse(&String::from_utf8_lossy(&out.stdout));
    let total: f64 = s
        .matching("docker_events_total", &[])
        .iter()
        .map(|(_, v)| v)
        .sum();
    assert_eq!(total, lines as f64);
    assert_eq!(
        s.value("docker_events_exporter_decode_errors_total", &[]),
        Some(2.0)
    );
    // Every die is one exit: the exit counters add up to the die events.
    let dies = s
        .value(
            "docker_events_total",
            &[("object", "container"), ("action", "die")],
        )
        .expect("dies");
    let exits: f64 = s
        .matching("docker_container_exits_total", &[])
        .iter()
        .map(|(_, v)| v)
        .sum();
    assert_eq!(exits, dies);
}
