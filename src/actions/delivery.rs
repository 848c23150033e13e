//! One HTTP delivery, retried: what `webhook`, `notify` and `alertmanager` send through. A 5xx,
//! a network error or a 429 is tried again, after the wait the answer's `Retry-After` asks for
//! (capped) or else after an exponential backoff; any other answer is final. Messages name the
//! target as the caller gives it (its host, or its URL with the secrets masked), never the URL
//! the request went to.

use std::time::{Duration, SystemTime};

use backon::{BackoffBuilder, ExponentialBuilder};
use marked_yaml::Node;
use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode};

use super::Outcome;
use crate::rules::config::{Named, Place};
use crate::rules::{Checker, Resolver};
use crate::secret::Secret;

/// First wait before a retry; it doubles.
const FIRST_RETRY: Duration = Duration::from_millis(200);
/// Longest wait between retries, whatever a `Retry-After` asks: a service that wants more is
/// told again later rather than holding a worker.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);
/// The most retries a config may ask for.
const MAX_RETRIES: u32 = 10;
/// How much of an answer is kept (a Matrix join's room ID; the start of an error's body).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// How one delivery is tried.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Time one attempt may take, its answer's body included.
    pub timeout: Duration,
    /// Attempts after the first.
    pub retries: u32,
}

/// The default of every HTTP action: 10 s an attempt, 3 retries.
pub const DEFAULT_RETRY: Retry = Retry {
    timeout: Duration::from_secs(10),
    retries: 3,
};

impl Retry {
    /// `timeout` and `retries` of `map` (named `place`), each with its default.
    pub fn compile(
        c: &mut Checker<'_>,
        map: &MarkedMappingNode,
        place: &str,
        default: Self,
    ) -> Option<Self> {
        let timeout = match map.get_node("timeout") {
            Some(n) => c.duration(n, &format!("timeout of {place}"))?,
            None => default.timeout,
        };
        let retries = match map.get_scalar("retries") {
            Some(r) => match r.as_str().parse::<u32>() {
                Ok(n) if n <= MAX_RETRIES => n,
                _ => {
                    c.err(
                        r.span(),
                        format!(
                            "retries of {place} must be a whole number from 0 to {MAX_RETRIES}"
                        ),
                    );
                    return None;
                }
            },
            None => default.retries,
        };
        Some(Self { timeout, retries })
    }
}

/// Sends the request `build` makes (once per attempt) and returns the body of the first
/// success; `target` names where it goes in messages.
pub async fn deliver(
    target: &str,
    retry: Retry,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Result<bytes::Bytes, (Outcome, String)> {
    let mut backoff = ExponentialBuilder::default()
        .with_min_delay(FIRST_RETRY)
        .with_max_delay(MAX_RETRY_WAIT)
        .with_jitter()
        .without_max_times()
        .build();
    let mut last = (Outcome::Failure, String::new());
    for attempt in 0..=retry.retries {
        let wait = match attempt_once(target, retry.timeout, build()).await {
            Ok(body) => return Ok(body),
            Err(Attempt::Final(why)) => return Err((Outcome::Failure, why)),
            Err(Attempt::Again {
                outcome,
                why,
                after,
            }) => {
                last = (outcome, why);
                after.unwrap_or_else(|| backoff.next().unwrap_or(MAX_RETRY_WAIT))
            }
        };
        tracing::debug!(to = target, attempt, error = %last.1, "delivery attempt failed");
        if attempt < retry.retries {
            tokio::time::sleep(wait.min(MAX_RETRY_WAIT)).await;
        }
    }
    Err((
        last.0,
        format!("{} after {} attempt(s)", last.1, retry.retries + 1),
    ))
}

/// Why an attempt failed.
enum Attempt {
    /// Not worth another try (a 4xx other than 429).
    Final(String),
    /// Worth another, after `after` if the answer said.
    Again {
        outcome: Outcome,
        why: String,
        after: Option<Duration>,
    },
}

async fn attempt_once(
    target: &str,
    timeout: Duration,
    req: reqwest::RequestBuilder,
) -> Result<bytes::Bytes, Attempt> {
    let network = |e: reqwest::Error| Attempt::Again {
        outcome: if e.is_timeout() {
            Outcome::Timeout
        } else {
            Outcome::Failure
        },
        why: format!("{target}: {}", e.without_url()),
        after: None,
    };
    let mut resp = req.timeout(timeout).send().await.map_err(network)?;
    let status = resp.status();
    let after = resp
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| retry_after(v, SystemTime::now()));
    // Read up to the cap only: an answer's size is the service's to choose, not our memory.
    let mut body = bytes::BytesMut::new();
    while body.len() < MAX_ANSWER_BYTES {
        match resp.chunk().await.map_err(network)? {
            Some(chunk) => body.extend_from_slice(&chunk),
            None => break,
        }
    }
    body.truncate(MAX_ANSWER_BYTES);
    let body = body.freeze();
    if status.is_success() {
        return Ok(body);
    }
    let why = format!("{target} answered {status}");
    if status == http::StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        return Err(Attempt::Again {
            outcome: Outcome::Failure,
            why,
            after,
        });
    }
    // A refusal's body usually says why (a bad token, a missing field): its start is kept.
    let said = String::from_utf8_lossy(&body[..body.len().min(200)]).replace(['\r', '\n'], " ");
    Err(Attempt::Final(if said.trim().is_empty() {
        format!("{why}; not retried")
    } else {
        format!("{why} ({}); not retried", said.trim())
    }))
}

/// A `Retry-After` value (seconds, or an HTTP date) as a wait from `now`.
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(MAX_RETRY_WAIT.as_secs_f64())));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// `s` with its percent-escapes decoded (a URL's user, password, path segment).
pub fn decoded(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Takes the user and password out of `url`, decoded; `None` if it has no password. Clearing
/// them cannot fail for an http(s) URL with a host, the only kind this is given.
pub fn take_credentials(url: &mut reqwest::Url) -> Option<(String, Secret)> {
    let credentials = url
        .password()
        .map(|p| (decoded(url.username()), Secret::new(decoded(p))));
    let _ = url.set_username("");
    let _ = url.set_password(None);
    credentials
}

/// Where a URL that may hold a secret comes from: `url` in the file, or `url_from_env` /
/// `url_file`, which keep it out of the file.
#[derive(Debug)]
pub enum UrlFrom {
    Given,
    Env(Named),
    File(Named),
}

/// The keys [`UrlFrom::compile`] reads.
pub const URL_KEYS: [&str; 3] = ["url", "url_from_env", "url_file"];

impl UrlFrom {
    /// Reads exactly one of `url`, `url_from_env` and `url_file` of `map` (the mapping at
    /// `node`, named `place`); with `url`, also its node.
    pub fn compile<'n>(
        c: &mut Checker<'_>,
        map: &'n MarkedMappingNode,
        node: &Node,
        place: &str,
    ) -> Option<(Self, Option<&'n MarkedScalarNode>)> {
        let given: Vec<(&str, &MarkedScalarNode)> = URL_KEYS
            .iter()
            .filter_map(|k| map.get_node(k).map(|n| (*k, n)))
            .filter_map(|(k, n)| c.scalar(n, &format!("{k} of {place}")).map(|s| (k, s)))
            .collect();
        match given[..] {
            [("url", s)] => Some((Self::Given, Some(s))),
            [("url_from_env", s)] => Some((Self::Env(Named::new(s)), None)),
            [(_, s)] => Some((Self::File(Named::new(s)), None)),
            [] => {
                c.err(
                    node.span(),
                    format!("{place} needs url, url_from_env (an environment variable that holds it) or url_file (a file that holds it)"),
                );
                None
            }
            [_, (k, s), ..] => {
                c.err(
                    s.span(),
                    format!(
                        "{place} has {k} and another of url, url_from_env and url_file; give one"
                    ),
                );
                None
            }
        }
    }

    /// The URL from the environment or its file, and the place that named it; `None` for a
    /// URL given in the file (or one that cannot be read, a problem in `r`).
    pub fn read(&self, r: &mut Resolver<'_>, purpose: &str) -> Option<(Secret, Place)> {
        match self {
            Self::Given => None,
            Self::Env(var) => r.env_secret(var, purpose, |_| Ok(())).map(|s| (s, var.at)),
            Self::File(path) => r.file_secret(path, "url_file").map(|s| (s, path.at)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(retry_after("1", now), Some(Duration::from_secs(1)));
        assert_eq!(retry_after(" 2.5 ", now), Some(Duration::from_millis(2500)));
        assert_eq!(retry_after("86400", now), Some(MAX_RETRY_WAIT), "capped");
        // Wed, 21 Oct 2015 07:28:00 GMT is 1445412480.
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO),
            "a date past"
        );
        assert_eq!(retry_after("-1", now), None);
        assert_eq!(retry_after("soon", now), None);
    }
}
