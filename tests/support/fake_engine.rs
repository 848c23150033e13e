//! A stand-in engine on a unix socket that answers the few calls the exporter makes and then
//! streams the event lines a test gives it: for the inputs a real engine never sends.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub struct FakeEngine {
    pub path: PathBuf,
    /// Event connections kept open so the stream does not end.
    streams: Arc<Mutex<Vec<UnixStream>>>,
}

impl FakeEngine {
    /// Serves `events` (raw lines, newline added) to every `GET /events`.
    pub fn start(events: Vec<Vec<u8>>) -> Self {
        let path = super::tempdir("fake-engine").join("docker.sock");
        let listener = UnixListener::bind(&path).expect("bind the fake engine socket");
        let streams: Arc<Mutex<Vec<UnixStream>>> = Arc::default();
        let kept = streams.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let events = events.clone();
                let kept = kept.clone();
                std::thread::spawn(move || serve(conn, &events, &kept));
            }
        });
        Self { path, streams }
    }

    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    pub fn open_streams(&self) -> usize {
        self.streams.lock().expect("lock").len()
    }
}

fn serve(conn: UnixStream, events: &[Vec<u8>], kept: &Mutex<Vec<UnixStream>>) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).is_err() || header == "\r\n" || header.is_empty() {
            break;
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_owned();
    let mut conn = conn;
    let route = path.split('?').next().unwrap_or("");
    let json = |conn: &mut UnixStream, status: &str, body: &str| {
        let _ = write!(
            conn,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
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
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            );
            for line in events {
                let _ = write!(conn, "{:x}\r\n", line.len() + 1);
                let _ = conn.write_all(line);
                let _ = conn.write_all(b"\n\r\n");
            }
            let _ = conn.flush();
            kept.lock().expect("lock").push(conn);
        }
        _ => json(
            &mut conn,
            "404 Not Found",
            &format!(r#"{{"message":"No such container: {path}"}}"#),
        ),
    }
}
