//! The engine's event filters (`filters={"container":{"web":true}}`, `--filter container=web`)
//! and times (`since`, `until`), matched as the engine matches them (moby's
//! `daemon/events/filter.go`), so that a question asked of the history gets the answer the
//! engine would give: values of one key are alternatives, keys must all match, names match by
//! prefix, `label` filters must all hold.

use std::collections::BTreeMap;

use crate::docker::event::Event;

/// The keys the engine knows, and `engine` (which of several engines).
pub const KEYS: [&str; 15] = [
    "config",
    "container",
    "daemon",
    "engine",
    "event",
    "image",
    "label",
    "network",
    "node",
    "plugin",
    "scope",
    "secret",
    "service",
    "type",
    "volume",
];

/// The keys matched against an event's actor (its ID or name), for any type of event.
const BY_NAME: [&str; 9] = [
    "config",
    "container",
    "daemon",
    "network",
    "node",
    "plugin",
    "secret",
    "service",
    "volume",
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FilterError {
    #[error("invalid filter {0:?}; the keys are {keys}", keys = KEYS.join(", "))]
    UnknownKey(String),
    #[error("filters: {0}; write them as the engine takes them, e.g. {{\"container\":[\"web\"]}}")]
    Json(String),
    #[error("--filter {0:?}: not KEY=VALUE")]
    NotKeyValue(String),
    #[error(
        "{what} {value:?}: not a time; give a Unix time (1700000000 or 1700000000.5), an RFC 3339 time (2026-12-01T10:00:00Z) or a duration before now (2h, 30m)"
    )]
    Time { what: &'static str, value: String },
}

/// Filters, by key; an empty set matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    by_key: BTreeMap<String, Vec<String>>,
}

impl Filters {
    /// The `filters` query parameter: a JSON object of key to `{"value":true}` (as the docker
    /// CLI sends it) or to `["value"]` (as older clients do).
    pub fn from_json(text: &str) -> Result<Self, FilterError> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Values {
            Map(BTreeMap<String, bool>),
            List(Vec<String>),
        }
        let raw: BTreeMap<String, Values> =
            serde_json::from_str(text).map_err(|e| FilterError::Json(e.to_string()))?;
        let mut f = Self::default();
        for (key, values) in raw {
            let values = match values {
                Values::Map(m) => m
                    .into_iter()
                    .filter(|(_, on)| *on)
                    .map(|(v, _)| v)
                    .collect(),
                Values::List(l) => l,
            };
            for v in values {
                f.add(&key, v)?;
            }
        }
        Ok(f)
    }

    /// `KEY=VALUE` arguments, as `docker events --filter` takes them.
    pub fn from_args<S: AsRef<str>>(args: &[S]) -> Result<Self, FilterError> {
        let mut f = Self::default();
        for arg in args {
            let arg = arg.as_ref();
            let (key, value) = arg
                .split_once('=')
                .ok_or_else(|| FilterError::NotKeyValue(arg.to_owned()))?;
            f.add(key, value.to_owned())?;
        }
        Ok(f)
    }

    fn add(&mut self, key: &str, value: String) -> Result<(), FilterError> {
        if !KEYS.contains(&key) {
            return Err(FilterError::UnknownKey(key.to_owned()));
        }
        let values = self.by_key.entry(key.to_owned()).or_default();
        if !values.contains(&value) {
            values.push(value);
        }
        Ok(())
    }

    /// The filters as the engine's `filters` parameter takes them.
    pub fn to_json(&self) -> String {
        let map: BTreeMap<&str, BTreeMap<&str, bool>> = self
            .by_key
            .iter()
            .map(|(k, vs)| (k.as_str(), vs.iter().map(|v| (v.as_str(), true)).collect()))
            .collect();
        serde_json::to_string(&map).unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    fn values(&self, key: &str) -> Option<&[String]> {
        self.by_key.get(key).map(Vec::as_slice)
    }

    /// No filter on `key`, or `source` is one of its values.
    fn exact(&self, key: &str, source: &str) -> bool {
        self.values(key)
            .is_none_or(|vs| vs.iter().any(|v| v == source))
    }

    /// As [`Self::exact`], or `source` starts with one of the values.
    fn fuzzy(&self, key: &str, source: &str) -> bool {
        self.values(key)
            .is_none_or(|vs| vs.iter().any(|v| source.starts_with(v.as_str())))
    }

    /// Whether an event's line (one the pipeline decoded before) of the engine named `engine`
    /// passes: decoded again only if there is a filter to match.
    pub fn passes(&self, engine: &str, line: &[u8]) -> bool {
        self.by_key.is_empty() || Event::decode(line).is_ok_and(|ev| self.matches(engine, &ev))
    }

    /// Whether the event of the engine named `engine` passes.
    pub fn matches(&self, engine: &str, ev: &Event) -> bool {
        if self.by_key.is_empty() {
            return true;
        }
        let action = ev.action();
        // The engine matches these three by prefix, so that `event=health_status` takes every
        // `health_status: STATUS` (moby #25798).
        let event = match self.values("event") {
            Some(vs)
                if vs.iter().any(|v| {
                    matches!(v.as_str(), "health_status" | "exec_create" | "exec_start")
                }) =>
            {
                self.fuzzy("event", action)
            }
            _ => self.exact("event", action),
        };
        let id = ev.actor_id();
        let name = ev.attr("name").unwrap_or("");
        event
            && self.exact("type", ev.type_name())
            && self.exact("scope", ev.scope())
            && self.exact("engine", engine)
            && BY_NAME
                .iter()
                .all(|key| self.fuzzy(key, id) || self.fuzzy(key, name))
            && self.image(ev)
            && self.labels(ev)
    }

    /// An image event's ID or name, a container event's image, with or without its tag.
    fn image(&self, ev: &Event) -> bool {
        if self.values("image").is_none() {
            return true;
        }
        let id = ev.actor_id();
        let key = if ev.type_name() == "image" {
            "name"
        } else {
            "image"
        };
        let name = ev.attr(key).unwrap_or("");
        [id, name, familiar(id), familiar(name)]
            .iter()
            .any(|s| self.exact("image", s))
    }

    /// Every `label=KEY` and `label=KEY=VALUE` holds among the actor's attributes.
    fn labels(&self, ev: &Event) -> bool {
        let Some(wanted) = self.values("label") else {
            return true;
        };
        wanted.iter().all(|w| match w.split_once('=') {
            Some((k, v)) => ev.attr(k) == Some(v),
            None => ev.attr(w).is_some(),
        })
    }
}

/// An image reference's name as `docker images` shows it: no tag, no digest, no
/// `docker.io/library/`.
fn familiar(image: &str) -> &str {
    let image = image.split_once('@').map_or(image, |(name, _)| name);
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    let image = match image[last_slash..].rfind(':') {
        Some(colon) => &image[..last_slash + colon],
        None => image,
    };
    image
        .strip_prefix("docker.io/library/")
        .or_else(|| image.strip_prefix("docker.io/"))
        .unwrap_or(image)
}

/// A `since` or `until` as the engine's API takes it (Unix seconds, with a fraction), or as
/// the docker CLI does (an RFC 3339 time, or a duration before `now_nano`).
pub fn parse_time(what: &'static str, value: &str, now_nano: i64) -> Result<i64, FilterError> {
    let bad = || FilterError::Time {
        what,
        value: value.to_owned(),
    };
    let value = value.trim();
    if let Some((secs, frac)) = value.split_once('.')
        && !secs.is_empty()
        && secs.bytes().all(|b| b.is_ascii_digit())
        && frac.len() <= 9
        && frac.bytes().all(|b| b.is_ascii_digit())
    {
        let secs: i64 = secs.parse().map_err(|_| bad())?;
        let nanos: i64 = format!("{frac:0<9}").parse().map_err(|_| bad())?;
        return secs
            .checked_mul(1_000_000_000)
            .and_then(|s| s.checked_add(nanos))
            .ok_or_else(bad);
    }
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        let secs: i64 = value.parse().map_err(|_| bad())?;
        return secs.checked_mul(1_000_000_000).ok_or_else(bad);
    }
    if let Ok(t) =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
    {
        return i64::try_from(t.unix_timestamp_nanos()).map_err(|_| bad());
    }
    let ago = humantime::parse_duration(value).map_err(|_| bad())?;
    let ago = i64::try_from(ago.as_nanos()).map_err(|_| bad())?;
    Ok(now_nano.saturating_sub(ago))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(line: &str) -> Event {
        Event::decode(line.as_bytes()).expect("an event")
    }

    const WEB_START: &str = r#"{"status":"start","id":"abc123","from":"nginx:1.27","Type":"container","Action":"start","Actor":{"ID":"abc123","Attributes":{"image":"nginx:1.27","name":"web-1","team":"a"}},"scope":"local","time":1,"timeNano":1000000000}"#;
    const PROBE: &str = r#"{"status":"health_status: healthy","id":"abc123","Type":"container","Action":"health_status: healthy","Actor":{"ID":"abc123","Attributes":{"name":"web-1"}},"scope":"local","time":1,"timeNano":1000000001}"#;
    const PULL: &str = r#"{"status":"pull","id":"docker.io/library/nginx:1.27","Type":"image","Action":"pull","Actor":{"ID":"docker.io/library/nginx:1.27","Attributes":{"name":"docker.io/library/nginx"}},"scope":"local","time":1,"timeNano":1000000002}"#;

    fn passes(args: &[&str], line: &str) -> bool {
        Filters::from_args(args)
            .expect("filters")
            .matches("e", &event(line))
    }

    #[test]
    fn filters_match_as_the_engine_matches_them() {
        assert!(passes(&[], WEB_START));
        assert!(passes(&["container=web"], WEB_START), "a name prefix");
        assert!(passes(&["container=abc"], WEB_START), "an ID prefix");
        assert!(!passes(&["container=db"], WEB_START));
        assert!(
            passes(&["container=db", "container=web-1"], WEB_START),
            "values of a key: any"
        );
        assert!(
            !passes(&["container=web", "type=image"], WEB_START),
            "keys: all"
        );
        assert!(passes(&["event=start", "type=container"], WEB_START));
        assert!(!passes(&["event=star"], WEB_START), "events match whole");
        assert!(
            passes(&["event=health_status"], PROBE),
            "but probes by prefix"
        );
        assert!(passes(&["label=team"], WEB_START));
        assert!(passes(&["label=team=a"], WEB_START));
        assert!(
            !passes(&["label=team=a", "label=tier"], WEB_START),
            "labels: all"
        );
        assert!(passes(&["image=nginx"], WEB_START), "without its tag");
        assert!(passes(&["image=nginx:1.27"], WEB_START));
        assert!(
            passes(&["image=nginx"], PULL),
            "an image event's own name, familiar"
        );
        assert!(!passes(&["image=redis"], PULL));
        assert!(passes(&["engine=e"], PULL));
        assert!(!passes(&["engine=other"], PULL));
        assert!(passes(&["scope=local"], PULL));
    }

    #[test]
    fn the_engines_json_forms_and_bad_filters() {
        let map =
            Filters::from_json(r#"{"container":{"web":true},"type":["container"]}"#).expect("json");
        assert_eq!(
            map,
            Filters::from_args(&["container=web", "type=container"]).expect("args")
        );
        assert_eq!(
            map.to_json(),
            r#"{"container":{"web":true},"type":{"container":true}}"#
        );
        assert_eq!(
            Filters::from_args(&["colour=red"]).map_err(|e| e.to_string()),
            Err("invalid filter \"colour\"; the keys are config, container, daemon, engine, event, image, label, network, node, plugin, scope, secret, service, type, volume".to_owned())
        );
        assert_eq!(
            Filters::from_args(&["web"]).map_err(|e| e.to_string()),
            Err("--filter \"web\": not KEY=VALUE".to_owned())
        );
        assert_eq!(
            Filters::from_json("{oops").map_err(|e| e.to_string()),
            Err("filters: key must be a string at line 1 column 2; write them as the engine takes them, e.g. {\"container\":[\"web\"]}".to_owned())
        );
    }

    #[test]
    fn times_as_the_api_and_the_cli_take_them() {
        let now = 1_700_000_000_000_000_000;
        assert_eq!(parse_time("since", "1700000000", now), Ok(now));
        assert_eq!(
            parse_time("since", "1700000000.5", now),
            Ok(now + 500_000_000)
        );
        assert_eq!(
            parse_time("since", "1700000000.000000001", now),
            Ok(now + 1)
        );
        assert_eq!(parse_time("since", "2h", now), Ok(now - 7_200_000_000_000));
        assert_eq!(parse_time("until", "2023-11-14T22:13:20Z", now), Ok(now));
        assert_eq!(
            parse_time("since", "yesterday", now).map_err(|e| e.to_string()),
            Err("since \"yesterday\": not a time; give a Unix time (1700000000 or 1700000000.5), an RFC 3339 time (2026-12-01T10:00:00Z) or a duration before now (2h, 30m)".to_owned())
        );
        assert_eq!(familiar("docker.io/library/nginx:1.27"), "nginx");
        assert_eq!(
            familiar("localhost:5000/app@sha256:ab"),
            "localhost:5000/app"
        );
        assert_eq!(familiar("localhost:5000/app:v2"), "localhost:5000/app");
    }
}
