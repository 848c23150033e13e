//! Every metric family we export, declared once: name, help, type, labels, buckets. The
//! registry ([`super::Metrics`], the rules layer's metrics in `actions`), the container series'
//! text encoder ([`super::containers`]) and the test that holds docs/metrics.md
//! to this table all read it.

/// A family's Prometheus type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Counter,
    Gauge,
    Histogram,
}

impl Type {
    /// The name the text format and docs/metrics.md use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

/// One metric family.
#[derive(Debug)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Type,
    /// Its own labels. A per-container family carries [`super::CONTAINER_LABELS`] and the
    /// allow-listed `label_*` ones before these.
    pub labels: &'static [&'static str],
    /// Upper bounds of a histogram's buckets, in seconds; empty for the other types.
    pub buckets: &'static [f64],
    /// Kept in the compact container series, not in the registry.
    pub per_container: bool,
}

impl Family {
    const fn new(name: &'static str, kind: Type, help: &'static str) -> Self {
        Self {
            name,
            help,
            kind,
            labels: &[],
            buckets: &[],
            per_container: false,
        }
    }

    const fn container(self) -> Self {
        Self {
            per_container: true,
            ..self
        }
    }

    const fn labels(self, labels: &'static [&'static str]) -> Self {
        Self { labels, ..self }
    }

    const fn buckets(self, buckets: &'static [f64]) -> Self {
        Self { buckets, ..self }
    }
}

use Type::{Counter, Gauge, Histogram};

pub const CONTAINER_STARTS: Family = Family::new(
    "docker_container_starts_total",
    Counter,
    "Container start events.",
)
.container();
pub const CONTAINER_EXITS: Family = Family::new(
    "docker_container_exits_total",
    Counter,
    "Container die events, by exit code.",
)
.container()
.labels(&["exit_code"]);
pub const CONTAINER_OOM_KILLS: Family = Family::new(
    "docker_container_oom_kills_total",
    Counter,
    "Container OOM kill events.",
)
.container();
pub const CONTAINER_KILLS: Family = Family::new(
    "docker_container_kills_total",
    Counter,
    "Container kill events, by signal number.",
)
.container()
.labels(&["signal"]);
pub const CONTAINER_RESTARTS: Family = Family::new(
    "docker_container_restarts_total",
    Counter,
    "Starts of a container that had run before (restart policy or docker restart).",
)
.container();
/// Container run time: from a second to a week.
pub const CONTAINER_RUN_DURATION: Family = Family::new(
    "docker_container_run_duration_seconds",
    Histogram,
    "Time from a container's start to its death.",
)
.container()
.buckets(&[
    1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 10800.0, 21600.0, 43200.0, 86400.0,
    259200.0, 604800.0,
]);
pub const CONTAINER_EXECS: Family = Family::new(
    "docker_container_execs_total",
    Counter,
    "Finished user execs (not healthcheck probes), by exit code.",
)
.container()
.labels(&["exit_code"]);
/// User execs: from 10 ms (a quick `cat`) to an hour (an interactive shell).
pub const CONTAINER_EXEC_DURATION: Family = Family::new(
    "docker_container_exec_duration_seconds",
    Histogram,
    "Time from a user exec's start to its end.",
)
.container()
.buckets(&[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0,
]);
pub const CONTAINER_HEALTHCHECKS: Family = Family::new(
    "docker_container_healthchecks_total",
    Counter,
    "Finished healthcheck probes, by result (success, failure).",
)
.container()
.labels(&["result"]);
/// Healthcheck probes: from 5 ms to a minute (past Docker's default 30 s probe timeout).
pub const CONTAINER_HEALTHCHECK_DURATION: Family = Family::new(
    "docker_container_healthcheck_duration_seconds",
    Histogram,
    "Time from a healthcheck probe's start to its end.",
)
.container()
.buckets(&[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
]);
pub const CONTAINER_HEALTH_STATUS: Family = Family::new(
    "docker_container_health_status",
    Gauge,
    "1 for the container's current health status, 0 for the others.",
)
.container()
.labels(&["status"]);
pub const CONTAINER_STATE: Family = Family::new(
    "docker_container_state",
    Gauge,
    "1 for the container's current state, 0 for the others.",
)
.container()
.labels(&["state"]);
pub const CONTAINER_LAST_EXIT_CODE: Family = Family::new(
    "docker_container_last_exit_code",
    Gauge,
    "Exit code of the container's last exit.",
)
.container();
pub const CONTAINER_LAST_TERMINATION_REASON: Family = Family::new(
    "docker_container_last_termination_reason",
    Gauge,
    "1 for how the container's last run ended (completed, error, oom_killed, killed), 0 for the others.",
)
.container()
.labels(&["reason"]);
pub const CONTAINER_CREATED_TIMESTAMP: Family = Family::new(
    "docker_container_created_timestamp_seconds",
    Gauge,
    "When the container was created, in seconds since the epoch.",
)
.container();
pub const CONTAINER_STARTED_TIMESTAMP: Family = Family::new(
    "docker_container_started_timestamp_seconds",
    Gauge,
    "When the container last started, in seconds since the epoch.",
)
.container();
pub const CONTAINER_FINISHED_TIMESTAMP: Family = Family::new(
    "docker_container_finished_timestamp_seconds",
    Gauge,
    "When the container last exited, in seconds since the epoch.",
)
.container();
pub const CONTAINER_RESTART_COUNT: Family = Family::new(
    "docker_container_restart_count",
    Gauge,
    "The engine's count of restart-policy restarts since the container was last started by hand (docker inspect's RestartCount).",
)
.container();
pub const CONTAINER_INFO: Family = Family::new(
    "docker_container_info",
    Gauge,
    "The container's image ID and restart policy; always 1.",
)
.container()
.labels(&["image_id", "restart_policy"]);
pub const IMAGE_PULLS: Family =
    Family::new("docker_image_pulls_total", Counter, "Image pull events.").labels(&["image"]);
pub const IMAGE_PUSHES: Family =
    Family::new("docker_image_pushes_total", Counter, "Image push events.").labels(&["image"]);
pub const SERVICE_UPDATES: Family = Family::new(
    "docker_service_updates_total",
    Counter,
    "Swarm service updates (spec changes, scaling among them), as managers see them.",
)
.labels(&["service"]);
pub const EVENTS: Family = Family::new(
    "docker_events_total",
    Counter,
    "Every engine event, by object type and action verb.",
)
.labels(&["object", "action"]);
pub const ENGINE_INFO: Family = Family::new(
    "docker_engine_info",
    Gauge,
    "The watched Docker Engine; always 1.",
)
.labels(&["version", "api_version", "os", "arch"]);
pub const BUILD_INFO: Family = Family::new(
    "docker_events_exporter_build_info",
    Gauge,
    "The exporter's version and source revision; always 1.",
)
.labels(&["version", "revision"]);
pub const UP: Family = Family::new(
    "docker_events_exporter_up",
    Gauge,
    "1 while subscribed to the engine's event stream.",
);
pub const RECONNECTS: Family = Family::new(
    "docker_events_exporter_reconnects_total",
    Counter,
    "Re-subscriptions to the event stream after it ended.",
);
pub const LAST_EVENT_TIMESTAMP: Family = Family::new(
    "docker_events_exporter_last_event_timestamp_seconds",
    Gauge,
    "Engine time of the last event, in seconds since the epoch.",
);
pub const DECODE_ERRORS: Family = Family::new(
    "docker_events_exporter_decode_errors_total",
    Counter,
    "Event lines that could not be read as events.",
);
pub const STREAM_GAPS: Family = Family::new(
    "docker_events_exporter_stream_gaps_total",
    Counter,
    "Resubscriptions after which events may have been lost: the engine restarted or no longer held our position.",
);
pub const REPLAYED_EVENTS: Family = Family::new(
    "docker_events_exporter_replayed_events_total",
    Counter,
    "Events the engine replayed after a resubscription that had not been seen before.",
);
pub const RECONCILED_CHANGES: Family = Family::new(
    "docker_events_exporter_reconciled_changes_total",
    Counter,
    "Corrections made from the engine's container list after a gap.",
);
pub const HISTORY_EVENTS: Family = Family::new(
    "docker_events_exporter_history_events",
    Gauge,
    "Events the history holds in memory, every engine's together.",
);
pub const HISTORY_DROPPED: Family = Family::new(
    "docker_events_exporter_history_dropped_total",
    Counter,
    "Events not written to --history.dir: its writer was too far behind, or the disk refused them.",
);
pub const HISTORY_DISK_BYTES: Family = Family::new(
    "docker_events_exporter_history_disk_bytes",
    Gauge,
    "Size of the history's segments in --history.dir.",
);
pub const SINK_EVENTS_SENT: Family = Family::new(
    "docker_events_exporter_sink_events_sent_total",
    Counter,
    "Events a sink's store has taken, by sink (its URL without secrets).",
)
.labels(&["sink"]);
pub const SINK_BATCHES_FAILED: Family = Family::new(
    "docker_events_exporter_sink_batches_failed_total",
    Counter,
    "Batches a sink's store did not take, by reason (network, timeout, throttled, unavailable, no_stream: sent again; rejected: skipped).",
)
.labels(&["sink", "reason"]);
pub const SINK_EVENTS_SKIPPED: Family = Family::new(
    "docker_events_exporter_sink_events_skipped_total",
    Counter,
    "Events a sink will never send, by reason (rejected: the store refused them; retention: deleted from --history.dir before they were sent).",
)
.labels(&["sink", "reason"]);
pub const SINK_LAG: Family = Family::new(
    "docker_events_exporter_sink_lag_seconds",
    Gauge,
    "How far a sink is behind: now minus the time of the oldest event its store has not taken (0 when it has them all).",
)
.labels(&["sink"]);
pub const RULE_MATCHES: Family = Family::new(
    "docker_events_exporter_rule_matches_total",
    Counter,
    "Events matched, by rule.",
)
.labels(&["rule"]);
pub const RULE_RESOLUTIONS: Family = Family::new(
    "docker_events_exporter_rule_resolutions_total",
    Counter,
    "Events that resolved an open firing of a rule (its resolve match), by rule.",
)
.labels(&["rule"]);
pub const RULE_FIRING: Family = Family::new(
    "docker_events_exporter_rule_firing",
    Gauge,
    "Firings of a rule with resolve or a condition open now (waiting for their resolving event or the condition's end), by rule.",
)
.labels(&["rule"]);
pub const RULE_MUTED: Family = Family::new(
    "docker_events_exporter_rule_muted_total",
    Counter,
    "Firings a rule sent nothing for, because their container has the label docker-events-exporter.mute=true or a mute matched them, by rule.",
)
.labels(&["rule"]);
pub const ACTIONS: Family = Family::new(
    "docker_events_exporter_actions_total",
    Counter,
    "Rule actions by outcome (success, failure, timeout, dropped, throttled).",
)
.labels(&["rule", "action", "outcome"]);
/// Actions: from 5 ms to two minutes (past the 30 s run timeout).
pub const ACTION_DURATION: Family = Family::new(
    "docker_events_exporter_action_duration_seconds",
    Histogram,
    "Time an action took to run.",
)
.labels(&["rule", "action"])
.buckets(&[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
]);
pub const CONFIG_RELOAD_OK: Family = Family::new(
    "docker_events_exporter_config_last_reload_successful",
    Gauge,
    "1 if the last load of the rules config succeeded.",
);
pub const CONFIG_RELOAD_TIME: Family = Family::new(
    "docker_events_exporter_config_last_reload_success_timestamp_seconds",
    Gauge,
    "When the rules config last loaded successfully.",
);

/// Every family, in the order docs/metrics.md lists them.
pub const ALL: &[&Family] = &[
    &CONTAINER_STARTS,
    &CONTAINER_EXITS,
    &CONTAINER_OOM_KILLS,
    &CONTAINER_KILLS,
    &CONTAINER_RESTARTS,
    &CONTAINER_RUN_DURATION,
    &CONTAINER_EXECS,
    &CONTAINER_EXEC_DURATION,
    &CONTAINER_HEALTHCHECKS,
    &CONTAINER_HEALTHCHECK_DURATION,
    &CONTAINER_HEALTH_STATUS,
    &CONTAINER_STATE,
    &CONTAINER_LAST_EXIT_CODE,
    &CONTAINER_LAST_TERMINATION_REASON,
    &CONTAINER_CREATED_TIMESTAMP,
    &CONTAINER_STARTED_TIMESTAMP,
    &CONTAINER_FINISHED_TIMESTAMP,
    &CONTAINER_RESTART_COUNT,
    &CONTAINER_INFO,
    &IMAGE_PULLS,
    &IMAGE_PUSHES,
    &SERVICE_UPDATES,
    &EVENTS,
    &ENGINE_INFO,
    &BUILD_INFO,
    &UP,
    &RECONNECTS,
    &LAST_EVENT_TIMESTAMP,
    &DECODE_ERRORS,
    &STREAM_GAPS,
    &REPLAYED_EVENTS,
    &RECONCILED_CHANGES,
    &HISTORY_EVENTS,
    &HISTORY_DROPPED,
    &HISTORY_DISK_BYTES,
    &SINK_EVENTS_SENT,
    &SINK_BATCHES_FAILED,
    &SINK_EVENTS_SKIPPED,
    &SINK_LAG,
    &RULE_MATCHES,
    &RULE_RESOLUTIONS,
    &RULE_MUTED,
    &RULE_FIRING,
    &ACTIONS,
    &ACTION_DURATION,
    &CONFIG_RELOAD_OK,
    &CONFIG_RELOAD_TIME,
];

/// Building a registry family from its declaration. Names, labels and buckets here are fixed
/// and valid, so the prometheus crate's checks cannot fail on them; the `Result` is passed on
/// rather than unwrapped all the same.
impl Family {
    fn opts(&self) -> prometheus::Opts {
        prometheus::Opts::new(self.name, self.help)
    }

    /// Its labels, after an `engine` label when `engine` (several engines are watched).
    fn label_names(&self, engine: bool) -> Vec<&'static str> {
        let first = engine.then_some(super::ENGINE_LABEL);
        first
            .into_iter()
            .chain(self.labels.iter().copied())
            .collect()
    }

    /// A family of one engine's: with an `engine` label first when `engine`.
    pub fn int_counter_vec_by(
        &self,
        engine: bool,
    ) -> prometheus::Result<prometheus::IntCounterVec> {
        prometheus::IntCounterVec::new(self.opts(), &self.label_names(engine))
    }

    /// A family of one engine's: with an `engine` label first when `engine`.
    pub fn int_gauge_vec_by(&self, engine: bool) -> prometheus::Result<prometheus::IntGaugeVec> {
        prometheus::IntGaugeVec::new(self.opts(), &self.label_names(engine))
    }

    /// A family of one engine's: with an `engine` label first when `engine`.
    pub fn gauge_vec_by(&self, engine: bool) -> prometheus::Result<prometheus::GaugeVec> {
        prometheus::GaugeVec::new(self.opts(), &self.label_names(engine))
    }

    pub fn int_counter_vec(&self) -> prometheus::Result<prometheus::IntCounterVec> {
        prometheus::IntCounterVec::new(self.opts(), self.labels)
    }

    pub fn int_counter(&self) -> prometheus::Result<prometheus::IntCounter> {
        prometheus::IntCounter::with_opts(self.opts())
    }

    pub fn int_gauge(&self) -> prometheus::Result<prometheus::IntGauge> {
        prometheus::IntGauge::with_opts(self.opts())
    }

    pub fn int_gauge_vec(&self) -> prometheus::Result<prometheus::IntGaugeVec> {
        prometheus::IntGaugeVec::new(self.opts(), self.labels)
    }

    pub fn gauge(&self) -> prometheus::Result<prometheus::Gauge> {
        prometheus::Gauge::with_opts(self.opts())
    }

    pub fn histogram_vec(&self) -> prometheus::Result<prometheus::HistogramVec> {
        prometheus::HistogramVec::new(
            prometheus::HistogramOpts::new(self.name, self.help).buckets(self.buckets.to_vec()),
            self.labels,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row of a metrics table of docs/metrics.md or docs/rules.md: name, type and labels (the backticked words of the
    /// labels column, outside parentheses, which list a label's values).
    fn readme_rows() -> Vec<(String, String, Vec<String>)> {
        // The metrics reference, and the rules page's table of the rules layer's metrics.
        let pages = [
            include_str!("../../docs/metrics.md"),
            include_str!("../../docs/rules.md"),
        ];
        let mut rows = Vec::new();
        for line in pages.iter().flat_map(|p| p.lines()) {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            // | `name` | type | labels | meaning |
            if cells.len() < 5 || !cells[1].starts_with("`docker_") {
                continue;
            }
            let name = cells[1].trim_matches('`').to_owned();
            let mut labels_text = String::new();
            let mut depth = 0;
            for c in cells[3].chars() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ if depth == 0 => labels_text.push(c),
                    _ => {}
                }
            }
            let labels = labels_text
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect();
            rows.push((name, cells[2].to_owned(), labels));
        }
        rows
    }

    #[test]
    fn the_readme_metrics_reference_lists_every_family_as_declared() {
        let rows = readme_rows();
        let table: Vec<(String, String, Vec<String>)> = ALL
            .iter()
            .map(|f| {
                (
                    f.name.to_owned(),
                    f.kind.as_str().to_owned(),
                    f.labels.iter().map(|l| (*l).to_owned()).collect(),
                )
            })
            .collect();
        for row in &rows {
            assert!(
                table.contains(row),
                "docs/metrics.md row {row:?} is not in the family table"
            );
        }
        for family in &table {
            assert!(
                rows.contains(family),
                "family {family:?} is not in docs/metrics.md or docs/rules.md"
            );
        }
        assert_eq!(
            rows.len(),
            ALL.len(),
            "a family listed twice in docs/metrics.md"
        );
    }

    #[test]
    fn names_are_unique_and_types_follow_the_conventions() {
        for (i, f) in ALL.iter().enumerate() {
            assert!(
                ALL[i + 1..].iter().all(|g| g.name != f.name),
                "{} twice",
                f.name
            );
            assert_eq!(
                f.name.ends_with("_total"),
                f.kind == Type::Counter,
                "{}: _total on counters only",
                f.name
            );
            assert_eq!(
                f.buckets.is_empty(),
                f.kind != Type::Histogram,
                "{}: buckets on histograms only",
                f.name
            );
        }
    }
}
