//! `--state-file`: where each engine's stream was, kept across exporter restarts.
//!
//! Written after every batch of events a stream applies (a temporary file renamed over the
//! old one, so a reader never sees half a file), read once at start-up. It holds, for each
//! configured engine (by its name, else its address), the engine's identity, the time of the
//! newest applied event and the lines at exactly that time: the engine's `since=` is
//! inclusive, so those lines come back on resume and must be recognised as seen. The engines
//! share the file; each writes its own entry and keeps the others as they are. (Entries are
//! not keyed by identity: the dockerds of one machine, and cloned machines, can share an
//! engine ID.)

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Lines at the saved position kept for recognition. Events share a nanosecond only by
/// coincidence; a handful is plenty.
pub const MAX_LINES_AT_POSITION: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Saved {
    /// Which configured engine it is: its name if it was given one, else its address. Empty in
    /// the one-engine file of earlier versions.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub engine: String,
    /// The engine the position belongs to (`/info` ID): a position is resumed only on the
    /// engine that it was taken on.
    pub engine_id: String,
    /// `timeNano` of the newest event applied.
    pub position_nano: i64,
    /// The raw lines of the events at exactly `position_nano`.
    pub lines_at_position: Vec<String>,
    /// The firings of rules with `resolve` still waiting for their resolving event, as the
    /// position left them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub open_firings: Vec<OpenFiring>,
}

/// A firing of a rule with `resolve` still waiting for its resolving event: after a restart,
/// its recovery is still sent, and the same event does not fire it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenFiring {
    pub rule: String,
    pub actor_id: String,
    /// The event that opened it, as JSON.
    pub event: String,
    /// What its condition found (for a rule with a condition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<serde_json::Value>,
    /// It was muted: it was not sent, and its end sends nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub muted: bool,
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

/// The file's content: every engine's position, and the mutes in force (kept as the
/// actions layer writes them).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Positions {
    engines: Vec<Saved>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    mutes: Vec<serde_json::Value>,
}

/// The state file, shared by every engine's stream.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    tmp: PathBuf,
    /// What the file holds: as loaded, with each save applied.
    kept: Mutex<Positions>,
}

impl StateFile {
    pub fn new(path: &Path) -> Self {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        Self {
            path: path.to_owned(),
            tmp: tmp.into(),
            kept: Mutex::new(Positions::default()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Positions> {
        // A panic while holding it leaves whole positions behind.
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the file and keeps what it holds, for [`Self::position_of`] and to write back
    /// beside what is saved; no file is no position. A file of one engine's position (as
    /// versions before several engines wrote it) is read too.
    pub fn load(&self) -> Result<usize, StateError> {
        let text = match std::fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(source) => {
                return Err(StateError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let parse = |source| StateError::Parse {
            path: self.path.clone(),
            source,
        };
        let value: serde_json::Value = serde_json::from_slice(&text).map_err(parse)?;
        let positions = if value.get("engines").is_some() {
            serde_json::from_value::<Positions>(value).map_err(parse)?
        } else {
            Positions {
                engines: vec![serde_json::from_value::<Saved>(value).map_err(parse)?],
                mutes: Vec::new(),
            }
        };
        let n = positions.engines.len();
        *self.kept() = positions;
        Ok(n)
    }

    /// The loaded position of the configured engine `engine` (the one position of a file of
    /// earlier versions counts as any engine's), if the file had one.
    pub fn position_of(&self, engine: &str) -> Option<Saved> {
        let kept = self.kept();
        let found = kept.engines.iter().find(|s| s.engine == engine);
        let old = || kept.engines.iter().find(|s| s.engine.is_empty());
        found.or_else(old).map(|s| Saved {
            engine: engine.to_owned(),
            ..s.clone()
        })
    }

    /// Saves one engine's position in place of what it saved before, keeping every other
    /// engine's.
    pub fn save(&self, saved: &Saved) -> Result<(), StateError> {
        let mut kept = self.kept();
        kept.engines
            .retain(|s| s.engine != saved.engine && !s.engine.is_empty());
        kept.engines.push(saved.clone());
        self.write(&kept)
    }

    /// The mutes the file held when loaded (or last saved).
    pub fn mutes(&self) -> Vec<serde_json::Value> {
        self.kept().mutes.clone()
    }

    /// Saves the mutes in place of those saved before, keeping every engine's position.
    pub fn save_mutes(&self, mutes: Vec<serde_json::Value>) -> Result<(), StateError> {
        let mut kept = self.kept();
        kept.mutes = mutes;
        self.write(&kept)
    }

    /// Writes `kept`: under its lock, so one writer of the temporary file at a time.
    fn write(&self, kept: &Positions) -> Result<(), StateError> {
        let write = |source| StateError::Write {
            path: self.path.clone(),
            source,
        };
        // Serializing plain strings, numbers and JSON values cannot fail.
        let text = serde_json::to_vec(kept).unwrap_or_default();
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

    /// Saves it into `file` if it moved since the last save.
    pub fn save(&mut self, file: &StateFile) -> Result<bool, StateError> {
        if !self.take_dirty() {
            return Ok(false);
        }
        file.save(&self.saved)?;
        Ok(true)
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

    /// The open firings changed.
    pub fn set_open_firings(&mut self, open: Vec<OpenFiring>) {
        self.saved.open_firings = open;
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
        assert_eq!(f.load().expect("no file is no state"), 0);
        let mut p = Position::new(Saved {
            engine: "a".into(),
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
        // Another engine of the same identity (dockerds of one machine share it): its own
        // entry, with a firing still open.
        let other = Saved {
            engine: "b".into(),
            engine_id: "E".into(),
            position_nano: 9,
            lines_at_position: vec!["f".into()],
            open_firings: vec![OpenFiring {
                rule: "sick".into(),
                actor_id: "c1".into(),
                event: r#"{"Type":"container"}"#.into(),
                condition: Some(serde_json::json!({"condition": "down", "since_nano": 5})),
                muted: true,
            }],
        };
        f.save(&other).expect("save");
        f.save_mutes(vec![serde_json::json!({"id": "m1"})])
            .expect("save mutes");
        f.save(&other)
            .expect("a position saved after keeps the mutes");
        let again = StateFile::new(f.path());
        assert_eq!(again.load().expect("load"), 2);
        assert_eq!(again.mutes(), [serde_json::json!({"id": "m1"})]);
        let back = again.position_of("a").expect("a's");
        assert_eq!(back.position_nano, 7);
        assert_eq!(back.lines_at_position, ["b", "c"]);
        assert_eq!(again.position_of("b"), Some(other.clone()));
        assert_eq!(again.position_of("c"), None);
        // An engine that answers with another identity replaces its own entry only.
        let moved = Saved {
            engine_id: "E2".into(),
            ..back
        };
        again.save(&moved).expect("save");
        let third = StateFile::new(f.path());
        assert_eq!(third.load().expect("load"), 2);
        assert_eq!(third.position_of("a"), Some(moved));
        assert_eq!(third.position_of("b"), Some(other));

        // The one-engine file of earlier versions.
        std::fs::write(
            f.path(),
            r#"{"engine_id":"E","position_nano":3,"lines_at_position":[]}"#,
        )
        .expect("write");
        let old = StateFile::new(f.path());
        assert_eq!(old.load().expect("load"), 1);
        let resumed = old
            .position_of("unix:///var/run/docker.sock")
            .expect("any engine's");
        assert_eq!(
            (
                resumed.engine.as_str(),
                resumed.engine_id.as_str(),
                resumed.position_nano
            ),
            ("unix:///var/run/docker.sock", "E", 3)
        );
        // Saved again, it is that engine's entry: the old one goes (and no open firings are
        // none written).
        old.save(&resumed).expect("save");
        let text = std::fs::read_to_string(f.path()).expect("read");
        assert_eq!(
            text,
            r#"{"engines":[{"engine":"unix:///var/run/docker.sock","engine_id":"E","position_nano":3,"lines_at_position":[]}]}"#
        );

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
        std::fs::write(f.path(), r#"{"engines":[{"engine_id":"E","when":1}]}"#).expect("write");
        let err = f.load().expect_err("unknown field").to_string();
        assert!(err.contains("unknown field `when`"), "{err}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
