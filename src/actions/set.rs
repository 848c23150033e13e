//! The loaded rule set: the compiled rules with what runs beside them (their series, the
//! counters of `metric` actions), and its swap when SIGHUP reloads the file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use prometheus::{IntCounterVec, Registry};
use tokio::sync::watch;

use super::{BoxedAction, Live, RuleMetrics, RuleSeries};
use crate::metrics::FiringNow;

/// Compiled rules with every action kind.
pub type Rules = crate::rules::Rules<BoxedAction>;

/// Rules as loaded: the plain compiled rules and what runs beside them.
pub struct RuleSet {
    pub rules: Rules,
    /// Each rule's series, made on its first firing (see [`RuleMetrics::of`]).
    pub(super) series: Vec<OnceLock<RuleSeries>>,
    /// By rule, then by action.
    live: Vec<Vec<Live>>,
    /// The places of the rules with `resolve`: the only ones an event may resolve, so a set
    /// without any costs the reader nothing.
    pub resolvers: Vec<usize>,
    /// The places of the rules with a condition.
    pub conditions: Vec<usize>,
    /// Some rule has quiet hours (`mute_time_intervals`): the clock is read for its firings.
    pub quiet: bool,
}

impl RuleSet {
    pub fn new(rules: Rules) -> prometheus::Result<Self> {
        let live = rules
            .rules
            .iter()
            .map(|r| r.actions.iter().map(|a| a.live()).collect())
            .collect::<prometheus::Result<_>>()?;
        let resolvers = rules
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.resolve.is_some())
            .map(|(i, _)| i)
            .collect();
        let conditions = rules
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.condition.is_some())
            .map(|(i, _)| i)
            .collect();
        Ok(Self {
            quiet: rules.rules.iter().any(|r| !r.quiet.is_empty()),
            conditions,
            series: rules.rules.iter().map(|_| OnceLock::new()).collect(),
            live,
            resolvers,
            rules,
        })
    }

    /// What action `action` of rule `rule` keeps while it runs.
    pub fn live(&self, rule: usize, action: usize) -> &Live {
        &self.live[rule][action]
    }

    /// The user-named counters of `metric` actions.
    fn collectors(&self) -> impl Iterator<Item = &IntCounterVec> {
        self.live
            .iter()
            .flatten()
            .filter_map(|l| l.counter.as_ref())
            .map(|c| &c.counter)
    }

    /// Registers the user counters: all of them, or none (the error says why).
    fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        let registered = self
            .collectors()
            .try_for_each(|c| registry.register(Box::new(c.clone())));
        if registered.is_err() {
            self.unregister(registry);
        }
        registered
    }

    fn unregister(&self, registry: &Registry) {
        for c in self.collectors() {
            let _ = registry.unregister(Box::new(c.clone()));
        }
    }
}

/// The current rule set, and what swapping it takes.
pub struct Loaded {
    path: PathBuf,
    registry: Registry,
    pub metrics: Arc<RuleMetrics>,
    tx: watch::Sender<Arc<RuleSet>>,
}

impl Loaded {
    /// Loads the rules at start-up: registers the rules layer's metrics and the rules' own
    /// counters, and starts their series at 0.
    pub fn start(
        path: &Path,
        registry: &Registry,
        firing_now: Arc<FiringNow>,
    ) -> anyhow::Result<Self> {
        let set = RuleSet::new(super::load(path)?)?;
        let metrics = Arc::new(RuleMetrics::register(registry, firing_now)?);
        set.register(registry)?;
        metrics.init(&set);
        metrics.loaded(true);
        Ok(Self {
            path: path.to_owned(),
            registry: registry.clone(),
            metrics,
            tx: watch::Sender::new(Arc::new(set)),
        })
    }

    /// The current set, and each one a reload brings.
    pub fn subscribe(&self) -> watch::Receiver<Arc<RuleSet>> {
        self.tx.subscribe()
    }

    pub fn current(&self) -> Arc<RuleSet> {
        self.tx.borrow().clone()
    }

    /// Reloads the file. One with problems keeps the old rules, logs every problem and sets
    /// the last-reload-successful gauge to 0.
    pub fn reload(&self) {
        let path = self.path.display();
        let new = match super::load(&self.path) {
            Ok(rules) => rules,
            Err(errors) => {
                for e in &errors.0 {
                    tracing::error!(problem = %e, "rules config has a problem");
                }
                tracing::error!(config = %path, problems = errors.0.len(), "reload failed; keeping the previous rules");
                self.metrics.loaded(false);
                return;
            }
        };
        let old = self.current();
        old.unregister(&self.registry);
        let registered =
            RuleSet::new(new).and_then(|set| set.register(&self.registry).map(|()| set));
        let new = match registered {
            Ok(set) => set,
            Err(e) => {
                // The old counters were registered a moment ago, so they register again.
                let _ = old.register(&self.registry);
                tracing::error!(config = %path, error = %e, "reload failed: a metric action cannot be registered; keeping the previous rules");
                self.metrics.loaded(false);
                return;
            }
        };
        self.metrics.init(&new);
        self.metrics.loaded(true);
        tracing::info!(config = %path, rules = new.rules.rules.len(), "rules reloaded");
        self.tx.send_replace(Arc::new(new));
    }
}
