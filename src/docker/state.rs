//! `--state-file`: where the stream was, kept across exporter restarts.
//!
//! Written after every batch of events the stream applies (a temporary file renamed over the
//! old one, so a reader never sees half a file), read once at start-up. It holds the engine's
//! ID, the time of the newest applied event and the lines at exactly that time: the engine's
//! `since=` is inclusive, so those lines come back on resume and must be recognised as seen.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Lines at the saved position kept for recognition. Events share a nanosecond only by
/// coincidence; a handful is plenty.
pub const MAX_LINES_AT_POSITION: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Saved {
    /// The engine the position belongs to (`/info` ID).
    pub engine_id: String,
    /// `timeNano` of the newest event applied.
    pub position_nano: i64,
    /// The raw lines of the events at exactly `position_nano`.
    pub lines_at_position: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("reading the state file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the state file {path} is not a state this exporter wrote: {source}; delete it to start afresh"
    )]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("writing the state file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
    tmp: PathBuf,
}

impl StateFile {
    pub fn new(path: &Path) -> Self {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        Self {
            path: path.to_owned(),
            tmp: tmp.into(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved state; `None` if there is no file yet.
    pub fn load(&self) -> Result<Option<Saved>, StateError> {
        let text = match std::fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StateError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|source| StateError::Parse {
                path: self.path.clone(),
                source,
            })
    }

    pub fn save(&self, saved: &Saved) -> Result<(), StateError> {
        let write = |source| StateError::Write {
            path: self.path.clone(),
            source,
        };
        // Serializing plain strings and numbers cannot fail.
        let text = serde_json::to_vec(saved).unwrap_or_default();
        std::fs::write(&self.tmp, text).map_err(write)?;
        std::fs::rename(&self.tmp, &self.path).map_err(write)
    }
}

/// Tracks the position and the lines at it as events are applied.
#[derive(Debug, Default)]
pub struct Position {
    pub saved: Saved,
    dirty: bool,
}

impl Position {
    pub fn new(saved: Saved) -> Self {
        Self {
            saved,
            dirty: false,
        }
    }

    /// An applied event: its time and raw line.
    pub fn applied(&mut self, time_nano: i64, line: &[u8]) {
        let s = &mut self.saved;
        if time_nano > s.position_nano {
            s.position_nano = time_nano;
            s.lines_at_position.clear();
        }
        if time_nano == s.position_nano && s.lines_at_position.len() < MAX_LINES_AT_POSITION {
            s.lines_at_position
                .push(String::from_utf8_lossy(line).into_owned());
        }
        self.dirty = true;
    }

    /// Whether there is something new to write; clears the flag.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads_and_names_a_bad_file() {
        let dir = std::env::temp_dir().join(format!("dee-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let f = StateFile::new(&dir.join("state.json"));
        assert_eq!(f.load().expect("no file is no state"), None);
        let mut p = Position::new(Saved {
            engine_id: "E".into(),
            ..Saved::default()
        });
        p.applied(5, b"a");
        p.applied(7, b"b");
        p.applied(7, b"c");
        p.applied(6, b"late");
        assert!(p.take_dirty());
        assert!(!p.take_dirty());
        f.save(&p.saved).expect("save");
        let back = f.load().expect("load").expect("some");
        assert_eq!(back.position_nano, 7);
        assert_eq!(back.lines_at_position, ["b", "c"]);
        std::fs::write(f.path(), "{\"engine_id\":\"E\",\"extra\":1}").expect("write");
        let err = f.load().expect_err("unknown field").to_string();
        assert!(
            err.starts_with(&format!(
                "the state file {} is not a state this exporter wrote: unknown field `extra`",
                f.path().display()
            )),
            "{err}"
        );
        assert!(err.ends_with("; delete it to start afresh"), "{err}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
