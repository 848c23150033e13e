//! `%%key%%` placeholders: parsed once when the config loads, rendered per event with a size cap.
//!
//! A placeholder fills part of one string; it can never split it or add another (an argv element
//! stays one argument whatever a container label holds). A filter escapes the value for where
//! it goes: `%%key|json%%` inside a JSON string, `|urlencode` in a URL, `|markdown` and `|html`
//! in a chat message. An action may also render with a default escape ([`Escape`]), applied to
//! every placeholder without a filter of its own: a notification's markup stays the template's,
//! and nothing an event carries becomes markup.

use std::borrow::Cow;
use std::sync::Arc;

use crate::docker::event::Event;
use crate::json::push_escaped;

/// The placeholders a template may use, for error messages.
pub const KNOWN_KEYS: &str = "type, action, scope, time, timeNano, date, actor.id, actor.<attribute>, payload, host, engine, ip, logs, health_output, rule, count, status, condition, since, exits, last_exit_code, reason";
/// The filters a placeholder may end with, for error messages.
pub const KNOWN_FILTERS: &str = "json, urlencode, markdown, html";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Type,
    Action,
    Scope,
    Time,
    TimeNano,
    /// The event time, RFC 3339 in UTC to the second.
    Date,
    ActorId,
    Attr(String),
    Payload,
    Host,
    Engine,
    Ip,
    Rule,
    Count,
    /// `firing`, or `resolved` for the event that resolves a rule's open firing.
    Status,
    /// The container's last lines of output, read when the action runs.
    Logs,
    /// The output of the container's last health probe, read when the action runs.
    HealthOutput,
    /// A condition's name (`crash_loop`, ...); empty for an event rule.
    Condition,
    /// When the condition began to hold, RFC 3339 in UTC to the second.
    Since,
    /// A crash loop's exits (a restart loop's restarts) in its window when it fired.
    Exits,
    /// The container's last exit code: a condition's, else the event's `exitCode`.
    LastExitCode,
    /// How the container's last run ended: completed, error, oom_killed or killed.
    Reason,
}

/// How a placeholder's value is escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// As it is.
    None,
    /// For inside a JSON string.
    Json,
    /// Percent-encoded: everything but letters, digits and `-._~`.
    Url,
    /// Markdown's punctuation backslash-escaped, so a name like `*db_1*` shows as written.
    Markdown,
    /// `& < > " '` as HTML entities.
    Html,
    /// `& < >` as entities, all Slack's mrkdwn has (not a filter; Slack's default).
    Mrkdwn,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    /// `escape` is the placeholder's own filter; `None` takes the render's default.
    Key {
        key: Key,
        escape: Option<Escape>,
    },
}

/// What a render's string starts with room for.
const RENDER_CAPACITY: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// What a template renders from: the events of one firing (one, or a batch's digest) and
/// where they came from.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub events: &'a [Arc<Event>],
    pub rule: &'a str,
    pub host: &'a str,
    /// The engine's name (as its series' `engine` label shows it, with several engines).
    pub engine: &'a str,
    /// For the event that resolves a rule's open firing: the event that opened it.
    pub opened_by: Option<&'a Arc<Event>>,
    /// What was asked of the engine for the placeholders that need it.
    pub looked_up: LookedUp<'a>,
    /// For a condition's firing: what it found.
    pub condition: Option<&'a Facts>,
}

/// What a condition found when it began to hold: kept with its open firing (and in the state
/// file), and shown by its placeholders, its recovery's too.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Facts {
    /// `%%condition%%`.
    pub condition: String,
    /// When it began to hold, in nanoseconds since the epoch.
    pub since_nano: i64,
    /// A loop's exits or restarts in its window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exits: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit_code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What is asked of the engine for a firing's placeholders, only when its rule uses them.
#[derive(Debug, Clone, Copy, Default)]
pub struct LookedUp<'a> {
    /// The container's IP address (`%%ip%%`).
    pub ip: Option<&'a str>,
    /// The container's last lines (`%%logs%%`).
    pub logs: Option<&'a str>,
    /// The output of the container's last health probe (`%%health_output%%`).
    pub health_output: Option<&'a str>,
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
            let (name, escape) = match inner.split_once('|') {
                Some((name, filter)) => (
                    name,
                    Some(parse_filter(filter).ok_or_else(|| {
                        format!("unknown filter |{filter} in %%{inner}%%; known: {KNOWN_FILTERS}")
                    })?),
                ),
                None => (inner, None),
            };
            let key = parse_key(name)
                .ok_or_else(|| format!("unknown placeholder %%{inner}%%; known: {KNOWN_KEYS}"))?;
            parts.push(Part::Key { key, escape });
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

    /// [`Template::render`], borrowing a template without placeholders instead of copying it.
    pub fn render_cow(&self, ctx: &Context<'_>, cap: usize) -> Cow<'_, str> {
        match &self.parts[..] {
            [Part::Lit(s)] if s.len() <= cap => Cow::Borrowed(s),
            _ => Cow::Owned(self.render(ctx, cap)),
        }
    }

    /// Renders, cutting the result at `cap` bytes (at a character boundary). A key the event
    /// lacks renders empty.
    pub fn render(&self, ctx: &Context<'_>, cap: usize) -> String {
        self.render_escaped(ctx, cap, Escape::None)
    }

    /// [`Template::render`], escaping each placeholder without a filter of its own with
    /// `default`.
    pub fn render_escaped(&self, ctx: &Context<'_>, cap: usize, default: Escape) -> String {
        // Enough for most renders at once: growing a string by doubling was a tenth of the
        // rules' allocations.
        let payload = if self.uses(&Key::Payload) {
            payload_size(ctx.events)
        } else {
            0
        };
        let mut out = String::with_capacity((RENDER_CAPACITY + payload).min(cap));
        for part in &self.parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                // The payload, the largest value, is written in place rather than built apart.
                Part::Key { key, escape } => match (key, escape.unwrap_or(default)) {
                    (Key::Payload, Escape::None) => write_payload(ctx.events, &mut out),
                    (key, escape) => escape_into(&mut out, &value(key, ctx), escape),
                },
            }
            if out.len() > cap {
                break;
            }
        }
        truncate(&mut out, cap);
        out
    }
}

fn parse_filter(name: &str) -> Option<Escape> {
    Some(match name {
        "json" => Escape::Json,
        "urlencode" => Escape::Url,
        "markdown" => Escape::Markdown,
        "html" => Escape::Html,
        _ => return None,
    })
}

/// Characters Markdown (CommonMark, and the chat dialects built on it) may read as markup.
const MARKDOWN_SPECIAL: &[char] = &[
    '\\', '`', '*', '_', '{', '}', '[', ']', '(', ')', '<', '>', '#', '+', '-', '.', '!', '|', '~',
];

/// Appends `s` to `out`, escaped by `escape`.
pub fn escape_into(out: &mut String, s: &str, escape: Escape) {
    match escape {
        Escape::None => out.push_str(s),
        Escape::Json => push_escaped(out, s),
        Escape::Url => out.extend(percent_encoding::utf8_percent_encode(s, URL_ENCODE)),
        Escape::Markdown => {
            for c in s.chars() {
                if MARKDOWN_SPECIAL.contains(&c) {
                    out.push('\\');
                }
                out.push(c);
            }
        }
        Escape::Html | Escape::Mrkdwn => {
            // Mrkdwn's entities are HTML's, but for the quotes.
            let quotes = escape == Escape::Html;
            for c in s.chars() {
                match c {
                    '&' => out.push_str("&amp;"),
                    '<' => out.push_str("&lt;"),
                    '>' => out.push_str("&gt;"),
                    '"' if quotes => out.push_str("&quot;"),
                    '\'' if quotes => out.push_str("&#39;"),
                    c => out.push(c),
                }
            }
        }
    }
}

/// What `|urlencode` leaves as it is: RFC 3986's unreserved characters.
const URL_ENCODE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `s` escaped by `escape`.
pub fn escaped(s: &str, escape: Escape) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s, escape);
    out
}

fn parse_key(name: &str) -> Option<Key> {
    Some(match name {
        "type" => Key::Type,
        "action" => Key::Action,
        "scope" => Key::Scope,
        "time" => Key::Time,
        "timeNano" => Key::TimeNano,
        "date" => Key::Date,
        "actor.id" => Key::ActorId,
        "payload" => Key::Payload,
        "host" => Key::Host,
        "engine" => Key::Engine,
        "ip" => Key::Ip,
        "rule" => Key::Rule,
        "count" => Key::Count,
        "status" => Key::Status,
        "logs" => Key::Logs,
        "health_output" => Key::HealthOutput,
        "condition" => Key::Condition,
        "since" => Key::Since,
        "exits" => Key::Exits,
        "last_exit_code" => Key::LastExitCode,
        "reason" => Key::Reason,
        other => match other.strip_prefix("actor.") {
            Some(attr) if !attr.is_empty() => Key::Attr(attr.to_owned()),
            _ => return None,
        },
    })
}

/// A key's value: borrowed from the event or the context where it can be.
fn value<'a>(key: &Key, ctx: &Context<'a>) -> Cow<'a, str> {
    let Some(ev) = ctx.events.first() else {
        return Cow::Borrowed("");
    };
    match key {
        Key::Type => ev.type_name().into(),
        Key::Action => ev.docker_action(),
        Key::Scope => ev.scope().into(),
        Key::Time => ev.time_nano.div_euclid(1_000_000_000).to_string().into(),
        Key::TimeNano => ev.time_nano.to_string().into(),
        Key::Date => date(ev.time_nano).into(),
        Key::ActorId => ev.actor_id().into(),
        Key::Attr(a) => ev.attr(a).unwrap_or_default().into(),
        Key::Payload => payload(ctx.events).into(),
        Key::Host => ctx.host.into(),
        Key::Engine => ctx.engine.into(),
        Key::Ip => ctx.looked_up.ip.unwrap_or_default().into(),
        Key::Logs => ctx.looked_up.logs.unwrap_or_default().into(),
        Key::HealthOutput => ctx.looked_up.health_output.unwrap_or_default().into(),
        Key::Rule => ctx.rule.into(),
        Key::Count => ctx.events.len().to_string().into(),
        Key::Status => if ctx.opened_by.is_some() {
            "resolved"
        } else {
            "firing"
        }
        .into(),
        Key::Condition => ctx.condition.map_or("", |f| &f.condition).into(),
        Key::Since => ctx
            .condition
            .map(|f| date(f.since_nano))
            .unwrap_or_default()
            .into(),
        Key::Exits => ctx
            .condition
            .and_then(|f| f.exits)
            .map(|n| n.to_string())
            .unwrap_or_default()
            .into(),
        Key::LastExitCode => match ctx.condition {
            Some(f) => f
                .last_exit_code
                .map(|c| c.to_string())
                .unwrap_or_default()
                .into(),
            None => ev.attr("exitCode").unwrap_or_default().into(),
        },
        Key::Reason => ctx
            .condition
            .and_then(|f| f.reason.as_deref())
            .unwrap_or_default()
            .into(),
    }
}

/// `nano` as RFC 3339 in UTC, to the second (`%%date%%`, and the status page's times).
pub fn date(nano: i64) -> String {
    crate::docker::format_rfc3339_nano(nano.div_euclid(1_000_000_000) * 1_000_000_000)
        .unwrap_or_default()
}

/// The event as the engine sends it (`docker events --format '{{json .}}'`); a JSON array of
/// them for a batch of more than one.
pub fn payload(events: &[Arc<Event>]) -> String {
    let mut out = String::new();
    write_payload(events, &mut out);
    out
}

/// About what a payload of `events` takes: their text, a little more for what escaping adds.
fn payload_size(events: &[Arc<Event>]) -> usize {
    events.iter().map(|e| e.text_len() + 64).sum()
}

fn write_payload(events: &[Arc<Event>], out: &mut String) {
    out.reserve(payload_size(events));
    match events {
        [e] => e.write_json(out),
        many => {
            out.push('[');
            for (i, e) in many.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                e.write_json(out);
            }
            out.push(']');
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

    fn ev() -> Arc<Event> {
        Arc::new(Event::new(
            "container",
            "start",
            "abc",
            [
                ("name", "web; rm -rf / \"x\""),
                ("com.docker.compose.service", "api"),
            ],
            "local",
            1_700_000_000_123_456_789,
        ))
    }

    /// The context the tests render in: one event, rule "r", host "h1".
    fn ctx(events: &[Arc<Event>]) -> Context<'_> {
        Context {
            events,
            rule: "r",
            host: "h1",
            engine: "e1",
            opened_by: None,
            looked_up: Default::default(),
            condition: None,
        }
    }

    fn render(t: &str) -> String {
        let events = [ev()];
        Template::parse(t)
            .expect("parses")
            .render(&ctx(&events), 1 << 20)
    }

    #[test]
    fn placeholders_render_from_the_event() {
        assert_eq!(render("container.%%action%%"), "container.start");
        assert_eq!(
            render("%%actor.com.docker.compose.service%%@%%host%%"),
            "api@h1"
        );
        assert_eq!(render("%%engine%%"), "e1");
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
    fn filters_escape_for_urls_markdown_and_html() {
        assert_eq!(
            render("?q=%%actor.name|urlencode%%"),
            "?q=web%3B%20rm%20-rf%20%2F%20%22x%22"
        );
        assert_eq!(render("%%actor.name|markdown%%"), r#"web; rm \-rf / "x""#);
        assert_eq!(
            render("<b>%%actor.name|html%%</b>"),
            "<b>web; rm -rf / &quot;x&quot;</b>"
        );
        assert_eq!(
            escaped("*a_b* [l](u) `c` <x> #1 ~s~ |t|", Escape::Markdown),
            r"\*a\_b\* \[l\]\(u\) \`c\` \<x\> \#1 \~s\~ \|t\|"
        );
        assert_eq!(
            escaped("<a href='x'>&</a>", Escape::Html),
            "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;"
        );
        assert_eq!(
            escaped(r#"<a & 'b' "c">"#, Escape::Mrkdwn),
            r#"&lt;a &amp; 'b' "c"&gt;"#,
            "Slack's three, not the quotes"
        );
        assert_eq!(
            Template::parse("%%actor.name|yaml%%").expect_err("unknown filter"),
            format!("unknown filter |yaml in %%actor.name|yaml%%; known: {KNOWN_FILTERS}")
        );
    }

    /// A notification's markup is the template's: a default escape applies to the values
    /// only, and a placeholder's own filter wins over it.
    #[test]
    fn a_default_escape_applies_to_values_not_to_the_template() {
        let events = [Arc::new(Event::new(
            "container",
            "die",
            "abc",
            [("name", "<i>x</i>")],
            "local",
            1,
        ))];
        let t = Template::parse("<b>%%actor.name%%</b> %%actor.name|urlencode%%").expect("parses");
        assert_eq!(
            t.render_escaped(&ctx(&events), 1 << 10, Escape::Html),
            "<b>&lt;i&gt;x&lt;/i&gt;</b> %3Ci%3Ex%3C%2Fi%3E"
        );
    }

    #[test]
    fn status_and_date_render_from_the_firing() {
        assert_eq!(render("%%status%% %%date%%"), "firing 2023-11-14T22:13:20Z");
        let events = [ev()];
        let opened = ev();
        let ctx = Context {
            opened_by: Some(&opened),
            ..ctx(&events)
        };
        assert_eq!(
            Template::parse("%%status%%")
                .expect("parses")
                .render(&ctx, 100),
            "resolved"
        );
    }

    #[test]
    fn payload_is_the_engine_format() {
        assert_eq!(
            render("%%payload%%"),
            r#"{"Type":"container","Action":"start","Actor":{"ID":"abc","Attributes":{"name":"web; rm -rf / \"x\"","com.docker.compose.service":"api"}},"scope":"local","time":1700000000,"timeNano":1700000000123456789}"#
        );
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
    fn a_literal_renders_borrowed_and_the_same() {
        let events = [ev()];
        let ctx = ctx(&events);
        for (t, cap) in [
            ("salt-call", 100),
            ("ééé", 3),
            ("x %%action%%", 100),
            ("", 10),
        ] {
            let t = Template::parse(t).expect("parses");
            assert_eq!(t.render_cow(&ctx, cap), t.render(&ctx, cap));
        }
        let lit = Template::parse("salt-call").expect("parses");
        assert!(matches!(
            lit.render_cow(&ctx, 100),
            Cow::Borrowed("salt-call")
        ));
    }

    #[test]
    fn rendering_is_capped_at_a_char_boundary() {
        let events = [ev()];
        let ctx = ctx(&events);
        let t = Template::parse("ééé%%actor.name%%").expect("parses");
        assert_eq!(t.render(&ctx, 5), "éé");
    }
}
