//! `webhook`: an HTTP request with the event (or a templated body), retried with backoff on 5xx
//! and network errors. Logs name the host only: webhook URLs often carry their secret.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use super::{ActionResult, MAX_BODY_BYTES, MAX_FIELD_BYTES, Outcome};
use crate::rules::WebhookAction;
use crate::rules::template::{Context, payload};

/// First wait before a retry; it doubles.
const FIRST_RETRY: Duration = Duration::from_millis(200);
/// Longest wait between retries.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);

pub async fn execute(
    a: &WebhookAction,
    ctx: &Context<'_>,
    client: &reqwest::Client,
    dry: super::Dry,
) -> ActionResult {
    let url = a.url.render(ctx, MAX_FIELD_BYTES);
    let body = match &a.body {
        Some(t) => t.render(ctx, MAX_BODY_BYTES),
        None => payload(ctx.events),
    };
    let headers: Vec<(http::HeaderName, String)> = a
        .headers
        .iter()
        .map(|(k, t)| (k.clone(), t.render(ctx, MAX_FIELD_BYTES)))
        .collect();
    if dry.on() {
        if dry.logs() {
            tracing::info!(
                rule = ctx.rule,
                method = %a.method,
                url,
                headers = ?headers,
                secret_headers = ?a.secret_headers.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
                body,
                "dry run: would send"
            );
        }
        return Ok(());
    }
    let url = reqwest::Url::parse(&url).map_err(|e| {
        (
            Outcome::Failure,
            format!("the rendered url is not valid: {e}"),
        )
    })?;
    let host = url.host_str().unwrap_or_default().to_owned();
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(FIRST_RETRY)
        .with_max_delay(MAX_RETRY_WAIT)
        .with_jitter()
        .without_max_times()
        .build();
    let mut last = (Outcome::Failure, String::new());
    for attempt in 0..=a.retries {
        if attempt > 0 {
            tokio::time::sleep(delays.next().unwrap_or(MAX_RETRY_WAIT)).await;
        }
        let mut req = client
            .request(a.method.clone(), url.clone())
            .timeout(a.timeout)
            .header(http::header::CONTENT_TYPE, "application/json");
        for (k, v) in &headers {
            req = req.header(k, v);
        }
        for (k, v) in &a.secret_headers {
            req = req.header(k, v.expose());
        }
        match req.body(body.clone()).send().await {
            Ok(resp) if resp.status().is_success() => return Ok(()),
            Ok(resp) if resp.status().is_server_error() => {
                last = (
                    Outcome::Failure,
                    format!("{host} answered {}", resp.status()),
                );
            }
            Ok(resp) => {
                return Err((
                    Outcome::Failure,
                    format!("{host} answered {}; not retried", resp.status()),
                ));
            }
            Err(e) => {
                let outcome = if e.is_timeout() {
                    Outcome::Timeout
                } else {
                    Outcome::Failure
                };
                last = (outcome, format!("{host}: {}", e.without_url()));
            }
        }
        tracing::debug!(rule = ctx.rule, attempt, error = %last.1, "webhook attempt failed");
    }
    Err((
        last.0,
        format!("{} after {} attempt(s)", last.1, a.retries + 1),
    ))
}
