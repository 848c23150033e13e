//! `email`: SMTP (STARTTLS, TLS or plain), with credentials from a file or the environment,
//! never from the YAML. A batch becomes one digest message.

use std::time::Duration;

use futures_util::future::BoxFuture;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use marked_yaml::Node;
use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode};

use super::{Action, ActionResult, BoxedAction, MAX_BODY_BYTES, MAX_FIELD_BYTES, Outcome, Runtime};
use crate::rules::config::Named;
use crate::rules::template::{Context, Template};
use crate::rules::{ActionConfig, ActionKind, Checker, Resolver};
use crate::secret::Secret;

/// The rule key that asks for this action, and its `action` label.
const NAME: &str = "email";

/// Default time one e-mail may take to send.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const KEYS: &[&str] = &["smtp", "from", "to", "subject", "body", "timeout"];
const SMTP_KEYS: &[&str] = &[
    "host",
    "port",
    "tls",
    "username",
    "password_env",
    "password_file",
];
const DEFAULT_SUBJECT: &str =
    "[%%host%%] %%rule%%: %%count%% event(s), first %%action%% %%actor.name%%";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    None,
    StartTls,
    Tls,
}

/// Where the SMTP password comes from; read by the resolve step, never from the YAML.
#[derive(Debug)]
pub enum PasswordFrom {
    Env(Named),
    File(Named),
}

#[derive(Debug)]
pub struct EmailAction {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password_from: Option<PasswordFrom>,
    /// Filled in by the resolve step.
    pub password: Option<Secret>,
    pub from: String,
    pub to: Vec<String>,
    pub subject: Template,
    /// None: a digest listing each event.
    pub body: Option<Template>,
    pub timeout: Duration,
}

/// `email: {smtp: {...}, from: ..., to: ..., ...}`.
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
        let place = format!("email of {place}");
        let map = c.keyed_mapping(node, KEYS, &place)?;
        let Some(smtp_node) = map.get_node("smtp") else {
            c.err(
                node.span(),
                format!("{place} needs smtp: {{host: ..., port: ..., tls: starttls}}"),
            );
            return None;
        };
        let smtp = c.keyed_mapping(smtp_node, SMTP_KEYS, &format!("smtp of {place}"))?;
        let Some(host) = smtp.get_scalar("host") else {
            c.err(smtp_node.span(), format!("smtp of {place} needs a host"));
            return None;
        };
        let tls = match smtp.get_scalar("tls").map(|t| (t, t.as_str())) {
            None | Some((_, "starttls")) => SmtpTls::StartTls,
            Some((_, "tls")) => SmtpTls::Tls,
            Some((_, "none")) => SmtpTls::None,
            Some((t, other)) => {
                c.err(
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
                    c.err(p.span(), format!("port of {place} must be a port number"));
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
        let password_from = match (
            smtp.get_scalar("password_env"),
            smtp.get_scalar("password_file"),
        ) {
            (Some(_), Some(f)) => {
                c.err(
                    f.span(),
                    format!("{place}: give password_env or password_file, not both"),
                );
                return None;
            }
            (Some(var), None) => Some(PasswordFrom::Env(Named::new(var))),
            (None, Some(file)) => Some(PasswordFrom::File(Named::new(file))),
            (None, None) => None,
        };
        if password_from.is_some() && username.is_none() {
            c.err(
                smtp_node.span(),
                format!("smtp of {place} has a password but no username"),
            );
        }
        let from = address(c, map.get_scalar("from"), node, &format!("from of {place}"))?;
        let to = match map.get_node("to") {
            Some(Node::Scalar(s)) => {
                vec![address(c, Some(s), node, &format!("to of {place}"))?]
            }
            Some(Node::Sequence(seq)) if !seq.is_empty() => {
                let mut v = Vec::new();
                for item in seq.iter() {
                    let s = item.as_scalar();
                    v.extend(address(c, s, item, &format!("to of {place}")));
                }
                v
            }
            _ => {
                c.err(
                    node.span(),
                    format!("{place} needs to: an address or a list of addresses"),
                );
                return None;
            }
        };
        let subject = match map.get_scalar("subject") {
            Some(s) => c.template(s)?,
            // A fixed template of known placeholders.
            None => Template::parse(DEFAULT_SUBJECT).expect("the default subject parses"),
        };
        let body = map.get_scalar("body").and_then(|b| c.template(b));
        let timeout = match map.get_node("timeout") {
            Some(n) => c.duration(n, &format!("timeout of {place}"))?,
            None => DEFAULT_TIMEOUT,
        };
        Some(Box::new(EmailAction {
            host: host.as_str().to_owned(),
            port,
            tls,
            username,
            password_from,
            password: None,
            from,
            to,
            subject,
            body,
            timeout,
        }))
    }
}

fn address(
    c: &mut Checker<'_>,
    s: Option<&MarkedScalarNode>,
    parent: &Node,
    what: &str,
) -> Option<String> {
    let Some(s) = s else {
        c.err(
            parent.span(),
            format!("{what} is missing; give an e-mail address"),
        );
        return None;
    };
    if s.as_str().parse::<lettre::message::Mailbox>().is_err() {
        c.err(
            s.span(),
            format!("{what}: {:?} is not an e-mail address", s.as_str()),
        );
        return None;
    }
    Some(s.as_str().to_owned())
}

impl ActionConfig for EmailAction {
    fn templates(&self) -> Vec<&Template> {
        std::iter::once(&self.subject)
            .chain(self.body.as_ref())
            .collect()
    }

    fn resolve(&mut self, r: &mut Resolver<'_>) {
        self.password = match &self.password_from {
            Some(PasswordFrom::Env(var)) => r.env_secret(var, "SMTP password", |_| Ok(())),
            Some(PasswordFrom::File(path)) => r.file_secret(path, "password_file"),
            None => None,
        };
    }
}

impl EmailAction {
    fn render(&self, ctx: &Context<'_>) -> (String, String) {
        let subject = self
            .subject
            .render(ctx, MAX_FIELD_BYTES)
            .replace(['\r', '\n'], " ");
        let body = match &self.body {
            Some(t) => t.render(ctx, MAX_BODY_BYTES),
            None => digest(ctx),
        };
        (subject, body)
    }
}

impl Action for EmailAction {
    fn kind(&self) -> &'static str {
        NAME
    }

    fn dry_run(&self, ctx: &Context<'_>, log: bool) {
        let (subject, body) = self.render(ctx);
        if log {
            tracing::info!(rule = ctx.rule, host = %self.host, port = self.port, to = ?self.to, subject, body, "dry run: would e-mail");
        }
    }

    fn run<'a>(&'a self, ctx: &'a Context<'a>, _rt: Runtime<'a>) -> BoxFuture<'a, ActionResult> {
        Box::pin(execute(self, ctx))
    }
}

async fn execute(a: &EmailAction, ctx: &Context<'_>) -> ActionResult {
    let (subject, body) = a.render(ctx);
    let fail = |what: &str, e: &dyn std::fmt::Display| (Outcome::Failure, format!("{what}: {e}"));
    let mut message = Message::builder()
        .from(a.from.parse().map_err(|e| fail("from address", &e))?)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN);
    for to in &a.to {
        message = message.to(to.parse().map_err(|e| fail("to address", &e))?);
    }
    let message = message
        .body(body)
        .map_err(|e| fail("building the message", &e))?;
    let builder = match a.tls {
        SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&a.host),
        SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&a.host)
            .map_err(|e| fail("SMTP set-up", &e))?,
        SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&a.host)
            .map_err(|e| fail("SMTP set-up", &e))?,
    };
    let mut builder = builder.port(a.port).timeout(Some(a.timeout));
    if let (Some(user), Some(password)) = (&a.username, &a.password) {
        builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
    }
    match builder.build().send(message).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_timeout() => {
            Err((Outcome::Timeout, format!("SMTP {}:{}: {e}", a.host, a.port)))
        }
        Err(e) => Err((Outcome::Failure, format!("SMTP {}:{}: {e}", a.host, a.port))),
    }
}

/// The default body: one line per event.
fn digest(ctx: &Context<'_>) -> String {
    let mut out = format!(
        "{} event(s) matched rule \"{}\" on {}:\n\n",
        ctx.events.len(),
        ctx.rule,
        ctx.host
    );
    for ev in ctx.events {
        let when = crate::docker::format_rfc3339_nano(ev.time_nano)
            .unwrap_or_else(|| ev.time_nano.to_string());
        let who = ev.attr("name").unwrap_or(ev.actor_id());
        let mut line = format!("{when}  {} {}  {who}", ev.type_name(), ev.action());
        if let Some(code) = ev.attr("exitCode") {
            line.push_str(&format!("  exit code {code}"));
        }
        if let Some(image) = ev.attr("image") {
            line.push_str(&format!("  image {image}"));
        }
        out.push_str(&line);
        out.push('\n');
        if out.len() > MAX_BODY_BYTES {
            break;
        }
    }
    out
}
