//! Holding the keys to the socket without becoming a way in: a read-only socket proxy that
//! refuses everything the exporter should not need, and an unprivileged user.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::support::proxy::ReadOnlyProxy;
use crate::support::{
    Cleanup, DEADLINE, Exporter, container_labels, docker, tempdir, unique, wait_until,
};

/// Sends one raw request through the proxy socket; returns the status line.
fn raw(socket: &Path, request: &str) -> String {
    let mut s = UnixStream::connect(socket).expect("connect to the proxy");
    s.write_all(request.as_bytes()).expect("write");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn works_unprivileged_through_a_read_only_socket_proxy() {
    let proxy = ReadOnlyProxy::start(Path::new("/var/run/docker.sock"));
    // The proxy really refuses: a write and an unlisted read.
    assert_eq!(
        raw(
            &proxy.path,
            "POST /v1.41/containers/create HTTP/1.1\r\nHost: d\r\nContent-Length: 0\r\n\r\n"
        ),
        "HTTP/1.1 403 Forbidden"
    );
    assert_eq!(
        raw(
            &proxy.path,
            "GET /v1.41/images/json HTTP/1.1\r\nHost: d\r\n\r\n"
        ),
        "HTTP/1.1 403 Forbidden"
    );
    assert_eq!(
        raw(&proxy.path, "GET /v1.41/_ping HTTP/1.1\r\nHost: d\r\n\r\n"),
        "HTTP/1.1 200 OK"
    );
    proxy.refused.lock().expect("lock").clear();
    // The unprivileged exporter must be able to connect to the proxy's socket and to write
    // its action's output.
    std::fs::set_permissions(
        &proxy.path,
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .expect("chmod socket");
    let dir = tempdir("ro-proxy-rules");
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777))
        .expect("chmod dir");
    let out = dir.join("argv.jsonl");
    let name = unique("ro-proxy");
    let _c = Cleanup(vec![name.clone()]);
    let cfg = dir.join("rules.yml");
    std::fs::write(
        &cfg,
        format!(
            "events_reactor:\n  ip:\n    event: {{type: container, action: start, actor: {{name: {name}}}}}\n    \
             run: [\"/usr/bin/python3\", \"-c\", \"import sys; print(sys.argv[2], file=open(sys.argv[1], 'a'))\", {:?}, \"%%ip%% %%actor.name%%\"]\n",
            out.display().to_string()
        ),
    )
    .expect("write config");
    let host = proxy.docker_host();
    let e = Exporter::start_unprivileged(
        &[
            "--config",
            cfg.to_str().expect("utf-8"),
            "--docker.ping-interval",
            "1s",
        ],
        &[("DOCKER_HOST", host.as_str())],
    );
    crate::support::run_healthy(&name);
    e.wait_for(
        "docker_container_health_status",
        &container_labels(&name, &[("status", "healthy")]),
        1.0,
    );
    let ip = crate::support::container_ip(&name);
    assert!(!ip.is_empty());
    docker(&["kill", &name]);
    e.wait_for(
        "docker_container_exits_total",
        &container_labels(&name, &[("exit_code", "137")]),
        1.0,
    );
    let ok = wait_until(DEADLINE, || {
        std::fs::read_to_string(&out).is_ok_and(|t| t.lines().count() == 1)
    });
    assert!(ok, "the rule's command ran; log:\n{}", e.log());
    let line = std::fs::read_to_string(&out).expect("read");
    assert_eq!(
        line,
        format!("{ip} {name}\n"),
        "%%ip%% learnt through the proxy"
    );
    let s = e.scrape();
    assert_eq!(
        s.value(
            "docker_container_starts_total",
            &container_labels(&name, &[])
        ),
        Some(1.0)
    );
    assert_eq!(
        s.value(
            "docker_container_kills_total",
            &container_labels(&name, &[("signal", "9")])
        ),
        Some(1.0)
    );
    assert_eq!(
        *proxy.refused.lock().expect("lock"),
        Vec::<String>::new(),
        "the exporter asked for something the read-only proxy refuses"
    );
    if crate::support::nix_is_root() {
        let uid = std::fs::read_to_string(format!("/proc/{}/status", e.pid())).expect("status");
        assert!(
            uid.lines()
                .any(|l| l.starts_with("Uid:") && l.contains("65534")),
            "{uid}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}
