//! The event history: every event the pipeline applied, as the engine sent it. The last
//! `--history.size` events of each engine are kept in memory ([`ring`]); with
//! `--history.dir`, every event also goes to disk ([`disk`]), where it outlives the exporter
//! and the engine's own buffer of 256. The API, the `events` command and the status page
//! read it with the engine's own filters ([`filter`]); the live log follows it.

pub mod disk;
pub mod filter;
mod ring;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use prometheus::{IntCounter, IntGauge, Registry};
use tokio::sync::broadcast;

#[cfg(test)]
use crate::docker::event::Event;
use crate::metrics::families as f;

pub use disk::Retention;
pub use filter::{FilterError, Filters};

/// `--history.size`'s default.
pub const DEFAULT_SIZE: usize = 10_000;

/// The memory an engine's history may take for its lines, whatever `--history.size` says
/// (events of a megabyte each would otherwise make 10,000 of them 10 GB).
pub const MAX_MEMORY_BYTES: usize = 64 * 1024 * 1024;

/// Events a live subscriber may fall behind by before it is told it missed some.
pub const LIVE_BUFFER: usize = 1024;

/// The most events one answer of the API holds (the oldest of the window first, as the
/// engine sends them); a client asks again from the last one's time for the rest.
pub const MAX_ANSWER_EVENTS: usize = 100_000;

#[derive(Debug, Clone)]
pub struct HistorySettings {
    /// Events kept in memory, per engine (0: none; the live log still works).
    pub size: usize,
    pub dir: Option<PathBuf>,
    pub retention: Retention,
}

/// An engine's history folder, for those who read it as it grows.
pub struct OnDisk {
    pub dir: PathBuf,
    /// The segments retention has dropped there.
    pub dropped: Arc<disk::DroppedSegments>,
    /// Changes after each write.
    pub written: tokio::sync::watch::Receiver<u64>,
}

/// One event, for a live subscriber.
#[derive(Debug)]
pub struct Live {
    pub engine: Arc<str>,
    pub line: Box<str>,
}

/// Every engine's history: what the API, the page and the live log read.
pub struct Histories {
    settings: HistorySettings,
    several: bool,
    engines: Mutex<Vec<Arc<History>>>,
    live: Arc<LiveSender>,
    held: IntGauge,
    dropped: IntCounter,
    disk_bytes: IntGauge,
}

/// A question: a window of engine time and filters.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub since_nano: Option<i64>,
    pub until_nano: Option<i64>,
    pub filters: Filters,
}

/// An answer: lines oldest first, and whether [`MAX_ANSWER_EVENTS`] cut it.
#[derive(Debug, Default)]
pub struct Answer {
    pub lines: Vec<(i64, String)>,
    pub truncated: bool,
}

impl Histories {
    /// `several`: engines keep their segments in a folder each under `--history.dir`.
    pub fn new(
        settings: HistorySettings,
        several: bool,
        registry: &Registry,
    ) -> prometheus::Result<Arc<Self>> {
        let held = f::HISTORY_EVENTS.int_gauge()?;
        let dropped = f::HISTORY_DROPPED.int_counter()?;
        let disk_bytes = f::HISTORY_DISK_BYTES.int_gauge()?;
        registry.register(Box::new(held.clone()))?;
        registry.register(Box::new(dropped.clone()))?;
        if settings.dir.is_some() {
            registry.register(Box::new(disk_bytes.clone()))?;
        }
        Ok(Arc::new(Self {
            settings,
            several,
            engines: Mutex::new(Vec::new()),
            live: Arc::new(LiveSender {
                tx: broadcast::channel(LIVE_BUFFER).0,
                followers: std::sync::atomic::AtomicUsize::new(0),
            }),
            held,
            dropped,
            disk_bytes,
        }))
    }

    fn engines(&self) -> Vec<Arc<History>> {
        self.engines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The history of the engine shown as `name`, kept (with several engines) under `key`,
    /// its entry in the state file: read from disk if there is a `--history.dir`. `resumed`:
    /// the position its stream resumes from (the state file's), if it does: the events it
    /// sends again from there up to the newest on disk are not kept twice (`i64::MIN` for a
    /// replay: only what is newer than the disk's newest is kept). Without one, every event
    /// is new.
    pub fn engine(
        &self,
        key: &str,
        name: Arc<str>,
        resumed: Option<i64>,
    ) -> Result<Arc<History>, disk::DiskError> {
        let mut ring = ring::Ring::new(self.settings.size, MAX_MEMORY_BYTES);
        let (disk, tail) = match &self.settings.dir {
            Some(dir) => {
                let dir = if self.several {
                    dir.join(folder_name(key))
                } else {
                    dir.clone()
                };
                let (disk, tail) = disk::Disk::open(
                    &dir,
                    self.settings.retention,
                    self.dropped.clone(),
                    self.disk_bytes.clone(),
                    |t, line| ring.push(t, line),
                )?;
                let tail = resumed.map(|from| Resumed { from, tail });
                (Some((disk, dir)), tail)
            }
            None => (None, None),
        };
        self.held.add(ring.len() as i64);
        let history = Arc::new(History {
            name,
            kept: Mutex::new(Kept {
                ring,
                on_disk: tail,
            }),
            disk,
            live: self.live.clone(),
            held: self.held.clone(),
        });
        self.engines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(history.clone());
        Ok(history)
    }

    /// Follows every engine's events from now on.
    pub fn subscribe(&self) -> Follower {
        self.live
            .followers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Follower {
            rx: self.live.tx.subscribe(),
            live: self.live.clone(),
        }
    }

    /// The events of the window that pass the filters, oldest first. Reads the segments on
    /// disk for what memory no longer holds: call it where blocking is allowed.
    pub fn query(&self, q: &Query) -> Answer {
        let mut answer = Answer::default();
        let since = q.since_nano.unwrap_or(i64::MIN);
        let until = q.until_nano.unwrap_or(i64::MAX);
        for h in self.engines() {
            let in_window = |t: i64| t >= since && t <= until;
            let mut take = |t: i64, line: &[u8]| {
                answer
                    .lines
                    .push((t, String::from_utf8_lossy(&cli_line(line)).into_owned()));
            };
            let kept = h.kept();
            let ring = &kept.ring;
            let held: Vec<(i64, Vec<u8>)> = ring
                .iter()
                .filter(|(t, _)| in_window(*t))
                .map(|(t, l)| (t, l.to_vec()))
                .collect();
            // The disk holds what memory let go, in the same order: read it up to memory's
            // oldest event.
            let first = ring.iter().next().map(|(t, l)| (t, l.to_vec()));
            let dir = h
                .disk
                .as_ref()
                .filter(|_| ring.evicted())
                .map(|(_, d)| d.clone());
            drop(kept);
            if let Some(dir) = dir {
                let mut older: Vec<(i64, Vec<u8>)> = Vec::new();
                let mut met = first.is_none();
                let read = disk::read(&dir, since, |ev, line| {
                    let t = ev.time_nano;
                    if first
                        .as_ref()
                        .is_some_and(|(ft, fl)| *ft == t && fl == line)
                    {
                        met = true;
                        return false;
                    }
                    if in_window(t) && q.filters.matches(&h.name, ev) {
                        older.push((t, line.to_vec()));
                    }
                    true
                });
                if let Err(e) = read {
                    tracing::warn!(error = %e, "answering from memory only");
                }
                if !met {
                    // Memory's oldest never reached the disk (dropped): of what both hold,
                    // memory's copy is the one kept.
                    let in_memory: std::collections::HashSet<&[u8]> =
                        held.iter().map(|(_, l)| l.as_slice()).collect();
                    older.retain(|(_, l)| !in_memory.contains(l.as_slice()));
                }
                for (t, line) in &older {
                    take(*t, line);
                }
            }
            for (t, line) in &held {
                if q.filters.passes(&h.name, line) {
                    take(*t, line);
                }
            }
        }
        // Engines' events interleave by time; each engine's are in its own order already.
        answer.lines.sort_by_key(|(t, _)| *t);
        if answer.lines.len() > MAX_ANSWER_EVENTS {
            answer.lines.truncate(MAX_ANSWER_EVENTS);
            answer.truncated = true;
        }
        answer
    }

    /// The newest `n` events of every engine (for the page's first view), newest first.
    pub fn newest(&self, n: usize) -> Vec<(Arc<str>, i64, String)> {
        let mut out = Vec::new();
        for h in self.engines() {
            let kept = h.kept();
            out.extend(
                kept.ring
                    .iter()
                    .rev()
                    .take(n)
                    .map(|(t, l)| (h.name.clone(), t, String::from_utf8_lossy(l).into_owned())),
            );
        }
        out.sort_by_key(|(_, t, _)| std::cmp::Reverse(*t));
        out.truncate(n);
        out
    }

    /// Writes what is queued for disk and stops the writers (at shutdown).
    pub fn close(&self) {
        for h in self.engines() {
            if let Some((disk, _)) = &h.disk {
                disk.close();
            }
        }
    }
}

/// An engine line as `docker events --format '{{json .}}'` prints it: the engine's API
/// escapes `<`, `>` and `&` as `\u003c`, `\u003e` and `\u0026` (Go's default), the CLI
/// re-encodes without that. Everything else is the same bytes.
pub fn cli_line(line: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if memchr::memmem::find(line, b"\\u00").is_none() {
        return std::borrow::Cow::Borrowed(line);
    }
    let mut out = Vec::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        let b = line[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let plain = match line.get(i + 1..i + 6) {
            Some(b"u003c") => Some(b'<'),
            Some(b"u003e") => Some(b'>'),
            Some(b"u0026") => Some(b'&'),
            _ => None,
        };
        match plain {
            Some(c) => {
                out.push(c);
                i += 6;
            }
            // Any other escape, copied whole (`\\` among them, so that `\\u003c` stays).
            None => {
                out.extend_from_slice(&line[i..(i + 2).min(line.len())]);
                i += 2;
            }
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A key as a folder name: what is not a letter, digit, `.`, `_` or `-` becomes `_`.
fn folder_name(key: &str) -> String {
    let name: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.starts_with('.') {
        format!("_{name}")
    } else {
        name
    }
}

/// One engine's history.
pub struct History {
    name: Arc<str>,
    /// One lock for what a batch of events changes ([`Staged`]): taken once a read, or 8 KiB.
    kept: Mutex<Kept>,
    disk: Option<(disk::Disk, PathBuf)>,
    live: Arc<LiveSender>,
    held: IntGauge,
}

/// What [`History::record`] changes.
struct Kept {
    ring: ring::Ring,
    /// Where a resumed stream starts and the newest events on disk at start-up, until the
    /// stream has passed them: it sends them again, and they must not be kept twice.
    on_disk: Option<Resumed>,
}

impl History {
    fn kept(&self) -> MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Its folder in `--history.dir`, if it keeps its events on disk: what the sinks read.
    pub fn on_disk(&self) -> Option<OnDisk> {
        self.disk.as_ref().map(|(d, dir)| OnDisk {
            dir: dir.clone(),
            dropped: d.dropped_segments(),
            written: d.written(),
        })
    }

    /// Keeps the events the pipeline applied and staged, oldest first, and empties `staged`:
    /// one lock for them all.
    pub fn take(&self, staged: &mut Staged) {
        // Those on disk already (a resumed stream sends them again): their indices, in order;
        // no allocation unless there are some.
        let mut known = Vec::new();
        {
            let mut kept = self.kept();
            let before = kept.ring.len();
            if kept.on_disk.is_none() {
                kept.ring.push_all(&staged.lines, &staged.events);
            } else {
                for (i, (t, line)) in staged.iter().enumerate() {
                    if kept.seen(t, line) {
                        known.push(i);
                    } else {
                        kept.ring.push(t, line);
                    }
                }
            }
            let grown = kept.ring.len() as i64 - before as i64;
            if grown != 0 {
                self.held.add(grown);
            }
        }
        // Nothing else to hand them to (no folder, nobody following): the common case, where
        // a walk over the staged events would only find that out for each.
        if self.disk.is_none() && !self.live.following() {
            staged.clear();
            return;
        }
        let mut known = known.into_iter().peekable();
        for (i, (_, line)) in staged.iter().enumerate() {
            if known.next_if_eq(&i).is_some() {
                continue;
            }
            if let Some((disk, _)) = &self.disk {
                disk.push(line);
            }
            self.live.send(&self.name, line);
        }
        staged.clear();
    }

    /// Keeps one event: `line` as the engine sent it.
    #[cfg(test)]
    pub fn record(&self, ev: &Event, line: &[u8]) {
        let mut staged = Staged::default();
        staged.push(ev.time_nano, line);
        self.take(&mut staged);
    }
}

/// Events applied and not yet handed to their [`History`]: the pipeline's own, so that
/// keeping an event takes no lock and its copy stays in the cache; [`History::take`] moves
/// them in at the end of each read from the engine, or when there are [`Staged::FULL_BYTES`].
#[derive(Debug, Default)]
pub struct Staged {
    lines: Vec<u8>,
    /// Each event's time and where its line ends in `lines`.
    events: Vec<(i64, usize)>,
}

impl Staged {
    /// Staged bytes past which the pipeline hands them over: few enough to stay in the
    /// processor's first cache (a stage of 64 KiB did not, and missed it three times as often
    /// as the ring's own copy does), enough for a score of events to one lock.
    pub const FULL_BYTES: usize = 8 * 1024;

    /// Stages an event; whether the stage is now full.
    #[inline]
    pub fn push(&mut self, time_nano: i64, line: &[u8]) -> bool {
        self.lines.extend_from_slice(line);
        self.events.push((time_nano, self.lines.len()));
        self.lines.len() >= Self::FULL_BYTES
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    fn clear(&mut self) {
        self.lines.clear();
        self.events.clear();
    }

    fn iter(&self) -> impl Iterator<Item = (i64, &[u8])> + '_ {
        let mut start = 0;
        self.events.iter().map(move |&(t, end)| {
            let line = &self.lines[start..end];
            start = end;
            (t, line)
        })
    }
}

impl Kept {
    /// Whether the event is one of those on disk already (sent again by a resumed stream).
    fn seen(&mut self, time_nano: i64, line: &[u8]) -> bool {
        let Some(Resumed { from, tail }) = self.on_disk.as_mut() else {
            return false;
        };
        if time_nano < tail.time_nano {
            return time_nano >= *from;
        }
        if time_nano == tail.time_nano
            && let Some(i) = tail.lines.iter().position(|l| l == line)
        {
            tail.lines.swap_remove(i);
            return true;
        }
        self.on_disk = None;
        false
    }
}

/// A resumed stream's position, and the newest events on disk.
struct Resumed {
    from: i64,
    tail: disk::Tail,
}

/// The live followers' channel, and how many there are (read once an event without the
/// channel's lock: with nobody following, an event costs nothing here).
struct LiveSender {
    tx: broadcast::Sender<Arc<Live>>,
    followers: std::sync::atomic::AtomicUsize,
}

impl LiveSender {
    fn following(&self) -> bool {
        self.followers.load(std::sync::atomic::Ordering::Relaxed) != 0
    }

    fn send(&self, engine: &Arc<str>, line: &[u8]) {
        if !self.following() {
            return;
        }
        let _ = self.tx.send(Arc::new(Live {
            engine: engine.clone(),
            line: String::from_utf8_lossy(line).into(),
        }));
    }
}

/// A live follower: every event from its start on. Dropping it ends the following.
pub struct Follower {
    pub rx: broadcast::Receiver<Arc<Live>>,
    live: Arc<LiveSender>,
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.live
            .followers
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(action: &str, name: &str, t: i64, extra: &str) -> String {
        format!(
            r#"{{"status":"{action}","id":"id-{name}","Type":"container","Action":"{action}","Actor":{{"ID":"id-{name}","Attributes":{{"name":"{name}"{extra}}}}},"scope":"local","time":{},"timeNano":{t}}}"#,
            t / 1_000_000_000
        )
    }

    fn record(h: &History, l: &str) {
        h.record(&Event::decode(l.as_bytes()).expect("event"), l.as_bytes());
    }

    fn histories(dir: Option<PathBuf>) -> Arc<Histories> {
        histories_of(100, dir)
    }

    fn histories_of(size: usize, dir: Option<PathBuf>) -> Arc<Histories> {
        let settings = HistorySettings {
            size,
            dir,
            retention: Retention {
                max_age: None,
                max_bytes: None,
            },
        };
        Histories::new(settings, false, &Registry::new()).expect("histories")
    }

    #[test]
    fn lines_are_given_as_the_docker_cli_prints_them() {
        let api = br#"{"a":"\u003cscript\u003e \u0026 \\u003c \n \u00e9"}"#;
        assert_eq!(
            String::from_utf8_lossy(&cli_line(api)),
            r#"{"a":"<script> & \\u003c \n \u00e9"}"#
        );
        assert!(matches!(cli_line(b"{}"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn what_memory_let_go_is_read_from_disk_once() {
        let dir = std::env::temp_dir().join(format!("dee-history-evicted-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let s = 1_000_000_000;
        // Out of time order, as events of an engine whose clock was set back are.
        let times = [5, 6, 1, 7, 8];
        let lines: Vec<String> = times
            .iter()
            .enumerate()
            .map(|(i, t)| line("start", &format!("c{i}"), t * s, ""))
            .collect();
        let all = histories_of(2, Some(dir.clone()));
        let h = all.engine("e", "e".into(), None).expect("history");
        for l in &lines {
            record(&h, l);
        }
        all.close();
        let got: Vec<String> = all
            .query(&Query::default())
            .lines
            .into_iter()
            .map(|(_, l)| l)
            .collect();
        let mut want = lines.clone();
        want.sort_by_key(|l| {
            Event::decode(l.as_bytes())
                .map(|e| e.time_nano)
                .unwrap_or(0)
        });
        assert_eq!(got, want);
        let since = Query {
            since_nano: Some(6 * s),
            ..Query::default()
        };
        assert_eq!(all.query(&since).lines.len(), 3, "6, 7 and 8");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The events after a restart given one at a time, and all in one read.
    #[test]
    fn a_restart_neither_loses_nor_doubles_what_is_on_disk() {
        a_restart_keeps_each_event_once(false);
        a_restart_keeps_each_event_once(true);
    }

    fn a_restart_keeps_each_event_once(together: bool) {
        let dir =
            std::env::temp_dir().join(format!("dee-history-{}-{together}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let s = 1_000_000_000;
        let lines: Vec<String> = (0..6)
            .map(|i| line("start", &format!("c{i}"), 10_000 * s + (i / 2) * s, ""))
            .collect();
        {
            let all = histories(Some(dir.clone()));
            let h = all.engine("e", "e".into(), None).expect("history");
            for l in &lines[..4] {
                record(&h, l);
            }
            all.close();
        }
        let all = histories(Some(dir.clone()));
        // Resumed from the state file's position: the time of events 2 and 3.
        let h = all
            .engine("e", "e".into(), Some(10_001 * s))
            .expect("history");
        // A resumed stream sends the events at its position again (2 and 3, at the same
        // time), then the new ones.
        // An event from before that position is not one of them (an engine whose clock went
        // back): it is kept.
        let back = line("start", "back", 10_000 * s - 2 * 3600 * s, "");
        let after: Vec<&String> = lines[2..].iter().chain([&back]).collect();
        if together {
            let mut staged = Staged::default();
            for l in after {
                let t = Event::decode(l.as_bytes()).expect("event").time_nano;
                staged.push(t, l.as_bytes());
            }
            h.take(&mut staged);
            assert!(staged.is_empty());
        } else {
            for l in after {
                record(&h, l);
            }
        }
        all.close();
        let answer = all.query(&Query::default());
        let got: Vec<&str> = answer.lines.iter().map(|(_, l)| l.as_str()).collect();
        let mut want: Vec<&str> = vec![back.as_str()];
        want.extend(lines.iter().map(String::as_str));
        assert_eq!(got, want, "sorted by time");
        let mut on_disk = Vec::new();
        disk::read(&dir, i64::MIN, |_, l| {
            on_disk.push(String::from_utf8_lossy(l).into_owned());
            true
        })
        .expect("read");
        let mut written = lines.clone();
        written.push(back.clone());
        assert_eq!(on_disk, written, "in the order they came");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
