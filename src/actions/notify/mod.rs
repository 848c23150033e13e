//! `notify`: a message to a chat or push service named by an Apprise-style URL (ntfy, Gotify,
//! Discord, Slack, Telegram, Matrix, Teams, Pushover, generic JSON), with a title and a
//! message template, and a recovery message when the rule's `resolve` matches. The URL may
//! come from the environment or a file; it is only ever shown with its secrets masked.

mod service;

use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::future::{BoxFuture, join_all};
use marked_yaml::Node;
use marked_yaml::types::MarkedMappingNode;
use reqwest::Url;

use self::service::{Body, Message, Request, Target};
use super::delivery::{DEFAULT_RETRY, Retry, URL_KEYS, UrlFrom, deliver};
use super::{Action, ActionResult, BoxedAction, MAX_BODY_BYTES, MAX_FIELD_BYTES, Outcome, Runtime};
use crate::rules::template::{Context, Template, truncate};
use crate::rules::{ActionConfig, ActionKind, Checker, Resolver};

/// The rule key that asks for this action, and its `action` label.
const NAME: &str = "notify";

const OTHER_KEYS: &[&str] = &[
    "title",
    "message",
    "recovered_title",
    "recovered_message",
    "base_url",
    "timeout",
    "retries",
];

/// The defaults say which container on which host did what.
pub const DEFAULT_TITLE: &str = "[%%host%%] %%type%% %%actor.name%%: %%action%%";
pub const DEFAULT_MESSAGE: &str = "%%type%% %%actor.name%% (image %%actor.image%%) on host %%host%%, engine %%engine%%: %%action%% at %%date%%";
pub const DEFAULT_RECOVERED_TITLE: &str =
    "[%%host%%] recovered: %%type%% %%actor.name%%: %%action%%";
pub const DEFAULT_RECOVERED_MESSAGE: &str = "%%type%% %%actor.name%% (image %%actor.image%%) on host %%host%%, engine %%engine%% recovered: %%action%% at %%date%%";

/// Makes each Matrix message's transaction ID unique within the process.
static MATRIX_TXN: AtomicU64 = AtomicU64::new(0);

/// `notify: {url: ...}`, or a list of them: every target gets each firing.
#[derive(Debug)]
pub struct NotifyAction {
    pub targets: Vec<NotifyTarget>,
}

#[derive(Debug)]
pub struct NotifyTarget {
    pub url_from: UrlFrom,
    /// Parsed when the rules load: from `url` at once, from the environment or a file by the
    /// resolve step.
    pub target: Option<Target>,
    /// Replaces the service's scheme and host (a proxy; a test's server).
    pub base_url: Option<Url>,
    pub title: Template,
    pub message: Template,
    pub recovered_title: Template,
    pub recovered_message: Template,
    /// The title and the message are the defaults: a batch's title then says how many more
    /// events it holds, and its message has a line for each.
    pub default_title: bool,
    pub default_message: bool,
    pub retry: Retry,
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
        _rule: &MarkedMappingNode,
        place: &str,
    ) -> Option<BoxedAction> {
        let place = format!("notify of {place}");
        let items: Vec<&Node> = match node {
            Node::Sequence(seq) if !seq.is_empty() => seq.iter().collect(),
            Node::Sequence(_) => {
                c.err(
                    node.span(),
                    format!("{place} is empty; give {{url: ...}} or a list of them"),
                );
                return None;
            }
            _ => vec![node],
        };
        let mut targets = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let place = if items.len() > 1 {
                format!("target {} of {place}", i + 1)
            } else {
                place.clone()
            };
            match compile_target(c, item, &place) {
                Some(t) => targets.push(t),
                None => ok = false,
            }
        }
        ok.then(|| Box::new(NotifyAction { targets }) as BoxedAction)
    }
}

fn compile_target(c: &mut Checker<'_>, node: &Node, place: &str) -> Option<NotifyTarget> {
    let keys: Vec<&str> = URL_KEYS.iter().chain(OTHER_KEYS).copied().collect();
    let map = c.keyed_mapping(node, &keys, place)?;
    let (url_from, given) = UrlFrom::compile(c, map, node, place)?;
    let target = match given {
        Some(url) => match Target::parse(url.as_str()) {
            Ok(t) => Some(t),
            Err(e) => {
                c.err(url.span(), format!("url of {place}: {e}"));
                return None;
            }
        },
        None => None,
    };
    let mut template = |key: &str, default: &str| match map.get_node(key) {
        Some(n) => c
            .scalar(n, &format!("{key} of {place}"))
            .and_then(|s| c.template(s)),
        // A fixed template of known placeholders.
        None => Some(Template::parse(default).expect("the default notify templates parse")),
    };
    let title = template("title", DEFAULT_TITLE);
    let message = template("message", DEFAULT_MESSAGE);
    let recovered_title = template("recovered_title", DEFAULT_RECOVERED_TITLE);
    let recovered_message = template("recovered_message", DEFAULT_RECOVERED_MESSAGE);
    let retry = Retry::compile(c, map, place, DEFAULT_RETRY);
    // Each check runs, so that every problem is reported; `None` for one with a problem.
    let base_url = match map.get_node("base_url") {
        None => Some(None),
        Some(n) => {
            let b = c.scalar(n, &format!("base_url of {place}"))?;
            match Url::parse(b.as_str()) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => Some(Some(u)),
                _ => {
                    c.err(
                        b.span(),
                        format!(
                            "base_url of {place} must be an http:// or https:// URL; got {:?}",
                            b.as_str()
                        ),
                    );
                    None
                }
            }
        }
    };
    Some(NotifyTarget {
        url_from,
        target,
        base_url: base_url?,
        default_title: map.get_node("title").is_none(),
        default_message: map.get_node("message").is_none(),
        title: title?,
        message: message?,
        recovered_title: recovered_title?,
        recovered_message: recovered_message?,
        retry: retry?,
    })
}

impl ActionConfig for NotifyAction {
    fn templates(&self) -> Vec<&Template> {
        self.targets
            .iter()
            .flat_map(|t| {
                [
                    &t.title,
                    &t.message,
                    &t.recovered_title,
                    &t.recovered_message,
                ]
            })
            .collect()
    }

    fn resolve(&mut self, r: &mut Resolver<'_>) {
        for t in &mut self.targets {
            let Some((url, at)) = t.url_from.read(r, "notify URL") else {
                continue;
            };
            match Target::parse(url.expose()) {
                Ok(target) => t.target = Some(target),
                Err(e) => {
                    let from = match &t.url_from {
                        UrlFrom::Env(v) => format!("the URL in environment variable {}", v.value),
                        UrlFrom::File(f) => format!("the URL in {}", f.value),
                        UrlFrom::Given => "the URL".to_owned(),
                    };
                    r.err(at, format!("{from}: {e}"));
                }
            }
        }
    }
}

impl NotifyTarget {
    /// The title and message for this firing, escaped for the service.
    fn render(&self, target: &Target, ctx: &Context<'_>) -> (String, String) {
        let (title, message) = if ctx.opened_by.is_some() {
            (&self.recovered_title, &self.recovered_message)
        } else {
            (&self.title, &self.message)
        };
        let escape = target.escape();
        let mut title = title
            .render_escaped(ctx, MAX_FIELD_BYTES, escape)
            .replace(['\r', '\n'], " ");
        let more = ctx.events.len().saturating_sub(1);
        if more > 0 && self.default_title {
            title.push_str(&format!(" (and {more} more)"));
        }
        let mut message = if more > 0 && self.default_message {
            // A batch's digest: the default message of each event, a line each.
            let mut lines = String::new();
            for ev in ctx.events {
                let one = Context {
                    events: std::slice::from_ref(ev),
                    ..*ctx
                };
                if !lines.is_empty() {
                    lines.push('\n');
                }
                lines.push_str(&message.render_escaped(&one, MAX_BODY_BYTES, escape));
                if lines.len() > MAX_BODY_BYTES {
                    break;
                }
            }
            truncate(&mut lines, MAX_BODY_BYTES);
            lines
        } else {
            message.render_escaped(ctx, MAX_BODY_BYTES, escape)
        };
        let (title_max, message_max) = target.limits();
        if let Some(max) = title_max {
            service::fit(&mut title, max);
        }
        if let Some(max) = message_max {
            service::fit(&mut message, max);
        }
        (title, message)
    }
}

impl Action for NotifyAction {
    fn kind(&self) -> &'static str {
        NAME
    }

    fn dry_run(&self, ctx: &Context<'_>, log: bool) {
        for t in &self.targets {
            let Some(target) = &t.target else { continue };
            let (title, message) = t.render(target, ctx);
            if log {
                tracing::info!(
                    rule = ctx.rule,
                    service = target.name(),
                    url = %target.masked,
                    status = if ctx.opened_by.is_some() { "resolved" } else { "firing" },
                    title,
                    message,
                    "dry run: would notify"
                );
            }
        }
    }

    fn run<'a>(&'a self, ctx: &'a Context<'a>, rt: Runtime<'a>) -> BoxFuture<'a, ActionResult> {
        Box::pin(async move {
            let results = join_all(self.targets.iter().map(|t| send(t, ctx, rt.http))).await;
            let failed: Vec<(Outcome, String)> = results.into_iter().filter_map(Result::err).collect();
            match failed.first() {
                None => Ok(()),
                Some((outcome, _)) => Err((
                    *outcome,
                    failed
                        .iter()
                        .map(|(_, why)| why.as_str())
                        .collect::<Vec<_>>()
                        .join("; "),
                )),
            }
        })
    }
}

/// Sends one firing to one target: each of its requests, each retried.
async fn send(t: &NotifyTarget, ctx: &Context<'_>, client: &reqwest::Client) -> ActionResult {
    // A target that did not resolve keeps its rule from loading, so this is not reached.
    let Some(target) = &t.target else {
        return Err((Outcome::Failure, "the notify URL was not loaded".to_owned()));
    };
    let (title, body) = t.render(target, ctx);
    let m = Message {
        title: &title,
        body: &body,
        resolved: ctx.opened_by.is_some(),
    };
    let base = t.base_url.as_ref();
    let name = &target.masked;
    for req in target.requests(&m, base) {
        deliver(name, t.retry, || build(client, &req)).await?;
    }
    for join in target.matrix_join(base) {
        let answer = deliver(name, t.retry, || build(client, &join)).await?;
        let room_id = serde_json::from_slice::<serde_json::Value>(&answer)
            .ok()
            .and_then(|v| v["room_id"].as_str().map(str::to_owned))
            .ok_or_else(|| {
                (
                    Outcome::Failure,
                    format!("{name}: joining the room answered no room_id"),
                )
            })?;
        let txn = format!(
            "dee-{}-{}",
            ctx.events.first().map_or(0, |e| e.time_nano),
            MATRIX_TXN.fetch_add(1, Ordering::Relaxed)
        );
        if let Some(send) = target.matrix_send(&m, &room_id, &txn, base) {
            deliver(name, t.retry, || build(client, &send)).await?;
        }
    }
    tracing::debug!(rule = ctx.rule, service = target.name(), url = %name, "notified");
    Ok(())
}

fn build(client: &reqwest::Client, r: &Request) -> reqwest::RequestBuilder {
    let mut req = client.request(r.method.clone(), &r.url);
    for (k, v) in &r.headers {
        req = req.header(*k, v);
    }
    if let Some((user, password)) = &r.basic_auth {
        req = req.basic_auth(user, Some(password.expose()));
    }
    match &r.body {
        Body::Json(v) => req
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(v.to_string()),
        Body::Form(f) => req
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(f.clone()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::docker::event::Event;

    fn target(default_message: bool) -> NotifyTarget {
        let t = |s: &str| Template::parse(s).expect("parses");
        NotifyTarget {
            url_from: UrlFrom::Given,
            target: Target::parse("tgram://1:AB/2").ok(),
            base_url: None,
            title: t(DEFAULT_TITLE),
            message: t(if default_message { DEFAULT_MESSAGE } else { "%%count%% crashes" }),
            recovered_title: t(DEFAULT_RECOVERED_TITLE),
            recovered_message: t(DEFAULT_RECOVERED_MESSAGE),
            default_title: true,
            default_message,
            retry: DEFAULT_RETRY,
        }
    }

    /// A batch's default message lists each event; the title says how many more there are;
    /// every event field is escaped for the service (Telegram: HTML).
    #[test]
    fn a_batch_digest_has_a_line_an_event_escaped_for_the_service() {
        let events: Vec<Arc<Event>> = ["a<1>", "b&2"]
            .iter()
            .map(|n| {
                Arc::new(Event::new(
                    "container",
                    "die",
                    n,
                    [("name", *n), ("image", "img")],
                    "local",
                    1_700_000_000_000_000_000,
                ))
            })
            .collect();
        let ctx = Context {
            events: &events,
            rule: "r",
            host: "h1",
            engine: "e1",
            opened_by: None,
            looked_up: Default::default(),
            condition: None,
        };
        let t = target(true);
        let (title, message) = t.render(t.target.as_ref().expect("parses"), &ctx);
        assert_eq!(title, "[h1] container a&lt;1&gt;: die (and 1 more)");
        assert_eq!(
            message,
            "container a&lt;1&gt; (image img) on host h1, engine e1: die at 2023-11-14T22:13:20Z\n\
             container b&amp;2 (image img) on host h1, engine e1: die at 2023-11-14T22:13:20Z"
        );
        let t = target(false);
        let (_, message) = t.render(t.target.as_ref().expect("parses"), &ctx);
        assert_eq!(message, "2 crashes", "a message of yours is rendered once");
    }
}
