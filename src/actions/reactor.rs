//! The reader's side of the rules: for each event, the rules it matches (from the rules
//! layer), their throttles, and the firings, handed on without ever waiting.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::{Fire, MAX_FIELD_BYTES, Origin, Outcome, RuleMetrics, RuleSet};
use crate::docker::event::Event;
use crate::metrics::families;
use crate::rules::template::{Context, Template};

/// Throttle keys remembered; past this, expired ones are forgotten first, then all.
const MAX_THROTTLE_KEYS: usize = 10_000;
/// How often a burst of drops is logged (each drop is counted).
const DROP_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Where firings go.
enum Out {
    /// The live dispatcher's bounded queue: a full one drops the firing, counted.
    Queue(mpsc::Sender<Fire>),
    /// Kept for the caller to take ([`Reactor::fired`]): replay runs them itself.
    Kept(Vec<Fire>),
}

/// Match, throttle, hand on. Never waits.
pub struct Reactor {
    rules: watch::Receiver<Arc<RuleSet>>,
    out: Out,
    metrics: Arc<RuleMetrics>,
    throttled_until: HashMap<(String, String), Instant>,
    /// The engine the events come from: each engine has its reactor (and its throttles).
    origin: Arc<Origin>,
    drops_since_log: u64,
    last_drop_log: Option<Instant>,
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
            origin,
            drops_since_log: 0,
            last_drop_log: None,
        }
    }

    /// Matches, throttles and hands on the firings of `ev`, which they share without a copy.
    pub fn on_event(&mut self, ev: Event) {
        let set = self.rules.borrow().clone();
        let ev = Arc::new(ev);
        let origin = self.origin.clone();
        for (index, rule) in set.rules.matching(&ev, &origin.engine) {
            self.metrics.of(&set, index).matches.inc();
            let ev = ev.clone();
            if let Some(t) = &rule.throttle
                && self.throttled(&rule.name, &t.key, t.interval, &ev)
            {
                self.metrics.count_all(&set, index, Outcome::Throttled);
                continue;
            }
            let fire = Fire {
                set: set.clone(),
                index,
                events: vec![ev],
                origin: origin.clone(),
            };
            match &mut self.out {
                Out::Kept(kept) => kept.push(fire),
                Out::Queue(queue) => {
                    // A refused send hands the firing back.
                    if let Err(refused) = queue.try_send(fire) {
                        let fire = refused.into_inner();
                        self.metrics.count_all(&set, index, Outcome::Dropped);
                        self.log_drop(&fire.rule().name);
                    }
                }
            }
        }
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
            ip: None,
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
