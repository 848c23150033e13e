//! `email`: SMTP (STARTTLS, TLS or plain), with credentials from a file or the environment,
//! never from the YAML. A batch becomes one digest message.

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{ActionResult, MAX_BODY_BYTES, MAX_FIELD_BYTES, Outcome};
use crate::rules::template::Context;
use crate::rules::{EmailAction, SmtpTls};

pub async fn execute(a: &EmailAction, ctx: &Context<'_>, dry: super::Dry) -> ActionResult {
    let subject = a
        .subject
        .render(ctx, MAX_FIELD_BYTES)
        .replace(['\r', '\n'], " ");
    let body = match &a.body {
        Some(t) => t.render(ctx, MAX_BODY_BYTES),
        None => digest(ctx),
    };
    if dry.on() {
        if dry.logs() {
            tracing::info!(rule = ctx.rule, host = %a.host, port = a.port, to = ?a.to, subject, body, "dry run: would e-mail");
        }
        return Ok(());
    }
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
        let when = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ev.time_nano))
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
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
