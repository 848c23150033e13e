//! Running one action of one firing: the dry run decided here, once for every kind; the
//! duration observed, the outcome counted and logged.

use std::sync::Arc;
use std::time::Instant;

use super::log::Writers;
use super::{Dry, Fire, Outcome, RuleMetrics, Runtime};
use crate::docker::Engine;
use crate::rules::template::Context;

/// What actions need to run.
pub struct Executor {
    pub metrics: Arc<RuleMetrics>,
    pub dry: Dry,
    pub host: Arc<str>,
    /// Looks up `%%ip%%`; none in a replay.
    pub engine: Option<Engine>,
    http: reqwest::Client,
    logs: Writers,
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
            logs: Writers::default(),
        }
    }

    /// Runs one action of one firing, and counts and logs how it went.
    pub async fn execute(&self, fire: &Fire, index: usize) {
        let rule = fire.rule();
        let Some(action) = rule.actions.get(index) else {
            return;
        };
        let ip = match (rule.uses_ip, &self.engine, fire.events.first()) {
            (true, Some(engine), Some(ev)) => engine.container_ip(ev.actor_id()).await,
            _ => None,
        };
        let ctx = Context {
            events: &fire.events,
            rule: &rule.name,
            host: &self.host,
            ip: ip.as_deref(),
        };
        // `index` is in range: the action was found above.
        let series = &self.metrics.of(&fire.set, fire.index).actions[index];
        let kind = action.kind();
        if self.dry != Dry::Off {
            // A dry run renders and does nothing: it has no duration worth a histogram (and
            // two clock reads per firing were a twentieth of a dry replay's time).
            action.dry_run(&ctx, self.dry == Dry::Log);
            tracing::debug!(rule = %rule.name, action = kind, events = fire.events.len(), "action done (dry run)");
            series.count(Outcome::Success);
            return;
        }
        let rt = Runtime {
            http: &self.http,
            logs: &self.logs,
            live: fire.set.live(fire.index, index),
            secret_vars: &fire.set.rules.secret_vars,
        };
        let start = Instant::now();
        let result = action.run(&ctx, rt).await;
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
