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
mod unnamed_execs;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use prometheus::IntCounter;

use super::containers::{Cell, Code, Info, Lifecycle, Termination, bump};
use super::families::{
    self, CONTAINER_EXEC_DURATION, CONTAINER_HEALTHCHECK_DURATION, CONTAINER_RUN_DURATION,
};
use super::{EngineMetrics, Metrics};
use crate::docker::event::{Event, ObjectType, Verb};
use crate::docker::stream::InspectRequest;
use crate::docker::{AfterExit, ContainerSnapshot, ContainerState, Health, kill_ends_run};
use unnamed_execs::{Died, UnnamedExecs};

/// Label values longer than this are cut (at a character boundary): a label is
/// attacker-controlled and must not grow memory or scrapes without bound.
pub const MAX_LABEL_VALUE_BYTES: usize = 256;
/// Execs remembered per container between their create/start and their die. An exec that never
/// dies (created, never started) would otherwise be kept until its container goes.
pub const MAX_OPEN_EXECS_PER_CONTAINER: usize = 256;
/// Destroyed containers remembered for [`Tracker::reconcile`]: more than a snapshot's worth
/// of destroys in the time a snapshot takes.
const MAX_DESTROYED_REMEMBERED: usize = 1024;
/// How long a container may stay `restarting` before the engine is asked about it again. The
/// restart policy waits at most a minute between restarts (its delay doubles from 100 ms up to
/// a minute); a restart that fails (a bind mount's source gone, say) leaves the container
/// `exited` without any event.
pub const RESTART_OVERDUE: Duration = Duration::from_secs(90);
/// Distinct unknown event kinds we log at `info` once each; after that they are only counted.
const MAX_UNKNOWN_KINDS_LOGGED: usize = 64;

const COMPOSE_PROJECT: &str = "com.docker.compose.project";
const COMPOSE_SERVICE: &str = "com.docker.compose.service";
const SWARM_SERVICE: &str = "com.docker.swarm.service.name";
const SWARM_TASK_NAME: &str = "com.docker.swarm.task.name";
const SWARM_TASK_ID: &str = "com.docker.swarm.task.id";
const SWARM_STACK: &str = "com.docker.stack.namespace";

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
    m: EngineMetrics,
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
    /// What its lifecycle gauges show. Its start and finish times are the newest we know of,
    /// from events or the engine (a reconcile counts only what is newer); its restart count is
    /// the engine's, when last asked.
    life: Lifecycle,
    /// The engine time of the newest start or exit behind `life.restart_count`: inspects are
    /// answered out of order, and an older answer must not undo a newer one.
    count_as_of: i64,
    /// Since its last start: a kill that ends a run, an OOM kill.
    killed: bool,
    oom_killed: bool,
    /// Since when it is `restarting` (or last asked about it), in the tracker's clock.
    restarting_since: Option<i64>,
    /// What the engine does when its process ends, once an inspect told.
    after_exit: AfterExit,
    execs: FastMap<String, OpenExec>,
    /// Execs and probes whose events carry no ID (Podman's).
    unnamed_execs: UnnamedExecs,
    /// When it died with 137, no OOM event and no kill seen: Podman sends no `oom` event, and
    /// only its inspect tells an OOM kill.
    oom_unknown_since: Option<i64>,
    /// A Swarm task: a new one in a slot whose last task ended on its own is a restart.
    swarm_task: bool,
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
    /// Containers currently holding this label set: 0 or 1 but for Swarm, whose slot keeps
    /// its last few tasks' exited containers beside the running one.
    live: u32,
    /// The container whose state, health and lifecycle the gauges show: the newest to be
    /// created or started under this label set.
    owner: Option<String>,
    /// Whether the owner's last run ended on its own (no kill): a Swarm task that replaces it
    /// is then a restart of the slot, where one after a kill (a service update, a scale-down)
    /// is not.
    ended_on_own: bool,
    /// When the series go, in the tracker's clock (nanoseconds since the epoch).
    expires_at: Option<i64>,
    id: u64,
    cell: Arc<Cell>,
}

impl Series {
    /// Whether the container's gauges are what these series show (see `Tracker::own`).
    fn owned_by(&self, id: &str) -> bool {
        self.owner.as_deref() == Some(id)
    }
}

impl Tracker {
    /// The tracker of an exporter's only engine.
    pub fn new(m: Arc<Metrics>, ttl: Duration) -> Self {
        Self::for_engine(m.engine(""), ttl)
    }

    /// The tracker of one of the engines that `m`'s metrics are of.
    pub fn for_engine(m: EngineMetrics, ttl: Duration) -> Self {
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

    /// The metrics of the tracker's engine.
    pub fn metrics(&self) -> &EngineMetrics {
        &self.m
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
                Verb::Pull => self.m.image_pulls(&image_label(ev)).inc(),
                Verb::Push => self.m.image_pushes(&image_label(ev)).inc(),
                _ => {}
            },
            // A spec change; the update's progress (`updatestate.new`) is not another one.
            ObjectType::Service
                if ev.verb == Verb::Update && ev.attr("updatestate.new").is_none() =>
            {
                self.m
                    .service_updates(&cap(ev.attr("name").unwrap_or_default()))
                    .inc();
            }
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
            let created = verb == Verb::Create;
            let swarm_task = ev.attr(SWARM_SERVICE).is_some();
            // Of the engine's restart count only inspects tell (a replay has none).
            let count_known = created && self.asks_inspects;
            self.insert_container(
                id.to_owned(),
                Container {
                    key,
                    state: None,
                    health: None,
                    healthcheck_command: None,
                    started_nano: None,
                    has_run: false,
                    // A new container: created now, never restarted. Of one created unseen,
                    // the inspect asked for below tells.
                    life: Lifecycle {
                        created_nano: created.then_some(ev.time_nano),
                        restart_count: count_known.then_some(0),
                        ..Lifecycle::default()
                    },
                    count_as_of: 0,
                    killed: false,
                    oom_killed: false,
                    restarting_since: None,
                    after_exit: AfterExit::Unknown,
                    execs: FastMap::default(),
                    unnamed_execs: UnnamedExecs::default(),
                    oom_unknown_since: None,
                    swarm_task,
                    seq,
                },
            );
            self.own(id);
            self.publish_life(id);
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
                let (has_run, has_healthcheck, by_hand, swarm_task) =
                    match self.containers.get_mut(id) {
                        Some(c) => {
                            let has_run = std::mem::replace(&mut c.has_run, true);
                            c.started_nano = Some(ev.time_nano);
                            c.life.started_nano = c.life.started_nano.max(Some(ev.time_nano));
                            c.killed = false;
                            c.oom_killed = false;
                            c.unnamed_execs.run_ended();
                            c.oom_unknown_since = None;
                            // A start not out of `restarting` may be a person's `docker start` or
                            // `docker restart`, which sets the engine's restart count back to 0.
                            let by_hand = has_run
                                && c.state != Some(ContainerState::Restarting)
                                && c.after_exit.may_restart(None);
                            (
                                has_run,
                                c.healthcheck_command.is_some(),
                                by_hand,
                                c.swarm_task,
                            )
                        }
                        None => return,
                    };
                // A Swarm task's first start replaces the slot's last task: a restart if that
                // one ended on its own.
                let replaces =
                    !has_run && swarm_task && self.series_of(id).is_some_and(|s| s.ended_on_own);
                self.own(id);
                if let Some(s) = self.series_mut(id) {
                    s.ended_on_own = false;
                    let mut d = s.cell.lock();
                    d.starts += 1;
                    if has_run || replaces {
                        d.restarts += 1;
                    }
                }
                self.publish_life(id);
                if by_hand {
                    self.request_inspect(id, seq);
                }
                self.set_state(id, Some(ContainerState::Running));
                if has_healthcheck {
                    self.set_health(id, Some(Health::Starting));
                }
            }
            Verb::Die => {
                // An engine that names an OOM kill on the die rather than in an `oom` event
                // before it.
                if ev.attr("oomKilled") == Some("true")
                    && self.containers.get(id).is_some_and(|c| !c.oom_killed)
                {
                    self.oom_killed(id);
                }
                let exit_attr = ev.attr("exitCode");
                let code = Code::exit(exit_attr);
                let Some(c) = self.containers.get_mut(id) else {
                    return;
                };
                c.life.finished_nano = c.life.finished_nano.max(Some(ev.time_nano));
                c.unnamed_execs.run_ended();
                // -1, as the engine writes an exit code it could not tell.
                let exit_code = exit_attr.and_then(|c| c.parse().ok()).unwrap_or(-1);
                let reason = Termination::of(exit_code, c.oom_killed, c.killed);
                c.life.last_exit = Some((exit_code, reason));
                let started = c.started_nano.take();
                let on_own = !c.killed;
                // Whether the kernel killed it, where no event said so: the engine's inspect
                // tells (see `oom_unknown_since`).
                let oom_unknown = exit_attr == Some("137") && !c.oom_killed && !c.killed;
                c.oom_unknown_since = oom_unknown.then_some(ev.time_nano);
                // The engine knows whether it will restart the container; ask it, unless its
                // policy (or `--rm`) says it will not.
                let ask = c.after_exit.may_restart(exit_attr) || oom_unknown;
                self.publish_life(id);
                let run_seconds = match (started, ev.attr("execDuration")) {
                    // Our own start and die times are nanosecond-precise; the engine's
                    // execDuration (newer engines) is whole seconds, so it is the fallback.
                    (Some(start), _) if ev.time_nano >= start => {
                        Some((ev.time_nano - start) as f64 / 1e9)
                    }
                    (_, Some(d)) => d.parse::<f64>().ok().filter(|d| *d >= 0.0),
                    _ => None,
                };
                if let Some(s) = self.series_mut(id) {
                    if s.owned_by(id) {
                        s.ended_on_own = on_own;
                    }
                    let mut d = s.cell.lock();
                    bump(&mut d.exits, code);
                    if on_own && exit_code != 0 {
                        d.crash_exits.push(ev.time_nano);
                    }
                    if let Some(secs) = run_seconds {
                        d.run_duration
                            .get_or_insert_default()
                            .observe(CONTAINER_RUN_DURATION.buckets, secs);
                    }
                }
                self.set_state(id, Some(ContainerState::Exited));
                self.set_health(id, None);
                if ask {
                    self.request_inspect(id, seq);
                }
            }
            Verb::Oom => self.oom_killed(id),
            // Podman stops a container with a `stop` before its die (Docker sends its `stop`
            // after the die, and a kill before it).
            Verb::Stop => {
                if let Some(c) = self.containers.get_mut(id)
                    && c.state == Some(ContainerState::Running)
                {
                    c.killed = true;
                }
            }
            Verb::Kill => {
                if let Some(c) = self.containers.get_mut(id) {
                    c.killed |= kill_ends_run(ev.attr("signal"));
                }
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
                // Podman's (a bare `health_status`) comes as a probe begins; Docker's after
                // it, and its probe's exec events carry their ID.
                if ev.action_detail().is_none()
                    && let Some(c) = self.containers.get_mut(id)
                {
                    c.unnamed_execs.probe_began(ev.time_nano);
                }
                if let Some(h) = ev.health_status().and_then(Health::parse) {
                    self.set_health(id, Some(h));
                }
            }
            Verb::ExecCreate | Verb::ExecStart => {
                let Some(c) = self.containers.get_mut(id) else {
                    return;
                };
                let Some(exec_id) = ev.attr("execID") else {
                    if verb == Verb::ExecStart {
                        c.unnamed_execs.exec_began(ev.time_nano);
                    }
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
        let (probe, started_nano) = match ev.attr("execID") {
            Some(exec_id) => {
                let exec = c.execs.remove(exec_id).unwrap_or_default();
                let probe = exec.command.is_some() && exec.command == c.healthcheck_command;
                (probe, exec.started_nano)
            }
            None => match c.unnamed_execs.died(ev.exit_code(), ev.time_nano) {
                Died::Probe { since } => (true, Some(since)),
                Died::Exec { since } => (false, since),
                Died::SecondWrite => return,
            },
        };
        // Podman's `health_status` comes as a probe starts, with the status before it: what
        // the probe made of it, only an inspect tells.
        let ask_health = probe && ev.attr("execID").is_none();
        let seconds = started_nano
            .filter(|s| ev.time_nano >= *s)
            .map(|s| (ev.time_nano - s) as f64 / 1e9);
        let Some(s) = self.series.get(&c.key) else {
            return;
        };
        let exit_code = ev.exit_code();
        let mut d = s.cell.lock();
        if probe {
            let h = d.health.get_or_insert_default();
            if exit_code == Some("0") {
                h.success += 1;
            } else {
                h.failure += 1;
            }
            if let Some(secs) = seconds {
                h.duration
                    .observe(CONTAINER_HEALTHCHECK_DURATION.buckets, secs);
            }
        } else {
            bump(&mut d.execs, Code::exit(exit_code));
            if let Some(secs) = seconds {
                d.exec_duration
                    .get_or_insert_default()
                    .observe(CONTAINER_EXEC_DURATION.buckets, secs);
            }
        }
        drop(d);
        if ask_health {
            let seq = self.seq;
            self.request_inspect(id, seq);
        }
    }

    /// The kernel's OOM killer ended the container's run: an `oom` event, an `oomKilled` on
    /// the die, or (for Podman) an inspect after it.
    fn oom_killed(&mut self, id: &str) {
        if let Some(c) = self.containers.get_mut(id) {
            c.oom_killed = true;
            c.oom_unknown_since = None;
            // The engine sends it before the `die`; should one come after, it is still this
            // run's.
            if c.state == Some(ContainerState::Exited)
                && let Some((_, reason)) = &mut c.life.last_exit
            {
                *reason = Termination::OomKilled;
            }
        }
        self.publish_life(id);
        if let Some(s) = self.series_of(id) {
            s.cell.lock().oom_kills += 1;
        }
    }

    /// [`families::EVENTS`], from a table of counters by (object, action): no label hashing
    /// per event.
    fn count_event(&mut self, ev: &Event) {
        let slot = ev.object.index() * Verb::COUNT + ev.verb.index();
        let m = &self.m;
        self.event_counters[slot]
            .get_or_insert_with(|| m.events(ev.object.as_str(), ev.action_label()))
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

    /// Asks the engine about containers `restarting` for longer than [`RESTART_OVERDUE`]:
    /// their restart failed, or its event was lost.
    pub fn ask_overdue_restarts(&mut self) {
        if !self.asks_inspects {
            return;
        }
        let now = self.now_nano();
        let overdue = i64::try_from(RESTART_OVERDUE.as_nanos()).unwrap_or(i64::MAX);
        let mut due = Vec::new();
        for (id, c) in &mut self.containers {
            if let Some(since) = &mut c.restarting_since
                && now.saturating_sub(*since) >= overdue
            {
                *since = now;
                due.push(id.clone());
            }
        }
        let seq = self.seq;
        for id in due {
            tracing::debug!(container = %self.containers[&id].key[0], "restarting for long; asking the engine");
            self.request_inspect(&id, seq);
        }
    }

    /// Shows the container's lifecycle in its series.
    fn publish_life(&self, id: &str) {
        let Some(c) = self.containers.get(id) else {
            return;
        };
        if let Some(s) = self.series.get(&c.key)
            && s.owned_by(id)
        {
            s.cell.lock().life.clone_from(&c.life);
        }
    }

    /// Learns the lifecycle from what the engine says of the container: its times, its
    /// restart count and policy, and an exit newer than any we saw (its reason as the inspect
    /// and the engine's held events tell it).
    fn learn_life(&mut self, id: &str, snap: &ContainerSnapshot) {
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        let life = &mut c.life;
        if snap.created_at_nano.is_some() {
            life.created_nano = snap.created_at_nano;
        }
        if let (Some(finished), Some(code)) = (snap.finished_at_nano, snap.exit_code)
            && life.finished_nano.is_none_or(|known| finished > known)
        {
            let reason = Termination::from_inspect(code, snap.oom_killed, snap.last_exit_killed);
            life.last_exit = Some((code, reason));
        }
        life.started_nano = life.started_nano.max(snap.started_at_nano);
        life.finished_nano = life.finished_nano.max(snap.finished_at_nano);
        let as_of = snap.started_at_nano.max(snap.finished_at_nano).unwrap_or(0);
        if as_of >= c.count_as_of {
            c.count_as_of = as_of;
            life.restart_count = Some(snap.restart_count);
        }
        life.info = Some(Info {
            image_id: cap(&snap.image_id).into(),
            restart_policy: snap.restart_policy,
        });
        self.publish_life(id);
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
mod tests;
