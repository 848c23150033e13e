//! The reader's side of the rules: for each event, the rules it matches (from the rules
//! layer), their throttles, the firings still open for a rule's `resolve`, and the firings,
//! handed on without ever waiting.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::{Again, Fire, MAX_FIELD_BYTES, Origin, Outcome, RuleMetrics, RuleSet};
use crate::docker::ContainerSnapshot;
use crate::docker::event::{Event, ObjectType};
use crate::docker::state::OpenFiring;
use crate::metrics::families;
use crate::rules::template::{Context, Template};

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

/// A firing waiting for its resolving event.
struct Open {
    /// The event that opened it.
    ev: Arc<Event>,
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
    open: HashMap<OpenKey, Open>,
    /// The engine the events come from: each engine has its reactor (and its throttles).
    origin: Arc<Origin>,
    drops_since_log: u64,
    last_drop_log: Option<Instant>,
    /// `open` changed since [`Reactor::take_open_firings`] last took it.
    open_changed: bool,
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
            open: HashMap::new(),
            origin,
            drops_since_log: 0,
            last_drop_log: None,
            open_changed: false,
        }
    }

    /// Matches, throttles and hands on the firings of `ev`, which they share without a copy.
    pub fn on_event(&mut self, ev: Event) {
        let set = self.rules.borrow().clone();
        let ev = Arc::new(ev);
        let origin = self.origin.clone();
        // Its own container's label, for the people who deploy with compose files.
        let muted = ev.object == ObjectType::Container
            && ev
                .attr(MUTE_LABEL)
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        for (index, rule) in set.rules.matching(&ev, &origin.engine) {
            let series = self.metrics.of(&set, index);
            series.matches.inc();
            if muted {
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
            if self.hand_on(&set, index, vec![ev.clone()], None, None)
                && let Some(key) = open_key
                && self.remember(&key, &ev)
            {
                self.metrics.opened(&origin.engine, &key.0, &ev);
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
            self.hand_on(&set, index, vec![ev.clone()], Some(opened.ev), None);
        }
    }

    /// Hands on again the open firings that are due: every action of a rule with `repeat`
    /// once that long has passed since they last ran, else the actions that re-send (see
    /// [`super::Action::resend_interval`]) once their interval has passed since the firing
    /// was last handed on. Called at each housekeeping tick (each second at most).
    pub fn resend_due(&mut self, now: Instant) {
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
        let due: Vec<(OpenKey, usize, Arc<Event>, Again)> = self
            .open
            .iter()
            .filter_map(|(key, open)| {
                let &(index, resend, repeat) = again.get(key.0.as_str())?;
                let why = if repeat.is_some_and(|r| since(open.repeated) >= r) {
                    Again::Repeat
                } else if resend.is_some_and(|i| open.sent.is_none_or(|t| since(t) >= i)) {
                    Again::Resend
                } else {
                    return None;
                };
                Some((key.clone(), index, open.ev.clone(), why))
            })
            .collect();
        for (key, index, ev, why) in due {
            if self.hand_on(&set, index, vec![ev], None, Some(why))
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
                .any(|r| r.name == o.rule && r.resolve.is_some());
            let ev = match Event::decode(o.event.as_bytes()) {
                Ok(ev) if has_rule => ev,
                Ok(_) => {
                    tracing::info!(rule = %o.rule, actor_id = %o.actor_id, "an open firing of a rule no longer in the rules file (or without resolve) is let go");
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
            let open = Open {
                ev: Arc::new(ev),
                sent: None,
                // The last reminder's time is not kept: the next is a repeat after this start.
                repeated: Instant::now(),
            };
            self.metrics.opened(&self.origin.engine, &o.rule, &open.ev);
            self.open.insert(key, open);
        }
        // What was let go leaves the file at the next save.
        self.open_changed = self.open.len() != open.len();
    }

    /// After a gap: lets go of the open firings of containers the engine no longer has (their
    /// removal was among the events lost, so no resolving event will come). Nothing is sent
    /// for them; an Alertmanager alert of theirs ends four resend intervals on.
    pub fn forget_absent_containers(&mut self, present: &[ContainerSnapshot]) {
        let present: std::collections::HashSet<&str> =
            present.iter().map(|c| c.id.as_str()).collect();
        let before = self.open.len();
        let (metrics, engine) = (&self.metrics, &self.origin.engine);
        self.open.retain(|(rule, actor_id), open| {
            let keep =
                open.ev.object != ObjectType::Container || present.contains(actor_id.as_str());
            if !keep {
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
    ) -> bool {
        let fire = Fire {
            set: set.clone(),
            index,
            events,
            origin: self.origin.clone(),
            opened_by,
            again,
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
    fn remember(&mut self, key: &OpenKey, ev: &Arc<Event>) -> bool {
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
            sent: Some(now),
            repeated: now,
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
        r.resend_due(t0 + Duration::from_secs(30));
        assert_eq!(fired(&mut r), [], "not yet");
        let unhealthy = "health_status: unhealthy".to_owned();
        r.resend_due(t0 + Duration::from_secs(61));
        assert_eq!(
            fired(&mut r),
            [("paged".to_owned(), true, unhealthy.clone())]
        );
        r.resend_due(t0 + Duration::from_secs(91));
        assert_eq!(
            fired(&mut r),
            [],
            "an interval after the resend, not after the first"
        );
        r.resend_due(t0 + Duration::from_secs(122));
        assert_eq!(fired(&mut r), [("paged".to_owned(), true, unhealthy)]);
        r.on_event(health("a", "healthy"));
        assert!(
            fired(&mut r).iter().all(|(_, resend, _)| !resend),
            "resolutions"
        );
        r.resend_due(t0 + Duration::from_secs(3600));
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
        });

        let (mut after, metrics) = reactor(yaml);
        after.restore(&saved);
        after.resend_due(Instant::now());
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
            r.resend_due(t0 + Duration::from_secs(after_secs));
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
}
