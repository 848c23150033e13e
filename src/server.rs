//! The HTTP side: `/metrics` (or `--web.telemetry-path`), the status page at `/`, the event
//! history's API (`/api/v1/events`, its live stream `/api/v1/events/live`, and
//! `/api/v1/status`), `/-/healthy` (the process is alive) and `/-/ready` (subscribed to the
//! engine).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use anyhow::Context as _;
use bytes::Bytes;
use tokio::net::TcpListener;

use crate::docker::now_nano;
use crate::history::{Histories, Query};
use crate::metrics::Metrics;
use crate::metrics::containers::CHUNK_BYTES;
use crate::settings::WebSettings;
use crate::status::Status;
use crate::web::BasicAuth;

/// The exposition format's content type, as Prometheus expects it.
pub const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone)]
pub struct AppState {
    pub metrics: Arc<Metrics>,
    pub telemetry_path: String,
    pub scrapes: ScrapeLimits,
    /// Basic auth for every path, from `--web.config.file`.
    pub auth: Option<Arc<BasicAuth>>,
    pub histories: Arc<Histories>,
    /// Cancelled when the server shuts down: the live streams end, so that the drain does not
    /// wait for them.
    pub closing: tokio_util::sync::CancellationToken,
}

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

pub fn router(state: AppState) -> Router {
    let auth = state.auth.clone();
    let router = Router::new()
        .route(&state.telemetry_path.clone(), get(metrics))
        .route("/", get(status_page))
        .route(
            "/static/status.css",
            get(|| async { asset("text/css; charset=utf-8", crate::status::STYLE) }),
        )
        .route(
            "/static/status.js",
            get(|| async { asset("text/javascript; charset=utf-8", crate::status::SCRIPT) }),
        )
        .route("/api/v1/status", get(status_json))
        .route("/api/v1/events", get(events))
        .route("/api/v1/events/live", get(live_events))
        .route("/-/healthy", get(|| async { "Healthy\n" }))
        .route("/-/ready", get(ready))
        .with_state(state);
    match auth {
        Some(auth) => router.layer(axum::middleware::from_fn_with_state(auth, basic_auth)),
        None => router,
    }
}

/// Lets a request in only with a valid `Authorization: Basic` header (every path, as
/// exporter-toolkit does). bcrypt runs on a blocking thread.
async fn basic_auth(
    State(auth): State<Arc<BasicAuth>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let ok = tokio::task::spawn_blocking(move || auth.check(header.as_deref()))
        .await
        .unwrap_or(false);
    if ok {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic")],
            "Unauthorized\n",
        )
            .into_response()
    }
}

/// The HTTP side, bound and ready to serve: the daemon's start-up and `replay --serve` alike.
pub struct Server {
    listener: tokio::net::TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    closing: tokio_util::sync::CancellationToken,
}

impl Server {
    /// Binds `--web.listen-address` and builds the router for `metrics` and `histories`.
    pub async fn bind(
        web: &WebSettings,
        metrics: Arc<Metrics>,
        histories: Arc<Histories>,
    ) -> anyhow::Result<Self> {
        let listener = bind(&web.listen_address).await?;
        let closing = tokio_util::sync::CancellationToken::new();
        let app = router(AppState {
            metrics,
            telemetry_path: web.telemetry_path.clone(),
            scrapes: ScrapeLimits::default(),
            auth: web.config.auth.clone(),
            histories,
            closing: closing.clone(),
        });
        Ok(Self {
            listener,
            app,
            tls: web.config.tls.clone(),
            closing,
        })
    }

    /// Where it listens.
    pub fn address(&self) -> String {
        self.listener
            .local_addr()
            .map_or_else(|e| format!("unknown ({e})"), |a| a.to_string())
    }

    /// Serves until `shutdown`, then waits up to `drain` for open connections.
    pub async fn serve(
        self,
        shutdown: tokio_util::sync::CancellationToken,
        drain: Duration,
    ) -> anyhow::Result<()> {
        let closing = self.closing.clone();
        let closed = shutdown.clone();
        tokio::spawn(async move {
            closed.cancelled().await;
            closing.cancel();
        });
        serve(self.listener, self.app, self.tls, shutdown, drain)
            .await
            .context("serving HTTP")
    }
}

/// Binds the listen address; `:PORT` means every interface, IPv6 and IPv4 where the host has
/// IPv6, IPv4 alone where it does not.
pub async fn bind(addr: &str) -> anyhow::Result<TcpListener> {
    let ctx = || format!("cannot listen on --web.listen-address {addr:?}");
    if let Some(port) = addr.strip_prefix(':') {
        let port: u16 = port
            .parse()
            .with_context(|| format!("{}: not a port number", ctx()))?;
        return match TcpListener::bind(("::", port)).await {
            Ok(l) => Ok(l),
            Err(_) => TcpListener::bind(("0.0.0.0", port)).await.with_context(ctx),
        };
    }
    TcpListener::bind(addr).await.with_context(ctx)
}

/// How long a client has to complete its TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown`, over TLS if `tls` is given; then waits up to
/// `drain` for open connections.
async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: tokio_util::sync::CancellationToken,
    drain: Duration,
) -> std::io::Result<()> {
    let Some(tls) = tls else {
        return axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, most likely: wait rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let stream =
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "HTTPS connection ended with an error");
            }
        });
    }
    let _ = tokio::time::timeout(drain, graceful.shutdown()).await;
    Ok(())
}

/// Chunks of a scrape in flight between the encoder and the connection: enough to keep both
/// busy, few enough that a slow client holds at most this many chunks of memory.
const SCRAPE_CHUNKS_IN_FLIGHT: usize = 4;

async fn metrics(State(state): State<AppState>) -> Response {
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

async fn ready(State(state): State<AppState>) -> Response {
    // With several engines, one that is down makes the exporter no less worth scraping (its
    // `up` says which): ready while any engine is subscribed.
    if state.metrics.subscribed_engines() > 0 {
        (StatusCode::OK, "Ready\n").into_response()
    } else if state.metrics.several_engines {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "Not ready: subscribed to none of the engines' events\n",
        )
            .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "Not ready: not subscribed to the Docker Engine's events\n",
        )
            .into_response()
    }
}

/// Headers of the status page: its own script and style only, nothing framed or sent
/// elsewhere.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// An error of the API, as the engine's API gives one: `{"message": "..."}`.
fn api_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "message": message })),
    )
        .into_response()
}

/// Runs `work` on the blocking pool (a page of 10,000 containers, a read of the segments on
/// disk); a panic there is a 500, not a lost connection.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Response> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| api_error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}")))
}

async fn status_page(State(state): State<AppState>) -> Response {
    let page = blocking(move || {
        let status = Status::now(&state.metrics, now_nano());
        let events = state.histories.newest(crate::status::FIRST_EVENTS);
        let links = [
            ("Metrics", state.telemetry_path.as_str()),
            ("Events (JSON lines)", "/api/v1/events"),
            ("Status (JSON)", "/api/v1/status"),
            ("Health", "/-/healthy"),
            ("Readiness", "/-/ready"),
        ];
        crate::status::page(&status, &events, &links)
    })
    .await;
    match page {
        Ok(page) => (
            [
                (header::CONTENT_SECURITY_POLICY, PAGE_POLICY),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            Html(page),
        )
            .into_response(),
        Err(e) => e,
    }
}

async fn status_json(State(state): State<AppState>) -> Response {
    match blocking(move || Status::now(&state.metrics, now_nano())).await {
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
async fn events(State(state): State<AppState>, params: Params) -> Response {
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
async fn live_events(State(state): State<AppState>, params: Params) -> Response {
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn app() -> (Router, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new(&[]).expect("metrics"));
        (router(AppState::for_tests(metrics.clone())), metrics)
    }

    fn histories(metrics: &Metrics) -> Arc<Histories> {
        let settings = crate::history::HistorySettings {
            size: 100,
            dir: None,
            retention: crate::history::Retention {
                max_age: None,
                max_bytes: None,
            },
        };
        Histories::new(settings, false, &metrics.registry).expect("histories")
    }

    impl AppState {
        fn for_tests(metrics: Arc<Metrics>) -> Self {
            Self {
                histories: histories(&metrics),
                metrics,
                telemetry_path: "/custom".to_owned(),
                scrapes: ScrapeLimits::default(),
                auth: None,
                closing: tokio_util::sync::CancellationToken::new(),
            }
        }
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

    /// A state with one engine's history, and that history.
    fn with_history() -> (AppState, Arc<crate::history::History>) {
        let metrics = Arc::new(Metrics::new(&[]).expect("metrics"));
        let state = AppState::for_tests(metrics);
        let h = state
            .histories
            .engine("e", "e".into(), None)
            .expect("history");
        (state, h)
    }

    fn record(h: &crate::history::History, line: &str) {
        let ev = crate::docker::event::Event::decode(line.as_bytes()).expect("event");
        h.record(&ev, line.as_bytes());
    }

    /// One engine's history holding `lines`.
    fn with_events(lines: &[&str]) -> Router {
        let (state, h) = with_history();
        for l in lines {
            record(&h, l);
        }
        router(state)
    }

    const START: &str = r#"{"status":"start","id":"c1","Type":"container","Action":"start","Actor":{"ID":"c1","Attributes":{"name":"web","x":"\u003cb\u003e"}},"scope":"local","time":10,"timeNano":10000000000}"#;
    const DIE: &str = r#"{"status":"die","id":"c2","Type":"container","Action":"die","Actor":{"ID":"c2","Attributes":{"exitCode":"1","name":"db"}},"scope":"local","time":20,"timeNano":20000000000}"#;

    #[tokio::test]
    async fn the_history_answers_as_docker_events_prints_with_the_engines_filters() {
        let app = with_events(&[START, DIE]);
        let (status, ctype, body) = get(app.clone(), "/api/v1/events").await;
        assert_eq!(
            (status, ctype.as_str()),
            (StatusCode::OK, "application/x-ndjson")
        );
        // The API's \u003c escapes as the docker CLI prints them: plain.
        assert_eq!(
            body,
            format!(
                "{}\n{DIE}\n",
                START.replace("\\u003c", "<").replace("\\u003e", ">")
            )
        );
        let (_, _, body) = get(app.clone(), "/api/v1/events?since=15").await;
        assert_eq!(body, format!("{DIE}\n"));
        let (_, _, body) = get(app.clone(), "/api/v1/events?until=10.000000000").await;
        assert!(body.starts_with("{\"status\":\"start\""), "{body}");
        let (_, _, body) = get(
            app.clone(),
            "/api/v1/events?filters=%7B%22container%22%3A%5B%22db%22%5D%7D",
        )
        .await;
        assert_eq!(body, format!("{DIE}\n"));
        let (status, ctype, body) = get(
            app.clone(),
            "/api/v1/events?filters=%7B%22colour%22%3A%5B%22red%22%5D%7D",
        )
        .await;
        assert_eq!(
            (status, ctype.as_str()),
            (StatusCode::BAD_REQUEST, "application/json")
        );
        assert!(
            body.starts_with(
                r#"{"message":"invalid filter \"colour\"; the keys are config, container"#
            ),
            "{body}"
        );
        let (status, _, body) = get(app, "/api/v1/events?since=soon").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains(r#"since \"soon\": not a time"#), "{body}");
    }

    #[tokio::test]
    async fn the_live_stream_sends_the_events_that_pass_its_filters_from_now_on() {
        let (state, h) = with_history();
        record(&h, START);
        let app = router(state);
        let resp = app
            .oneshot(
                Request::get("/api/v1/events/live?filters=%7B%22event%22%3A%5B%22die%22%5D%7D")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("infallible");
        assert_eq!(
            resp.headers()
                .get(header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap_or("")),
            Some("text/event-stream")
        );
        record(&h, START);
        record(&h, DIE);
        let mut body = resp.into_body();
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("an event within 5 s")
            .expect("a frame")
            .expect("data");
        let data = frame.into_data().expect("data");
        assert_eq!(
            String::from_utf8_lossy(&data),
            format!("data: {{\"engine\":\"e\",\"event\":{DIE}}}\n\n"),
            "the start before it and the one after it are not sent"
        );
    }

    #[tokio::test]
    async fn the_page_and_the_api_ask_for_basic_auth_as_the_metrics_do() {
        let metrics = Arc::new(Metrics::new(&[]).expect("metrics"));
        let mut state = AppState::for_tests(metrics);
        let users = std::collections::BTreeMap::from([("u".to_owned(), "$2y$04$x".to_owned())]);
        state.auth = Some(Arc::new(BasicAuth::new(users)));
        let app = router(state);
        for path in [
            "/",
            "/api/v1/events",
            "/api/v1/events/live",
            "/api/v1/status",
            "/static/status.js",
            "/custom",
        ] {
            assert_eq!(
                get(app.clone(), path).await.0,
                StatusCode::UNAUTHORIZED,
                "{path}"
            );
        }
    }

    #[tokio::test]
    async fn the_page_serves_its_own_script_and_style_only() {
        let app = with_events(&[START]);
        let resp = app
            .clone()
            .oneshot(Request::get("/").body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        assert_eq!(
            resp.headers()
                .get(header::CONTENT_SECURITY_POLICY)
                .map(|v| v.to_str().unwrap_or("")),
            Some(PAGE_POLICY)
        );
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        let page = String::from_utf8_lossy(&body);
        assert!(
            page.contains("<script src=\"static/status.js\"></script>"),
            "{page}"
        );
        assert!(page.contains("<b>start</b> <span class=\"name\">web</span> <span class=\"attrs\">name=web, x=&lt;b&gt;</span>"), "{page}");
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "no external asset"
        );
        let (status, ctype, js) = get(app.clone(), "/static/status.js").await;
        assert_eq!(
            (status, ctype.as_str()),
            (StatusCode::OK, "text/javascript; charset=utf-8")
        );
        assert!(!js.contains("innerHTML"), "the script sets text only");
        let (_, ctype, _) = get(app, "/static/status.css").await;
        assert_eq!(ctype, "text/css; charset=utf-8");
    }

    #[tokio::test]
    async fn metrics_at_the_configured_path() {
        let (app, metrics) = app();
        let _engine = metrics.engine("");
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
            let (_, cell) = metrics.containers.insert(
                None,
                &[
                    format!("container-{i}"),
                    "image".to_owned(),
                    "project".to_owned(),
                    "service".to_owned(),
                ],
            );
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_stops_reading_is_abandoned_and_frees_its_place() {
        let metrics = Arc::new(Metrics::new(&[]).expect("metrics"));
        for i in 0..3000 {
            let name = format!("container-{i}");
            metrics
                .containers
                .insert(None, &[name, "image".into(), String::new(), String::new()]);
        }
        let app = router(AppState {
            metrics: metrics.clone(),
            telemetry_path: "/metrics".to_owned(),
            scrapes: ScrapeLimits::new(1, Duration::from_secs(20), Duration::from_millis(300)),
            auth: None,
            histories: histories(&metrics),
            closing: tokio_util::sync::CancellationToken::new(),
        });
        let request = || {
            Request::get("/metrics")
                .body(Body::empty())
                .expect("request")
        };
        // Takes the only place, then reads nothing: its encoder stalls on a full channel.
        let stalled = app.clone().oneshot(request()).await.expect("infallible");
        // Waits for the place, which the stall timeout gives back.
        let (status, _, body) = get(app, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        let whole = body.matches("docker_container_state{").count();
        assert_eq!(whole, 3000 * 6);
        let cut = stalled
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let cut = String::from_utf8_lossy(&cut);
        assert!(
            cut.matches("docker_container_state{").count() < whole,
            "the stalled scrape was abandoned, not finished"
        );
    }

    #[tokio::test]
    async fn ready_follows_the_subscription() {
        let (app, metrics) = app();
        assert_eq!(
            get(app.clone(), "/-/ready").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(get(app.clone(), "/-/healthy").await.0, StatusCode::OK);
        let engine = metrics.engine("");
        engine.set_up(true);
        assert_eq!(get(app.clone(), "/-/ready").await.0, StatusCode::OK);
        engine.set_up(false);
        assert_eq!(
            get(app, "/-/ready").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    /// With several engines, ready while any one is subscribed: one engine down does not
    /// take the others' metrics out of a load balancer's rotation.
    #[tokio::test]
    async fn with_several_engines_ready_while_any_is_subscribed() {
        let metrics = Arc::new(Metrics::for_engines(&[], true).expect("metrics"));
        let app = router(AppState::for_tests(metrics.clone()));
        let (a, b) = (metrics.engine("a"), metrics.engine("b"));
        let (status, _, body) = get(app.clone(), "/-/ready").await;
        assert_eq!(
            (status, body.as_str()),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "Not ready: subscribed to none of the engines' events\n"
            )
        );
        a.set_up(true);
        b.set_up(true);
        a.set_up(false);
        assert_eq!(get(app.clone(), "/-/ready").await.0, StatusCode::OK);
        b.set_up(false);
        assert_eq!(
            get(app.clone(), "/-/ready").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        let text = get(app, "/custom").await.2;
        assert!(
            text.contains("docker_events_exporter_up{engine=\"a\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("docker_events_exporter_up{engine=\"b\"} 0\n"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn the_page_links_the_metrics_path_in_its_footer() {
        let (app, _) = app();
        let (status, _, body) = get(app, "/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("<a href=\"/custom\">Metrics</a>"), "{body}");
    }
}
