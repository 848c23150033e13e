//! The reader's side of the rules: for each event, the rules it matches (from the rules
//! layer), their throttles, the firings still open for a rule's `resolve`, and the firings,
//! handed on without ever waiting. Rules with a condition fire on its edges instead: when it
//! begins to hold for a container or the engine, and when it ends (see `conditions`),
//! judged at each of the container's events and at each housekeeping tick.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::Mutes;
use super::conditions::Containers;
use super::{Again, BoxedAction, Fire, MAX_FIELD_BYTES, Origin, Outcome, RuleMetrics, RuleSet};
use crate::docker::ContainerSnapshot;
use crate::docker::event::{Event, ObjectType};
use crate::docker::state::OpenFiring;
use crate::metrics::families;
use crate::rules::template::{Context, Facts, Template};
use crate::rules::{Condition, Rule};

/// Throttle keys remembered; past this, expired ones are forgotten first, then all.
const MAX_THROTTLE_KEYS: usize = 10_000;
/// Open firings remembered (of rules with `resolve`); past this a firing goes out and is not
/// remembered, so its resolving event sends nothing.
const MAX_OPEN: usize = 10_000;
/// The label that mutes a container: none of its events fires a rule.
pub const MUTE_LABEL: &str = "docker-events-exporter.mute";
/// How often a burst of drops is logged (each drop is counted).
const DROP_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Where firings go.
enum Out {
    /// The live dispatcher's bounded queue: a full one drops the firing, counted.
    Queue(mpsc::Sender<Fire>),
    /// Kept for the caller to take ([`Reactor::fired`]): replay runs them itself.
    Kept(Vec<Fire>),
}

/// An open firing's key: its rule's name (a reload keeps it) and its actor's ID.
type OpenKey = (String, String);

/// A firing waiting for its resolving event (or its condition's end).
struct Open {
    /// The event that opened it (for a condition, one made for it: its actor's, its time).
    ev: Arc<Event>,
    /// What its condition found.
    facts: Option<Arc<Facts>>,
    /// Muted when it began: not sent, and its end sends nothing.
    muted: bool,
    /// Taken back from the state file at this time (engine clock): a loop's exits before it
    /// are not known.
    restored_nano: Option<i64>,
    /// When it was last handed on (first, or again); `None` if not since the exporter started
    /// (one from the state file): a resend is due at once.
    sent: Option<Instant>,
    /// When every action last ran for it (first, or as a `repeat`).
    repeated: Instant,
}

/// Match, throttle, hand on. Never waits.
pub struct Reactor {
    rules: watch::Receiver<Arc<RuleSet>>,
    out: Out,
    metrics: Arc<RuleMetrics>,
    throttled_until: HashMap<(String, String), Instant>,
    /// The firings of rules with `resolve` not yet resolved, by rule name (a reload keeps
    /// them) and actor ID.
    open: HashMap<OpenKey, Open, foldhash::fast::RandomState>,
    /// The engine the events come from: each engine has its reactor (and its throttles).
    origin: Arc<Origin>,
    drops_since_log: u64,
    last_drop_log: Option<Instant>,
    /// `open` changed since [`Reactor::take_open_firings`] last took it.
    open_changed: bool,
    /// What the conditions read of each container.
    containers: Containers,
    /// Since when the engine's events are not followed (since the reactor was made, until
    /// the first subscription); engine clock.
    engine_lost_since: Option<i64>,
    /// The rules have conditions, and `containers` is kept for them. A reload that brings
    /// conditions starts from the containers' next events (what was seen while nothing was
    /// kept could be stale); one that takes them away lets `containers` go.
    watching: bool,
    /// A replay's clock: the event time the conditions were last judged at.
    judged_nano: i64,
    /// The mutes in force (`/api/v1/mutes`): shared by every engine's reactor.
    mutes: Arc<Mutes>,
}

/// An edge of a condition: it began to hold, or ended.
enum Edge {
    Holds {
        index: usize,
        key: OpenKey,
        ev: Event,
        facts: Facts,
        muted: bool,
    },
    Ended {
        index: usize,
        key: OpenKey,
    },
    /// A firing muted when it began, no longer muted and still holding: sent now.
    Released {
        index: usize,
        key: OpenKey,
    },
}

impl Reactor {
    /// A reactor whose firings go on `queue`.
    pub fn new(
        rules: watch::Receiver<Arc<RuleSet>>,
        queue: mpsc::Sender<Fire>,
        metrics: Arc<RuleMetrics>,
        origin: Arc<Origin>,
    ) -> Self {
        Self::with_out(rules, Out::Queue(queue), metrics, origin)
    }

    /// A reactor whose firings are kept for [`Reactor::fired`].
    pub fn keeping(
        rules: watch::Receiver<Arc<RuleSet>>,
        metrics: Arc<RuleMetrics>,
        origin: Arc<Origin>,
    ) -> Self {
        Self::with_out(rules, Out::Kept(Vec::new()), metrics, origin)
    }

    fn with_out(
        rules: watch::Receiver<Arc<RuleSet>>,
        out: Out,
        metrics: Arc<RuleMetrics>,
        origin: Arc<Origin>,
    ) -> Self {
        Self {
            rules,
            out,
            metrics,
            throttled_until: HashMap::new(),
            open: HashMap::default(),
            origin,
            drops_since_log: 0,
            last_drop_log: None,
            open_changed: false,
            containers: Containers::default(),
            engine_lost_since: Some(crate::docker::now_nano()),
            watching: false,
            judged_nano: 0,
            mutes: Arc::default(),
        }
    }

    /// Reads `mutes` (else none): its mutes silence this reactor's firings too.
    pub fn with_mutes(mut self, mutes: Arc<Mutes>) -> Self {
        self.mutes = mutes;
        self
    }

    /// Matches, throttles and hands on the firings of `ev`, which they share without a copy.
    pub fn on_event(&mut self, ev: Event) {
        let set = self.rules.borrow().clone();
        let ev = Arc::new(ev);
        let origin = self.origin.clone();
        // Its own container's label, for the people who deploy with compose files.
        let muted = ev.object == ObjectType::Container && is_muted(&ev);
        // The clock is read only while there are mutes or quiet hours.
        let now_nano = self.mute_now(0);
        if self.watching(&set) && ev.object == ObjectType::Container {
            self.condition_event(&set, &ev);
        }
        for (index, rule) in set.rules.matching(&ev, &origin.engine) {
            let series = self.metrics.of(&set, index);
            series.matches.inc();
            if muted || self.silenced(rule, &ev, now_nano) {
                series.muted.inc();
                continue;
            }
            let open_key = rule
                .resolve
                .as_ref()
                .map(|_| (rule.name.clone(), ev.actor_id().to_owned()));
            // Firing already, until its resolving event: held back like a throttled one.
            let held = open_key.as_ref().is_some_and(|k| self.open.contains_key(k));
            if held
                || rule
                    .throttle
                    .as_ref()
                    .is_some_and(|t| self.throttled(&rule.name, &t.key, t.interval, &ev))
            {
                self.metrics.count_all(&set, index, Outcome::Throttled);
                continue;
            }
            if self.hand_on(&set, index, vec![ev.clone()], None, None, None)
                && let Some(key) = open_key
                && self.remember(&key, &ev, None, false)
            {
                self.metrics.opened(&origin.engine, &key.0, &key.1, &ev);
            }
        }
        for &index in &set.resolvers {
            let rule = &set.rules.rules[index];
            if !rule.resolved_by(&ev, &origin.engine) {
                continue;
            }
            let key = (rule.name.clone(), ev.actor_id().to_owned());
            let Some(opened) = self.open.remove(&key) else {
                continue;
            };
            self.open_changed = true;
            self.metrics.of(&set, index).resolutions.inc();
            self.metrics.closed(&origin.engine, &key.0, &key.1);
            self.hand_on(&set, index, vec![ev.clone()], Some(opened.ev), None, None);
        }
    }

    /// Hands on again the open firings that are due: every action of a rule with `repeat`
    /// once that long has passed since they last ran, else the actions that re-send (see
    /// [`super::Action::resend_interval`]) once their interval has passed since the firing
    /// was last handed on. Called at each housekeeping tick (each second at most).
    fn resend_due(&mut self, now: Instant, now_nano: i64) {
        if self.open.is_empty() {
            return;
        }
        let set = self.rules.borrow().clone();
        // Each rule that hands firings on again, by name: its place, its shortest resend
        // interval and its repeat.
        let again: HashMap<&str, (usize, Option<Duration>, Option<Duration>)> = set
            .rules
            .rules
            .iter()
            .enumerate()
            .filter_map(|(index, rule)| {
                let resend = rule
                    .actions
                    .iter()
                    .filter_map(|a| a.resend_interval())
                    .min();
                (resend.is_some() || rule.repeat.is_some())
                    .then_some((rule.name.as_str(), (index, resend, rule.repeat)))
            })
            .collect();
        if again.is_empty() {
            return;
        }
        let since = |t: Instant| now.saturating_duration_since(t);
        let due: Vec<(OpenKey, usize, Again)> = self
            .open
            .iter()
            .filter(|(_, open)| !open.muted)
            .filter_map(|(key, open)| {
                let &(index, resend, repeat) = again.get(key.0.as_str())?;
                let muted_now = || self.silenced(&set.rules.rules[index], &open.ev, now_nano);
                // A reminder waits while a mute holds; an Alertmanager renewal does not.
                let why = if repeat.is_some_and(|r| since(open.repeated) >= r) && !muted_now() {
                    Again::Repeat
                } else if resend.is_some_and(|i| open.sent.is_none_or(|t| since(t) >= i)) {
                    Again::Resend
                } else {
                    return None;
                };
                Some((key.clone(), index, why))
            })
            .collect();
        for (key, index, why) in due {
            let Some(open) = self.open.get(&key) else {
                continue;
            };
            let (ev, facts) = (open.ev.clone(), open.facts.clone());
            if self.hand_on(&set, index, vec![ev], None, Some(why), facts)
                && let Some(open) = self.open.get_mut(&key)
            {
                open.sent = Some(now);
                if why == Again::Repeat {
                    open.repeated = now;
                }
            }
        }
    }

    /// The open firings, for the state file, if they changed since the last call.
    pub fn take_open_firings(&mut self) -> Option<Vec<OpenFiring>> {
        if !std::mem::take(&mut self.open_changed) {
            return None;
        }
        let mut all: Vec<OpenFiring> = self
            .open
            .iter()
            .map(|((rule, actor_id), open)| {
                let mut event = String::new();
                open.ev.write_json(&mut event);
                OpenFiring {
                    rule: rule.clone(),
                    actor_id: actor_id.clone(),
                    event,
                    condition: open
                        .facts
                        .as_ref()
                        .and_then(|f| serde_json::to_value(&**f).ok()),
                    muted: open.muted,
                }
            })
            .collect();
        all.sort_by(|a, b| (&a.rule, &a.actor_id).cmp(&(&b.rule, &b.actor_id)));
        Some(all)
    }

    /// Takes back the open firings the state file kept: their resolving events send their
    /// recoveries, and their rules' resending actions send them again at the next tick. Those
    /// of a rule no longer in the file are let go.
    pub fn restore(&mut self, open: &[OpenFiring]) {
        let set = self.rules.borrow().clone();
        for o in open {
            let has_rule = set
                .rules
                .rules
                .iter()
                .any(|r| r.name == o.rule && r.opens());
            let ev = match Event::decode(o.event.as_bytes()) {
                Ok(ev) if has_rule => ev,
                Ok(_) => {
                    tracing::info!(rule = %o.rule, actor_id = %o.actor_id, "an open firing of a rule no longer in the rules file (or whose firings no longer stay open) is let go");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(rule = %o.rule, actor_id = %o.actor_id, error = %e, "an open firing in the state file cannot be read; let go");
                    continue;
                }
            };
            let key = (o.rule.clone(), o.actor_id.clone());
            if self.open.contains_key(&key) {
                continue;
            }
            if self.open.len() >= MAX_OPEN {
                break;
            }
            let facts = match o.condition.clone().map(serde_json::from_value::<Facts>) {
                Some(Ok(f)) => Some(Arc::new(f)),
                Some(Err(e)) => {
                    tracing::warn!(rule = %o.rule, actor_id = %o.actor_id, error = %e, "an open firing's condition in the state file cannot be read; let go");
                    continue;
                }
                None => None,
            };
            let open = Open {
                ev: Arc::new(ev),
                facts,
                muted: o.muted,
                sent: None,
                // The last reminder's time is not kept: the next is a repeat after this start.
                repeated: Instant::now(),
                restored_nano: Some(crate::docker::now_nano()),
            };
            if !open.muted {
                self.metrics
                    .opened(&self.origin.engine, &o.rule, &o.actor_id, &open.ev);
            }
            self.open.insert(key, open);
        }
        // What was let go leaves the file at the next save.
        self.open_changed = self.open.len() != open.len();
    }

    /// After a gap: lets go of the open firings of containers the engine no longer has (their
    /// removal was among the events lost, so no resolving event will come). Nothing is sent
    /// for them; an Alertmanager alert of theirs ends four resend intervals on.
    fn forget_absent_containers(&mut self, present: &[ContainerSnapshot]) {
        let present: std::collections::HashSet<&str> =
            present.iter().map(|c| c.id.as_str()).collect();
        let before = self.open.len();
        let (metrics, engine) = (&self.metrics, &self.origin.engine);
        self.open.retain(|(rule, actor_id), open| {
            // A condition's firing ends, and says so, when the conditions' containers go.
            let keep = open.facts.is_some()
                || open.ev.object != ObjectType::Container
                || present.contains(actor_id.as_str());
            if !keep && !open.muted {
                metrics.closed(engine, rule, actor_id);
            }
            keep
        });
        let gone = before - self.open.len();
        if gone > 0 {
            self.open_changed = true;
            tracing::warn!(
                firings = gone,
                "open firings of containers removed during a gap are let go; their recoveries are not sent"
            );
        }
    }

    /// Hands a firing on: false if the queue was full and it was dropped (counted).
    fn hand_on(
        &mut self,
        set: &Arc<RuleSet>,
        index: usize,
        events: Vec<Arc<Event>>,
        opened_by: Option<Arc<Event>>,
        again: Option<Again>,
        condition: Option<Arc<Facts>>,
    ) -> bool {
        let fire = Fire {
            set: set.clone(),
            index,
            events,
            origin: self.origin.clone(),
            opened_by,
            again,
            condition,
        };
        match &mut self.out {
            Out::Kept(kept) => kept.push(fire),
            Out::Queue(queue) => {
                // A refused send hands the firing back.
                if let Err(refused) = queue.try_send(fire) {
                    let fire = refused.into_inner();
                    let series = &self.metrics.of(set, index).actions;
                    for (action, series) in fire.rule().actions.iter().zip(series) {
                        if fire.runs(action) {
                            series.count(Outcome::Dropped);
                        }
                    }
                    self.log_drop(&fire.rule().name);
                    return false;
                }
            }
        }
        true
    }

    /// Remembers an open firing; false if there are too many already.
    fn remember(
        &mut self,
        key: &OpenKey,
        ev: &Arc<Event>,
        facts: Option<Arc<Facts>>,
        muted: bool,
    ) -> bool {
        if self.open.len() >= MAX_OPEN {
            tracing::warn!(
                rule = %key.0,
                open = self.open.len(),
                "too many open firings to remember; this one's resolving event will send nothing"
            );
            return false;
        }
        let now = Instant::now();
        let open = Open {
            ev: ev.clone(),
            facts,
            muted,
            sent: Some(now),
            repeated: now,
            restored_nano: None,
        };
        self.open.insert(key.clone(), open);
        self.open_changed = true;
        true
    }

    /// Takes the firings kept since the last call (none for a reactor with a queue).
    pub fn fired(&mut self) -> impl Iterator<Item = Fire> + '_ {
        let kept = match &mut self.out {
            Out::Kept(kept) => Some(kept.drain(..)),
            Out::Queue(_) => None,
        };
        kept.into_iter().flatten()
    }

    fn throttled(
        &mut self,
        rule: &str,
        key: &Template,
        interval: Duration,
        ev: &Arc<Event>,
    ) -> bool {
        let events = [ev.clone()];
        let ctx = Context {
            events: &events,
            rule,
            host: &self.origin.host,
            engine: &self.origin.engine,
            opened_by: None,
            looked_up: Default::default(),
            condition: None,
        };
        let key = (rule.to_owned(), key.render(&ctx, MAX_FIELD_BYTES));
        let now = Instant::now();
        if self
            .throttled_until
            .get(&key)
            .is_some_and(|until| *until > now)
        {
            return true;
        }
        if self.throttled_until.len() >= MAX_THROTTLE_KEYS {
            self.throttled_until.retain(|_, until| *until > now);
            if self.throttled_until.len() >= MAX_THROTTLE_KEYS {
                self.throttled_until.clear();
            }
        }
        self.throttled_until.insert(key, now + interval);
        false
    }

    fn log_drop(&mut self, rule: &str) {
        self.drops_since_log += 1;
        let now = Instant::now();
        if self
            .last_drop_log
            .is_none_or(|t| now.duration_since(t) >= DROP_LOG_INTERVAL)
        {
            tracing::warn!(
                rule,
                dropped = self.drops_since_log,
                counted_in = families::ACTIONS.name,
                "action queue full: actions are slower than the events that trigger them; dropping (counted with outcome=\"dropped\")"
            );
            self.drops_since_log = 0;
            self.last_drop_log = Some(now);
        }
    }
}

/// The conditions' side of the reactor.
impl Reactor {
    /// Housekeeping, each tick: conditions that began to hold or ended with time, then the
    /// open firings due again. `now_nano` is the wall clock (the engine's, as its events
    /// tell time).
    pub fn tick(&mut self, now: Instant, now_nano: i64) {
        self.judge_all(now_nano);
        self.resend_due(now, now_nano);
    }

    /// Takes in the containers the engine listed at start-up.
    pub fn seed(&mut self, containers: &[ContainerSnapshot]) {
        let set = self.rules.borrow().clone();
        if !self.watching(&set) {
            return;
        }
        let now_nano = crate::docker::now_nano();
        for c in containers {
            self.containers.learn(c, now_nano);
        }
    }

    /// What the engine said of a container when asked after one of its events (its restart
    /// policy; its health while it runs).
    pub fn learn(&mut self, snap: &ContainerSnapshot) {
        if self.watching {
            self.containers
                .learn_policy(snap, crate::docker::now_nano());
        }
    }

    /// Whether the rules have conditions (see `watching`), noting a change.
    fn watching(&mut self, set: &RuleSet) -> bool {
        let has = !set.conditions.is_empty();
        if self.watching && !has {
            self.containers = Containers::default();
        }
        self.watching = has;
        has
    }

    /// After a gap: the engine's containers as they are. Those it no longer has end their
    /// conditions' firings; the others are learnt again. Open firings of event rules for
    /// containers gone are let go ([`Reactor::forget_absent_containers`]).
    pub fn reconcile(&mut self, present: &[ContainerSnapshot]) {
        let now_nano = crate::docker::now_nano();
        let keys = Containers::keys_of(present);
        let gone: Vec<String> = self
            .containers
            .by_id
            .keys()
            .filter(|key| !keys.contains(key.as_str()))
            .cloned()
            .collect();
        let set = self.rules.borrow().clone();
        for key in gone {
            self.containers.by_id.remove(&key);
            self.container_gone(&set, &key, now_nano);
        }
        if self.watching {
            for c in present {
                self.containers.learn(c, now_nano);
            }
        }
        self.forget_absent_containers(present);
    }

    /// The event stream of the engine was lost (again): `engine_down` counts from the first.
    pub fn engine_lost(&mut self, now_nano: i64) {
        self.engine_lost_since.get_or_insert(now_nano);
    }

    /// Subscribed to the engine's events (again): `engine_down` ends.
    pub fn engine_back(&mut self, now_nano: i64) {
        self.engine_lost_since = None;
        let set = self.rules.borrow().clone();
        self.judge_engine(&set, now_nano);
    }

    /// A gap in the engine's events: each `events_missed` rule fires once.
    pub fn events_missed(&mut self, now_nano: i64) {
        let set = self.rules.borrow().clone();
        let ev = Arc::new(self.engine_event("events_missed", now_nano));
        for &index in &set.conditions {
            let rule = &set.rules.rules[index];
            if rule.condition != Some(Condition::EventsMissed)
                || !rule.matcher.is_match(&ev, &self.origin.engine)
            {
                continue;
            }
            let series = self.metrics.of(&set, index);
            series.matches.inc();
            if self.silenced(rule, &ev, now_nano) {
                series.muted.inc();
                continue;
            }
            let facts = Facts {
                condition: "events_missed".to_owned(),
                since_nano: now_nano,
                ..Facts::default()
            };
            self.hand_on(
                &set,
                index,
                vec![ev.clone()],
                None,
                None,
                Some(Arc::new(facts)),
            );
        }
    }

    /// A container's event: what the conditions know of it, then its conditions judged at
    /// the event's time.
    fn condition_event(&mut self, set: &Arc<RuleSet>, ev: &Arc<Event>) {
        let now_nano = ev.time_nano;
        if ev.verb == crate::docker::event::Verb::Destroy {
            if let Some(key) = self.containers.remove(ev) {
                self.container_gone(set, &key, now_nano);
            }
        } else if let Some(key) = self.containers.apply(ev) {
            let mute_now = self.mute_now(now_nano);
            let edges = self.container_edges(set, &key, now_nano, mute_now);
            self.act(set, edges, now_nano);
        }
        // A replay has no ticks: its events' time is its clock.
        if matches!(self.out, Out::Kept(_)) && now_nano - self.judged_nano >= 1_000_000_000 {
            self.judged_nano = now_nano;
            self.judge_all(now_nano);
        }
    }

    fn judge_all(&mut self, now_nano: i64) {
        let set = self.rules.borrow().clone();
        if set.conditions.is_empty() {
            return;
        }
        // Only what time alone may change: containers with something pending, and those with
        // a condition's firing open (one taken back from the state file may know nothing).
        let mut ids: Vec<String> = self
            .containers
            .by_id
            .iter()
            .filter(|(_, w)| w.pending(now_nano))
            .map(|(id, _)| id.clone())
            .collect();
        ids.extend(
            self.open
                .iter()
                .filter(|(_, o)| o.facts.is_some() && o.ev.object == ObjectType::Container)
                .map(|((_, id), _)| id.clone()),
        );
        ids.sort_unstable();
        ids.dedup();
        let mute_now = self.mute_now(now_nano);
        for id in ids {
            let edges = self.container_edges(&set, &id, now_nano, mute_now);
            self.act(&set, edges, now_nano);
        }
        self.judge_engine(&set, now_nano);
    }

    /// Whether a firing of `rule` about `ev` is muted at `now_nano`: by a mute, or by the
    /// rule's quiet hours.
    fn silenced(&self, rule: &Rule<BoxedAction>, ev: &Event, now_nano: i64) -> bool {
        silenced(&self.mutes, &self.origin.engine, rule, ev, now_nano)
    }

    /// When mutes are judged, conditions being judged at `now_nano`: mutes and quiet hours are
    /// of the wall clock, and an event's (or a replay's) time may be behind it.
    fn mute_now(&self, now_nano: i64) -> i64 {
        if self.mutes.any() || self.rules.borrow().quiet {
            now_nano.max(crate::docker::now_nano())
        } else {
            now_nano
        }
    }

    /// The edges of the container `id`'s conditions at `now_nano`, mutes being judged at
    /// `mute_now`.
    fn container_edges(
        &mut self,
        set: &RuleSet,
        id: &str,
        now_nano: i64,
        mute_now: i64,
    ) -> Vec<Edge> {
        let mut edges = Vec::new();
        let Some(w) = self.containers.by_id.get_mut(id) else {
            return edges;
        };
        let labelled = w.labelled;
        for &index in &set.conditions {
            let rule = &set.rules.rules[index];
            let Some(condition) = rule.condition.filter(|c| !c.of_engine()) else {
                continue;
            };
            let key = (rule.name.clone(), id.to_owned());
            let open = self.open.get(&key);
            if open.is_none() && !rule.matcher.is_match(&w.last, &self.origin.engine) {
                continue;
            }
            let condition = if labelled {
                let (c, problem) = condition.for_container(|k| w.last.attr(k));
                if let Some(problem) = problem
                    && !std::mem::replace(&mut w.label_problem_logged, true)
                {
                    tracing::warn!(container = w.last.attr("name").unwrap_or(id), rule = %rule.name, "{problem}; the rule's threshold applies");
                }
                c
            } else {
                condition
            };
            match open {
                None => {
                    if let Some(facts) = w.holds(&condition, now_nano) {
                        // Its actor is the container (a Swarm slot's newest task), whose
                        // logs and probe can be read; the firing is the key's.
                        let ev = Event::new(
                            w.last.type_name(),
                            condition.name(),
                            w.last.actor_id(),
                            w.last.attributes(),
                            w.last.scope(),
                            facts.since_nano,
                        );
                        let muted = is_muted(&w.last)
                            || silenced(&self.mutes, &self.origin.engine, rule, &w.last, mute_now);
                        edges.push(Edge::Holds {
                            index,
                            key,
                            ev,
                            facts,
                            muted,
                        });
                    }
                }
                Some(o) if w.ended(&condition, now_nano, o.restored_nano) => {
                    edges.push(Edge::Ended { index, key });
                }
                Some(o)
                    if o.muted
                        && !is_muted(&w.last)
                        && !silenced(&self.mutes, &self.origin.engine, rule, &o.ev, mute_now) =>
                {
                    edges.push(Edge::Released { index, key });
                }
                Some(_) => {}
            }
        }
        edges
    }

    /// The engine's conditions at `now_nano`.
    fn judge_engine(&mut self, set: &Arc<RuleSet>, now_nano: i64) {
        let mut edges = Vec::new();
        for &index in &set.conditions {
            let rule = &set.rules.rules[index];
            let Some(Condition::EngineDown { for_ }) = rule.condition else {
                continue;
            };
            let key = (rule.name.clone(), self.origin.engine.to_string());
            let lost_for = self
                .engine_lost_since
                .filter(|s| now_nano.saturating_sub(*s) >= super::conditions::nanos(for_));
            let muted_now = |ev: &Event| self.silenced(rule, ev, now_nano);
            match (self.open.get(&key), lost_for) {
                (None, Some(since)) => {
                    let ev = self.engine_event("engine_down", since);
                    if !rule.matcher.is_match(&ev, &self.origin.engine) {
                        continue;
                    }
                    let facts = Facts {
                        condition: "engine_down".to_owned(),
                        since_nano: since,
                        ..Facts::default()
                    };
                    let muted = muted_now(&ev);
                    edges.push(Edge::Holds {
                        index,
                        key,
                        ev,
                        facts,
                        muted,
                    });
                }
                (Some(_), None) if self.engine_lost_since.is_none() => {
                    edges.push(Edge::Ended { index, key });
                }
                (Some(o), Some(_)) if o.muted && !muted_now(&o.ev) => {
                    edges.push(Edge::Released { index, key });
                }
                _ => {}
            }
        }
        self.act(set, edges, now_nano);
    }

    /// The container (or Swarm slot) `id` is gone, and watched no more: its conditions'
    /// firings end.
    fn container_gone(&mut self, set: &Arc<RuleSet>, id: &str, now_nano: i64) {
        let edges: Vec<Edge> = set
            .conditions
            .iter()
            .map(|&index| (index, (set.rules.rules[index].name.clone(), id.to_owned())))
            .filter(|(_, key)| self.open.contains_key(key))
            .map(|(index, key)| Edge::Ended { index, key })
            .collect();
        self.act(set, edges, now_nano);
    }

    /// Fires what began to hold (once: it is remembered as open), and sends the recovery of
    /// what ended (if it was sent).
    fn act(&mut self, set: &Arc<RuleSet>, edges: Vec<Edge>, now_nano: i64) {
        for edge in edges {
            match edge {
                Edge::Holds {
                    index,
                    key,
                    ev,
                    facts,
                    muted,
                } => {
                    let series = self.metrics.of(set, index);
                    series.matches.inc();
                    let (ev, facts) = (Arc::new(ev), Arc::new(facts));
                    if muted {
                        series.muted.inc();
                        self.remember(&key, &ev, Some(facts), true);
                    } else if self.hand_on(
                        set,
                        index,
                        vec![ev.clone()],
                        None,
                        None,
                        Some(facts.clone()),
                    ) && self.remember(&key, &ev, Some(facts), false)
                    {
                        self.metrics
                            .opened(&self.origin.engine, &key.0, &key.1, &ev);
                    }
                }
                Edge::Ended { index, key } => {
                    let Some(opened) = self.open.remove(&key) else {
                        continue;
                    };
                    self.open_changed = true;
                    if opened.muted {
                        continue;
                    }
                    self.metrics.of(set, index).resolutions.inc();
                    self.metrics.closed(&self.origin.engine, &key.0, &key.1);
                    let o = &opened.ev;
                    let ended = Event::new(
                        o.type_name(),
                        o.action(),
                        o.actor_id(),
                        o.attributes(),
                        o.scope(),
                        now_nano,
                    );
                    self.hand_on(
                        set,
                        index,
                        vec![Arc::new(ended)],
                        Some(opened.ev),
                        None,
                        opened.facts,
                    );
                }
                Edge::Released { index, key } => {
                    let Some(open) = self.open.get(&key) else {
                        continue;
                    };
                    let (ev, facts) = (open.ev.clone(), open.facts.clone());
                    if !self.hand_on(set, index, vec![ev.clone()], None, None, facts) {
                        continue;
                    }
                    let now = Instant::now();
                    if let Some(open) = self.open.get_mut(&key) {
                        open.muted = false;
                        open.sent = Some(now);
                        open.repeated = now;
                    }
                    self.open_changed = true;
                    self.metrics
                        .opened(&self.origin.engine, &key.0, &key.1, &ev);
                }
            }
        }
    }

    /// An event of the engine itself, for an engine's condition `condition` since `since_nano`.
    fn engine_event(&self, condition: &str, since_nano: i64) -> Event {
        let engine = &*self.origin.engine;
        Event::new(
            "daemon",
            condition,
            engine,
            [("name", engine)],
            "local",
            since_nano,
        )
    }
}

/// Whether a firing of `rule` about `ev`, of the engine `engine`, is muted at `now_nano`: by
/// one of `mutes`, or by the rule's quiet hours.
fn silenced(
    mutes: &Mutes,
    engine: &str,
    rule: &Rule<BoxedAction>,
    ev: &Event,
    now_nano: i64,
) -> bool {
    rule.quiet_at(now_nano) || mutes.mutes(ev, engine, &rule.name, now_nano)
}

/// Whether the event's container is labelled `docker-events-exporter.mute=true`.
fn is_muted(ev: &Event) -> bool {
    ev.attr(MUTE_LABEL)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::config::parse;

    fn reactor(yaml: &str) -> (Reactor, Arc<RuleMetrics>) {
        let rules = parse("rules.yml", yaml, super::super::KINDS).expect("compiles");
        let set = Arc::new(RuleSet::new(rules).expect("rule set"));
        let metrics = Arc::new(
            RuleMetrics::register(&prometheus::Registry::new(), Arc::default()).expect("metrics"),
        );
        let (_tx, rx) = watch::channel(set);
        let r = Reactor::keeping(rx, metrics.clone(), Origin::offline("e1"));
        (r, metrics)
    }

    fn health(id: &str, status: &str) -> Event {
        let action = match status {
            "destroy" => status.to_owned(),
            _ => format!("health_status: {status}"),
        };
        Event::new("container", &action, id, [("name", id)], "local", 1)
    }

    /// A firing stays open until its actor's resolving event (or its removal), which fires
    /// once; a second trigger while open is held back, and a resolving event with nothing open
    /// sends nothing.
    #[test]
    fn a_resolving_event_fires_once_for_the_open_firing_of_its_actor() {
        let (mut r, metrics) = reactor(
            "events_reactor:\n  sick:\n    event: {action: \"health_status: unhealthy\"}\n    resolve: {action: \"health_status: healthy\"}\n    log: /dev/null\n",
        );
        let mut seen = Vec::new();
        for (id, status) in [
            ("a", "healthy"),
            ("a", "unhealthy"),
            ("a", "unhealthy"),
            ("b", "healthy"),
            ("a", "healthy"),
            ("a", "healthy"),
            ("a", "unhealthy"),
            ("b", "destroy"),
            ("a", "destroy"),
        ] {
            r.on_event(health(id, status));
            seen.extend(r.fired().map(|f| {
                (
                    f.events[0].actor_id().to_owned(),
                    f.opened_by.as_ref().map(|o| o.action().to_owned()),
                )
            }));
        }
        assert_eq!(
            seen,
            [
                ("a".to_owned(), None),
                ("a".to_owned(), Some("health_status: unhealthy".to_owned())),
                ("a".to_owned(), None),
                ("a".to_owned(), Some("health_status: unhealthy".to_owned())),
            ],
            "b's destroy ends nothing; a's destroy ends its open firing"
        );
        let throttled = metrics
            .actions
            .with_label_values(&["sick", "log", "throttled"])
            .get();
        assert_eq!(throttled, 1, "the second unhealthy while open");
        assert_eq!(metrics.resolutions.with_label_values(&["sick"]).get(), 2);
        assert_eq!(metrics.matches.with_label_values(&["sick"]).get(), 3);
    }

    /// An open firing of a rule with an `alertmanager` action is handed on again each
    /// `resend_interval`, as a resend of its opening event, until it is resolved; a rule
    /// whose actions do not re-send, and one with `resolve_after`, hand nothing on again.
    #[test]
    fn open_alerts_are_handed_on_again_each_resend_interval_until_resolved() {
        let rule = |name: &str, action: &str| {
            format!(
                "  {name}:\n    event: {{action: \"health_status: unhealthy\"}}\n    resolve: {{action: \"health_status: healthy\"}}\n    {action}\n"
            )
        };
        let (mut r, _) = reactor(&format!(
            "events_reactor:\n{}{}{}",
            rule(
                "paged",
                "alertmanager: {url: \"http://127.0.0.1:9093\", resend_interval: 1m}"
            ),
            rule("logged", "log: /dev/null"),
            rule(
                "lapses",
                "alertmanager: {url: \"http://127.0.0.1:9093\", resolve_after: 5m}"
            ),
        ));
        let fired = |r: &mut Reactor| -> Vec<(String, bool, String)> {
            r.fired()
                .map(|f| {
                    (
                        f.rule().name.clone(),
                        f.again == Some(Again::Resend),
                        f.events[0].action().to_owned(),
                    )
                })
                .collect()
        };
        r.on_event(health("a", "unhealthy"));
        assert_eq!(fired(&mut r).len(), 3, "each rule fires once");
        let t0 = Instant::now();
        r.resend_due(t0 + Duration::from_secs(30), 0);
        assert_eq!(fired(&mut r), [], "not yet");
        let unhealthy = "health_status: unhealthy".to_owned();
        r.resend_due(t0 + Duration::from_secs(61), 0);
        assert_eq!(
            fired(&mut r),
            [("paged".to_owned(), true, unhealthy.clone())]
        );
        r.resend_due(t0 + Duration::from_secs(91), 0);
        assert_eq!(
            fired(&mut r),
            [],
            "an interval after the resend, not after the first"
        );
        r.resend_due(t0 + Duration::from_secs(122), 0);
        assert_eq!(fired(&mut r), [("paged".to_owned(), true, unhealthy)]);
        r.on_event(health("a", "healthy"));
        assert!(
            fired(&mut r).iter().all(|(_, resend, _)| !resend),
            "resolutions"
        );
        r.resend_due(t0 + Duration::from_secs(3600), 0);
        assert_eq!(fired(&mut r), [], "resolved: nothing more");
    }

    /// The open firings go to the state file when they change, and come back from it: the
    /// same condition is then held back, its resolving event sends the recovery with the
    /// event that opened it, and a resending action sends it again at the first tick. A
    /// firing of a rule gone from the file is let go, and so, after a gap, is one of a
    /// container the engine no longer has.
    #[test]
    fn open_firings_outlive_a_restart_through_the_state_file() {
        let yaml = "events_reactor:\n  sick:\n    event: {action: \"health_status: unhealthy\"}\n    resolve: {action: \"health_status: healthy\"}\n    log: /dev/null\n    alertmanager: {url: \"http://127.0.0.1:9093\"}\n";
        let (mut before, _) = reactor(yaml);
        assert_eq!(before.take_open_firings(), None, "nothing changed");
        before.on_event(health("a", "unhealthy"));
        before.on_event(health("b", "unhealthy"));
        let _ = before.fired().count();
        let mut saved = before.take_open_firings().expect("changed");
        assert_eq!(before.take_open_firings(), None, "taken");
        assert_eq!(
            saved
                .iter()
                .map(|o| (o.rule.as_str(), o.actor_id.as_str()))
                .collect::<Vec<_>>(),
            [("sick", "a"), ("sick", "b")]
        );
        saved.push(OpenFiring {
            rule: "gone".into(),
            actor_id: "c".into(),
            event: saved[0].event.clone(),
            condition: None,
            muted: false,
        });

        let (mut after, metrics) = reactor(yaml);
        after.restore(&saved);
        after.resend_due(Instant::now(), 0);
        let resent: Vec<(String, bool)> = after
            .fired()
            .map(|f| {
                (
                    f.events[0].actor_id().to_owned(),
                    f.again == Some(Again::Resend),
                )
            })
            .collect();
        assert_eq!(resent.len(), 2, "a and b at the first tick: {resent:?}");
        assert!(resent.iter().all(|(_, resend)| *resend));
        after.on_event(health("a", "unhealthy"));
        assert_eq!(after.fired().count(), 0, "held back");
        let throttled = metrics
            .actions
            .with_label_values(&["sick", "log", "throttled"])
            .get();
        assert_eq!(throttled, 1);
        after.on_event(health("a", "healthy"));
        let recoveries: Vec<Option<String>> = after
            .fired()
            .map(|f| f.opened_by.as_ref().map(|o| o.action().to_owned()))
            .collect();
        assert_eq!(recoveries, [Some("health_status: unhealthy".to_owned())]);
        // b's container went during a gap.
        after.forget_absent_containers(&[]);
        assert_eq!(after.take_open_firings(), Some(Vec::new()));
        after.on_event(health("b", "healthy"));
        assert_eq!(after.fired().count(), 0, "b was let go");
    }

    /// A container labelled `docker-events-exporter.mute=true` fires no rule, and has nothing
    /// to recover from: its events are counted as matched and muted.
    #[test]
    fn a_muted_container_fires_nothing() {
        let (mut r, metrics) = reactor(
            "events_reactor:\n  sick:\n    event: {action: \"health_status: unhealthy\"}\n    resolve: {action: \"health_status: healthy\"}\n    log: /dev/null\n",
        );
        let muted = |status: &str, value: &str| {
            let action = format!("health_status: {status}");
            Event::new(
                "container",
                &action,
                "m",
                [("name", "m"), (MUTE_LABEL, value)],
                "local",
                1,
            )
        };
        r.on_event(muted("unhealthy", "true"));
        r.on_event(muted("healthy", "true"));
        r.on_event(muted("unhealthy", "TRUE"));
        assert_eq!(r.fired().count(), 0);
        assert_eq!(metrics.muted.with_label_values(&["sick"]).get(), 2);
        assert_eq!(metrics.matches.with_label_values(&["sick"]).get(), 2);
        r.on_event(muted("unhealthy", "false"));
        assert_eq!(r.fired().count(), 1, "mute=false is no mute");
    }

    /// A rule's `repeat` hands an open firing on again to every action, that long after it
    /// last ran for it; in between, Alertmanager's alert is renewed on its own interval. The
    /// firing gauge follows the open firings.
    #[test]
    fn repeat_sends_every_action_again_and_resends_fill_the_gaps() {
        let (mut r, metrics) = reactor(
            "events_reactor:\n  sick:\n    event: {action: \"health_status: unhealthy\"}\n    resolve: {action: \"health_status: healthy\"}\n    repeat: 1h\n    log: /dev/null\n    alertmanager: {url: \"http://127.0.0.1:9093\", resend_interval: 10m}\n",
        );
        let firing = || metrics.firing("sick").get();
        r.on_event(health("a", "unhealthy"));
        assert_eq!(r.fired().count(), 1);
        assert_eq!(firing(), 1);
        let t0 = Instant::now();
        let again = |r: &mut Reactor, after_secs: u64| -> Vec<Option<Again>> {
            r.resend_due(t0 + Duration::from_secs(after_secs), 0);
            r.fired().map(|f| f.again).collect()
        };
        assert_eq!(again(&mut r, 601), [Some(Again::Resend)]);
        assert_eq!(
            again(&mut r, 1200),
            [],
            "ten minutes after the resend, not after the first"
        );
        assert_eq!(again(&mut r, 1202), [Some(Again::Resend)]);
        assert_eq!(again(&mut r, 3601), [Some(Again::Repeat)]);
        assert_eq!(again(&mut r, 3602), [], "a repeat renews the alert too");
        r.on_event(health("a", "healthy"));
        assert_eq!(r.fired().count(), 1, "the recovery");
        assert_eq!(firing(), 0);
        assert_eq!(again(&mut r, 99_999), []);
    }

    const SEC: i64 = 1_000_000_000;

    /// A container's event at second `t`, with `attrs` beside its name.
    fn at(id: &str, action: &str, t: i64, attrs: &[(&str, &str)]) -> Event {
        let attrs = [("name", id)].into_iter().chain(attrs.iter().copied());
        Event::new("container", action, id, attrs, "local", t * SEC)
    }

    /// What fired, as (rule, actor, status, condition, exits, last exit code, reason).
    fn told(r: &mut Reactor) -> Vec<String> {
        r.fired()
            .map(|f| {
                let facts = f.condition.as_deref().cloned().unwrap_or_default();
                format!(
                    "{} {} {} {} exits={:?} code={:?} reason={:?}",
                    f.rule().name,
                    f.events[0].actor_id(),
                    if f.opened_by.is_some() {
                        "resolved"
                    } else {
                        "firing"
                    },
                    facts.condition,
                    facts.exits,
                    facts.last_exit_code,
                    facts.reason,
                )
            })
            .collect()
    }

    /// A crash loop fires once, at its third crash in the window, with what it found; a kill
    /// before a die is no crash; more crashes send nothing; the container's removal sends the
    /// one recovery. A container labelled with more exits needs them.
    #[test]
    fn a_crash_loop_fires_once_with_its_exits_and_resolves_when_removed() {
        let (mut r, metrics) =
            reactor("events_reactor:\n  looping:\n    condition: crash_loop\n    log: /dev/null\n");
        let more = [("docker-events-exporter.crash_loop.exits", "5")];
        for (id, attrs) in [("web", &[][..]), ("patient", &more[..])] {
            r.on_event(at(id, "create", 1, attrs));
            r.on_event(at(id, "start", 1, attrs));
            r.on_event(at(id, "kill", 2, &[("signal", "15")]));
            r.on_event(at(id, "die", 2, &[("exitCode", "143")]));
            for t in 3..=6 {
                r.on_event(at(id, "start", t, attrs));
                r.on_event(at(id, "die", t, &[("exitCode", "3")]));
            }
        }
        assert_eq!(
            told(&mut r),
            ["looping web firing crash_loop exits=Some(3) code=Some(3) reason=Some(\"error\")"],
            "once; the kill's exit is no crash; patient needs five"
        );
        assert_eq!(metrics.firing("looping").get(), 1);
        r.on_event(at("patient", "start", 7, &more));
        r.on_event(at("patient", "die", 7, &[("exitCode", "1")]));
        r.on_event(at("web", "destroy", 8, &[]));
        assert_eq!(
            told(&mut r),
            [
                "looping patient firing crash_loop exits=Some(5) code=Some(1) reason=Some(\"error\")",
                "looping web resolved crash_loop exits=Some(3) code=Some(3) reason=Some(\"error\")"
            ]
        );
        assert_eq!(metrics.resolutions.with_label_values(&["looping"]).get(), 1);
        // Ten quiet minutes later patient's loop has ended.
        r.tick(Instant::now(), 700 * SEC);
        assert_eq!(
            told(&mut r),
            [
                "looping patient resolved crash_loop exits=Some(5) code=Some(1) reason=Some(\"error\")"
            ]
        );
        assert_eq!(metrics.firing("looping").get(), 0);
    }

    /// Restarts by the policy (a start after an exit on its own) make a restart loop, whatever
    /// the exit code; `docker restart` (a kill, a die, a stop, a start) does not.
    #[test]
    fn a_restart_loop_counts_the_policys_restarts_not_a_persons() {
        let (mut r, _) = reactor(
            "events_reactor:\n  restarting:\n    condition: {restart_loop: {restarts: 3, within: 1m}}\n    log: /dev/null\n",
        );
        r.on_event(at("byhand", "start", 1, &[]));
        for t in 2..=5 {
            r.on_event(at("byhand", "kill", t, &[("signal", "15")]));
            r.on_event(at("byhand", "die", t, &[("exitCode", "0")]));
            r.on_event(at("byhand", "stop", t, &[]));
            r.on_event(at("byhand", "start", t, &[]));
            r.on_event(at("byhand", "restart", t, &[]));
        }
        assert_eq!(told(&mut r), Vec::<String>::new());
        r.on_event(at("policy", "start", 1, &[]));
        for t in 2..=4 {
            r.on_event(at("policy", "die", t, &[("exitCode", "0")]));
            r.on_event(at("policy", "start", t, &[]));
        }
        assert_eq!(
            told(&mut r),
            [
                "restarting policy firing restart_loop exits=Some(3) code=Some(0) reason=Some(\"completed\")"
            ]
        );
    }

    /// `unhealthy: {for: 3s}`: unhealthy for longer fires once and recovers once when healthy
    /// again; unhealthy for less sends nothing.
    #[test]
    fn unhealthy_for_a_while_fires_once_and_recovers_once() {
        let (mut r, _) = reactor(
            "events_reactor:\n  sick:\n    condition: {unhealthy: {for: 3s}}\n    log: /dev/null\n",
        );
        for id in ["brief", "long"] {
            r.on_event(at(id, "start", 1, &[]));
            r.on_event(at(id, "health_status: unhealthy", 10, &[]));
        }
        r.on_event(at("brief", "health_status: healthy", 12, &[]));
        r.tick(Instant::now(), 12 * SEC);
        assert_eq!(told(&mut r), Vec::<String>::new(), "2 s is not 3");
        r.tick(Instant::now(), 13 * SEC);
        assert_eq!(
            told(&mut r),
            ["sick long firing unhealthy exits=None code=None reason=None"]
        );
        r.tick(Instant::now(), 20 * SEC);
        r.on_event(at("long", "health_status: unhealthy", 21, &[]));
        assert_eq!(told(&mut r), Vec::<String>::new(), "once");
        r.on_event(at("long", "health_status: healthy", 22, &[]));
        assert_eq!(
            told(&mut r),
            ["sick long resolved unhealthy exits=None code=None reason=None"]
        );
    }

    /// A compose service's container that exited on its own and stays down fires `down`, and
    /// recovers when it runs again; one a person stopped is off, not down; one that never
    /// ran is not down either.
    #[test]
    fn a_container_that_should_run_and_does_not_is_down_unless_a_person_stopped_it() {
        let (mut r, _) = reactor(
            "events_reactor:\n  down:\n    condition: {down: {for: 5m}}\n    log: /dev/null\n",
        );
        let service = [("com.docker.compose.service", "web")];
        for id in ["fell", "stopped", "plain"] {
            let attrs: &[(&str, &str)] = if id == "plain" { &[] } else { &service };
            r.on_event(at(id, "create", 1, attrs));
            r.on_event(at(id, "start", 1, attrs));
        }
        r.on_event(at("never", "create", 1, &service));
        r.on_event(at("fell", "die", 10, &[("exitCode", "1")]));
        r.on_event(at("plain", "die", 10, &[("exitCode", "1")]));
        r.on_event(at("stopped", "kill", 10, &[("signal", "15")]));
        r.on_event(at("stopped", "die", 10, &[("exitCode", "143")]));
        r.on_event(at("stopped", "stop", 10, &[]));
        r.tick(Instant::now(), 309 * SEC);
        assert_eq!(told(&mut r), Vec::<String>::new(), "not yet");
        r.tick(Instant::now(), 310 * SEC);
        assert_eq!(
            told(&mut r),
            ["down fell firing down exits=None code=Some(1) reason=Some(\"error\")"]
        );
        r.on_event(at("fell", "start", 400, &service));
        assert_eq!(
            told(&mut r),
            ["down fell resolved down exits=None code=Some(1) reason=Some(\"error\")"]
        );
    }

    /// `engine_down` fires once when the engine's events have been lost for its `for`, and
    /// recovers once when they are followed again; each gap fires `events_missed` once.
    #[test]
    fn an_engine_lost_for_a_while_fires_once_and_recovers_once() {
        let (mut r, metrics) = reactor(
            "events_reactor:\n  lost:\n    condition: {engine_down: {for: 1m}}\n    log: /dev/null\n  gaps:\n    condition: events_missed\n    log: /dev/null\n",
        );
        r.engine_back(0);
        r.engine_lost(100 * SEC);
        r.engine_lost(130 * SEC);
        r.tick(Instant::now(), 159 * SEC);
        assert_eq!(told(&mut r), Vec::<String>::new());
        r.tick(Instant::now(), 160 * SEC);
        r.tick(Instant::now(), 161 * SEC);
        assert_eq!(
            told(&mut r),
            ["lost e1 firing engine_down exits=None code=None reason=None"]
        );
        r.engine_back(170 * SEC);
        r.events_missed(170 * SEC);
        assert_eq!(
            told(&mut r),
            [
                "lost e1 resolved engine_down exits=None code=None reason=None",
                "gaps e1 firing events_missed exits=None code=None reason=None"
            ]
        );
        assert_eq!(metrics.firing("lost").get(), 0);
    }

    /// A muted container's condition sends nothing, is counted as muted once, and its end
    /// sends nothing either.
    #[test]
    fn a_muted_containers_condition_sends_nothing_and_is_counted_once() {
        let (mut r, metrics) = reactor(
            "events_reactor:\n  looping:\n    condition: {crash_loop: {exits: 1}}\n    log: /dev/null\n",
        );
        let mute = [(MUTE_LABEL, "true")];
        r.on_event(at("m", "start", 1, &mute));
        r.on_event(at("m", "die", 2, &[("exitCode", "1")]));
        r.tick(Instant::now(), 3 * SEC);
        r.tick(Instant::now(), 4 * SEC);
        r.on_event(at("m", "destroy", 5, &[]));
        assert_eq!(told(&mut r), Vec::<String>::new());
        assert_eq!(metrics.muted.with_label_values(&["looping"]).get(), 1);
        assert_eq!(metrics.firing("looping").get(), 0);
    }

    /// A condition's open firing outlives a restart through the state file: still holding, it
    /// is not sent again; a loop taken back ends only after a whole window watched; its end
    /// sends the recovery with what it found.
    #[test]
    fn a_conditions_open_firing_outlives_a_restart() {
        let yaml = "events_reactor:\n  looping:\n    condition: {crash_loop: {exits: 2, within: 1m}}\n    log: /dev/null\n";
        let (mut before, _) = reactor(yaml);
        before.on_event(at("web", "start", 1, &[]));
        before.on_event(at("web", "die", 2, &[("exitCode", "3")]));
        before.on_event(at("web", "start", 2, &[]));
        before.on_event(at("web", "die", 3, &[("exitCode", "3")]));
        assert_eq!(told(&mut before).len(), 1);
        let saved = before.take_open_firings().expect("changed");

        let (mut after, _) = reactor(yaml);
        after.restore(&saved);
        let now = crate::docker::now_nano();
        after.on_event(at("web", "start", now / SEC, &[]));
        after.tick(Instant::now(), now + 30 * SEC);
        assert_eq!(
            told(&mut after),
            Vec::<String>::new(),
            "not sent again, not ended yet"
        );
        after.tick(Instant::now(), now + 61 * SEC);
        assert_eq!(
            told(&mut after),
            ["looping web resolved crash_loop exits=Some(2) code=Some(3) reason=Some(\"error\")"],
            "a window watched without the loop"
        );
        assert_eq!(after.take_open_firings(), Some(Vec::new()));
    }

    /// A mute silences a condition that begins while it holds; when the mute ends and the
    /// condition still holds, it fires then, once; its end is then sent. One that ends while
    /// muted sends nothing.
    #[test]
    fn a_mute_holds_a_firing_back_until_it_ends() {
        let (r, _) = reactor(
            "events_reactor:\n  looping:\n    condition: {crash_loop: {exits: 1, within: 1h}}\n    log: /dev/null\n",
        );
        let mutes = Arc::new(Mutes::default());
        let mut r = r.with_mutes(mutes.clone());
        let now = crate::docker::now_nano();
        let request = serde_json::json!({
            "matchers": [{"name": "name", "value": "web-.*", "isRegex": true}],
            "endsAt": crate::docker::format_rfc3339_nano(now + 60 * SEC),
        });
        let id = mutes
            .add(serde_json::from_value(request).expect("a request"), now)
            .expect("added");
        for id in ["web-1", "web-2"] {
            r.on_event(at(id, "start", now / SEC, &[]));
            r.on_event(at(id, "die", now / SEC, &[("exitCode", "1")]));
        }
        r.tick(Instant::now(), now + SEC);
        assert_eq!(told(&mut r), Vec::<String>::new(), "muted");
        r.on_event(at("web-2", "destroy", now / SEC + 2, &[]));
        mutes.expire(&id, now + 3 * SEC).expect("expired");
        r.tick(Instant::now(), now + 4 * SEC);
        assert_eq!(
            told(&mut r),
            ["looping web-1 firing crash_loop exits=Some(1) code=Some(1) reason=Some(\"error\")"],
            "web-1 still loops; web-2 ended while muted"
        );
        r.tick(Instant::now(), now + 5 * SEC);
        r.on_event(at("web-1", "destroy", now / SEC + 6, &[]));
        assert_eq!(
            told(&mut r),
            ["looping web-1 resolved crash_loop exits=Some(1) code=Some(1) reason=Some(\"error\")"]
        );
    }

    /// A rule's quiet hours mute its firings as a mute does: an event rule's are counted and
    /// not sent; a condition begun in them fires once they are over if it still holds, and one
    /// that ended in them sends nothing.
    #[test]
    fn quiet_hours_mute_a_rule_until_they_end() {
        let (mut r, metrics) = reactor(
            "mute_time_intervals:\n  - name: this-year\n    time_intervals: [{years: [\"2026\"]}]\nevents_reactor:\n  looping:\n    condition: {unhealthy: {for: 1s}}\n    mute_time_intervals: [this-year]\n    log: /dev/null\n  died:\n    event: {action: die}\n    mute_time_intervals: this-year\n    log: /dev/null\n",
        );
        // The tests run in 2026 (or later: then nothing is quiet, and this says so).
        let now = crate::docker::now_nano();
        assert!(now < 1_798_761_600 * SEC, "this test assumes 2026");
        r.on_event(at("web", "start", now / SEC - 5, &[]));
        r.on_event(at("web", "health_status: unhealthy", now / SEC - 3, &[]));
        r.on_event(at("web", "die", now / SEC - 2, &[("exitCode", "1")]));
        r.on_event(at("db", "start", now / SEC - 5, &[]));
        r.on_event(at("db", "health_status: unhealthy", now / SEC - 3, &[]));
        r.tick(Instant::now(), now + SEC);
        assert_eq!(told(&mut r), Vec::<String>::new());
        assert_eq!(metrics.muted.with_label_values(&["looping"]).get(), 1);
        assert_eq!(metrics.muted.with_label_values(&["died"]).get(), 1);
        // web died: its unhealthiness ended while quiet, and sends nothing.
        r.tick(Instant::now(), now + 2 * SEC);
        assert_eq!(told(&mut r), Vec::<String>::new());
        // 2027-01-01T00:00:01Z: the quiet is over, and db is still unhealthy.
        r.tick(Instant::now(), 1_798_761_601 * SEC);
        assert_eq!(
            told(&mut r),
            ["looping db firing unhealthy exits=None code=None reason=None"]
        );
    }

    /// A Swarm slot's tasks are one life: Swarm replaces a task that ended with a new
    /// container, so their crashes make one loop (of the slot, told once, about its newest
    /// task), a new task after an exit on its own is a restart, and an older task's removal
    /// ends nothing.
    #[test]
    fn a_swarm_slots_tasks_crash_loop_together() {
        let (mut r, metrics) = reactor(
            "events_reactor:\n  looping:\n    condition: crash_loop\n    log: /dev/null\n  restarting:\n    condition: restart_loop\n    log: /dev/null\n",
        );
        let task = |n: usize| {
            let id = format!("t{n}");
            let name = format!("web.1.{id}");
            (id, name)
        };
        let fired = |r: &mut Reactor| -> Vec<(String, String, bool)> {
            r.fired()
                .map(|f| {
                    (
                        f.rule().name.clone(),
                        f.events[0].actor_id().to_owned(),
                        f.opened_by.is_some(),
                    )
                })
                .collect()
        };
        for n in 1..=4 {
            let (id, name) = task(n);
            let labels = [
                ("com.docker.swarm.service.name", "web"),
                ("com.docker.swarm.task.name", name.as_str()),
                ("com.docker.swarm.task.id", id.as_str()),
            ];
            let ev = |action: &str, extra: &[(&str, &str)]| {
                let attrs = labels.iter().chain(extra.iter()).copied();
                Event::new("container", action, &id, attrs, "local", n as i64 * SEC)
            };
            r.on_event(ev("create", &[]));
            r.on_event(ev("start", &[]));
            r.on_event(ev("die", &[("exitCode", "1")]));
        }
        assert_eq!(
            fired(&mut r),
            [
                ("looping".to_owned(), "t3".to_owned(), false),
                ("restarting".to_owned(), "t4".to_owned(), false)
            ]
        );
        assert_eq!(metrics.firing_now.list().len(), 2, "the page lists both");
        let (old, old_name) = task(1);
        let attrs = [
            ("com.docker.swarm.service.name", "web"),
            ("com.docker.swarm.task.name", old_name.as_str()),
            ("com.docker.swarm.task.id", old.as_str()),
        ];
        r.on_event(Event::new(
            "container",
            "destroy",
            &old,
            attrs,
            "local",
            5 * SEC,
        ));
        assert_eq!(fired(&mut r), [], "an older task's removal ends nothing");
        let (last, last_name) = task(4);
        let attrs = [
            ("com.docker.swarm.service.name", "web"),
            ("com.docker.swarm.task.name", last_name.as_str()),
            ("com.docker.swarm.task.id", last.as_str()),
        ];
        r.on_event(Event::new(
            "container",
            "destroy",
            &last,
            attrs,
            "local",
            6 * SEC,
        ));
        let mut ended = fired(&mut r);
        ended.sort();
        assert_eq!(
            ended,
            [
                ("looping".to_owned(), "t3".to_owned(), true),
                ("restarting".to_owned(), "t4".to_owned(), true)
            ],
            "the slot's newest task removed: its firings end"
        );
        assert!(metrics.firing_now.list().is_empty());
    }

    /// Containers found by the start-up list: one that exited 1 and should run is down once
    /// its `for` has passed since it exited; one that exited 0 with no event left to tell why
    /// is taken as stopped, not down. An inspect answered late does not undo a start.
    #[test]
    fn the_start_up_list_says_what_is_down() {
        let (mut r, _) = reactor(
            "events_reactor:\n  down:\n    condition: {down: {for: 5m}}\n    log: /dev/null\n",
        );
        let now = crate::docker::now_nano();
        let exited = |id: &str, code: i64| ContainerSnapshot {
            id: id.into(),
            name: id.into(),
            labels: [("com.docker.compose.service".to_owned(), "web".to_owned())].into(),
            state: Some(crate::docker::ContainerState::Exited),
            started_at_nano: Some(now - 700 * SEC),
            finished_at_nano: Some(now - 600 * SEC),
            exit_code: Some(code),
            ..ContainerSnapshot::default()
        };
        r.seed(&[exited("crashed", 1), exited("stopped", 0)]);
        r.tick(Instant::now(), now);
        assert_eq!(
            told(&mut r),
            ["down crashed firing down exits=None code=Some(1) reason=Some(\"error\")"]
        );
        r.on_event(at(
            "crashed",
            "start",
            now / SEC + 1,
            &[("com.docker.compose.service", "web")],
        ));
        r.learn(&exited("crashed", 1));
        r.tick(Instant::now(), now + 2 * SEC);
        assert_eq!(
            told(&mut r),
            ["down crashed resolved down exits=None code=Some(1) reason=Some(\"error\")"],
            "running again; the late inspect's exited state is not taken"
        );
    }
}
