//! `%%key%%` placeholders: parsed once when the config loads, rendered per event with a size cap.
//!
//! A placeholder fills part of one string; it can never split it or add another (an argv element
//! stays one argument whatever a container label holds). `%%key|json%%` renders the value
//! escaped for use inside a JSON string.

use std::fmt::Write as _;
use std::sync::Arc;

use serde::Serialize;

use crate::docker::event::Event;

/// The placeholders a template may use, for error messages.
pub const KNOWN_KEYS: &str = "type, action, scope, time, timeNano, actor.id, actor.<attribute>, payload, host, ip, rule, count";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Type,
    Action,
    Scope,
    Time,
    TimeNano,
    ActorId,
    Attr(String),
    Payload,
    Host,
    Ip,
    Rule,
    Count,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Key { key: Key, json: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// What a template renders from: the events of one firing (one, or a batch's digest) and
/// where they came from.
pub struct Context<'a> {
    pub events: &'a [Arc<Event>],
    pub rule: &'a str,
    pub host: &'a str,
    /// The container's IP address, looked up only for rules that use `%%ip%%`.
    pub ip: Option<&'a str>,
}

impl Template {
    /// Parses `s`. An unknown placeholder is an error naming it and the known ones.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = s;
        while let Some(open) = rest.find("%%") {
            let after = &rest[open + 2..];
            let Some(close) = after.find("%%") else { break };
            let inner = &after[..close];
            if inner.is_empty() || inner.chars().any(char::is_whitespace) {
                // Not a placeholder ("100%% sure"): keep the text as it is.
                lit.push_str(&rest[..open + 2]);
                rest = after;
                continue;
            }
            lit.push_str(&rest[..open]);
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(&mut lit)));
            }
            let (name, json) = match inner.strip_suffix("|json") {
                Some(n) => (n, true),
                None => (inner, false),
            };
            let key = parse_key(name)
                .ok_or_else(|| format!("unknown placeholder %%{inner}%%; known: {KNOWN_KEYS}"))?;
            parts.push(Part::Key { key, json });
            rest = &after[close + 2..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Self { parts })
    }

    /// A template that renders `s` as it is.
    pub fn literal(s: &str) -> Self {
        Self {
            parts: vec![Part::Lit(s.to_owned())],
        }
    }

    pub fn has_placeholders(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Key { .. }))
    }

    pub fn uses(&self, key: &Key) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Key { key: k, .. } if k == key))
    }

    /// Renders, cutting the result at `cap` bytes (at a character boundary). A key the event
    /// lacks renders empty.
    pub fn render(&self, ctx: &Context<'_>, cap: usize) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::Key { key, json } => {
                    let value = value(key, ctx);
                    if *json {
                        push_json_escaped(&mut out, &value);
                    } else {
                        out.push_str(&value);
                    }
                }
            }
            if out.len() > cap {
                break;
            }
        }
        truncate(&mut out, cap);
        out
    }
}

fn parse_key(name: &str) -> Option<Key> {
    Some(match name {
        "type" => Key::Type,
        "action" => Key::Action,
        "scope" => Key::Scope,
        "time" => Key::Time,
        "timeNano" => Key::TimeNano,
        "actor.id" => Key::ActorId,
        "payload" => Key::Payload,
        "host" => Key::Host,
        "ip" => Key::Ip,
        "rule" => Key::Rule,
        "count" => Key::Count,
        other => match other.strip_prefix("actor.") {
            Some(attr) if !attr.is_empty() => Key::Attr(attr.to_owned()),
            _ => return None,
        },
    })
}

fn value(key: &Key, ctx: &Context<'_>) -> String {
    let Some(ev) = ctx.events.first() else {
        return String::new();
    };
    match key {
        Key::Type => ev.type_name.clone(),
        Key::Action => ev.action.clone(),
        Key::Scope => ev.scope.clone(),
        Key::Time => ev.time_nano.div_euclid(1_000_000_000).to_string(),
        Key::TimeNano => ev.time_nano.to_string(),
        Key::ActorId => ev.actor_id.clone(),
        Key::Attr(a) => ev.attr(a).unwrap_or_default().to_owned(),
        Key::Payload => payload(ctx.events),
        Key::Host => ctx.host.to_owned(),
        Key::Ip => ctx.ip.unwrap_or_default().to_owned(),
        Key::Rule => ctx.rule.to_owned(),
        Key::Count => ctx.events.len().to_string(),
    }
}

/// The event as the engine sends it (`docker events --format '{{json .}}'`); a JSON array of
/// them for a batch of more than one.
pub fn payload(events: &[Arc<Event>]) -> String {
    // Serialising strings and maps of strings cannot fail.
    match events {
        [e] => serde_json::to_string(&wire(e)).unwrap_or_default(),
        many => serde_json::to_string(&many.iter().map(|e| wire(e)).collect::<Vec<_>>())
            .unwrap_or_default(),
    }
}

fn wire(e: &Event) -> WireEvent<'_> {
    WireEvent {
        typ: &e.type_name,
        action: &e.action,
        actor: WireActor {
            id: &e.actor_id,
            attributes: &e.attributes,
        },
        scope: &e.scope,
        time: e.time_nano.div_euclid(1_000_000_000),
        time_nano: e.time_nano,
    }
}

#[derive(Serialize)]
struct WireEvent<'a> {
    #[serde(rename = "Type")]
    typ: &'a str,
    #[serde(rename = "Action")]
    action: &'a str,
    #[serde(rename = "Actor")]
    actor: WireActor<'a>,
    scope: &'a str,
    time: i64,
    #[serde(rename = "timeNano")]
    time_nano: i64,
}

#[derive(Serialize)]
struct WireActor<'a> {
    #[serde(rename = "ID")]
    id: &'a str,
    #[serde(rename = "Attributes")]
    #[serde(serialize_with = "as_map")]
    attributes: &'a [(String, String)],
}

fn as_map<S: serde::Serializer>(pairs: &&[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(pairs.iter().map(|(k, v)| (k, v)))
}

fn push_json_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// Cuts `s` to at most `cap` bytes at a character boundary.
pub fn truncate(s: &mut String, cap: usize) {
    if s.len() > cap {
        let mut end = cap;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::event::ObjectType;

    fn ev() -> Arc<Event> {
        Arc::new(Event {
            object: ObjectType::Container,
            type_name: "container".into(),
            action: "start".into(),
            verb: crate::docker::event::Verb::Start,
            actor_id: "abc".into(),
            attributes: [
                ("name".to_owned(), "web; rm -rf / \"x\"".to_owned()),
                ("com.docker.compose.service".to_owned(), "api".to_owned()),
            ]
            .into(),
            scope: "local".into(),
            time_nano: 1_700_000_000_123_456_789,
        })
    }

    fn render(t: &str) -> String {
        let events = [ev()];
        let ctx = Context {
            events: &events,
            rule: "r",
            host: "h1",
            ip: None,
        };
        Template::parse(t).expect("parses").render(&ctx, 1 << 20)
    }

    #[test]
    fn placeholders_render_from_the_event() {
        assert_eq!(render("container.%%action%%"), "container.start");
        assert_eq!(
            render("%%actor.com.docker.compose.service%%@%%host%%"),
            "api@h1"
        );
        assert_eq!(
            render("%%time%% %%timeNano%% %%actor.id%% %%rule%% %%count%%"),
            "1700000000 1700000000123456789 abc r 1"
        );
        assert_eq!(render("%%actor.missing%%|%%ip%%"), "|");
        assert_eq!(render("100%% sure %%"), "100%% sure %%");
    }

    #[test]
    fn json_filter_escapes_quotes() {
        assert_eq!(
            render(r#"{"n":"%%actor.name|json%%"}"#),
            r#"{"n":"web; rm -rf / \"x\""}"#
        );
    }

    #[test]
    fn payload_is_the_engine_format() {
        let p: serde_json::Value = serde_json::from_str(&render("%%payload%%")).expect("json");
        assert_eq!(p["Type"], "container");
        assert_eq!(
            p["Actor"]["Attributes"]["com.docker.compose.service"],
            "api"
        );
        assert_eq!(p["timeNano"], 1_700_000_000_123_456_789_i64);
    }

    #[test]
    fn unknown_placeholder_names_it_and_the_known_ones() {
        assert_eq!(
            Template::parse("x %%actor%% y").expect_err("unknown"),
            format!("unknown placeholder %%actor%%; known: {KNOWN_KEYS}")
        );
    }

    #[test]
    fn rendering_is_capped_at_a_char_boundary() {
        let events = [ev()];
        let ctx = Context {
            events: &events,
            rule: "r",
            host: "h",
            ip: None,
        };
        let t = Template::parse("ééé%%actor.name%%").expect("parses");
        assert_eq!(t.render(&ctx, 5), "éé");
    }
}
