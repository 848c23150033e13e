//! The Docker Engine client: version, time, ping and the event subscription as raw requests
//! through our [`endpoint::Endpoint`]; container list and inspect as bollard's typed calls over
//! the same endpoint.
//!
//! We negotiate the API version ourselves (an unversioned `GET /version`), because bollard's
//! own negotiation asks with its newest version first, which engines before 25 refuse.

pub mod endpoint;
pub mod event;
pub mod lines;
mod scan;
pub mod state;
pub mod stream;

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{ContainerStateStatusEnum, HealthStatusEnum};
use bollard::query_parameters::{InspectContainerOptions, ListContainersOptions};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use self::endpoint::{Endpoint, RequestError};

/// How long a ping may take before the engine counts as unreachable.
pub const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a list or inspect call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Inspects at once while taking a snapshot of every container.
pub const SNAPSHOT_CONCURRENCY: usize = 8;
/// The most we read of the engine's held events (it holds 256).
const HELD_EVENTS_LIMIT: usize = 4 * 1024 * 1024;
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
}

#[derive(Deserialize)]
struct InfoAnswer {
    #[serde(rename = "SystemTime", default)]
    system_time: String,
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "ID", default)]
    id: String,
}

/// What `GET /info` tells us.
#[derive(Debug, Clone)]
pub struct EngineInfo {
    /// The engine's clock, in nanoseconds since the epoch.
    pub now_nano: i64,
    /// The engine host's name (`%%host%%` in rules).
    pub name: String,
    /// The engine's ID: the same across its restarts, different for another engine.
    pub id: String,
}

/// Container state as the state gauge names it. `removing` is transient and
/// not exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running,
    Paused,
    Restarting,
    Exited,
    Dead,
}

impl ContainerState {
    pub const ALL: [Self; 6] = [
        Self::Created,
        Self::Running,
        Self::Paused,
        Self::Restarting,
        Self::Exited,
        Self::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Restarting => "restarting",
            Self::Exited => "exited",
            Self::Dead => "dead",
        }
    }
}

/// Health as the health status gauge names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Starting,
    Healthy,
    Unhealthy,
}

impl Health {
    pub const ALL: [Self; 3] = [Self::Starting, Self::Healthy, Self::Unhealthy];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Healthy => "healthy",
            Self::Unhealthy => "unhealthy",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "starting" => Some(Self::Starting),
            "healthy" => Some(Self::Healthy),
            "unhealthy" => Some(Self::Unhealthy),
            _ => None,
        }
    }
}

/// What an inspect tells us about one container, in our own terms.
#[derive(Debug, Clone, Default)]
pub struct ContainerSnapshot {
    pub id: String,
    pub name: String,
    /// `Config.Image`: what the container was created from, as the events' `image` attribute.
    pub image: String,
    pub labels: HashMap<String, String>,
    pub state: Option<ContainerState>,
    pub health: Option<Health>,
    /// The healthcheck command as the engine writes it in its exec events
    /// (`exec_start: /bin/sh -c curl -f localhost`), if the container has a healthcheck.
    pub healthcheck_command: Option<String>,
    pub started_at_nano: Option<i64>,
    pub finished_at_nano: Option<i64>,
    /// The exit code of its last run (0 for one that never ran).
    pub exit_code: Option<i64>,
    /// Whether its last run ended in an OOM kill.
    pub oom_killed: bool,
    /// Restarts by its restart policy (not `docker restart`), as the engine counts them.
    pub restart_count: i64,
}

/// A connected engine client. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    endpoint: Endpoint,
    version: EngineVersion,
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
            version,
            api,
            bollard,
        })
    }

    pub fn version(&self) -> &EngineVersion {
        &self.version
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
        Ok(EngineInfo {
            now_nano,
            name: info.name,
            id: info.id,
        })
    }

    /// The container's IP address: that of its first network with one (networks in name
    /// order, so the result is stable). None if it has none or is gone.
    pub async fn container_ip(&self, id: &str) -> Option<String> {
        let inspect = self
            .bollard
            .inspect_container(id, None::<InspectContainerOptions>);
        let c = tokio::time::timeout(CALL_TIMEOUT, inspect)
            .await
            .ok()?
            .ok()?;
        let mut networks: Vec<_> = c.network_settings?.networks?.into_iter().collect();
        networks.sort_by(|a, b| a.0.cmp(&b.0));
        networks
            .into_iter()
            .filter_map(|(_, n)| n.ip_address)
            .find(|ip| !ip.is_empty())
    }

    pub async fn ping(&self) -> Result<(), EngineError> {
        let ping = async {
            let resp = self.endpoint.send(get("/_ping")?).await?;
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
        let resp = self.endpoint.send(get(&path)?).await?;
        Ok(check_status(&path, resp).await?.into_body())
    }

    /// Whether the engine still holds an event at or before `position_nano` in the buffer it
    /// replays from (its last 256 events, emptied when it restarts). If it does, a subscription
    /// from `position_nano` replays everything since; if not, events may have been lost.
    pub async fn holds_events_until(&self, position_nano: i64) -> Result<bool, EngineError> {
        // An `until` in the engine's past makes it send what it holds and close at once.
        let path = format!(
            "/v{}/events?since=0&until={}",
            self.api,
            format_since(position_nano)
        );
        let resp = self.endpoint.send(get(&path)?).await?;
        let body = check_status(&path, resp).await?.into_body();
        // At most 256 events of at most a few KiB: the limit only guards against a peer
        // that is not an engine.
        let body = Limited::new(body, HELD_EVENTS_LIMIT);
        let bytes = tokio::time::timeout(CALL_TIMEOUT, body.collect())
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
            .to_bytes();
        Ok(bytes
            .split(|b| *b == b'\n')
            .any(|l| event::Event::decode(l.trim_ascii()).is_ok()))
    }

    /// Every container, inspected, as of the engine time it returns (taken first, so that every
    /// change after it comes as an event to a subscription from that time). A container
    /// removed between the list and its inspect is simply not there.
    pub async fn snapshot(&self) -> Result<(EngineInfo, Vec<ContainerSnapshot>), EngineError> {
        use futures_util::StreamExt;
        let info = self.info().await?;
        let ids = self.list_container_ids().await?;
        let containers = futures_util::stream::iter(ids)
            .map(|id| async move { self.inspect(&id).await })
            .buffer_unordered(SNAPSHOT_CONCURRENCY)
            .filter_map(|r| async move { r.ok() })
            .collect()
            .await;
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
        let inspect = self
            .bollard
            .inspect_container(id, None::<InspectContainerOptions>);
        let c = tokio::time::timeout(CALL_TIMEOUT, inspect)
            .await
            .map_err(|_| EngineError::Timeout {
                what: "container inspect",
                after: CALL_TIMEOUT,
            })??;
        let config = c.config.unwrap_or_default();
        let state = c.state.unwrap_or_default();
        let healthcheck_command = config
            .healthcheck
            .and_then(|h| h.test)
            .and_then(|test| healthcheck_command(&test, config.shell.as_deref()));
        Ok(ContainerSnapshot {
            id: c.id.unwrap_or_else(|| id.to_owned()),
            name: c
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_owned(),
            image: config.image.unwrap_or_default(),
            labels: config.labels.unwrap_or_default(),
            state: state.status.and_then(|s| match s {
                ContainerStateStatusEnum::CREATED => Some(ContainerState::Created),
                ContainerStateStatusEnum::RUNNING => Some(ContainerState::Running),
                ContainerStateStatusEnum::PAUSED => Some(ContainerState::Paused),
                ContainerStateStatusEnum::RESTARTING => Some(ContainerState::Restarting),
                ContainerStateStatusEnum::EXITED => Some(ContainerState::Exited),
                ContainerStateStatusEnum::DEAD => Some(ContainerState::Dead),
                ContainerStateStatusEnum::REMOVING
                | ContainerStateStatusEnum::STOPPING
                | ContainerStateStatusEnum::EMPTY => None,
            }),
            health: state.health.and_then(|h| h.status).and_then(|s| match s {
                HealthStatusEnum::STARTING => Some(Health::Starting),
                HealthStatusEnum::HEALTHY => Some(Health::Healthy),
                HealthStatusEnum::UNHEALTHY => Some(Health::Unhealthy),
                HealthStatusEnum::NONE | HealthStatusEnum::EMPTY => None,
            }),
            healthcheck_command,
            started_at_nano: state.started_at.as_deref().and_then(parse_rfc3339_nano),
            finished_at_nano: state.finished_at.as_deref().and_then(parse_rfc3339_nano),
            exit_code: state.exit_code,
            oom_killed: state.oom_killed.unwrap_or(false),
            restart_count: c.restart_count.unwrap_or(0),
        })
    }
}

/// The command string the engine puts in a probe's exec events: the entrypoint and arguments
/// joined by spaces. `CMD-SHELL` runs through the container's shell (default `/bin/sh -c`).
fn healthcheck_command(test: &[String], shell: Option<&[String]>) -> Option<String> {
    match test.split_first() {
        Some((kind, args)) if kind == "CMD" && !args.is_empty() => Some(args.join(" ")),
        Some((kind, [script])) if kind == "CMD-SHELL" => {
            let default = ["/bin/sh".to_owned(), "-c".to_owned()];
            let shell = shell.filter(|s| !s.is_empty()).unwrap_or(&default);
            Some(format!("{} {script}", shell.join(" ")))
        }
        _ => None,
    }
}

fn get(path: &str) -> Result<Request<Empty<Bytes>>, RequestError> {
    Ok(Request::get(path).body(Empty::new())?)
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
    fn since_keeps_nanoseconds() {
        assert_eq!(
            format_since(1_700_000_000_000_000_042),
            "1700000000.000000042"
        );
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
    fn healthcheck_command_as_exec_events_write_it() {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            healthcheck_command(&s(&["CMD-SHELL", "true"]), None).as_deref(),
            Some("/bin/sh -c true")
        );
        assert_eq!(
            healthcheck_command(
                &s(&["CMD-SHELL", "x"]),
                Some(&s(&["/bin/bash", "-eo", "pipefail", "-c"]))
            )
            .as_deref(),
            Some("/bin/bash -eo pipefail -c x")
        );
        assert_eq!(
            healthcheck_command(&s(&["CMD", "wget", "-q", "localhost"]), None).as_deref(),
            Some("wget -q localhost")
        );
        assert_eq!(healthcheck_command(&s(&["NONE"]), None), None);
        assert_eq!(healthcheck_command(&[], None), None);
    }

    #[test]
    fn api_version_parse() {
        assert_eq!(parse_api_version("1.41"), Some((1, 41)));
        assert_eq!(parse_api_version("junk"), None);
    }
}
