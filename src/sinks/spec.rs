//! `--sink URL`: which store, where, and how, checked once (the daemon and `check-config` run
//! the same checks). Secrets come from the environment or a file named in the URL, never from
//! the URL itself, so that the URL can be shown in logs and as the `sink` label.

use std::path::PathBuf;
use std::time::Duration;

use crate::history::Filters;
use crate::secret::Secret;

/// Events in one batch, unless `?batch=` says otherwise.
pub const DEFAULT_BATCH_EVENTS: usize = 1000;
/// The most a batch may hold: a store's request limit is commonly 4 MiB and more.
pub const MAX_BATCH_BYTES: usize = 3 * 1024 * 1024;
/// How long a batch may wait for more events before it goes.
pub const DEFAULT_FLUSH: Duration = Duration::from_secs(1);
/// How long one send may take before it counts as failed (and is retried).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// One `--sink`, checked.
#[derive(Debug)]
pub struct SinkSpec {
    /// The URL without its query: what logs and the `sink` label show.
    pub shown: String,
    pub host: String,
    pub port: u16,
    pub kind: Kind,
    /// Only the events these pass (the engine's filter syntax, `?filter=type=container`).
    pub filters: Filters,
    pub batch_events: usize,
    pub flush: Duration,
    pub timeout: Duration,
}

#[derive(Debug)]
pub enum Kind {
    /// OpenTelemetry logs over HTTP.
    Otlp {
        https: bool,
        path: String,
        json: bool,
        headers: Vec<(http::HeaderName, Secret)>,
        ca: Option<PathBuf>,
    },
    /// RFC 5424 over TCP (RFC 6587 octet counting), or TLS (RFC 5425).
    Syslog {
        tls: Option<Tls>,
        app_name: String,
        /// The facility's number (`daemon` is 3).
        facility: u8,
    },
    /// JetStream publishes, each awaited for its ack.
    Nats {
        tls: Option<Tls>,
        subject: String,
        auth: NatsAuth,
    },
}

/// A TLS client's files: the CA to trust (else the system's roots) and a client certificate.
#[derive(Debug, Default, Clone)]
pub struct Tls {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, Default)]
pub enum NatsAuth {
    #[default]
    None,
    UserPassword(String, Secret),
    Token(Secret),
}

/// Why a `--sink` was refused: what and where, with a hint.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("--sink {shown}: {problem}")]
pub struct SpecError {
    shown: String,
    problem: String,
}

const SCHEMES: &str = "otlp://, otlps://, syslog://, syslogs://, nats:// or tls://";
const COMMON: &[&str] = &["filter", "batch", "flush", "timeout"];
const OTLP: &[&str] = &["encoding", "header_from_env", "header_file", "ca"];
const SYSLOG: &[&str] = &["app_name", "facility", "ca", "cert", "key"];
const NATS: &[&str] = &[
    "user",
    "password_from_env",
    "password_file",
    "token_from_env",
    "token_file",
    "ca",
    "cert",
    "key",
];
const FACILITIES: &[&str] = &[
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

impl SinkSpec {
    /// Checks one `--sink` value; `env` reads an environment variable (the process's, or a
    /// test's).
    pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, SpecError> {
        let fail = |shown: &str, problem: String| SpecError {
            shown: shown.to_owned(),
            problem,
        };
        let url = url::Url::parse(text).map_err(|e| {
            fail(
                &strip_query(text),
                format!("not a URL ({e}); write it as {SCHEMES}HOST:PORT..."),
            )
        })?;
        let scheme = url.scheme().to_owned();
        let host = url.host_str().unwrap_or_default().to_owned();
        let default_port = match scheme.as_str() {
            "otlp" => 4318,
            "otlps" => 443,
            "syslog" => 514,
            "syslogs" => 6514,
            "nats" | "tls" => 4222,
            _ => {
                return Err(fail(
                    &strip_query(text),
                    format!("unknown scheme {scheme:?}; a sink is {SCHEMES}"),
                ));
            }
        };
        let port = url.port().unwrap_or(default_port);
        let path = url.path().to_owned();
        let shown = format!(
            "{scheme}://{}:{port}{}",
            bracketed(&host),
            path_shown(&path)
        );
        let fail = |problem: String| fail(&shown, problem);
        if host.is_empty() {
            return Err(fail("no host; write it as SCHEME://HOST:PORT".into()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(fail(
                "credentials in the URL would show in logs and `ps`; name the user with ?user= \
                 and take the secret from the environment or a file (?password_from_env=VAR)"
                    .into(),
            ));
        }
        let own: &[&str] = match scheme.as_str() {
            "otlp" | "otlps" => OTLP,
            "syslog" | "syslogs" => SYSLOG,
            _ => NATS,
        };
        let mut q = Query::default();
        for (k, v) in url.query_pairs() {
            if !COMMON.contains(&&*k) && !own.contains(&&*k) {
                let all: Vec<&str> = COMMON.iter().chain(own).copied().collect();
                return Err(fail(format!(
                    "unknown option {k:?}; the options of {scheme}:// are {}",
                    all.join(", ")
                )));
            }
            q.pairs.push((k.into_owned(), v.into_owned()));
        }
        let filters =
            Filters::from_args(&q.all("filter")).map_err(|e| fail(format!("?filter: {e}")))?;
        let batch_events = match q.one("batch").map_err(&fail)? {
            None => DEFAULT_BATCH_EVENTS,
            Some(n) => n
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=100_000).contains(n))
                .ok_or_else(|| {
                    fail(format!(
                        "?batch={n}: give a number of events from 1 to 100000"
                    ))
                })?,
        };
        let duration = |key: &str, default: Duration| -> Result<Duration, SpecError> {
            match q.one(key).map_err(&fail)? {
                None => Ok(default),
                Some(d) => humantime::parse_duration(d)
                    .ok()
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| fail(format!("?{key}={d}: not a duration above 0 (500ms, 2s)"))),
            }
        };
        let flush = duration("flush", DEFAULT_FLUSH)?;
        let timeout = duration("timeout", DEFAULT_TIMEOUT)?;
        let secret = |key: &str| -> Result<Option<Secret>, SpecError> {
            read_secret(&q, key, env).map_err(&fail)
        };
        let tls = |on: bool| -> Result<Option<Tls>, SpecError> {
            let files = Tls {
                ca: q.one("ca").map_err(&fail)?.map(PathBuf::from),
                cert: q.one("cert").map_err(&fail)?.map(PathBuf::from),
                key: q.one("key").map_err(&fail)?.map(PathBuf::from),
            };
            if !on && (files.ca.is_some() || files.cert.is_some()) {
                return Err(fail(format!(
                    "?ca and ?cert are for TLS; use {}",
                    if scheme == "nats" {
                        "tls://"
                    } else {
                        "the scheme ending in s"
                    }
                )));
            }
            if files.cert.is_some() != files.key.is_some() {
                return Err(fail("?cert and ?key go together".into()));
            }
            for (what, p) in [
                ("ca", &files.ca),
                ("cert", &files.cert),
                ("key", &files.key),
            ] {
                if let Some(p) = p
                    && !p.is_file()
                {
                    return Err(fail(format!("?{what}={}: no such file", p.display())));
                }
            }
            Ok(on.then_some(files))
        };
        let kind = match scheme.as_str() {
            "otlp" | "otlps" => {
                let json = match q.one("encoding").map_err(&fail)? {
                    None | Some("protobuf") => false,
                    Some("json") => true,
                    Some(other) => {
                        return Err(fail(format!(
                            "?encoding={other}: the encodings are protobuf (the default) and json"
                        )));
                    }
                };
                let mut headers = Vec::new();
                for (key, from) in [("header_from_env", true), ("header_file", false)] {
                    for spec in q.all(key) {
                        let (name, place) = spec.split_once('=').ok_or_else(|| {
                            fail(format!(
                                "?{key}={spec}: write it as NAME=VARIABLE or NAME=PATH"
                            ))
                        })?;
                        let name = http::HeaderName::try_from(name)
                            .map_err(|_| fail(format!("?{key}: {name:?} is not a header name")))?;
                        let value = if from {
                            env(place).ok_or_else(|| {
                                fail(format!(
                                    "?{key}: the environment variable {place} is not set"
                                ))
                            })?
                        } else {
                            file_secret(place).map_err(|e| fail(format!("?{key}: {e}")))?
                        };
                        if http::HeaderValue::try_from(value.as_str()).is_err() {
                            return Err(fail(format!(
                                "?{key}: the value for {name} is not a valid header value"
                            )));
                        }
                        headers.push((name, Secret::new(value)));
                    }
                }
                let https = scheme == "otlps";
                let ca = tls(https)?.and_then(|t| t.ca);
                Kind::Otlp {
                    https,
                    path: if path.is_empty() || path == "/" {
                        "/v1/logs".into()
                    } else {
                        path.clone()
                    },
                    json,
                    headers,
                    ca,
                }
            }
            "syslog" | "syslogs" => {
                if !(path.is_empty() || path == "/") {
                    return Err(fail(format!("a syslog sink has no path ({path})")));
                }
                let app_name = q.one("app_name").map_err(&fail)?.unwrap_or("docker-events");
                if app_name.is_empty()
                    || app_name.len() > 48
                    || !app_name.bytes().all(|b| (33..=126).contains(&b))
                {
                    return Err(fail(format!(
                        "?app_name={app_name}: 1 to 48 printable ASCII characters, no spaces (RFC 5424)"
                    )));
                }
                let facility = match q.one("facility").map_err(&fail)? {
                    None => 3,
                    Some(f) => FACILITIES
                        .iter()
                        .position(|n| *n == f)
                        .and_then(|i| u8::try_from(i).ok())
                        .ok_or_else(|| {
                            fail(format!("?facility={f}: one of {}", FACILITIES.join(", ")))
                        })?,
                };
                Kind::Syslog {
                    tls: tls(scheme == "syslogs")?,
                    app_name: app_name.to_owned(),
                    facility,
                }
            }
            _ => {
                let subject = percent_encoding::percent_decode_str(path.trim_start_matches('/'))
                    .decode_utf8_lossy()
                    .into_owned();
                let subject = subject.as_str();
                if subject.is_empty()
                    || subject.contains('/')
                    || subject
                        .split('.')
                        .any(|t| t.is_empty() || t.contains(['*', '>', ' ']))
                {
                    return Err(fail(format!(
                        "the subject {subject:?} is not one NATS publishes to; write it as \
                         {scheme}://HOST:PORT/SUBJECT, e.g. docker.events (no wildcards)"
                    )));
                }
                let auth = match (
                    q.one("user").map_err(&fail)?,
                    secret("password")?,
                    secret("token")?,
                ) {
                    (None, None, None) => NatsAuth::None,
                    (Some(user), Some(password), None) => {
                        NatsAuth::UserPassword(user.to_owned(), password)
                    }
                    (None, None, Some(token)) => NatsAuth::Token(token),
                    _ => {
                        return Err(fail(
                            "give ?user= with a password (?password_from_env= or \
                             ?password_file=), or a token (?token_from_env= or ?token_file=)"
                                .into(),
                        ));
                    }
                };
                Kind::Nats {
                    tls: tls(scheme == "tls")?,
                    subject: subject.to_owned(),
                    auth,
                }
            }
        };
        Ok(Self {
            shown,
            host,
            port,
            kind,
            filters,
            batch_events,
            flush,
            timeout,
        })
    }

    /// The name of the sink's cursor file: stable for the same store and path.
    pub fn cursor_name(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, self.shown.as_bytes());
        let scheme = self.shown.split(':').next().unwrap_or("sink");
        format!(
            "{scheme}-{}.cursor",
            super::record::hex(&digest.as_ref()[..8])
        )
    }
}

/// The URL's options, in order; a key may repeat where it makes sense (`filter`).
#[derive(Default)]
struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    fn all(&self, key: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn one(&self, key: &str) -> Result<Option<&str>, String> {
        match self.all(key)[..] {
            [] => Ok(None),
            [v] => Ok(Some(v)),
            _ => Err(format!("?{key} is given more than once")),
        }
    }
}

/// `KEY_from_env` or `KEY_file`, at most one of them.
fn read_secret(
    q: &Query,
    key: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Secret>, String> {
    let from_env = format!("{key}_from_env");
    let from_file = format!("{key}_file");
    match (q.one(&from_env)?, q.one(&from_file)?) {
        (None, None) => Ok(None),
        (Some(var), None) => env(var)
            .map(|v| Some(Secret::new(v)))
            .ok_or_else(|| format!("?{from_env}: the environment variable {var} is not set")),
        (None, Some(path)) => file_secret(path)
            .map(|v| Some(Secret::new(v)))
            .map_err(|e| format!("?{from_file}: {e}")),
        (Some(_), Some(_)) => Err(format!("give one of ?{from_env} and ?{from_file}")),
    }
}

/// A secret kept in a file: its text without the final newline.
fn file_secret(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim_end_matches(['\r', '\n']).to_owned())
        .map_err(|e| format!("cannot read {path}: {e}"))
}

/// The text before any query or credentials, for a URL that did not parse.
fn strip_query(text: &str) -> String {
    let no_query = text.split(['?', '#']).next().unwrap_or_default();
    match (no_query.find("://"), no_query.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}{}", &no_query[..s + 3], &no_query[at + 1..]),
        _ => no_query.to_owned(),
    }
}

pub(super) fn bracketed(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

fn path_shown(path: &str) -> &str {
    if path == "/" { "" } else { path }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SinkSpec, String> {
        let env = |k: &str| match k {
            "TOKEN" => Some("s3cret".to_owned()),
            _ => None,
        };
        SinkSpec::parse(text, &env).map_err(|e| e.to_string())
    }

    #[test]
    fn each_scheme_takes_its_defaults() {
        let s = parse("otlp://collector").expect("otlp");
        assert_eq!(s.shown, "otlp://collector:4318");
        assert!(
            matches!(&s.kind, Kind::Otlp { path, json: false, https: false, .. } if path == "/v1/logs")
        );
        let s = parse("otlps://loki.example:443/otlp/v1/logs?encoding=json").expect("otlps");
        assert_eq!(s.shown, "otlps://loki.example:443/otlp/v1/logs");
        assert!(matches!(
            &s.kind,
            Kind::Otlp {
                json: true,
                https: true,
                ..
            }
        ));
        let s = parse("syslog://10.0.0.1?facility=local3&app_name=dock").expect("syslog");
        assert_eq!(s.shown, "syslog://10.0.0.1:514");
        assert!(
            matches!(&s.kind, Kind::Syslog { facility: 19, tls: None, app_name } if app_name == "dock")
        );
        let s = parse("nats://[::1]:4223/docker.events?filter=type=container&batch=50&flush=200ms")
            .expect("nats");
        assert_eq!(s.shown, "nats://[::1]:4223/docker.events");
        assert_eq!((s.batch_events, s.flush), (50, Duration::from_millis(200)));
        assert_eq!(s.filters.to_json(), r#"{"type":{"container":true}}"#);
        let s = parse("nats://n:4222/ev?token_from_env=TOKEN").expect("token");
        assert!(matches!(
            s.kind,
            Kind::Nats {
                auth: NatsAuth::Token(_),
                ..
            }
        ));
        assert!(
            !format!("{s:?}").contains("s3cret"),
            "a secret is never shown"
        );
    }

    #[test]
    fn a_bad_sink_is_one_line_naming_the_flag_and_the_problem() {
        let cases = [
            (
                "kafka://k:9092/t",
                "--sink kafka://k:9092/t: unknown scheme \"kafka\"; a sink is otlp://, otlps://, syslog://, syslogs://, nats:// or tls://",
            ),
            (
                "otlp://c:4318?encodng=json",
                "--sink otlp://c:4318: unknown option \"encodng\"; the options of otlp:// are filter, batch, flush, timeout, encoding, header_from_env, header_file, ca",
            ),
            (
                "otlp://c?encoding=xml",
                "--sink otlp://c:4318: ?encoding=xml: the encodings are protobuf (the default) and json",
            ),
            (
                "nats://me:pw@n:4222/ev",
                "--sink nats://n:4222/ev: credentials in the URL would show in logs and `ps`; name the user with ?user= and take the secret from the environment or a file (?password_from_env=VAR)",
            ),
            (
                "nats://n:4222/docker.>",
                "--sink nats://n:4222/docker.%3E: the subject \"docker.>\" is not one NATS publishes to; write it as nats://HOST:PORT/SUBJECT, e.g. docker.events (no wildcards)",
            ),
            (
                "nats://n/ev?token_from_env=NOPE",
                "--sink nats://n:4222/ev: ?token_from_env: the environment variable NOPE is not set",
            ),
            (
                "syslog://s?filter=colour=red",
                "--sink syslog://s:514: ?filter: invalid filter \"colour\"; the keys are config, container, daemon, engine, event, image, label, network, node, plugin, scope, secret, service, type, volume",
            ),
            (
                "syslog://s?ca=/etc/ssl/certs/ca-certificates.crt",
                "--sink syslog://s:514: ?ca and ?cert are for TLS; use the scheme ending in s",
            ),
            (
                "otlp://c?batch=0",
                "--sink otlp://c:4318: ?batch=0: give a number of events from 1 to 100000",
            ),
            (
                "syslog://s?app_name=my%20app",
                "--sink syslog://s:514: ?app_name=my app: 1 to 48 printable ASCII characters, no spaces (RFC 5424)",
            ),
            (
                "not a url",
                "--sink not a url: not a URL (relative URL without a base); write it as otlp://, otlps://, syslog://, syslogs://, nats:// or tls://HOST:PORT...",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input).err().as_deref(), Some(want), "{input}");
        }
    }

    #[test]
    fn the_cursor_name_is_stable_for_a_store() {
        let a = parse("otlp://c:4318?encoding=json").expect("a");
        let b = parse("otlp://c:4318?batch=10").expect("b");
        let c = parse("otlp://d:4318").expect("c");
        assert_eq!(a.cursor_name(), b.cursor_name());
        assert_ne!(a.cursor_name(), c.cursor_name());
        assert!(a.cursor_name().starts_with("otlp-"));
    }
}
