//! `metric`: increments a user-named counter with labels from placeholders, up to the rule's
//! series limit (further label sets are refused and counted as dropped).
//!
//! The config is plain data; the counter itself and the label sets it has are made when the
//! rules are loaded ([`Action::live`]) and go with them at the next reload.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use marked_yaml::Node;
use marked_yaml::types::MarkedMappingNode;
use prometheus::{IntCounterVec, Opts};

use super::{Action, ActionResult, BoxedAction, Live, MAX_FIELD_BYTES, Outcome, Runtime};
use crate::rules::template::{Context, Template};
use crate::rules::{ActionConfig, ActionKind, Checker};

/// The rule key that asks for this action, and its `action` label.
const NAME: &str = "metric";

/// Default label sets a metric may have.
pub const DEFAULT_MAX_SERIES: usize = 100;
/// Label values of a user metric are cut at this length.
const MAX_LABEL_VALUE_BYTES: usize = 256;
const KEYS: &[&str] = &["name", "help", "labels", "max_series"];

#[derive(Debug)]
pub struct MetricAction {
    pub name: String,
    pub help: String,
    pub labels: Vec<(String, Template)>,
    pub max_series: usize,
}

/// A user metric while its rules are loaded.
#[derive(Debug)]
pub struct Counter {
    pub counter: IntCounterVec,
    /// The label sets created so far, to hold `max_series`.
    seen: Mutex<HashSet<Vec<String>>>,
}

/// `metric: {name: ..., labels: {...}}`.
pub struct Kind;

impl ActionKind<BoxedAction> for Kind {
    fn key(&self) -> &'static str {
        NAME
    }

    fn compile(
        &self,
        c: &mut Checker<'_>,
        node: &Node,
        _rule: &MarkedMappingNode,
        place: &str,
    ) -> Option<BoxedAction> {
        let place = format!("metric of {place}");
        let map = c.keyed_mapping(node, KEYS, &place)?;
        let Some(name) = map.get_scalar("name") else {
            c.err(
                node.span(),
                format!("{place} needs a name, e.g. name: container_crashes_total"),
            );
            return None;
        };
        let valid = {
            let mut chars = name.as_str().chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        };
        if !valid {
            c.err(
                name.span(),
                format!(
                    "{:?} is not a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)",
                    name.as_str()
                ),
            );
            return None;
        }
        if name.as_str().starts_with("docker_") || name.as_str().starts_with("process_") {
            c.err(name.span(), format!("metric name {:?}: names starting with docker_ or process_ are the exporter's own; choose another prefix", name.as_str()));
            return None;
        }
        if !c.claim("metric name", name.as_str()) {
            c.err(
                name.span(),
                format!("metric name {:?} is used by another rule", name.as_str()),
            );
            return None;
        }
        let help = map.get_scalar("help").map_or_else(
            || format!("Counted by rule {place}."),
            |h| h.as_str().to_owned(),
        );
        let mut labels = Vec::new();
        if let Some(n) = map.get_node("labels") {
            let l = c.mapping(n, &format!("labels of {place}"))?;
            for (k, v) in l.iter() {
                let ok = {
                    let mut c = k.as_str().chars();
                    c.next()
                        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
                        && !k.as_str().starts_with("__")
                };
                if !ok {
                    c.err(
                        k.span(),
                        format!("{:?} is not a Prometheus label name", k.as_str()),
                    );
                    continue;
                }
                let Some(s) = c.scalar(v, &format!("label {} of {place}", k.as_str())) else {
                    continue;
                };
                labels.extend(c.template(s).map(|t| (k.as_str().to_owned(), t)));
            }
        }
        let max_series = match map.get_scalar("max_series") {
            Some(m) => match m.as_str().parse::<usize>() {
                Ok(n) if (1..=100_000).contains(&n) => n,
                _ => {
                    c.err(
                        m.span(),
                        format!("max_series of {place} must be a whole number from 1 to 100000"),
                    );
                    return None;
                }
            },
            None => DEFAULT_MAX_SERIES,
        };
        let action = MetricAction {
            name: name.as_str().to_owned(),
            help,
            labels,
            max_series,
        };
        // What the registry would refuse at load (a label twice, say) is a problem of the file.
        if let Err(e) = action.counter() {
            c.err(name.span(), format!("{place}: {e}"));
            return None;
        }
        Some(Box::new(action))
    }
}

impl MetricAction {
    fn counter(&self) -> prometheus::Result<IntCounterVec> {
        let names: Vec<&str> = self.labels.iter().map(|(k, _)| k.as_str()).collect();
        IntCounterVec::new(Opts::new(self.name.as_str(), self.help.as_str()), &names)
    }

    /// Each event's label values.
    fn values<'c>(&'c self, ctx: &'c Context<'_>) -> impl Iterator<Item = Vec<String>> + 'c {
        ctx.events.iter().map(move |ev| {
            let one = [Arc::clone(ev)];
            let single = Context {
                events: &one,
                ..*ctx
            };
            self.labels
                .iter()
                .map(|(_, t)| t.render(&single, MAX_FIELD_BYTES.min(MAX_LABEL_VALUE_BYTES)))
                .collect()
        })
    }
}

impl ActionConfig for MetricAction {
    fn templates(&self) -> Vec<&Template> {
        self.labels.iter().map(|(_, t)| t).collect()
    }
}

impl Action for MetricAction {
    fn kind(&self) -> &'static str {
        NAME
    }

    fn live(&self) -> prometheus::Result<Live> {
        Ok(Live {
            counter: Some(Counter {
                counter: self.counter()?,
                seen: Mutex::default(),
            }),
        })
    }

    fn dry_run(&self, ctx: &Context<'_>, log: bool) {
        for values in self.values(ctx) {
            if log {
                tracing::info!(rule = ctx.rule, metric = %self.name, labels = ?values, "dry run: would increment");
            }
        }
    }

    fn run<'a>(&'a self, ctx: &'a Context<'a>, rt: Runtime<'a>) -> BoxFuture<'a, ActionResult> {
        Box::pin(std::future::ready(self.count(ctx, rt.live)))
    }
}

impl MetricAction {
    fn count(&self, ctx: &Context<'_>, live: &Live) -> ActionResult {
        let Some(c) = &live.counter else {
            return Err((Outcome::Failure, format!("{} is not registered", self.name)));
        };
        for values in self.values(ctx) {
            {
                // A poisoned lock only means another worker panicked mid-insert; the set is intact.
                let mut seen = c
                    .seen
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if !seen.contains(&values) {
                    if seen.len() >= self.max_series {
                        return Err((
                            Outcome::Dropped,
                            format!(
                                "{} already has {} series, its max_series; not adding {values:?}",
                                self.name,
                                seen.len()
                            ),
                        ));
                    }
                    seen.insert(values.clone());
                }
            }
            let refs: Vec<&str> = values.iter().map(String::as_str).collect();
            c.counter.with_label_values(&refs).inc();
        }
        Ok(())
    }
}
