//! A stand-in engine that answers the few calls the exporter makes and then streams the event
//! lines a test gives it: for inputs a real engine never sends, and for TLS with client
//! certificates (a second real engine on TLS would need its own dockerd).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

trait Conn: Read + Write + Send {}
impl<T: Read + Write + Send> Conn for T {}

/// What the stand-in engine keeps of its connections.
#[derive(Default)]
struct Seen {
    /// Event connections kept open so the stream does not end.
    streams: Mutex<Vec<Box<dyn Conn>>>,
    /// The `Accept` header of each `GET /events` (empty when there was none).
    accepts: Mutex<Vec<String>>,
}

pub struct FakeEngine {
    host: String,
    pub path: PathBuf,
    seen: Arc<Seen>,
}

impl FakeEngine {
    /// On a unix socket, serves `events` (raw lines, newline added) to every `GET /events`.
    pub fn start(events: Vec<Vec<u8>>) -> Self {
        let path = super::tempdir("fake-engine").join("docker.sock");
        let listener = UnixListener::bind(&path).expect("bind the fake engine socket");
        let seen: Arc<Seen> = Arc::default();
        let kept = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (events, kept) = (events.clone(), kept.clone());
                std::thread::spawn(move || serve(Box::new(conn), &events, &kept));
            }
        });
        Self {
            host: format!("unix://{}", path.display()),
            path,
            seen,
        }
    }

    /// On 127.0.0.1 with TLS: `server-cert.pem`/`server-key.pem` from `certs`, and only clients
    /// presenting a certificate signed by `ca.pem` get an answer.
    pub fn start_tls(events: Vec<Vec<u8>>, certs: &Path) -> Self {
        let ca = CertificateDer::pem_file_iter(certs.join("ca.pem"))
            .expect("ca.pem")
            .collect::<Result<Vec<_>, _>>()
            .expect("ca.pem parses");
        let mut roots = rustls::RootCertStore::empty();
        for c in ca {
            roots.add(c).expect("CA cert");
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
            .build()
            .expect("client verifier");
        let chain = CertificateDer::pem_file_iter(certs.join("server-cert.pem"))
            .expect("server-cert.pem")
            .collect::<Result<Vec<_>, _>>()
            .expect("server-cert.pem parses");
        let key =
            PrivateKeyDer::from_pem_file(certs.join("server-key.pem")).expect("server-key.pem");
        let config = Arc::new(
            rustls::ServerConfig::builder()
                .with_client_cert_verifier(verifier)
                .with_single_cert(chain, key)
                .expect("server TLS config"),
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let seen: Arc<Seen> = Arc::default();
        let kept = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (events, kept, config) = (events.clone(), kept.clone(), config.clone());
                std::thread::spawn(move || {
                    let Ok(tls) = rustls::ServerConnection::new(config) else {
                        return;
                    };
                    serve(
                        Box::new(rustls::StreamOwned::new(tls, conn)),
                        &events,
                        &kept,
                    );
                });
            }
        });
        Self {
            host: format!("tcp://127.0.0.1:{port}"),
            path: PathBuf::new(),
            seen,
        }
    }

    pub fn docker_host(&self) -> String {
        self.host.clone()
    }

    pub fn open_streams(&self) -> usize {
        self.seen.streams.lock().expect("lock").len()
    }

    /// The `Accept` header of each `GET /events` so far, in order.
    pub fn events_accepts(&self) -> Vec<String> {
        self.seen.accepts.lock().expect("lock").clone()
    }
}

/// Reads the request head; None if the peer went away (or failed the TLS handshake).
fn read_head(conn: &mut dyn Conn) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match conn.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

fn serve(mut conn: Box<dyn Conn>, events: &[Vec<u8>], seen: &Seen) {
    let Some(head) = read_head(conn.as_mut()) else {
        return;
    };
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let route = path.split('?').next().unwrap_or("");
    let json = |conn: &mut Box<dyn Conn>, status: &str, body: &str| {
        let _ = write!(
            conn,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ = conn.flush();
    };
    match route {
        "/version" => json(
            &mut conn,
            "200 OK",
            r#"{"Version":"99.0.0-fake","ApiVersion":"1.41","Os":"linux","Arch":"amd64"}"#,
        ),
        "/v1.41/info" => json(
            &mut conn,
            "200 OK",
            r#"{"SystemTime":"2026-01-01T00:00:00.000000001Z"}"#,
        ),
        "/v1.41/containers/json" => json(&mut conn, "200 OK", "[]"),
        "/_ping" => json(&mut conn, "200 OK", "OK"),
        "/v1.41/events" => {
            let accept = head
                .lines()
                .find_map(|l| {
                    l.split_once(':')
                        .filter(|(k, _)| k.eq_ignore_ascii_case("accept"))
                })
                .map(|(_, v)| v.trim().to_owned())
                .unwrap_or_default();
            seen.accepts.lock().expect("lock").push(accept);
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            );
            for line in events {
                let _ = write!(conn, "{:x}\r\n", line.len() + 1);
                let _ = conn.write_all(line);
                let _ = conn.write_all(b"\n\r\n");
            }
            if path.contains("until=") {
                // Asked for what the engine holds up to a past time: it answers and closes.
                let _ = conn.write_all(b"0\r\n\r\n");
                let _ = conn.flush();
                return;
            }
            let _ = conn.flush();
            seen.streams.lock().expect("lock").push(conn);
        }
        _ => json(
            &mut conn,
            "404 Not Found",
            &format!(r#"{{"message":"No such container: {path}"}}"#),
        ),
    }
}
