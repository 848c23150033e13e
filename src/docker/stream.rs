//! The event subscription: never loses its place.
//!
//! One task owns the stream and its [`Consumer`]. It reads `GET /events` (in batches while
//! events keep coming: see [`super::paced`]), splits lines, drops the duplicates a resume
//! replays, and hands every new line to the consumer: microseconds per line, because the
//! engine drops events for a reader that stalls. Anything slow runs elsewhere: pings in their
//! own task, the inspects the consumer asks for on a small worker pool whose answers come back
//! on a bounded queue, the snapshot after a gap in its own task.
//!
//! When the stream ends or fails (engine restart, network cut, failed ping), we resubscribe with
//! capped exponential backoff (reset by the first good event after a reconnect), from
//! `since=<newest timeNano seen>`. The engine replays what it still holds from there; the lines we
//! already handed over are recognised and skipped.
//!
//! This module is the source of the pipeline and knows nothing downstream of it: what a line
//! means, and what the stream's signals change, is the consumer's business.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use super::lines::{Lines, Piece};
use super::state::{Position, StateFile};
use super::{ContainerSnapshot, Engine};

/// Lines remembered to recognise a replay. The engine replays at most its last 256 events, so
/// four times that covers a replay with room to spare.
pub const DEDUPE_WINDOW: usize = 1024;
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

/// A container the consumer wants inspected; `seq` is the consumer's count of what it had
/// applied when it asked (see [`Consumer::seq`]), so that it can tell an answer older than a
/// later event.
#[derive(Debug, Clone)]
pub struct InspectRequest {
    pub id: String,
    pub seq: u64,
}

/// Every container as the engine listed it after a gap, for [`Consumer::reconcile`].
pub struct Snapshot {
    pub containers: Vec<ContainerSnapshot>,
    /// Where the events stopped (the newest `timeNano` handed over before the gap).
    pub position_nano: i64,
    /// The engine's time when it was taken.
    pub snapshot_nano: i64,
    /// [`Consumer::seq`] when it was asked for.
    pub seq: u64,
}

/// What happened to the subscription itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Subscribed: the first time, or again after the stream was lost (`again`).
    Subscribed { again: bool },
    /// The stream ended or failed; a resubscription follows (or the watch stops).
    Lost,
    /// Events may have been lost before this subscription; a [`Snapshot`] follows.
    Gap,
    /// The line just handed over is one the engine replayed after a resubscription, not
    /// handed over before.
    Replayed,
    /// A line longer than [`super::lines::MAX_LINE_BYTES`] was skipped.
    LineTooLong,
}

/// Whoever takes the stream's lines: the pipeline. Called from the stream's own task, between
/// reads: everything here must be quick.
pub trait Consumer {
    /// One new line, as [`super::lines::record`] leaves it (trimmed, without a record
    /// separator), not blank, not a replay of one handed over before. Returns the
    /// event's `timeNano` if the line was an event, `None` if it could not be read.
    fn line(&mut self, line: &[u8]) -> Option<i64>;
    /// The lines of one read from the engine have all been handed over: what the consumer
    /// keeps of them is to be seen by others now, before the stream waits for more.
    fn read_done(&mut self);
    /// Something happened to the subscription.
    fn signal(&mut self, signal: Signal);
    /// Moves the inspects asked for since the last call into `out`.
    fn take_inspects(&mut self, out: &mut Vec<InspectRequest>);
    /// An inspect asked for by [`Consumer::take_inspects`], answered.
    fn inspected(&mut self, req: &InspectRequest, snap: &ContainerSnapshot);
    /// A count of what the consumer has applied, to be handed back with a [`Snapshot`].
    fn seq(&self) -> u64;
    /// Every container after a gap.
    fn reconcile(&mut self, snapshot: &Snapshot);
    /// The firings still waiting for their resolving event, if they changed since the last
    /// call: kept in the state file beside the position.
    fn take_open_firings(&mut self) -> Option<Vec<super::state::OpenFiring>>;
    /// Housekeeping, every [`Watch::tick_interval`] (series expiry, inspects that are due).
    fn tick(&mut self);
}

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

/// Hands one line of the stream to `consumer`, unless it is blank or among the recent lines
/// (a resubscription's replay of what was handed over already). Returns the event's
/// `timeNano` and the trimmed line if the consumer took it as an event.
pub fn hand_over<'l>(
    line: &'l [u8],
    dedupe: &mut Dedupe,
    consumer: &mut impl Consumer,
) -> Option<(i64, &'l [u8])> {
    let line = super::lines::record(line);
    if line.is_empty() || !dedupe.first_sighting(line) {
        return None;
    }
    consumer.line(line).map(|t| (t, line))
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

/// Runs the consumer's inspects on a bounded pool, sending the answers back.
fn spawn_inspector(
    engine: Engine,
    mut requests: mpsc::Receiver<InspectRequest>,
    answers: mpsc::Sender<(InspectRequest, super::ContainerSnapshot)>,
    tasks: &TaskTracker,
    cancel: CancellationToken,
) {
    let workers = Arc::new(Semaphore::new(INSPECT_WORKERS));
    let inner = tasks.clone();
    let dispatch = async move {
        loop {
            let req = tokio::select! {
                _ = cancel.cancelled() => break,
                req = requests.recv() => match req { Some(r) => r, None => break },
            };
            let Ok(permit) = workers.clone().acquire_owned().await else {
                break;
            };
            let (engine, answers) = (engine.clone(), answers.clone());
            let inspect = async move {
                let _permit = permit;
                match engine.inspect(&req.id).await {
                    Ok(snap) => {
                        let _ = answers.send((req, snap)).await;
                    }
                    // Most often the container is already gone; its destroy event says so.
                    Err(e) => tracing::debug!(container_id = %req.id, error = %e, "inspect failed"),
                }
            };
            inner.spawn(inspect.in_current_span());
        }
    };
    // The tasks log in the span of the stream they serve (its engine's).
    tasks.spawn(dispatch.in_current_span());
}

/// Everything the stream loop needs.
pub struct Watch<C> {
    pub engine: Engine,
    pub consumer: C,
    /// Where the subscription starts, and the engine it belongs to.
    pub position: Position,
    /// Where to keep the position (beside the other engines'), if anywhere.
    pub state_file: Option<Arc<StateFile>>,
    pub ping_interval: Duration,
    /// How often the consumer's [`Consumer::tick`] runs.
    pub tick_interval: Duration,
}

impl<C: Consumer> Watch<C> {
    /// Streams until `cancel`, and hands the consumer back. Never returns an error: every
    /// failure is logged and retried. The inspect workers run on `tasks`.
    pub async fn run(mut self, tasks: &TaskTracker, cancel: CancellationToken) -> C {
        let mut dedupe = Dedupe::default();
        let mut lines = Lines::default();
        let mut newest_nano = self.position.saved.position_nano;
        for line in &self.position.saved.lines_at_position {
            dedupe.first_sighting(line.as_bytes());
        }
        let (inspect_tx, inspect_rx) = mpsc::channel(INSPECT_QUEUE);
        let (answer_tx, mut answers) = mpsc::channel(INSPECT_QUEUE);
        spawn_inspector(
            self.engine.clone(),
            inspect_rx,
            answer_tx,
            tasks,
            cancel.clone(),
        );
        let mut inspects = Vec::new();
        // Events up to the engine's time at a resubscription are replays of what it held.
        let mut replay_until = 0;
        let (snapshot_tx, mut snapshots) = mpsc::channel::<Snapshot>(1);
        let mut snapshot_task: Option<JoinHandle<()>> = None;
        let mut save_failing = false;
        // The lines at the position matter only to a state file: no copy per event without one.
        let keep_position = self.state_file.is_some();
        let mut retry = Retry::new(backoff);
        let mut subscribed_before = false;
        let mut body: Option<Incoming> = None;
        let mut retry_at = Instant::now();
        let mut ping_task: Option<JoinHandle<Result<(), super::EngineError>>> = None;
        let mut ping = tokio::time::interval(self.ping_interval);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut tick = tokio::time::interval(self.tick_interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);

        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                frame = next_frame(&mut body) => {
                    let failure = match frame {
                        Some(Ok(frame)) => {
                            if let Ok(data) = frame.into_data() {
                                let mut good = false;
                                let (consumer, position) = (&mut self.consumer, &mut self.position);
                                lines.feed(&data, |piece| {
                                    let Piece::Line(line) = piece else {
                                        consumer.signal(Signal::LineTooLong);
                                        return;
                                    };
                                    let Some((time_nano, line)) = hand_over(line, &mut dedupe, consumer) else {
                                        return;
                                    };
                                    good = true;
                                    newest_nano = newest_nano.max(time_nano);
                                    if keep_position {
                                        position.applied(time_nano, line);
                                    }
                                    if time_nano <= replay_until {
                                        consumer.signal(Signal::Replayed);
                                    }
                                });
                                self.consumer.read_done();
                                ask_inspects(&mut self.consumer, &mut inspects, &inspect_tx);
                                if good {
                                    retry.succeeded();
                                    if let Some(open) = self.consumer.take_open_firings() {
                                        self.position.set_open_firings(open);
                                    }
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
                        retry_at = self.lost(&reason, retry.next_wait());
                    }
                }
                Some((req, snap)) = answers.recv() => self.consumer.inspected(&req, &snap),
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
                            self.consumer.signal(Signal::Subscribed { again: subscribed_before });
                            if subscribed_before {
                                tracing::info!(since = %super::format_since(newest_nano), "resubscribed to the event stream");
                            } else {
                                tracing::info!(since = %super::format_since(newest_nano), "subscribed to the event stream");
                            }
                            subscribed_before = true;
                            if let Some(why) = sub.gap {
                                self.consumer.signal(Signal::Gap);
                                tracing::warn!(position = %super::format_since(newest_nano), reason = why, "events may have been lost while the stream was down; reconciling with the engine's containers");
                                self.position.saved.engine_id = sub.info.id;
                                if let Some(t) = snapshot_task.take() {
                                    t.abort();
                                }
                                snapshot_task = Some(spawn_snapshot(self.engine.clone(), newest_nano, self.consumer.seq(), snapshot_tx.clone()));
                            }
                        }
                        Err(e) => {
                            retry_at = self.lost(&format!("{:#}", anyhow::Error::from(e)), retry.next_wait());
                        }
                    }
                }
                Some(snapshot) = snapshots.recv() => self.consumer.reconcile(&snapshot),
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
                        retry_at = self.lost(&format!("ping failed: {reason}"), retry.next_wait());
                    }
                }
                _ = ping.tick(), if ping_task.is_none() && body.is_some() => {
                    let engine = self.engine.clone();
                    ping_task = Some(tokio::spawn(async move { engine.ping().await }));
                }
                _ = tick.tick() => {
                    self.consumer.tick();
                    ask_inspects(&mut self.consumer, &mut inspects, &inspect_tx);
                    // A condition fires or ends with time, between events too.
                    if let Some(open) = self.consumer.take_open_firings() {
                        self.position.set_open_firings(open);
                        self.save_position(&mut save_failing);
                    }
                }
            }
        }
        self.consumer.signal(Signal::Lost);
        if let Some(t) = ping_task {
            t.abort();
        }
        if let Some(t) = snapshot_task {
            t.abort();
        }
        if let Some(open) = self.consumer.take_open_firings() {
            self.position.set_open_firings(open);
        }
        self.save_position(&mut save_failing);
        self.consumer
    }

    /// Writes the position to the state file, if there is one and it moved. A failure is
    /// logged once until a write succeeds again; the stream goes on either way.
    fn save_position(&mut self, failing: &mut bool) {
        let Some(file) = &self.state_file else {
            return;
        };
        match self.position.save(file) {
            Ok(false) => {}
            Ok(true) if *failing => {
                *failing = false;
                tracing::info!(state_file = %file.path().display(), "the state file is written again");
            }
            Ok(true) => {}
            Err(e) if !*failing => {
                *failing = true;
                tracing::warn!(error = %e, "the stream goes on, but a restart will not resume from here");
            }
            Err(_) => {}
        }
    }

    /// Marks the stream lost and returns when to try again, after `wait`.
    fn lost(&mut self, reason: &str, wait: Duration) -> Instant {
        self.consumer.signal(Signal::Lost);
        tracing::warn!(
            endpoint = %self.engine.endpoint(),
            error = reason,
            retry_in = ?wait,
            "event stream lost; resubscribing"
        );
        Instant::now() + wait
    }
}

/// The waits between attempts to subscribe, started afresh by the first good event after a
/// failure (and only then: building them anew for every good read showed in the profile).
struct Retry<F, I> {
    make: F,
    delays: I,
    used: bool,
}

impl<F: Fn() -> I, I: Iterator<Item = Duration>> Retry<F, I> {
    fn new(make: F) -> Self {
        Self {
            delays: make(),
            make,
            used: false,
        }
    }

    fn next_wait(&mut self) -> Duration {
        self.used = true;
        self.delays.next().unwrap_or(MAX_BACKOFF)
    }

    fn succeeded(&mut self) {
        if std::mem::take(&mut self.used) {
            self.delays = (self.make)();
        }
    }
}

/// Queues the inspects the consumer asked for; `buf` is reused between calls.
fn ask_inspects(
    consumer: &mut impl Consumer,
    buf: &mut Vec<InspectRequest>,
    queue: &mpsc::Sender<InspectRequest>,
) {
    consumer.take_inspects(buf);
    for req in buf.drain(..) {
        ask_inspect(queue, req);
    }
}

/// Queues an inspect for the workers, never waiting: a full queue drops it with a warning.
fn ask_inspect(queue: &mpsc::Sender<InspectRequest>, req: InspectRequest) {
    if let Err(mpsc::error::TrySendError::Full(req)) = queue.try_send(req) {
        tracing::warn!(
            container_id = %req.id,
            "inspect queue full; this container's state and healthcheck may lag until its next event"
        );
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
            "the engine no longer holds the events since our position (it restarted, more than 256 events passed, or its event log was cut)",
        ),
        Some(_) => None,
    };
    let body = engine.subscribe(since_nano).await?;
    Ok(Subscription { body, info, gap })
}

/// Lists and inspects every container in the background; the stream goes on meanwhile.
fn spawn_snapshot(
    engine: Engine,
    position_nano: i64,
    seq: u64,
    tx: mpsc::Sender<Snapshot>,
) -> JoinHandle<()> {
    let snapshot = async move {
        match engine.snapshot().await {
            Ok((info, containers)) => {
                let _ = tx
                    .send(Snapshot {
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
    };
    tokio::spawn(snapshot.in_current_span())
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
}
