//! Our own typed event, decoded from one line of `GET /events` (or of
//! `docker events --format '{{json .}}'`).
//!
//! We read only `Type`, `Action`, `Actor.ID`, `Actor.Attributes`, `scope`, `time` and `timeNano`,
//! the fields every engine from 20.10 (API 1.41) to 29+ (API 1.52, without the legacy `status`,
//! `id` and `from`) sends. Unknown fields are ignored; a line that is not such an event is an
//! [`DecodeError`], never a reason to end the stream.

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
    /// Podman's pods.
    Pod,
    /// Podman's own: `refresh` after a reboot, `renumber`, `migrate`.
    System,
    Unknown,
}

impl ObjectType {
    /// How many object types there are, [`ObjectType::Unknown`] included.
    pub const COUNT: usize = 14;

    /// A dense index, for tables keyed by object type.
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn parse(s: &str) -> Self {
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
            "pod" => Self::Pod,
            "system" => Self::System,
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
            Self::Pod => "pod",
            Self::System => "system",
            Self::Unknown => "unknown",
        }
    }
}

/// An action verb: every one the Docker Engine API documents, Podman's own, and `Unknown` for
/// the rest (a bounded `action` label whatever a future engine sends). Parsed once per event.
///
/// Where Podman names one of Docker's verbs its own way, the verb is Docker's, so that a metric
/// or a rule means the same on both: `exec` is [`Verb::ExecStart`], `exec_died` is
/// [`Verb::ExecDie`], and a container's `remove` is [`Verb::Destroy`]. The action text stays
/// as the engine sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    Attach,
    Checkpoint,
    Cleanup,
    Commit,
    Connect,
    Copy,
    Create,
    Delete,
    Destroy,
    Detach,
    Die,
    Disable,
    Disconnect,
    Enable,
    ExecCreate,
    ExecDetach,
    ExecDie,
    ExecStart,
    Export,
    HealthStatus,
    Import,
    Init,
    Install,
    Kill,
    Load,
    Mount,
    Oom,
    Pause,
    Prune,
    Pull,
    Push,
    Refresh,
    Reload,
    Remove,
    Rename,
    Resize,
    Restart,
    Restore,
    Save,
    Start,
    Stop,
    Sync,
    Tag,
    Top,
    Unmount,
    Unpause,
    Untag,
    Update,
    Unknown,
}

impl Verb {
    /// How many verbs there are, `Unknown` included.
    pub const COUNT: usize = 49;

    pub fn parse(s: &str) -> Self {
        match s {
            "attach" => Self::Attach,
            "checkpoint" => Self::Checkpoint,
            "cleanup" => Self::Cleanup,
            "commit" => Self::Commit,
            "connect" => Self::Connect,
            "copy" => Self::Copy,
            "create" => Self::Create,
            "delete" => Self::Delete,
            "destroy" => Self::Destroy,
            "detach" => Self::Detach,
            "die" => Self::Die,
            "disable" => Self::Disable,
            "disconnect" => Self::Disconnect,
            "enable" => Self::Enable,
            "exec_create" => Self::ExecCreate,
            "exec_detach" => Self::ExecDetach,
            "exec_die" => Self::ExecDie,
            "exec_start" => Self::ExecStart,
            // Podman's names for them.
            "exec" => Self::ExecStart,
            "exec_died" => Self::ExecDie,
            "export" => Self::Export,
            "health_status" => Self::HealthStatus,
            "import" => Self::Import,
            "init" => Self::Init,
            "install" => Self::Install,
            "kill" => Self::Kill,
            "load" => Self::Load,
            "mount" => Self::Mount,
            "oom" => Self::Oom,
            "pause" => Self::Pause,
            "prune" => Self::Prune,
            "pull" => Self::Pull,
            "push" => Self::Push,
            "refresh" => Self::Refresh,
            "reload" => Self::Reload,
            "remove" => Self::Remove,
            "rename" => Self::Rename,
            "resize" => Self::Resize,
            "restart" => Self::Restart,
            "restore" => Self::Restore,
            "save" => Self::Save,
            "start" => Self::Start,
            "stop" => Self::Stop,
            "sync" => Self::Sync,
            "tag" => Self::Tag,
            "top" => Self::Top,
            "unmount" => Self::Unmount,
            "unpause" => Self::Unpause,
            "untag" => Self::Untag,
            "update" => Self::Update,
            _ => Self::Unknown,
        }
    }

    /// The `action` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Attach => "attach",
            Self::Checkpoint => "checkpoint",
            Self::Cleanup => "cleanup",
            Self::Commit => "commit",
            Self::Connect => "connect",
            Self::Copy => "copy",
            Self::Create => "create",
            Self::Delete => "delete",
            Self::Destroy => "destroy",
            Self::Detach => "detach",
            Self::Die => "die",
            Self::Disable => "disable",
            Self::Disconnect => "disconnect",
            Self::Enable => "enable",
            Self::ExecCreate => "exec_create",
            Self::ExecDetach => "exec_detach",
            Self::ExecDie => "exec_die",
            Self::ExecStart => "exec_start",
            Self::Export => "export",
            Self::HealthStatus => "health_status",
            Self::Import => "import",
            Self::Init => "init",
            Self::Install => "install",
            Self::Kill => "kill",
            Self::Load => "load",
            Self::Mount => "mount",
            Self::Oom => "oom",
            Self::Pause => "pause",
            Self::Prune => "prune",
            Self::Pull => "pull",
            Self::Push => "push",
            Self::Refresh => "refresh",
            Self::Reload => "reload",
            Self::Remove => "remove",
            Self::Rename => "rename",
            Self::Resize => "resize",
            Self::Restart => "restart",
            Self::Restore => "restore",
            Self::Save => "save",
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Sync => "sync",
            Self::Tag => "tag",
            Self::Top => "top",
            Self::Unmount => "unmount",
            Self::Unpause => "unpause",
            Self::Untag => "untag",
            Self::Update => "update",
            Self::Unknown => "unknown",
        }
    }

    /// A dense index, for tables keyed by verb.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A field's place in an event's text.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Span {
    start: u32,
    end: u32,
}

/// One engine event.
///
/// Its strings live back to back in one buffer, reached through accessors: decoding allocates
/// twice per event (the text and the attribute list) instead of once per string, which was a
/// fifth of the pipeline's time.
#[derive(Clone)]
pub struct Event {
    pub object: ObjectType,
    /// The action's verb (the part before `": "`), parsed.
    pub verb: Verb,
    /// Nanoseconds since the Unix epoch (`timeNano`, or `time` in seconds when absent).
    pub time_nano: i64,
    text: String,
    type_name: Span,
    action: Span,
    actor_id: Span,
    scope: Span,
    /// Podman's top-level `HealthStatus` (empty elsewhere).
    health_status: Span,
    /// In the engine's order (sorted by key). A list, not a map: events carry a few to a few
    /// dozen, and scanning them is cheaper than hashing every one at decode.
    attributes: Vec<(Span, Span)>,
    /// Spans that end here or before are strings the engine sent without escapes: nothing in
    /// them needs escaping when the event is written as JSON again.
    plain_until: u32,
    /// The first `plain_until` bytes of the text are exactly what [`Event::write_json`] writes.
    pub(crate) verbatim: bool,
}

impl Span {
    /// `start..end` of an event's text. Events come from lines of at most
    /// [`crate::docker::stream::MAX_LINE_BYTES`]; were one ever past 4 GiB, its spans would
    /// saturate and read as empty rather than panic.
    pub(crate) fn new(start: usize, end: usize) -> Self {
        Self {
            start: u32::try_from(start).unwrap_or(u32::MAX),
            end: u32::try_from(end).unwrap_or(u32::MAX),
        }
    }

    fn len(self) -> usize {
        self.end.saturating_sub(self.start) as usize
    }

    pub(crate) fn is_empty(self) -> bool {
        self.end <= self.start
    }
}

/// An event's memory, empty, for the next one (see [`Event::decode_reusing`]).
#[derive(Default)]
pub struct Buffers {
    pub(crate) text: String,
    pub(crate) attributes: Vec<(Span, Span)>,
}

/// A text this large (a line of many labels) is let go rather than kept for the next event.
const MAX_KEPT_TEXT_BYTES: usize = 64 * 1024;

/// Appends `s` to an event's text, returning its place.
pub(crate) fn push_span(text: &mut String, s: &str) -> Span {
    let start = text.len();
    text.push_str(s);
    Span::new(start, text.len())
}

/// The decoded strings of an event, as [`Event::from_parts`] takes them.
pub(crate) struct Parts {
    pub text: String,
    pub type_name: Span,
    pub action: Span,
    pub actor_id: Span,
    pub scope: Span,
    pub health_status: Span,
    pub attributes: Vec<(Span, Span)>,
    pub time_nano: i64,
    /// See [`Event::plain_until`](Event).
    pub plain_until: usize,
    /// See [`Event::verbatim`](Event).
    pub verbatim: bool,
}

impl Event {
    /// An event from its fields (tests, and the general decoding path).
    pub fn new<'a>(
        type_name: &str,
        action: &str,
        actor_id: &str,
        attributes: impl IntoIterator<Item = (&'a str, &'a str)>,
        scope: &str,
        time_nano: i64,
    ) -> Self {
        let mut text = String::new();
        let type_name = push_span(&mut text, type_name);
        let action = push_span(&mut text, action);
        let actor_id = push_span(&mut text, actor_id);
        let scope = push_span(&mut text, scope);
        let attributes = attributes
            .into_iter()
            .map(|(k, v)| (push_span(&mut text, k), push_span(&mut text, v)))
            .collect();
        Self::from_parts(Parts {
            text,
            type_name,
            action,
            actor_id,
            scope,
            health_status: Span::default(),
            attributes,
            time_nano,
            plain_until: 0,
            verbatim: false,
        })
    }

    pub(crate) fn from_parts(p: Parts) -> Self {
        let mut ev = Self {
            object: ObjectType::Unknown,
            verb: Verb::Unknown,
            time_nano: p.time_nano,
            text: p.text,
            type_name: p.type_name,
            action: p.action,
            actor_id: p.actor_id,
            scope: p.scope,
            health_status: p.health_status,
            attributes: p.attributes,
            plain_until: u32::try_from(p.plain_until).unwrap_or(0),
            verbatim: p.verbatim,
        };
        ev.object = ObjectType::parse(ev.type_name());
        ev.verb = match (ev.object, Verb::parse(verb_of(ev.action()))) {
            // Podman removes a container with `remove`, Docker with `destroy`.
            (ObjectType::Container, Verb::Remove) => Verb::Destroy,
            (_, verb) => verb,
        };
        ev
    }

    /// The event with Podman's top-level `HealthStatus` (tests, and the general decoding path).
    pub fn with_health_status(mut self, status: &str) -> Self {
        if !status.is_empty() {
            self.health_status = push_span(&mut self.text, status);
            self.verbatim = false;
        }
        self
    }

    /// The event as the engine sends it (`docker events --format '{{json .}}'`), without the
    /// legacy fields. Written by hand, not through serde: a payload per firing was the rules'
    /// largest cost, and the shape is fixed.
    pub fn write_json(&self, out: &mut String) {
        // Engines from 29 on (API 1.52) send exactly this form: their line is the answer.
        if self.verbatim {
            out.push_str(self.get(Span::new(0, self.plain_until as usize)));
            return;
        }
        let string = |out: &mut String, s: Span| {
            out.push('"');
            if s.end <= self.plain_until {
                out.push_str(self.get(s));
            } else {
                crate::json::push_escaped(out, self.get(s));
            }
            out.push('"');
        };
        out.push_str("{\"Type\":");
        string(out, self.type_name);
        out.push_str(",\"Action\":");
        string(out, self.action);
        out.push_str(",\"Actor\":{\"ID\":");
        string(out, self.actor_id);
        out.push_str(",\"Attributes\":{");
        for (i, (k, v)) in self.attributes.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            string(out, *k);
            out.push(':');
            string(out, *v);
        }
        out.push_str("}},\"scope\":");
        string(out, self.scope);
        if !self.health_status.is_empty() {
            out.push_str(",\"HealthStatus\":");
            string(out, self.health_status);
        }
        let mut n = itoa::Buffer::new();
        out.push_str(",\"time\":");
        out.push_str(n.format(self.time_nano.div_euclid(1_000_000_000)));
        out.push_str(",\"timeNano\":");
        out.push_str(n.format(self.time_nano));
        out.push('}');
    }

    /// Its memory, for the next event's decoding.
    pub fn into_buffers(self) -> Buffers {
        let (mut text, mut attributes) = (self.text, self.attributes);
        if text.capacity() > MAX_KEPT_TEXT_BYTES {
            return Buffers::default();
        }
        text.clear();
        attributes.clear();
        Buffers { text, attributes }
    }

    fn get(&self, s: Span) -> &str {
        self.text
            .get(s.start as usize..s.end as usize)
            .unwrap_or_default()
    }

    /// The size of the event's text: about the size of its JSON.
    pub fn text_len(&self) -> usize {
        self.text.len()
    }

    /// The `Type` as sent, for logs and rules (it may be a type this build does not know).
    pub fn type_name(&self) -> &str {
        self.get(self.type_name)
    }

    /// The full action, e.g. `exec_start: /bin/sh -c true` or `health_status: healthy`.
    pub fn action(&self) -> &str {
        self.get(self.action)
    }

    pub fn actor_id(&self) -> &str {
        self.get(self.actor_id)
    }

    pub fn scope(&self) -> &str {
        self.get(self.scope)
    }

    /// The actor's attributes, in the engine's order.
    pub fn attributes(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + Clone {
        self.attributes
            .iter()
            .map(|(k, v)| (self.get(*k), self.get(*v)))
    }

    /// The verb: the action up to `": "` (`exec_start`, `health_status`, `die`).
    pub fn verb(&self) -> &str {
        // A known verb's name is the text it was parsed from: no need to look for the colon.
        match self.verb {
            Verb::Unknown => verb_of(self.action()),
            known => known.as_str(),
        }
    }

    /// The part after `": "`, if any: the exec command or the health status.
    pub fn action_detail(&self) -> Option<&str> {
        // `split_once(": ")` built a substring searcher each time: this runs several times an
        // exec's event.
        let action = self.action();
        let b = action.as_bytes();
        let colon = memchr::memchr_iter(b':', b).find(|i| b.get(i + 1) == Some(&b' '))?;
        action.get(colon + 2..)
    }

    /// A `health_status` event's status: Docker's in the action (`health_status: healthy`),
    /// Podman's in a field of its own beside a bare `health_status`.
    pub fn health_status(&self) -> Option<&str> {
        self.action_detail()
            .or_else(|| Some(self.get(self.health_status)).filter(|s| !s.is_empty()))
    }

    /// The action as Docker writes it: Podman's bare `health_status` with its status, as
    /// `health_status: healthy`. Rules match and show this, so that one rules file serves both.
    pub fn docker_action(&self) -> std::borrow::Cow<'_, str> {
        let action = self.action();
        match (self.verb, self.action_detail()) {
            (Verb::HealthStatus, None) => match self.health_status() {
                Some(status) => format!("{action}: {status}").into(),
                None => action.into(),
            },
            _ => action.into(),
        }
    }

    /// An exit code: a die's or an exec's `exitCode`; Podman's exec events carry it as
    /// `containerExitCode` (which its other events also carry, as the container's last).
    pub fn exit_code(&self) -> Option<&str> {
        self.attr("exitCode").or_else(|| match self.verb {
            Verb::ExecDie => self.attr("containerExitCode"),
            _ => None,
        })
    }

    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            // Lengths first: most keys differ in length, and that needs no slicing.
            .find(|(k, _)| k.len() == key.len() && self.get(*k) == key)
            .map(|(_, v)| self.get(*v))
    }

    /// The `action` label value: the verb if it is a known one, else `unknown`.
    pub fn action_label(&self) -> &'static str {
        self.verb.as_str()
    }
}

/// Two events are equal when their fields are, however their text is laid out.
impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.time_nano == other.time_nano
            && self.type_name() == other.type_name()
            && self.action() == other.action()
            && self.actor_id() == other.actor_id()
            && self.scope() == other.scope()
            && self.get(self.health_status) == other.get(other.health_status)
            && self.attributes().eq(other.attributes())
    }
}

impl Eq for Event {}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("type", &self.type_name())
            .field("action", &self.action())
            .field("actor_id", &self.actor_id())
            .field("attributes", &self.attributes().collect::<Vec<_>>())
            .field("scope", &self.scope())
            .field("health_status", &self.get(self.health_status))
            .field("time_nano", &self.time_nano)
            .finish()
    }
}

pub fn verb_of(action: &str) -> &str {
    // A byte search: this runs several times per event.
    match action.as_bytes().iter().position(|b| *b == b':') {
        Some(i) if action.as_bytes().get(i + 1) == Some(&b' ') => &action[..i],
        _ => action,
    }
}

/// Why a line is not an event.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("not a JSON event: {0}")]
    Json(String),
    #[error("event has no {0}")]
    Missing(&'static str),
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
        assert_eq!(e.scope(), "local");
    }

    #[test]
    fn engine_29_event_without_legacy_fields() {
        let e = Event::decode(ENGINE_29.as_bytes()).expect("decodes");
        assert_eq!(e.verb(), "exec_start");
        assert_eq!(e.action_detail(), Some("/bin/sh -c true"));
        assert_eq!(e.action_label(), "exec_start");
    }

    /// Podman 4.3's events, as its Docker-compatible service sends them: its own verbs are
    /// Docker's, and its health status, in a field of its own, is read on both decoding paths.
    #[test]
    fn podman_events_read_as_dockers() {
        let line = |action: &str, attrs: &str, extra: &str| {
            format!(
                r#"{{"status":"{action}","id":"abc","from":"localhost/bb:1","Type":"container","Action":"{action}","Actor":{{"ID":"abc","Attributes":{{{attrs}"image":"localhost/bb:1","name":"p1","podId":""}}}},"scope":"local","time":1796171089,"timeNano":1796171089826341821{extra}}}"#
            )
        };
        let both = |l: &str| {
            let (fast, general) = Event::decode_paths(l);
            let general = general.expect("decodes");
            assert_eq!(fast.as_ref(), Some(&general), "both paths agree on {l}");
            general
        };
        let exec = both(&line("exec", r#""containerExitCode":"0","#, ""));
        assert_eq!((exec.verb, exec.action()), (Verb::ExecStart, "exec"));
        let died = both(&line("exec_died", r#""containerExitCode":"5","#, ""));
        assert_eq!((died.verb, died.exit_code()), (Verb::ExecDie, Some("5")));
        assert_eq!(died.action_label(), "exec_die");
        let removed = both(&line("remove", r#""containerExitCode":"0","#, ""));
        assert_eq!(removed.verb, Verb::Destroy);
        let health = both(&line(
            "health_status",
            r#""containerExitCode":"0","#,
            r#","HealthStatus":"unhealthy""#,
        ));
        assert_eq!(health.health_status(), Some("unhealthy"));
        assert_eq!(health.docker_action(), "health_status: unhealthy");
        let mut json = String::new();
        health.write_json(&mut json);
        assert!(json.ends_with(r#""scope":"local","HealthStatus":"unhealthy","time":1796171089,"timeNano":1796171089826341821}"#), "{json}");
        // A die's exit code is its `exitCode`; `containerExitCode` is on every Podman event.
        let die = both(&line(
            "die",
            r#""containerExitCode":"0","exitCode":"137","#,
            "",
        ));
        assert_eq!(die.exit_code(), Some("137"));
        let init = both(&line("init", "", ""));
        assert_eq!(init.action_label(), "init");
        let pod = Event::decode(br#"{"Type":"pod","Action":"create","Actor":{"ID":"p"},"time":1}"#)
            .expect("decodes");
        assert_eq!(pod.object.as_str(), "pod");
        // Docker's own health status is in the action, and a Docker-named verb is itself.
        let docker = Event::decode(ENGINE_29.as_bytes()).expect("decodes");
        assert_eq!(docker.docker_action(), docker.action());
        assert_eq!(docker.exit_code(), None);
    }

    #[test]
    fn time_in_seconds_when_time_nano_is_absent() {
        let e = Event::decode(br#"{"Type":"image","Action":"pull","Actor":{"ID":"x"},"time":5}"#)
            .expect("decodes");
        assert_eq!(e.time_nano, 5_000_000_000);
    }

    #[test]
    fn verbs_split_at_colon_space_and_parse() {
        assert_eq!(Verb::parse("exec_die"), Verb::ExecDie);
        assert_eq!(Verb::ExecDie.as_str(), "exec_die");
        assert_eq!(Verb::parse("frob"), Verb::Unknown);
        assert_eq!(verb_of("exec_start: /bin/sh -c true"), "exec_start");
        assert_eq!(verb_of("health_status:healthy"), "health_status:healthy");
        assert_eq!(verb_of("die"), "die");
    }

    #[test]
    fn unknown_type_and_action_are_bounded_labels() {
        let e = Event::decode(br#"{"Type":"gizmo","Action":"frob: x","time":1}"#).expect("decodes");
        assert_eq!(e.object.as_str(), "unknown");
        assert_eq!(e.type_name(), "gizmo");
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
