//! docker-events-exporter turns a Docker Engine's event stream into Prometheus metrics.
//!
//! The pipeline: [`docker`] connects to the engine and keeps one event subscription alive
//! (resume, backoff, dedupe); each decoded event goes to the [`metrics::Tracker`], the one place
//! where an event changes a metric; [`server`] lets Prometheus scrape the result.
//!
//! # Layout
//! - [`cli`]: command-line flags and their environment variables.
//! - [`app`]: wiring: builds the parts, spawns the tasks, owns shutdown and the drain.
//! - [`docker::endpoint`]: where the engine is (unix socket, tcp, TLS) and one HTTP/1 request to it.
//! - [`docker::event`]: our own typed event, decoded from one line of `GET /events`.
//! - [`docker::stream`]: the subscription: reconnect with backoff, resume with `since=`, dedupe,
//!   gap detection and the reconcile after one.
//! - [`docker::state`]: `--docker.state-file`: the stream's position across restarts.
//! - [`docker`]: the engine client: version, info, ping, and container list/inspect via bollard.
//! - [`metrics`]: the registry and the metric families (names, labels, buckets).
//! - [`metrics::tracker`]: container state and the event -> metric rules, series expiry,
//!   reconciling with the engine after a gap.
//! - [`metrics::containers`]: the per-container series, kept compact and written as text.
//! - [`server`]: the axum router: `/metrics`, `/`, `/-/healthy`, `/-/ready`; scrape limits;
//!   serving over TLS.
//! - [`web`]: `--web.config.file`: TLS and basic auth in the exporter-toolkit format.
//! - [`rules`]: the rules config: loading and checking it, matchers, `%%key%%` templates.
//! - [`actions`]: the action queue, batching, the worker pool, and each action kind.
//! - [`replay`]: `replay FILE`: a saved event log through the same pipeline.
//! - [`generate`]: realistic event files for replay and benchmarks.
//! - [`json`]: JSON strings, fast: finding a string's end, writing one escaped.
//! - [`logging`]: tracing set-up (logfmt or JSON).
//! - `fuzzing` (hidden): the fuzz targets' bodies, shared with the corpus replay in the tests.

pub mod actions;
pub mod app;
pub mod cli;
pub mod docker;
#[doc(hidden)]
pub mod fuzzing;
pub mod generate;
pub mod json;
pub mod logging;
pub mod metrics;
pub mod replay;
pub mod rules;
pub mod server;
pub mod web;
