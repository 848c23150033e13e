//! One sink's shipping of one engine's history: read a batch from the cursor, send it, retry
//! what the protocol calls transient, skip (logged and counted) what the store refuses, and
//! save the cursor once the store has it. Runs on its own task: a slow or dead store holds up
//! nothing but itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::{Gauge, IntCounter, IntCounterVec};
use tokio_util::sync::CancellationToken;

use super::reader::{Line, Lost, Position, Reader};
use super::record::{Origin, Record};
use super::spec::{Kind, MAX_BATCH_BYTES, SinkSpec};
use super::{nats::Nats, otlp::Otlp, syslog::Syslog};
use crate::docker::event::Event;

/// How often a sink that has sent everything looks at the folder even if the history's writer
/// said nothing (it says so after each write; this is only a safety net).
const IDLE_CHECK: Duration = Duration::from_secs(5);

/// Why a batch did not go.
#[derive(Debug)]
pub enum SendError {
    /// Transient, as the protocol says (a network error, a timeout, OTLP's 429/502/503/504, a
    /// JetStream with no stream for the subject): sent again after `after` or a backoff.
    Retry {
        reason: &'static str,
        after: Option<Duration>,
        detail: String,
    },
    /// The store refused the batch for good: logged with its answer, counted and skipped.
    Reject {
        reason: &'static str,
        detail: String,
    },
    /// The store took the batch but refused some of its records (OTLP's partial success).
    Partial { rejected: u64, detail: String },
}

pub enum Transport {
    Otlp(Otlp),
    Syslog(Syslog),
    Nats(Box<Nats>),
}

impl Transport {
    pub fn new(spec: &SinkSpec, origin: Origin) -> anyhow::Result<Self> {
        Ok(match &spec.kind {
            Kind::Otlp {
                https,
                path,
                json,
                headers,
                ca,
            } => {
                let scheme = if *https { "https" } else { "http" };
                let url = format!(
                    "{scheme}://{}:{}{path}",
                    super::spec::bracketed(&spec.host),
                    spec.port
                );
                let headers = headers.clone();
                Self::Otlp(Otlp::new(
                    url,
                    *json,
                    headers,
                    ca.as_deref(),
                    spec.timeout,
                    origin,
                )?)
            }
            Kind::Syslog {
                tls,
                app_name,
                facility,
            } => Self::Syslog(Syslog::new(
                spec.host.clone(),
                spec.port,
                tls.as_ref(),
                app_name.clone(),
                *facility,
                spec.timeout,
                origin,
            )?),
            Kind::Nats { tls, subject, auth } => Self::Nats(Box::new(Nats::new(
                &spec.host,
                spec.port,
                subject.clone(),
                tls.as_ref(),
                auth,
                spec.timeout,
            ))),
        })
    }

    async fn send(&mut self, batch: &[Record]) -> Result<(), SendError> {
        match self {
            Self::Otlp(t) => t.send(batch).await,
            Self::Syslog(t) => t.send(batch).await,
            Self::Nats(t) => t.send(batch).await,
        }
    }
}

/// A sink's series for one engine.
pub struct Series {
    pub sent: IntCounter,
    pub failed: IntCounterVec,
    /// The label values before `reason` on `failed` and `skipped`.
    pub prefix: Vec<String>,
    pub skipped: IntCounterVec,
    pub lag: Gauge,
}

impl Series {
    fn failed(&self, reason: &str) {
        self.with(&self.failed, reason).inc();
    }

    fn skipped(&self, reason: &str, n: u64) {
        self.with(&self.skipped, reason).inc_by(n);
    }

    fn with(&self, vec: &IntCounterVec, reason: &str) -> IntCounter {
        let mut values: Vec<&str> = self.prefix.iter().map(String::as_str).collect();
        values.push(reason);
        vec.with_label_values(&values)
    }
}

/// A batch being filled: its records, and where the sink is once it is sent.
struct Batch {
    records: Vec<Record>,
    bytes: usize,
    /// The position after the last line read, sent or filtered out.
    after: Position,
    /// When its first record was read: it goes by `flush` after that.
    since: Option<Instant>,
}

pub struct Shipper {
    pub spec: Arc<SinkSpec>,
    pub origin: Origin,
    pub transport: Transport,
    pub reader: Reader,
    pub series: Series,
    /// Changes after each write to the history folder.
    pub written: tokio::sync::watch::Receiver<u64>,
}

impl Shipper {
    pub async fn run(self, cancel: CancellationToken) {
        let Self {
            spec,
            origin,
            mut transport,
            reader,
            series,
            mut written,
        } = self;
        written.mark_unchanged();
        let sink = spec.shown.as_str();
        let mut reader = Some(reader);
        let mut batch = Batch {
            records: Vec::new(),
            bytes: 0,
            after: reader.as_ref().map(Reader::position).unwrap_or_default(),
            since: None,
        };
        let mut saved = batch.after;
        loop {
            // Fill the batch with what is there.
            let room = spec.batch_events.saturating_sub(batch.records.len());
            let Some(r) = reader.take() else { return };
            let (r, read) = match tokio::task::spawn_blocking(move || {
                let mut r = r;
                let (mut lines, mut lost) = (Vec::new(), Vec::new());
                let mut bytes = 0;
                let res = r.read(
                    |l: Line| {
                        bytes += l.bytes.len();
                        lines.push(l);
                        lines.len() < room.max(1) && bytes < MAX_BATCH_BYTES
                    },
                    |l| lost.push(l),
                );
                // Stopped for room, not at the end of what is written: read on at once.
                let more = lines.len() >= room.max(1) || bytes >= MAX_BATCH_BYTES;
                (r, res.map(|()| (lines, lost, more)))
            })
            .await
            {
                Ok(x) => x,
                Err(e) => {
                    tracing::error!(sink, error = %e, "a sink's reader failed; this sink stops");
                    return;
                }
            };
            reader = Some(r);
            let mut more = false;
            match read {
                Ok((lines, lost, stopped_for_room)) => {
                    more = stopped_for_room;
                    for l in lost {
                        report_lost(sink, &series, &l);
                    }
                    for l in lines {
                        batch.after = l.after;
                        let text = crate::docker::lines::record(&l.bytes);
                        let Ok(ev) = Event::decode(text) else {
                            continue;
                        };
                        if !spec.filters.is_empty() && !spec.filters.matches(&origin.engine, &ev) {
                            continue;
                        }
                        batch.bytes += text.len();
                        batch.records.push(Record::new(&origin, &ev, text));
                        batch.since.get_or_insert_with(Instant::now);
                    }
                }
                Err(e) => {
                    tracing::warn!(sink, error = %e, "cannot read the history for a sink; trying again");
                }
            }
            let full = batch.records.len() >= spec.batch_events || batch.bytes >= MAX_BATCH_BYTES;
            let due = batch.since.is_some_and(|s| s.elapsed() >= spec.flush);
            match batch.records.first() {
                Some(first) => series.lag.set(seconds_since(first.time_nano)),
                None => series.lag.set(0.0),
            }
            if !(full || due) {
                if more {
                    continue;
                }
                // Everything read is filtered out: keep the place all the same.
                if batch.records.is_empty() && batch.after != saved {
                    saved = save(&mut reader, sink, batch.after, 0)
                        .await
                        .unwrap_or(saved);
                }
                // Until the writer writes more, or the batch is due.
                let wait = batch
                    .since
                    .map_or(IDLE_CHECK, |s| spec.flush.saturating_sub(s.elapsed()));
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                    changed = written.changed() => {
                        // The history closed (shutdown is near): look again after the wait.
                        if changed.is_err() {
                            tokio::select! {
                                _ = cancel.cancelled() => return,
                                _ = tokio::time::sleep(wait) => {}
                            }
                        }
                    }
                }
                continue;
            }
            let Some(n) = send(&mut transport, &batch.records, sink, &series, &cancel).await else {
                return;
            };
            series.sent.inc_by(n);
            let last = batch.records.last().map_or(0, |r| r.time_nano);
            saved = save(&mut reader, sink, batch.after, last)
                .await
                .unwrap_or(saved);
            batch.records.clear();
            batch.bytes = 0;
            batch.since = None;
            series.lag.set(if full { seconds_since(last) } else { 0.0 });
        }
    }
}

/// Sends a batch until the store has it or refuses it; the number of its events the store
/// took, or `None` when cancelled first.
async fn send(
    transport: &mut Transport,
    records: &[Record],
    sink: &str,
    series: &Series,
    cancel: &CancellationToken,
) -> Option<u64> {
    let n = records.len() as u64;
    let mut delays = crate::docker::stream::backoff();
    let mut failing = false;
    loop {
        let sent = tokio::select! {
            _ = cancel.cancelled() => return None,
            sent = transport.send(records) => sent,
        };
        let wait = match sent {
            Ok(()) => {
                if failing {
                    tracing::info!(sink, "the sink takes events again");
                }
                return Some(n);
            }
            Err(SendError::Partial { rejected, detail }) => {
                let rejected = rejected.min(n);
                tracing::warn!(sink, rejected, answer = %detail, counted_in = "docker_events_exporter_sink_events_skipped_total", "the store refused some events of a batch; they are skipped");
                series.failed("rejected");
                series.skipped("rejected", rejected);
                return Some(n - rejected);
            }
            Err(SendError::Reject { reason, detail }) => {
                let first = records.first().map_or(0, |r| r.time_nano);
                let last = records.last().map_or(0, |r| r.time_nano);
                tracing::warn!(sink, events = n, from = %crate::docker::format_since(first), to = %crate::docker::format_since(last), answer = %detail, counted_in = "docker_events_exporter_sink_events_skipped_total", "the store refused a batch; its events are skipped");
                series.failed(reason);
                series.skipped("rejected", n);
                return Some(0);
            }
            Err(SendError::Retry {
                reason,
                after,
                detail,
            }) => {
                series.failed(reason);
                let wait = after
                    .unwrap_or_else(|| delays.next().unwrap_or(crate::docker::stream::MAX_BACKOFF));
                if failing {
                    tracing::debug!(sink, reason, error = %detail, retry_in = ?wait, "the sink still fails");
                } else {
                    tracing::warn!(sink, reason, error = %detail, retry_in = ?wait, "cannot send to the sink; its events wait on disk and are sent when it takes them");
                    failing = true;
                }
                wait
            }
        };
        // The lag grows while the batch waits: shown anew each second, not only at each try
        // (the tries are up to a backoff's longest wait apart).
        let until = tokio::time::Instant::now() + wait;
        loop {
            if let Some(first) = records.first() {
                series.lag.set(seconds_since(first.time_nano));
            }
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            tokio::select! {
                _ = cancel.cancelled() => return None,
                _ = tokio::time::sleep(left.min(LAG_REFRESH)) => {}
            }
        }
    }
}

/// Saves the cursor; the position saved, or `None` if it could not be.
async fn save(
    reader: &mut Option<Reader>,
    sink: &str,
    pos: Position,
    time_nano: i64,
) -> Option<Position> {
    let r = reader.take()?;
    let sink_owned = sink.to_owned();
    let (r, res) = tokio::task::spawn_blocking(move || {
        let res = r.save(&sink_owned, pos, time_nano);
        (r, res)
    })
    .await
    .ok()?;
    *reader = Some(r);
    match res {
        Ok(()) => Some(pos),
        Err(e) => {
            tracing::warn!(sink, error = %e, "cannot save a sink's cursor; after a restart it sends again from its last saved place");
            None
        }
    }
}

fn report_lost(sink: &str, series: &Series, l: &Lost) {
    let fmt = |t: Option<i64>| t.map_or_else(|| "unknown".to_owned(), crate::docker::format_since);
    match l.events {
        Some(n) => {
            series.skipped("retention", n);
            tracing::warn!(sink, events = n, from = %fmt(l.first_nano), to = %fmt(l.last_nano), segments = ?l.segments, counted_in = "docker_events_exporter_sink_events_skipped_total", "the sink fell so far behind that --history.retention deleted events before they were sent");
        }
        None => {
            tracing::warn!(sink, segments = ?l.segments, "history segments the sink had not sent are gone (deleted while the exporter was not running, or by hand): how many events they held is unknown");
        }
    }
}

/// How often the lag of a batch waiting to be sent again is shown anew.
const LAG_REFRESH: Duration = Duration::from_secs(1);

fn seconds_since(nano: i64) -> f64 {
    (crate::docker::now_nano().saturating_sub(nano)).max(0) as f64 / 1e9
}
