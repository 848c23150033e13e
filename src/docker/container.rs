//! The container model: its state, health, restart policy and what the engine does when its
//! process ends, and the snapshot an inspect gives of it (read from the few fields of
//! `GET /containers/{id}/json` we use).

use std::collections::HashMap;

use serde::Deserialize;

use super::parse_rfc3339_nano;

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

/// A Swarm task's slot: its task name (`SERVICE.SLOT.TASKID`, or `SERVICE.NODEID.TASKID` for
/// a global service) without the task ID. A slot's tasks are its containers one after the
/// other: a task that ends is replaced by a new container, not started again.
pub fn swarm_slot<'a>(task_name: &'a str, task_id: Option<&str>) -> Option<&'a str> {
    let slot = match task_id.and_then(|id| task_name.strip_suffix(id)) {
        Some(slot) => slot.strip_suffix('.')?,
        None => task_name.rsplit_once('.')?.0,
    };
    Some(slot).filter(|s| !s.is_empty())
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

/// The fields of `GET /containers/{id}/json` we use; serde skips the rest (most of a few KiB)
/// without building it.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct InspectAnswer {
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
    /// The last probes, oldest first.
    log: Option<Vec<InspectProbe>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct InspectProbe {
    output: Option<String>,
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
    pub(super) fn snapshot(self, id: &str) -> ContainerSnapshot {
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
    /// What the container's last health probe printed, if it has had one.
    pub(super) fn health_output(self) -> Option<String> {
        self.state?.health?.log?.pop()?.output
    }

    pub(super) fn ip(self) -> Option<String> {
        self.network_settings?
            .networks?
            .into_values()
            .filter_map(|n| n.ip_address)
            .find(|ip| !ip.is_empty())
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
            "Health":{"Status":"healthy","FailingStreak":0,"Log":[{"Start":"x","ExitCode":1,
            "Output":"refused\n"},{"Start":"y","ExitCode":0,"Output":"ok\n"}]}},"Name":"/web","RestartCount":3,"HostConfig":{"AutoRemove":false,
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
        assert_eq!(
            parsed().health_output().as_deref(),
            Some("ok\n"),
            "the last probe's"
        );
        // Whatever an engine leaves out is absent, not an error.
        let bare = || serde_json::from_str::<InspectAnswer>("{}").expect("decodes");
        assert_eq!(bare().health_output(), None);
        let bare = bare();
        let snap = bare.snapshot("asked");
        assert_eq!((snap.id.as_str(), snap.state), ("asked", None));
        assert_eq!(snap.after_exit, AfterExit::Unknown);
    }

    /// The engine's held start, kill and die events (oldest first), as 20.10 sends them: how
    /// each container's last run ended, where they reach back to its start or its kill.
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
}
