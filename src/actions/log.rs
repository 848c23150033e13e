//! `log`: appends each event as one JSON line (the engine's format) to a file or to standard
//! output: an audit trail of container lifecycles.

use std::collections::HashMap;
use std::path::PathBuf;

use futures_util::future::BoxFuture;
use marked_yaml::Node;
use marked_yaml::types::MarkedMappingNode;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use super::{Action, ActionResult, BoxedAction, Outcome, Runtime};
use crate::rules::template::{Context, Template, payload};
use crate::rules::{ActionConfig, ActionKind, Checker};

/// The rule key that asks for this action, and its `action` label.
const NAME: &str = "log";

const KEYS: &[&str] = &["path"];

#[derive(Debug)]
pub struct LogAction {
    /// None: standard output.
    pub path: Option<PathBuf>,
}

/// `log: PATH`, `log: "-"` (standard output) or `log: {path: PATH}`.
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
        let place = format!("log of {place}");
        let path = match node {
            Node::Scalar(s) => s.as_str().to_owned(),
            Node::Mapping(map) => {
                c.known_keys(map, KEYS, &place);
                map.get_scalar("path")
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_else(|| "-".to_owned())
            }
            Node::Sequence(_) => {
                c.err(
                    node.span(),
                    format!("{place} must be a path, \"-\" for standard output, or {{path: ...}}"),
                );
                return None;
            }
        };
        Some(Box::new(LogAction {
            path: (path != "-" && !path.is_empty()).then(|| PathBuf::from(path)),
        }))
    }
}

impl ActionConfig for LogAction {
    fn templates(&self) -> Vec<&Template> {
        Vec::new()
    }
}

impl Action for LogAction {
    fn kind(&self) -> &'static str {
        NAME
    }

    fn dry_run(&self, ctx: &Context<'_>, log: bool) {
        let text = lines(ctx);
        if log {
            tracing::info!(rule = ctx.rule, path = ?self.path, lines = ctx.events.len(), bytes = text.len(), "dry run: would append");
        }
    }

    fn run<'a>(&'a self, ctx: &'a Context<'a>, rt: Runtime<'a>) -> BoxFuture<'a, ActionResult> {
        Box::pin(rt.logs.execute(self, ctx))
    }
}

/// Each event as one JSON line.
fn lines(ctx: &Context<'_>) -> String {
    let mut text = String::new();
    for ev in ctx.events {
        text.push_str(&payload(std::slice::from_ref(ev)));
        text.push('\n');
    }
    text
}

/// Open files, one per path, shared by every rule that logs there.
#[derive(Default)]
pub struct Writers {
    files: Mutex<HashMap<PathBuf, tokio::fs::File>>,
}

impl Writers {
    async fn execute(&self, a: &LogAction, ctx: &Context<'_>) -> ActionResult {
        let text = lines(ctx);
        let fail = |e: std::io::Error| {
            (
                Outcome::Failure,
                format!(
                    "writing to {}: {e}",
                    a.path
                        .as_ref()
                        .map_or("stdout".into(), |p| p.display().to_string())
                ),
            )
        };
        let Some(path) = &a.path else {
            let mut out = tokio::io::stdout();
            out.write_all(text.as_bytes()).await.map_err(fail)?;
            return out.flush().await.map_err(fail);
        };
        let mut files = self.files.lock().await;
        if !files.contains_key(path) {
            let f = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .await
                .map_err(fail)?;
            files.insert(path.clone(), f);
        }
        let Some(f) = files.get_mut(path) else {
            return Ok(());
        };
        let written = f.write_all(text.as_bytes()).await;
        if written.is_err() {
            // Reopen next time (the file may have been rotated away).
            files.remove(path);
        }
        written.map_err(fail)
    }
}
