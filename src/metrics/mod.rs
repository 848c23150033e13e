//! The registry of the exporter's own families. Every family is declared in [`families`];
//! the [`tracker`] is the one place where an event changes a metric.

pub mod containers;
pub mod families;
pub mod firing;
pub mod tracker;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use prometheus::core::{MetricVec, MetricVecBuilder};
use prometheus::{Gauge, GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry};

use self::families as f;

pub use containers::ContainerSeries;
pub use firing::{Firing, FiringNow};

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

/// The label that tells engines apart, first on every series of an engine's when several
/// are watched (and on none when one is, so that a single engine's series stay as they were).
pub const ENGINE_LABEL: &str = "engine";

/// Every metric family, registered in one registry.
pub struct Metrics {
    pub registry: Registry,
    /// The Docker label keys allow-listed with `--container-label`, in label order.
    pub label_keys: Vec<String>,
    /// Every per-container family, outside the registry: see [`containers`].
    pub containers: ContainerSeries,
    /// Whether several engines are watched: their series carry [`ENGINE_LABEL`].
    pub several_engines: bool,
    per_engine: PerEngine,
    /// Engines subscribed to their event stream now (see [`EngineMetrics::set_up`]).
    subscribed: AtomicUsize,
    /// The rules' firings open now.
    pub firing_now: Arc<FiringNow>,
}

/// The registry's families that belong to one engine, each with an `engine` label first
/// when several are watched.
#[derive(Clone)]
struct PerEngine {
    image_pulls: IntCounterVec,
    service_updates: IntCounterVec,
    image_pushes: IntCounterVec,
    events: IntCounterVec,
    engine_info: IntGaugeVec,
    up: IntGaugeVec,
    reconnects: IntCounterVec,
    last_event_timestamp: GaugeVec,
    decode_errors: IntCounterVec,
    stream_gaps: IntCounterVec,
    replayed_events: IntCounterVec,
    reconciled_changes: IntCounterVec,
}

impl PerEngine {
    fn new(by_engine: bool) -> Result<Self, SetupError> {
        Ok(Self {
            image_pulls: f::IMAGE_PULLS.int_counter_vec_by(by_engine)?,
            image_pushes: f::IMAGE_PUSHES.int_counter_vec_by(by_engine)?,
            service_updates: f::SERVICE_UPDATES.int_counter_vec_by(by_engine)?,
            events: f::EVENTS.int_counter_vec_by(by_engine)?,
            engine_info: f::ENGINE_INFO.int_gauge_vec_by(by_engine)?,
            up: f::UP.int_gauge_vec_by(by_engine)?,
            reconnects: f::RECONNECTS.int_counter_vec_by(by_engine)?,
            last_event_timestamp: f::LAST_EVENT_TIMESTAMP.gauge_vec_by(by_engine)?,
            decode_errors: f::DECODE_ERRORS.int_counter_vec_by(by_engine)?,
            stream_gaps: f::STREAM_GAPS.int_counter_vec_by(by_engine)?,
            replayed_events: f::REPLAYED_EVENTS.int_counter_vec_by(by_engine)?,
            reconciled_changes: f::RECONCILED_CHANGES.int_counter_vec_by(by_engine)?,
        })
    }

    fn collectors(&self) -> [Box<dyn prometheus::core::Collector>; 12] {
        [
            Box::new(self.image_pulls.clone()),
            Box::new(self.service_updates.clone()),
            Box::new(self.image_pushes.clone()),
            Box::new(self.events.clone()),
            Box::new(self.engine_info.clone()),
            Box::new(self.up.clone()),
            Box::new(self.reconnects.clone()),
            Box::new(self.last_event_timestamp.clone()),
            Box::new(self.decode_errors.clone()),
            Box::new(self.stream_gaps.clone()),
            Box::new(self.replayed_events.clone()),
            Box::new(self.reconciled_changes.clone()),
        ]
    }
}

/// One engine's metrics: its self-metrics, and what its families' series carry to say whose
/// they are. Made by [`Metrics::engine`].
pub struct EngineMetrics {
    /// Every family (the container series among them).
    pub all: Arc<Metrics>,
    /// The `engine` label's value; `None` when one engine is watched.
    pub label: Option<Arc<str>>,
    up: IntGauge,
    pub reconnects: IntCounter,
    pub last_event_timestamp: Gauge,
    pub decode_errors: IntCounter,
    pub stream_gaps: IntCounter,
    pub replayed_events: IntCounter,
    pub reconciled_changes: IntCounter,
    /// The labels of the `docker_engine_info` series shown now.
    info_shown: Mutex<Option<[String; 4]>>,
}

impl EngineMetrics {
    /// A series of one of this engine's families: `values` are its own labels'.
    fn child<T: MetricVecBuilder>(&self, vec: &MetricVec<T>, values: &[&str]) -> T::M {
        let mut all: Vec<&str> = Vec::with_capacity(values.len() + 1);
        all.extend(self.label.as_deref());
        all.extend_from_slice(values);
        vec.with_label_values(&all)
    }

    pub fn image_pulls(&self, image: &str) -> IntCounter {
        self.child(&self.all.per_engine.image_pulls, &[image])
    }

    pub fn image_pushes(&self, image: &str) -> IntCounter {
        self.child(&self.all.per_engine.image_pushes, &[image])
    }

    pub fn service_updates(&self, service: &str) -> IntCounter {
        self.child(&self.all.per_engine.service_updates, &[service])
    }

    pub fn events(&self, object: &str, action: &str) -> IntCounter {
        self.child(&self.all.per_engine.events, &[object, action])
    }

    /// Sets `docker_engine_info` to the engine's version now; a version it showed before (a
    /// restarted engine may have been upgraded) goes.
    pub fn engine_info(&self, version: &str, api_version: &str, os: &str, arch: &str) {
        let values = [version, api_version, os, arch].map(str::to_owned);
        let mut shown = self.info_shown.lock().unwrap_or_else(|e| e.into_inner());
        let info = &self.all.per_engine.engine_info;
        if let Some(old) = shown.take().filter(|old| *old != values) {
            let old = old.each_ref().map(String::as_str);
            let mut all: Vec<&str> = self.label.as_deref().into_iter().collect();
            all.extend_from_slice(&old);
            let _ = info.remove_label_values(&all);
        }
        self.child(info, &values.each_ref().map(String::as_str))
            .set(1);
        *shown = Some(values);
    }

    /// Subscribed to the engine's event stream, or not: `docker_events_exporter_up`, and
    /// the count `/-/ready` reads.
    pub fn set_up(&self, up: bool) {
        let was = self.up.get() == 1;
        self.up.set(i64::from(up));
        match (was, up) {
            (false, true) => {
                self.all.subscribed.fetch_add(1, Ordering::Relaxed);
            }
            (true, false) => {
                self.all.subscribed.fetch_sub(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    /// The same engine under another `engine` label (an unnamed engine, first shown by its
    /// address, takes its own name once it answers): the old label's series go.
    pub fn renamed(self, label: &str) -> Self {
        self.forget();
        self.all.engine(label)
    }

    /// Drops this engine's self-metric series (an engine that is not watched after all).
    pub fn forget(&self) {
        self.set_up(false);
        let Some(old) = &self.label else {
            return;
        };
        let p = &self.all.per_engine;
        for vec in [
            &p.reconnects,
            &p.decode_errors,
            &p.stream_gaps,
            &p.replayed_events,
            &p.reconciled_changes,
        ] {
            let _ = vec.remove_label_values(&[old]);
        }
        let _ = p.up.remove_label_values(&[old]);
        let _ = p.last_event_timestamp.remove_label_values(&[old]);
        if let Some(info) = self
            .info_shown
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let mut values = vec![&**old];
            values.extend(info.iter().map(String::as_str));
            let _ = p.engine_info.remove_label_values(&values);
        }
    }
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
    /// The families of one engine's exporter: no `engine` label.
    pub fn new(label_keys: &[String]) -> Result<Self, SetupError> {
        Self::for_engines(label_keys, false)
    }

    /// With `several_engines`, every series of an engine's carries [`ENGINE_LABEL`].
    pub fn for_engines(label_keys: &[String], several_engines: bool) -> Result<Self, SetupError> {
        let keys = checked_label_keys(label_keys)?;
        let names = keys.iter().map(|k| prometheus_label_name(k));
        let container_labels: Vec<String> = CONTAINER_LABELS
            .iter()
            .map(|l| (*l).to_owned())
            .chain(names)
            .collect();
        let registry = Registry::new();
        let per_engine = PerEngine::new(several_engines)?;
        for c in per_engine.collectors() {
            registry.register(c)?;
        }
        let build_info = f::BUILD_INFO.int_gauge_vec()?;
        build_info
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                option_env!("DEE_GIT_REVISION").unwrap_or("unknown"),
            ])
            .set(1);
        registry.register(Box::new(build_info))?;
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Self {
            containers: ContainerSeries::new(
                several_engines.then(|| ENGINE_LABEL.to_owned()),
                container_labels,
            ),
            several_engines,
            per_engine,
            subscribed: AtomicUsize::new(0),
            firing_now: Arc::default(),
            label_keys: keys,
            registry,
        })
    }

    /// The metrics of the engine called `name` (a name that shows only when several engines
    /// are watched). Its self-metrics are exported from now on, at zero.
    pub fn engine(self: &Arc<Self>, name: &str) -> EngineMetrics {
        let label = self.several_engines.then(|| Arc::<str>::from(name));
        let p = &self.per_engine;
        let values: Vec<&str> = label.as_deref().into_iter().collect();
        EngineMetrics {
            all: self.clone(),
            up: p.up.with_label_values(&values),
            reconnects: p.reconnects.with_label_values(&values),
            last_event_timestamp: p.last_event_timestamp.with_label_values(&values),
            decode_errors: p.decode_errors.with_label_values(&values),
            stream_gaps: p.stream_gaps.with_label_values(&values),
            replayed_events: p.replayed_events.with_label_values(&values),
            reconciled_changes: p.reconciled_changes.with_label_values(&values),
            info_shown: Mutex::new(None),
            label,
        }
    }

    /// How many engines are subscribed to their event stream now.
    pub fn subscribed_engines(&self) -> usize {
        self.subscribed.load(Ordering::Relaxed)
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
        let m = Arc::new(Metrics::new(&[]).expect("metrics"));
        let _engine = m.engine("");
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
