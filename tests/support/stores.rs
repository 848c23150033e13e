//! Real stores for the sinks, each of the test's own on a loopback port: rotel (an
//! OpenTelemetry collector that prints every log record it receives), rsyslog (imtcp, optionally
//! TLS, into a file in a template of its parsed fields), and nats-server with JetStream. Each
//! can be stopped and started again on the same port and data.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{DEADLINE, free_port, tempdir, wait_until};

/// Starts `cmd` with its output in `log`, and waits until it listens on `port`.
fn start(cmd: &mut Command, what: &str, log: &Path, port: u16) -> Child {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("log file"))
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("{what} runs ({e}); .ci/run installs it"));
    let ok = wait_until(DEADLINE, || TcpStream::connect(("127.0.0.1", port)).is_ok());
    assert!(
        ok,
        "{what} did not listen on {port}; its log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
    child
}

fn stop(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// One log record as rotel printed it.
#[derive(Debug, Default, Clone)]
pub struct OtlpRecord {
    pub time_nano: i64,
    pub observed_nano: i64,
    pub severity: String,
    pub event_name: String,
    pub body: String,
    pub attributes: BTreeMap<String, String>,
    pub resource: BTreeMap<String, String>,
}

/// rotel-agent, receiving OTLP over HTTP and printing each record.
pub struct Rotel {
    pub port: u16,
    grpc_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Rotel {
    pub fn start() -> Self {
        let mut r = Self {
            port: free_port(),
            grpc_port: free_port(),
            dir: tempdir("rotel"),
            child: None,
        };
        r.up();
        r
    }

    fn binary() -> PathBuf {
        let out = Command::new("python3")
            .args([
                "-c",
                "import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), 'rotel-agent'))",
            ])
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "rotel is installed (pip install rotel): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    }

    pub fn up(&mut self) {
        let log = self.dir.join("rotel.log");
        self.child = Some(start(
            Command::new(Self::binary()).args([
                "start",
                "--otlp-http-endpoint",
                &format!("127.0.0.1:{}", self.port),
                "--otlp-grpc-endpoint",
                &format!("127.0.0.1:{}", self.grpc_port),
                "--exporter",
                "blackhole",
                "--debug-log",
                "logs",
                "--debug-log-verbosity",
                "detailed",
            ]),
            "rotel-agent",
            &log,
            self.port,
        ));
    }

    pub fn down(&mut self) {
        stop(&mut self.child);
    }

    /// Every record it received, in order (across restarts).
    pub fn records(&self) -> Vec<OtlpRecord> {
        let text = std::fs::read_to_string(self.dir.join("rotel.log")).unwrap_or_default();
        let mut out = Vec::new();
        let mut resource = BTreeMap::new();
        let mut in_resource = false;
        let mut current: Option<OtlpRecord> = None;
        for line in text.lines() {
            let t = line.trim();
            if t.starts_with("ResourceLog #") {
                out.extend(current.take());
                resource = BTreeMap::new();
                in_resource = false;
            } else if t == "Resource attributes:" {
                in_resource = true;
            } else if t.starts_with("ScopeLogs #") {
                in_resource = false;
            } else if t.starts_with("LogRecord #") {
                out.extend(current.take());
                current = Some(OtlpRecord {
                    resource: resource.clone(),
                    ..OtlpRecord::default()
                });
            } else if let Some((k, v)) = t.strip_prefix("-> ").and_then(|kv| kv.split_once(": ")) {
                let v = v
                    .strip_prefix("Str(")
                    .and_then(|v| v.strip_suffix(')'))
                    .unwrap_or(v)
                    .to_owned();
                match (&mut current, in_resource) {
                    (_, true) => {
                        resource.insert(k.to_owned(), v);
                    }
                    (Some(r), false) => {
                        r.attributes.insert(k.to_owned(), v);
                    }
                    (None, false) => {}
                }
            } else if let Some(r) = &mut current {
                if let Some(v) = t.strip_prefix("Timestamp: ") {
                    r.time_nano = v.parse().unwrap_or(0);
                } else if let Some(v) = t.strip_prefix("ObservedTimestamp: ") {
                    r.observed_nano = v.parse().unwrap_or(0);
                } else if let Some(v) = t.strip_prefix("SeverityText: ") {
                    r.severity = v.to_owned();
                } else if let Some(v) = t.strip_prefix("EventName: ") {
                    r.event_name = v.to_owned();
                } else if let Some(v) = t.strip_prefix("Body: Str(") {
                    r.body = v.strip_suffix(')').unwrap_or(v).to_owned();
                }
            }
        }
        out.extend(current);
        out
    }
}

impl Drop for Rotel {
    fn drop(&mut self) {
        self.down();
    }
}

/// One message as rsyslog parsed it.
#[derive(Debug, Clone)]
pub struct SyslogMessage {
    pub pri: String,
    pub timestamp: String,
    pub hostname: String,
    pub app_name: String,
    pub msgid: String,
    pub structured_data: String,
    pub msg: String,
}

/// rsyslogd with imtcp (plain, or TLS with x509 client certificates when given a certificate
/// folder made by `make_certs`), writing each message's parsed fields to a file.
pub struct Rsyslog {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Rsyslog {
    pub fn start(tls_certs: Option<&Path>) -> Self {
        let dir = tempdir("rsyslog");
        let port = free_port();
        let tls = match tls_certs {
            Some(c) => format!(
                "global(DefaultNetstreamDriver=\"gtls\" DefaultNetstreamDriverCAFile=\"{0}/ca.pem\" \
                 DefaultNetstreamDriverCertFile=\"{0}/server-cert.pem\" DefaultNetstreamDriverKeyFile=\"{0}/server-key.pem\")\n\
                 module(load=\"imtcp\" StreamDriver.Name=\"gtls\" StreamDriver.Mode=\"1\" StreamDriver.AuthMode=\"x509/certvalid\")\n",
                c.display()
            ),
            None => "module(load=\"imtcp\")\n".into(),
        };
        let conf = format!(
            "global(workDirectory=\"{d}\" maxMessageSize=\"256k\")\n{tls}\
             input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\")\n\
             template(name=\"fields\" type=\"string\" string=\"%pri%\\t%timereported:::date-rfc3339%\\t%hostname%\\t%app-name%\\t%msgid%\\t%structured-data%\\t%msg%\\n\")\n\
             action(type=\"omfile\" file=\"{d}/messages\" template=\"fields\")\n",
            d = dir.display()
        );
        std::fs::write(dir.join("rsyslog.conf"), conf).expect("rsyslog.conf");
        let mut r = Self {
            port,
            dir,
            child: None,
        };
        r.up();
        r
    }

    pub fn up(&mut self) {
        let log = self.dir.join("rsyslogd.log");
        self.child = Some(start(
            Command::new("rsyslogd")
                .arg("-n")
                .arg("-f")
                .arg(self.dir.join("rsyslog.conf"))
                .arg("-i")
                .arg(self.dir.join("rsyslogd.pid")),
            "rsyslogd",
            &log,
            self.port,
        ));
    }

    pub fn down(&mut self) {
        // SIGTERM: it writes what it has before it exits.
        if let Some(c) = &self.child {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }

    pub fn messages(&self) -> Vec<SyslogMessage> {
        let text = std::fs::read_to_string(self.dir.join("messages")).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.splitn(7, '\t').collect();
                (f.len() == 7).then(|| SyslogMessage {
                    pri: f[0].into(),
                    timestamp: f[1].into(),
                    hostname: f[2].into(),
                    app_name: f[3].into(),
                    msgid: f[4].into(),
                    structured_data: f[5].into(),
                    msg: f[6].into(),
                })
            })
            .collect()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("rsyslogd.log")).unwrap_or_default()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.down();
    }
}

/// One message of a JetStream stream.
#[derive(Debug, Clone)]
pub struct NatsMessage {
    pub subject: String,
    pub msg_id: String,
    pub payload: String,
}

/// nats-server with JetStream, its store in a folder of the test's.
pub struct NatsServer {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl NatsServer {
    pub fn start() -> Self {
        Self::start_with("")
    }

    /// With more of nats-server's configuration (`max_payload: 4096`).
    pub fn start_with(config: &str) -> Self {
        let dir = tempdir("nats");
        std::fs::write(dir.join("nats.conf"), config).expect("nats.conf");
        let mut n = Self {
            port: free_port(),
            dir,
            child: None,
        };
        n.up();
        n
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn up(&mut self) {
        let log = self.dir.join("nats.log");
        self.child = Some(start(
            Command::new("nats-server")
                .arg("-c")
                .arg(self.dir.join("nats.conf"))
                .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string()])
                .arg("-sd")
                .arg(self.dir.join("store")),
            "nats-server",
            &log,
            self.port,
        ));
    }

    pub fn down(&mut self) {
        stop(&mut self.child);
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    }

    /// Makes the stream `name` take `SUBJECT.>`, as an operator would.
    pub fn add_stream(&self, name: &str, subject: &str) {
        Self::runtime().block_on(async {
            let client = async_nats::connect(self.url())
                .await
                .expect("connect to nats");
            let js = async_nats::jetstream::new(client);
            js.create_stream(async_nats::jetstream::stream::Config {
                name: name.to_owned(),
                subjects: vec![format!("{subject}.>")],
                duplicate_window: Duration::from_secs(600),
                ..Default::default()
            })
            .await
            .expect("create the stream");
        });
    }

    /// Every message the stream holds, in order.
    pub fn messages(&self, stream: &str) -> Vec<NatsMessage> {
        Self::runtime().block_on(async {
            let client = async_nats::connect(self.url())
                .await
                .expect("connect to nats");
            let js = async_nats::jetstream::new(client);
            let mut s = js.get_stream(stream).await.expect("the stream");
            let info = s.info().await.expect("stream info").clone();
            let mut out = Vec::new();
            if info.state.messages == 0 {
                return out;
            }
            for seq in info.state.first_sequence..=info.state.last_sequence {
                let m = s.get_raw_message(seq).await.expect("a message");
                let msg_id = m
                    .headers
                    .get("Nats-Msg-Id")
                    .map(|v| v.as_str().to_owned())
                    .unwrap_or_default();
                out.push(NatsMessage {
                    subject: m.subject.to_string(),
                    msg_id,
                    payload: String::from_utf8_lossy(&m.payload).into_owned(),
                });
            }
            out
        })
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.down();
    }
}
