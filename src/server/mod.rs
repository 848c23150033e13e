//! The HTTP side: `/metrics` (or `--web.telemetry-path`), the status page at `/`, the event
//! history's API (`/api/v1/events`, its live stream `/api/v1/events/live`, and
//! `/api/v1/status`), `/-/healthy` (the process is alive) and `/-/ready` (subscribed to the
//! engine).

mod api;
mod listen;
mod mutes;
mod scrape;
pub mod status;
pub mod web_config;

use api::{blocking, events, live_events, status_json};
use listen::serve;
pub use listen::{TLS_HANDSHAKE_TIMEOUT, bind};
use scrape::metrics;
pub use scrape::{MAX_CONCURRENT_SCRAPES, ScrapeLimits, TEXT_FORMAT};

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get};

use anyhow::Context as _;

use crate::actions::Mutes;
use crate::docker::now_nano;
use crate::history::Histories;
use crate::metrics::Metrics;
use status::Status;
use web_config::{BasicAuth, WebConfig};

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
    /// The mutes of the rules' firings (`/api/v1/mutes`).
    pub mutes: Arc<Mutes>,
}

/// The HTTP side's settings, checked.
pub struct WebSettings {
    pub listen_address: String,
    /// Starts with `/` and is none of the paths the server answers itself.
    pub telemetry_path: String,
    /// TLS and basic auth from `--web.config.file`, checked; plain HTTP without one.
    pub config: WebConfig,
}

impl WebSettings {
    /// One line for the start-up log.
    pub fn summary(&self) -> String {
        self.config.summary()
    }
}

pub fn router(state: AppState) -> Router {
    let auth = state.auth.clone();
    let router = Router::new()
        .route(&state.telemetry_path.clone(), get(metrics))
        .route("/", get(status_page))
        .route(
            "/static/status.css",
            get(|| async { asset("text/css; charset=utf-8", status::STYLE) }),
        )
        .route(
            "/static/status.js",
            get(|| async { asset("text/javascript; charset=utf-8", status::SCRIPT) }),
        )
        .route("/api/v1/status", get(status_json))
        .route("/api/v1/events", get(events))
        .route("/api/v1/events/live", get(live_events))
        .route("/api/v1/mutes", get(mutes::list).post(mutes::add))
        .route("/api/v1/mutes/{id}", delete(mutes::expire))
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
    /// Binds `--web.listen-address` and builds the router for `metrics`, `histories` and
    /// `mutes`.
    pub async fn bind(
        web: &WebSettings,
        metrics: Arc<Metrics>,
        histories: Arc<Histories>,
        mutes: Arc<Mutes>,
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
            mutes,
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

async fn status_page(State(state): State<AppState>) -> Response {
    let page = blocking(move || {
        let status = Status::now(&state.metrics, &state.mutes, now_nano());
        let events = state.histories.newest(status::FIRST_EVENTS);
        let links = [
            ("Metrics", state.telemetry_path.as_str()),
            ("Events (JSON lines)", "/api/v1/events"),
            ("Status (JSON)", "/api/v1/status"),
            ("Health", "/-/healthy"),
            ("Readiness", "/-/ready"),
        ];
        status::page(&status, &events, &links)
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

#[cfg(test)]
mod tests;
