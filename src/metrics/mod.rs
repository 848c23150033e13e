//! The registry and every metric family we export: names, help, labels and buckets. The
//! [`tracker`] is the one place where an event changes a metric.

pub mod containers;
pub mod tracker;

use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

pub use containers::ContainerSeries;

pub use tracker::Tracker;

pub const CONTAINER_STARTS: &str = "docker_container_starts_total";
pub const CONTAINER_EXITS: &str = "docker_container_exits_total";
pub const CONTAINER_OOM_KILLS: &str = "docker_container_oom_kills_total";
pub const CONTAINER_KILLS: &str = "docker_container_kills_total";
pub const CONTAINER_RESTARTS: &str = "docker_container_restarts_total";
pub const CONTAINER_RUN_DURATION: &str = "docker_container_run_duration_seconds";
pub const CONTAINER_EXECS: &str = "docker_container_execs_total";
pub const CONTAINER_EXEC_DURATION: &str = "docker_container_exec_duration_seconds";
pub const CONTAINER_HEALTHCHECKS: &str = "docker_container_healthchecks_total";
pub const CONTAINER_HEALTHCHECK_DURATION: &str = "docker_container_healthcheck_duration_seconds";
pub const CONTAINER_HEALTH_STATUS: &str = "docker_container_health_status";
pub const CONTAINER_STATE: &str = "docker_container_state";
pub const IMAGE_PULLS: &str = "docker_image_pulls_total";
pub const IMAGE_PUSHES: &str = "docker_image_pushes_total";
pub const EVENTS: &str = "docker_events_total";
pub const ENGINE_INFO: &str = "docker_engine_info";
pub const BUILD_INFO: &str = "docker_events_exporter_build_info";
pub const UP: &str = "docker_events_exporter_up";
pub const RECONNECTS: &str = "docker_events_exporter_reconnects_total";
pub const LAST_EVENT_TIMESTAMP: &str = "docker_events_exporter_last_event_timestamp_seconds";
pub const DECODE_ERRORS: &str = "docker_events_exporter_decode_errors_total";
pub const STREAM_GAPS: &str = "docker_events_exporter_stream_gaps_total";
pub const REPLAYED_EVENTS: &str = "docker_events_exporter_replayed_events_total";
pub const RECONCILED_CHANGES: &str = "docker_events_exporter_reconciled_changes_total";

/// Container run time: from a second to a week.
pub const RUN_DURATION_BUCKETS: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 10800.0, 21600.0, 43200.0, 86400.0,
    259200.0, 604800.0,
];
/// User execs: from 10 ms (a quick `cat`) to an hour (an interactive shell).
pub const EXEC_DURATION_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0,
];
/// Healthcheck probes: from 5 ms to a minute (past Docker's default 30 s probe timeout).
pub const HEALTHCHECK_DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The labels every container series carries, before the user's `label_*` ones.
pub const CONTAINER_LABELS: [&str; 4] = ["name", "image", "compose_project", "compose_service"];

/// A problem with the metric set-up (in practice: with `--container-label`).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(
        "--container-label {first:?} and {second:?} both become the Prometheus label {label}; allow-list only one of them"
    )]
    LabelClash {
        first: String,
        second: String,
        label: String,
    },
    #[error("--container-label must not be empty")]
    EmptyLabel,
    #[error("registering metrics")]
    Prometheus(#[from] prometheus::Error),
}

/// Every metric family, registered in one registry.
pub struct Metrics {
    pub registry: Registry,
    /// The Docker label keys allow-listed with `--container-label`, in label order.
    pub label_keys: Vec<String>,
    /// Every per-container family, outside the registry: see [`containers`].
    pub containers: ContainerSeries,
    pub image_pulls: IntCounterVec,
    pub image_pushes: IntCounterVec,
    pub events: IntCounterVec,
    pub engine_info: IntGaugeVec,
    pub up: IntGauge,
    pub reconnects: IntCounter,
    pub last_event_timestamp: Gauge,
    pub decode_errors: IntCounter,
    pub stream_gaps: IntCounter,
    pub replayed_events: IntCounter,
    pub reconciled_changes: IntCounter,
}

/// `label_<key>` with every character Prometheus does not allow in a label name made `_`.
pub fn prometheus_label_name(docker_label: &str) -> String {
    let sanitized: String = docker_label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("label_{sanitized}")
}

impl Metrics {
    pub fn new(label_keys: &[String]) -> Result<Self, SetupError> {
        let mut keys: Vec<String> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for key in label_keys {
            if key.is_empty() {
                return Err(SetupError::EmptyLabel);
            }
            if keys.contains(key) {
                continue;
            }
            let name = prometheus_label_name(key);
            if let Some(i) = names.iter().position(|n| *n == name) {
                return Err(SetupError::LabelClash {
                    first: keys[i].clone(),
                    second: key.clone(),
                    label: name,
                });
            }
            keys.push(key.clone());
            names.push(name);
        }
        let container_labels: Vec<String> = CONTAINER_LABELS
            .iter()
            .map(|l| (*l).to_owned())
            .chain(names)
            .collect();
        let registry = Registry::new();
        let counter =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
                let c = IntCounterVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(c.clone()))?;
                Ok(c)
            };
        let gauge =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntGaugeVec, prometheus::Error> {
                let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(g.clone()))?;
                Ok(g)
            };

        let m = Self {
            containers: ContainerSeries::new(container_labels),
            image_pulls: counter(IMAGE_PULLS, "Image pull events.", &["image"])?,
            image_pushes: counter(IMAGE_PUSHES, "Image push events.", &["image"])?,
            events: counter(
                EVENTS,
                "Every engine event, by object type and action verb.",
                &["object", "action"],
            )?,
            engine_info: gauge(
                ENGINE_INFO,
                "The watched Docker Engine; always 1.",
                &["version", "api_version", "os", "arch"],
            )?,
            up: IntGauge::new(UP, "1 while subscribed to the engine's event stream.")?,
            reconnects: IntCounter::new(
                RECONNECTS,
                "Re-subscriptions to the event stream after it ended.",
            )?,
            last_event_timestamp: Gauge::new(
                LAST_EVENT_TIMESTAMP,
                "Engine time of the last event, in seconds since the epoch.",
            )?,
            decode_errors: IntCounter::new(
                DECODE_ERRORS,
                "Event lines that could not be read as events.",
            )?,
            stream_gaps: IntCounter::new(
                STREAM_GAPS,
                "Resubscriptions after which events may have been lost: the engine restarted or no longer held our position.",
            )?,
            replayed_events: IntCounter::new(
                REPLAYED_EVENTS,
                "Events the engine replayed after a resubscription that had not been seen before.",
            )?,
            reconciled_changes: IntCounter::new(
                RECONCILED_CHANGES,
                "Corrections made from the engine's container list after a gap.",
            )?,
            label_keys: keys,
            registry,
        };
        m.registry.register(Box::new(m.up.clone()))?;
        m.registry.register(Box::new(m.reconnects.clone()))?;
        m.registry
            .register(Box::new(m.last_event_timestamp.clone()))?;
        m.registry.register(Box::new(m.decode_errors.clone()))?;
        m.registry.register(Box::new(m.stream_gaps.clone()))?;
        m.registry.register(Box::new(m.replayed_events.clone()))?;
        m.registry
            .register(Box::new(m.reconciled_changes.clone()))?;

        let build_info = IntGaugeVec::new(
            Opts::new(
                BUILD_INFO,
                "The exporter's version and source revision; always 1.",
            ),
            &["version", "revision"],
        )?;
        build_info
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                option_env!("DEE_GIT_REVISION").unwrap_or("unknown"),
            ])
            .set(1);
        m.registry.register(Box::new(build_info))?;
        m.registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(m)
    }

    /// The text exposition of every family, whole.
    pub fn encode(&self) -> String {
        let mut all = Vec::new();
        self.encode_chunks(&mut Vec::new(), &mut |chunk| {
            all.extend_from_slice(chunk);
            true
        });
        // Both writers write UTF-8 only: the registry's encoder and ours copy UTF-8 strings.
        String::from_utf8(all).unwrap_or_default()
    }

    /// The text exposition, handed to `flush` in chunks of about
    /// [`containers::CHUNK_BYTES`], the last one smaller (`out` is the buffer; it ends empty).
    /// Returns false if `flush` did (the reader went away).
    pub fn encode_chunks(
        &self,
        out: &mut Vec<u8>,
        flush: &mut dyn FnMut(&mut Vec<u8>) -> bool,
    ) -> bool {
        let families = self.registry.gather();
        // The text encoder only fails on writer errors, and a Vec does not fail.
        let _ = prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &families, out);
        self.containers.encode(out, flush)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_are_sanitized() {
        assert_eq!(
            prometheus_label_name("com.example.team"),
            "label_com_example_team"
        );
        assert_eq!(prometheus_label_name("tier"), "label_tier");
    }

    #[test]
    fn clashing_labels_are_refused_with_both_names() {
        let err = Metrics::new(&["a.b".to_owned(), "a-b".to_owned()])
            .err()
            .expect("clash");
        assert_eq!(
            err.to_string(),
            "--container-label \"a.b\" and \"a-b\" both become the Prometheus label label_a_b; allow-list only one of them"
        );
    }

    #[test]
    fn exposition_has_the_self_metrics() {
        let m = Metrics::new(&[]).expect("metrics");
        let text = m.encode();
        assert!(text.contains("docker_events_exporter_up 0\n"), "{text}");
        assert!(
            text.contains("docker_events_exporter_decode_errors_total 0\n"),
            "{text}"
        );
        assert!(
            text.contains("docker_events_exporter_build_info{revision="),
            "{text}"
        );
        assert!(text.contains("process_resident_memory_bytes "), "{text}");
    }
}
