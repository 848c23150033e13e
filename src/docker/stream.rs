//! The event subscription: never loses its place.
//!
//! One task owns the stream and the [`Tracker`]. It reads `GET /events`, splits lines, drops the
//! duplicates a resume replays, decodes, and applies each event: microseconds per event, because
//! the engine drops events for a reader that stalls 100 ms. Anything slow runs elsewhere: pings
//! in their own task, inspects on a small worker pool whose answers come back on a bounded queue.
//!
//! When the stream ends or fails (engine restart, network cut, failed ping), we resubscribe with
//! capped exponential backoff (reset by the first good event after a reconnect), from
//! `since=<newest timeNano seen>`. The engine replays what it still holds from there; the lines we
//! already counted are recognised and skipped.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use bytes::{Buf, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Engine;
use super::event::Event;
use super::state::{Position, StateFile};
use crate::actions::Reactor;
use crate::metrics::Metrics;
use crate::metrics::tracker::{InspectRequest, Tracker};

/// Lines remembered to recognise a replay. The engine replays at most its last 256 events, so
/// four times that covers a replay with room to spare.
pub const DEDUPE_WINDOW: usize = 1024;
/// The longest event line we accept. Longer ones (no engine sends them) are counted as decode
/// errors and skipped up to the next newline, keeping memory bounded.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;
/// First wait before resubscribing; it doubles (with jitter) up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between resubscription attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long the engine may take to answer `GET /events` with its headers. A half-dead engine
/// (or a frozen network path) must not keep us from retrying, or from shutting down.
pub const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Inspect requests waiting for a worker; past this they are dropped with a warning.
pub const INSPECT_QUEUE: usize = 1024;
/// Inspects running at once.
pub const INSPECT_WORKERS: usize = 4;
/// How many characters of a bad line a log line shows.
const LOG_PREVIEW_CHARS: usize = 200;

/// Remembers the hashes of the last [`DEDUPE_WINDOW`] lines.
pub struct Dedupe {
    hasher: RandomState,
    order: VecDeque<u64>,
    seen: HashSet<u64>,
}

impl Default for Dedupe {
    fn default() -> Self {
        Self {
            // Keyed per process: event lines carry attacker-chosen labels, so no crafted
            // collision can make us skip a real event.
            hasher: RandomState::new(),
            order: VecDeque::with_capacity(DEDUPE_WINDOW),
            seen: HashSet::with_capacity(DEDUPE_WINDOW),
        }
    }
}

impl Dedupe {
    /// True if `line` is new (and remembers it); false if it was among the recent lines.
    pub fn first_sighting(&mut self, line: &[u8]) -> bool {
        let h = self.hasher.hash_one(line);
        if !self.seen.insert(h) {
            return false;
        }
        if self.order.len() == DEDUPE_WINDOW
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        self.order.push_back(h);
        true
    }
}

/// Splits a byte stream into lines of at most [`MAX_LINE_BYTES`].
#[derive(Default)]
pub struct Lines {
    buf: BytesMut,
    /// Skipping the rest of an overlong line.
    skipping: bool,
}

impl Lines {
    /// Feeds a chunk; calls `line` for each complete line (without its newline) and `too_long`
    /// once for each overlong one.
    pub fn feed(&mut self, chunk: &[u8], mut line: impl FnMut(&[u8]), mut too_long: impl FnMut()) {
        self.buf.extend_from_slice(chunk);
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
            if self.skipping {
                self.skipping = false;
            } else {
                line(&self.buf[..pos]);
            }
            self.buf.advance(pos + 1);
        }
        if self.buf.len() > MAX_LINE_BYTES {
            if !self.skipping {
                too_long();
            }
            self.skipping = true;
            self.buf.clear();
        }
    }

    /// Forgets a partial line (the connection it came from is gone).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.skipping = false;
    }
}

/// What one line did; for tests and for the caller's bookkeeping. An applied event is handed
/// back, so a caller with more to do with it (replay's rules) need not decode it again.
#[derive(Debug, PartialEq, Eq)]
pub enum LineOutcome {
    Applied(Event),
    Duplicate,
    DecodeError,
    Blank,
}

/// Dedupe, decode and apply one line: metrics first, then the rules. Shared by the live stream
/// and replay.
pub fn process_line(
    line: &[u8],
    dedupe: Option<&mut Dedupe>,
    tracker: &mut Tracker,
    reactor: Option<&mut Reactor>,
    metrics: &Metrics,
    newest_nano: &mut i64,
) -> LineOutcome {
    let line = line.trim_ascii();
    if line.is_empty() {
        return LineOutcome::Blank;
    }
    if dedupe.is_some_and(|d| !d.first_sighting(line)) {
        return LineOutcome::Duplicate;
    }
    match Event::decode(line) {
        Ok(ev) => {
            *newest_nano = (*newest_nano).max(ev.time_nano);
            tracker.apply(&ev);
            if let Some(r) = reactor {
                r.on_event(&ev);
            }
            LineOutcome::Applied(ev)
        }
        Err(e) => {
            metrics.decode_errors.inc();
            tracing::warn!(error = %e, line = %preview(line), "skipping an event line that cannot be read");
            LineOutcome::DecodeError
        }
    }
}

impl LineOutcome {
    pub fn is_applied(&self) -> bool {
        matches!(self, Self::Applied(_))
    }
}

fn preview(line: &[u8]) -> String {
    String::from_utf8_lossy(line)
        .chars()
        .take(LOG_PREVIEW_CHARS)
        .collect()
}

/// Waits between attempts to reach the engine: from [`MIN_BACKOFF`], doubling with jitter, up
/// to [`MAX_BACKOFF`].
pub fn backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(MIN_BACKOFF)
        .with_max_delay(MAX_BACKOFF)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
}

/// Runs inspects for the tracker on a bounded pool, sending the answers back.
pub fn spawn_inspector(
    engine: Engine,
    mut requests: mpsc::Receiver<InspectRequest>,
    answers: mpsc::Sender<(InspectRequest, super::ContainerSnapshot)>,
    tasks: &TaskTracker,
    cancel: CancellationToken,
) {
    let workers = Arc::new(Semaphore::new(INSPECT_WORKERS));
    let inner = tasks.clone();
    tasks.spawn(async move {
        loop {
            let req = tokio::select! {
                _ = cancel.cancelled() => break,
                req = requests.recv() => match req { Some(r) => r, None => break },
            };
            let Ok(permit) = workers.clone().acquire_owned().await else {
                break;
            };
            let (engine, answers) = (engine.clone(), answers.clone());
            inner.spawn(async move {
                let _permit = permit;
                match engine.inspect(&req.id).await {
                    Ok(snap) => {
                        let _ = answers.send((req, snap)).await;
                    }
                    // Most often the container is already gone; its destroy event says so.
                    Err(e) => tracing::debug!(container_id = %req.id, error = %e, "inspect failed"),
                }
            });
        }
    });
}

/// Everything the stream loop needs.
pub struct Watch {
    pub engine: Engine,
    pub tracker: Tracker,
    pub reactor: Option<Reactor>,
    pub metrics: Arc<Metrics>,
    pub answers: mpsc::Receiver<(InspectRequest, super::ContainerSnapshot)>,
    /// Where the subscription starts, and the engine it belongs to.
    pub position: Position,
    /// Where to keep the position, if anywhere.
    pub state_file: Option<StateFile>,
    pub ping_interval: Duration,
    pub series_ttl: Duration,
}

impl Watch {
    /// Streams until `cancel`. Never returns an error: every failure is logged and retried.
    pub async fn run(mut self, cancel: CancellationToken) {
        let m = self.metrics.clone();
        let mut dedupe = Dedupe::default();
        let mut lines = Lines::default();
        let mut newest_nano = self.position.saved.position_nano;
        for line in &self.position.saved.lines_at_position {
            dedupe.first_sighting(line.as_bytes());
        }
        // Events up to the engine's time at a resubscription are replays of what it held.
        let mut replay_until = 0;
        let (reconcile_tx, mut reconciles) = mpsc::channel::<Reconcile>(1);
        let mut snapshot_task: Option<JoinHandle<()>> = None;
        let mut save_failing = false;
        // The lines at the position matter only to a state file: no copy per event without one.
        let keep_position = self.state_file.is_some();
        let mut delays = backoff();
        let mut subscribed_before = false;
        let mut body: Option<Incoming> = None;
        let mut retry_at = Instant::now();
        let mut ping = tokio::time::interval(self.ping_interval);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut ping_task: Option<JoinHandle<Result<(), super::EngineError>>> = None;
        let mut sweep = tokio::time::interval(
            (self.series_ttl / 4).clamp(Duration::from_millis(100), Duration::from_secs(30)),
        );
        sweep.set_missed_tick_behavior(MissedTickBehavior::Delay);

        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                frame = next_frame(&mut body) => {
                    let failure = match frame {
                        Some(Ok(frame)) => {
                            if let Ok(data) = frame.into_data() {
                                let mut good = false;
                                let (tracker, metrics) = (&mut self.tracker, &m);
                                let (reactor, position) = (&mut self.reactor, &mut self.position);
                                lines.feed(
                                    &data,
                                    |line| {
                                        let outcome = process_line(line, Some(&mut dedupe), tracker, reactor.as_mut(), metrics, &mut newest_nano);
                                        if let LineOutcome::Applied(ev) = outcome {
                                            good = true;
                                            if keep_position {
                                                position.applied(ev.time_nano, line.trim_ascii());
                                            }
                                            if ev.time_nano <= replay_until {
                                                metrics.replayed_events.inc();
                                            }
                                        }
                                    },
                                    || {
                                        metrics.decode_errors.inc();
                                        tracing::warn!(limit = MAX_LINE_BYTES, "skipping an event line longer than the limit");
                                    },
                                );
                                if good {
                                    delays = backoff();
                                    self.save_position(&mut save_failing);
                                }
                            }
                            None
                        }
                        Some(Err(e)) => Some(format!("{:#}", anyhow::Error::from(e))),
                        None => Some("the engine closed the event stream".to_owned()),
                    };
                    if let Some(reason) = failure {
                        body = None;
                        lines.reset();
                        retry_at = self.lost(&reason, &mut delays);
                    }
                }
                Some((req, snap)) = self.answers.recv() => self.tracker.apply_inspect(&req, &snap),
                _ = tokio::time::sleep_until(retry_at), if body.is_none() => {
                    let subscribe = tokio::time::timeout(
                        SUBSCRIBE_TIMEOUT,
                        subscribe(&self.engine, newest_nano, subscribed_before.then_some(self.position.saved.engine_id.as_str())),
                    );
                    let attempt = tokio::select! {
                        _ = cancel.cancelled() => break,
                        r = subscribe => r,
                    };
                    let attempt = attempt.unwrap_or_else(|_| {
                        Err(super::EngineError::Timeout {
                            what: "subscribing to events",
                            after: SUBSCRIBE_TIMEOUT,
                        })
                    });
                    match attempt {
                        Ok(sub) => {
                            body = Some(sub.body);
                            replay_until = sub.info.now_nano;
                            m.up.set(1);
                            if subscribed_before {
                                m.reconnects.inc();
                                tracing::info!(since = %super::format_since(newest_nano), "resubscribed to the event stream");
                            } else {
                                tracing::info!(since = %super::format_since(newest_nano), "subscribed to the event stream");
                            }
                            subscribed_before = true;
                            if let Some(why) = sub.gap {
                                m.stream_gaps.inc();
                                tracing::warn!(position = %super::format_since(newest_nano), reason = why, "events may have been lost while the stream was down; reconciling with the engine's containers");
                                self.position.saved.engine_id = sub.info.id;
                                if let Some(t) = snapshot_task.take() {
                                    t.abort();
                                }
                                snapshot_task = Some(spawn_snapshot(self.engine.clone(), newest_nano, self.tracker.seq(), reconcile_tx.clone()));
                            }
                        }
                        Err(e) => {
                            retry_at = self.lost(&format!("{:#}", anyhow::Error::from(e)), &mut delays);
                        }
                    }
                }
                Some(r) = reconciles.recv() => {
                    let changes = self.tracker.reconcile(&r.containers, r.position_nano, r.snapshot_nano, r.seq);
                    m.reconciled_changes.inc_by(changes);
                    tracing::info!(changes, containers = r.containers.len(), "reconciled with the engine's containers after a gap");
                }
                res = join(&mut ping_task) => {
                    ping_task = None;
                    let failure = match res {
                        Ok(Ok(())) => None,
                        Ok(Err(e)) => Some(format!("{:#}", anyhow::Error::from(e))),
                        Err(e) => Some(format!("ping task failed: {e}")),
                    };
                    if let (Some(reason), Some(_)) = (failure, body.as_ref()) {
                        body = None;
                        lines.reset();
                        retry_at = self.lost(&format!("ping failed: {reason}"), &mut delays);
                    }
                }
                _ = ping.tick(), if ping_task.is_none() && body.is_some() => {
                    let engine = self.engine.clone();
                    ping_task = Some(tokio::spawn(async move { engine.ping().await }));
                }
                _ = sweep.tick() => self.tracker.sweep(),
            }
        }
        m.up.set(0);
        if let Some(t) = ping_task {
            t.abort();
        }
        if let Some(t) = snapshot_task {
            t.abort();
        }
        self.save_position(&mut save_failing);
    }

    /// Writes the position to the state file, if there is one and it moved. A failure is
    /// logged once until a write succeeds again; the stream goes on either way.
    fn save_position(&mut self, failing: &mut bool) {
        let Some(file) = &self.state_file else {
            return;
        };
        if !self.position.take_dirty() {
            return;
        }
        match file.save(&self.position.saved) {
            Ok(()) if *failing => {
                *failing = false;
                tracing::info!(state_file = %file.path().display(), "the state file is written again");
            }
            Ok(()) => {}
            Err(e) if !*failing => {
                *failing = true;
                tracing::warn!(error = %e, "the stream goes on, but a restart will not resume from here");
            }
            Err(_) => {}
        }
    }

    /// Marks the stream lost and returns when to try again.
    fn lost(&self, reason: &str, delays: &mut impl Iterator<Item = Duration>) -> Instant {
        self.metrics.up.set(0);
        let wait = delays.next().unwrap_or(MAX_BACKOFF);
        tracing::warn!(
            endpoint = %self.engine.endpoint(),
            error = reason,
            retry_in = ?wait,
            "event stream lost; resubscribing"
        );
        Instant::now() + wait
    }
}

/// A subscription and what was learnt while making it.
struct Subscription {
    body: Incoming,
    info: super::EngineInfo,
    /// Why events may have been lost before it, if they may have.
    gap: Option<&'static str>,
}

/// Asks the engine's time and ID, checks for a gap if this is a resubscription (`engine_id`
/// is the engine we were watching), and subscribes from `since_nano`.
async fn subscribe(
    engine: &Engine,
    since_nano: i64,
    engine_id: Option<&str>,
) -> Result<Subscription, super::EngineError> {
    let info = engine.info().await?;
    let gap = match engine_id {
        None => None,
        Some(id) if id != info.id => Some("a different engine answers (its ID changed)"),
        Some(_) if !engine.holds_events_until(since_nano).await? => Some(
            "the engine no longer holds the events since our position (it restarted, or more than 256 events passed)",
        ),
        Some(_) => None,
    };
    let body = engine.subscribe(since_nano).await?;
    Ok(Subscription { body, info, gap })
}

/// A snapshot of every container for [`Tracker::reconcile`].
struct Reconcile {
    containers: Vec<super::ContainerSnapshot>,
    position_nano: i64,
    snapshot_nano: i64,
    seq: u64,
}

/// Lists and inspects every container in the background; the stream goes on meanwhile.
fn spawn_snapshot(
    engine: Engine,
    position_nano: i64,
    seq: u64,
    tx: mpsc::Sender<Reconcile>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        match engine.snapshot().await {
            Ok((info, containers)) => {
                let _ = tx
                    .send(Reconcile {
                        containers,
                        position_nano,
                        snapshot_nano: info.now_nano,
                        seq,
                    })
                    .await;
            }
            Err(e) => {
                tracing::warn!(error = %format!("{:#}", anyhow::Error::from(e)), "could not list the containers to reconcile after a gap; the gauges may be off until each container's next event")
            }
        }
    })
}

async fn next_frame(
    body: &mut Option<Incoming>,
) -> Option<Result<hyper::body::Frame<bytes::Bytes>, hyper::Error>> {
    match body {
        Some(b) => b.frame().await,
        None => std::future::pending().await,
    }
}

async fn join<T>(task: &mut Option<JoinHandle<T>>) -> Result<T, tokio::task::JoinError> {
    match task {
        Some(t) => t.await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedupe_forgets_after_the_window() {
        let mut d = Dedupe::default();
        assert!(d.first_sighting(b"a"));
        assert!(!d.first_sighting(b"a"));
        for i in 0..DEDUPE_WINDOW {
            assert!(d.first_sighting(format!("x{i}").as_bytes()));
        }
        assert!(d.first_sighting(b"a"), "pushed out of the window");
    }

    #[test]
    fn lines_split_across_chunks_and_overlong_ones_are_skipped() {
        let mut l = Lines::default();
        let mut got: Vec<Vec<u8>> = Vec::new();
        let mut long = 0;
        l.feed(b"one\ntw", |x| got.push(x.to_vec()), || long += 1);
        l.feed(b"o\n", |x| got.push(x.to_vec()), || long += 1);
        let big = vec![b'x'; MAX_LINE_BYTES + 1];
        l.feed(&big, |x| got.push(x.to_vec()), || long += 1);
        l.feed(
            b"more of it\nthree\n",
            |x| got.push(x.to_vec()),
            || long += 1,
        );
        assert_eq!(got, [b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]);
        assert_eq!(long, 1);
    }

    #[test]
    fn bad_lines_are_counted_and_the_next_one_still_applies() {
        let m = Arc::new(Metrics::new(&[]).expect("metrics"));
        let mut t = Tracker::new(m.clone(), Duration::from_secs(60), None);
        let mut d = Dedupe::default();
        let mut newest = 0;
        let good = br#"{"Type":"container","Action":"oom","Actor":{"ID":"c","Attributes":{"name":"n","image":"i"}},"time":1,"timeNano":1000000005}"#;
        assert_eq!(
            process_line(b"{oops", Some(&mut d), &mut t, None, &m, &mut newest),
            LineOutcome::DecodeError
        );
        assert!(process_line(good, Some(&mut d), &mut t, None, &m, &mut newest).is_applied());
        assert_eq!(
            process_line(good, Some(&mut d), &mut t, None, &m, &mut newest),
            LineOutcome::Duplicate
        );
        assert_eq!(m.decode_errors.get(), 1);
        assert!(
            m.encode().contains(
                "docker_container_oom_kills_total{name=\"n\",image=\"i\",compose_project=\"\",compose_service=\"\"} 1\n"
            ),
            "counted once"
        );
        assert_eq!(newest, 1_000_000_005);
    }

    #[test]
    fn hostile_lines_give_counted_errors_or_capped_values() {
        let m = Arc::new(Metrics::new(&["team".to_owned()]).expect("metrics"));
        let mut t = Tracker::new(m.clone(), Duration::from_secs(60), None);
        let mut newest = 0;
        let mut apply =
            |line: &[u8]| process_line(line, None, &mut t, None, &m, &mut newest).is_applied();
        // 20,000 attributes: decoded and applied; only the labels we use reach the metrics.
        let many: String = (0..20_000).map(|i| format!(",\"k{i}\":\"v{i}\"")).collect();
        let huge_map = format!(
            r#"{{"Type":"container","Action":"create","Actor":{{"ID":"c1","Attributes":{{"name":"many"{many}}}}},"time":1,"timeNano":1000000001}}"#
        );
        assert!(apply(huge_map.as_bytes()));
        // A name and a label value of 900 KB: the series' labels are cut to 256 bytes.
        let big = "x".repeat(900 * 1024);
        let big_label = format!(
            r#"{{"Type":"container","Action":"create","Actor":{{"ID":"c2","Attributes":{{"name":"{big}","team":"{big}"}}}},"time":1,"timeNano":1000000002}}"#
        );
        assert!(apply(big_label.as_bytes()));
        // Invalid UTF-8 inside a string: a counted error, not a replacement character.
        let mut invalid =
            br#"{"Type":"container","Action":"create","Actor":{"ID":"c3","Attributes":{"name":"#
                .to_vec();
        invalid.extend_from_slice(b"\"bad\xff\xfe\"}},\"time\":1}");
        assert!(!apply(&invalid));
        assert_eq!(m.decode_errors.get(), 1);
        let text = m.encode();
        let capped = "x".repeat(crate::metrics::tracker::MAX_LABEL_VALUE_BYTES);
        assert!(
            text.contains(&format!(
                "docker_container_starts_total{{name=\"{capped}\",image=\"\",compose_project=\"\",compose_service=\"\",label_team=\"{capped}\"}} 0\n"
            )),
            "the 900 KB values are capped"
        );
        let longest = text.lines().map(str::len).max().unwrap_or(0);
        assert!(longest < 1024, "a line of {longest} bytes");
    }
}
