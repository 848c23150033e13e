//! `metric`: increments a user-named counter with labels from placeholders, up to the rule's
//! series limit (further label sets are refused and counted as dropped).

use std::sync::Arc;

use super::{ActionResult, MAX_FIELD_BYTES, Outcome};
use crate::rules::MetricAction;
use crate::rules::template::Context;

/// Label values of a user metric are cut at this length.
const MAX_LABEL_VALUE_BYTES: usize = 256;

pub fn execute(a: &MetricAction, ctx: &Context<'_>, dry: super::Dry) -> ActionResult {
    for ev in ctx.events {
        let one = [Arc::clone(ev)];
        let single = Context {
            events: &one,
            rule: ctx.rule,
            host: ctx.host,
            ip: ctx.ip,
        };
        let values: Vec<String> = a
            .labels
            .iter()
            .map(|(_, t)| t.render(&single, MAX_FIELD_BYTES.min(MAX_LABEL_VALUE_BYTES)))
            .collect();
        if dry.on() {
            if dry.logs() {
                tracing::info!(rule = ctx.rule, metric = %a.name, labels = ?values, "dry run: would increment");
            }
            continue;
        }
        {
            // A poisoned lock only means another worker panicked mid-insert; the set is intact.
            let mut seen = a
                .seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if !seen.contains(&values) {
                if seen.len() >= a.max_series {
                    return Err((
                        Outcome::Dropped,
                        format!(
                            "{} already has {} series, its max_series; not adding {values:?}",
                            a.name,
                            seen.len()
                        ),
                    ));
                }
                seen.insert(values.clone());
            }
        }
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        a.counter.with_label_values(&refs).inc();
    }
    Ok(())
}
