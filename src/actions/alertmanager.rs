//! `alertmanager`: events become alerts posted to Alertmanager's `/api/v2/alerts`, so its
//! routes, receivers, grouping and silences apply. An alert starts at its event's time and
//! ends after `resolve_after`, or at the rule's resolving event (posted with the labels and
//! start of the event that opened it, which is how Alertmanager knows it is the same alert).
//! An alert waiting for its resolving event is posted again every `resend_interval` with an
//! `endsAt` four intervals on, as Prometheus does: Alertmanager holds it while the exporter
//! lives, and resolves it by itself if the exporter is gone.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use marked_yaml::Node;
use marked_yaml::types::MarkedMappingNode;
use reqwest::Url;
use serde_json::{Map, Value, json};

use super::delivery::{DEFAULT_RETRY, Retry, URL_KEYS, UrlFrom, deliver, take_credentials};
use super::notify::{DEFAULT_MESSAGE, DEFAULT_TITLE};
use super::{Action, ActionResult, BoxedAction, MAX_FIELD_BYTES, Outcome, Runtime};
use crate::docker::event::Event;
use crate::rules::template::{Context, Template};
use crate::rules::{ActionConfig, ActionKind, Checker, Resolver};
use crate::secret::Secret;

/// The rule key that asks for this action, and its `action` label.
const NAME: &str = "alertmanager";

/// `resend_interval`'s default: Prometheus's `--rules.alert.resend-delay`.
pub const DEFAULT_RESEND_INTERVAL: Duration = Duration::from_secs(60);
/// The shortest `resend_interval`: the exporter looks for open alerts due once a second.
const MIN_RESEND_INTERVAL: Duration = Duration::from_secs(1);
/// An open alert's `endsAt` is this many resend intervals after it is posted (Prometheus's
/// own factor): three posts may fail before Alertmanager lets it go.
const RESENDS_HELD: u32 = 4;
const OTHER_KEYS: &[&str] = &[
    "labels",
    "annotations",
    "resolve_after",
    "resend_interval",
    "timeout",
    "retries",
];
/// Labels every alert has; a rule's `labels` add to them or replace them.
const DEFAULT_LABELS: &[(&str, &str)] = &[
    ("alertname", "%%rule%%"),
    ("host", "%%host%%"),
    ("engine", "%%engine%%"),
    ("name", "%%actor.name%%"),
];
const DEFAULT_ANNOTATIONS: &[(&str, &str)] =
    &[("summary", DEFAULT_TITLE), ("description", DEFAULT_MESSAGE)];

#[derive(Debug)]
pub struct AlertmanagerAction {
    pub url_from: UrlFrom,
    /// Parsed when the rules load (the resolve step, for a URL from outside the file).
    pub endpoint: Option<Endpoint>,
    pub labels: Vec<(String, Template)>,
    pub annotations: Vec<(String, Template)>,
    /// `endsAt` is the event's time plus this.
    pub resolve_after: Option<Duration>,
    /// The rule has `resolve` (or a condition that ends): without `resolve_after`, an alert
    /// lasts until its resolving event (or its condition's end), posted again every
    /// `resend_interval` until then. Without either, Alertmanager's `resolve_timeout` ends it.
    pub resolvable: bool,
    pub resend_interval: Duration,
    pub retry: Retry,
}

/// Where alerts are posted.
#[derive(Debug)]
pub struct Endpoint {
    /// `.../api/v2/alerts`, without credentials.
    pub url: Url,
    pub auth: Option<(String, Secret)>,
    /// The URL as given, its password masked.
    pub masked: String,
}

impl Endpoint {
    fn parse(s: &str) -> Result<Self, String> {
        let mut url = Url::parse(s.trim()).map_err(|e| format!("it is not a valid URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err("it must be an http:// or https:// URL of Alertmanager, e.g. http://127.0.0.1:9093".to_owned());
        }
        let mut masked = url.clone();
        if url.password().is_some() {
            let _ = masked.set_password(Some("****"));
        }
        let auth = take_credentials(&mut url);
        let path = format!("{}/api/v2/alerts", url.path().trim_end_matches('/'));
        url.set_path(&path);
        Ok(Self {
            url,
            auth,
            masked: masked.to_string(),
        })
    }
}

pub struct Kind;

impl ActionKind<BoxedAction> for Kind {
    fn key(&self) -> &'static str {
        NAME
    }

    fn compile(
        &self,
        c: &mut Checker<'_>,
        node: &Node,
        rule: &MarkedMappingNode,
        place: &str,
    ) -> Option<BoxedAction> {
        let place = format!("alertmanager of {place}");
        let keys: Vec<&str> = URL_KEYS.iter().chain(OTHER_KEYS).copied().collect();
        let map = c.keyed_mapping(node, &keys, &place)?;
        let (url_from, given) = UrlFrom::compile(c, map, node, &place)?;
        // Each check runs, so that every problem is reported; `None` for one with a problem.
        let endpoint = match given.map(|url| (url, Endpoint::parse(url.as_str()))) {
            None => Some(None),
            Some((_, Ok(e))) => Some(Some(e)),
            Some((url, Err(e))) => {
                c.err(url.span(), format!("url of {place}: {e}"));
                None
            }
        };
        let labels = pairs(c, map, "labels", DEFAULT_LABELS, &place, true);
        let annotations = pairs(c, map, "annotations", DEFAULT_ANNOTATIONS, &place, false);
        let resolve_after = match map.get_node("resolve_after") {
            Some(n) => c
                .duration(n, &format!("resolve_after of {place}"))
                .map(Some),
            None => Some(None),
        };
        let resend_interval = match map.get_node("resend_interval") {
            None => Some(DEFAULT_RESEND_INTERVAL),
            Some(n) => {
                let what = format!("resend_interval of {place}");
                match c.duration(n, &what) {
                    Some(d) if d < MIN_RESEND_INTERVAL => {
                        c.err(n.span(), format!("{what} must be at least 1s; got {d:?}"));
                        None
                    }
                    d => d,
                }
            }
        };
        let retry = Retry::compile(c, map, &place, DEFAULT_RETRY);
        Some(Box::new(AlertmanagerAction {
            url_from,
            endpoint: endpoint?,
            labels: labels?,
            annotations: annotations?,
            resolve_after: resolve_after?,
            resolvable: crate::rules::config::opens(rule),
            resend_interval: resend_interval?,
            retry: retry?,
        }))
    }
}

/// The defaults with `key`'s mapping of templates over them. Label names are checked as
/// Prometheus label names.
fn pairs(
    c: &mut Checker<'_>,
    map: &MarkedMappingNode,
    key: &str,
    defaults: &[(&str, &str)],
    place: &str,
    label_names: bool,
) -> Option<Vec<(String, Template)>> {
    let mut out: Vec<(String, Template)> = defaults
        .iter()
        // Fixed templates of known placeholders.
        .map(|(k, v)| ((*k).to_owned(), Template::parse(v).expect("the default templates parse")))
        .collect();
    let Some(n) = map.get_node(key) else {
        return Some(out);
    };
    let given = c.mapping(n, &format!("{key} of {place}"))?;
    let mut ok = true;
    for (k, v) in given.iter() {
        let name = k.as_str();
        if label_names && !is_label_name(name) {
            c.err(
                k.span(),
                format!("{name:?} in {key} of {place} is not a label name; use letters, digits and _, not starting with a digit or __"),
            );
            ok = false;
            continue;
        }
        let Some(s) = c.scalar(v, &format!("{key}.{name} of {place}")) else {
            ok = false;
            continue;
        };
        let Some(t) = c.template(s) else {
            ok = false;
            continue;
        };
        match out.iter_mut().find(|(k, _)| k == name) {
            Some(slot) => slot.1 = t,
            None => out.push((name.to_owned(), t)),
        }
    }
    ok.then_some(out)
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with("__")
}

impl ActionConfig for AlertmanagerAction {
    fn templates(&self) -> Vec<&Template> {
        self.labels
            .iter()
            .chain(&self.annotations)
            .map(|(_, t)| t)
            .collect()
    }

    fn resolve(&mut self, r: &mut Resolver<'_>) {
        let Some((url, at)) = self.url_from.read(r, "Alertmanager URL") else {
            return;
        };
        match Endpoint::parse(url.expose()) {
            Ok(e) => self.endpoint = Some(e),
            Err(e) => r.err(at, format!("the Alertmanager URL: {e}")),
        }
    }
}

impl AlertmanagerAction {
    /// The alerts of this firing, posted at `now_nano`: one per event; for a resolving event,
    /// the alert its opening event posted, ended at the resolving event's time.
    fn alerts(&self, ctx: &Context<'_>, now_nano: i64) -> Value {
        let alerts = ctx.events.iter().map(|ev| match ctx.opened_by {
            Some(opened) => self.alert(ctx, opened, Some(ev.time_nano)),
            None => self.alert(ctx, ev, self.ends(ev, now_nano)),
        });
        Value::Array(alerts.collect())
    }

    /// When an alert opened by `ev` and posted at `now_nano` ends, if the exporter says.
    fn ends(&self, ev: &Event, now_nano: i64) -> Option<i64> {
        let (from, after) = match (self.resolve_after, self.resolvable) {
            (Some(after), _) => (ev.time_nano, after),
            (None, true) => (now_nano, self.resend_interval * RESENDS_HELD),
            (None, false) => return None,
        };
        Some(from.saturating_add(i64::try_from(after.as_nanos()).unwrap_or(i64::MAX)))
    }

    fn alert(&self, ctx: &Context<'_>, ev: &Arc<Event>, ends: Option<i64>) -> Value {
        let one = Context {
            events: std::slice::from_ref(ev),
            opened_by: None,
            ..*ctx
        };
        let render = |pairs: &[(String, Template)]| -> Map<String, Value> {
            pairs
                .iter()
                .map(|(k, t)| (k.clone(), t.render(&one, MAX_FIELD_BYTES)))
                // An empty label is no label (and Alertmanager refuses empty values).
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k, Value::String(v)))
                .collect()
        };
        let time = |nano: i64| crate::docker::format_rfc3339_nano(nano).map(Value::String);
        let mut alert = json!({
            "labels": render(&self.labels),
            "annotations": render(&self.annotations),
        });
        if let Some(t) = time(ev.time_nano) {
            alert["startsAt"] = t;
        }
        if let Some(t) = ends.and_then(time) {
            alert["endsAt"] = t;
        }
        alert
    }
}

impl Action for AlertmanagerAction {
    fn kind(&self) -> &'static str {
        NAME
    }

    fn resend_interval(&self) -> Option<Duration> {
        (self.resolvable && self.resolve_after.is_none()).then_some(self.resend_interval)
    }

    fn dry_run(&self, ctx: &Context<'_>, log: bool) {
        let alerts = self.alerts(ctx, crate::docker::now_nano());
        if log {
            let url = self.endpoint.as_ref().map(|e| e.masked.as_str());
            tracing::info!(rule = ctx.rule, url, alerts = %alerts, "dry run: would post alerts");
        }
    }

    fn run<'a>(&'a self, ctx: &'a Context<'a>, rt: Runtime<'a>) -> BoxFuture<'a, ActionResult> {
        Box::pin(async move {
            // An endpoint that did not resolve keeps its rule from loading.
            let Some(e) = &self.endpoint else {
                return Err((Outcome::Failure, "the Alertmanager URL was not loaded".to_owned()));
            };
            let body = self.alerts(ctx, crate::docker::now_nano()).to_string();
            deliver(&e.masked, self.retry, || {
                let mut req = rt
                    .http
                    .post(e.url.clone())
                    .header(http::header::CONTENT_TYPE, "application/json");
                if let Some((user, password)) = &e.auth {
                    req = req.basic_auth(user, Some(password.expose()));
                }
                req.body(body.clone())
            })
            .await
            .map(drop)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(labels: &[(&str, &str)], resolve_after: Option<Duration>, resolvable: bool) -> AlertmanagerAction {
        let t = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Template::parse(v).expect("parses")))
                .collect()
        };
        let mut all = DEFAULT_LABELS.to_vec();
        all.extend_from_slice(labels);
        AlertmanagerAction {
            url_from: UrlFrom::Given,
            endpoint: Endpoint::parse("http://am:9093").ok(),
            labels: t(&all),
            annotations: t(&[("summary", "%%actor.name%% %%status%%")]),
            resolve_after,
            resolvable,
            resend_interval: Duration::from_secs(30),
            retry: Retry { retries: 0, ..DEFAULT_RETRY },
        }
    }

    /// Posted two minutes after 2023-11-14T22:13:20Z.
    const NOW: i64 = 1_700_000_120_000_000_000;

    fn alerts(a: &AlertmanagerAction, events: &[Arc<Event>], opened: Option<&Arc<Event>>) -> Value {
        a.alerts(&Context { events, rule: "r", host: "h1", engine: "e1", opened_by: opened, looked_up: Default::default(), condition: None }, NOW)
    }

    /// An alert starts at its event; it ends after resolve_after, or, waiting for its resolving
    /// event, four resend intervals after it is posted (and posted again each interval); a
    /// resolving event ends the alert its opening event posted: the same labels, the same start.
    #[test]
    fn alerts_start_at_the_event_and_resolve_with_the_opening_labels() {
        let ev = |action: &str, secs: i64| Arc::new(Event::new("container", action, "id1", [("name", "web")], "local", secs * 1_000_000_000));
        let (unhealthy, healthy) = (ev("health_status: unhealthy", 1_700_000_000), ev("health_status: healthy", 1_700_000_060));
        let a = action(&[("severity", "warning"), ("action", "%%action%%"), ("empty", "%%actor.nope%%")], None, true);
        let firing = alerts(&a, std::slice::from_ref(&unhealthy), None);
        assert_eq!(firing, json!([{
            "labels": {"alertname": "r", "host": "h1", "engine": "e1", "name": "web", "severity": "warning", "action": "health_status: unhealthy"},
            "annotations": {"summary": "web firing"},
            "startsAt": "2023-11-14T22:13:20Z",
            // Four resend intervals of 30 s after it was posted, at 22:15:20.
            "endsAt": "2023-11-14T22:17:20Z",
        }]));
        let resolved = alerts(&a, &[healthy], Some(&unhealthy));
        assert_eq!(resolved[0]["labels"], firing[0]["labels"]);
        assert_eq!(resolved[0]["startsAt"], "2023-11-14T22:13:20Z");
        assert_eq!(resolved[0]["endsAt"], "2023-11-14T22:14:20Z");
        let after = action(&[], Some(Duration::from_secs(300)), false);
        assert_eq!(alerts(&after, std::slice::from_ref(&unhealthy), None)[0]["endsAt"], "2023-11-14T22:18:20Z");
        assert_eq!(a.resend_interval(), Some(Duration::from_secs(30)));
        assert_eq!(after.resend_interval(), None, "it ends by itself");
        let plain = action(&[], None, false);
        assert_eq!(plain.resend_interval(), None);
        let plain = alerts(&plain, &[unhealthy], None);
        assert!(plain[0].get("endsAt").is_none(), "Alertmanager's resolve_timeout ends it: {plain}");
    }

    #[test]
    fn the_endpoint_is_the_v2_api_and_its_password_is_masked() {
        let e = Endpoint::parse("https://ops:s3cret@am.local/prefix/").expect("parses");
        assert_eq!(e.url.as_str(), "https://am.local/prefix/api/v2/alerts");
        assert_eq!(e.masked, "https://ops:****@am.local/prefix/");
        assert_eq!(e.auth.as_ref().map(|(u, p)| (u.as_str(), p.expose())), Some(("ops", "s3cret")));
    }
}
