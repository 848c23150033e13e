//! What every store receives of one event, derived once from the engine's line: a stable ID, a
//! name, a severity, and attributes named as the OpenTelemetry semantic conventions name them.
//! Each transport writes these in its own protocol.

use crate::docker::event::{Event, ObjectType, Verb};

/// The engine an event came from: a resource to OTLP, the host to syslog.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The name the exporter shows the engine by (its `engine` label).
    pub engine: String,
    /// The engine's host name (`/info` `Name`).
    pub host: String,
    /// `/info` `ID` (Podman's `podman:HOST:ROOT`).
    pub engine_id: String,
}

/// How grave an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Info,
    /// A container died with a non-zero exit, or turned unhealthy.
    Warn,
    /// The kernel's OOM killer ended a container.
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "INFO",
            Self::Warn => "WARN",
            Self::Error => "ERROR",
        }
    }
}

/// One event, as the stores receive it.
#[derive(Debug)]
pub struct Record {
    /// The engine's line, as it sent it.
    pub line: Vec<u8>,
    pub time_nano: i64,
    /// `docker.container.die`: the type and the verb.
    pub name: String,
    pub level: Level,
    /// 32 hex digits, the same each time this event is sent: a store drops a re-sent record by
    /// it (OTLP `log.record.uid`, syslog's `id`, NATS `Nats-Msg-Id`).
    pub id: String,
    /// Semantic-convention attributes, then the actor's other attributes (a container's
    /// labels) as `container.label.KEY` or `docker.attribute.KEY`.
    pub attributes: Vec<(String, String)>,
}

impl Record {
    pub fn new(origin: &Origin, ev: &Event, line: &[u8]) -> Self {
        let name = format!("docker.{}.{}", ev.type_name(), ev.verb());
        let exit = ev.exit_code();
        let level = match ev.verb {
            Verb::Oom => Level::Error,
            Verb::Die if exit.is_some_and(|c| c != "0") => Level::Warn,
            Verb::HealthStatus if ev.health_status() == Some("unhealthy") => Level::Warn,
            _ => Level::Info,
        };
        let mut attributes: Vec<(String, String)> = Vec::new();
        let mut add = |k: &str, v: &str| {
            if !v.is_empty() {
                attributes.push((k.to_owned(), v.to_owned()));
            }
        };
        add("docker.event.type", ev.type_name());
        add("docker.event.action", ev.action());
        add("docker.event.scope", ev.scope());
        let id = ev.actor_id();
        // Attributes of the actor that say what it is; the rest are its labels (Docker puts a
        // container's labels among its event's attributes).
        let own: &[&str] = match ev.object {
            ObjectType::Container => {
                add("container.id", id);
                add("container.name", ev.attr("name").unwrap_or_default());
                add("container.image.name", ev.attr("image").unwrap_or_default());
                if matches!(ev.verb, Verb::Die | Verb::ExecDie)
                    && let Some(code) = exit
                {
                    add("process.exit.code", code);
                }
                add(
                    "docker.container.signal",
                    ev.attr("signal").unwrap_or_default(),
                );
                if ev.verb == Verb::HealthStatus {
                    add(
                        "docker.container.health",
                        ev.health_status().unwrap_or_default(),
                    );
                }
                &[
                    "name",
                    "image",
                    "exitCode",
                    "signal",
                    "containerExitCode",
                    "execID",
                    "execDuration",
                    "podId",
                ]
            }
            ObjectType::Image => {
                add("container.image.id", id);
                add("container.image.name", ev.attr("name").unwrap_or(id));
                &["name"]
            }
            ObjectType::Network => {
                add("network.id", id);
                add("network.name", ev.attr("name").unwrap_or_default());
                add("container.id", ev.attr("container").unwrap_or_default());
                &["name", "container", "type"]
            }
            ObjectType::Volume => {
                add("docker.volume.name", id);
                add("container.id", ev.attr("container").unwrap_or_default());
                add(
                    "docker.volume.driver",
                    ev.attr("driver").unwrap_or_default(),
                );
                &["container", "driver"]
            }
            _ => {
                add("docker.actor.id", id);
                add("docker.actor.name", ev.attr("name").unwrap_or_default());
                &["name"]
            }
        };
        let label_prefix = match ev.object {
            ObjectType::Container => "container.label.",
            _ => "docker.attribute.",
        };
        for (k, v) in ev.attributes() {
            if !own.contains(&k) {
                attributes.push((format!("{label_prefix}{k}"), v.to_owned()));
            }
        }
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        digest.update(origin.engine_id.as_bytes());
        digest.update(&[0]);
        digest.update(line);
        let id = hex(&digest.finish().as_ref()[..16]);
        Self {
            line: line.to_vec(),
            time_nano: ev.time_nano,
            name,
            level,
            id,
            attributes,
        }
    }

    /// The line as text (the engine sends UTF-8 JSON; anything else is shown replaced).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.line)
    }

    /// The value of an attribute, if it has one.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin {
            engine: "vm".into(),
            host: "vm".into(),
            engine_id: "ABCD".into(),
        }
    }

    fn record(line: &str) -> Record {
        let ev = Event::decode(line.as_bytes()).expect("an event");
        Record::new(&origin(), &ev, line.as_bytes())
    }

    #[test]
    fn a_die_is_named_graded_and_labelled() {
        let line = r#"{"status":"die","id":"c1","from":"nginx:1","Type":"container","Action":"die","Actor":{"ID":"c1","Attributes":{"com.example.team":"web","exitCode":"3","image":"nginx:1","name":"web-1"}},"scope":"local","time":10,"timeNano":10000000001}"#;
        let r = record(line);
        assert_eq!(r.name, "docker.container.die");
        assert_eq!(r.level, Level::Warn);
        assert_eq!(r.time_nano, 10_000_000_001);
        assert_eq!(r.attr("container.name"), Some("web-1"));
        assert_eq!(r.attr("container.image.name"), Some("nginx:1"));
        assert_eq!(r.attr("process.exit.code"), Some("3"));
        assert_eq!(r.attr("container.label.com.example.team"), Some("web"));
        assert_eq!(r.attr("container.label.exitCode"), None);
        assert_eq!(r.id.len(), 32);
        assert_eq!(r.id, record(line).id, "the same event, the same ID");
        let other = line.replace("10000000001", "10000000002");
        assert_ne!(r.id, record(&other).id);
    }

    #[test]
    fn severity_follows_the_event() {
        let die0 = r#"{"Type":"container","Action":"die","Actor":{"ID":"c","Attributes":{"exitCode":"0"}},"timeNano":1}"#;
        let oom = r#"{"Type":"container","Action":"oom","Actor":{"ID":"c","Attributes":{}},"timeNano":1}"#;
        let sick = r#"{"Type":"container","Action":"health_status: unhealthy","Actor":{"ID":"c","Attributes":{}},"timeNano":1}"#;
        let start = r#"{"Type":"container","Action":"start","Actor":{"ID":"c","Attributes":{}},"timeNano":1}"#;
        assert_eq!(record(die0).level, Level::Info);
        assert_eq!(record(oom).level, Level::Error);
        assert_eq!(record(sick).level, Level::Warn);
        assert_eq!(
            record(sick).attr("docker.container.health"),
            Some("unhealthy")
        );
        assert_eq!(record(start).level, Level::Info);
    }
}
