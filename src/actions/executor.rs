//! Running one action of one firing: the dry run decided here, once for every kind; the
//! duration observed, the outcome counted and logged.

use std::sync::Arc;
use std::time::Instant;

use futures_util::future::OptionFuture;

use super::log::Writers;
use super::{Dry, Fire, Outcome, RuleMetrics, Runtime};
use crate::docker::event::ObjectType;
use crate::rules::template::{Context, LookedUp};

/// What actions need to run.
pub struct Executor {
    pub metrics: Arc<RuleMetrics>,
    pub dry: Dry,
    http: reqwest::Client,
    logs: Writers,
}

impl Executor {
    pub fn new(metrics: Arc<RuleMetrics>, dry: Dry) -> Self {
        Self {
            metrics,
            dry,
            http: http_client(),
            logs: Writers::default(),
        }
    }

    /// Runs one action of one firing (or its dry run), and counts and logs how it went.
    pub async fn execute(&self, fire: &Fire, index: usize) {
        let rule = fire.rule();
        let Some(action) = rule.actions.get(index) else {
            return;
        };
        // Asked of the engine only for a container's event of a rule that uses them.
        let container = match (&fire.origin.api, fire.events.first()) {
            (Some(engine), Some(ev)) if ev.object == ObjectType::Container => {
                Some((engine, ev.actor_id()))
            }
            _ => None,
        };
        let (ip, logs, health_output) = match container {
            Some((engine, id)) => (
                OptionFuture::from(rule.uses_ip.then(|| engine.container_ip(id)))
                    .await
                    .flatten(),
                OptionFuture::from(rule.logs.map(|lines| engine.container_logs(id, lines))).await,
                OptionFuture::from(
                    rule.uses_health_output
                        .then(|| engine.container_health_output(id)),
                )
                .await,
            ),
            None => (None, None, None),
        };
        let looked_up = LookedUp {
            ip: ip.as_deref(),
            logs: logs.as_deref(),
            health_output: health_output.as_deref(),
        };
        if self.dry != Dry::Off {
            return self.dry_run(fire, index, looked_up);
        }
        let ctx = self.context(fire, looked_up);
        let rt = Runtime {
            http: &self.http,
            logs: &self.logs,
            live: fire.set.live(fire.index, index),
            secret_vars: &fire.set.rules.secret_vars,
        };
        let kind = action.kind();
        let start = Instant::now();
        let result = action.run(&ctx, rt).await;
        // `index` is in range: the action was found above.
        let series = &self.metrics.of(&fire.set, fire.index).actions[index];
        series.duration.observe(start.elapsed().as_secs_f64());
        match &result {
            Ok(()) => tracing::debug!(
                rule = %rule.name,
                action = kind,
                events = fire.events.len(),
                "action done"
            ),
            Err((outcome, why)) => {
                tracing::warn!(rule = %rule.name, action = kind, outcome = outcome.as_str(), error = %why, "action failed")
            }
        }
        series.count(result.map_or_else(|(o, _)| o, |()| Outcome::Success));
    }

    /// The dry run of one action of one firing: rendered, logged with [`Dry::Log`], counted as
    /// a success, done nothing. It has no duration worth a histogram (and two clock reads per
    /// firing were a twentieth of a dry replay's time).
    pub fn dry_run(&self, fire: &Fire, index: usize, looked_up: LookedUp<'_>) {
        let Some(action) = fire.rule().actions.get(index) else {
            return;
        };
        action.dry_run(&self.context(fire, looked_up), self.dry == Dry::Log);
        tracing::debug!(rule = %fire.rule().name, action = action.kind(), events = fire.events.len(), "action done (dry run)");
        // `index` is in range: the action was found above.
        self.metrics.of(&fire.set, fire.index).actions[index].count(Outcome::Success);
    }

    fn context<'a>(&'a self, fire: &'a Fire, looked_up: LookedUp<'a>) -> Context<'a> {
        Context {
            events: &fire.events,
            rule: &fire.rule().name,
            host: &fire.origin.host,
            engine: &fire.origin.engine,
            opened_by: fire.opened_by.as_ref(),
            looked_up,
            condition: fire.condition.as_deref(),
        }
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
