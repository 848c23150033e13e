//! `replay FILE`: events saved with `docker events --format '{{json .}}'` run through the same
//! pipeline as the live stream (decode, metrics, and with `--config` the rules, whose actions
//! run dry: rendered, never done). Operators use it to analyse a saved log; we use it to
//! measure the pipeline without the engine's speed in the way.
//!
//! Series expire by event time, so a day of events replays as a day. Batches (wall-clock
//! windows) do not apply: each firing is rendered at once.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tokio::sync::watch;

use crate::actions::{Dry, Executor, Reactor};
use crate::cli::Cli;
use crate::docker::stream::{LineOutcome, MAX_LINE_BYTES, process_line};
use crate::metrics::Metrics;
use crate::metrics::tracker::{Clock, Tracker};

/// How often (in events) expired series are swept during a replay.
const SWEEP_EVERY: u64 = 16_384;
/// Read buffer: large enough that system calls do not count, small enough to stay in the L2
/// cache between the kernel's copy and the scanner's read (1 MiB reads made the copy a fifth
/// of the time; 128 KiB, a twelfth).
const READ_BUFFER: usize = 1 << 17;

/// What a replay did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub events: u64,
    pub unreadable: u64,
    pub seconds: f64,
    pub label_sets: usize,
}

impl Summary {
    pub fn per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.events as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// Replays `file` ("-" for standard input) into `metrics`.
pub async fn replay(cli: &Cli, file: &Path, metrics: &Arc<Metrics>) -> anyhow::Result<Summary> {
    let input: Box<dyn Read> = if file == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(
            std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?,
        )
    };
    let reader = BufReader::with_capacity(READ_BUFFER, input);
    replay_from(cli, reader, file, metrics).await
}

/// Replays what `reader` reads (`file` names it in errors) into `metrics`.
async fn replay_from(
    cli: &Cli,
    mut reader: impl BufRead,
    file: &Path,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Summary> {
    let mut tracker = Tracker::new(metrics.clone(), cli.series_ttl, None).with_clock(Clock::Events);
    let mut rules = match &cli.config {
        Some(path) => {
            let (loaded, rule_metrics) = crate::actions::load_rules(path, &metrics.registry)?;
            let host: Arc<str> = "replay".into();
            let executor = Executor::new(rule_metrics.clone(), Dry::Silent, host.clone(), None);
            let (_tx, rx) = watch::channel(Arc::new(loaded));
            // The queue is never used: replay takes the firings directly.
            let (queue, _) = tokio::sync::mpsc::channel(1);
            Some((Reactor::new(rx, queue, rule_metrics, host), executor))
        }
        None => None,
    };
    let mut summary = Summary::default();
    let mut newest = 0;
    // A line cut by the end of a read, and whether it is already too long to be an event.
    let mut partial = Vec::new();
    let mut overlong = false;
    let start = Instant::now();
    loop {
        // Lines are taken where they lie in the read buffer; only one cut by the buffer's end
        // is copied.
        let chunk = reader
            .fill_buf()
            .with_context(|| format!("reading {}", file.display()))?;
        let read = chunk.len();
        let mut rest = chunk;
        let last = read == 0;
        loop {
            let line = match memchr::memchr(b'\n', rest) {
                Some(n) => {
                    let line = &rest[..n];
                    rest = &rest[n + 1..];
                    line
                }
                // The end of the input ends its last line.
                None if last => std::mem::take(&mut rest),
                None => break,
            };
            let line = if partial.is_empty() && !overlong {
                line
            } else {
                partial.extend_from_slice(line);
                &partial[..]
            };
            if overlong || line.len() > MAX_LINE_BYTES {
                metrics.decode_errors.inc();
                summary.unreadable += 1;
            } else if !(last && line.is_empty()) {
                let ev = process_line(line, None, &mut tracker, None, metrics, &mut newest);
                apply(ev, &mut summary, rules.as_mut(), &mut tracker).await;
            }
            partial.clear();
            overlong = false;
            if last {
                break;
            }
        }
        if last {
            break;
        }
        if !overlong {
            partial.extend_from_slice(rest);
            if partial.len() > MAX_LINE_BYTES {
                partial.clear();
                overlong = true;
            }
        }
        reader.consume(read);
    }
    tracker.sweep();
    summary.seconds = start.elapsed().as_secs_f64();
    summary.label_sets = tracker.series_count();
    Ok(summary)
}

/// Counts what a line did and runs the rules on its event.
async fn apply(
    outcome: LineOutcome,
    summary: &mut Summary,
    rules: Option<&mut (Reactor, Executor)>,
    tracker: &mut Tracker,
) {
    let ev = match outcome {
        LineOutcome::Applied(ev) => ev,
        LineOutcome::DecodeError => {
            summary.unreadable += 1;
            return;
        }
        LineOutcome::Duplicate | LineOutcome::Blank => return,
    };
    summary.events += 1;
    if let Some((reactor, executor)) = rules {
        for fire in reactor.fires_owned(ev) {
            for index in 0..fire.rule.actions.len() {
                executor.execute(&fire, index).await;
            }
        }
    }
    if summary.events % SWEEP_EVERY == 0 {
        tracker.sweep();
    }
}

/// The `replay` subcommand: replay, then print the metrics (or serve them with `serve`).
pub async fn run(cli: &Cli, file: &Path, serve: bool) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new(&cli.container_labels)?);
    let summary = replay(cli, file, &metrics).await?;
    eprintln!(
        "replayed {} events ({} unreadable) in {:.3} s: {:.0} events/s; {} label sets; peak RSS {}",
        summary.events,
        summary.unreadable,
        summary.seconds,
        summary.per_second(),
        summary.label_sets,
        peak_rss().map_or_else(
            || "unknown".to_owned(),
            |kb| format!("{:.1} MiB", kb as f64 / 1024.0)
        ),
    );
    if !serve {
        std::io::stdout().write_all(metrics.encode().as_bytes())?;
        return Ok(());
    }
    let web = crate::app::load_web_config(cli)?;
    let listener = crate::app::bind(&cli.listen_address).await?;
    tracing::info!(address = %listener.local_addr()?, web = %web.summary(), "serving the replayed metrics; Ctrl-C to stop");
    let app = crate::server::router(crate::server::AppState {
        metrics,
        telemetry_path: cli.telemetry_path.clone(),
        scrapes: crate::server::ScrapeLimits::default(),
        auth: web.auth,
    });
    let stop = tokio_util::sync::CancellationToken::new();
    let on_ctrl_c = stop.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        on_ctrl_c.cancel();
    });
    crate::server::serve(
        listener,
        app,
        web.tls,
        stop,
        std::time::Duration::from_secs(5),
    )
    .await?;
    Ok(())
}

/// The process's peak resident set (VmHWM), in KiB.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// Lines cut by the end of a read, a blank line, a bad one, one past the line limit and a
    /// last one without its newline: each counted once, whatever the read size.
    #[tokio::test]
    async fn lines_are_whole_whatever_the_reads_cut() {
        let event = |n: u32| {
            format!(
                r#"{{"Type":"container","Action":"start","Actor":{{"ID":"c{n}","Attributes":{{"name":"web-{n}"}}}},"scope":"local","time":1,"timeNano":{n}}}"#
            )
        };
        let input = format!(
            "{}\n{}\n\n{{not json\n{}\n{}\n{}",
            event(1),
            event(2),
            "x".repeat(MAX_LINE_BYTES + 10),
            event(3),
            event(4),
        );
        let cli = Cli::try_parse_from(["docker-events-exporter"]).expect("defaults parse");
        for capacity in [1, 7, 64, 4096, READ_BUFFER] {
            let metrics = Arc::new(Metrics::new(&[]).expect("metrics"));
            let reader = BufReader::with_capacity(capacity, input.as_bytes());
            let summary = replay_from(&cli, reader, Path::new("test"), &metrics)
                .await
                .expect("replays");
            assert_eq!(
                (
                    summary.events,
                    summary.unreadable,
                    metrics.decode_errors.get()
                ),
                (4, 2, 2),
                "reads of {capacity} bytes"
            );
            let text = metrics.encode();
            for n in 1..=4 {
                assert!(
                    text.contains(&format!("name=\"web-{n}\"")),
                    "web-{n} with reads of {capacity}"
                );
            }
        }
    }
}
