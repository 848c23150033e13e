//! The HTTP side: `/metrics` (or `--web.telemetry-path`), a landing page at `/`, `/-/healthy`
//! (the process is alive) and `/-/ready` (subscribed to the engine).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use bytes::Bytes;

use crate::metrics::Metrics;
use crate::metrics::containers::CHUNK_BYTES;

/// The exposition format's content type, as Prometheus expects it.
pub const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone)]
pub struct AppState {
    pub metrics: Arc<Metrics>,
    pub telemetry_path: String,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route(&state.telemetry_path.clone(), get(metrics))
        .route("/", get(landing))
        .route("/-/healthy", get(|| async { "Healthy\n" }))
        .route("/-/ready", get(ready))
        .with_state(state)
}

/// Chunks of a scrape in flight between the encoder and the connection: enough to keep both
/// busy, few enough that a slow client holds at most this many chunks of memory.
const SCRAPE_CHUNKS_IN_FLIGHT: usize = 4;

async fn metrics(State(state): State<AppState>) -> Response {
    // Encoding thousands of containers takes milliseconds: done off the async workers, so it
    // never delays the event stream, and streamed in chunks, so a scrape's text is never held
    // whole in memory. A client that goes away stops the encoder at its next chunk.
    let m = state.metrics.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(SCRAPE_CHUNKS_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::with_capacity(CHUNK_BYTES + CHUNK_BYTES / 4);
        let sent = m.encode_chunks(&mut out, &mut |chunk| {
            let full = std::mem::replace(chunk, Vec::with_capacity(CHUNK_BYTES + CHUNK_BYTES / 4));
            tx.blocking_send(Bytes::from(full)).is_ok()
        });
        if sent && !out.is_empty() {
            let _ = tx.blocking_send(Bytes::from(out));
        }
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

async fn ready(State(state): State<AppState>) -> Response {
    if state.metrics.up.get() == 1 {
        (StatusCode::OK, "Ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "Not ready: not subscribed to the Docker Engine's events\n",
        )
            .into_response()
    }
}

async fn landing(State(state): State<AppState>) -> Html<String> {
    let path = html_escape(&state.telemetry_path);
    Html(format!(
        "<!doctype html>\n<html><head><title>docker-events-exporter</title></head><body>\n\
         <h1>docker-events-exporter</h1>\n<p>Docker Engine events as Prometheus metrics.</p>\n\
         <ul><li><a href=\"{path}\">Metrics</a></li><li><a href=\"/-/healthy\">Health</a></li>\
         <li><a href=\"/-/ready\">Readiness</a></li></ul>\n<p>Version {}</p>\n</body></html>\n",
        env!("CARGO_PKG_VERSION")
    ))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn app() -> (Router, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new(&[]).expect("metrics"));
        let state = AppState {
            metrics: metrics.clone(),
            telemetry_path: "/custom".to_owned(),
        };
        (router(state), metrics)
    }

    async fn get(app: Router, path: &str) -> (StatusCode, String, String) {
        let resp = app
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let status = resp.status();
        let ctype = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or_default().to_owned())
            .unwrap_or_default();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, ctype, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn metrics_at_the_configured_path() {
        let (app, _) = app();
        let (status, ctype, body) = get(app.clone(), "/custom").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ctype, TEXT_FORMAT);
        assert!(body.contains("docker_events_exporter_up 0\n"), "{body}");
        assert_eq!(get(app, "/metrics").await.0, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn a_large_scrape_streams_the_same_text_as_encode() {
        let (app, metrics) = app();
        for i in 0..3000 {
            let (_, cell) = metrics.containers.insert(&[
                format!("container-{i}"),
                "image".to_owned(),
                "project".to_owned(),
                "service".to_owned(),
            ]);
            cell.lock().starts = i;
        }
        let containers = |text: &str| -> Vec<String> {
            text.lines()
                .filter(|l| l.contains("docker_container_"))
                .map(str::to_owned)
                .collect()
        };
        let (status, _, body) = get(app, "/custom").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            body.len() > 2 * CHUNK_BYTES,
            "{} bytes: not chunked",
            body.len()
        );
        let want = containers(&metrics.encode());
        assert_eq!(
            want.len(),
            3000 * 9 + 4 * 2,
            "starts, oom, restarts, 6 states; HELP and TYPE of 4 families"
        );
        assert_eq!(containers(&body), want);
    }

    #[tokio::test]
    async fn ready_follows_the_subscription() {
        let (app, metrics) = app();
        assert_eq!(
            get(app.clone(), "/-/ready").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(get(app.clone(), "/-/healthy").await.0, StatusCode::OK);
        metrics.up.set(1);
        assert_eq!(get(app, "/-/ready").await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn landing_links_the_metrics_path() {
        let (app, _) = app();
        let (status, _, body) = get(app, "/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("<a href=\"/custom\">Metrics</a>"), "{body}");
    }
}
