//! The rules layer's own series: matches by rule, actions by outcome, action durations, and the
//! state of the last load.

use prometheus::{
    Gauge, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry,
};

use std::sync::Arc;

use super::RuleSet;
use crate::docker::event::Event;
use crate::metrics::{Firing, FiringNow, families};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    Timeout,
    Dropped,
    Throttled,
}

impl Outcome {
    const ALL: [Self; 5] = [
        Self::Success,
        Self::Failure,
        Self::Timeout,
        Self::Dropped,
        Self::Throttled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Timeout => "timeout",
            Self::Dropped => "dropped",
            Self::Throttled => "throttled",
        }
    }
}

/// One rule's series.
#[derive(Debug)]
pub struct RuleSeries {
    pub matches: IntCounter,
    pub resolutions: IntCounter,
    pub muted: IntCounter,
    /// In the order of the rule's actions.
    pub actions: Vec<ActionSeries>,
}

#[derive(Debug)]
pub struct ActionSeries {
    pub duration: Histogram,
    /// By [`Outcome`], in its order.
    outcomes: [IntCounter; 5],
}

impl ActionSeries {
    pub fn count(&self, outcome: Outcome) {
        self.outcomes[outcome as usize].inc();
    }
}

/// The rules layer's own metrics.
pub struct RuleMetrics {
    pub matches: IntCounterVec,
    pub resolutions: IntCounterVec,
    pub muted: IntCounterVec,
    firing: IntGaugeVec,
    /// The open firings themselves, for the status page.
    pub(super) firing_now: Arc<FiringNow>,
    pub actions: IntCounterVec,
    pub duration: HistogramVec,
    pub reload_ok: IntGauge,
    pub reload_time: Gauge,
}

impl RuleMetrics {
    pub fn register(
        registry: &Registry,
        firing_now: Arc<FiringNow>,
    ) -> Result<Self, prometheus::Error> {
        let m = Self {
            matches: families::RULE_MATCHES.int_counter_vec()?,
            resolutions: families::RULE_RESOLUTIONS.int_counter_vec()?,
            muted: families::RULE_MUTED.int_counter_vec()?,
            firing: families::RULE_FIRING.int_gauge_vec()?,
            firing_now,
            actions: families::ACTIONS.int_counter_vec()?,
            duration: families::ACTION_DURATION.histogram_vec()?,
            reload_ok: families::CONFIG_RELOAD_OK.int_gauge()?,
            reload_time: families::CONFIG_RELOAD_TIME.gauge()?,
        };
        registry.register(Box::new(m.matches.clone()))?;
        registry.register(Box::new(m.resolutions.clone()))?;
        registry.register(Box::new(m.muted.clone()))?;
        registry.register(Box::new(m.firing.clone()))?;
        registry.register(Box::new(m.actions.clone()))?;
        registry.register(Box::new(m.duration.clone()))?;
        registry.register(Box::new(m.reload_ok.clone()))?;
        registry.register(Box::new(m.reload_time.clone()))?;
        Ok(m)
    }

    /// The series of rule `index` of `set`, made on its first firing and held by the set:
    /// looking them up by label on every firing was a sixth of the rules' cost.
    pub fn of<'s>(&self, set: &'s RuleSet, index: usize) -> &'s RuleSeries {
        let rule = &set.rules.rules[index];
        set.series[index].get_or_init(|| RuleSeries {
            matches: self.matches.with_label_values(&[&rule.name]),
            resolutions: self.resolutions.with_label_values(&[&rule.name]),
            muted: self.muted.with_label_values(&[&rule.name]),
            actions: rule
                .actions
                .iter()
                .map(|a| ActionSeries {
                    duration: self.duration.with_label_values(&[&rule.name, a.kind()]),
                    outcomes: Outcome::ALL.map(|o| {
                        self.actions
                            .with_label_values(&[&rule.name, a.kind(), o.as_str()])
                    }),
                })
                .collect(),
        })
    }

    /// The open firings of the rule named `rule`, over every engine (by name: a reload keeps
    /// them).
    pub fn firing(&self, rule: &str) -> IntGauge {
        self.firing.with_label_values(&[rule])
    }

    /// A firing of the rule named `rule`, on the engine named `engine`, of `actor` (its open
    /// firing's key: a container's ID, a Swarm slot, an engine), opened by `ev`.
    pub fn opened(&self, engine: &Arc<str>, rule: &str, actor: &str, ev: &Event) {
        self.firing(rule).inc();
        let firing = Firing {
            engine: engine.to_string(),
            rule: rule.to_owned(),
            name: ev.attr("name").unwrap_or(ev.actor_id()).to_owned(),
            action: ev.docker_action().into_owned(),
            since_nano: ev.time_nano,
        };
        self.firing_now.open(engine, actor, firing);
    }

    /// That firing, of the actor `actor_id`, resolved or let go.
    pub fn closed(&self, engine: &Arc<str>, rule: &str, actor_id: &str) {
        self.firing(rule).dec();
        self.firing_now.close(engine, rule, actor_id);
    }

    /// Counts an outcome of every action of rule `index` of `set`.
    pub fn count_all(&self, set: &RuleSet, index: usize, outcome: Outcome) {
        for a in &self.of(set, index).actions {
            a.count(outcome);
        }
    }

    /// Starts every action series of these rules at 0, so alerts see their first failure.
    pub fn init(&self, set: &RuleSet) {
        for r in &set.rules.rules {
            self.matches.with_label_values(&[&r.name]);
            self.muted.with_label_values(&[&r.name]);
            if r.opens() {
                self.resolutions.with_label_values(&[&r.name]);
                self.firing.with_label_values(&[&r.name]);
            }
            for a in &r.actions {
                for o in [Outcome::Success, Outcome::Failure, Outcome::Dropped] {
                    self.actions
                        .with_label_values(&[&r.name, a.kind(), o.as_str()]);
                }
            }
        }
    }

    pub fn loaded(&self, ok: bool) {
        self.reload_ok.set(i64::from(ok));
        if ok {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default();
            self.reload_time.set(now);
        }
    }
}
