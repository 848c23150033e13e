//! The registry of the exporter's own families. Every family is declared in [`families`];
//! the [`tracker`] is the one place where an event changes a metric.

pub mod containers;
pub mod families;
pub mod tracker;

use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry};

use self::families as f;

pub use containers::ContainerSeries;

pub use tracker::Tracker;

/// The labels every container series carries, before the user's `label_*` ones.
pub const CONTAINER_LABELS: [&str; 6] = [
    "name",
    "image",
    "compose_project",
    "compose_service",
    "swarm_service",
    "swarm_stack",
];

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
    pub service_updates: IntCounterVec,
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

/// The `--container-label` keys, checked: none empty, repeats dropped, no two that become the
/// same Prometheus label.
pub fn checked_label_keys(label_keys: &[String]) -> Result<Vec<String>, SetupError> {
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
    Ok(keys)
}

impl Metrics {
    pub fn new(label_keys: &[String]) -> Result<Self, SetupError> {
        let keys = checked_label_keys(label_keys)?;
        let names = keys.iter().map(|k| prometheus_label_name(k));
        let container_labels: Vec<String> = CONTAINER_LABELS
            .iter()
            .map(|l| (*l).to_owned())
            .chain(names)
            .collect();
        let registry = Registry::new();
        let m = Self {
            containers: ContainerSeries::new(container_labels),
            image_pulls: f::IMAGE_PULLS.int_counter_vec()?,
            image_pushes: f::IMAGE_PUSHES.int_counter_vec()?,
            service_updates: f::SERVICE_UPDATES.int_counter_vec()?,
            events: f::EVENTS.int_counter_vec()?,
            engine_info: f::ENGINE_INFO.int_gauge_vec()?,
            up: f::UP.int_gauge()?,
            reconnects: f::RECONNECTS.int_counter()?,
            last_event_timestamp: f::LAST_EVENT_TIMESTAMP.gauge()?,
            decode_errors: f::DECODE_ERRORS.int_counter()?,
            stream_gaps: f::STREAM_GAPS.int_counter()?,
            replayed_events: f::REPLAYED_EVENTS.int_counter()?,
            reconciled_changes: f::RECONCILED_CHANGES.int_counter()?,
            label_keys: keys,
            registry,
        };
        let build_info = f::BUILD_INFO.int_gauge_vec()?;
        build_info
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                option_env!("DEE_GIT_REVISION").unwrap_or("unknown"),
            ])
            .set(1);
        let collectors: [Box<dyn prometheus::core::Collector>; 13] = [
            Box::new(m.image_pulls.clone()),
            Box::new(m.service_updates.clone()),
            Box::new(m.image_pushes.clone()),
            Box::new(m.events.clone()),
            Box::new(m.engine_info.clone()),
            Box::new(m.up.clone()),
            Box::new(m.reconnects.clone()),
            Box::new(m.last_event_timestamp.clone()),
            Box::new(m.decode_errors.clone()),
            Box::new(m.stream_gaps.clone()),
            Box::new(m.replayed_events.clone()),
            Box::new(m.reconciled_changes.clone()),
            Box::new(build_info),
        ];
        for c in collectors {
            m.registry.register(c)?;
        }
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
