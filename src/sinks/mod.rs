//! Sinks: every event the history keeps on disk, shipped in order to the stores fleets keep
//! their records in (OpenTelemetry logs, syslog, NATS JetStream), without losing its place.
//!
//! A sink reads an engine's `--history.dir` segments from its cursor (`sinks/NAME.cursor` in
//! that folder), batches what it reads, sends it, and moves the cursor once the store has it:
//! at least once across store outages, restarts and SIGKILL, with a stable event ID a store can
//! drop a second copy by (NATS does, by `Nats-Msg-Id`). Each (sink, engine) runs on a task of
//! its own and reads files only, so no store can slow the stream, the metrics, the rules or
//! another sink.
//!
//! `spec` checks the URLs, `record` derives what every store receives of an event, `reader`
//! follows the folder, `ship` runs the loop, and `otlp`, `syslog` and `nats` speak the stores'
//! protocols.

mod nats;
mod otlp;
mod reader;
pub mod record;
mod ship;
pub mod spec;
mod syslog;

use std::sync::Arc;

use prometheus::{GaugeVec, IntCounterVec, Registry};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::history::OnDisk;
use crate::metrics::families as f;
pub use record::Origin;
pub use spec::{SinkSpec, SpecError};

/// Every `--sink`, and their metric families.
pub struct Sinks {
    specs: Vec<Arc<SinkSpec>>,
    several: bool,
    sent: IntCounterVec,
    failed: IntCounterVec,
    skipped: IntCounterVec,
    lag: GaugeVec,
}

impl Sinks {
    /// `several`: several engines are watched, and the series carry an `engine` label.
    pub fn new(
        specs: Vec<SinkSpec>,
        several: bool,
        registry: &Registry,
    ) -> prometheus::Result<Self> {
        let s = Self {
            specs: specs.into_iter().map(Arc::new).collect(),
            several,
            sent: f::SINK_EVENTS_SENT.int_counter_vec_by(several)?,
            failed: f::SINK_BATCHES_FAILED.int_counter_vec_by(several)?,
            skipped: f::SINK_EVENTS_SKIPPED.int_counter_vec_by(several)?,
            lag: f::SINK_LAG.gauge_vec_by(several)?,
        };
        if !s.specs.is_empty() {
            registry.register(Box::new(s.sent.clone()))?;
            registry.register(Box::new(s.failed.clone()))?;
            registry.register(Box::new(s.skipped.clone()))?;
            registry.register(Box::new(s.lag.clone()))?;
        }
        Ok(s)
    }

    /// Starts shipping one engine's history folder to every sink.
    pub fn start_engine(
        &self,
        origin: &Origin,
        folder: &OnDisk,
        tasks: &TaskTracker,
        cancel: &CancellationToken,
    ) {
        let dir = &folder.dir;
        for spec in &self.specs {
            let sink = spec.shown.as_str();
            let mut prefix = Vec::new();
            if self.several {
                prefix.push(origin.engine.clone());
            }
            prefix.push(sink.to_owned());
            let values: Vec<&str> = prefix.iter().map(String::as_str).collect();
            let series = ship::Series {
                sent: self.sent.with_label_values(&values),
                failed: self.failed.clone(),
                skipped: self.skipped.clone(),
                lag: self.lag.with_label_values(&values),
                prefix,
            };
            let reader = match reader::Reader::open(
                dir,
                &spec.cursor_name(),
                folder.dropped.clone(),
            ) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(sink, dir = %dir.display(), error = %e, "cannot open the sink's cursor; this sink does not run for this engine");
                    continue;
                }
            };
            let transport = match ship::Transport::new(spec, origin.clone()) {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(sink, error = %format!("{e:#}"), "cannot set the sink up; it does not run");
                    continue;
                }
            };
            let at = reader.position();
            tracing::info!(
                sink,
                segment = at.segment,
                line = at.line,
                "shipping the history to the sink"
            );
            let shipper = ship::Shipper {
                spec: spec.clone(),
                origin: origin.clone(),
                transport,
                reader,
                series,
                written: folder.written.clone(),
            };
            tasks.spawn(shipper.run(cancel.clone()));
        }
    }
}
