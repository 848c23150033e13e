//! The container series: every per-container counter, gauge and histogram, kept as plain numbers
//! in one cell per label set and written to the text format directly.
//!
//! Why not the `prometheus` crate's vectors: they keep each series as its own object holding a
//! copy of its label values, and `gather()` copies them all again per scrape. At ~38 series per
//! container, 10,000 containers cost 257 MiB and 0.8 s per scrape that way. Here a label set's
//! label string is rendered (escaped) once, its numbers live together in one cell, and a scrape
//! streams the text out in chunks without holding more than one cell's lock at a time.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};

use super::families::{
    CONTAINER_CREATED_TIMESTAMP, CONTAINER_EXEC_DURATION, CONTAINER_EXECS, CONTAINER_EXITS,
    CONTAINER_FINISHED_TIMESTAMP, CONTAINER_HEALTH_STATUS, CONTAINER_HEALTHCHECK_DURATION,
    CONTAINER_HEALTHCHECKS, CONTAINER_INFO, CONTAINER_KILLS, CONTAINER_LAST_EXIT_CODE,
    CONTAINER_LAST_TERMINATION_REASON, CONTAINER_OOM_KILLS, CONTAINER_RESTART_COUNT,
    CONTAINER_RESTARTS, CONTAINER_RUN_DURATION, CONTAINER_STARTED_TIMESTAMP, CONTAINER_STARTS,
    CONTAINER_STATE, Family,
};
use crate::docker::{ContainerState, Health, RestartPolicy};

/// An exit code (-1..=255) or signal number (1..=64); [`Code::OTHER`] for anything else, and
/// [`Code::UNKNOWN`] where the event names none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code(i16);

impl Code {
    pub const OTHER: Self = Self(i16::MIN);
    /// A kill event without a signal (Podman's).
    pub const UNKNOWN: Self = Self(i16::MIN + 1);

    /// Exit codes are 0..=255 on Linux (-1 when the engine could not tell).
    pub fn exit(code: Option<&str>) -> Self {
        Self::exit_number(code.and_then(|c| c.parse().ok()))
    }

    /// The same for a number, as `docker inspect` gives it.
    pub fn exit_number(code: Option<i64>) -> Self {
        match code {
            Some(c @ -1..=255) => Self(i16::try_from(c).unwrap_or(i16::MIN)),
            _ => Self::OTHER,
        }
    }

    /// Signals are numbers 1..=64 in kill events.
    pub fn signal(signal: Option<&str>) -> Self {
        let Some(signal) = signal else {
            return Self::UNKNOWN;
        };
        match signal.parse::<i16>() {
            Ok(s @ 1..=64) => Self(s),
            _ => Self::OTHER,
        }
    }

    fn write(self, out: &mut Vec<u8>) {
        match self {
            Self::OTHER => out.extend_from_slice(b"other"),
            Self::UNKNOWN => out.extend_from_slice(b"unknown"),
            Self(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
        }
    }
}

/// How a container's run ended: the `reason` of
/// [`CONTAINER_LAST_TERMINATION_REASON`](super::families::CONTAINER_LAST_TERMINATION_REASON).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    /// Exit code 0, no kill.
    Completed,
    /// A non-zero exit code, no kill.
    Error,
    /// The kernel's OOM killer ended it.
    OomKilled,
    /// A kill (`docker stop`, `docker kill`, `docker restart`) came before the exit.
    Killed,
}

impl Termination {
    pub const ALL: [Self; 4] = [Self::Completed, Self::Error, Self::OomKilled, Self::Killed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Error => "error",
            Self::OomKilled => "oom_killed",
            Self::Killed => "killed",
        }
    }

    /// From the events of the run: an OOM kill first, then a kill, then the exit code.
    pub fn of(exit_code: i64, oom_killed: bool, killed: bool) -> Self {
        match () {
            _ if oom_killed => Self::OomKilled,
            _ if killed => Self::Killed,
            _ if exit_code == 0 => Self::Completed,
            _ => Self::Error,
        }
    }

    /// From an inspect, for an exit whose events were not seen: `killed` is what the engine's
    /// held events told, if they reach back to that run. Where they do not, the exit code says
    /// what it can: 137 and 143 are deaths by SIGKILL and SIGTERM, the signals of `docker stop`
    /// and `docker kill`.
    pub fn from_inspect(exit_code: i64, oom_killed: bool, killed: Option<bool>) -> Self {
        let killed = killed.unwrap_or(matches!(exit_code, 137 | 143));
        Self::of(exit_code, oom_killed, killed)
    }
}

/// What the container holding a label set is and how it last ran: the kube-state-metrics kind
/// of gauges, each absent until known.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lifecycle {
    pub created_nano: Option<i64>,
    pub started_nano: Option<i64>,
    pub finished_nano: Option<i64>,
    /// The exit code and reason of its last exit.
    pub last_exit: Option<(i64, Termination)>,
    /// The engine's `RestartCount`.
    pub restart_count: Option<i64>,
    pub info: Option<Info>,
}

/// The labels of [`CONTAINER_INFO`](super::families::CONTAINER_INFO).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// Short (12 hex digits). Shared: the tracker's copy and the series' are one string.
    pub image_id: Arc<str>,
    pub restart_policy: Option<RestartPolicy>,
}

/// A histogram's numbers: per-bucket (not cumulative) counts, then the sum and count.
#[derive(Debug, Clone, PartialEq)]
pub struct Hist<const N: usize> {
    buckets: [u64; N],
    sum: f64,
    count: u64,
}

impl<const N: usize> Default for Hist<N> {
    fn default() -> Self {
        Self {
            buckets: [0; N],
            sum: 0.0,
            count: 0,
        }
    }
}

impl<const N: usize> Hist<N> {
    /// Counts `v`; `bounds` are the family's bucket bounds (N of them).
    pub fn observe(&mut self, bounds: &[f64], v: f64) {
        if let Some(n) = bounds
            .iter()
            .position(|b| v <= *b)
            .and_then(|i| self.buckets.get_mut(i))
        {
            *n += 1;
        }
        self.sum += v;
        self.count += 1;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn sum(&self) -> f64 {
        self.sum
    }
}

pub type RunHist = Hist<{ CONTAINER_RUN_DURATION.buckets.len() }>;
pub type ExecHist = Hist<{ CONTAINER_EXEC_DURATION.buckets.len() }>;
pub type ProbeHist = Hist<{ CONTAINER_HEALTHCHECK_DURATION.buckets.len() }>;

/// The series of a container that has a healthcheck.
#[derive(Debug, Default)]
pub struct HealthData {
    pub success: u64,
    pub failure: u64,
    pub duration: ProbeHist,
    pub status: Option<Health>,
}

/// Every number of one label set. Which series exist mirrors what the README promises:
/// starts, restarts, OOM kills and state always; the rest from their first use.
#[derive(Debug, Default)]
pub struct CellData {
    pub starts: u64,
    pub restarts: u64,
    pub oom_kills: u64,
    pub state: Option<ContainerState>,
    pub run_duration: Option<RunHist>,
    pub exec_duration: Option<ExecHist>,
    pub health: Option<HealthData>,
    pub life: Lifecycle,
    pub exits: Vec<(Code, u64)>,
    pub kills: Vec<(Code, u64)>,
    pub execs: Vec<(Code, u64)>,
    /// When it last died on its own with an error: what "crashing now" reads.
    pub crash_exits: CrashExits,
}

/// The times of a series' last [`CrashExits::KEPT`] exits on its own (no kill before them)
/// with a code other than 0, in nanoseconds, oldest first; 0 where there was none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CrashExits([i64; CrashExits::KEPT]);

impl CrashExits {
    /// Enough to say "5 or more" of a loop.
    pub const KEPT: usize = 5;

    pub fn push(&mut self, time_nano: i64) {
        self.0.rotate_left(1);
        self.0[Self::KEPT - 1] = time_nano;
    }

    /// How many of those kept are from `since_nano` on.
    pub fn since(&self, since_nano: i64) -> usize {
        self.0
            .iter()
            .filter(|t| **t != 0 && **t >= since_nano)
            .count()
    }
}

/// Adds one to the count of `code`, creating it at its first use.
pub fn bump(counts: &mut Vec<(Code, u64)>, code: Code) {
    match counts.iter_mut().find(|(c, _)| *c == code) {
        Some((_, n)) => *n += 1,
        None => counts.push((code, 1)),
    }
}

/// One label set: its rendered labels and its numbers.
pub struct Cell {
    /// `name="…",image="…",…`, escaped for the text format.
    labels: Box<[u8]>,
    data: Mutex<CellData>,
}

impl Cell {
    /// The cell's numbers. The lock is held by the tracker for one event's update and by a
    /// scrape for one family's lines of this cell: never long.
    pub fn lock(&self) -> MutexGuard<'_, CellData> {
        // A panic while holding it leaves plain numbers behind, still worth exporting.
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Its labels as (name, value), unescaped, in their order (for the status page).
    pub fn label_pairs(&self) -> Vec<(&str, String)> {
        let mut pairs = Vec::new();
        // Written by `insert` from `&str`s, escaping only ASCII: valid UTF-8.
        let mut rest = std::str::from_utf8(&self.labels).unwrap_or("");
        while let Some((name, after)) = rest.split_once("=\"") {
            let mut value = String::new();
            let mut chars = after.char_indices();
            let mut end = after.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    '\\' => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c)) => value.push(c),
                        None => {}
                    },
                    c => value.push(c),
                }
            }
            pairs.push((name, value));
            rest = after[end..].strip_prefix(',').unwrap_or("");
        }
        pairs
    }
}

/// Every label set's cell, in the order they were first seen (stable between scrapes).
pub struct ContainerSeries {
    /// The `engine` label, before the others, when several engines are watched.
    engine_label: Option<String>,
    label_names: Vec<String>,
    cells: Mutex<BTreeMap<u64, Arc<Cell>>>,
    next_id: Mutex<u64>,
}

/// A scrape's chunk size: large enough that a chunk is cheap to send, small enough that a
/// scrape of 10,000 containers never holds its whole 50 MB text in memory.
pub const CHUNK_BYTES: usize = 256 * 1024;

impl ContainerSeries {
    /// `label_names`: `name`, `image`, `compose_project`, `compose_service`, the Swarm ones,
    /// then `label_*`; after `engine_label`, if there is one.
    pub fn new(engine_label: Option<String>, label_names: Vec<String>) -> Self {
        Self {
            engine_label,
            label_names,
            cells: Mutex::new(BTreeMap::new()),
            next_id: Mutex::new(0),
        }
    }

    /// A new cell for these label values (in `label_names` order) of the engine `engine`
    /// (shown only if there is an engine label); its id removes it.
    pub fn insert(&self, engine: Option<&str>, values: &[String]) -> (u64, Arc<Cell>) {
        let mut labels = Vec::with_capacity(64 + values.iter().map(String::len).sum::<usize>());
        let engine = self.engine_label.as_deref().zip(engine);
        let pairs = engine.into_iter().chain(
            self.label_names
                .iter()
                .map(String::as_str)
                .zip(values.iter().map(String::as_str)),
        );
        for (i, (name, value)) in pairs.enumerate() {
            if i > 0 {
                labels.push(b',');
            }
            labels.extend_from_slice(name.as_bytes());
            labels.extend_from_slice(b"=\"");
            escape_into(&mut labels, value);
            labels.push(b'"');
        }
        let cell = Arc::new(Cell {
            labels: labels.into(),
            data: Mutex::new(CellData::default()),
        });
        let id = {
            let mut next = self.next_id.lock().unwrap_or_else(|e| e.into_inner());
            *next += 1;
            *next
        };
        self.table().insert(id, cell.clone());
        (id, cell)
    }

    /// Every cell now, in the order they were first seen.
    pub fn cells(&self) -> Vec<Arc<Cell>> {
        self.table().values().cloned().collect()
    }

    pub fn remove(&self, id: u64) {
        self.table().remove(&id);
    }

    pub fn len(&self) -> usize {
        self.table().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn table(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<Cell>>> {
        self.cells.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes every container family after what `out` holds, handing `out` to `flush` whenever
    /// it passes [`CHUNK_BYTES`] and once more at the end (if anything is left); stops early
    /// when `flush` returns false (the client went away), and returns that.
    pub fn encode(&self, out: &mut Vec<u8>, flush: &mut dyn FnMut(&mut Vec<u8>) -> bool) -> bool {
        // A snapshot of the table: the tracker may add and remove label sets while we write.
        let cells: Vec<Arc<Cell>> = self.table().values().cloned().collect();
        let mut w = Writer {
            out,
            flush,
            open: true,
            scratch: Vec::new(),
        };
        w.counter(&cells, &CONTAINER_STARTS, |d| Some(d.starts));
        w.by_code(&cells, &CONTAINER_EXITS, |d| &d.exits);
        w.counter(&cells, &CONTAINER_OOM_KILLS, |d| Some(d.oom_kills));
        w.by_code(&cells, &CONTAINER_KILLS, |d| &d.kills);
        w.counter(&cells, &CONTAINER_RESTARTS, |d| Some(d.restarts));
        w.histogram(&cells, &CONTAINER_RUN_DURATION, |d| {
            d.run_duration
                .as_ref()
                .map(|h| (&h.buckets[..], h.sum, h.count))
        });
        w.by_code(&cells, &CONTAINER_EXECS, |d| &d.execs);
        w.histogram(&cells, &CONTAINER_EXEC_DURATION, |d| {
            d.exec_duration
                .as_ref()
                .map(|h| (&h.buckets[..], h.sum, h.count))
        });
        w.family(&cells, &CONTAINER_HEALTHCHECKS, |w, d, labels| {
            if let Some(h) = &d.health {
                w.lines_by(
                    &CONTAINER_HEALTHCHECKS,
                    labels,
                    [("success", h.success), ("failure", h.failure)],
                );
            }
        });
        w.histogram(&cells, &CONTAINER_HEALTHCHECK_DURATION, |d| {
            d.health
                .as_ref()
                .map(|h| (&h.duration.buckets[..], h.duration.sum, h.duration.count))
        });
        w.family(&cells, &CONTAINER_HEALTH_STATUS, |w, d, labels| {
            if let Some(h) = &d.health {
                let values = Health::ALL.map(|st| (st.as_str(), u64::from(h.status == Some(st))));
                w.lines_by(&CONTAINER_HEALTH_STATUS, labels, values);
            }
        });
        w.family(&cells, &CONTAINER_STATE, |w, d, labels| {
            let values =
                ContainerState::ALL.map(|st| (st.as_str(), u64::from(d.state == Some(st))));
            w.lines_by(&CONTAINER_STATE, labels, values);
        });
        w.gauge(&cells, &CONTAINER_LAST_EXIT_CODE, |l| {
            l.last_exit.map(|(code, _)| Num::Int(code))
        });
        w.family(
            &cells,
            &CONTAINER_LAST_TERMINATION_REASON,
            |w, d, labels| {
                if let Some((_, reason)) = d.life.last_exit {
                    let values = Termination::ALL.map(|r| (r.as_str(), u64::from(r == reason)));
                    w.lines_by(&CONTAINER_LAST_TERMINATION_REASON, labels, values);
                }
            },
        );
        w.gauge(&cells, &CONTAINER_CREATED_TIMESTAMP, |l| {
            l.created_nano.map(Num::Nanos)
        });
        w.gauge(&cells, &CONTAINER_STARTED_TIMESTAMP, |l| {
            l.started_nano.map(Num::Nanos)
        });
        w.gauge(&cells, &CONTAINER_FINISHED_TIMESTAMP, |l| {
            l.finished_nano.map(Num::Nanos)
        });
        w.gauge(&cells, &CONTAINER_RESTART_COUNT, |l| {
            l.restart_count.map(Num::Int)
        });
        w.family(&cells, &CONTAINER_INFO, |w, d, labels| {
            let Some(info) = &d.life.info else {
                return;
            };
            w.prefix(CONTAINER_INFO.name, labels);
            w.out.extend_from_slice(b",image_id=\"");
            escape_into(w.out, &info.image_id);
            w.out.extend_from_slice(b"\",restart_policy=\"");
            let policy = info.restart_policy.map_or("unknown", RestartPolicy::as_str);
            w.out.extend_from_slice(policy.as_bytes());
            w.out.extend_from_slice(b"\"} ");
            w.int(1);
        });
        if w.open && !w.out.is_empty() {
            w.open = (w.flush)(w.out);
            w.out.clear();
        }
        w.open
    }
}

/// A lifecycle gauge's value.
#[derive(Clone, Copy)]
enum Num {
    Int(i64),
    /// Nanoseconds since the epoch, written as seconds.
    Nanos(i64),
}

impl Num {
    /// Written with itoa, not `Display` of an f64, which showed in the scrape's profile. A time
    /// is written exactly: seconds, then up to nine digits of fraction.
    fn write(self, out: &mut Vec<u8>) {
        let mut digits = itoa::Buffer::new();
        match self {
            Self::Int(n) => out.extend_from_slice(digits.format(n).as_bytes()),
            Self::Nanos(n) => {
                if n < 0 {
                    out.push(b'-');
                }
                let n = n.unsigned_abs();
                out.extend_from_slice(digits.format(n / 1_000_000_000).as_bytes());
                let fraction = n % 1_000_000_000;
                if fraction != 0 {
                    let padded = digits.format(1_000_000_000 + fraction).as_bytes();
                    out.push(b'.');
                    let fraction = &padded[1..];
                    let end = fraction
                        .iter()
                        .rposition(|d| *d != b'0')
                        .map_or(0, |i| i + 1);
                    out.extend_from_slice(&fraction[..end]);
                }
            }
        }
        out.push(b'\n');
    }
}

/// The text format's escaping of a label value: backslash, double quote and newline.
fn escape_into(out: &mut Vec<u8>, value: &str) {
    for b in value.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => out.push(b),
        }
    }
}

struct Writer<'a> {
    out: &'a mut Vec<u8>,
    flush: &'a mut dyn FnMut(&mut Vec<u8>) -> bool,
    /// False once `flush` said the reader is gone: the rest is skipped.
    open: bool,
    /// A line prefix shared by a series' lines (its buckets, its states).
    scratch: Vec<u8>,
}

impl Writer<'_> {
    /// One family: its HELP and TYPE lines (only if it has a series, as the registry does),
    /// then `lines` for each cell under that cell's lock.
    fn family(
        &mut self,
        cells: &[Arc<Cell>],
        family: &Family,
        mut lines: impl FnMut(&mut Self, &CellData, &[u8]),
    ) {
        let (name, help, kind) = (family.name, family.help, family.kind.as_str());
        // Formatted once: a family that few cells have is written ahead of many of them.
        let header = format!("# HELP {name} {help}\n# TYPE {name} {kind}\n");
        let mut need_header = true;
        for cell in cells {
            if !self.open {
                return;
            }
            let before = self.out.len();
            if need_header {
                self.out.extend_from_slice(header.as_bytes());
            }
            let after_header = self.out.len();
            lines(self, &cell.lock(), &cell.labels);
            if need_header {
                // The header was written ahead; taken back if this cell had no line for it.
                if self.out.len() > after_header {
                    need_header = false;
                } else {
                    self.out.truncate(before);
                }
            }
            if self.out.len() >= CHUNK_BYTES {
                self.open = (self.flush)(self.out);
                self.out.clear();
            }
        }
    }

    fn counter(
        &mut self,
        cells: &[Arc<Cell>],
        family: &Family,
        value: impl Fn(&CellData) -> Option<u64>,
    ) {
        self.family(cells, family, |w, d, labels| {
            if let Some(v) = value(d) {
                w.line(family.name, labels, None, v);
            }
        });
    }

    /// A gauge of the lifecycle: one line where `value` has one.
    fn gauge(
        &mut self,
        cells: &[Arc<Cell>],
        family: &Family,
        value: impl Fn(&Lifecycle) -> Option<Num>,
    ) {
        self.family(cells, family, |w, d, labels| {
            if let Some(v) = value(&d.life) {
                w.prefix(family.name, labels);
                w.out.extend_from_slice(b"} ");
                v.write(w.out);
            }
        });
    }

    /// A counter by exit code or signal: the family's one label of its own.
    fn by_code(
        &mut self,
        cells: &[Arc<Cell>],
        family: &Family,
        counts: impl Fn(&CellData) -> &Vec<(Code, u64)>,
    ) {
        let (name, label) = (family.name, family.labels[0]);
        self.family(cells, family, |w, d, labels| {
            for (code, n) in counts(d) {
                w.prefix(name, labels);
                w.out.push(b',');
                w.out.extend_from_slice(label.as_bytes());
                w.out.extend_from_slice(b"=\"");
                code.write(w.out);
                w.out.extend_from_slice(b"\"} ");
                w.int(*n);
            }
        });
    }

    fn histogram(
        &mut self,
        cells: &[Arc<Cell>],
        family: &Family,
        hist: impl Fn(&CellData) -> Option<(&[u64], f64, u64)>,
    ) {
        let (name, bounds) = (family.name, family.buckets);
        // Each bucket line is a shared prefix, then `<le>"} <count>`: rendered once here.
        let tails: Vec<Vec<u8>> = bounds
            .iter()
            .map(|b| format!("{b}\"}} ").into_bytes())
            .chain(std::iter::once(b"+Inf\"} ".to_vec()))
            .collect();
        self.family(cells, family, |w, d, labels| {
            let Some((buckets, sum, count)) = hist(d) else {
                return;
            };
            let mut prefix = std::mem::take(&mut w.scratch);
            prefix.clear();
            prefix.extend_from_slice(name.as_bytes());
            prefix.extend_from_slice(b"_bucket{");
            prefix.extend_from_slice(labels);
            prefix.extend_from_slice(b",le=\"");
            w.out.reserve((tails.len() + 2) * (prefix.len() + 24));
            let mut cumulative = 0;
            for (i, tail) in tails.iter().enumerate() {
                cumulative += buckets.get(i).copied().unwrap_or(0);
                let v = if i == buckets.len() {
                    count
                } else {
                    cumulative
                };
                w.out.extend_from_slice(&prefix);
                w.out.extend_from_slice(tail);
                w.int(v);
            }
            w.scratch = prefix;
            w.out.extend_from_slice(name.as_bytes());
            w.out.extend_from_slice(b"_sum{");
            w.out.extend_from_slice(labels);
            // Display of an f64 is the shortest text that reads back to the same value.
            let _ = writeln!(w.out, "}} {sum}");
            w.out.extend_from_slice(name.as_bytes());
            w.out.extend_from_slice(b"_count{");
            w.out.extend_from_slice(labels);
            w.out.extend_from_slice(b"} ");
            w.int(count);
        });
    }

    /// Lines `name{labels,key="<value>"} <n>` for each (value, n), the prefix built once;
    /// `key` is the family's one label of its own.
    fn lines_by<'v>(
        &mut self,
        family: &Family,
        labels: &[u8],
        values: impl IntoIterator<Item = (&'v str, u64)>,
    ) {
        let (name, key) = (family.name, family.labels[0]);
        let mut prefix = std::mem::take(&mut self.scratch);
        prefix.clear();
        prefix.extend_from_slice(name.as_bytes());
        prefix.push(b'{');
        prefix.extend_from_slice(labels);
        prefix.push(b',');
        prefix.extend_from_slice(key.as_bytes());
        prefix.extend_from_slice(b"=\"");
        for (value, n) in values {
            self.out.extend_from_slice(&prefix);
            self.out.extend_from_slice(value.as_bytes());
            self.out.extend_from_slice(b"\"} ");
            self.int(n);
        }
        self.scratch = prefix;
    }

    /// `name{labels`, the part every line starts with.
    fn prefix(&mut self, name: &str, labels: &[u8]) {
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b'{');
        self.out.extend_from_slice(labels);
    }

    fn line(&mut self, name: &str, labels: &[u8], extra: Option<(&str, &[u8])>, v: u64) {
        self.prefix(name, labels);
        if let Some((k, value)) = extra {
            self.out.push(b',');
            self.out.extend_from_slice(k.as_bytes());
            self.out.extend_from_slice(b"=\"");
            self.out.extend_from_slice(value);
            self.out.push(b'"');
        }
        self.out.extend_from_slice(b"} ");
        self.int(v);
    }

    fn int(&mut self, v: u64) {
        self.out
            .extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
        self.out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> ContainerSeries {
        ContainerSeries::new(
            None,
            ["name", "image", "compose_project", "compose_service"]
                .map(str::to_owned)
                .to_vec(),
        )
    }

    #[test]
    fn a_cells_labels_read_back_as_they_were_given() {
        let t = ContainerSeries::new(Some("engine".into()), vec!["name".into(), "image".into()]);
        let odd = "a \"quoted\" \\ name\nwith é, and = and \",\" in it";
        let (_, cell) = t.insert(Some("e=1"), &[odd.to_owned(), String::new()]);
        assert_eq!(
            cell.label_pairs(),
            [
                ("engine", "e=1".to_owned()),
                ("name", odd.to_owned()),
                ("image", String::new())
            ]
        );
    }

    fn text(t: &ContainerSeries) -> String {
        let mut all = Vec::new();
        t.encode(&mut Vec::new(), &mut |chunk| {
            all.extend_from_slice(chunk);
            true
        });
        String::from_utf8(all).expect("utf-8")
    }

    #[test]
    fn times_are_written_exactly_in_seconds() {
        let text = |n: Num| {
            let mut out = Vec::new();
            n.write(&mut out);
            String::from_utf8(out).expect("utf-8")
        };
        assert_eq!(
            text(Num::Nanos(1_796_161_899_588_052_181)),
            "1796161899.588052181\n"
        );
        assert_eq!(
            text(Num::Nanos(1_796_161_899_500_000_000)),
            "1796161899.5\n"
        );
        assert_eq!(text(Num::Nanos(1_796_161_899_000_000_000)), "1796161899\n");
        assert_eq!(text(Num::Nanos(7)), "0.000000007\n");
        assert_eq!(text(Num::Nanos(-500_000_000)), "-0.5\n");
        assert_eq!(text(Num::Int(-1)), "-1\n");
    }

    #[test]
    fn an_engine_label_comes_first_when_there_is_one() {
        let t = ContainerSeries::new(Some("engine".into()), vec!["name".into()]);
        let (_, a) = t.insert(Some("web-1"), &["app".into()]);
        let (_, b) = t.insert(Some("db\"1"), &["app".into()]);
        a.lock().starts = 1;
        b.lock().starts = 2;
        let text = text(&t);
        assert!(
            text.contains("docker_container_starts_total{engine=\"web-1\",name=\"app\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("docker_container_starts_total{engine=\"db\\\"1\",name=\"app\"} 2\n"),
            "{text}"
        );
        let one = ContainerSeries::new(None, vec!["name".into()]);
        one.insert(Some("ignored"), &["app".into()]).1.lock().starts = 1;
        assert!(text_has(
            &one,
            "docker_container_starts_total{name=\"app\"} 1\n"
        ));
    }

    fn text_has(t: &ContainerSeries, line: &str) -> bool {
        text(t).contains(line)
    }

    #[test]
    fn nothing_known_writes_nothing() {
        assert_eq!(text(&table()), "");
    }

    #[test]
    fn label_values_are_escaped() {
        let t = table();
        let (_, cell) = t.insert(
            None,
            &[
                "a\"b\\c\nd".into(),
                "img".into(),
                String::new(),
                String::new(),
            ],
        );
        cell.lock().starts = 2;
        let out = text(&t);
        assert!(
            out.contains(
                "docker_container_starts_total{name=\"a\\\"b\\\\c\\nd\",image=\"img\",compose_project=\"\",compose_service=\"\"} 2\n"
            ),
            "{out}"
        );
    }

    #[test]
    fn histograms_are_cumulative_with_sum_and_count() {
        let t = table();
        let (_, cell) = t.insert(
            None,
            &["w".into(), "i".into(), String::new(), String::new()],
        );
        {
            let mut d = cell.lock();
            let h = d.run_duration.get_or_insert_default();
            h.observe(CONTAINER_RUN_DURATION.buckets, 3.0);
            h.observe(CONTAINER_RUN_DURATION.buckets, 10.0);
            h.observe(CONTAINER_RUN_DURATION.buckets, 1e9);
        }
        let out = text(&t);
        let l = "name=\"w\",image=\"i\",compose_project=\"\",compose_service=\"\"";
        for want in [
            format!("docker_container_run_duration_seconds_bucket{{{l},le=\"1\"}} 0\n"),
            format!("docker_container_run_duration_seconds_bucket{{{l},le=\"5\"}} 1\n"),
            format!("docker_container_run_duration_seconds_bucket{{{l},le=\"15\"}} 2\n"),
            format!("docker_container_run_duration_seconds_bucket{{{l},le=\"604800\"}} 2\n"),
            format!("docker_container_run_duration_seconds_bucket{{{l},le=\"+Inf\"}} 3\n"),
            format!("docker_container_run_duration_seconds_sum{{{l}}} 1000000013\n"),
            format!("docker_container_run_duration_seconds_count{{{l}}} 3\n"),
        ] {
            assert!(out.contains(&want), "{want} not in\n{out}");
        }
        assert_eq!(
            out.matches("# TYPE docker_container_run_duration_seconds histogram\n")
                .count(),
            1
        );
        assert!(!out.contains("exec_duration"), "no exec seen: no series");
    }

    #[test]
    fn removed_cells_leave_the_output_and_families_go_with_them() {
        let t = table();
        let (a, _) = t.insert(
            None,
            &["a".into(), "i".into(), String::new(), String::new()],
        );
        let (_, b) = t.insert(
            None,
            &["b".into(), "i".into(), String::new(), String::new()],
        );
        bump(&mut b.lock().exits, Code::exit(Some("137")));
        bump(&mut b.lock().exits, Code::exit(Some("137")));
        bump(&mut b.lock().kills, Code::signal(Some("SIGKILL")));
        t.remove(a);
        let out = text(&t);
        assert!(!out.contains("name=\"a\""), "{out}");
        assert!(out.contains(",exit_code=\"137\"} 2\n"), "{out}");
        assert!(out.contains(",signal=\"other\"} 1\n"), "{out}");
        t.remove(2);
        assert_eq!(text(&t), "");
    }

    #[test]
    fn large_outputs_are_flushed_in_chunks_and_stop_when_the_reader_goes() {
        let t = table();
        for i in 0..5000 {
            t.insert(
                None,
                &[format!("c{i}"), "i".into(), String::new(), String::new()],
            );
        }
        let mut sizes = Vec::new();
        let mut out = Vec::new();
        assert!(t.encode(&mut out, &mut |c| {
            sizes.push(c.len());
            true
        }));
        assert!(sizes.len() > 3, "{sizes:?}");
        let (last, full) = sizes.split_last().expect("chunks");
        assert!(
            full.iter()
                .all(|n| (CHUNK_BYTES..CHUNK_BYTES + 1024).contains(n))
        );
        assert!(
            (1..CHUNK_BYTES).contains(last),
            "the rest, flushed at the end"
        );
        assert!(out.is_empty(), "nothing left behind");
        let whole = text(&t);
        assert_eq!(whole.matches("docker_container_state{").count(), 5000 * 6);
        assert!(whole.ends_with("state=\"dead\"} 0\n"));
        let mut calls = 0;
        let mut out = Vec::new();
        assert!(!t.encode(&mut out, &mut |_| {
            calls += 1;
            false
        }));
        assert_eq!(calls, 1, "no more writing once the reader is gone");
    }
}
