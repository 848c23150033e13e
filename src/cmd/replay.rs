//! `replay FILE`: events saved with `docker events --format '{{json .}}'` run through the same
//! pipeline as the live stream (decode, metrics, and with `--config` the rules, whose actions
//! run dry: rendered, never done). Operators use it to analyse a saved log; we use it to
//! measure the pipeline without the engine's speed in the way.
//!
//! Series expire by event time, so a day of events replays as a day. Batches (wall-clock
//! windows) do not apply: each firing is rendered at once. Several files are several engines'
//! logs: each is replayed as its own engine, named after its file, as the daemon watches
//! several engines.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

use crate::actions::{Dry, Executor, Origin, Reactor};
use crate::docker::lines::{Lines, Piece};
use crate::history::{Histories, History};
use crate::metrics::Metrics;
use crate::metrics::tracker::{Clock, Tracker};
use crate::pipeline::{LineOutcome, Pipeline};
use crate::settings::Settings;

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

/// Replays `file` ("-" for standard input) into `metrics` (and `history`), as the engine
/// named `engine`.
pub fn replay(
    settings: &Settings,
    file: &Path,
    engine: &str,
    metrics: &Arc<Metrics>,
    history: Option<Arc<History>>,
) -> anyhow::Result<Summary> {
    let input: Box<dyn Read> = if file == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(
            std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?,
        )
    };
    let reader = BufReader::with_capacity(READ_BUFFER, input);
    replay_from(settings, reader, file, engine, metrics, history)
}

/// Replays what `reader` reads (`file` names it in errors) into `metrics`. Each firing's
/// actions run dry as soon as its event is applied.
fn replay_from(
    settings: &Settings,
    mut reader: impl BufRead,
    file: &Path,
    engine: &str,
    metrics: &Arc<Metrics>,
    history: Option<Arc<History>>,
) -> anyhow::Result<Summary> {
    let tracker = Tracker::for_engine(metrics.engine(engine), settings.metrics.series_ttl)
        .with_clock(Clock::Events);
    let (reactor, executor) = match &settings.rules.config {
        Some(path) => {
            let loaded =
                crate::actions::Loaded::start(path, &metrics.registry, metrics.firing_now.clone())?;
            let executor = Executor::new(loaded.metrics.clone(), Dry::Silent);
            let reactor = Reactor::keeping(
                loaded.subscribe(),
                loaded.metrics.clone(),
                Origin::offline(engine),
            );
            (Some(reactor), Some(executor))
        }
        None => (None, None),
    };
    let mut pipeline = Pipeline::new(tracker, reactor).with_history(history);
    let mut summary = Summary::default();
    let mut lines = Lines::default();
    let start = Instant::now();
    loop {
        let chunk = reader
            .fill_buf()
            .with_context(|| format!("reading {}", file.display()))?;
        let read = chunk.len();
        let each = |piece: Piece<'_>| {
            let outcome = match piece {
                Piece::Line(line) => pipeline.line(line),
                Piece::TooLong => {
                    pipeline.too_long();
                    LineOutcome::DecodeError
                }
            };
            count(outcome, &mut summary, &mut pipeline);
            if let (Some(executor), Some(rules)) = (&executor, pipeline.rules()) {
                for fire in rules.fired() {
                    for index in 0..fire.rule().actions.len() {
                        executor.dry_run(&fire, index, Default::default());
                    }
                }
            }
        };
        if read == 0 {
            lines.finish(each);
        } else {
            lines.feed(chunk, each);
        }
        pipeline.publish();
        reader.consume(read);
        if read == 0 {
            break;
        }
    }
    let tracker = pipeline.tracker();
    tracker.sweep();
    summary.seconds = start.elapsed().as_secs_f64();
    summary.label_sets = tracker.series_count();
    Ok(summary)
}

/// Counts what a line did; sweeps expired series now and then.
fn count(outcome: LineOutcome, summary: &mut Summary, pipeline: &mut Pipeline) {
    match outcome {
        LineOutcome::Applied { .. } => summary.events += 1,
        LineOutcome::DecodeError => {
            summary.unreadable += 1;
            return;
        }
        LineOutcome::Blank => return,
    }
    if summary.events.is_multiple_of(SWEEP_EVERY) {
        pipeline.tracker().sweep();
    }
}

/// The engine a replayed file stands for: one file is the engine "replay", several are each
/// named after their file (`web-1.jsonl`: `web-1`; standard input: `stdin`).
fn engine_names(files: &[PathBuf]) -> anyhow::Result<Vec<String>> {
    if let [_] = files {
        return Ok(vec!["replay".to_owned()]);
    }
    let mut names: Vec<String> = Vec::new();
    for file in files {
        let name = if file == Path::new("-") {
            "stdin".to_owned()
        } else {
            file.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        if let Some(i) = names.iter().position(|n| *n == name) {
            anyhow::bail!(
                "replay: {} and {} would both be the engine {name:?}; give the files other names",
                files[i].display(),
                file.display()
            );
        }
        names.push(name);
    }
    Ok(names)
}

/// The `replay` subcommand: replay, then print the metrics (or serve them with `serve`).
pub async fn run(settings: &Settings, files: &[PathBuf], serve: bool) -> anyhow::Result<()> {
    let names = engine_names(files)?;
    let metrics = Arc::new(Metrics::for_engines(
        &settings.metrics.container_labels,
        files.len() > 1,
    )?);
    // With --history.dir, the replayed events are kept there as an engine's would be (a saved
    // log brought into a history; what is there already is not kept twice).
    let histories = Histories::new(settings.history.clone(), files.len() > 1, &metrics.registry)?;
    for (file, engine) in files.iter().zip(&names) {
        let history = match settings.history.size {
            0 => None,
            // What the folder holds up to its newest event is not kept again.
            _ => Some(histories.engine(engine, engine.as_str().into(), Some(i64::MIN))?),
        };
        let summary = replay(settings, file, engine, &metrics, history)?;
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
    }
    histories.close();
    if !serve {
        std::io::stdout().write_all(metrics.encode().as_bytes())?;
        return Ok(());
    }
    let stop = tokio_util::sync::CancellationToken::new();
    let on_ctrl_c = stop.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        on_ctrl_c.cancel();
    });
    let server =
        crate::server::Server::bind(&settings.web, metrics, histories, Arc::default()).await?;
    tracing::info!(address = %server.address(), web = %settings.web.summary(), "serving the replayed metrics; Ctrl-C to stop");
    server.serve(stop, std::time::Duration::from_secs(5)).await
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
    use crate::cli::Cli;
    use crate::docker::lines::MAX_LINE_BYTES;

    /// Lines cut by the end of a read, a blank line, a bad one, one past the line limit and a
    /// last one without its newline: each counted once, whatever the read size.
    #[test]
    fn lines_are_whole_whatever_the_reads_cut() {
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
        let settings = Settings::new(&cli).expect("the defaults are good");
        for capacity in [1, 7, 64, 4096, READ_BUFFER] {
            let metrics = Arc::new(Metrics::new(&[]).expect("metrics"));
            let reader = BufReader::with_capacity(capacity, input.as_bytes());
            let summary = replay_from(
                &settings,
                reader,
                Path::new("test"),
                "replay",
                &metrics,
                None,
            )
            .expect("replays");
            assert_eq!(
                (summary.events, summary.unreadable),
                (4, 2),
                "reads of {capacity} bytes"
            );
            let text = metrics.encode();
            assert!(
                text.contains("docker_events_exporter_decode_errors_total 2\n"),
                "{text}"
            );
            for n in 1..=4 {
                assert!(
                    text.contains(&format!("name=\"web-{n}\"")),
                    "web-{n} with reads of {capacity}"
                );
            }
        }
    }

    /// Several files are several engines, each named after its file, told apart by `engine`.
    #[test]
    fn several_files_are_several_engines() {
        let files = ["logs/web-1.jsonl", "web-2.jsonl"].map(PathBuf::from);
        assert_eq!(engine_names(&files).expect("names"), ["web-1", "web-2"]);
        assert_eq!(engine_names(&files[..1]).expect("names"), ["replay"]);
        let twins = ["a/web.jsonl", "b/web.jsonl"].map(PathBuf::from);
        assert_eq!(
            engine_names(&twins).expect_err("the same name").to_string(),
            "replay: a/web.jsonl and b/web.jsonl would both be the engine \"web\"; give the files other names"
        );
        let cli = Cli::try_parse_from(["docker-events-exporter"]).expect("defaults parse");
        let settings = Settings::new(&cli).expect("the defaults are good");
        let metrics = Arc::new(Metrics::for_engines(&[], true).expect("metrics"));
        let start = r#"{"Type":"container","Action":"start","Actor":{"ID":"c1","Attributes":{"name":"app","image":"i"}},"time":1,"timeNano":1000000001}"#;
        for engine in ["web-1", "web-2"] {
            replay_from(
                &settings,
                start.as_bytes(),
                Path::new(engine),
                engine,
                &metrics,
                None,
            )
            .expect("replays");
        }
        let text = metrics.encode();
        for engine in ["web-1", "web-2"] {
            assert!(
                text.contains(&format!("docker_container_starts_total{{engine=\"{engine}\",name=\"app\",image=\"i\",compose_project=\"\",compose_service=\"\",swarm_service=\"\",swarm_stack=\"\"}} 1\n")),
                "{text}"
            );
            assert!(
                text.contains(&format!("docker_events_total{{action=\"start\",engine=\"{engine}\",object=\"container\"}} 1\n")),
                "{text}"
            );
        }
    }
}
