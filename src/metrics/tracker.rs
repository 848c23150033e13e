//! Container state and the rules by which an event changes a metric.
//!
//! The tracker is owned by the event-stream task and changes only through `&mut self`: no locks
//! on the container table. Anything slow (an inspect) is asked for through a bounded queue and
//! comes back later through [`Tracker::apply_inspect`].
//!
//! Series are keyed by their label values (name, image, compose project and service, allow-listed
//! labels), not by container ID: a container recreated under the same name continues its
//! counters. When no container holds a key any more, its series are dropped after the TTL.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::IntCounter;
use tokio::sync::mpsc;

use super::Metrics;
use super::containers::{Cell, Code, bump};
use super::{EXEC_DURATION_BUCKETS, HEALTHCHECK_DURATION_BUCKETS, RUN_DURATION_BUCKETS};
use crate::docker::event::{Event, ObjectType, Verb};
use crate::docker::{ContainerSnapshot, ContainerState, Health};

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

/// Ask for an inspect of a container; `seq` is the tracker's event count when asked, so that
/// an answer older than a later event does not overwrite what that event set.
#[derive(Debug, Clone)]
pub struct InspectRequest {
    pub id: String,
    pub seq: u64,
}

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
    /// `docker_events_total` by (object, action) index; see `count_event`.
    event_counters: Vec<Option<IntCounter>>,
    containers: FastMap<String, Container>,
    series: FastMap<SeriesKey, Series>,
    inspect_tx: Option<mpsc::Sender<InspectRequest>>,
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
    pub fn new(
        m: Arc<Metrics>,
        ttl: Duration,
        inspect_tx: Option<mpsc::Sender<InspectRequest>>,
    ) -> Self {
        Self {
            m,
            ttl,
            clock: Clock::Wall,
            newest_nano: 0,
            event_counters: vec![None; ObjectType::COUNT * Verb::COUNT],
            containers: FastMap::default(),
            series: FastMap::default(),
            inspect_tx,
            seq: 0,
            unknown_logged: HashSet::new(),
            destroyed: VecDeque::new(),
        }
    }

    /// Expire series by event time instead of the machine's clock.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    fn now_nano(&self) -> i64 {
        match self.clock {
            Clock::Events => self.newest_nano,
            Clock::Wall => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
        }
    }

    /// Seeds a container found at start-up. `since_nano` is where the subscription starts: a
    /// start at or after it will be replayed as an event, so it does not count as "has run".
    pub fn seed(&mut self, snap: &ContainerSnapshot, since_nano: i64) {
        let key = self.key_for(&snap.name, &snap.image, |k| {
            snap.labels.get(k).map(String::as_str)
        });
        let before = |t: Option<i64>| t.is_some_and(|t| t < since_nano);
        let has_run = before(snap.started_at_nano) || before(snap.finished_at_nano);
        let running = matches!(
            snap.state,
            Some(ContainerState::Running | ContainerState::Paused)
        );
        let c = Container {
            key,
            state: None,
            health: None,
            healthcheck_command: None,
            started_nano: if running { snap.started_at_nano } else { None },
            has_run,
            last_started_nano: snap.started_at_nano,
            last_finished_nano: snap.finished_at_nano,
            restart_count: Some(snap.restart_count),
            execs: FastMap::default(),
            seq: 0,
        };
        self.insert_container(snap.id.clone(), c);
        self.set_healthcheck(&snap.id, snap.healthcheck_command.clone());
        self.set_state(&snap.id, snap.state);
        let health = if running { snap.health } else { None };
        self.set_health(&snap.id, health);
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
                            .observe(RUN_DURATION_BUCKETS, secs);
                    }
                }
                self.set_state(id, Some(ContainerState::Exited));
                self.set_health(id, None);
                // The engine knows whether it will restart the container; ask it.
                self.request_inspect(id, seq);
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
                h.duration.observe(HEALTHCHECK_DURATION_BUCKETS, secs);
            }
        } else {
            bump(&mut d.execs, Code::exit(ev.attr("exitCode")));
            if let Some(secs) = seconds {
                d.exec_duration
                    .get_or_insert_default()
                    .observe(EXEC_DURATION_BUCKETS, secs);
            }
        }
    }

    /// Applies an inspect that was asked for at `req.seq`: the healthcheck command always; state
    /// and health only if no event changed them since the request.
    pub fn apply_inspect(&mut self, req: &InspectRequest, snap: &ContainerSnapshot) {
        let Some(c) = self.containers.get_mut(&req.id) else {
            return;
        };
        let fresh = c.seq <= req.seq;
        let running = c.state == Some(ContainerState::Running);
        c.restart_count = Some(snap.restart_count);
        c.last_started_nano = c.last_started_nano.max(snap.started_at_nano);
        c.last_finished_nano = c.last_finished_nano.max(snap.finished_at_nano);
        let missing_health = c.health.is_none();
        self.set_healthcheck(&req.id, snap.healthcheck_command.clone());
        // A transient state (removing, stopping) leaves the last known one in place.
        if fresh && snap.state.is_some() {
            self.set_state(&req.id, snap.state);
        }
        // Learning only now that a running container has a healthcheck: show what the engine says.
        if fresh || (running && missing_health) {
            let running = matches!(
                snap.state,
                Some(ContainerState::Running | ContainerState::Paused)
            );
            self.set_health(&req.id, if running { snap.health } else { None });
        }
    }

    /// Brings the tracker in line with the engine after a gap in the events: `snaps` is every
    /// container, listed at engine time `snapshot_nano`; `position_nano` is where our events
    /// stopped. Corrects state and health, forgets removed containers, learns new ones, and
    /// counts the transitions the events missed where the engine still tells them: the last
    /// start and last exit (with its exit code and OOM kill) of each container, and its restart
    /// policy's restarts. Transitions after `snapshot_nano` are left to their events, which the
    /// subscription delivers. Returns how many changes it made; logs each one.
    pub fn reconcile(
        &mut self,
        snaps: &[ContainerSnapshot],
        position_nano: i64,
        snapshot_nano: i64,
        seq: u64,
    ) -> u64 {
        let mut changes = 0;
        let present: HashSet<&str> = snaps.iter().map(|s| s.id.as_str()).collect();
        // Not in the snapshot: removed in the gap, unless an event since the request made it
        // (created after the snapshot was taken).
        let gone: Vec<String> = self
            .containers
            .iter()
            .filter(|(id, c)| !present.contains(id.as_str()) && c.seq <= seq)
            .map(|(id, _)| id.clone())
            .collect();
        let destroyed_since: HashSet<&str> = self
            .destroyed
            .iter()
            .filter(|(at, _)| *at > seq)
            .map(|(_, id)| id.as_str())
            .collect();
        let snaps: Vec<&ContainerSnapshot> = snaps
            .iter()
            .filter(|s| !destroyed_since.contains(s.id.as_str()))
            .collect();
        for id in gone {
            let name = self.containers[&id].key[0].clone();
            tracing::info!(container = %name, "reconciled: removed while the events were lost");
            self.remove_container(&id);
            changes += 1;
        }
        let in_gap = |t: Option<i64>| t.filter(|t| *t > position_nano && *t <= snapshot_nano);
        for snap in snaps {
            if !self.containers.contains_key(&snap.id) {
                // Created while the events were lost: known from now on. Its missed start and
                // exit are counted below like anyone's.
                self.seed(snap, position_nano);
                if let Some(c) = self.containers.get_mut(&snap.id) {
                    c.last_started_nano = None;
                    c.last_finished_nano = None;
                    c.restart_count = Some(0);
                }
                tracing::info!(container = %snap.name, "reconciled: created while the events were lost");
                changes += 1;
            }
            let Some(c) = self.containers.get_mut(&snap.id) else {
                continue;
            };
            let missed_start = in_gap(snap.started_at_nano)
                .filter(|t| c.last_started_nano.is_none_or(|known| *t > known));
            let missed_exit = in_gap(snap.finished_at_nano)
                .filter(|t| c.last_finished_nano.is_none_or(|known| *t > known));
            // How many starts: the engine counts its restart policy's restarts; a start that is
            // not one of them (`docker start`) shows only as a newer StartedAt.
            let policy_restarts =
                u64::try_from(snap.restart_count - c.restart_count.unwrap_or(snap.restart_count))
                    .unwrap_or(0);
            c.restart_count = Some(snap.restart_count);
            let first_run = u64::from(!c.has_run);
            let starts = (policy_restarts + first_run).max(1);
            if let Some(t) = missed_start {
                c.has_run = true;
                c.last_started_nano = Some(t);
                c.started_nano = Some(t);
            }
            if let Some(t) = missed_exit {
                c.last_finished_nano = Some(t);
            }
            let name = c.key[0].clone();
            if let Some(s) = self.series.get(&c.key) {
                let mut d = s.cell.lock();
                if missed_start.is_some() {
                    let restarts = starts - first_run;
                    d.starts += starts;
                    d.restarts += restarts;
                    tracing::info!(container = %name, restarts, "reconciled: started while the events were lost");
                    changes += 1;
                }
                if missed_exit.is_some() {
                    bump(&mut d.exits, Code::exit_number(snap.exit_code));
                    if snap.oom_killed {
                        d.oom_kills += 1;
                    }
                    tracing::info!(container = %name, exit_code = ?snap.exit_code, oom_killed = snap.oom_killed, "reconciled: exited while the events were lost");
                    changes += 1;
                }
            }
            // Gauges: what the engine says, unless an event since the request said otherwise.
            if c.seq <= seq {
                let running = matches!(
                    snap.state,
                    Some(ContainerState::Running | ContainerState::Paused)
                );
                let health = if running { snap.health } else { None };
                if snap.state.is_some() && c.state != snap.state {
                    tracing::info!(container = %name, state = ?snap.state, was = ?c.state, "reconciled: state");
                    changes += 1;
                    self.set_state(&snap.id, snap.state);
                }
                let c = &self.containers[&snap.id];
                if c.health != health {
                    tracing::info!(container = %name, health = ?health, was = ?c.health, "reconciled: health");
                    changes += 1;
                    self.set_health(&snap.id, health);
                }
            }
            self.set_healthcheck(&snap.id, snap.healthcheck_command.clone());
        }
        changes
    }

    /// The tracker's count of container events, for [`Self::reconcile`]'s `seq`.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Drops the series of label sets that no container has held for the TTL.
    pub fn sweep(&mut self) {
        let now = self.now_nano();
        let m = &self.m;
        self.series.retain(|_, s| {
            if s.live > 0 || s.expires_at.is_none_or(|t| t > now) {
                return true;
            }
            m.containers.remove(s.id);
            false
        });
    }

    /// How many label sets have series now (live or waiting to expire).
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// `docker_events_total`, from a table of counters by (object, action): no label hashing
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
                "event of a kind this build does not know; counted in docker_events_total as unknown"
            );
            self.unknown_logged.insert(kind);
        }
    }

    fn key_for<'a>(
        &self,
        name: &str,
        image: &str,
        label: impl Fn(&str) -> Option<&'a str>,
    ) -> SeriesKey {
        let mut values = vec![
            cap(name),
            cap(image),
            cap(label(COMPOSE_PROJECT).unwrap_or_default()),
            cap(label(COMPOSE_SERVICE).unwrap_or_default()),
        ];
        values.extend(
            self.m
                .label_keys
                .iter()
                .map(|k| cap(label(k).unwrap_or_default())),
        );
        SeriesKey::new(values)
    }

    fn insert_container(&mut self, id: String, c: Container) {
        self.hold(&c.key);
        if let Some(old) = self.containers.insert(id, c) {
            self.release(&old.key);
        }
    }

    fn remove_container(&mut self, id: &str) {
        self.set_state(id, None);
        self.set_health(id, None);
        if let Some(c) = self.containers.remove(id) {
            self.release(&c.key);
            if self.destroyed.len() == MAX_DESTROYED_REMEMBERED {
                self.destroyed.pop_front();
            }
            self.destroyed.push_back((self.seq, id.to_owned()));
        }
    }

    fn rename(&mut self, id: &str, ev: &Event) {
        let Some(new_name) = ev.attr("name") else {
            return;
        };
        let Some(c) = self.containers.get(id) else {
            return;
        };
        if c.key[0] == cap(new_name) {
            return;
        }
        let mut values = c.key.to_vec();
        values[0] = cap(new_name);
        let new_key = SeriesKey::new(values);
        let (state, health) = (c.state, c.health);
        self.set_state(id, None);
        self.set_health(id, None);
        let old_key = std::mem::replace(
            &mut self.containers.get_mut(id).expect("checked above").key,
            new_key.clone(),
        );
        self.hold(&new_key);
        self.release(&old_key);
        let hc = self
            .containers
            .get(id)
            .and_then(|c| c.healthcheck_command.clone());
        self.set_healthcheck(id, hc);
        self.set_state(id, state);
        self.set_health(id, health);
    }

    /// A container takes the label set: create its series if need be and stop any expiry.
    fn hold(&mut self, key: &SeriesKey) {
        let m = &self.m;
        let s = self.series.entry(key.clone()).or_insert_with(|| {
            let (id, cell) = m.containers.insert(key);
            Series {
                live: 0,
                expires_at: None,
                id,
                cell,
            }
        });
        s.live += 1;
        s.expires_at = None;
    }

    fn release(&mut self, key: &SeriesKey) {
        let ttl = i64::try_from(self.ttl.as_nanos()).unwrap_or(i64::MAX);
        let expires_at = self.now_nano().saturating_add(ttl);
        if let Some(s) = self.series.get_mut(key) {
            s.live = s.live.saturating_sub(1);
            if s.live == 0 {
                s.expires_at = Some(expires_at);
            }
        }
    }

    fn series_of(&self, id: &str) -> Option<&Series> {
        let key = &self.containers.get(id)?.key;
        self.series.get(key)
    }

    fn set_healthcheck(&mut self, id: &str, command: Option<String>) {
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        c.healthcheck_command = command;
        if c.healthcheck_command.is_some()
            && let Some(s) = self.series.get(&c.key)
        {
            s.cell.lock().health.get_or_insert_default();
        }
    }

    fn set_state(&mut self, id: &str, state: Option<ContainerState>) {
        let seq = self.seq;
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        c.state = state;
        c.seq = seq;
        if let Some(s) = self.series.get(&c.key) {
            s.cell.lock().state = state;
        }
    }

    fn set_health(&mut self, id: &str, health: Option<Health>) {
        let seq = self.seq;
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        c.health = health;
        c.seq = seq;
        let Some(s) = self.series.get(&c.key) else {
            return;
        };
        let mut d = s.cell.lock();
        if health.is_none() && d.health.is_none() {
            return;
        }
        d.health.get_or_insert_default().status = health;
    }

    fn request_inspect(&self, id: &str, seq: u64) {
        let Some(tx) = &self.inspect_tx else { return };
        if tx
            .try_send(InspectRequest {
                id: id.to_owned(),
                seq,
            })
            .is_err()
        {
            tracing::warn!(
                container_id = id,
                "inspect queue full; this container's state and healthcheck may lag until its next event"
            );
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
    use crate::metrics::{
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
        (Tracker::new(m.clone(), Duration::from_secs(60), None), m)
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
        assert_eq!(value(&m, CONTAINER_RESTARTS, None), Some(0.0));
        t.apply(&event(
            "die",
            "c1",
            3_000_000_002,
            &[("name", "web"), ("exitCode", "1")],
        ));
        t.apply(&event("start", "c1", 4_000_000_000, WEB));
        assert_eq!(value(&m, CONTAINER_STARTS, None), Some(2.0));
        assert_eq!(value(&m, CONTAINER_RESTARTS, None), Some(1.0));
        let run = format!("{CONTAINER_RUN_DURATION}_count");
        assert_eq!(value(&m, &run, None), Some(1.0));
        let run = format!("{CONTAINER_RUN_DURATION}_sum");
        assert_eq!(value(&m, &run, None), Some(3.0));
        assert_eq!(
            value(&m, CONTAINER_EXITS, Some(("exit_code", "1"))),
            Some(1.0)
        );
        assert_eq!(
            value(&m, CONTAINER_STATE, Some(("state", "running"))),
            Some(1.0)
        );
        assert_eq!(
            value(&m, CONTAINER_STATE, Some(("state", "exited"))),
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
            value(&m, CONTAINER_HEALTHCHECKS, result("success")),
            Some(1.0)
        );
        assert_eq!(
            value(&m, CONTAINER_HEALTHCHECKS, result("failure")),
            Some(0.0)
        );
        let probe_sum = format!("{CONTAINER_HEALTHCHECK_DURATION}_sum");
        assert_eq!(value(&m, &probe_sum, None), Some(0.05));
        assert_eq!(
            value(&m, CONTAINER_EXECS, Some(("exit_code", "3"))),
            Some(1.0)
        );
        assert_eq!(
            value(&m, CONTAINER_EXECS, Some(("exit_code", "0"))),
            None,
            "an exit code appears with its first exec"
        );
        let status = |s| Some(("status", s));
        assert_eq!(
            value(&m, CONTAINER_HEALTH_STATUS, status("healthy")),
            Some(1.0)
        );
        assert_eq!(
            value(&m, CONTAINER_HEALTH_STATUS, status("starting")),
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
            value(&m, CONTAINER_STARTS, None),
            Some(2.0),
            "two policy restarts"
        );
        assert_eq!(value(&m, CONTAINER_RESTARTS, None), Some(2.0));
        assert_eq!(
            value(&m, CONTAINER_EXITS, Some(("exit_code", "137"))),
            Some(1.0),
            "the last exit"
        );
        assert_eq!(value(&m, CONTAINER_OOM_KILLS, None), Some(1.0));
        assert_eq!(
            value(&m, CONTAINER_STATE, Some(("state", "running"))),
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
        assert_eq!(value(&m, CONTAINER_STARTS, None), Some(2.0));
        // A start after the snapshot is left to its event.
        let mut later = snap("c1", "web", ContainerState::Running, 60, 35);
        later.restart_count = 3;
        assert_eq!(t.reconcile(&[later.clone()], 20, 50, t.seq()), 0);
        assert_eq!(value(&m, CONTAINER_STARTS, None), Some(2.0));
        // Events between the snapshot request and its answer win: a container created since
        // stays, one destroyed since does not come back.
        let asked = t.seq();
        t.apply(&event("create", "c7", 55, &[("name", "fresh")]));
        t.apply(&event("destroy", "c1", 56, WEB));
        assert_eq!(t.reconcile(&[later], 20, 50, asked), 0);
        let text = m.encode();
        assert!(text.contains("{name=\"fresh\""), "{text}");
        assert_eq!(
            value(&m, CONTAINER_STATE, Some(("state", "running"))),
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
        assert_eq!(value(&m, CONTAINER_STARTS, None), Some(2.0));
        assert_eq!(
            value(&m, CONTAINER_RESTARTS, None),
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
