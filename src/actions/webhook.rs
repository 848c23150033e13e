//! `webhook`: an HTTP request with the event (or a templated body), retried on 5xx, 429 and
//! network errors ([`delivery`](super::delivery)). Logs name the host only: webhook URLs often
//! carry their secret.

use futures_util::future::BoxFuture;
use marked_yaml::Node;
use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode};

use super::delivery::{DEFAULT_RETRY, Retry, deliver};
use super::{Action, ActionResult, BoxedAction, MAX_BODY_BYTES, MAX_FIELD_BYTES, Outcome, Runtime};
use crate::rules::config::Named;
use crate::rules::template::{Context, Template, payload};
use crate::rules::{ActionConfig, ActionKind, Checker, Resolver};
use crate::secret::Secret;

/// The rule key that asks for this action, and its `action` label.
const NAME: &str = "webhook";

const KEYS: &[&str] = &[
    "url",
    "method",
    "headers",
    "headers_from_env",
    "body",
    "timeout",
    "retries",
];

#[derive(Debug)]
pub struct WebhookAction {
    pub url: Template,
    pub method: http::Method,
    pub headers: Vec<(http::HeaderName, Template)>,
    /// Header values read from the environment: never logged, never rendered.
    pub secret_headers: Vec<SecretHeader>,
    /// None: the event (or a batch's events) as JSON.
    pub body: Option<Template>,
    pub retry: Retry,
}

/// A header whose value is an environment variable's.
#[derive(Debug)]
pub struct SecretHeader {
    pub name: http::HeaderName,
    /// The header as the file spells it, for problems.
    pub key: String,
    pub var: Named,
    /// Filled in by the resolve step: a rule whose secret cannot be read is not loaded.
    pub value: Option<Secret>,
}

/// `webhook: {url: ..., ...}`.
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
        let place = format!("webhook of {place}");
        let map = c.keyed_mapping(node, KEYS, &place)?;
        let Some(url_node) = map.get_scalar("url") else {
            c.err(node.span(), format!("{place} needs a url"));
            return None;
        };
        let url = c.template(url_node)?;
        if !url.has_placeholders() && reqwest::Url::parse(url_node.as_str()).is_err() {
            c.err(
                url_node.span(),
                format!("url of {place} is not a valid URL: {:?}", url_node.as_str()),
            );
        }
        let method = match map.get_scalar("method") {
            Some(m) => match m.as_str().to_ascii_uppercase().as_str() {
                "POST" => http::Method::POST,
                "PUT" => http::Method::PUT,
                "PATCH" => http::Method::PATCH,
                "GET" => http::Method::GET,
                other => {
                    c.err(
                        m.span(),
                        format!("method of {place} must be POST, PUT, PATCH or GET; got {other:?}"),
                    );
                    return None;
                }
            },
            None => http::Method::POST,
        };
        let mut headers = Vec::new();
        if let Some(n) = map.get_node("headers") {
            let h = c.mapping(n, &format!("headers of {place}"))?;
            for (k, v) in h.iter() {
                let Some(name) = header_name(c, k) else {
                    continue;
                };
                let Some(s) = c.scalar(v, &format!("header {} of {place}", k.as_str())) else {
                    continue;
                };
                headers.extend(c.template(s).map(|t| (name, t)));
            }
        }
        let mut secret_headers = Vec::new();
        if let Some(n) = map.get_node("headers_from_env") {
            let h = c.mapping(n, &format!("headers_from_env of {place}"))?;
            for (k, v) in h.iter() {
                let Some(name) = header_name(c, k) else {
                    continue;
                };
                let Some(var) = c.scalar(v, &format!("headers_from_env.{} of {place}", k.as_str()))
                else {
                    continue;
                };
                secret_headers.push(SecretHeader {
                    name,
                    key: k.as_str().to_owned(),
                    var: Named::new(var),
                    value: None,
                });
            }
        }
        let body = map.get_scalar("body").and_then(|b| c.template(b));
        let retry = Retry::compile(c, map, &place, DEFAULT_RETRY)?;
        Some(Box::new(WebhookAction {
            url,
            method,
            headers,
            secret_headers,
            body,
            retry,
        }))
    }
}

fn header_name(c: &mut Checker<'_>, k: &MarkedScalarNode) -> Option<http::HeaderName> {
    match http::HeaderName::from_bytes(k.as_str().as_bytes()) {
        Ok(h) => Some(h),
        Err(_) => {
            c.err(
                k.span(),
                format!("{:?} is not a valid HTTP header name", k.as_str()),
            );
            None
        }
    }
}

impl ActionConfig for WebhookAction {
    fn templates(&self) -> Vec<&Template> {
        std::iter::once(&self.url)
            .chain(self.headers.iter().map(|(_, t)| t))
            .chain(self.body.as_ref())
            .collect()
    }

    fn resolve(&mut self, r: &mut Resolver<'_>) {
        for h in &mut self.secret_headers {
            h.value = r.env_secret(&h.var, &format!("header {}", h.key), |v| {
                http::HeaderValue::from_str(v)
                    .map(|_| ())
                    .map_err(|_| "holds characters a header cannot")
            });
        }
    }
}

impl WebhookAction {
    fn render(&self, ctx: &Context<'_>) -> (String, String, Vec<(http::HeaderName, String)>) {
        let url = self.url.render(ctx, MAX_FIELD_BYTES);
        let body = match &self.body {
            Some(t) => t.render(ctx, MAX_BODY_BYTES),
            None => payload(ctx.events),
        };
        let headers = self
            .headers
            .iter()
            .map(|(k, t)| (k.clone(), t.render(ctx, MAX_FIELD_BYTES)))
            .collect();
        (url, body, headers)
    }
}

impl Action for WebhookAction {
    fn kind(&self) -> &'static str {
        NAME
    }

    fn dry_run(&self, ctx: &Context<'_>, log: bool) {
        let (url, body, headers) = self.render(ctx);
        if log {
            tracing::info!(
                rule = ctx.rule,
                method = %self.method,
                url,
                headers = ?headers,
                secret_headers = ?self.secret_headers.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(),
                body,
                "dry run: would send"
            );
        }
    }

    fn run<'a>(&'a self, ctx: &'a Context<'a>, rt: Runtime<'a>) -> BoxFuture<'a, ActionResult> {
        Box::pin(execute(self, ctx, rt.http))
    }
}

async fn execute(a: &WebhookAction, ctx: &Context<'_>, client: &reqwest::Client) -> ActionResult {
    let (url, body, headers) = a.render(ctx);
    let url = reqwest::Url::parse(&url).map_err(|e| {
        (
            Outcome::Failure,
            format!("the rendered url is not valid: {e}"),
        )
    })?;
    let host = url.host_str().unwrap_or_default().to_owned();
    deliver(&host, a.retry, || {
        let mut req = client
            .request(a.method.clone(), url.clone())
            .header(http::header::CONTENT_TYPE, "application/json");
        for (k, v) in &headers {
            req = req.header(k, v);
        }
        for h in &a.secret_headers {
            if let Some(v) = &h.value {
                req = req.header(&h.name, v.expose());
            }
        }
        req.body(body.clone())
    })
    .await
    .map(drop)
}
