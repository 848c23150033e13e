//! The history's API, answered as the engine's `/events` is: `/api/v1/events` (a window),
//! `/api/v1/events/live` (server-sent events from now on) and `/api/v1/status` (the page's
//! data as JSON).

use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::AppState;
use super::status::Status;
use crate::docker::now_nano;
use crate::history::Query;

/// An error of the API, as the engine's API gives one: `{"message": "..."}`.
pub(super) fn api_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "message": message })),
    )
        .into_response()
}

/// Runs `work` on the blocking pool (a page of 10,000 containers, a read of the segments on
/// disk); a panic there is a 500, not a lost connection.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Response> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| api_error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}")))
}

pub(super) async fn status_json(State(state): State<AppState>) -> Response {
    match blocking(move || Status::now(&state.metrics, &state.mutes, now_nano())).await {
        Ok(status) => ([(header::CACHE_CONTROL, "no-store")], axum::Json(status)).into_response(),
        Err(e) => e,
    }
}

type Params = axum::extract::Query<std::collections::HashMap<String, String>>;

/// `since`, `until` and `filters` of a request, as the engine's `/events` takes them.
fn query_of(
    params: &std::collections::HashMap<String, String>,
) -> Result<Query, crate::history::FilterError> {
    let now = now_nano();
    let time = |what: &'static str| {
        params
            .get(what)
            .filter(|v| !v.is_empty())
            .map(|v| crate::history::filter::parse_time(what, v, now))
            .transpose()
    };
    Ok(Query {
        since_nano: time("since")?,
        until_nano: time("until")?,
        filters: match params.get("filters").filter(|v| !v.is_empty()) {
            Some(f) => crate::history::Filters::from_json(f)?,
            None => crate::history::Filters::default(),
        },
    })
}

/// The history's events in the window, one engine line a line (`docker events --format
/// '{{json .}}'`), oldest first.
pub(super) async fn events(State(state): State<AppState>, params: Params) -> Response {
    let q = match query_of(&params) {
        Ok(q) => q,
        Err(e) => return api_error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let answer = match blocking(move || state.histories.query(&q)).await {
        Ok(a) => a,
        Err(e) => return e,
    };
    let mut body = String::with_capacity(answer.lines.iter().map(|(_, l)| l.len() + 1).sum());
    for (_, line) in &answer.lines {
        body.push_str(line);
        body.push('\n');
    }
    let truncated = if answer.truncated { "true" } else { "false" };
    (
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (
                header::HeaderName::from_static("x-events-truncated"),
                truncated,
            ),
        ],
        body,
    )
        .into_response()
}

/// One event for a live stream, if it passes the filters: `data: {"engine":..., "event":
/// LINE}`.
fn live_chunk(live: &crate::history::Live, filters: &crate::history::Filters) -> Option<Bytes> {
    if !filters.passes(&live.engine, live.line.as_bytes()) {
        return None;
    }
    let mut data = String::with_capacity(live.line.len() + 64);
    data.push_str("data: {\"engine\":");
    data.push_str(&serde_json::to_string(&*live.engine).unwrap_or_default());
    data.push_str(",\"event\":");
    // A bare CR would end the SSE line early (a JSON string never holds one; an engine or
    // proxy that sends one gets a space).
    data.push_str(&live.line.replace('\r', " "));
    data.push_str("}\n\n");
    Some(Bytes::from(data))
}

/// How often a quiet live stream sends a comment, so that proxies keep it open.
const LIVE_KEEPALIVE: Duration = Duration::from_secs(15);

/// Every event from now on, as server-sent events: `data: {"engine":..., "event": LINE}`;
/// `event: lagged` says how many a slow reader missed.
pub(super) async fn live_events(State(state): State<AppState>, params: Params) -> Response {
    let filters = match query_of(&params) {
        Ok(q) => q.filters,
        Err(e) => return api_error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let follower = state.histories.subscribe();
    let closing = state.closing.clone();
    let mut keepalive = tokio::time::interval(LIVE_KEEPALIVE);
    keepalive.reset();
    let stream = futures_util::stream::unfold(
        (follower, filters, closing, keepalive),
        |(mut follower, filters, closing, mut keepalive)| async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                let chunk = tokio::select! {
                    _ = closing.cancelled() => return None,
                    _ = keepalive.tick() => Bytes::from_static(b": keepalive\n\n"),
                    got = follower.rx.recv() => match got {
                        Ok(live) => match live_chunk(&live, &filters) {
                            Some(chunk) => chunk,
                            None => continue,
                        },
                        Err(RecvError::Lagged(n)) => Bytes::from(format!("event: lagged\ndata: {n}\n\n")),
                        Err(RecvError::Closed) => return None,
                    },
                };
                return Some((
                    Ok::<_, std::convert::Infallible>(chunk),
                    (follower, filters, closing, keepalive),
                ));
            }
        },
    );
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-store"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}
