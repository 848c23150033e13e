//! Container state and the rules by which an event changes a metric. Split by concern: what an
//! event does to a container, a method a verb that says what changed (`container`); the series
//! table and how a change is written into a cell (`series`); finding the container and its
//! series, taking new ones in and letting them go (here); and what comes from the engine
//! instead of events: the start-up seed, inspect answers, the reconcile after a gap
//! (`reconcile`). An event looks its container up once and writes its cell at most once.
//!
//! The tracker is owned by the event-stream task and changes only through `&mut self`: no locks
//! on the container table, no channels, no I/O. Anything slow (an inspect) is handed back to the
//! caller as a request ([`Tracker::take_inspects`]); its answer comes back later through
//! [`Tracker::apply_inspect`].
//!
//! Series are keyed by their label values (name, image, compose project and service, allow-listed
//! labels), not by container ID: a container recreated under the same name continues its
//! counters. When no container holds a key any more, its series are dropped after the TTL.

mod container;
mod id;
mod reconcile;
mod series;
mod unnamed_execs;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use prometheus::IntCounter;

use super::families;
use super::{EngineMetrics, Metrics};
use crate::docker::event::{Event, ObjectType, Verb};
use crate::docker::stream::InspectRequest;
use crate::docker::{ContainerSnapshot, ContainerState, Health};
use container::{Change, Container};
use id::{Id, IdRef};
use series::{SeriesKey, SeriesTable, SlotId};

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

/// Maps keyed by engine-made IDs and our own keys: foldhash, seeded per process.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A 64-bit digest of label values, an exec ID or a command, seeded once per process: they are
/// chosen by whoever runs containers, and a fixed seed would let them aim for a collision.
fn digest<T: std::hash::Hash + ?Sized>(value: &T) -> u64 {
    use std::hash::BuildHasher;
    static SEED: std::sync::LazyLock<foldhash::fast::RandomState> =
        std::sync::LazyLock::new(Default::default);
    SEED.hash_one(value)
}

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
    containers: hashbrown::HashMap<Id, Container, foldhash::fast::RandomState>,
    series: SeriesTable,
    /// Containers ever taken in: the next one's serial.
    serials: u64,
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
            containers: Default::default(),
            series: SeriesTable::default(),
            serials: 0,
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

    /// A container's event: the container looked up once, its verb applied, its series'
    /// cell written once.
    fn apply_container(&mut self, ev: &Event) {
        self.seq += 1;
        let seq = self.seq;
        let id = ev.actor_id();
        if id.is_empty() {
            return;
        }
        match ev.verb {
            Verb::Destroy => return self.remove_container(id),
            // One not seen before is taken in under its new name, as by any other event.
            Verb::Rename if self.containers.contains_key(&IdRef(id)) => return self.rename(id, ev),
            _ => {}
        }
        let inspect = match self.containers.get_mut(&IdRef(id)) {
            Some(c) => {
                let change = c.apply(ev, seq);
                self.series.get_mut(c.slot).write(c, &change);
                change.inspect
            }
            None => self.first_seen(id, ev, seq),
        };
        if inspect {
            self.request_inspect(id, seq);
        }
    }

    /// A container we have not seen: created while we were not looking (or the create itself).
    /// The event's attributes carry its name, image and labels; its inspect is asked for.
    #[cold]
    fn first_seen(&mut self, id: &str, ev: &Event, seq: u64) -> bool {
        let name = ev.attr("name").unwrap_or_default();
        let key = SeriesKey::of(
            name,
            ev.attr("image").unwrap_or_default(),
            &self.m.all.label_keys,
            |k| ev.attr(k),
        );
        let created = ev.verb == Verb::Create;
        if !created {
            tracing::debug!(
                container = name,
                action = ev.verb.as_str(),
                "event for a container not seen before"
            );
        }
        let mut c = self.new_container(&key, ev.attr(SWARM_SERVICE).is_some(), seq);
        // A new container: created now, never restarted. Of one created unseen, the inspect
        // tells; of the engine's restart count only inspects tell (a replay has none).
        c.life.created_nano = created.then_some(ev.time_nano);
        c.life.restart_count = (created && self.asks_inspects).then_some(0);
        let mut change = c.apply(ev, seq);
        change.own = true;
        self.series.get_mut(c.slot).write(&c, &change);
        self.insert_container(id, c);
        true
    }

    /// A container holding the series of `key`, not yet in the table.
    fn new_container(&mut self, key: &SeriesKey, swarm_task: bool, seq: u64) -> Container {
        self.serials += 1;
        let slot = self.series.hold(&self.m, key);
        Container::new(self.serials, slot, swarm_task, seq)
    }

    fn insert_container(&mut self, id: &str, c: Container) {
        if let Some(old) = self.containers.insert(Id::from(id), c) {
            let expires_at = self.expiry();
            self.series.release(old.slot, &old, expires_at);
        }
    }

    /// When series let go now expire, in the tracker's clock.
    fn expiry(&self) -> i64 {
        let ttl = i64::try_from(self.ttl.as_nanos()).unwrap_or(i64::MAX);
        self.now_nano().saturating_add(ttl)
    }

    pub(super) fn now_nano(&self) -> i64 {
        now_nano(self.clock, self.newest_nano)
    }

    /// Applies `f`'s change to the container `id` and writes it into its series; whether there
    /// is such a container. For what comes from the engine rather than events.
    fn change(&mut self, id: &str, f: impl FnOnce(&mut Container) -> Change) -> bool {
        let Some(c) = self.containers.get_mut(&IdRef(id)) else {
            return false;
        };
        let change = f(c);
        self.series.get_mut(c.slot).write(c, &change);
        true
    }

    fn set_state(&mut self, id: &str, state: Option<ContainerState>) {
        let (seq, clock, newest) = (self.seq, self.clock, self.newest_nano);
        self.change(id, |c| c.set_state(state, seq, || now_nano(clock, newest)));
    }

    fn set_health(&mut self, id: &str, health: Option<Health>) {
        let seq = self.seq;
        self.change(id, |c| c.set_health(health, seq));
    }

    /// The container's gauges are from now on what its series show.
    fn own(&mut self, id: &str) {
        self.change(id, |_| Change {
            own: true,
            ..Change::default()
        });
    }

    /// Its healthcheck, and (if it has one) health series from now on.
    fn set_healthcheck(&mut self, id: &str, command: Option<String>) {
        let Some(c) = self.containers.get_mut(&IdRef(id)) else {
            return;
        };
        c.healthcheck_command = command;
        if c.healthcheck_command.is_some() {
            let s = self.series.get(c.slot);
            s.cell.lock().health.get_or_insert_default();
        }
    }

    fn remove_container(&mut self, id: &str) {
        let Some(mut c) = self.containers.remove(&IdRef(id)) else {
            return;
        };
        let seq = self.seq;
        c.set_state(None, seq, || 0);
        c.set_health(None, seq);
        self.series.get_mut(c.slot).write(&c, &Change::gauges());
        let expires_at = self.expiry();
        self.series.release(c.slot, &c, expires_at);
        if self.destroyed.len() == MAX_DESTROYED_REMEMBERED {
            self.destroyed.pop_front();
        }
        self.destroyed.push_back((seq, id.to_owned()));
    }

    /// A new name: new series (the label set changed), the old ones left to expire.
    fn rename(&mut self, id: &str, ev: &Event) {
        let Some(new_name) = ev.attr("name") else {
            return;
        };
        let expires_at = self.expiry();
        let Some(c) = self.containers.get_mut(&IdRef(id)) else {
            return;
        };
        let old = c.slot;
        let key = &self.series.get(old).key;
        if key.name() == cap(new_name) {
            return;
        }
        let key = key.renamed(new_name);
        // The old series stop showing it.
        let (state, health) = (c.state, c.health);
        c.state = None;
        c.health = None;
        self.series.get_mut(old).write(c, &Change::gauges());
        c.state = state;
        c.health = health;
        c.seq = self.seq;
        c.slot = self.series.hold(&self.m, &key);
        self.series.release(old, c, expires_at);
        let s = self.series.get_mut(c.slot);
        if c.healthcheck_command.is_some() {
            s.cell.lock().health.get_or_insert_default();
        }
        s.write(
            c,
            &Change {
                own: true,
                ..Change::default()
            },
        );
    }

    /// Drops the series of label sets that no container has held for the TTL.
    pub fn sweep(&mut self) {
        let now = self.now_nano();
        self.series.sweep(&self.m, now);
    }

    /// How many label sets have series now (live or waiting to expire).
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// The kernel's OOM killer ended the container's run, as an inspect told.
    fn oom_killed(&mut self, id: &str) {
        self.change(id, Container::oom_killed);
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
                due.push(id.as_str().to_owned());
            }
        }
        let seq = self.seq;
        for id in due {
            let name = self
                .containers
                .get(&IdRef(&id))
                .map(|c| self.series.get(c.slot).key.name());
            tracing::debug!(container = name, "restarting for long; asking the engine");
            self.request_inspect(&id, seq);
        }
    }

    /// Learns the lifecycle from what the engine says of the container.
    fn learn_life(&mut self, id: &str, snap: &ContainerSnapshot) {
        self.change(id, |c| c.learn_life(snap));
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

/// "Now" in `clock`, the newest event's time being `newest_nano`.
fn now_nano(clock: Clock, newest_nano: i64) -> i64 {
    match clock {
        Clock::Events => newest_nano,
        Clock::Wall => crate::docker::now_nano(),
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
