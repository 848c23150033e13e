//! Actions: the bounded queue, the dispatcher (batching) and the worker pool, and one file per
//! action kind.
//!
//! The event reader calls [`Reactor::on_event`]: it matches, throttles and `try_send`s onto a
//! bounded queue, never waiting. When the queue is full the firing is dropped and counted, and
//! the stream and its metrics go on. The dispatcher takes firings off the queue, gathers batches,
//! and runs each action on a pool of at most `workers` at once; while the pool is busy the queue
//! fills, and that is where drops happen.

mod email;
mod log;
mod metric;
mod run;
mod webhook;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::{
    Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry,
};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::docker::Engine;
use crate::docker::event::Event;
use crate::rules::template::{Context, Template};
use crate::rules::{Action, Rule, Rules};

pub const RULE_MATCHES: &str = "docker_events_exporter_rule_matches_total";
pub const ACTIONS: &str = "docker_events_exporter_actions_total";
pub const ACTION_DURATION: &str = "docker_events_exporter_action_duration_seconds";
pub const CONFIG_RELOAD_OK: &str = "docker_events_exporter_config_last_reload_successful";
pub const CONFIG_RELOAD_TIME: &str =
    "docker_events_exporter_config_last_reload_success_timestamp_seconds";

/// Default firings waiting for the dispatcher.
pub const DEFAULT_QUEUE: usize = 1024;
/// Default actions running at once.
pub const DEFAULT_WORKERS: usize = 4;
/// Throttle keys remembered; past this, expired ones are forgotten first, then all.
const MAX_THROTTLE_KEYS: usize = 10_000;
/// How often a burst of drops is logged (each drop is counted).
const DROP_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Cap of one rendered argument, header, URL, subject or label value.
pub const MAX_FIELD_BYTES: usize = 64 * 1024;
/// Cap of a rendered body (webhook, e-mail, log line).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Action duration buckets: from 5 ms to two minutes (past the 30 s run timeout).
pub const ACTION_DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

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
    pub actions: IntCounterVec,
    pub duration: HistogramVec,
    pub reload_ok: IntGauge,
    pub reload_time: Gauge,
}

impl RuleMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self {
            matches: IntCounterVec::new(
                Opts::new(RULE_MATCHES, "Events matched, by rule."),
                &["rule"],
            )?,
            actions: IntCounterVec::new(
                Opts::new(
                    ACTIONS,
                    "Rule actions by outcome (success, failure, timeout, dropped, throttled).",
                ),
                &["rule", "action", "outcome"],
            )?,
            duration: HistogramVec::new(
                HistogramOpts::new(ACTION_DURATION, "Time an action took to run.")
                    .buckets(ACTION_DURATION_BUCKETS.to_vec()),
                &["rule", "action"],
            )?,
            reload_ok: IntGauge::new(
                CONFIG_RELOAD_OK,
                "1 if the last load of the rules config succeeded.",
            )?,
            reload_time: Gauge::new(
                CONFIG_RELOAD_TIME,
                "When the rules config last loaded successfully.",
            )?,
        };
        registry.register(Box::new(m.matches.clone()))?;
        registry.register(Box::new(m.actions.clone()))?;
        registry.register(Box::new(m.duration.clone()))?;
        registry.register(Box::new(m.reload_ok.clone()))?;
        registry.register(Box::new(m.reload_time.clone()))?;
        Ok(m)
    }

    /// A rule's series, held by the rule: looking them up by label on every firing was a
    /// sixth of the rules' cost. (A rule is compiled for one registry's metrics.)
    pub fn of<'r>(&self, rule: &'r Rule) -> &'r RuleSeries {
        rule.series.get_or_init(|| RuleSeries {
            matches: self.matches.with_label_values(&[&rule.name]),
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

    /// Counts an outcome of every action of `rule`.
    fn count_all(&self, rule: &Rule, outcome: Outcome) {
        for a in &self.of(rule).actions {
            a.count(outcome);
        }
    }

    /// Starts every action series of these rules at 0, so alerts see their first failure.
    pub fn init(&self, rules: &Rules) {
        for r in &rules.rules {
            self.matches.with_label_values(&[&r.name]);
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

/// Loads a rules file at start-up (the live exporter's and replay's): registers the rules
/// layer's metrics and the rules' own counters, and starts their series at 0.
pub fn load_rules(
    path: &std::path::Path,
    registry: &Registry,
) -> anyhow::Result<(Rules, Arc<RuleMetrics>)> {
    let loaded = crate::rules::load(path)?;
    let rule_metrics = Arc::new(RuleMetrics::register(registry)?);
    for c in loaded.metric_collectors() {
        registry.register(Box::new(c.clone()))?;
    }
    rule_metrics.init(&loaded);
    rule_metrics.loaded(true);
    Ok((loaded, rule_metrics))
}

/// Whether actions act.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dry {
    /// Act.
    Off,
    /// Render, and log what would be done (`--dry-run`).
    Log,
    /// Render only (replay: measure the work without the logging).
    Silent,
}

impl Dry {
    pub fn on(self) -> bool {
        self != Self::Off
    }

    pub fn logs(self) -> bool {
        self == Self::Log
    }
}

/// One firing of a rule: one event, or a batch's digest.
pub struct Fire {
    pub rule: Arc<Rule>,
    pub events: Vec<Arc<Event>>,
}

/// The reader's side: match, throttle, enqueue. Never waits.
pub struct Reactor {
    rules: watch::Receiver<Arc<Rules>>,
    queue: mpsc::Sender<Fire>,
    metrics: Arc<RuleMetrics>,
    throttled_until: HashMap<(String, String), Instant>,
    host: Arc<str>,
    drops_since_log: u64,
    last_drop_log: Option<Instant>,
}

impl Reactor {
    pub fn new(
        rules: watch::Receiver<Arc<Rules>>,
        queue: mpsc::Sender<Fire>,
        metrics: Arc<RuleMetrics>,
        host: Arc<str>,
    ) -> Self {
        Self {
            rules,
            queue,
            metrics,
            throttled_until: HashMap::new(),
            host,
            drops_since_log: 0,
            last_drop_log: None,
        }
    }

    /// Matches, throttles and queues; never waits.
    pub fn on_event(&mut self, ev: &Event) {
        for fire in self.fires(ev) {
            // A refused send hands the firing back.
            if let Err(refused) = self.queue.try_send(fire) {
                let rule = refused.into_inner().rule;
                self.metrics.count_all(&rule, Outcome::Dropped);
                self.log_drop(&rule.name);
            }
        }
    }

    /// The firings an event causes: matched and past their throttle.
    pub fn fires(&mut self, ev: &Event) -> Vec<Fire> {
        self.fires_sharing(ev, || Arc::new(ev.clone()))
    }

    /// [`Reactor::fires`] for a caller done with the event (replay): its firings share it
    /// without a copy.
    pub fn fires_owned(&mut self, ev: Event) -> Vec<Fire> {
        let ev = Arc::new(ev);
        self.fires_sharing(&ev, || ev.clone())
    }

    /// The firings of `ev`; `share` makes the shared copy, once, if one fires.
    fn fires_sharing(&mut self, ev: &Event, mut share: impl FnMut() -> Arc<Event>) -> Vec<Fire> {
        let rules = self.rules.borrow().clone();
        let mut fires = Vec::new();
        let mut shared: Option<Arc<Event>> = None;
        for rule in &rules.rules {
            if !rule.is_match(ev) {
                continue;
            }
            self.metrics.of(rule).matches.inc();
            let ev = shared.get_or_insert_with(&mut share).clone();
            if let Some(t) = &rule.throttle
                && self.throttled(rule, &t.key, t.interval, &ev)
            {
                self.metrics.count_all(rule, Outcome::Throttled);
                continue;
            }
            fires.push(Fire {
                rule: rule.clone(),
                events: vec![ev],
            });
        }
        fires
    }

    fn throttled(
        &mut self,
        rule: &Rule,
        key: &Template,
        interval: Duration,
        ev: &Arc<Event>,
    ) -> bool {
        let events = [ev.clone()];
        let ctx = Context {
            events: &events,
            rule: &rule.name,
            host: &self.host,
            ip: None,
        };
        let key = (rule.name.clone(), key.render(&ctx, MAX_FIELD_BYTES));
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
                "action queue full: actions are slower than the events that trigger them; dropping (counted in docker_events_exporter_actions_total{{outcome=\"dropped\"}})"
            );
            self.drops_since_log = 0;
            self.last_drop_log = Some(now);
        }
    }
}

/// What actions need to run.
pub struct Executor {
    pub metrics: Arc<RuleMetrics>,
    pub dry: Dry,
    pub host: Arc<str>,
    pub engine: Option<Engine>,
    pub http: reqwest::Client,
    pub logs: log::Writers,
}

impl Executor {
    pub fn new(
        metrics: Arc<RuleMetrics>,
        dry: Dry,
        host: Arc<str>,
        engine: Option<Engine>,
    ) -> Self {
        Self {
            metrics,
            dry,
            host,
            engine,
            http: http_client(),
            logs: log::Writers::default(),
        }
    }

    /// Runs one action of one firing, and counts and logs how it went.
    pub async fn execute(&self, fire: &Fire, index: usize) {
        let Some(action) = fire.rule.actions.get(index) else {
            return;
        };
        let ip = match (fire.rule.uses_ip, &self.engine, fire.events.first()) {
            (true, Some(engine), Some(ev)) => engine.container_ip(ev.actor_id()).await,
            _ => None,
        };
        let ctx = Context {
            events: &fire.events,
            rule: &fire.rule.name,
            host: &self.host,
            ip: ip.as_deref(),
        };
        // A dry run renders and does nothing: it has no duration worth a histogram (and two
        // clock reads per firing were a twentieth of a dry replay's time).
        let start = (!self.dry.on()).then(Instant::now);
        let result = match action {
            Action::Run(a) => run::execute(a, &ctx, self.dry).await,
            Action::Webhook(a) => webhook::execute(a, &ctx, &self.http, self.dry).await,
            Action::Log(a) => self.logs.execute(a, &ctx, self.dry).await,
            Action::Email(a) => email::execute(a, &ctx, self.dry).await,
            Action::Metric(a) => metric::execute(a, &ctx, self.dry),
        };
        let rule = fire.rule.name.as_str();
        let kind = action.kind();
        // `index` is in range: the action was found above.
        let series = &self.metrics.of(&fire.rule).actions[index];
        if let Some(start) = start {
            series.duration.observe(start.elapsed().as_secs_f64());
        }
        match &result {
            Ok(()) => tracing::debug!(
                rule,
                action = kind,
                events = fire.events.len(),
                "action done"
            ),
            Err((outcome, why)) => {
                tracing::warn!(rule, action = kind, outcome = outcome.as_str(), error = %why, "action failed")
            }
        }
        series.count(result.map_or_else(|(o, _)| o, |()| Outcome::Success));
    }
}

fn http_client() -> reqwest::Client {
    // reqwest is built without a bundled provider; ring is ours (a no-op if main did it).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(concat!(
            "docker-events-exporter/",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
        // With a provider installed, building can only fail on bad builder options, and ours
        // are fixed.
        .expect("the webhook HTTP client builds")
}

/// An action's result: `Err((Failure | Timeout, why))`.
pub type ActionResult = Result<(), (Outcome, String)>;

struct Batch {
    rule: Arc<Rule>,
    until: tokio::time::Instant,
    pending: Vec<Arc<Event>>,
}

/// Takes firings off the queue, gathers batches, runs actions on the bounded pool. On cancel,
/// flushes pending batches and returns; running actions finish on `tasks`.
pub async fn dispatch(
    mut queue: mpsc::Receiver<Fire>,
    executor: Arc<Executor>,
    workers: usize,
    tasks: TaskTracker,
    cancel: CancellationToken,
) {
    let pool = Arc::new(Semaphore::new(workers.max(1)));
    let mut batches: HashMap<String, Batch> = HashMap::new();
    loop {
        let next_flush = batches.values().map(|b| b.until).min();
        tokio::select! {
            _ = cancel.cancelled() => break,
            fire = queue.recv() => {
                let Some(fire) = fire else { break };
                accept(fire, &mut batches, &executor, &pool, &tasks).await;
            }
            _ = sleep_until(next_flush) => {
                let now = tokio::time::Instant::now();
                let due: Vec<String> = batches.iter().filter(|(_, b)| b.until <= now).map(|(k, _)| k.clone()).collect();
                for name in due {
                    let Some(mut b) = batches.remove(&name) else { continue };
                    if b.pending.is_empty() {
                        continue;
                    }
                    // A digest goes out and opens the next window.
                    let events = std::mem::take(&mut b.pending);
                    let window = b.rule.batch.unwrap_or_default();
                    batches.insert(name, Batch { rule: b.rule.clone(), until: now + window, pending: Vec::new() });
                    start(Fire { rule: b.rule, events }, &executor, &pool, &tasks).await;
                }
            }
        }
    }
    // Shutdown: what is still queued is taken in, then every pending batch goes out.
    queue.close();
    while let Ok(fire) = queue.try_recv() {
        accept(fire, &mut batches, &executor, &pool, &tasks).await;
    }
    for (_, b) in batches.drain() {
        if !b.pending.is_empty() {
            tracing::info!(rule = %b.rule.name, events = b.pending.len(), "flushing a pending batch at shutdown");
            start(
                Fire {
                    rule: b.rule,
                    events: b.pending,
                },
                &executor,
                &pool,
                &tasks,
            )
            .await;
        }
    }
}

/// Starts a firing now, or adds it to its rule's open batch window.
async fn accept(
    fire: Fire,
    batches: &mut HashMap<String, Batch>,
    executor: &Arc<Executor>,
    pool: &Arc<Semaphore>,
    tasks: &TaskTracker,
) {
    let Some(window) = fire.rule.batch else {
        return start(fire, executor, pool, tasks).await;
    };
    match batches.get_mut(&fire.rule.name) {
        // A window is open: the event waits for the digest.
        Some(b) if b.until > tokio::time::Instant::now() => {
            b.rule = fire.rule.clone();
            b.pending.extend(fire.events);
        }
        _ => {
            batches.insert(
                fire.rule.name.clone(),
                Batch {
                    rule: fire.rule.clone(),
                    until: tokio::time::Instant::now() + window,
                    pending: Vec::new(),
                },
            );
            start(fire, executor, pool, tasks).await;
        }
    }
}

async fn sleep_until(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Starts every action of a firing, each when a worker is free.
async fn start(fire: Fire, executor: &Arc<Executor>, pool: &Arc<Semaphore>, tasks: &TaskTracker) {
    let fire = Arc::new(fire);
    for index in 0..fire.rule.actions.len() {
        let Ok(permit) = pool.clone().acquire_owned().await else {
            return;
        };
        let (fire, executor) = (fire.clone(), executor.clone());
        tasks.spawn(async move {
            let _permit = permit;
            executor.execute(&fire, index).await;
        });
    }
}
