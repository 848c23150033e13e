//! The dispatcher: takes firings off the bounded queue, gathers batches, and runs each action
//! on a pool of at most `workers` at once.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Executor, Fire, Origin, RuleSet};
use crate::docker::event::Event;

struct Batch {
    set: Arc<RuleSet>,
    index: usize,
    origin: Arc<Origin>,
    until: tokio::time::Instant,
    pending: Vec<Arc<Event>>,
}

/// A batch's key: its rule's name (a reload keeps a rule's open window) and its engine's (a
/// digest is of one engine's events).
type BatchKey = (String, Arc<str>);

fn key_of(fire: &Fire) -> BatchKey {
    (fire.rule().name.clone(), fire.origin.engine.clone())
}

/// Takes firings off the queue, gathers batches, runs actions on the bounded pool. On cancel,
/// flushes pending batches and returns; running actions finish on `tasks`.
pub async fn dispatch(
    mut queue: mpsc::Receiver<Fire>,
    executor: Arc<Executor>,
    workers: usize,
    tasks: TaskTracker,
    cancel: CancellationToken,
) {
    let pool = Arc::new(Semaphore::new(workers.max(1)));
    let mut batches: HashMap<BatchKey, Batch> = HashMap::new();
    loop {
        let next_flush = batches.values().map(|b| b.until).min();
        tokio::select! {
            _ = cancel.cancelled() => break,
            fire = queue.recv() => {
                let Some(fire) = fire else { break };
                accept(fire, &mut batches, &executor, &pool, &tasks).await;
            }
            _ = sleep_until(next_flush) => {
                let now = tokio::time::Instant::now();
                let due: Vec<BatchKey> = batches.iter().filter(|(_, b)| b.until <= now).map(|(k, _)| k.clone()).collect();
                for key in due {
                    let Some(mut b) = batches.remove(&key) else { continue };
                    if b.pending.is_empty() {
                        continue;
                    }
                    // A digest goes out and opens the next window.
                    let events = std::mem::take(&mut b.pending);
                    let fire = Fire { set: b.set, index: b.index, events, origin: b.origin, opened_by: None, again: None, condition: None };
                    let window = fire.rule().batch.unwrap_or_default();
                    batches.insert(key, Batch { set: fire.set.clone(), index: fire.index, origin: fire.origin.clone(), until: now + window, pending: Vec::new() });
                    start(fire, &executor, &pool, &tasks).await;
                }
            }
        }
    }
    // Shutdown: what is still queued is taken in, then every pending batch goes out.
    queue.close();
    while let Ok(fire) = queue.try_recv() {
        accept(fire, &mut batches, &executor, &pool, &tasks).await;
    }
    for (_, b) in batches.drain() {
        if !b.pending.is_empty() {
            let fire = Fire {
                set: b.set,
                index: b.index,
                events: b.pending,
                origin: b.origin,
                opened_by: None,
                again: None,
                condition: None,
            };
            tracing::info!(rule = %fire.rule().name, events = fire.events.len(), "flushing a pending batch at shutdown");
            start(fire, &executor, &pool, &tasks).await;
        }
    }
}

/// Starts a firing now, or adds it to its rule's open batch window.
async fn accept(
    fire: Fire,
    batches: &mut HashMap<BatchKey, Batch>,
    executor: &Arc<Executor>,
    pool: &Arc<Semaphore>,
    tasks: &TaskTracker,
) {
    let Some(window) = fire.rule().batch.filter(|_| fire.again.is_none()) else {
        return start(fire, executor, pool, tasks).await;
    };
    match batches.get_mut(&key_of(&fire)) {
        // A window is open: the event waits for the digest.
        Some(b) if b.until > tokio::time::Instant::now() => {
            b.set = fire.set.clone();
            b.index = fire.index;
            b.pending.extend(fire.events);
        }
        _ => {
            batches.insert(
                key_of(&fire),
                Batch {
                    set: fire.set.clone(),
                    index: fire.index,
                    origin: fire.origin.clone(),
                    until: tokio::time::Instant::now() + window,
                    pending: Vec::new(),
                },
            );
            start(fire, executor, pool, tasks).await;
        }
    }
}

async fn sleep_until(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Starts every action of a firing, each when a worker is free.
async fn start(fire: Fire, executor: &Arc<Executor>, pool: &Arc<Semaphore>, tasks: &TaskTracker) {
    let fire = Arc::new(fire);
    for (index, action) in fire.rule().actions.iter().enumerate() {
        if !fire.runs(action) {
            continue;
        }
        let Ok(permit) = pool.clone().acquire_owned().await else {
            return;
        };
        let (fire, executor) = (fire.clone(), executor.clone());
        tasks.spawn(async move {
            let _permit = permit;
            executor.execute(&fire, index).await;
        });
    }
}
