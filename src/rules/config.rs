//! The config file, checked: a walk over the YAML tree (with positions) that compiles rules and
//! collects every problem with its file:line:column and a hint, instead of stopping at the first.
//!
//! ```yaml
//! events_reactor:
//!   <rule name>:
//!     event: {type: ..., action: ..., scope: ..., actor: {id: ..., <attribute>: ...}}
//!     run: [program, arg, ...]          # and/or webhook, log, email, metric
//!     timeout: 30s                      # run options: timeout, env, cwd
//!     throttle: {key: "%%actor.name%%", interval: 5m}
//!     batch: 10m
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use marked_yaml::loader::{LoadError, LoaderOptions, parse_yaml_with_options};
use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode};
use marked_yaml::{Node, Span};
use prometheus::{IntCounterVec, Opts};

use super::matcher::{EventMatcher, ValueMatcher};
use super::template::{Key, Template};
use super::{
    Action, ConfigError, ConfigErrors, DEFAULT_EMAIL_TIMEOUT, DEFAULT_METRIC_MAX_SERIES,
    DEFAULT_RUN_TIMEOUT, DEFAULT_WEBHOOK_RETRIES, DEFAULT_WEBHOOK_TIMEOUT, EmailAction, LogAction,
    MetricAction, Rule, RunAction, Secret, SmtpTls, Throttle, WebhookAction,
};

const TOP_KEYS: &[&str] = &["events_reactor"];
const RULE_KEYS: &[&str] = &[
    "event", "run", "timeout", "env", "cwd", "webhook", "log", "email", "metric", "throttle",
    "batch",
];
const EVENT_KEYS: &[&str] = &["type", "action", "scope", "actor"];
const WEBHOOK_KEYS: &[&str] = &[
    "url",
    "method",
    "headers",
    "headers_from_env",
    "body",
    "timeout",
    "retries",
];
const LOG_KEYS: &[&str] = &["path"];
const EMAIL_KEYS: &[&str] = &["smtp", "from", "to", "subject", "body", "timeout"];
const SMTP_KEYS: &[&str] = &[
    "host",
    "port",
    "tls",
    "username",
    "password_env",
    "password_file",
];
const METRIC_KEYS: &[&str] = &["name", "help", "labels", "max_series"];
const THROTTLE_KEYS: &[&str] = &["key", "interval"];
/// The longest duration a config may give (a typo like `30000h` is a mistake, not a wish).
const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

struct Checker<'a> {
    file: &'a str,
    errors: Vec<ConfigError>,
    /// Environment variables the config reads secrets from.
    secret_vars: Vec<String>,
}

/// Compiles the text of a rules file named `file`.
pub fn compile(file: &str, text: &str) -> Result<Vec<Arc<Rule>>, ConfigErrors> {
    let mut c = Checker {
        file,
        errors: Vec::new(),
        secret_vars: Vec::new(),
    };
    let options = LoaderOptions::default()
        .error_on_duplicate_keys(true)
        .prevent_coercion(true);
    let root = match parse_yaml_with_options(0, text, options) {
        Ok(root) => root,
        Err(e) => {
            c.load_error(&e);
            return Err(ConfigErrors(c.errors));
        }
    };
    let rules = c.top(&root);
    if c.errors.is_empty() {
        Ok(rules)
    } else {
        Err(ConfigErrors(c.errors))
    }
}

impl Checker<'_> {
    fn err(&mut self, span: &Span, message: impl Into<String>) {
        let (line, column) = span.start().map_or((1, 1), |m| (m.line(), m.column()));
        self.errors.push(ConfigError {
            file: self.file.to_owned(),
            line,
            column,
            message: message.into(),
        });
    }

    fn load_error(&mut self, e: &LoadError) {
        let (marker, message) = match e {
            LoadError::ScanError(m, se) => (*m, format!("invalid YAML: {}", se.info())),
            LoadError::TopLevelMustBeMapping(m) => (
                *m,
                "the file must be a mapping with an events_reactor key; see the README's rules reference".to_owned(),
            ),
            LoadError::DuplicateKey(d) => (
                d.key.span().start().copied().unwrap_or(marker_at_start()),
                format!("duplicate key {:?}; each rule name and key may appear once", d.key.as_str()),
            ),
            LoadError::UnexpectedAnchor(m) | LoadError::MappingKeyMustBeScalar(m) | LoadError::UnexpectedTag(m) => {
                (*m, format!("unsupported YAML: {e}"))
            }
            other => (marker_at_start(), format!("invalid YAML: {other}")),
        };
        self.errors.push(ConfigError {
            file: self.file.to_owned(),
            line: marker.line(),
            column: marker.column(),
            message,
        });
    }

    /// Reports keys outside `allowed`, naming where they are and what is allowed.
    fn known_keys(&mut self, map: &MarkedMappingNode, allowed: &[&str], place: &str) {
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                self.err(
                    key.span(),
                    format!(
                        "unknown key {:?} in {place}; expected one of: {}",
                        key.as_str(),
                        allowed.join(", ")
                    ),
                );
            }
        }
    }

    fn mapping<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n MarkedMappingNode> {
        let m = node.as_mapping();
        if m.is_none() {
            self.err(node.span(), format!("{what} must be a mapping"));
        }
        m
    }

    fn scalar<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n MarkedScalarNode> {
        let s = node.as_scalar();
        if s.is_none() {
            self.err(node.span(), format!("{what} must be a single value"));
        }
        s
    }

    fn template(&mut self, node: &MarkedScalarNode) -> Option<Template> {
        match Template::parse(node.as_str()) {
            Ok(t) => Some(t),
            Err(e) => {
                self.err(node.span(), e);
                None
            }
        }
    }

    fn duration(&mut self, node: &Node, what: &str) -> Option<Duration> {
        let s = self.scalar(node, what)?;
        match humantime::parse_duration(s.as_str()) {
            Ok(d) if !d.is_zero() && d <= MAX_DURATION => Some(d),
            Ok(_) => {
                self.err(
                    s.span(),
                    format!(
                        "{what} must be between 1ns and 7 days; got {:?}",
                        s.as_str()
                    ),
                );
                None
            }
            Err(e) => {
                self.err(
                    s.span(),
                    format!("{what}: {e}; use a duration like 30s, 5m or 1h"),
                );
                None
            }
        }
    }

    fn top(&mut self, root: &Node) -> Vec<Arc<Rule>> {
        let Some(top) = self.mapping(root, "the file") else {
            return Vec::new();
        };
        self.known_keys(top, TOP_KEYS, "the file");
        let Some(reactor) = top.get_node("events_reactor") else {
            self.err(
                root.span(),
                "no events_reactor key; the rules go under events_reactor:",
            );
            return Vec::new();
        };
        let Some(reactor) = self.mapping(reactor, "events_reactor") else {
            return Vec::new();
        };
        let mut rules = Vec::new();
        let mut metric_names: Vec<String> = Vec::new();
        for (name, body) in reactor.iter() {
            if name.as_str().trim().is_empty() {
                self.err(name.span(), "a rule name must not be empty");
                continue;
            }
            rules.extend(self.rule(name, body, &mut metric_names));
        }
        // Secrets stay out of the commands the rules run, whichever rule reads them.
        for rule in &mut rules {
            for action in &mut rule.actions {
                if let Action::Run(run) = action {
                    run.scrub_env = self.secret_vars.clone();
                }
            }
        }
        rules.into_iter().map(Arc::new).collect()
    }

    fn rule(
        &mut self,
        name: &MarkedScalarNode,
        body: &Node,
        metric_names: &mut Vec<String>,
    ) -> Option<Rule> {
        let rule_name = name.as_str().to_owned();
        let place = format!("rule {rule_name:?}");
        let body = self.mapping(body, &place)?;
        let errors_before = self.errors.len();
        self.known_keys(body, RULE_KEYS, &place);

        let matcher = body
            .get_node("event")
            .and_then(|n| self.event(n, &place))
            .unwrap_or_default();
        let mut actions = Vec::new();
        if let Some(n) = body.get_node("run") {
            actions.extend(self.run(n, body, &place).map(Action::Run));
        } else {
            for opt in ["timeout", "env", "cwd"] {
                if let Some(key) = body.keys().find(|k| k.as_str() == opt) {
                    self.err(
                        key.span(),
                        format!("{opt} applies to run, and {place} has no run"),
                    );
                }
            }
        }
        if let Some(n) = body.get_node("webhook") {
            actions.extend(self.webhook(n, &place).map(Action::Webhook));
        }
        if let Some(n) = body.get_node("log") {
            actions.extend(self.log(n, &place).map(Action::Log));
        }
        if let Some(n) = body.get_node("email") {
            actions.extend(self.email(n, &place).map(Action::Email));
        }
        if let Some(n) = body.get_node("metric") {
            actions.extend(self.metric(n, &place, metric_names).map(Action::Metric));
        }
        if !["run", "webhook", "log", "email", "metric"]
            .iter()
            .any(|k| body.get_node(k).is_some())
        {
            self.err(
                name.span(),
                format!("{place} has no action; give it run, webhook, log, email or metric"),
            );
        }
        let throttle = body
            .get_node("throttle")
            .and_then(|n| self.throttle(n, &place));
        let batch = body
            .get_node("batch")
            .and_then(|n| self.duration(n, &format!("batch of {place}")));
        if self.errors.len() > errors_before {
            return None;
        }
        let uses_ip = actions.iter().any(action_uses_ip);
        Some(Rule {
            name: rule_name,
            matcher,
            actions,
            throttle,
            batch,
            uses_ip,
            series: Default::default(),
        })
    }

    fn patterns(&mut self, node: &Node, what: &str) -> Option<ValueMatcher> {
        let items: Vec<&MarkedScalarNode> = match node {
            Node::Scalar(s) => vec![s],
            Node::Sequence(seq) => {
                let mut v = Vec::new();
                for item in seq.iter() {
                    v.extend(self.scalar(item, &format!("each value of {what}")));
                }
                v
            }
            Node::Mapping(_) => {
                self.err(
                    node.span(),
                    format!("{what} must be a value or a list of values"),
                );
                return None;
            }
        };
        let mut ok = true;
        for item in &items {
            if let Err(e) = ValueMatcher::parse([item.as_str()]) {
                self.err(item.span(), format!("{what}: {e}"));
                ok = false;
            }
        }
        if !ok {
            return None;
        }
        ValueMatcher::parse(items.iter().map(|s| s.as_str())).ok()
    }

    fn event(&mut self, node: &Node, place: &str) -> Option<EventMatcher> {
        let map = self.mapping(node, &format!("event of {place}"))?;
        self.known_keys(map, EVENT_KEYS, &format!("event of {place}"));
        let mut m = EventMatcher::default();
        let field = |c: &mut Self, key: &str| {
            map.get_node(key)
                .and_then(|n| c.patterns(n, &format!("event.{key} of {place}")))
        };
        m.typ = field(self, "type");
        m.action = field(self, "action");
        m.scope = field(self, "scope");
        if let Some(actor) = map.get_node("actor") {
            let actor = self.mapping(actor, &format!("event.actor of {place}"))?;
            for (k, v) in actor.iter() {
                let what = format!("event.actor.{} of {place}", k.as_str());
                let Some(p) = self.patterns(v, &what) else {
                    continue;
                };
                match k.as_str() {
                    "id" | "ID" => m.actor_id = Some(p),
                    attr => m.attributes.push((attr.to_owned(), p)),
                }
            }
        }
        Some(m.indexed())
    }

    fn run(&mut self, node: &Node, body: &MarkedMappingNode, place: &str) -> Option<RunAction> {
        let Some(seq) = node.as_sequence() else {
            self.err(node.span(), format!("run of {place} must be a list: the program and its arguments, e.g. run: [\"notify\", \"%%actor.name%%\"]"));
            return None;
        };
        if seq.is_empty() {
            self.err(node.span(), format!("run of {place} is empty; give the program and its arguments, e.g. run: [\"notify\", \"%%actor.name%%\"]"));
            return None;
        }
        let mut argv = Vec::new();
        for (i, item) in seq.iter().enumerate() {
            let Some(s) = self.scalar(item, &format!("each element of run of {place}")) else {
                continue;
            };
            let Some(t) = self.template(s) else { continue };
            if i == 0 && (t.has_placeholders() || s.as_str().is_empty()) {
                self.err(s.span(), format!("the program of run of {place} must be a fixed name or path, without placeholders; pass event fields as arguments"));
                continue;
            }
            argv.push(t);
        }
        let timeout = match body.get_node("timeout") {
            Some(n) => self.duration(n, &format!("timeout of {place}"))?,
            None => DEFAULT_RUN_TIMEOUT,
        };
        let mut env = Vec::new();
        if let Some(n) = body.get_node("env") {
            let map = self.mapping(n, &format!("env of {place}"))?;
            for (k, v) in map.iter() {
                if k.as_str().is_empty() || k.as_str().contains(['=', '\0']) {
                    self.err(
                        k.span(),
                        format!("{:?} is not an environment variable name", k.as_str()),
                    );
                    continue;
                }
                let Some(s) = self.scalar(v, &format!("env.{} of {place}", k.as_str())) else {
                    continue;
                };
                if let Some(t) = self.template(s) {
                    env.push((k.as_str().to_owned(), t));
                }
            }
        }
        let cwd = match body.get_node("cwd") {
            Some(n) => {
                let s = self.scalar(n, &format!("cwd of {place}"))?;
                let p = PathBuf::from(s.as_str());
                if !p.is_dir() {
                    self.err(
                        s.span(),
                        format!("cwd of {place}: {:?} is not a directory", s.as_str()),
                    );
                    return None;
                }
                Some(p)
            }
            None => None,
        };
        Some(RunAction {
            argv,
            timeout,
            env,
            cwd,
            scrub_env: Vec::new(),
        })
    }

    fn webhook(&mut self, node: &Node, place: &str) -> Option<WebhookAction> {
        let place = format!("webhook of {place}");
        let map = self.mapping(node, &place)?;
        self.known_keys(map, WEBHOOK_KEYS, &place);
        let Some(url_node) = map.get_scalar("url") else {
            self.err(node.span(), format!("{place} needs a url"));
            return None;
        };
        let url = self.template(url_node)?;
        if !url.has_placeholders() && reqwest::Url::parse(url_node.as_str()).is_err() {
            self.err(
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
                    self.err(
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
            let h = self.mapping(n, &format!("headers of {place}"))?;
            for (k, v) in h.iter() {
                let Some(name) = self.header_name(k) else {
                    continue;
                };
                let Some(s) = self.scalar(v, &format!("header {} of {place}", k.as_str())) else {
                    continue;
                };
                headers.extend(self.template(s).map(|t| (name, t)));
            }
        }
        let mut secret_headers = Vec::new();
        if let Some(n) = map.get_node("headers_from_env") {
            let h = self.mapping(n, &format!("headers_from_env of {place}"))?;
            for (k, v) in h.iter() {
                let Some(name) = self.header_name(k) else {
                    continue;
                };
                let Some(var) =
                    self.scalar(v, &format!("headers_from_env.{} of {place}", k.as_str()))
                else {
                    continue;
                };
                self.secret_vars.push(var.as_str().to_owned());
                match std::env::var(var.as_str()) {
                    Ok(value) if http::HeaderValue::from_str(&value).is_ok() => {
                        secret_headers.push((name, Secret::new(value)))
                    }
                    Ok(_) => self.err(
                        var.span(),
                        format!(
                            "environment variable {} (header {}) holds characters a header cannot",
                            var.as_str(),
                            k.as_str()
                        ),
                    ),
                    Err(_) => self.err(
                        var.span(),
                        format!(
                            "environment variable {} (header {}) is not set",
                            var.as_str(),
                            k.as_str()
                        ),
                    ),
                }
            }
        }
        let body = map.get_scalar("body").and_then(|b| self.template(b));
        let timeout = match map.get_node("timeout") {
            Some(n) => self.duration(n, &format!("timeout of {place}"))?,
            None => DEFAULT_WEBHOOK_TIMEOUT,
        };
        let retries = match map.get_scalar("retries") {
            Some(r) => match r.as_str().parse::<u32>() {
                Ok(n) if n <= 10 => n,
                _ => {
                    self.err(
                        r.span(),
                        format!("retries of {place} must be a whole number from 0 to 10"),
                    );
                    return None;
                }
            },
            None => DEFAULT_WEBHOOK_RETRIES,
        };
        Some(WebhookAction {
            url,
            method,
            headers,
            secret_headers,
            body,
            timeout,
            retries,
        })
    }

    fn header_name(&mut self, k: &MarkedScalarNode) -> Option<http::HeaderName> {
        match http::HeaderName::from_bytes(k.as_str().as_bytes()) {
            Ok(h) => Some(h),
            Err(_) => {
                self.err(
                    k.span(),
                    format!("{:?} is not a valid HTTP header name", k.as_str()),
                );
                None
            }
        }
    }

    fn log(&mut self, node: &Node, place: &str) -> Option<LogAction> {
        let place = format!("log of {place}");
        let path = match node {
            Node::Scalar(s) => s.as_str().to_owned(),
            Node::Mapping(map) => {
                self.known_keys(map, LOG_KEYS, &place);
                map.get_scalar("path")
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_else(|| "-".to_owned())
            }
            Node::Sequence(_) => {
                self.err(
                    node.span(),
                    format!("{place} must be a path, \"-\" for standard output, or {{path: ...}}"),
                );
                return None;
            }
        };
        Some(LogAction {
            path: (path != "-" && !path.is_empty()).then(|| PathBuf::from(path)),
        })
    }

    fn email(&mut self, node: &Node, place: &str) -> Option<EmailAction> {
        let place = format!("email of {place}");
        let map = self.mapping(node, &place)?;
        self.known_keys(map, EMAIL_KEYS, &place);
        let Some(smtp_node) = map.get_node("smtp") else {
            self.err(
                node.span(),
                format!("{place} needs smtp: {{host: ..., port: ..., tls: starttls}}"),
            );
            return None;
        };
        let smtp = self.mapping(smtp_node, &format!("smtp of {place}"))?;
        self.known_keys(smtp, SMTP_KEYS, &format!("smtp of {place}"));
        let Some(host) = smtp.get_scalar("host") else {
            self.err(smtp_node.span(), format!("smtp of {place} needs a host"));
            return None;
        };
        let tls = match smtp.get_scalar("tls").map(|t| (t, t.as_str())) {
            None | Some((_, "starttls")) => SmtpTls::StartTls,
            Some((_, "tls")) => SmtpTls::Tls,
            Some((_, "none")) => SmtpTls::None,
            Some((t, other)) => {
                self.err(
                    t.span(),
                    format!("tls of {place} must be starttls, tls or none; got {other:?}"),
                );
                return None;
            }
        };
        let port = match smtp.get_scalar("port") {
            Some(p) => match p.as_str().parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => {
                    self.err(p.span(), format!("port of {place} must be a port number"));
                    return None;
                }
            },
            None => match tls {
                SmtpTls::Tls => 465,
                SmtpTls::StartTls => 587,
                SmtpTls::None => 25,
            },
        };
        let username = smtp.get_scalar("username").map(|u| u.as_str().to_owned());
        let password = match (
            smtp.get_scalar("password_env"),
            smtp.get_scalar("password_file"),
        ) {
            (Some(_), Some(f)) => {
                self.err(
                    f.span(),
                    format!("{place}: give password_env or password_file, not both"),
                );
                return None;
            }
            (Some(var), None) => {
                self.secret_vars.push(var.as_str().to_owned());
                match std::env::var(var.as_str()) {
                    Ok(v) => Some(Secret::new(v)),
                    Err(_) => {
                        self.err(
                            var.span(),
                            format!(
                                "environment variable {} (SMTP password) is not set",
                                var.as_str()
                            ),
                        );
                        return None;
                    }
                }
            }
            (None, Some(file)) => match std::fs::read_to_string(file.as_str()) {
                Ok(v) => Some(Secret::new(v.trim_end_matches(['\n', '\r']).to_owned())),
                Err(e) => {
                    self.err(
                        file.span(),
                        format!("cannot read password_file {}: {e}", file.as_str()),
                    );
                    return None;
                }
            },
            (None, None) => None,
        };
        if password.is_some() && username.is_none() {
            self.err(
                smtp_node.span(),
                format!("smtp of {place} has a password but no username"),
            );
        }
        let from = self.address(map.get_scalar("from"), node, &format!("from of {place}"))?;
        let to = match map.get_node("to") {
            Some(Node::Scalar(s)) => {
                vec![self.address(Some(s), node, &format!("to of {place}"))?]
            }
            Some(Node::Sequence(seq)) if !seq.is_empty() => {
                let mut v = Vec::new();
                for item in seq.iter() {
                    let s = item.as_scalar();
                    v.extend(self.address(s, item, &format!("to of {place}")));
                }
                v
            }
            _ => {
                self.err(
                    node.span(),
                    format!("{place} needs to: an address or a list of addresses"),
                );
                return None;
            }
        };
        let subject = match map.get_scalar("subject") {
            Some(s) => self.template(s)?,
            None => Template::parse(
                "[%%host%%] %%rule%%: %%count%% event(s), first %%action%% %%actor.name%%",
            )
            .expect("the default subject parses"),
        };
        let body = map.get_scalar("body").and_then(|b| self.template(b));
        let timeout = match map.get_node("timeout") {
            Some(n) => self.duration(n, &format!("timeout of {place}"))?,
            None => DEFAULT_EMAIL_TIMEOUT,
        };
        Some(EmailAction {
            host: host.as_str().to_owned(),
            port,
            tls,
            username,
            password,
            from,
            to,
            subject,
            body,
            timeout,
        })
    }

    fn address(
        &mut self,
        s: Option<&MarkedScalarNode>,
        parent: &Node,
        what: &str,
    ) -> Option<String> {
        let Some(s) = s else {
            self.err(
                parent.span(),
                format!("{what} is missing; give an e-mail address"),
            );
            return None;
        };
        if s.as_str().parse::<lettre::message::Mailbox>().is_err() {
            self.err(
                s.span(),
                format!("{what}: {:?} is not an e-mail address", s.as_str()),
            );
            return None;
        }
        Some(s.as_str().to_owned())
    }

    fn metric(
        &mut self,
        node: &Node,
        place: &str,
        names: &mut Vec<String>,
    ) -> Option<MetricAction> {
        let place = format!("metric of {place}");
        let map = self.mapping(node, &place)?;
        self.known_keys(map, METRIC_KEYS, &place);
        let Some(name) = map.get_scalar("name") else {
            self.err(
                node.span(),
                format!("{place} needs a name, e.g. name: container_crashes_total"),
            );
            return None;
        };
        let valid = {
            let mut chars = name.as_str().chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        };
        if !valid {
            self.err(
                name.span(),
                format!(
                    "{:?} is not a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)",
                    name.as_str()
                ),
            );
            return None;
        }
        if name.as_str().starts_with("docker_") || name.as_str().starts_with("process_") {
            self.err(name.span(), format!("metric name {:?}: names starting with docker_ or process_ are the exporter's own; choose another prefix", name.as_str()));
            return None;
        }
        if names.iter().any(|n| n == name.as_str()) {
            self.err(
                name.span(),
                format!("metric name {:?} is used by another rule", name.as_str()),
            );
            return None;
        }
        names.push(name.as_str().to_owned());
        let help = map.get_scalar("help").map_or_else(
            || format!("Counted by rule {place}."),
            |h| h.as_str().to_owned(),
        );
        let mut labels = Vec::new();
        if let Some(n) = map.get_node("labels") {
            let l = self.mapping(n, &format!("labels of {place}"))?;
            for (k, v) in l.iter() {
                let ok = {
                    let mut c = k.as_str().chars();
                    c.next()
                        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
                        && !k.as_str().starts_with("__")
                };
                if !ok {
                    self.err(
                        k.span(),
                        format!("{:?} is not a Prometheus label name", k.as_str()),
                    );
                    continue;
                }
                let Some(s) = self.scalar(v, &format!("label {} of {place}", k.as_str())) else {
                    continue;
                };
                labels.extend(self.template(s).map(|t| (k.as_str().to_owned(), t)));
            }
        }
        let max_series = match map.get_scalar("max_series") {
            Some(m) => match m.as_str().parse::<usize>() {
                Ok(n) if (1..=100_000).contains(&n) => n,
                _ => {
                    self.err(
                        m.span(),
                        format!("max_series of {place} must be a whole number from 1 to 100000"),
                    );
                    return None;
                }
            },
            None => DEFAULT_METRIC_MAX_SERIES,
        };
        let names: Vec<&str> = labels.iter().map(|(k, _)| k.as_str()).collect();
        let counter = match IntCounterVec::new(Opts::new(name.as_str(), help), &names) {
            Ok(c) => c,
            Err(e) => {
                self.err(name.span(), format!("{place}: {e}"));
                return None;
            }
        };
        Some(MetricAction {
            name: name.as_str().to_owned(),
            labels,
            max_series,
            counter,
            seen: Default::default(),
        })
    }

    fn throttle(&mut self, node: &Node, place: &str) -> Option<Throttle> {
        let place = format!("throttle of {place}");
        match node {
            // `throttle: 5m`: at most one firing per interval for the whole rule.
            Node::Scalar(_) => Some(Throttle {
                key: Template::literal(""),
                interval: self.duration(node, &place)?,
            }),
            _ => {
                let map = self.mapping(node, &place)?;
                self.known_keys(map, THROTTLE_KEYS, &place);
                let key = match map.get_scalar("key") {
                    Some(k) => {
                        let t = self.template(k)?;
                        if t.uses(&Key::Ip) || t.uses(&Key::Payload) {
                            self.err(k.span(), format!("key of {place} cannot use %%ip%% or %%payload%%; use %%actor.name%% or %%actor.id%%"));
                            return None;
                        }
                        t
                    }
                    None => Template::literal(""),
                };
                let Some(interval) = map.get_node("interval") else {
                    self.err(
                        node.span(),
                        format!("{place} needs an interval, e.g. interval: 5m"),
                    );
                    return None;
                };
                Some(Throttle {
                    key,
                    interval: self.duration(interval, &format!("interval of {place}"))?,
                })
            }
        }
    }
}

fn marker_at_start() -> marked_yaml::Marker {
    marked_yaml::Marker::new(0, 0, 1, 1)
}

fn action_uses_ip(a: &Action) -> bool {
    let ip = |t: &Template| t.uses(&Key::Ip);
    match a {
        Action::Run(r) => r.argv.iter().any(ip) || r.env.iter().any(|(_, t)| ip(t)),
        Action::Webhook(w) => {
            ip(&w.url) || w.body.as_ref().is_some_and(ip) || w.headers.iter().any(|(_, t)| ip(t))
        }
        Action::Email(e) => ip(&e.subject) || e.body.as_ref().is_some_and(ip),
        Action::Metric(m) => m.labels.iter().any(|(_, t)| ip(t)),
        Action::Log(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(yaml: &str) -> Vec<String> {
        compile("rules.yml", yaml)
            .expect_err("invalid")
            .0
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn the_issue_example_compiles_verbatim() {
        let yaml = r#"
events_reactor:
  Fire notification on container lifecycle event:
    event:
      type: container
    run: ["notification-push", "--project", "Nasqueron", "--service", "Docker",
          "--type", "container.%%action%%", "--group", "ops",
          "--text", "Docker container %%actor.name%%: %%action%%", "--link", "%%host%%"]
  Propagate all events to Salt:
    run: ["sudo", "salt-call", "event.send", "docker", "%%payload%%"]
  Update Sentry Relay configuration:
    event:
      type: container
      action: start
      actor:
        name: sentry_web
    run: ["docker-paas-propagate-sentry-relay", "%%ip%%"]
"#;
        let rules = compile("rules.yml", yaml).expect("compiles");
        assert_eq!(rules.len(), 3);
        assert_eq!(
            rules[0].name,
            "Fire notification on container lifecycle event"
        );
        assert!(!rules[1].uses_ip);
        assert!(rules[2].uses_ip);
        let Action::Run(run) = &rules[0].actions[0] else {
            panic!("run")
        };
        assert_eq!(run.argv.len(), 13);
        assert_eq!(run.timeout, DEFAULT_RUN_TIMEOUT);
    }

    #[test]
    fn every_problem_is_reported_with_its_place() {
        let yaml = "\
events_reactor:
  one:
    event:
      typ: container
      actor:
        name: /(unclosed/
    run: [\"notify\", \"%%actor%%\"]
    timout: 5s
  two:
    run: []
  three:
    event: {type: container}
";
        assert_eq!(
            errors(yaml),
            [
                "rules.yml:8:5: unknown key \"timout\" in rule \"one\"; expected one of: event, run, timeout, env, cwd, webhook, log, email, metric, throttle, batch",
                "rules.yml:4:7: unknown key \"typ\" in event of rule \"one\"; expected one of: type, action, scope, actor",
                "rules.yml:6:15: event.actor.name of rule \"one\": invalid regex /(unclosed/: error: unclosed group",
                "rules.yml:7:21: unknown placeholder %%actor%%; known: type, action, scope, time, timeNano, actor.id, actor.<attribute>, payload, host, ip, rule, count",
                "rules.yml:10:10: run of rule \"two\" is empty; give the program and its arguments, e.g. run: [\"notify\", \"%%actor.name%%\"]",
                "rules.yml:11:3: rule \"three\" has no action; give it run, webhook, log, email or metric",
            ]
        );
    }

    #[test]
    fn the_program_cannot_come_from_the_event() {
        assert_eq!(
            errors("events_reactor:\n  r:\n    run: [\"%%actor.name%%\", \"x\"]\n"),
            [
                "rules.yml:3:11: the program of run of rule \"r\" must be a fixed name or path, without placeholders; pass event fields as arguments"
            ]
        );
    }

    #[test]
    fn yaml_syntax_errors_have_a_place() {
        let e = errors("events_reactor:\n  r: [unclosed\n");
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("rules.yml:3:1: invalid YAML: "), "{e:?}");
    }

    #[test]
    fn duplicate_rule_names_are_refused() {
        let e = errors("events_reactor:\n  r:\n    log: \"-\"\n  r:\n    log: \"-\"\n");
        assert_eq!(
            e,
            ["rules.yml:4:3: duplicate key \"r\"; each rule name and key may appear once"]
        );
    }
}
