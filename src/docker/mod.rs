//! The Docker Engine client: version, time, ping and the event subscription as raw requests
//! through our [`endpoint::Endpoint`]; container list and inspect as bollard's typed calls over
//! the same endpoint.
//!
//! We negotiate the API version ourselves (an unversioned `GET /version`), because bollard's
//! own negotiation asks with its newest version first, which engines before 25 refuse.

mod container;
pub mod context;
mod decode;
pub mod endpoint;
pub mod event;
mod held;
pub mod lines;
mod logs;
pub mod paced;
mod scan;
pub mod ssh;
pub mod state;
pub mod stream;

use std::collections::HashMap;
use std::time::Duration;

use bollard::query_parameters::ListContainersOptions;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use self::container::InspectAnswer;
pub use self::container::{
    AfterExit, ContainerSnapshot, ContainerState, Health, RestartPolicy, kill_ends_run, swarm_slot,
};
use self::endpoint::{Endpoint, RequestError};
use self::held::{HeldExit, held_exits};

/// How long a ping may take before the engine counts as unreachable.
pub const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a list or inspect call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Inspects at once while taking a snapshot of every container.
pub const SNAPSHOT_CONCURRENCY: usize = 8;
/// The most we read of the engine's held events (it holds 256).
const HELD_EVENTS_LIMIT: usize = 4 * 1024 * 1024;
/// How long Podman may take to send the oldest event of its log, when asked whether the log
/// reaches back to our position. Its first line comes at once when there is one; an empty log
/// sends nothing, and then holds nothing.
const OLDEST_EVENT_TIMEOUT: Duration = Duration::from_secs(3);
/// The largest JSON answer we read from a non-streaming call (an inspect is a few KiB).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("GET {path}: the engine answered {status}: {message}")]
    Status {
        path: String,
        status: StatusCode,
        message: String,
    },
    #[error("GET {path}: reading the answer failed")]
    Body {
        path: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("GET {path}: cannot decode the answer")]
    Decode {
        path: String,
        source: serde_json::Error,
    },
    #[error(transparent)]
    Bollard(#[from] bollard::errors::Error),
    #[error("{what} timed out after {after:?}")]
    Timeout { what: &'static str, after: Duration },
}

/// What `GET /version` tells about the engine.
#[derive(Debug, Clone, Deserialize)]
pub struct EngineVersion {
    #[serde(rename = "Version", default)]
    pub version: String,
    #[serde(rename = "ApiVersion", default)]
    pub api_version: String,
    #[serde(rename = "Os", default)]
    pub os: String,
    #[serde(rename = "Arch", default)]
    pub arch: String,
    #[serde(rename = "Components", default)]
    components: Option<Vec<VersionComponent>>,
}

#[derive(Debug, Clone, Deserialize)]
struct VersionComponent {
    #[serde(rename = "Name", default)]
    name: String,
}

impl EngineVersion {
    /// Which engine answers the Docker API: Podman names itself among the components
    /// (`"Podman Engine"`), where Docker names `"Engine"`.
    pub fn kind(&self) -> EngineKind {
        let podman = self
            .components
            .iter()
            .flatten()
            .any(|c| c.name == "Podman Engine");
        if podman {
            EngineKind::Podman
        } else {
            EngineKind::Docker
        }
    }
}

/// The engines whose Docker API differs in ways the exporter must know of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    Docker,
    /// Podman's Docker-compatible service (`podman system service`): a new random `ID` in every
    /// `/info`, an event log on disk instead of a ring of 256, and an `until` in the past that
    /// answers nothing.
    Podman,
}
#[derive(Deserialize)]
struct InfoAnswer {
    #[serde(rename = "SystemTime", default)]
    system_time: String,
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(rename = "DockerRootDir", default)]
    root_dir: String,
}

/// What `GET /info` tells us.
#[derive(Debug, Clone)]
pub struct EngineInfo {
    /// The engine's clock, in nanoseconds since the epoch.
    pub now_nano: i64,
    /// The engine host's name (`%%host%%` in rules).
    pub name: String,
    /// The engine's ID: the same across its restarts, different for another engine. Podman's
    /// `/info` answers a new random one each time; its identity is its host and storage root
    /// (`podman:HOST:ROOT`), which its containers and event log belong to.
    pub id: String,
    /// Where it keeps its containers and images (`DockerRootDir`).
    pub root_dir: String,
}

/// A connected engine client. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    endpoint: Endpoint,
    version: EngineVersion,
    kind: EngineKind,
    /// The API version we speak, e.g. "1.41": the engine's, or bollard's newest if lower.
    api: String,
    bollard: bollard::Docker,
}

impl Engine {
    /// Asks the engine for its version and settles the API version to speak.
    pub async fn connect(endpoint: Endpoint) -> Result<Self, EngineError> {
        let version: EngineVersion = get_json(&endpoint, "/version").await?;
        let ours = bollard::API_DEFAULT_VERSION;
        let theirs = parse_api_version(&version.api_version).unwrap_or((1, 41));
        let (major, minor) = theirs.min((ours.major_version, ours.minor_version));
        let api = format!("{major}.{minor}");
        let transport = endpoint.clone();
        let prefix = format!("/v{api}");
        let bollard = bollard::Docker::connect_with_custom_transport(
            move |mut req: bollard::BollardRequest| -> endpoint::TransportFuture {
                let transport = transport.clone();
                // bollard drops its version prefix when it joins the path (url.join with an
                // absolute path); put ours back so answers have the shape we negotiated.
                let versioned = req
                    .uri()
                    .path_and_query()
                    .map(|p| format!("{prefix}{p}"))
                    .and_then(|p| http::Uri::try_from(p).ok());
                if let Some(uri) = versioned {
                    *req.uri_mut() = uri;
                }
                Box::pin(async move {
                    transport
                        .send(req)
                        .await
                        .map_err(|e| bollard::errors::Error::IOError {
                            err: std::io::Error::other(format!("{:#}", anyhow::Error::from(e))),
                        })
                })
            },
            Some("http://docker"),
            CALL_TIMEOUT.as_secs(),
            &bollard::ClientVersion {
                major_version: major,
                minor_version: minor,
            },
        )?;
        Ok(Self {
            endpoint,
            kind: version.kind(),
            version,
            api,
            bollard,
        })
    }

    pub fn version(&self) -> &EngineVersion {
        &self.version
    }

    pub fn kind(&self) -> EngineKind {
        self.kind
    }

    /// The API version we speak.
    pub fn api_version(&self) -> &str {
        &self.api
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The engine's clock (the `since` we subscribe from, so that a remote engine's clock skew
    /// cannot open a gap) and its host name.
    pub async fn info(&self) -> Result<EngineInfo, EngineError> {
        let path = format!("/v{}/info", self.api);
        let info: InfoAnswer = get_json(&self.endpoint, &path).await?;
        let now_nano =
            parse_rfc3339_nano(&info.system_time).ok_or_else(|| EngineError::Status {
                path,
                status: StatusCode::OK,
                message: format!("SystemTime {:?} is not an RFC 3339 time", info.system_time),
            })?;
        let id = match self.kind {
            EngineKind::Docker => info.id,
            EngineKind::Podman => format!("podman:{}:{}", info.name, info.root_dir),
        };
        Ok(EngineInfo {
            now_nano,
            name: info.name,
            id,
            root_dir: info.root_dir,
        })
    }

    /// The container's IP address: that of its first network with one (networks in name
    /// order, so the result is stable). None if it has none or is gone.
    pub async fn container_ip(&self, id: &str) -> Option<String> {
        self.inspect_answer(id).await.ok()?.ip()
    }

    /// What the container's last health probe printed (its end, made printable as
    /// `%%logs%%` is); or, in its place, why there is none.
    pub async fn container_health_output(&self, id: &str) -> String {
        match self.inspect_answer(id).await {
            Ok(answer) => match answer.health_output() {
                Some(output) => logs::printable_tail(output.as_bytes(), logs::MAX_LOG_BYTES),
                None => "(the container has had no health probe)".to_owned(),
            },
            Err(e) => format!("(the container's health cannot be read: {e})"),
        }
    }

    pub async fn ping(&self) -> Result<(), EngineError> {
        let ping = async {
            let resp = self.endpoint.send_once(get("/_ping")?).await?;
            check_status("/_ping", resp).await.map(drop)
        };
        tokio::time::timeout(PING_TIMEOUT, ping)
            .await
            .map_err(|_| EngineError::Timeout {
                what: "ping",
                after: PING_TIMEOUT,
            })?
    }

    /// Opens `GET /events?since=...` and returns the streaming body once the engine said 200.
    pub async fn subscribe(&self, since_nano: i64) -> Result<Incoming, EngineError> {
        let path = format!("/v{}/events?since={}", self.api, format_since(since_nano));
        let resp = self.endpoint.stream(get_events(&path)?).await?;
        Ok(check_status(&path, resp).await?.into_body())
    }

    /// Whether the engine still holds an event at or before `position_nano` in what it
    /// replays from: Docker's last 256 events (emptied when it restarts), Podman's event log. If
    /// it does, a subscription from `position_nano` replays everything since; if not, events
    /// may have been lost.
    pub async fn holds_events_until(&self, position_nano: i64) -> Result<bool, EngineError> {
        match self.kind {
            EngineKind::Docker => {
                let bytes = self.held_events(1, position_nano, None).await?;
                Ok(bytes
                    .split(|b| *b == b'\n')
                    .any(|l| event::Event::decode(lines::record(l)).is_ok()))
            }
            // Podman answers an `until` in its past with nothing, and its log may be long: its
            // oldest event, the first line of a subscription from the epoch, tells instead.
            EngineKind::Podman => Ok(self
                .oldest_event_nano()
                .await?
                .is_some_and(|oldest| oldest <= position_nano)),
        }
    }

    /// The time of the oldest event the engine replays, if one comes within
    /// [`OLDEST_EVENT_TIMEOUT`]; the subscription is dropped after it.
    async fn oldest_event_nano(&self) -> Result<Option<i64>, EngineError> {
        let path = format!("/v{}/events?since=1", self.api);
        let resp = self.endpoint.send_once(get_events(&path)?).await?;
        let mut body = check_status(&path, resp).await?.into_body();
        let first = async {
            let mut split = lines::Lines::default();
            let mut oldest = None;
            while oldest.is_none() {
                let Some(frame) = body.frame().await else {
                    break;
                };
                let Ok(data) = frame.map(hyper::body::Frame::into_data) else {
                    break;
                };
                if let Ok(chunk) = data {
                    split.feed(&chunk, |piece| {
                        if let (None, lines::Piece::Line(l)) = (oldest, piece) {
                            oldest = event::Event::decode(lines::record(l))
                                .ok()
                                .map(|e| e.time_nano);
                        }
                    });
                }
            }
            oldest
        };
        Ok(tokio::time::timeout(OLDEST_EVENT_TIMEOUT, first)
            .await
            .unwrap_or(None))
    }

    /// The events the engine holds from `since_nano` to `until_nano` that `filters` (the
    /// engine's filter syntax, URL-encoded) lets through, as the lines it sent.
    async fn held_events(
        &self,
        since_nano: i64,
        until_nano: i64,
        filters: Option<&str>,
    ) -> Result<Bytes, EngineError> {
        // An `until` in the engine's past makes Docker send what it holds and close at once.
        // (A `since` of 0 is no `since` to Podman, hence 1 ns at the least.)
        let mut path = format!(
            "/v{}/events?since={}&until={}",
            self.api,
            format_since(since_nano.max(1)),
            format_since(until_nano)
        );
        if let Some(filters) = filters {
            path.push_str("&filters=");
            path.push_str(filters);
        }
        let resp = self.endpoint.send(get_events(&path)?).await?;
        let body = check_status(&path, resp).await?.into_body();
        // At most 256 events of at most a few KiB: the limit only guards against a peer
        // that is not an engine.
        let body = Limited::new(body, HELD_EVENTS_LIMIT);
        Ok(tokio::time::timeout(CALL_TIMEOUT, body.collect())
            .await
            .map_err(|_| EngineError::Timeout {
                what: "reading the engine's held events",
                after: CALL_TIMEOUT,
            })?
            .map_err(|e| EngineError::Status {
                path: path.clone(),
                status: StatusCode::OK,
                message: format!("reading the held events: {e}"),
            })?
            .to_bytes())
    }

    /// How each container's last run ended, where the engine still holds its events up to
    /// `until_nano`: by container ID, the time of its last `die` and whether a kill ended that
    /// run (`None` when neither the kill nor the run's start is held, so it cannot tell).
    async fn held_exits(
        &self,
        since_nano: i64,
        until_nano: i64,
    ) -> Result<HashMap<String, HeldExit>, EngineError> {
        // {"type":["container"],"event":["start","kill","stop","die"]}
        const FILTERS: &str = "%7B%22type%22%3A%5B%22container%22%5D%2C%22event%22%3A%5B%22start%22%2C%22kill%22%2C%22stop%22%2C%22die%22%5D%7D";
        let bytes = self
            .held_events(since_nano, until_nano, Some(FILTERS))
            .await?;
        Ok(held_exits(&bytes))
    }

    /// Every container, inspected, as of the engine time it returns (taken first, so that every
    /// change after it comes as an event to a subscription from that time). A container
    /// removed between the list and its inspect is simply not there.
    ///
    /// How each container's last run ended (a kill or not) is not in its inspect: the events
    /// the engine still holds tell it where they reach back to that run (Docker's; Podman
    /// answers such a question with nothing, see [`EngineKind::Podman`]).
    pub async fn snapshot(&self) -> Result<(EngineInfo, Vec<ContainerSnapshot>), EngineError> {
        use futures_util::StreamExt;
        let info = self.info().await?;
        let ids = self.list_container_ids().await?;
        let mut containers: Vec<ContainerSnapshot> = futures_util::stream::iter(ids)
            .map(|id| async move { self.inspect(&id).await })
            .buffer_unordered(SNAPSHOT_CONCURRENCY)
            .filter_map(|r| async move { r.ok() })
            .collect()
            .await;
        // Only the runs that ended matter: from the earliest start among them.
        let since = containers
            .iter()
            .filter(|c| c.finished_at_nano >= c.started_at_nano)
            .filter_map(|c| c.started_at_nano)
            .min();
        let held = match (self.kind, since) {
            (EngineKind::Docker, Some(since)) => {
                // A second early: the run's own start must be among them.
                let since = since.saturating_sub(1_000_000_000);
                self.held_exits(since, info.now_nano).await
            }
            _ => Ok(HashMap::new()),
        };
        match held {
            Ok(exits) => {
                for c in &mut containers {
                    if let Some(exit) = exits.get(&c.id) {
                        c.last_exit_killed = exit.killed_in(c.finished_at_nano);
                    }
                }
            }
            // Not fatal: the reasons of past exits are then read from their exit codes.
            Err(e) => {
                tracing::debug!(error = %format!("{:#}", anyhow::Error::from(e)), "could not read the engine's held events")
            }
        }
        Ok((info, containers))
    }

    /// Every container, running or not.
    pub async fn list_container_ids(&self) -> Result<Vec<String>, EngineError> {
        let opts = ListContainersOptions {
            all: true,
            ..Default::default()
        };
        let list = tokio::time::timeout(CALL_TIMEOUT, self.bollard.list_containers(Some(opts)))
            .await
            .map_err(|_| EngineError::Timeout {
                what: "container list",
                after: CALL_TIMEOUT,
            })??;
        Ok(list.into_iter().filter_map(|c| c.id).collect())
    }

    pub async fn inspect(&self, id: &str) -> Result<ContainerSnapshot, EngineError> {
        Ok(self.inspect_answer(id).await?.snapshot(id))
    }

    async fn inspect_answer(&self, id: &str) -> Result<InspectAnswer, EngineError> {
        // Engine-made IDs are hex; anything else is escaped rather than trusted in a path.
        let id: String = url_path_segment(id);
        get_json(
            &self.endpoint,
            &format!("/v{}/containers/{id}/json", self.api),
        )
        .await
    }
}

/// `s` with every byte outside `[A-Za-z0-9_.-]` percent-encoded: safe as one path segment.
fn url_path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn get(path: &str) -> Result<Request<Empty<Bytes>>, RequestError> {
    Ok(Request::get(path).body(Empty::new())?)
}

/// What we ask `GET /events` to answer in: newline-delimited JSON. Engines from 29 on (API
/// 1.52) negotiate the stream's format and also offer RFC 7464 JSON text sequences; older ones
/// ignore the header and send newline-delimited JSON as `application/json`.
pub const EVENTS_ACCEPT: &str = "application/jsonl, application/x-ndjson, application/json;q=0.5";

fn get_events(path: &str) -> Result<Request<Empty<Bytes>>, RequestError> {
    Ok(Request::get(path)
        .header(http::header::ACCEPT, EVENTS_ACCEPT)
        .body(Empty::new())?)
}

async fn check_status(
    path: &str,
    resp: http::Response<Incoming>,
) -> Result<http::Response<Incoming>, EngineError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    // The engine's errors are {"message": "..."}; show that, or the raw text.
    let body = read_body(path, resp.into_body()).await.unwrap_or_default();
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_owned());
    Err(EngineError::Status {
        path: path.to_owned(),
        status,
        message,
    })
}

async fn read_body(path: &str, body: Incoming) -> Result<Bytes, EngineError> {
    Ok(Limited::new(body, MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|source| EngineError::Body {
            path: path.to_owned(),
            source,
        })?
        .to_bytes())
}

async fn get_json<T: DeserializeOwned>(endpoint: &Endpoint, path: &str) -> Result<T, EngineError> {
    let call = async {
        let resp = check_status(path, endpoint.send(get(path)?).await?).await?;
        let body = read_body(path, resp.into_body()).await?;
        serde_json::from_slice(&body).map_err(|source| EngineError::Decode {
            path: path.to_owned(),
            source,
        })
    };
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .map_err(|_| EngineError::Timeout {
            what: "engine request",
            after: CALL_TIMEOUT,
        })?
}

fn parse_api_version(v: &str) -> Option<(usize, usize)> {
    let (major, minor) = v.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// The wall clock, in nanoseconds since the epoch (the engine's `timeNano` clock).
pub fn now_nano() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// An engine time as RFC 3339, if it is one `time` can show.
pub fn format_rfc3339_nano(nano: i64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(nano))
        .ok()?
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// `since=` takes seconds with a nanosecond fraction.
pub fn format_since(nano: i64) -> String {
    format!(
        "{}.{:09}",
        nano.div_euclid(1_000_000_000),
        nano.rem_euclid(1_000_000_000)
    )
}

/// Parses the engine's RFC 3339 times; the zero time (`0001-01-01T00:00:00Z`) means "never".
pub fn parse_rfc3339_nano(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    if t.year() <= 1 {
        return None;
    }
    i64::try_from(t.unix_timestamp_nanos()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_id_is_one_path_segment() {
        assert_eq!(url_path_segment("c0ffee_web-1.x"), "c0ffee_web-1.x");
        assert_eq!(url_path_segment("../../info?x=1"), "..%2F..%2Finfo%3Fx%3D1");
    }

    #[test]
    fn since_keeps_nanoseconds() {
        assert_eq!(
            format_since(1_700_000_000_000_000_042),
            "1700000000.000000042"
        );
        // The `events` command's times go to the history API the same way.
        assert_eq!(
            format_since(1_700_000_000_000_000_001),
            "1700000000.000000001"
        );
        assert_eq!(format_since(-1), "-1.999999999");
    }

    #[test]
    fn zero_time_is_never() {
        assert_eq!(parse_rfc3339_nano("0001-01-01T00:00:00Z"), None);
        assert_eq!(
            parse_rfc3339_nano("2026-11-23T15:55:44.154495619Z"),
            Some(1_795_449_344_154_495_619)
        );
        assert_eq!(
            parse_rfc3339_nano("2026-11-23T16:55:44.5+01:00"),
            Some(1_795_449_344_500_000_000)
        );
    }

    #[test]
    fn api_version_parse() {
        assert_eq!(parse_api_version("1.41"), Some((1, 41)));
        assert_eq!(parse_api_version("junk"), None);
    }
}
