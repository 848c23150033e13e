//! `/metrics`: the scrape, encoded off the async workers and streamed in chunks, a few at once.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::AppState;
use crate::metrics::containers::CHUNK_BYTES;

/// The exposition format's content type, as Prometheus expects it.
pub const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How many scrapes may encode at once, and how long each may wait.
#[derive(Clone)]
pub struct ScrapeLimits {
    permits: Arc<tokio::sync::Semaphore>,
    /// How long a scrape waits for a permit before it is refused with 503.
    pub queue_timeout: Duration,
    /// How long a client may leave a chunk untaken before its scrape is abandoned.
    pub stall_timeout: Duration,
}

/// Scrapes encoding at once: Prometheus pairs and a person with curl fit; a flood of clients
/// does not get a thread and 1 MiB of chunks each.
pub const MAX_CONCURRENT_SCRAPES: usize = 8;

impl ScrapeLimits {
    pub fn new(concurrent: usize, queue_timeout: Duration, stall_timeout: Duration) -> Self {
        Self {
            permits: Arc::new(tokio::sync::Semaphore::new(concurrent)),
            queue_timeout,
            stall_timeout,
        }
    }
}

impl Default for ScrapeLimits {
    fn default() -> Self {
        Self::new(
            MAX_CONCURRENT_SCRAPES,
            Duration::from_secs(10),
            Duration::from_secs(10),
        )
    }
}

/// Chunks of a scrape in flight between the encoder and the connection: enough to keep both
/// busy, few enough that a slow client holds at most this many chunks of memory.
const SCRAPE_CHUNKS_IN_FLIGHT: usize = 4;

pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    let limits = state.scrapes;
    let permit =
        match tokio::time::timeout(limits.queue_timeout, limits.permits.clone().acquire_owned())
            .await
        {
            Ok(Ok(permit)) => permit,
            _ => {
                tracing::warn!(
                    limit = MAX_CONCURRENT_SCRAPES,
                    "refusing a scrape: too many in progress"
                );
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many scrapes in progress; retry later\n",
                )
                    .into_response();
            }
        };
    // Encoding thousands of containers takes milliseconds: done off the async workers, so it
    // never delays the event stream, and streamed in chunks, so a scrape's text is never held
    // whole in memory. A client that goes away, or stops reading for `stall_timeout`, ends
    // the encoder at its next chunk; no lock is held while a chunk waits.
    let m = state.metrics.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(SCRAPE_CHUNKS_IN_FLIGHT);
    let runtime = tokio::runtime::Handle::current();
    let stall = limits.stall_timeout;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let send = |chunk: Bytes| match runtime
            .block_on(tokio::time::timeout(stall, tx.send(chunk)))
        {
            Ok(Ok(())) => true,
            Ok(Err(_)) => false,
            Err(_) => {
                tracing::warn!(timeout = ?stall, "abandoning a scrape: the client stopped reading");
                false
            }
        };
        let mut out = Vec::with_capacity(CHUNK_BYTES + CHUNK_BYTES / 4);
        m.encode_chunks(&mut out, &mut |chunk| {
            let full = std::mem::replace(chunk, Vec::with_capacity(CHUNK_BYTES + CHUNK_BYTES / 4));
            send(Bytes::from(full))
        });
    });
    let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, std::convert::Infallible>(chunk), rx))
    });
    (
        [(header::CONTENT_TYPE, TEXT_FORMAT)],
        Body::from_stream(chunks),
    )
        .into_response()
}
