//! TLS as the docker CLI does it: DOCKER_HOST=tcp://..., DOCKER_TLS_VERIFY, DOCKER_CERT_PATH
//! holding ca.pem, cert.pem and key.pem; the engine verifies our client certificate.

use std::path::Path;
use std::process::Command;

use crate::support::fake_engine::FakeEngine;
use crate::support::{Exporter, tempdir, wait_until};

/// A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl.
pub fn make_certs(dir: &Path) {
    let script = r#"set -e
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
key ca-key.pem
openssl req -x509 -new -key ca-key.pem -out ca.pem -days 2 -subj /CN=dee-test-ca
key server-key.pem
openssl req -new -key server-key.pem -out server.csr -subj /CN=localhost
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 -extfile server.ext -out server-cert.pem 2>/dev/null
key key.pem
openssl req -new -key key.pem -out client.csr -subj /CN=dee-client
printf 'extendedKeyUsage=clientAuth\n' > client.ext
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 -extfile client.ext -out cert.pem 2>/dev/null
"#;
    let out = Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .output()
        .expect("openssl runs (apt-get install openssl)");
    assert!(
        out.status.success(),
        "making certificates: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The labels of the stand-in engine's container, on the engine shown as `engine` if any.
fn ghost(engine: Option<&str>) -> Vec<(&str, &str)> {
    let mut l: Vec<(&str, &str)> = engine.map(|e| ("engine", e)).into_iter().collect();
    l.extend([
        ("name", "tls-ghost"),
        ("image", "img"),
        ("compose_project", ""),
        ("compose_service", ""),
        ("swarm_service", ""),
        ("swarm_stack", ""),
    ]);
    l
}

fn oom_event() -> Vec<u8> {
    br#"{"Type":"container","Action":"oom","Actor":{"ID":"c1","Attributes":{"name":"tls-ghost","image":"img"}},"scope":"local","time":1767225600,"timeNano":1767225600000000007}"#.to_vec()
}

#[test]
fn mutual_tls_with_the_docker_cli_environment() {
    let certs = tempdir("certs");
    make_certs(&certs);
    let engine = FakeEngine::start_tls(vec![oom_event()], &certs);
    let host = engine.docker_host();
    let e = Exporter::start_with_env(
        &[],
        &[
            ("DOCKER_HOST", host.as_str()),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", certs.to_str().expect("utf-8 path")),
        ],
    );
    e.wait_for("docker_container_oom_kills_total", &ghost(None), 1.0);
    assert!(
        !e.scrape()
            .matching("docker_engine_info", &[("version", "99.0.0-fake")])
            .is_empty()
    );
}

/// Several engines, each with its certificates (`--docker.cert-path NAME=DIR`, which asks for
/// TLS too), beside the local engine over its plain socket.
#[test]
fn each_engine_speaks_tls_with_a_cert_folder_of_its_own() {
    let (certs_a, certs_b) = (tempdir("certs-a"), tempdir("certs-b"));
    make_certs(&certs_a);
    make_certs(&certs_b);
    // Two CAs: each engine refuses the other's client certificate, and its server
    // certificate verifies only with its own ca.pem.
    let (a, b) = (
        FakeEngine::start_tls(vec![oom_event()], &certs_a),
        FakeEngine::start_tls(vec![oom_event()], &certs_b),
    );
    let folder = |name: &str, dir: &Path| format!("{name}={}", dir.display());
    let e = Exporter::start(&[
        "--docker.host",
        "local=unix:///var/run/docker.sock",
        "--docker.host",
        &format!("a={}", a.docker_host()),
        "--docker.cert-path",
        &folder("a", &certs_a),
        "--docker.host",
        &format!("b={}", b.docker_host()),
        "--docker.cert-path",
        &folder("b", &certs_b),
    ]);
    for engine in ["a", "b"] {
        e.wait_for(
            "docker_container_oom_kills_total",
            &ghost(Some(engine)),
            1.0,
        );
    }
    e.wait_for("docker_events_exporter_up", &[("engine", "local")], 1.0);
    assert!(
        e.log().contains("endpoint=\"tcp://127.0.0.1:") && e.log().contains("(TLS)"),
        "the engines are reached over TLS; log:\n{}",
        e.log()
    );
}

#[test]
fn an_engine_certificate_from_another_ca_is_refused() {
    let (ours, theirs) = (tempdir("certs-ours"), tempdir("certs-theirs"));
    make_certs(&ours);
    make_certs(&theirs);
    let engine = FakeEngine::start_tls(vec![oom_event()], &theirs);
    let host = engine.docker_host();
    let e = Exporter::spawn(
        &[],
        &[
            ("DOCKER_HOST", host.as_str()),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", ours.to_str().expect("utf-8 path")),
        ],
    );
    let refused = wait_until(crate::support::DEADLINE, || {
        e.log().contains("invalid peer certificate")
    });
    assert!(refused, "{}", e.log());
    assert_eq!(e.value("docker_events_exporter_up", &[]), Some(0.0));
    assert_eq!(engine.open_streams(), 0);
}

/// `curl` against the exporter's HTTPS side; returns (HTTP status, headers and body).
fn curl(port: u16, ca: &Path, args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-s", "-i", "--max-time", "10", "--cacert"])
        .arg(ca)
        .args(args)
        .arg(format!("https://localhost:{port}/metrics"))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("none")
        .to_owned();
    (status, text)
}

#[test]
fn web_config_serves_tls_and_basic_auth_to_a_real_client() {
    let dir = tempdir("web-config");
    make_certs(&dir);
    let hash = bcrypt::hash("s3cret-pw", 6).expect("bcrypt");
    let web = dir.join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: server-cert.pem\n  key_file: server-key.pem\nbasic_auth_users:\n  prometheus: {hash}\n"
        ),
    )
    .expect("write web config");
    // Prometheus' own checker accepts the same file.
    crate::support::run_ok(
        "promtool",
        &["check", "web-config", web.to_str().expect("utf-8")],
    );

    let e = Exporter::spawn(&["--web.config.file", web.to_str().expect("utf-8")], &[]);
    let ca = dir.join("ca.pem");
    let ok = wait_until(crate::support::DEADLINE, || {
        curl(e.port, &ca, &["-u", "prometheus:s3cret-pw"]).0 == "200"
    });
    assert!(ok, "no HTTPS answer; log:\n{}", e.log());
    let (_, body) = curl(e.port, &ca, &["-u", "prometheus:s3cret-pw"]);
    assert!(
        body.contains("\ndocker_events_exporter_build_info{"),
        "{body}"
    );
    let (status, head) = curl(e.port, &ca, &[]);
    assert_eq!(status, "401");
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: basic"),
        "{head}"
    );
    assert_eq!(curl(e.port, &ca, &["-u", "prometheus:wrong"]).0, "401");
    assert_eq!(curl(e.port, &ca, &["-u", "someone:s3cret-pw"]).0, "401");
    // Plain HTTP gets no metrics.
    let plain = crate::support::http_get(e.port, "/metrics");
    assert!(
        plain.as_ref().is_none_or(|(status, _)| *status != 200),
        "{plain:?}"
    );
    let log = e.log();
    assert!(
        !log.contains(&hash) && !log.contains("s3cret-pw"),
        "a secret in the log:\n{log}"
    );
    drop(e);

    // Client certificates, required and verified against a CA.
    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: server-cert.pem\n  key_file: server-key.pem\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n",
    )
    .expect("write web config");
    let e = Exporter::spawn(&["--web.config.file", web.to_str().expect("utf-8")], &[]);
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let with_cert = [
        "--cert",
        cert.to_str().expect("utf-8"),
        "--key",
        key.to_str().expect("utf-8"),
    ];
    let ok = wait_until(crate::support::DEADLINE, || {
        curl(e.port, &ca, &with_cert).0 == "200"
    });
    assert!(
        ok,
        "no HTTPS answer with a client certificate; log:\n{}",
        e.log()
    );
    assert_eq!(
        curl(e.port, &ca, &[]).0,
        "none",
        "the handshake fails without a certificate"
    );
    drop(e);

    // A file both checkers refuse: the exporter names the problem and its place, and exits.
    std::fs::write(&web, "basic_auth_users:\n  prometheus: plain-text-pw\n").expect("write");
    let promtool = Command::new("promtool")
        .args(["check", "web-config"])
        .arg(&web)
        .output()
        .expect("promtool runs");
    assert!(
        !promtool.status.success(),
        "promtool accepted a plain password"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_docker-events-exporter"))
        .args([
            "--web.config.file",
            web.to_str().expect("utf-8"),
            "--web.listen-address",
            "127.0.0.1:0",
        ])
        .output()
        .expect("run the exporter");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr,
        format!(
            "docker-events-exporter: error: 1 problem in the web config:\n{}:2:15: basic_auth_users: the password of \"prometheus\" is not a bcrypt hash; make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`\n",
            web.display()
        )
    );
    assert!(!stderr.contains("plain-text-pw"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}
