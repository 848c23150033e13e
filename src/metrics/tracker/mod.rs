//! Container state and the rules by which an event changes a metric. Split by concern: applying
//! events (here), series lifetime and expiry (`series`), and what comes from the engine
//! instead of events: the start-up seed, inspect answers, the reconcile after a gap
//! (`reconcile`).
//!
//! The tracker is owned by the event-stream task and changes only through `&mut self`: no locks
//! on the container table, no channels, no I/O. Anything slow (an inspect) is handed back to the
//! caller as a request ([`Tracker::take_inspects`]); its answer comes back later through
//! [`Tracker::apply_inspect`].
//!
//! Series are keyed by their label values (name, image, compose project and service, allow-listed
//! labels), not by container ID: a container recreated under the same name continues its
//! counters. When no container holds a key any more, its series are dropped after the TTL.

mod reconcile;
mod series;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use prometheus::IntCounter;

use super::Metrics;
use super::containers::{Cell, Code, bump};
use super::families::{
    self, CONTAINER_EXEC_DURATION, CONTAINER_HEALTHCHECK_DURATION, CONTAINER_RUN_DURATION,
};
use crate::docker::event::{Event, ObjectType, Verb};
use crate::docker::stream::InspectRequest;
use crate::docker::{AfterExit, ContainerState, Health};

/// Label values longer than this are cut (at a character boundary): a label is
/// attacker-controlled and must not grow memory or scrapes without bound.
pub const MAX_LABEL_VALUE_BYTES: usize = 256;
/// Execs remembered per container between their create/start and their die. An exec that never
/// dies (created, never started) would otherwise be kept until its container goes.
pub const MAX_OPEN_EXECS_PER_CONTAINER: usize = 256;
/// Destroyed containers remembered for [`Tracker::reconcile`]: more than a snapshot's worth
/// of destroys in the time a snapshot takes.
const MAX_DESTROYED_REMEMBERED: usize = 1024;
/// Distinct unknown event kinds we log at `info` once each; after that they are only counted.
const MAX_UNKNOWN_KINDS_LOGGED: usize = 64;

const COMPOSE_PROJECT: &str = "com.docker.compose.project";
const COMPOSE_SERVICE: &str = "com.docker.compose.service";

/// A series' label values, with their hash computed once: the tracker looks series up on
/// every container event, and hashing five strings each time showed in the profile.
#[derive(Clone)]
struct SeriesKey {
    hash: u64,
    values: Arc<[String]>,
}

impl SeriesKey {
    fn new(values: Vec<String>) -> Self {
        use std::hash::BuildHasher;
        // Seeded once per process: label values are chosen by whoever runs containers, and a
        // fixed seed would let them precompute colliding keys.
        static SEED: std::sync::LazyLock<foldhash::fast::RandomState> =
            std::sync::LazyLock::new(Default::default);
        let hash = SEED.hash_one(&values);
        Self {
            hash,
            values: values.into(),
        }
    }
}

impl std::ops::Deref for SeriesKey {
    type Target = [String];
    fn deref(&self) -> &[String] {
        &self.values
    }
}

impl PartialEq for SeriesKey {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash
            && (Arc::ptr_eq(&self.values, &other.values) || self.values == other.values)
    }
}

impl Eq for SeriesKey {}

impl std::hash::Hash for SeriesKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// Maps keyed by engine-made IDs and our own keys: foldhash, seeded per process.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// What "now" is for series expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// The machine's clock: a live stream.
    Wall,
    /// The newest event's time: a replay, where an hour of events may pass in a second.
    Events,
}

pub struct Tracker {
    m: Arc<Metrics>,
    ttl: Duration,
    clock: Clock,
    newest_nano: i64,
    /// The counters of [`families::EVENTS`] by (object, action) index; see `count_event`.
    event_counters: Vec<Option<IntCounter>>,
    containers: FastMap<String, Container>,
    series: FastMap<SeriesKey, Series>,
    /// Whether anyone answers inspects (a live stream does; a replay does not).
    asks_inspects: bool,
    /// Inspects asked for since the caller last took them.
    inspects: Vec<InspectRequest>,
    seq: u64,
    unknown_logged: HashSet<(String, String)>,
    /// Containers destroyed lately, with the `seq` of their destroy: a reconcile whose
    /// snapshot predates the destroy must not bring them back.
    destroyed: VecDeque<(u64, String)>,
}

struct Container {
    key: SeriesKey,
    state: Option<ContainerState>,
    health: Option<Health>,
    healthcheck_command: Option<String>,
    started_nano: Option<i64>,
    has_run: bool,
    /// The newest start and end we know of, from events or the engine: a reconcile counts
    /// only what is newer.
    last_started_nano: Option<i64>,
    last_finished_nano: Option<i64>,
    /// The engine's count of restart-policy restarts, when last asked.
    restart_count: Option<i64>,
    /// What the engine does when its process ends, once an inspect told.
    after_exit: AfterExit,
    execs: FastMap<String, OpenExec>,
    /// `seq` of the last event that set `state` or `health`.
    seq: u64,
}

#[derive(Default)]
struct OpenExec {
    command: Option<String>,
    started_nano: Option<i64>,
}

/// One label set's place in the container series. Counters that alerts use with `increase()`
/// exist from the start at 0, so that their first increment is seen; the rest appear on first
/// use (see [`super::containers::CellData`]).
struct Series {
    /// Containers currently holding this label set (0 or 1 in practice: names are unique).
    live: u32,
    /// When the series go, in the tracker's clock (nanoseconds since the epoch).
    expires_at: Option<i64>,
    id: u64,
    cell: Arc<Cell>,
}

impl Tracker {
    pub fn new(m: Arc<Metrics>, ttl: Duration) -> Self {
        Self {
            m,
            ttl,
            clock: Clock::Wall,
            newest_nano: 0,
            event_counters: vec![None; ObjectType::COUNT * Verb::COUNT],
            containers: FastMap::default(),
            series: FastMap::default(),
            asks_inspects: false,
            inspects: Vec::new(),
            seq: 0,
            unknown_logged: HashSet::new(),
            destroyed: VecDeque::new(),
        }
    }

    /// Ask for inspects, to be taken with [`Self::take_inspects`] and answered.
    pub fn asking_inspects(mut self) -> Self {
        self.asks_inspects = true;
        self
    }

    /// Moves the inspects asked for since the last call into `out`.
    pub fn take_inspects(&mut self, out: &mut Vec<InspectRequest>) {
        out.append(&mut self.inspects);
    }

    /// Expire series by event time instead of the machine's clock.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Applies one event: the one place where an event changes a metric.
    pub fn apply(&mut self, ev: &Event) {
        self.count_event(ev);
        self.m.last_event_timestamp.set(ev.time_nano as f64 / 1e9);
        self.newest_nano = self.newest_nano.max(ev.time_nano);
        if ev.object == ObjectType::Unknown || ev.verb == Verb::Unknown {
            self.log_unknown(ev);
        }
        match ev.object {
            ObjectType::Container => self.apply_container(ev),
            ObjectType::Image => match ev.verb {
                Verb::Pull => self
                    .m
                    .image_pulls
                    .with_label_values(&[&image_label(ev)])
                    .inc(),
                Verb::Push => self
                    .m
                    .image_pushes
                    .with_label_values(&[&image_label(ev)])
                    .inc(),
                _ => {}
            },
            _ => {}
        }
    }

    fn apply_container(&mut self, ev: &Event) {
        self.seq += 1;
        let seq = self.seq;
        let id = ev.actor_id();
        if id.is_empty() {
            return;
        }
        let verb = ev.verb;
        if !self.containers.contains_key(id) {
            if verb == Verb::Destroy {
                return;
            }
            // A container we have not seen: created while we were not looking (or the create
            // itself). The event's attributes carry its name, image and labels.
            let name = ev.attr("name").unwrap_or_default();
            let image = ev.attr("image").unwrap_or_default();
            let key = self.key_for(name, image, |k| ev.attr(k));
            self.insert_container(
                id.to_owned(),
                Container {
                    key,
                    state: None,
                    health: None,
                    healthcheck_command: None,
                    started_nano: None,
                    has_run: false,
                    last_started_nano: None,
                    last_finished_nano: None,
                    restart_count: None,
                    after_exit: AfterExit::Unknown,
                    execs: FastMap::default(),
                    seq,
                },
            );
            self.request_inspect(id, seq);
            if verb != Verb::Create {
                tracing::debug!(
                    container = name,
                    action = verb.as_str(),
                    "event for a container not seen before"
                );
            }
        }
        match verb {
            Verb::Create => self.set_state(id, Some(ContainerState::Created)),
            Verb::Start => {
                let (has_run, has_healthcheck) = match self.containers.get_mut(id) {
                    Some(c) => {
                        let has_run = std::mem::replace(&mut c.has_run, true);
                        c.started_nano = Some(ev.time_nano);
                        c.last_started_nano = c.last_started_nano.max(Some(ev.time_nano));
                        (has_run, c.healthcheck_command.is_some())
                    }
                    None => return,
                };
                if let Some(s) = self.series_of(id) {
                    let mut d = s.cell.lock();
                    d.starts += 1;
                    if has_run {
                        d.restarts += 1;
                    }
                }
                self.set_state(id, Some(ContainerState::Running));
                if has_healthcheck {
                    self.set_health(id, Some(Health::Starting));
                }
            }
            Verb::Die => {
                let code = Code::exit(ev.attr("exitCode"));
                let started = self.containers.get_mut(id).and_then(|c| {
                    c.last_finished_nano = c.last_finished_nano.max(Some(ev.time_nano));
                    c.started_nano.take()
                });
                let run_seconds = match (started, ev.attr("execDuration")) {
                    // Our own start and die times are nanosecond-precise; the engine's
                    // execDuration (newer engines) is whole seconds, so it is the fallback.
                    (Some(start), _) if ev.time_nano >= start => {
                        Some((ev.time_nano - start) as f64 / 1e9)
                    }
                    (_, Some(d)) => d.parse::<f64>().ok().filter(|d| *d >= 0.0),
                    _ => None,
                };
                if let Some(s) = self.series_of(id) {
                    let mut d = s.cell.lock();
                    bump(&mut d.exits, code);
                    if let Some(secs) = run_seconds {
                        d.run_duration
                            .get_or_insert_default()
                            .observe(CONTAINER_RUN_DURATION.buckets, secs);
                    }
                }
                self.set_state(id, Some(ContainerState::Exited));
                self.set_health(id, None);
                // The engine knows whether it will restart the container; ask it, unless its
                // policy (or `--rm`) says it will not.
                let ask = self
                    .containers
                    .get(id)
                    .is_none_or(|c| c.after_exit.may_restart(ev.attr("exitCode")));
                if ask {
                    self.request_inspect(id, seq);
                }
            }
            Verb::Oom => {
                if let Some(s) = self.series_of(id) {
                    s.cell.lock().oom_kills += 1;
                }
            }
            Verb::Kill => {
                let signal = Code::signal(ev.attr("signal"));
                if let Some(s) = self.series_of(id) {
                    bump(&mut s.cell.lock().kills, signal);
                }
            }
            Verb::Pause => self.set_state(id, Some(ContainerState::Paused)),
            Verb::Unpause => self.set_state(id, Some(ContainerState::Running)),
            Verb::Destroy => self.remove_container(id),
            Verb::Rename => self.rename(id, ev),
            Verb::HealthStatus => {
                if let Some(h) = ev.action_detail().and_then(Health::parse) {
                    self.set_health(id, Some(h));
                }
            }
            Verb::ExecCreate | Verb::ExecStart => {
                let Some(exec_id) = ev.attr("execID") else {
                    return;
                };
                let Some(c) = self.containers.get_mut(id) else {
                    return;
                };
                if !c.execs.contains_key(exec_id) && c.execs.len() >= MAX_OPEN_EXECS_PER_CONTAINER {
                    tracing::debug!(
                        container = ev.attr("name"),
                        "too many open execs; forgetting them"
                    );
                    c.execs.clear();
                }
                let exec = c.execs.entry(exec_id.to_owned()).or_default();
                if exec.command.is_none() {
                    exec.command = ev.action_detail().map(str::to_owned);
                }
                if verb == Verb::ExecStart {
                    exec.started_nano = Some(ev.time_nano);
                }
            }
            Verb::ExecDie => self.exec_died(id, ev),
            _ => {}
        }
    }

    fn exec_died(&mut self, id: &str, ev: &Event) {
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        let exec = ev
            .attr("execID")
            .and_then(|e| c.execs.remove(e))
            .unwrap_or_default();
        let probe = exec.command.is_some() && exec.command == c.healthcheck_command;
        let seconds = exec
            .started_nano
            .filter(|s| ev.time_nano >= *s)
            .map(|s| (ev.time_nano - s) as f64 / 1e9);
        let Some(s) = self.series.get(&c.key) else {
            return;
        };
        let mut d = s.cell.lock();
        if probe {
            let h = d.health.get_or_insert_default();
            if ev.attr("exitCode") == Some("0") {
                h.success += 1;
            } else {
                h.failure += 1;
            }
            if let Some(secs) = seconds {
                h.duration
                    .observe(CONTAINER_HEALTHCHECK_DURATION.buckets, secs);
            }
        } else {
            bump(&mut d.execs, Code::exit(ev.attr("exitCode")));
            if let Some(secs) = seconds {
                d.exec_duration
                    .get_or_insert_default()
                    .observe(CONTAINER_EXEC_DURATION.buckets, secs);
            }
        }
    }

    /// [`families::EVENTS`], from a table of counters by (object, action): no label hashing
    /// per event.
    fn count_event(&mut self, ev: &Event) {
        let slot = ev.object.index() * Verb::COUNT + ev.verb.index();
        let m = &self.m;
        self.event_counters[slot]
            .get_or_insert_with(|| {
                m.events
                    .with_label_values(&[ev.object.as_str(), ev.action_label()])
            })
            .inc();
    }

    fn log_unknown(&mut self, ev: &Event) {
        let kind = (ev.type_name().to_owned(), ev.verb().to_owned());
        if self.unknown_logged.len() < MAX_UNKNOWN_KINDS_LOGGED
            && !self.unknown_logged.contains(&kind)
        {
            tracing::info!(
                r#type = %kind.0,
                action = %kind.1,
                counted_in = families::EVENTS.name,
                "event of a kind this build does not know; counted as unknown"
            );
            self.unknown_logged.insert(kind);
        }
    }

    fn request_inspect(&mut self, id: &str, seq: u64) {
        if self.asks_inspects {
            self.inspects.push(InspectRequest {
                id: id.to_owned(),
                seq,
            });
        }
    }
}

fn cap(s: &str) -> String {
    if s.len() <= MAX_LABEL_VALUE_BYTES {
        return s.to_owned();
    }
    let mut end = MAX_LABEL_VALUE_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// The repository a pull or push names, without tag or digest: one series per repository, not
/// per tag or digest, which CI pipelines create without end.
fn image_label(ev: &Event) -> String {
    cap(repository(ev.actor_id()))
}

fn repository(reference: &str) -> &str {
    let no_digest = reference
        .split_once('@')
        .map_or(reference, |(repo, _)| repo);
    match no_digest.rfind(':') {
        // A colon after the last slash starts the tag; one before it is a registry port.
        Some(i) if !no_digest[i..].contains('/') => &no_digest[..i],
        _ => no_digest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::ContainerSnapshot;
    use crate::metrics::families::{
        CONTAINER_EXECS, CONTAINER_EXITS, CONTAINER_HEALTH_STATUS, CONTAINER_HEALTHCHECK_DURATION,
        CONTAINER_HEALTHCHECKS, CONTAINER_OOM_KILLS, CONTAINER_RESTARTS, CONTAINER_RUN_DURATION,
        CONTAINER_STARTS, CONTAINER_STATE,
    };

    fn event(action: &str, id: &str, time_nano: i64, attrs: &[(&str, &str)]) -> Event {
        Event::new(
            "container",
            action,
            id,
            attrs.iter().copied(),
            "local",
            time_nano,
        )
    }

    fn tracker() -> (Tracker, Arc<Metrics>) {
        let m = Arc::new(Metrics::new(&["team".to_owned()]).expect("metrics"));
        (Tracker::new(m.clone(), Duration::from_secs(60)), m)
    }

    /// The IDs of the inspects asked for since the last call.
    fn asked(t: &mut Tracker) -> Vec<String> {
        let mut out = Vec::new();
        t.take_inspects(&mut out);
        out.into_iter().map(|r| r.id).collect()
    }

    /// An inspect at first sight; at a `die` only if the engine may start the container again,
    /// as its create-time inspect said (a container not inspected yet is asked about).
    #[test]
    fn a_die_asks_the_engine_only_when_its_policy_may_restart_it() {
        let (t, _m) = tracker();
        let mut t = t.asking_inspects();
        let with = |after_exit| ContainerSnapshot {
            after_exit,
            ..snap("c1", "web", ContainerState::Created, 0, 0)
        };
        let cases = [
            (Some(AfterExit::Stays), "1", false),
            (Some(AfterExit::Removed), "0", false),
            (Some(AfterExit::RestartsOnFailure), "0", false),
            (Some(AfterExit::RestartsOnFailure), "1", true),
            (Some(AfterExit::Restarts), "0", true),
            (None, "0", true),
        ];
        for (i, (after_exit, code, asks)) in cases.into_iter().enumerate() {
            let id = format!("c{i}");
            let base = 100 * i as i64;
            t.apply(&event("create", &id, base + 1, WEB));
            assert_eq!(asked(&mut t), std::slice::from_ref(&id), "first sight");
            if let Some(after_exit) = after_exit {
                let req = InspectRequest {
                    id: id.clone(),
                    seq: t.seq(),
                };
                t.apply_inspect(
                    &req,
                    &ContainerSnapshot {
                        id: id.clone(),
                        ..with(after_exit)
                    },
                );
            }
            t.apply(&event("start", &id, base + 2, WEB));
            t.apply(&event(
                "die",
                &id,
                base + 3,
                &[("name", "web"), ("exitCode", code)],
            ));
            let expected: Vec<String> = if asks { vec![id.clone()] } else { Vec::new() };
            assert_eq!(asked(&mut t), expected, "{after_exit:?} exit {code}");
            t.apply(&event("destroy", &id, base + 4, WEB));
        }
    }

    const WEB: &[(&str, &str)] = &[("name", "web"), ("image", "nginx"), ("team", "a")];

    /// The value of `metric{<web's labels>[,extra]}` in the exposition, if that series exists.
    fn value(m: &Metrics, metric: &str, extra: Option<(&str, &str)>) -> Option<f64> {
        let extra = extra.map_or(String::new(), |(k, v)| format!(",{k}=\"{v}\""));
        let prefix = format!(
            "{metric}{{name=\"web\",image=\"nginx\",compose_project=\"\",compose_service=\"\",label_team=\"a\"{extra}}} "
        );
        let text = m.encode();
        let line = text.lines().find(|l| l.starts_with(&prefix))?;
        line[prefix.len()..].parse().ok()
    }

    #[test]
    fn second_start_is_a_restart() {
        let (mut t, m) = tracker();
        t.apply(&event("create", "c1", 1, WEB));
        t.apply(&event("start", "c1", 2, WEB));
        assert_eq!(value(&m, CONTAINER_RESTARTS.name, None), Some(0.0));
        t.apply(&event(
            "die",
            "c1",
            3_000_000_002,
            &[("name", "web"), ("exitCode", "1")],
        ));
        t.apply(&event("start", "c1", 4_000_000_000, WEB));
        assert_eq!(value(&m, CONTAINER_STARTS.name, None), Some(2.0));
        assert_eq!(value(&m, CONTAINER_RESTARTS.name, None), Some(1.0));
        let run = format!("{}_count", CONTAINER_RUN_DURATION.name);
        assert_eq!(value(&m, &run, None), Some(1.0));
        let run = format!("{}_sum", CONTAINER_RUN_DURATION.name);
        assert_eq!(value(&m, &run, None), Some(3.0));
        assert_eq!(
            value(&m, CONTAINER_EXITS.name, Some(("exit_code", "1"))),
            Some(1.0)
        );
        assert_eq!(
            value(&m, CONTAINER_STATE.name, Some(("state", "running"))),
            Some(1.0)
        );
        assert_eq!(
            value(&m, CONTAINER_STATE.name, Some(("state", "exited"))),
            Some(0.0)
        );
    }

    #[test]
    fn probe_execs_count_as_healthchecks_not_execs() {
        let (mut t, m) = tracker();
        t.seed(
            &ContainerSnapshot {
                id: "c1".into(),
                name: "web".into(),
                image: "nginx".into(),
                labels: [("team".to_owned(), "a".to_owned())].into(),
                state: Some(ContainerState::Running),
                health: Some(Health::Starting),
                healthcheck_command: Some("/bin/sh -c true".into()),
                started_at_nano: Some(1),
                finished_at_nano: None,
                exit_code: Some(0),
                oom_killed: false,
                restart_count: 0,
                after_exit: AfterExit::Stays,
            },
            10,
        );
        let probe = [("name", "web"), ("execID", "p1")];
        t.apply(&event("exec_create: /bin/sh -c true", "c1", 20, &probe));
        t.apply(&event("exec_start: /bin/sh -c true", "c1", 30, &probe));
        t.apply(&event(
            "exec_die",
            "c1",
            50_000_030,
            &[("execID", "p1"), ("exitCode", "0")],
        ));
        let user = [("name", "web"), ("execID", "u1")];
        t.apply(&event("exec_create: sh -c exit 3", "c1", 60, &user));
        t.apply(&event("exec_start: sh -c exit 3", "c1", 70, &user));
        t.apply(&event(
            "exec_die",
            "c1",
            80,
            &[("execID", "u1"), ("exitCode", "3")],
        ));
        t.apply(&event("health_status: healthy", "c1", 90, WEB));
        let result = |r| Some(("result", r));
        assert_eq!(
            value(&m, CONTAINER_HEALTHCHECKS.name, result("success")),
            Some(1.0)
        );
        assert_eq!(
            value(&m, CONTAINER_HEALTHCHECKS.name, result("failure")),
            Some(0.0)
        );
        let probe_sum = format!("{}_sum", CONTAINER_HEALTHCHECK_DURATION.name);
        assert_eq!(value(&m, &probe_sum, None), Some(0.05));
        assert_eq!(
            value(&m, CONTAINER_EXECS.name, Some(("exit_code", "3"))),
            Some(1.0)
        );
        assert_eq!(
            value(&m, CONTAINER_EXECS.name, Some(("exit_code", "0"))),
            None,
            "an exit code appears with its first exec"
        );
        let status = |s| Some(("status", s));
        assert_eq!(
            value(&m, CONTAINER_HEALTH_STATUS.name, status("healthy")),
            Some(1.0)
        );
        assert_eq!(
            value(&m, CONTAINER_HEALTH_STATUS.name, status("starting")),
            Some(0.0)
        );
    }

    #[test]
    fn series_of_a_destroyed_container_expire_after_the_ttl() {
        let (t, m) = tracker();
        let mut t = t.with_clock(Clock::Events);
        let s = 1_000_000_000;
        t.apply(&event("create", "c1", s, WEB));
        t.apply(&event("die", "c1", 2 * s, &[("exitCode", "0")]));
        t.apply(&event("destroy", "c1", 3 * s, WEB));
        t.apply(&event("create", "other", 62 * s, &[("name", "other")]));
        t.sweep();
        assert!(
            m.encode().contains("docker_container_exits_total{"),
            "kept until the TTL"
        );
        t.apply(&event("start", "other", 64 * s, &[("name", "other")]));
        t.sweep();
        let text = m.encode();
        assert!(!text.contains("name=\"web\""), "{text}");
        assert_eq!(t.series_count(), 1, "only the live container's");
    }

    fn snap(
        id: &str,
        name: &str,
        state: ContainerState,
        started: i64,
        finished: i64,
    ) -> ContainerSnapshot {
        ContainerSnapshot {
            id: id.into(),
            name: name.into(),
            image: "nginx".into(),
            labels: [("team".to_owned(), "a".to_owned())].into(),
            state: Some(state),
            health: None,
            healthcheck_command: None,
            started_at_nano: Some(started),
            finished_at_nano: Some(finished),
            exit_code: Some(137),
            oom_killed: true,
            restart_count: 0,
            after_exit: AfterExit::Unknown,
        }
    }

    #[test]
    fn a_reconcile_counts_what_the_gap_hid_and_only_that() {
        let (t, m) = tracker();
        let mut t = t.with_clock(Clock::Events);
        t.seed(&snap("c1", "web", ContainerState::Running, 5, 0), 10);
        t.seed(&snap("gone", "old", ContainerState::Running, 5, 0), 10);
        t.apply(&event("kill", "c1", 20, &[("signal", "15")]));
        // The engine restarted at 30: web was killed (OOM, 137) and its policy restarted it
        // twice, the last start at 40; "old" was removed; "new" was created and exited.
        let mut web = snap("c1", "web", ContainerState::Running, 40, 35);
        web.restart_count = 2;
        let new = snap("c9", "new", ContainerState::Exited, 32, 33);
        let changes = t.reconcile(&[web.clone(), new], 20, 50, t.seq());
        assert_eq!(
            value(&m, CONTAINER_STARTS.name, None),
            Some(2.0),
            "two policy restarts"
        );
        assert_eq!(value(&m, CONTAINER_RESTARTS.name, None), Some(2.0));
        assert_eq!(
            value(&m, CONTAINER_EXITS.name, Some(("exit_code", "137"))),
            Some(1.0),
            "the last exit"
        );
        assert_eq!(value(&m, CONTAINER_OOM_KILLS.name, None), Some(1.0));
        assert_eq!(
            value(&m, CONTAINER_STATE.name, Some(("state", "running"))),
            Some(1.0)
        );
        let text = m.encode();
        assert!(text.contains("docker_container_state{name=\"old\",image=\"nginx\",compose_project=\"\",compose_service=\"\",label_team=\"a\",state=\"running\"} 0\n"), "{text}");
        assert!(text.contains("docker_container_starts_total{name=\"new\",image=\"nginx\",compose_project=\"\",compose_service=\"\",label_team=\"a\"} 1\n"), "{text}");
        assert!(text.contains("docker_container_exits_total{name=\"new\",image=\"nginx\",compose_project=\"\",compose_service=\"\",label_team=\"a\",exit_code=\"137\"} 1\n"), "{text}");
        // old removed, new created + started + exited, web started + exited.
        assert_eq!(changes, 6);
        // The same snapshot again finds nothing new: nothing is counted twice.
        assert_eq!(
            t.reconcile(&[web], 20, 50, t.seq()),
            1,
            "only new's removal"
        );
        assert_eq!(value(&m, CONTAINER_STARTS.name, None), Some(2.0));
        // A start after the snapshot is left to its event.
        let mut later = snap("c1", "web", ContainerState::Running, 60, 35);
        later.restart_count = 3;
        assert_eq!(t.reconcile(&[later.clone()], 20, 50, t.seq()), 0);
        assert_eq!(value(&m, CONTAINER_STARTS.name, None), Some(2.0));
        // Events between the snapshot request and its answer win: a container created since
        // stays, one destroyed since does not come back.
        let asked = t.seq();
        t.apply(&event("create", "c7", 55, &[("name", "fresh")]));
        t.apply(&event("destroy", "c1", 56, WEB));
        assert_eq!(t.reconcile(&[later], 20, 50, asked), 0);
        let text = m.encode();
        assert!(text.contains("{name=\"fresh\""), "{text}");
        assert_eq!(
            value(&m, CONTAINER_STATE.name, Some(("state", "running"))),
            Some(0.0)
        );
    }

    #[test]
    fn recreated_name_keeps_its_series() {
        let (mut t, m) = tracker();
        t.apply(&event("create", "c1", 1, WEB));
        t.apply(&event("start", "c1", 2, WEB));
        t.apply(&event("destroy", "c1", 3, WEB));
        t.apply(&event("create", "c2", 4, WEB));
        t.apply(&event("start", "c2", 5, WEB));
        t.sweep();
        assert_eq!(value(&m, CONTAINER_STARTS.name, None), Some(2.0));
        assert_eq!(
            value(&m, CONTAINER_RESTARTS.name, None),
            Some(0.0),
            "a new container is not a restart"
        );
    }

    #[test]
    fn unbounded_values_become_bounded_labels() {
        assert_eq!(Code::exit(Some("137")), Code::exit(Some("137")));
        assert_ne!(Code::exit(Some("137")), Code::OTHER);
        assert_eq!(Code::exit(Some("3221225477")), Code::OTHER);
        assert_eq!(Code::exit(Some("256")), Code::OTHER);
        assert_eq!(Code::exit(None), Code::OTHER);
        assert_ne!(Code::signal(Some("9")), Code::OTHER);
        assert_eq!(Code::signal(Some("65")), Code::OTHER);
        assert_eq!(Code::signal(Some("SIGKILL")), Code::OTHER);
        assert_eq!(repository("127.0.0.1:5000/app:v1"), "127.0.0.1:5000/app");
        assert_eq!(
            repository("127.0.0.1:5000/app@sha256:60ae"),
            "127.0.0.1:5000/app"
        );
        assert_eq!(repository("127.0.0.1:5000/app"), "127.0.0.1:5000/app");
        assert_eq!(repository("nginx:1.25"), "nginx");
        let long = "é".repeat(200);
        assert_eq!(cap(&long).len(), 256);
    }
}
