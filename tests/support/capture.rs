//! A capture server on loopback: records every HTTP request (method, path, headers, body,
//! when) and answers each as a function of it says. It stands in for chat and push services,
//! and is what the exporter's `notify` and the `apprise` CLI are both pointed at.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{DEADLINE, wait_until};

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Captured {
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    /// Lowercased names.
    pub headers: HashMap<String, String>,
    pub body: String,
    pub at: Instant,
}

impl Captured {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// An answer: status, extra headers, body.
pub type Answer = (u16, Vec<(String, String)>, String);

pub struct Capture {
    pub port: u16,
    seen: Arc<Mutex<Vec<Captured>>>,
}

impl Capture {
    /// Answers 200 with `{}` to everything, except what `answer` says otherwise.
    pub fn start(answer: impl Fn(&Captured) -> Option<Answer> + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let seen: Arc<Mutex<Vec<Captured>>> = Arc::default();
        let (log, answer) = (seen.clone(), Arc::new(answer));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (log, answer) = (log.clone(), answer.clone());
                std::thread::spawn(move || serve(conn, &log, &*answer));
            }
        });
        Self { port, seen }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<Captured> {
        self.seen.lock().expect("lock").clone()
    }

    /// The requests whose path starts with `prefix`.
    pub fn to(&self, prefix: &str) -> Vec<Captured> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.starts_with(prefix))
            .collect()
    }

    /// Waits until `n` requests whose path starts with `prefix` arrived; returns them.
    pub fn wait_for(&self, prefix: &str, n: usize) -> Vec<Captured> {
        let ok = wait_until(DEADLINE, || self.to(prefix).len() >= n);
        let got = self.to(prefix);
        assert!(ok, "{n} request(s) to {prefix}; got {got:#?}");
        got
    }

    pub fn clear(&self) {
        self.seen.lock().expect("lock").clear();
    }
}

fn serve(
    conn: std::net::TcpStream,
    log: &Mutex<Vec<Captured>>,
    answer: &(dyn Fn(&Captured) -> Option<Answer> + Send + Sync),
) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(mut write) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    // Keep-alive: one request after another on the same connection.
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or_default().to_owned(),
            parts.next().unwrap_or_default().to_owned(),
        );
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
        let len = headers
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let req = Captured {
            method,
            path,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            at: Instant::now(),
        };
        let (status, extra, body) = answer(&req).unwrap_or((200, Vec::new(), "{}".to_owned()));
        log.lock().expect("lock").push(req);
        let mut head = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in extra {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        if write.write_all(head.as_bytes()).is_err() || write.write_all(body.as_bytes()).is_err() {
            return;
        }
    }
}

/// What a Matrix home server answers Apprise's login and anyone's join: the access token
/// `token`, the room `!room:127.0.0.1`.
pub fn matrix_answers(r: &Captured, token: &str) -> Option<Answer> {
    let json = |v: Value| Some((200, Vec::new(), v.to_string()));
    if r.path.ends_with("/login") {
        return json(serde_json::json!({
            "access_token": token, "home_server": "127.0.0.1", "user_id": "@bot:127.0.0.1"
        }));
    }
    if r.path.contains("/join/") {
        return json(serde_json::json!({"room_id": "!room:127.0.0.1"}));
    }
    if r.path.contains("/send/") {
        return json(serde_json::json!({"event_id": "$e1"}));
    }
    None
}
