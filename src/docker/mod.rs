//! The Docker Engine client: version, time, ping and the event subscription as raw requests
//! through our [`endpoint::Endpoint`]; container list and inspect as bollard's typed calls over
//! the same endpoint.
//!
//! We negotiate the API version ourselves (an unversioned `GET /version`), because bollard's
//! own negotiation asks with its newest version first, which engines before 25 refuse.

mod decode;
pub mod endpoint;
pub mod event;
pub mod lines;
pub mod paced;
mod scan;
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

use self::endpoint::{Endpoint, RequestError};

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

/// The fields of `GET /containers/{id}/json` we use; serde skips the rest (most of a few KiB)
/// without building it.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct InspectAnswer {
    id: Option<String>,
    created: Option<String>,
    /// The image's ID (`sha256:…`), where `Config.Image` is the name it was created from.
    image: Option<String>,
    name: Option<String>,
    restart_count: Option<i64>,
    config: Option<InspectConfig>,
    state: Option<InspectState>,
    host_config: Option<InspectHostConfig>,
    network_settings: Option<InspectNetworks>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct InspectConfig {
    image: Option<String>,
    labels: Option<HashMap<String, String>>,
    healthcheck: Option<InspectHealthcheck>,
    shell: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct InspectHealthcheck {
    test: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct InspectState {
    status: Option<String>,
    health: Option<InspectHealth>,
    started_at: Option<String>,
    finished_at: Option<String>,
    exit_code: Option<i64>,
    #[serde(rename = "OOMKilled")]
    oom_killed: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct InspectHealth {
    status: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct InspectHostConfig {
    restart_policy: Option<InspectRestartPolicy>,
    auto_remove: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct InspectRestartPolicy {
    name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct InspectNetworks {
    /// By network name, in name order.
    networks: Option<std::collections::BTreeMap<String, InspectNetwork>>,
}

#[derive(Deserialize, Default)]
struct InspectNetwork {
    #[serde(rename = "IPAddress", default)]
    ip_address: Option<String>,
}

impl InspectAnswer {
    /// In our own terms; `id` is what was asked for, should the answer lack it.
    fn snapshot(self, id: &str) -> ContainerSnapshot {
        let config = self.config.unwrap_or_default();
        let state = self.state.unwrap_or_default();
        let host = self.host_config.unwrap_or_default();
        let healthcheck_command = config
            .healthcheck
            .and_then(|h| h.test)
            .and_then(|test| healthcheck_command(&test, config.shell.as_deref()));
        let restart_policy = host
            .restart_policy
            .and_then(|p| p.name)
            .as_deref()
            .and_then(RestartPolicy::parse);
        let after_exit = match restart_policy {
            _ if host.auto_remove == Some(true) => AfterExit::Removed,
            Some(RestartPolicy::No) => AfterExit::Stays,
            Some(RestartPolicy::OnFailure) => AfterExit::RestartsOnFailure,
            Some(RestartPolicy::Always | RestartPolicy::UnlessStopped) => AfterExit::Restarts,
            None => AfterExit::Unknown,
        };
        ContainerSnapshot {
            id: self.id.unwrap_or_else(|| id.to_owned()),
            name: self
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_owned(),
            image: config.image.unwrap_or_default(),
            image_id: self
                .image
                .as_deref()
                .map(short_image_id)
                .unwrap_or_default(),
            labels: config.labels.unwrap_or_default(),
            state: state.status.as_deref().and_then(ContainerState::parse),
            health: state
                .health
                .and_then(|h| h.status)
                .as_deref()
                .and_then(Health::parse),
            healthcheck_command,
            created_at_nano: self.created.as_deref().and_then(parse_rfc3339_nano),
            started_at_nano: state.started_at.as_deref().and_then(parse_rfc3339_nano),
            finished_at_nano: state.finished_at.as_deref().and_then(parse_rfc3339_nano),
            exit_code: state.exit_code,
            oom_killed: state.oom_killed.unwrap_or(false),
            restart_count: self.restart_count.unwrap_or(0),
            restart_policy,
            after_exit,
            last_exit_killed: None,
        }
    }

    /// The address on its first network with one (networks in name order, so the result is
    /// stable).
    fn ip(self) -> Option<String> {
        self.network_settings?
            .networks?
            .into_values()
            .filter_map(|n| n.ip_address)
            .find(|ip| !ip.is_empty())
    }
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

    /// A state as the engine names it; `None` for a transient one (removing, stopping) or one
    /// this build does not know.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
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
        Self::ALL.into_iter().find(|h| h.as_str() == s)
    }
}

/// What an inspect tells us about one container, in our own terms.
#[derive(Debug, Clone, Default)]
pub struct ContainerSnapshot {
    pub id: String,
    pub name: String,
    /// `Config.Image`: what the container was created from, as the events' `image` attribute.
    pub image: String,
    /// The ID of the image it runs, short (12 hex digits), as `docker ps` shows it.
    pub image_id: String,
    pub labels: HashMap<String, String>,
    pub state: Option<ContainerState>,
    pub health: Option<Health>,
    /// The healthcheck command as the engine writes it in its exec events
    /// (`exec_start: /bin/sh -c curl -f localhost`), if the container has a healthcheck.
    pub healthcheck_command: Option<String>,
    pub created_at_nano: Option<i64>,
    pub started_at_nano: Option<i64>,
    pub finished_at_nano: Option<i64>,
    /// The exit code of its last run (0 for one that never ran).
    pub exit_code: Option<i64>,
    /// Whether its last run ended in an OOM kill.
    pub oom_killed: bool,
    /// Restarts by its restart policy since it was last started by hand, as the engine counts
    /// them (`docker start` and `docker restart` set it back to 0).
    pub restart_count: i64,
    /// Its restart policy, if the engine named one we know.
    pub restart_policy: Option<RestartPolicy>,
    /// What the engine does when its process ends.
    pub after_exit: AfterExit,
    /// Whether a kill event (see [`kill_ends_run`]) came between its last start and its last
    /// exit, where the engine still holds the events of that run; `None` where it does not.
    pub last_exit_killed: Option<bool>,
}

/// A container's restart policy, as `docker run --restart` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    No,
    Always,
    UnlessStopped,
    OnFailure,
}

impl RestartPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::No => "no",
            Self::Always => "always",
            Self::UnlessStopped => "unless-stopped",
            Self::OnFailure => "on-failure",
        }
    }

    /// The engine's `HostConfig.RestartPolicy.Name`; an empty name is `no`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "" | "no" => Some(Self::No),
            "always" => Some(Self::Always),
            "unless-stopped" => Some(Self::UnlessStopped),
            "on-failure" => Some(Self::OnFailure),
            _ => None,
        }
    }
}

/// Whether a kill event's signal (a number, as the engine writes it) is one that ends the
/// container's run: every signal but SIGHUP, SIGUSR1 and SIGUSR2, which programs take by
/// convention as "reload" or "reopen your logs" (`docker kill -s HUP nginx`), and which no
/// common image uses as its stop signal.
pub fn kill_ends_run(signal: Option<&str>) -> bool {
    !matches!(signal, Some("1" | "10" | "12"))
}

/// `sha256:81e8efb5dfa4…` as `81e8efb5dfa4`; an ID without the prefix is cut to the same 12
/// characters.
fn short_image_id(id: &str) -> String {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.chars().take(12).collect()
}

/// What the engine does when a container's process ends: its restart policy, and `--rm`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AfterExit {
    /// Not known (an engine that did not say).
    #[default]
    Unknown,
    /// It stays exited (`no`).
    Stays,
    /// It is removed (`--rm`).
    Removed,
    /// Started again after a non-zero exit, up to a number of times (`on-failure`).
    RestartsOnFailure,
    /// Started again unless it was stopped (`always`, `unless-stopped`).
    Restarts,
}

impl AfterExit {
    /// Whether the engine may start it again after an exit with `exit_code`: only then can
    /// its state after a `die` be `restarting`.
    pub fn may_restart(self, exit_code: Option<&str>) -> bool {
        match self {
            Self::Stays | Self::Removed => false,
            Self::RestartsOnFailure => exit_code != Some("0"),
            Self::Restarts | Self::Unknown => true,
        }
    }
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

/// A container's last `die` among the engine's held events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HeldExit {
    die_nano: i64,
    killed: Option<bool>,
}

impl HeldExit {
    /// Whether a kill ended the run that finished at `finished_nano` (the inspect's
    /// `FinishedAt`), if this `die` is that exit's: the engine sets `FinishedAt` and then sends
    /// the `die`, so an older `die` is an earlier run's.
    fn killed_in(self, finished_nano: Option<i64>) -> Option<bool> {
        finished_nano
            .filter(|f| self.die_nano >= *f)
            .and(self.killed)
    }
}

/// Each container's last `die` in `lines` (start, kill and die events, oldest first), with
/// whether a kill that ends a run came since that run's start.
fn held_exits(lines: &[u8]) -> HashMap<String, HeldExit> {
    #[derive(Default)]
    struct Run {
        started: bool,
        killed: bool,
        last: Option<HeldExit>,
    }
    let mut runs: HashMap<String, Run> = HashMap::new();
    for line in lines.split(|b| *b == b'\n') {
        let Ok(ev) = event::Event::decode(lines::record(line)) else {
            continue;
        };
        let run = runs.entry(ev.actor_id().to_owned()).or_default();
        match ev.verb {
            event::Verb::Start => {
                run.started = true;
                run.killed = false;
            }
            event::Verb::Kill if kill_ends_run(ev.attr("signal")) => run.killed = true,
            // Podman sends `stop` before the die of a run it stops (Docker, after it).
            event::Verb::Stop if run.started => run.killed = true,
            event::Verb::Die => {
                let killed = if run.killed {
                    Some(true)
                } else {
                    // Without the run's start, its kill may be older than what is held.
                    run.started.then_some(false)
                };
                run.last = Some(HeldExit {
                    die_nano: ev.time_nano,
                    killed,
                });
                run.started = false;
                run.killed = false;
            }
            _ => {}
        }
    }
    runs.into_iter()
        .filter_map(|(id, run)| Some((id, run.last?)))
        .collect()
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

    /// An inspect answer as Engine 20.10 writes it, cut to a few of its many fields: what we
    /// read of it, and nothing of the rest.
    #[test]
    fn an_inspect_answer_gives_what_the_tracker_uses() {
        let answer = r#"{"Id":"c0ffee","Created":"2026-12-01T10:00:00.1Z","Path":"sleep",
            "Image":"sha256:81e8efb5dfa44e6de6d6b40a9fc4a2dba6558c2e999c0f4698bac6ad635d85ea",
            "Args":["600"],"State":{"Status":"running","Running":true,"Paused":false,
            "Restarting":false,"OOMKilled":false,"Dead":false,"Pid":42,"ExitCode":0,"Error":"",
            "StartedAt":"2026-12-01T10:00:01.000000005Z","FinishedAt":"0001-01-01T00:00:00Z",
            "Health":{"Status":"healthy","FailingStreak":0,"Log":[{"Start":"x","ExitCode":0,
            "Output":""}]}},"Name":"/web","RestartCount":3,"HostConfig":{"AutoRemove":false,
            "RestartPolicy":{"Name":"on-failure","MaximumRetryCount":5},"Binds":null},
            "Config":{"Hostname":"c0ffee","Image":"nginx:1.25","Labels":{"team":"a"},
            "Healthcheck":{"Test":["CMD-SHELL","curl -f localhost"],"Interval":1000000000},
            "Shell":null},"NetworkSettings":{"Networks":{"zeta":{"IPAddress":"10.0.9.2"},
            "alpha":{"IPAddress":""},"beta":{"IPAddress":"172.17.0.5"}}}}"#;
        let parsed = || serde_json::from_str::<InspectAnswer>(answer).expect("decodes");
        let snap = parsed().snapshot("asked");
        assert_eq!(snap.id, "c0ffee");
        assert_eq!(snap.name, "web");
        assert_eq!(snap.image, "nginx:1.25");
        assert_eq!(snap.labels.get("team").map(String::as_str), Some("a"));
        assert_eq!(snap.state, Some(ContainerState::Running));
        assert_eq!(snap.health, Some(Health::Healthy));
        assert_eq!(
            snap.healthcheck_command.as_deref(),
            Some("/bin/sh -c curl -f localhost")
        );
        assert_eq!(snap.started_at_nano, Some(1_796_119_201_000_000_005));
        assert_eq!(snap.finished_at_nano, None, "the zero time is never");
        assert_eq!((snap.exit_code, snap.oom_killed), (Some(0), false));
        assert_eq!(snap.restart_count, 3);
        assert_eq!(snap.after_exit, AfterExit::RestartsOnFailure);
        assert_eq!(snap.restart_policy, Some(RestartPolicy::OnFailure));
        assert_eq!(snap.created_at_nano, Some(1_796_119_200_100_000_000));
        assert_eq!(snap.image_id, "81e8efb5dfa4");
        assert_eq!(snap.last_exit_killed, None, "not in an inspect");
        assert_eq!(
            parsed().ip().as_deref(),
            Some("172.17.0.5"),
            "first by name with one"
        );
        // Whatever an engine leaves out is absent, not an error.
        let bare = serde_json::from_str::<InspectAnswer>("{}").expect("decodes");
        let snap = bare.snapshot("asked");
        assert_eq!((snap.id.as_str(), snap.state), ("asked", None));
        assert_eq!(snap.after_exit, AfterExit::Unknown);
    }

    /// The engine's held start, kill and die events (oldest first), as 20.10 sends them: how
    /// each container's last run ended, where they reach back to its start or its kill.
    #[test]
    fn held_events_tell_whether_a_kill_ended_the_last_run() {
        let ev = |id: &str, action: &str, t: i64, attrs: &str| {
            format!(
                r#"{{"status":"{action}","id":"{id}","Type":"container","Action":"{action}","Actor":{{"ID":"{id}","Attributes":{{{attrs}}}}},"scope":"local","time":{},"timeNano":{t}}}"#,
                t / 1_000_000_000
            )
        };
        let lines = [
            // a: stopped (TERM, then KILL after the timeout).
            ev("a", "start", 1_000, r#""name":"a""#),
            ev("a", "kill", 2_000, r#""name":"a","signal":"15""#),
            ev("a", "kill", 3_000, r#""name":"a","signal":"9""#),
            ev("a", "die", 4_000, r#""exitCode":"137","name":"a""#),
            // b: reloaded with SIGHUP, then died of its own; c: its run's start is not held.
            ev("b", "start", 1_100, r#""name":"b""#),
            ev("b", "kill", 1_200, r#""name":"b","signal":"1""#),
            ev("b", "die", 1_300, r#""exitCode":"1","name":"b""#),
            ev("c", "die", 1_400, r#""exitCode":"0","name":"c""#),
            // d: stopped by Podman, which sends the stop before the die (Docker, after it).
            ev("d", "start", 1_500, r#""name":"d""#),
            ev("d", "stop", 1_600, r#""name":"d""#),
            ev("d", "die", 1_700, r#""exitCode":"137","name":"d""#),
            // a again: killed before (and Docker's stop after that die), then a clean run.
            ev("a", "stop", 4_100, r#""name":"a""#),
            ev("a", "start", 5_000, r#""name":"a""#),
            ev("a", "die", 6_000, r#""exitCode":"0","name":"a""#),
        ]
        .join("\n");
        let exits = held_exits(lines.as_bytes());
        let a = exits["a"];
        assert_eq!(a.killed_in(Some(5_999)), Some(false), "the last run's");
        assert_eq!(a.killed_in(Some(7_000)), None, "a later exit, not held");
        assert_eq!(exits["b"].killed_in(Some(1_290)), Some(false));
        assert_eq!(exits["c"].killed_in(Some(1_390)), None);
        assert_eq!(exits["d"].killed_in(Some(1_690)), Some(true));
        let stopped = held_exits(
            lines
                .lines()
                .take(4)
                .collect::<Vec<_>>()
                .join("\n")
                .as_bytes(),
        );
        assert_eq!(stopped["a"].killed_in(Some(3_999)), Some(true));
    }

    #[test]
    fn only_a_policy_that_may_restart_asks_after_an_exit() {
        let policy = |host: &str| {
            let answer = format!(r#"{{"HostConfig":{host}}}"#);
            serde_json::from_str::<InspectAnswer>(&answer)
                .expect("decodes")
                .snapshot("c")
                .after_exit
        };
        assert_eq!(policy(r#"{"RestartPolicy":{"Name":""}}"#), AfterExit::Stays);
        assert_eq!(
            policy(r#"{"RestartPolicy":{"Name":"no"}}"#),
            AfterExit::Stays
        );
        assert_eq!(
            policy(r#"{"AutoRemove":true,"RestartPolicy":{"Name":"no"}}"#),
            AfterExit::Removed
        );
        assert_eq!(
            policy(r#"{"RestartPolicy":{"Name":"always"}}"#),
            AfterExit::Restarts
        );
        assert_eq!(
            policy(r#"{"RestartPolicy":{"Name":"unless-stopped"}}"#),
            AfterExit::Restarts
        );
        assert!(!AfterExit::Stays.may_restart(Some("1")));
        assert!(!AfterExit::Removed.may_restart(Some("137")));
        assert!(!AfterExit::RestartsOnFailure.may_restart(Some("0")));
        assert!(AfterExit::RestartsOnFailure.may_restart(Some("1")));
        assert!(AfterExit::Restarts.may_restart(Some("0")));
        assert!(AfterExit::Unknown.may_restart(Some("0")));
    }

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
