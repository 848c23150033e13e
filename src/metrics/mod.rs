//! The registry and every metric family we export: names, help, labels and buckets. The
//! [`tracker`] is the one place where an event changes a metric.

pub mod tracker;

use prometheus::{
    Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

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
    pub starts: IntCounterVec,
    pub exits: IntCounterVec,
    pub oom_kills: IntCounterVec,
    pub kills: IntCounterVec,
    pub restarts: IntCounterVec,
    pub run_duration: HistogramVec,
    pub execs: IntCounterVec,
    pub exec_duration: HistogramVec,
    pub healthchecks: IntCounterVec,
    pub healthcheck_duration: HistogramVec,
    pub health_status: IntGaugeVec,
    pub state: IntGaugeVec,
    pub image_pulls: IntCounterVec,
    pub image_pushes: IntCounterVec,
    pub events: IntCounterVec,
    pub engine_info: IntGaugeVec,
    pub up: IntGauge,
    pub reconnects: IntCounter,
    pub last_event_timestamp: Gauge,
    pub decode_errors: IntCounter,
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
        let base: Vec<&str> = CONTAINER_LABELS
            .iter()
            .copied()
            .chain(names.iter().map(String::as_str))
            .collect();
        let with = |extra: &'static str| -> Vec<&str> {
            base.iter().copied().chain(std::iter::once(extra)).collect()
        };
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
        let histogram =
            |name: &str, help: &str, buckets: &[f64]| -> Result<HistogramVec, prometheus::Error> {
                let h = HistogramVec::new(
                    HistogramOpts::new(name, help).buckets(buckets.to_vec()),
                    &base,
                )?;
                registry.register(Box::new(h.clone()))?;
                Ok(h)
            };

        let m = Self {
            starts: counter(CONTAINER_STARTS, "Container start events.", &base)?,
            exits: counter(
                CONTAINER_EXITS,
                "Container die events, by exit code.",
                &with("exit_code"),
            )?,
            oom_kills: counter(CONTAINER_OOM_KILLS, "Container OOM kill events.", &base)?,
            kills: counter(
                CONTAINER_KILLS,
                "Container kill events, by signal number.",
                &with("signal"),
            )?,
            restarts: counter(
                CONTAINER_RESTARTS,
                "Starts of a container that had run before (restart policy or docker restart).",
                &base,
            )?,
            run_duration: histogram(
                CONTAINER_RUN_DURATION,
                "Time from a container's start to its death.",
                RUN_DURATION_BUCKETS,
            )?,
            execs: counter(
                CONTAINER_EXECS,
                "Finished user execs (not healthcheck probes), by exit code.",
                &with("exit_code"),
            )?,
            exec_duration: histogram(
                CONTAINER_EXEC_DURATION,
                "Time from a user exec's start to its end.",
                EXEC_DURATION_BUCKETS,
            )?,
            healthchecks: counter(
                CONTAINER_HEALTHCHECKS,
                "Finished healthcheck probes, by result (success, failure).",
                &with("result"),
            )?,
            healthcheck_duration: histogram(
                CONTAINER_HEALTHCHECK_DURATION,
                "Time from a healthcheck probe's start to its end.",
                HEALTHCHECK_DURATION_BUCKETS,
            )?,
            health_status: gauge(
                CONTAINER_HEALTH_STATUS,
                "1 for the container's current health status, 0 for the others.",
                &with("status"),
            )?,
            state: gauge(
                CONTAINER_STATE,
                "1 for the container's current state, 0 for the others.",
                &with("state"),
            )?,
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
            label_keys: keys,
            registry,
        };
        m.registry.register(Box::new(m.up.clone()))?;
        m.registry.register(Box::new(m.reconnects.clone()))?;
        m.registry
            .register(Box::new(m.last_event_timestamp.clone()))?;
        m.registry.register(Box::new(m.decode_errors.clone()))?;

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

    /// The text exposition of every family.
    pub fn encode(&self) -> String {
        let families = self.registry.gather();
        // Encoding into a String cannot fail: the text encoder only fails on writer errors.
        prometheus::TextEncoder::new()
            .encode_to_string(&families)
            .unwrap_or_default()
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
