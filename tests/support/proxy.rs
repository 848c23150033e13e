//! A unix-socket proxy in front of the engine that a test can cut and restore.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub struct Proxy {
    pub path: PathBuf,
    cut: Arc<AtomicBool>,
    frozen: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<UnixStream>>>,
}

impl Proxy {
    pub fn start(upstream: &Path) -> Self {
        let path = super::tempdir("proxy").join("docker.sock");
        let listener = UnixListener::bind(&path).expect("bind the proxy socket");
        let cut = Arc::new(AtomicBool::new(false));
        let frozen = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<UnixStream>>> = Arc::default();
        let upstream = upstream.to_owned();
        let (c, f, s, o) = (cut.clone(), frozen.clone(), stop.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                if c.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                // A frozen path accepts and then says nothing, like a half-open TCP link.
                while f.load(Ordering::SeqCst) && !s.load(Ordering::SeqCst) {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                let Ok(server) = UnixStream::connect(&upstream) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let mut open = o.lock().expect("lock");
                open.retain(|s| s.peer_addr().is_ok());
                for s in [&client, &server] {
                    if let Ok(clone) = s.try_clone() {
                        open.push(clone);
                    }
                }
                pipe(&client, &server, f.clone());
                pipe(&server, &client, f.clone());
            }
        });
        Self {
            path,
            cut,
            frozen,
            stop,
            open,
        }
    }

    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    /// Closes every open connection and refuses new ones until [`Proxy::restore`].
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for s in self.open.lock().expect("lock").drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }

    /// Stops forwarding bytes without closing anything: every connection goes silent.
    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    pub fn thaw(&self) {
        self.frozen.store(false, Ordering::SeqCst);
    }
}

fn pipe(from: &UnixStream, to: &UnixStream, frozen: Arc<AtomicBool>) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            // Bytes read while frozen are held back; a connection that was frozen stays dead.
            if frozen.load(Ordering::SeqCst) {
                while frozen.load(Ordering::SeqCst) {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                break;
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.cut();
        let _ = UnixStream::connect(&self.path);
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The paths a read-only socket proxy lets through, as the README documents them: the
/// exporter needs nothing else. Any `/vX.Y` prefix is allowed in front.
pub const ALLOWED: [&str; 6] = [
    "/events",
    "/containers/json",
    "/containers/{id}/json",
    "/info",
    "/version",
    "/_ping",
];

/// A socket proxy in the style of docker-socket-proxy: GET of the allowed paths only, one
/// request per connection (`Connection: close` is added), 403 for anything else. It records
/// every request it refused.
pub struct ReadOnlyProxy {
    pub path: PathBuf,
    pub refused: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

fn allowed(method: &str, target: &str) -> bool {
    let path = target.split('?').next().unwrap_or("");
    let path = match path.strip_prefix("/v") {
        Some(rest) => rest
            .find('/')
            .filter(|i| rest[..*i].chars().all(|c| c.is_ascii_digit() || c == '.'))
            .map_or(path, |i| &rest[i..]),
        None => path,
    };
    let container_json = path
        .strip_prefix("/containers/")
        .and_then(|p| p.strip_suffix("/json"))
        .is_some_and(|id| !id.is_empty() && !id.contains('/'));
    method == "GET" && (container_json || ALLOWED.iter().any(|a| !a.contains('{') && *a == path))
}

impl ReadOnlyProxy {
    pub fn start(upstream: &Path) -> Self {
        let path = super::tempdir("ro-proxy").join("docker.sock");
        let listener = UnixListener::bind(&path).expect("bind the proxy socket");
        let refused: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let upstream = upstream.to_owned();
        let (r, s) = (refused.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let (upstream, r) = (upstream.clone(), r.clone());
                std::thread::spawn(move || serve_read_only(client, &upstream, &r));
            }
        });
        Self {
            path,
            refused,
            stop,
        }
    }

    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.path.display())
    }
}

fn serve_read_only(mut client: UnixStream, upstream: &Path, refused: &Mutex<Vec<String>>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut first = text.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
    if !allowed(method, target) {
        refused
            .lock()
            .expect("lock")
            .push(format!("{method} {target}"));
        let body = r#"{"message":"forbidden by the read-only proxy"}"#;
        let _ = write!(
            client,
            "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        return;
    }
    let Ok(mut server) = UnixStream::connect(upstream) else {
        return;
    };
    // One request per connection, so that every request passes the check above.
    let head: String = text
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect::<Vec<_>>()
        .join("\r\n");
    let head = head.trim_end_matches("\r\n").to_owned() + "\r\nConnection: close\r\n\r\n";
    if server.write_all(head.as_bytes()).is_err() {
        return;
    }
    let mut buf = [0u8; 16 * 1024];
    loop {
        match server.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if client.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
}

impl Drop for ReadOnlyProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = UnixStream::connect(&self.path);
        let _ = std::fs::remove_file(&self.path);
    }
}
