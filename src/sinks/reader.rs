//! A sink's place in an engine's history folder: its cursor (saved beside the segments, in
//! `sinks/`), and the reading of whole lines from there on while the writer appends. Plain
//! blocking I/O: the shipper runs it off the async workers.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::history::disk::{self, DroppedSegments};

/// Where a sink is: the segment, the byte after its last line sent, and how many lines of the
/// segment come before that byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
    pub line: u64,
}

/// The cursor file's content.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Saved {
    sink: String,
    #[serde(flatten)]
    position: Position,
    /// The time of the last event sent, for people and logs.
    time_nano: i64,
}

/// A line read, and where the sink is once it is sent.
#[derive(Debug)]
pub struct Line {
    pub bytes: Vec<u8>,
    pub after: Position,
}

/// Events retention deleted before the sink had sent them.
#[derive(Debug, PartialEq, Eq)]
pub struct Lost {
    /// How many, where the history still knew (it counts a segment's lines as it drops it).
    pub events: Option<u64>,
    pub segments: std::ops::Range<u64>,
    /// The times of the first and last event lost, where known.
    pub first_nano: Option<i64>,
    pub last_nano: Option<i64>,
}

pub struct Reader {
    dir: PathBuf,
    cursor_path: PathBuf,
    pos: Position,
    file: Option<BufReader<File>>,
    dropped: Arc<DroppedSegments>,
}

impl Reader {
    /// The sink's place in `dir`: its cursor file's, else the start of the oldest segment.
    pub fn open(
        dir: &Path,
        cursor_name: &str,
        dropped: Arc<DroppedSegments>,
    ) -> std::io::Result<Self> {
        let cursors = dir.join("sinks");
        std::fs::create_dir_all(&cursors)?;
        let cursor_path = cursors.join(cursor_name);
        let pos = match std::fs::read(&cursor_path) {
            Ok(bytes) => match serde_json::from_slice::<Saved>(&bytes) {
                Ok(saved) => Some(saved.position),
                Err(e) => {
                    tracing::warn!(cursor = %cursor_path.display(), error = %e, "a sink's cursor file is unreadable; sending the whole history again");
                    None
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let pos = match pos {
            Some(p) => p,
            None => Position {
                segment: disk::segment_numbers(dir)?.first().copied().unwrap_or(1),
                ..Position::default()
            },
        };
        Ok(Self {
            dir: dir.to_owned(),
            cursor_path,
            pos,
            file: None,
            dropped,
        })
    }

    pub fn position(&self) -> Position {
        self.pos
    }

    /// Saves `pos` as where the sink is (written to a new file, then renamed over the old: a
    /// crash leaves one or the other whole).
    pub fn save(&self, sink: &str, pos: Position, time_nano: i64) -> std::io::Result<()> {
        let saved = Saved {
            sink: sink.to_owned(),
            position: pos,
            time_nano,
        };
        let tmp = self.cursor_path.with_extension("cursor.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&saved).unwrap_or_default())?;
        std::fs::rename(&tmp, &self.cursor_path)
    }

    /// Reads whole lines from where the last read ended, until `each` returns false or there
    /// are none yet. Segments retention deleted before they were read are reported to `lost`.
    pub fn read(
        &mut self,
        mut each: impl FnMut(Line) -> bool,
        mut lost: impl FnMut(Lost),
    ) -> std::io::Result<()> {
        let mut bytes = Vec::new();
        loop {
            let Some(file) = self.file.as_mut() else {
                if !self.open_segment(&mut lost)? {
                    return Ok(());
                }
                continue;
            };
            bytes.clear();
            let n = file.read_until(b'\n', &mut bytes)?;
            if n > 0 && bytes.last() == Some(&b'\n') {
                self.pos.offset += n as u64;
                self.pos.line += 1;
                let line = Line {
                    bytes: std::mem::take(&mut bytes),
                    after: self.pos,
                };
                if !each(line) {
                    return Ok(());
                }
                continue;
            }
            // The end of what is written: a line cut short is read again whole later.
            if n > 0 {
                file.seek(SeekFrom::Start(self.pos.offset))?;
            }
            let len = file.get_ref().metadata()?.len();
            // A newer segment means this one is finished (the writer starts a segment only
            // after its last batch went to the one before): read what came meanwhile, then go on.
            let next = disk::segment_numbers(&self.dir)?
                .into_iter()
                .find(|s| *s > self.pos.segment);
            let Some(next) = next else {
                return Ok(());
            };
            if len > self.pos.offset + n as u64 {
                continue;
            }
            if n > 0 {
                tracing::warn!(segment = %disk::segment_path(&self.dir, self.pos.segment).display(), bytes = n, "an unfinished line ends a finished segment (the exporter stopped while writing it); skipped");
            }
            self.move_to(next, &mut lost);
        }
    }

    /// Opens the segment at the position; false when there is nothing to read yet.
    fn open_segment(&mut self, lost: &mut impl FnMut(Lost)) -> std::io::Result<bool> {
        match File::open(disk::segment_path(&self.dir, self.pos.segment)) {
            Ok(f) => {
                let mut r = BufReader::with_capacity(1 << 16, f);
                r.seek(SeekFrom::Start(self.pos.offset))?;
                self.file = Some(r);
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let next = disk::segment_numbers(&self.dir)?
                    .into_iter()
                    .find(|s| *s > self.pos.segment);
                match next {
                    Some(next) => {
                        self.move_to(next, lost);
                        Ok(true)
                    }
                    // Nothing written yet (a new folder), or past what there is.
                    None => Ok(false),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Goes on at the start of segment `next`; the segments before it that are gone unread
    /// are lost.
    fn move_to(&mut self, next: u64, lost: &mut impl FnMut(Lost)) {
        let from = if self.file.is_some() {
            self.pos.segment + 1
        } else {
            self.pos.segment
        };
        if from < next {
            let (mut events, mut first_nano, mut last_nano) = (Some(0u64), None, None);
            for s in from..next {
                match self.dropped.get(s) {
                    Some(d) => {
                        let read = if s == self.pos.segment {
                            self.pos.line
                        } else {
                            0
                        };
                        events = events.map(|e| e + d.lines.saturating_sub(read));
                        first_nano = first_nano.or(Some(d.first_nano));
                        last_nano = Some(d.last_nano);
                    }
                    None => events = None,
                }
            }
            lost(Lost {
                events,
                segments: from..next,
                first_nano,
                last_nano,
            });
        }
        self.file = None;
        self.pos = Position {
            segment: next,
            offset: 0,
            line: 0,
        };
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn write(dir: &Path, segment: u64, lines: &[&str]) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(disk::segment_path(dir, segment))
            .expect("segment");
        for l in lines {
            writeln!(f, "{l}").expect("write");
        }
    }

    fn read_all(r: &mut Reader) -> (Vec<String>, Vec<Lost>) {
        let (mut got, mut lost) = (Vec::new(), Vec::new());
        r.read(
            |l| {
                got.push(
                    String::from_utf8(l.bytes)
                        .expect("utf-8")
                        .trim_end()
                        .to_owned(),
                );
                true
            },
            |l| lost.push(l),
        )
        .expect("read");
        (got, lost)
    }

    #[test]
    fn lines_are_read_whole_across_segments_and_resumed_from_the_cursor() {
        let dir = tempdir();
        let dropped = Arc::new(DroppedSegments::default());
        write(&dir, 1, &["a", "b"]);
        let mut r = Reader::open(&dir, "s.cursor", dropped.clone()).expect("open");
        assert_eq!(read_all(&mut r).0, ["a", "b"]);
        // A line cut short is not read until it is whole.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(disk::segment_path(&dir, 1))
            .expect("segment");
        f.write_all(b"c-half").expect("write");
        assert!(read_all(&mut r).0.is_empty());
        f.write_all(b"\n").expect("write");
        write(&dir, 2, &["d"]);
        assert_eq!(read_all(&mut r).0, ["c-half", "d"]);
        let pos = r.position();
        assert_eq!(
            pos,
            Position {
                segment: 2,
                offset: 2,
                line: 1
            }
        );
        r.save("otlp://x:1", pos, 5).expect("save");
        write(&dir, 2, &["e"]);
        let mut again = Reader::open(&dir, "s.cursor", dropped).expect("reopen");
        assert_eq!(read_all(&mut again).0, ["e"]);
    }

    #[test]
    fn segments_deleted_unread_are_counted_as_lost() {
        let dir = tempdir();
        let dropped = Arc::new(DroppedSegments::default());
        write(&dir, 1, &["a", "b", "c"]);
        let mut r = Reader::open(&dir, "s.cursor", dropped.clone()).expect("open");
        let mut first = Vec::new();
        r.read(
            |l| {
                first.push(l.after);
                false
            },
            |_| {},
        )
        .expect("read");
        r.save("x", first[0], 0).expect("save");
        // Retention drops segments 1 and 2 (counting their lines) while the sink is away.
        write(&dir, 2, &["d", "e"]);
        write(&dir, 3, &["f"]);
        dropped.insert(
            1,
            disk::SegmentSummary {
                lines: 3,
                first_nano: 10,
                last_nano: 30,
            },
        );
        dropped.insert(
            2,
            disk::SegmentSummary {
                lines: 2,
                first_nano: 40,
                last_nano: 50,
            },
        );
        std::fs::remove_file(disk::segment_path(&dir, 1)).expect("rm");
        std::fs::remove_file(disk::segment_path(&dir, 2)).expect("rm");
        let mut r = Reader::open(&dir, "s.cursor", dropped).expect("reopen");
        let (got, lost) = read_all(&mut r);
        assert_eq!(got, ["f"]);
        assert_eq!(
            lost,
            [Lost {
                events: Some(4),
                segments: 1..3,
                first_nano: Some(10),
                last_nano: Some(50)
            }]
        );
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "dee-reader-{}-{}",
            std::process::id(),
            crate::docker::now_nano()
        ));
        std::fs::create_dir_all(&dir).expect("tempdir");
        dir
    }
}
