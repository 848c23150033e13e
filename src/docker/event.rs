//! Our own typed event, decoded from one line of `GET /events` (or of
//! `docker events --format '{{json .}}'`).
//!
//! We read only `Type`, `Action`, `Actor.ID`, `Actor.Attributes`, `scope`, `time` and `timeNano`,
//! the fields every engine from 20.10 (API 1.41) to 29+ (API 1.52, without the legacy `status`,
//! `id` and `from`) sends. Unknown fields are ignored; a line that is not such an event is an
//! [`DecodeError`], never a reason to end the stream.

use std::collections::HashMap;

use serde::Deserialize;

/// The kind of object an event is about. Anything else is [`ObjectType::Unknown`], so that the
/// `object` label stays a bounded set whatever a future engine sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectType {
    Builder,
    Config,
    Container,
    Daemon,
    Image,
    Network,
    Node,
    Plugin,
    Secret,
    Service,
    Volume,
    Unknown,
}

impl ObjectType {
    fn parse(s: &str) -> Self {
        match s {
            "builder" => Self::Builder,
            "config" => Self::Config,
            "container" => Self::Container,
            "daemon" => Self::Daemon,
            "image" => Self::Image,
            "network" => Self::Network,
            "node" => Self::Node,
            "plugin" => Self::Plugin,
            "secret" => Self::Secret,
            "service" => Self::Service,
            "volume" => Self::Volume,
            _ => Self::Unknown,
        }
    }

    /// The `object` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Builder => "builder",
            Self::Config => "config",
            Self::Container => "container",
            Self::Daemon => "daemon",
            Self::Image => "image",
            Self::Network => "network",
            Self::Node => "node",
            Self::Plugin => "plugin",
            Self::Secret => "secret",
            Self::Service => "service",
            Self::Volume => "volume",
            Self::Unknown => "unknown",
        }
    }
}

/// Every action verb the Docker Engine API documents, across all object types. A verb outside
/// this list is exported as `unknown`, keeping the `action` label bounded.
pub const KNOWN_ACTIONS: &[&str] = &[
    "attach",
    "commit",
    "connect",
    "copy",
    "create",
    "delete",
    "destroy",
    "detach",
    "die",
    "disable",
    "disconnect",
    "enable",
    "exec_create",
    "exec_detach",
    "exec_die",
    "exec_start",
    "export",
    "health_status",
    "import",
    "install",
    "kill",
    "load",
    "mount",
    "oom",
    "pause",
    "prune",
    "pull",
    "push",
    "reload",
    "remove",
    "rename",
    "resize",
    "restart",
    "save",
    "start",
    "stop",
    "tag",
    "top",
    "unmount",
    "unpause",
    "untag",
    "update",
];

/// One engine event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub object: ObjectType,
    /// The `Type` as sent, for logs and rules (it may be a type this build does not know).
    pub type_name: String,
    /// The full action, e.g. `exec_start: /bin/sh -c true` or `health_status: healthy`.
    pub action: String,
    pub actor_id: String,
    pub attributes: HashMap<String, String>,
    pub scope: String,
    /// Nanoseconds since the Unix epoch (`timeNano`, or `time` in seconds when absent).
    pub time_nano: i64,
}

impl Event {
    /// The verb: the action up to `": "` (`exec_start`, `health_status`, `die`).
    pub fn verb(&self) -> &str {
        verb_of(&self.action)
    }

    /// The part after `": "`, if any: the exec command or the health status.
    pub fn action_detail(&self) -> Option<&str> {
        self.action.split_once(": ").map(|(_, rest)| rest)
    }

    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }

    /// The `action` label value: the verb if it is a known one, else `unknown`.
    pub fn action_label(&self) -> &'static str {
        let verb = self.verb();
        KNOWN_ACTIONS
            .iter()
            .find(|known| **known == verb)
            .copied()
            .unwrap_or("unknown")
    }
}

pub fn verb_of(action: &str) -> &str {
    action.split_once(": ").map_or(action, |(verb, _)| verb)
}

/// Why a line is not an event.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("not a JSON event: {0}")]
    Json(String),
    #[error("event has no {0}")]
    Missing(&'static str),
}

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "Type")]
    typ: Option<String>,
    #[serde(rename = "Action")]
    action: Option<String>,
    #[serde(rename = "Actor")]
    actor: Option<RawActor>,
    scope: Option<String>,
    time: Option<i64>,
    #[serde(rename = "timeNano")]
    time_nano: Option<i64>,
}

#[derive(Deserialize)]
struct RawActor {
    #[serde(rename = "ID")]
    id: Option<String>,
    #[serde(rename = "Attributes")]
    attributes: Option<HashMap<String, String>>,
}

impl Event {
    /// Decodes one line (without its newline).
    pub fn decode(line: &[u8]) -> Result<Self, DecodeError> {
        let raw: Raw =
            serde_json::from_slice(line).map_err(|e| DecodeError::Json(e.to_string()))?;
        let type_name = raw
            .typ
            .filter(|t| !t.is_empty())
            .ok_or(DecodeError::Missing("Type"))?;
        let action = raw
            .action
            .filter(|a| !a.is_empty())
            .ok_or(DecodeError::Missing("Action"))?;
        let time_nano = raw
            .time_nano
            .or_else(|| raw.time.and_then(|s| s.checked_mul(1_000_000_000)))
            .ok_or(DecodeError::Missing("time or timeNano"))?;
        let (actor_id, attributes) = match raw.actor {
            Some(a) => (a.id.unwrap_or_default(), a.attributes.unwrap_or_default()),
            None => Default::default(),
        };
        Ok(Self {
            object: ObjectType::parse(&type_name),
            type_name,
            action,
            actor_id,
            attributes,
            scope: raw.scope.unwrap_or_default(),
            time_nano,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENGINE_20: &str = r#"{"status":"die","id":"abc","from":"busybox","Type":"container","Action":"die","Actor":{"ID":"abc","Attributes":{"exitCode":"1","image":"busybox","name":"web"}},"scope":"local","time":1700000000,"timeNano":1700000000123456789}"#;
    const ENGINE_29: &str = r#"{"Type":"container","Action":"exec_start: /bin/sh -c true","Actor":{"ID":"abc","Attributes":{"execID":"e1","name":"web"}},"scope":"local","time":1700000001,"timeNano":1700000001000000001}"#;

    #[test]
    fn engine_20_event_with_legacy_fields() {
        let e = Event::decode(ENGINE_20.as_bytes()).expect("decodes");
        assert_eq!(e.object, ObjectType::Container);
        assert_eq!(e.verb(), "die");
        assert_eq!(e.attr("exitCode"), Some("1"));
        assert_eq!(e.time_nano, 1_700_000_000_123_456_789);
        assert_eq!(e.scope, "local");
    }

    #[test]
    fn engine_29_event_without_legacy_fields() {
        let e = Event::decode(ENGINE_29.as_bytes()).expect("decodes");
        assert_eq!(e.verb(), "exec_start");
        assert_eq!(e.action_detail(), Some("/bin/sh -c true"));
        assert_eq!(e.action_label(), "exec_start");
    }

    #[test]
    fn time_in_seconds_when_time_nano_is_absent() {
        let e = Event::decode(br#"{"Type":"image","Action":"pull","Actor":{"ID":"x"},"time":5}"#)
            .expect("decodes");
        assert_eq!(e.time_nano, 5_000_000_000);
    }

    #[test]
    fn unknown_type_and_action_are_bounded_labels() {
        let e = Event::decode(br#"{"Type":"gizmo","Action":"frob: x","time":1}"#).expect("decodes");
        assert_eq!(e.object.as_str(), "unknown");
        assert_eq!(e.type_name, "gizmo");
        assert_eq!(e.action_label(), "unknown");
    }

    #[test]
    fn malformed_lines_say_what_is_wrong() {
        assert_eq!(
            Event::decode(br#"{"Action":"start","time":1}"#),
            Err(DecodeError::Missing("Type"))
        );
        assert_eq!(
            Event::decode(br#"{"Type":"container","Action":"start"}"#),
            Err(DecodeError::Missing("time or timeNano"))
        );
        let err = Event::decode(b"{not json").expect_err("garbage");
        assert!(err.to_string().starts_with("not a JSON event: "), "{err}");
        let err = Event::decode(br#"{"Type":"container","Action":"start","time":"soon"}"#)
            .expect_err("wrong type");
        assert!(
            err.to_string()
                .starts_with("not a JSON event: invalid type"),
            "{err}"
        );
    }
}
