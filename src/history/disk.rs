//! `--history.dir`: the events on disk, in JSON-lines segments (`events-0000000001.jsonl`, one
//! engine line a line, oldest first), written by a thread of their own so that a slow disk
//! never holds the stream up: the stream appends to a bounded buffer, and when the writer is
//! that far behind, lines are dropped and counted instead.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use prometheus::{IntCounter, IntGauge};

use crate::docker::event::Event;

/// Lines waiting for the writer, in bytes: seconds of a storm of events; past it they are
/// dropped and counted.
pub const PENDING_BYTES: usize = 8 * 1024 * 1024;

/// A segment's size before the next one starts (smaller when the retention's size is small,
/// so that retention can drop whole segments).
pub const SEGMENT_BYTES: u64 = 16 * 1024 * 1024;

/// How often the writer drops segments past their age when no event comes.
const RETENTION_CHECK: Duration = Duration::from_secs(60);

/// How long segments are kept: the oldest go first once either bound is passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub max_age: Option<Duration>,
    pub max_bytes: Option<u64>,
}

impl Retention {
    /// `7d`, `512MiB`, or both: `7d,512MiB` (sizes in B, KB, MB, GB, KiB, MiB, GiB).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut r = Self {
            max_age: None,
            max_bytes: None,
        };
        for part in text.split(',').map(str::trim) {
            if let Some(bytes) = parse_size(part) {
                r.max_bytes = Some(bytes);
            } else if let Ok(age) = humantime::parse_duration(part) {
                r.max_age = Some(age);
            } else {
                return Err(format!(
                    "{part:?} is neither a duration (7d, 12h) nor a size (512MiB, 1GB)"
                ));
            }
        }
        if r.max_bytes == Some(0) || r.max_age == Some(Duration::ZERO) {
            return Err("a retention of 0 keeps nothing; leave out --history.dir instead".into());
        }
        Ok(r)
    }

    fn segment_bytes(&self) -> u64 {
        self.max_bytes.map_or(SEGMENT_BYTES, |max| {
            (max / 4).clamp(64 * 1024, SEGMENT_BYTES)
        })
    }
}

fn parse_size(text: &str) -> Option<u64> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let unit = match unit {
        "B" => 1,
        "KB" => 1000,
        "MB" => 1000 * 1000,
        "GB" => 1000 * 1000 * 1000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(unit)
}

#[derive(Debug, thiserror::Error)]
#[error("--history.dir {dir}: {what}: {source}")]
pub struct DiskError {
    dir: PathBuf,
    what: &'static str,
    source: std::io::Error,
}

/// The newest event on disk, and the lines at exactly its time: what a resumed stream sends
/// again and must not be written twice.
#[derive(Debug, Default, Clone)]
pub struct Tail {
    pub time_nano: i64,
    pub lines: Vec<Vec<u8>>,
}

/// A segment file: its number and path.
#[derive(Debug, Clone)]
struct Segment {
    number: u64,
    path: PathBuf,
}

/// The segments of `dir`, oldest first.
fn segments(dir: &Path) -> std::io::Result<Vec<Segment>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(number) = name
            .to_str()
            .and_then(|n| n.strip_prefix("events-"))
            .and_then(|n| n.strip_suffix(".jsonl"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        found.push(Segment {
            number,
            path: entry.path(),
        });
    }
    found.sort_by_key(|s| s.number);
    Ok(found)
}

/// The path of segment `number` of `dir`.
pub fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("events-{number:010}.jsonl"))
}

/// The numbers of the segments of `dir`, oldest first.
pub fn segment_numbers(dir: &Path) -> std::io::Result<Vec<u64>> {
    Ok(segments(dir)?.into_iter().map(|s| s.number).collect())
}

/// Segments dropped for their retention that are remembered: more than a sink can be behind
/// by, in segments of 64 KiB and more.
const DROPPED_REMEMBERED: usize = 65_536;

/// What a dropped segment held: a sink that had not read it counts what it lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentSummary {
    pub lines: u64,
    pub first_nano: i64,
    pub last_nano: i64,
}

/// The segments retention dropped since the exporter started, by number.
#[derive(Debug, Default)]
pub struct DroppedSegments(Mutex<std::collections::BTreeMap<u64, SegmentSummary>>);

impl DroppedSegments {
    pub fn get(&self, number: u64) -> Option<SegmentSummary> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&number)
            .copied()
    }

    pub fn insert(&self, number: u64, summary: SegmentSummary) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.insert(number, summary);
        while m.len() > DROPPED_REMEMBERED {
            m.pop_first();
        }
    }
}

/// Counts a segment's events and their first and last times.
fn summarize(path: &Path) -> std::io::Result<SegmentSummary> {
    let mut summary = SegmentSummary {
        lines: 0,
        first_nano: 0,
        last_nano: 0,
    };
    read_segment(File::open(path)?, &mut Vec::new(), &mut |ev, _| {
        if summary.lines == 0 {
            summary.first_nano = ev.time_nano;
        }
        summary.last_nano = ev.time_nano;
        summary.lines += 1;
        true
    })?;
    Ok(summary)
}

/// A segment last written this long before `since` holds no event from `since` on, even with
/// the engine's clock that far ahead of ours.
const CLOCK_SLACK: Duration = Duration::from_secs(3600);

/// Each event of the segments of `dir`, oldest first, decoded and as its line, until `each`
/// returns false; lines that are not events (a line cut by a crash) are skipped, and so are
/// segments last written well before `since_nano` (`i64::MIN`: none).
pub fn read(
    dir: &Path,
    since_nano: i64,
    mut each: impl FnMut(&Event, &[u8]) -> bool,
) -> Result<(), DiskError> {
    let err = |what, source| DiskError {
        dir: dir.to_owned(),
        what,
        source,
    };
    let segments = segments(dir).map_err(|e| err("listing its segments", e))?;
    let mut line = Vec::new();
    let since = u64::try_from(since_nano)
        .ok()
        .map(|n| SystemTime::UNIX_EPOCH + Duration::from_nanos(n));
    for s in segments {
        if let Some(since) = since
            && fs::metadata(&s.path)
                .and_then(|m| m.modified())
                .is_ok_and(|m| m + CLOCK_SLACK < since)
        {
            continue;
        }
        let file = match File::open(&s.path) {
            Ok(f) => f,
            // Dropped by retention meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(err("opening a segment", e)),
        };
        if !read_segment(file, &mut line, &mut each).map_err(|e| err("reading a segment", e))? {
            return Ok(());
        }
    }
    Ok(())
}

/// Each event of one segment, decoded and as its line, until `each` returns false (then
/// `false`); lines that are not events are skipped. `line` is the buffer to read into.
fn read_segment(
    file: File,
    line: &mut Vec<u8>,
    each: &mut impl FnMut(&Event, &[u8]) -> bool,
) -> std::io::Result<bool> {
    let mut reader = BufReader::with_capacity(1 << 16, file);
    loop {
        line.clear();
        if reader.read_until(b'\n', line)? == 0 {
            return Ok(true);
        }
        let text = crate::docker::lines::record(line);
        if let Ok(ev) = Event::decode(text)
            && !each(&ev, text)
        {
            return Ok(false);
        }
    }
}

/// What the stream and the writer share.
#[derive(Default)]
struct Pending {
    lines: Vec<u8>,
    closed: bool,
}

/// The writer of one directory.
pub struct Disk {
    shared: Arc<(Mutex<Pending>, Condvar)>,
    dropped_segments: Arc<DroppedSegments>,
    /// Bumped after each write, for those who read the segments as they grow (the sinks).
    written: tokio::sync::watch::Sender<u64>,
    dropped: IntCounter,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Disk {
    /// Opens (or makes) `dir`, reads what it holds (each line to `each`, oldest first) and
    /// starts the writer.
    pub fn open(
        dir: &Path,
        retention: Retention,
        dropped: IntCounter,
        disk_bytes: IntGauge,
        each: impl FnMut(i64, &[u8]),
    ) -> Result<(Self, Tail), DiskError> {
        let err = |what, source| DiskError {
            dir: dir.to_owned(),
            what,
            source,
        };
        fs::create_dir_all(dir).map_err(|e| err("making it", e))?;
        let mut tail = Tail::default();
        let mut each = each;
        read(dir, i64::MIN, |ev, line| {
            let t = ev.time_nano;
            if t > tail.time_nano {
                tail.time_nano = t;
                tail.lines.clear();
            }
            if t == tail.time_nano {
                tail.lines.push(line.to_vec());
            }
            each(t, line);
            true
        })?;
        let dropped_segments = Arc::new(DroppedSegments::default());
        let written = tokio::sync::watch::Sender::new(0);
        let mut files = Files {
            dir: dir.to_owned(),
            dropped_segments: dropped_segments.clone(),
            written: written.clone(),
            retention,
            segment_bytes: retention.segment_bytes(),
            current: None,
            disk_bytes,
        };
        files
            .open_last()
            .map_err(|e| err("opening its newest segment", e))?;
        files.enforce();
        let shared = Arc::new((Mutex::new(Pending::default()), Condvar::new()));
        let writer = {
            let shared = shared.clone();
            let dropped = dropped.clone();
            std::thread::Builder::new()
                .name("history-writer".into())
                .spawn(move || files.run(&shared, &dropped))
                .map_err(|e| err("starting its writer", e))?
        };
        Ok((
            Self {
                shared,
                dropped_segments,
                written,
                dropped,
                writer: Mutex::new(Some(writer)),
            },
            tail,
        ))
    }

    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.shared.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a line for the writer; drops it (counted) when the writer is too far behind.
    pub fn push(&self, line: &[u8]) {
        let mut p = self.pending();
        if p.lines.len() + line.len() + 1 > PENDING_BYTES {
            drop(p);
            self.dropped.inc();
            return;
        }
        let wake = p.lines.is_empty();
        p.lines.extend_from_slice(line);
        p.lines.push(b'\n');
        drop(p);
        if wake {
            self.shared.1.notify_one();
        }
    }

    /// The segments retention has dropped, for the sinks that had not read them.
    pub fn dropped_segments(&self) -> Arc<DroppedSegments> {
        self.dropped_segments.clone()
    }

    /// Changes after each write to the segments.
    pub fn written(&self) -> tokio::sync::watch::Receiver<u64> {
        self.written.subscribe()
    }

    /// Writes what is queued and stops the writer (at shutdown).
    pub fn close(&self) {
        self.pending().closed = true;
        self.shared.1.notify_one();
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(w) = writer
            && w.join().is_err()
        {
            tracing::error!("the history writer panicked; its last lines may be lost");
        }
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        self.close();
    }
}

/// The writer's side: the segment files.
struct Files {
    dir: PathBuf,
    dropped_segments: Arc<DroppedSegments>,
    written: tokio::sync::watch::Sender<u64>,
    retention: Retention,
    segment_bytes: u64,
    /// The segment written now, its number and size.
    current: Option<(File, u64, u64)>,
    disk_bytes: IntGauge,
}

impl Files {
    fn run(mut self, shared: &(Mutex<Pending>, Condvar), dropped: &IntCounter) {
        let mut batch = Vec::new();
        let mut failing = false;
        loop {
            let closed = {
                let mut p = shared.0.lock().unwrap_or_else(|e| e.into_inner());
                while p.lines.is_empty() && !p.closed {
                    let (guard, timeout) = shared
                        .1
                        .wait_timeout(p, RETENTION_CHECK)
                        .unwrap_or_else(|e| e.into_inner());
                    p = guard;
                    if timeout.timed_out() && p.lines.is_empty() {
                        drop(p);
                        self.enforce();
                        p = shared.0.lock().unwrap_or_else(|e| e.into_inner());
                    }
                }
                std::mem::swap(&mut p.lines, &mut batch);
                p.closed
            };
            if !batch.is_empty() {
                match self.write(&batch) {
                    Ok(()) if failing => {
                        failing = false;
                        tracing::info!(dir = %self.dir.display(), "the event history is written again");
                    }
                    Ok(()) => {}
                    Err(e) => {
                        let lost = memchr::memchr_iter(b'\n', &batch).count();
                        dropped.inc_by(lost as u64);
                        if !failing {
                            failing = true;
                            tracing::warn!(dir = %self.dir.display(), error = %e, lost, counted_in = "docker_events_exporter_history_dropped_total", "cannot write the event history; the stream goes on");
                        }
                        self.current = None;
                    }
                }
                batch.clear();
            }
            if closed {
                return;
            }
        }
    }

    /// Appends whole lines to the current segment, starting a new one past its size.
    fn write(&mut self, batch: &[u8]) -> std::io::Result<()> {
        if self
            .current
            .as_ref()
            .is_none_or(|c| c.2 >= self.segment_bytes)
        {
            let next = self.current.as_ref().map_or_else(
                || segments(&self.dir).map(|s| s.last().map_or(1, |s| s.number + 1)),
                |c| Ok(c.1 + 1),
            )?;
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(segment_path(&self.dir, next))?;
            self.current = Some((file, next, 0));
            self.enforce();
        }
        if let Some((file, _, size)) = &mut self.current {
            file.write_all(batch)?;
            *size += batch.len() as u64;
            self.disk_bytes.add(batch.len() as i64);
            self.written.send_modify(|n| *n = n.wrapping_add(1));
        }
        Ok(())
    }

    /// Continues the newest segment if it has room.
    fn open_last(&mut self) -> std::io::Result<()> {
        if let Some(last) = segments(&self.dir)?.pop() {
            let size = fs::metadata(&last.path)?.len();
            let file = OpenOptions::new().append(true).open(&last.path)?;
            self.current = Some((file, last.number, size));
        }
        Ok(())
    }

    /// Drops the oldest segments past the retention's age or size (never the current one), and
    /// sets the size gauge.
    fn enforce(&mut self) {
        let current = self.current.as_ref().map(|c| c.1);
        let Ok(all) = segments(&self.dir) else {
            return;
        };
        let mut sized: Vec<(Segment, u64, Option<SystemTime>)> = all
            .into_iter()
            .filter_map(|s| {
                let m = fs::metadata(&s.path).ok()?;
                let modified = m.modified().ok();
                Some((s, m.len(), modified))
            })
            .collect();
        let mut total: u64 = sized.iter().map(|(_, len, _)| len).sum();
        let now = SystemTime::now();
        sized.retain(|(s, len, modified)| {
            let old = self.retention.max_age.is_some_and(|age| {
                modified.is_some_and(|m| now.duration_since(m).is_ok_and(|d| d > age))
            });
            let big = self.retention.max_bytes.is_some_and(|max| total > max);
            if Some(s.number) == current || !(old || big) {
                return true;
            }
            match summarize(&s.path) {
                Ok(summary) => self.dropped_segments.insert(s.number, summary),
                Err(e) => {
                    tracing::warn!(segment = %s.path.display(), error = %e, "cannot count the events of a segment past its retention; a sink that had not sent them cannot say how many it lost");
                }
            }
            match fs::remove_file(&s.path) {
                Ok(()) => {
                    total -= len;
                    false
                }
                Err(e) => {
                    tracing::warn!(segment = %s.path.display(), error = %e, "cannot drop an event history segment past its retention");
                    true
                }
            }
        });
        self.disk_bytes
            .set(i64::try_from(total).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_segment_is_summarized_by_its_events_and_their_times() {
        let dir = std::env::temp_dir().join(format!("dee-summary-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("dir");
        let path = segment_path(&dir, 7);
        let ev = |t: i64| {
            format!(
                r#"{{"Type":"container","Action":"start","Actor":{{"ID":"c","Attributes":{{}}}},"timeNano":{t}}}"#
            )
        };
        // A line cut short by a crash is not an event.
        let text = format!("{}\n{}\n{{\"Type\":\"cont\n{}\n", ev(5), ev(7), ev(9));
        fs::write(&path, text).expect("segment");
        assert_eq!(
            summarize(&path).expect("summary"),
            SegmentSummary {
                lines: 3,
                first_nano: 5,
                last_nano: 9
            }
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn retention_takes_an_age_a_size_or_both() {
        let day = Duration::from_secs(86_400);
        assert_eq!(
            Retention::parse("7d,512MiB"),
            Ok(Retention {
                max_age: Some(7 * day),
                max_bytes: Some(512 << 20)
            })
        );
        assert_eq!(
            Retention::parse("1GB"),
            Ok(Retention {
                max_age: None,
                max_bytes: Some(1_000_000_000)
            })
        );
        assert_eq!(
            Retention::parse("7d,lots"),
            Err("\"lots\" is neither a duration (7d, 12h) nor a size (512MiB, 1GB)".to_owned())
        );
        assert_eq!(
            Retention::parse("0B"),
            Err("a retention of 0 keeps nothing; leave out --history.dir instead".to_owned())
        );
    }
}
