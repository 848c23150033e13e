//! `log`: appends each event as one JSON line (the engine's format) to a file or to standard
//! output: an audit trail of container lifecycles.

use std::collections::HashMap;
use std::path::PathBuf;

use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use super::ActionResult;
use super::Outcome;
use crate::rules::LogAction;
use crate::rules::template::{Context, payload};

/// Open files, one per path, shared by every rule that logs there.
#[derive(Default)]
pub struct Writers {
    files: Mutex<HashMap<PathBuf, tokio::fs::File>>,
}

impl Writers {
    pub async fn execute(&self, a: &LogAction, ctx: &Context<'_>, dry: super::Dry) -> ActionResult {
        let mut text = String::new();
        for ev in ctx.events {
            text.push_str(&payload(std::slice::from_ref(ev)));
            text.push('\n');
        }
        if dry.on() {
            if dry.logs() {
                tracing::info!(rule = ctx.rule, path = ?a.path, lines = ctx.events.len(), "dry run: would append");
            }
            return Ok(());
        }
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
