//! TLS as the docker CLI does it: DOCKER_HOST=tcp://..., DOCKER_TLS_VERIFY, DOCKER_CERT_PATH
//! holding ca.pem, cert.pem and key.pem; the engine verifies our client certificate.

use std::path::Path;
use std::process::Command;

use crate::support::fake_engine::FakeEngine;
use crate::support::{Exporter, tempdir, wait_until};

/// A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl.
fn make_certs(dir: &Path) {
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
    let ghost = [
        ("name", "tls-ghost"),
        ("image", "img"),
        ("compose_project", ""),
        ("compose_service", ""),
    ];
    e.wait_for("docker_container_oom_kills_total", &ghost, 1.0);
    assert!(
        !e.scrape()
            .matching("docker_engine_info", &[("version", "99.0.0-fake")])
            .is_empty()
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
