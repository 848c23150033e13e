//! Mutes, in the shape Alertmanager's silences have: matchers on what a firing is about (its
//! container's name, compose project and service, Swarm service, labels; its engine; its
//! rule), a start and an end. Made, listed and expired through `/api/v1/mutes` (and the `mute`
//! subcommand), kept in the state file, read by every engine's reactor.
//!
//! A firing a mute matches sends nothing. A condition that still holds when the mute ends fires
//! then; the end of a firing never sent sends nothing (see the reactor).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::docker::event::Event;
use crate::docker::state::StateFile;

/// Mutes kept at most, expired ones included.
pub const MAX_MUTES: usize = 1000;
/// Matchers a mute may have at most.
const MAX_MATCHERS: usize = 32;
/// The longest matcher value, `createdBy` or `comment`.
const MAX_TEXT_BYTES: usize = 1024;
/// How long an expired mute is still listed.
const EXPIRED_KEPT_NANOS: i64 = 24 * 3600 * 1_000_000_000;
/// The largest compiled regex of a matcher.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// The names a matcher may have, for error messages.
pub const MATCHER_NAMES: &str =
    "name, compose_project, compose_service, swarm_service, engine, rule, label_<KEY>";

/// One matcher, as Alertmanager writes a silence's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Matcher {
    pub name: String,
    pub value: String,
    #[serde(default)]
    pub is_regex: bool,
    #[serde(default = "equal")]
    pub is_equal: bool,
}

fn equal() -> bool {
    true
}

/// As amtool writes a matcher: `name=~"web-.*"`, `engine!="h1"`.
impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = match (self.is_equal, self.is_regex) {
            (true, false) => "=",
            (false, false) => "!=",
            (true, true) => "=~",
            (false, true) => "!~",
        };
        write!(f, "{}{op}{:?}", self.name, self.value)
    }
}

/// A mute as asked for: `POST /api/v1/mutes`'s body.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Request {
    pub matchers: Vec<Matcher>,
    /// RFC 3339; now if left out.
    #[serde(default)]
    pub starts_at: Option<String>,
    pub ends_at: String,
    #[serde(default)]
    pub created_by: String,
    #[serde(default)]
    pub comment: String,
}

/// A mute as kept (in the state file) and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Mute {
    pub id: String,
    pub matchers: Vec<Matcher>,
    pub starts_at: String,
    pub ends_at: String,
    pub created_by: String,
    pub comment: String,
}

/// A mute with its state now, as `GET /api/v1/mutes` lists it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Listed {
    #[serde(flatten)]
    pub mute: Mute,
    pub status: ListedStatus,
}

#[derive(Debug, Clone, Serialize)]
pub struct ListedStatus {
    /// `active`, `pending` (not started yet) or `expired`.
    pub state: &'static str,
}

/// Why a mute was refused, or not found.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MuteError {
    #[error("{0}")]
    Invalid(String),
    #[error("no mute {0:?}")]
    NotFound(String),
}

/// What a matcher reads of a firing.
#[derive(Debug, Clone)]
enum Field {
    Name,
    Engine,
    Rule,
    /// A label of the container (`compose_project` is `com.docker.compose.project`'s).
    Label(String),
}

#[derive(Debug, Clone)]
struct Compiled {
    field: Field,
    test: Test,
    equal: bool,
}

#[derive(Debug, Clone)]
enum Test {
    Is(String),
    Regex(Regex),
}

/// A mute, its times and its matchers compiled.
#[derive(Debug, Clone)]
struct Kept {
    mute: Mute,
    starts_nano: i64,
    ends_nano: i64,
    matchers: Vec<Compiled>,
}

/// Every mute, shared by the API and the reactors.
#[derive(Default)]
pub struct Mutes {
    kept: RwLock<Vec<Kept>>,
    /// How many are kept: a reader skips the lock while there are none.
    len: AtomicUsize,
    file: Option<Arc<StateFile>>,
}

impl Mutes {
    /// The mutes `file` held (none without one); those that cannot be read are logged and let
    /// go.
    pub fn load(file: Option<Arc<StateFile>>) -> Self {
        let mut kept = Vec::new();
        for value in file.iter().flat_map(|f| f.mutes()) {
            match serde_json::from_value::<Mute>(value)
                .map_err(|e| e.to_string())
                .and_then(|m| compile(m).map_err(|e| e.to_string()))
            {
                Ok(k) => kept.push(k),
                Err(e) => {
                    tracing::warn!(error = %e, "a mute in the state file cannot be read; let go")
                }
            }
        }
        Self {
            len: AtomicUsize::new(kept.len()),
            kept: RwLock::new(kept),
            file,
        }
    }

    /// Adds a mute; its ID.
    pub fn add(&self, req: Request, now_nano: i64) -> Result<String, MuteError> {
        let starts_nano = match &req.starts_at {
            Some(t) => time_of("startsAt", t)?.max(now_nano),
            None => now_nano,
        };
        let ends_nano = time_of("endsAt", &req.ends_at)?;
        if ends_nano <= starts_nano {
            return Err(MuteError::Invalid(format!(
                "endsAt {} is not after {}; a mute must end in the future, after it starts",
                req.ends_at,
                if req.starts_at.is_some() {
                    "startsAt"
                } else {
                    "now"
                }
            )));
        }
        for (what, text) in [("createdBy", &req.created_by), ("comment", &req.comment)] {
            if text.len() > MAX_TEXT_BYTES {
                return Err(MuteError::Invalid(format!(
                    "{what} is longer than {MAX_TEXT_BYTES} bytes"
                )));
            }
        }
        let mute = Mute {
            id: new_id(),
            matchers: req.matchers,
            starts_at: rfc3339(starts_nano),
            ends_at: rfc3339(ends_nano),
            created_by: req.created_by,
            comment: req.comment,
        };
        let kept = compile(mute)?;
        let id = kept.mute.id.clone();
        {
            let mut all = self.write();
            all.retain(|k| k.ends_nano.saturating_add(EXPIRED_KEPT_NANOS) > now_nano);
            if all.len() >= MAX_MUTES {
                return Err(MuteError::Invalid(format!(
                    "there are {MAX_MUTES} mutes already; expire some first"
                )));
            }
            all.push(kept);
            self.len.store(all.len(), Ordering::Relaxed);
        }
        tracing::info!(mute = %id, "mute added");
        self.save();
        Ok(id)
    }

    /// Ends the mute `id` now.
    pub fn expire(&self, id: &str, now_nano: i64) -> Result<(), MuteError> {
        {
            let mut all = self.write();
            let k = all
                .iter_mut()
                .find(|k| k.mute.id == id)
                .ok_or_else(|| MuteError::NotFound(id.to_owned()))?;
            if k.ends_nano > now_nano {
                k.ends_nano = now_nano;
                k.starts_nano = k.starts_nano.min(now_nano);
                k.mute.ends_at = rfc3339(now_nano);
                k.mute.starts_at = rfc3339(k.starts_nano);
            }
        }
        tracing::info!(mute = %id, "mute expired");
        self.save();
        Ok(())
    }

    /// Every mute kept, with its state at `now_nano`: active and pending first (by end), then
    /// expired.
    pub fn list(&self, now_nano: i64) -> Vec<Listed> {
        let all = self.read();
        let mut listed: Vec<(i64, Listed)> = all
            .iter()
            .map(|k| {
                let state = if k.ends_nano <= now_nano {
                    "expired"
                } else if k.starts_nano > now_nano {
                    "pending"
                } else {
                    "active"
                };
                let order = if state == "expired" {
                    i64::MAX
                } else {
                    k.ends_nano
                };
                let status = ListedStatus { state };
                (
                    order,
                    Listed {
                        mute: k.mute.clone(),
                        status,
                    },
                )
            })
            .collect();
        listed.sort_by_key(|(order, _)| *order);
        listed.into_iter().map(|(_, l)| l).collect()
    }

    /// Whether a mute in force at `now_nano` matches the firing of rule `rule` about `ev` (a
    /// container's event, or an engine's) of the engine `engine`.
    pub fn mutes(&self, ev: &Event, engine: &str, rule: &str, now_nano: i64) -> bool {
        if self.len.load(Ordering::Relaxed) == 0 {
            return false;
        }
        self.read().iter().any(|k| {
            k.starts_nano <= now_nano
                && now_nano < k.ends_nano
                && k.matchers.iter().all(|m| {
                    let value = match &m.field {
                        Field::Name => ev.attr("name").unwrap_or_default(),
                        Field::Engine => engine,
                        Field::Rule => rule,
                        Field::Label(key) => ev.attr(key).unwrap_or_default(),
                    };
                    let hit = match &m.test {
                        Test::Is(v) => v == value,
                        Test::Regex(r) => r.is_match(value),
                    };
                    hit == m.equal
                })
        })
    }

    /// Whether any mute is kept (a reactor judges muted firings again only then).
    pub fn any(&self) -> bool {
        self.len.load(Ordering::Relaxed) > 0
    }

    fn save(&self) {
        let Some(file) = &self.file else {
            return;
        };
        let values = self
            .read()
            .iter()
            .filter_map(|k| serde_json::to_value(&k.mute).ok())
            .collect();
        if let Err(e) = file.save_mutes(values) {
            tracing::warn!(error = %e, "the mutes were not written to the state file; a restart will forget the change");
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Kept>> {
        // A panic while holding it leaves whole mutes behind.
        self.kept.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Kept>> {
        self.kept.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Checks a mute and compiles its matchers.
fn compile(mute: Mute) -> Result<Kept, MuteError> {
    let bad = |m: String| MuteError::Invalid(m);
    if mute.matchers.is_empty() {
        return Err(bad(
            "a mute needs at least one matcher, e.g. {\"name\": \"name\", \"value\": \"web\"}"
                .into(),
        ));
    }
    if mute.matchers.len() > MAX_MATCHERS {
        return Err(bad(format!("a mute has at most {MAX_MATCHERS} matchers")));
    }
    let mut matchers = Vec::with_capacity(mute.matchers.len());
    for (i, m) in mute.matchers.iter().enumerate() {
        let field = match m.name.as_str() {
            "name" => Field::Name,
            "engine" => Field::Engine,
            "rule" => Field::Rule,
            "compose_project" => Field::Label("com.docker.compose.project".into()),
            "compose_service" => Field::Label("com.docker.compose.service".into()),
            "swarm_service" => Field::Label("com.docker.swarm.service.name".into()),
            other => match other.strip_prefix("label_") {
                Some(key) if !key.is_empty() => Field::Label(key.to_owned()),
                _ => {
                    return Err(bad(format!(
                        "matchers[{i}]: unknown name {other:?}; expected one of: {MATCHER_NAMES}"
                    )));
                }
            },
        };
        if m.value.len() > MAX_TEXT_BYTES {
            return Err(bad(format!(
                "matchers[{i}] ({}): the value is longer than {MAX_TEXT_BYTES} bytes",
                m.name
            )));
        }
        let test = if m.is_regex {
            let invalid = |e: regex::Error| {
                // The parser's message ends with its one-line reason.
                let e = e.to_string();
                let why = e
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .trim_start_matches("error: ");
                bad(format!(
                    "matchers[{i}] ({}): invalid regex {:?}: {why}",
                    m.name, m.value
                ))
            };
            Regex::new(&m.value).map_err(invalid)?;
            // Anchored, as Alertmanager's are.
            let r = regex::RegexBuilder::new(&format!("^(?:{})$", m.value))
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(invalid)?;
            Test::Regex(r)
        } else {
            Test::Is(m.value.clone())
        };
        matchers.push(Compiled {
            field,
            test,
            equal: m.is_equal,
        });
    }
    let starts_nano = time_of("startsAt", &mute.starts_at)?;
    let ends_nano = time_of("endsAt", &mute.ends_at)?;
    Ok(Kept {
        mute,
        starts_nano,
        ends_nano,
        matchers,
    })
}

/// An RFC 3339 time named `what`, in nanoseconds since the epoch.
fn time_of(what: &str, value: &str) -> Result<i64, MuteError> {
    time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(|t| i64::try_from(t.unix_timestamp_nanos()).ok())
        .ok_or_else(|| {
            MuteError::Invalid(format!(
                "{what} {value:?} is not an RFC 3339 time, e.g. 2026-12-06T22:00:00Z"
            ))
        })
}

fn rfc3339(nano: i64) -> String {
    crate::docker::format_rfc3339_nano(nano).unwrap_or_default()
}

/// 16 random bytes in hex (as Alertmanager's silence IDs are unguessable UUIDs).
fn new_id() -> String {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 16];
    // The system's random source does not fail on the systems we run on; a zero ID would
    // still be unique enough to expire by.
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000_000_000;

    fn request(matchers: serde_json::Value, ends_in_secs: i64) -> Request {
        serde_json::from_value(serde_json::json!({
            "matchers": matchers,
            "endsAt": rfc3339(NOW + ends_in_secs * 1_000_000_000),
            "createdBy": "ops",
            "comment": "deploy",
        }))
        .expect("a request")
    }

    fn container(name: &str, labels: &[(&str, &str)]) -> Event {
        let attrs = [("name", name)].into_iter().chain(labels.iter().copied());
        Event::new("container", "die", "id", attrs, "local", 1)
    }

    /// Every matcher must match: equality and anchored regexes, negated or not, on the name,
    /// the compose labels, the engine, the rule and any label; a mute holds from its start to
    /// its end, and expiring it ends it.
    #[test]
    fn a_mute_matches_what_all_its_matchers_match_while_it_holds() {
        let m = Mutes::default();
        let id = m
            .add(
                request(
                    serde_json::json!([
                        {"name": "name", "value": "web-.*", "isRegex": true},
                        {"name": "compose_project", "value": "shop"},
                        {"name": "label_tier", "value": "db", "isEqual": false},
                        {"name": "rule", "value": "crash.*", "isRegex": true},
                    ]),
                    60,
                ),
                NOW,
            )
            .expect("added");
        let shop = [("com.docker.compose.project", "shop")];
        let web = container("web-1", &shop);
        assert!(m.mutes(&web, "e1", "crash loop", NOW));
        assert!(!m.mutes(&web, "e1", "down", NOW), "another rule");
        assert!(
            !m.mutes(&container("xweb-1", &shop), "e1", "crash loop", NOW),
            "anchored"
        );
        assert!(!m.mutes(&container("web-1", &[]), "e1", "crash loop", NOW));
        let db = container("web-1", &[shop[0], ("tier", "db")]);
        assert!(!m.mutes(&db, "e1", "crash loop", NOW), "isEqual: false");
        assert!(
            !m.mutes(&web, "e1", "crash loop", NOW + 61_000_000_000),
            "ended"
        );
        m.expire(&id, NOW + 1).expect("expired");
        assert!(!m.mutes(&web, "e1", "crash loop", NOW + 2));
        let listed = m.list(NOW + 2);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].status.state, "expired");
        assert_eq!(
            m.expire("nope", NOW),
            Err(MuteError::NotFound("nope".into()))
        );
    }

    /// Mutes outlive a restart through the state file: made, expired, and read back as they
    /// were.
    #[test]
    fn mutes_are_kept_in_the_state_file() {
        let dir = std::env::temp_dir().join(format!("dee-mutes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a folder");
        let path = dir.join("state.json");
        let _ = std::fs::remove_file(&path);
        let file = Arc::new(StateFile::new(&path));
        let m = Mutes::load(Some(file.clone()));
        let web = serde_json::json!([{"name": "name", "value": "web"}]);
        let kept = m.add(request(web.clone(), 60), NOW).expect("added");
        let expired = m.add(request(web, 60), NOW).expect("added");
        m.expire(&expired, NOW + 1).expect("expired");
        let again = StateFile::new(&path);
        again.load().expect("load");
        let back = Mutes::load(Some(Arc::new(again)));
        let states: Vec<(String, &str)> = back
            .list(NOW + 2)
            .into_iter()
            .map(|l| (l.mute.id, l.status.state))
            .collect();
        assert_eq!(states, [(kept, "active"), (expired, "expired")]);
        assert!(back.mutes(&container("web", &[]), "e1", "r", NOW + 2));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A bad mute is refused with what is wrong and where.
    #[test]
    fn a_bad_mute_is_refused_naming_what() {
        let m = Mutes::default();
        let refused = |matchers: serde_json::Value, ends: i64| {
            m.add(request(matchers, ends), NOW)
                .expect_err("refused")
                .to_string()
        };
        let web = serde_json::json!([{"name": "name", "value": "web"}]);
        assert_eq!(
            refused(serde_json::json!([]), 60),
            "a mute needs at least one matcher, e.g. {\"name\": \"name\", \"value\": \"web\"}"
        );
        assert_eq!(
            refused(serde_json::json!([{"name": "image", "value": "x"}]), 60),
            "matchers[0]: unknown name \"image\"; expected one of: name, compose_project, compose_service, swarm_service, engine, rule, label_<KEY>"
        );
        assert_eq!(
            refused(
                serde_json::json!([web[0], {"name": "name", "value": "(", "isRegex": true}]),
                60
            ),
            "matchers[1] (name): invalid regex \"(\": unclosed group"
        );
        assert_eq!(
            refused(web.clone(), -5),
            format!(
                "endsAt {} is not after now; a mute must end in the future, after it starts",
                rfc3339(NOW - 5_000_000_000)
            )
        );
        let mut bad_time = request(web, 60);
        bad_time.ends_at = "tomorrow".into();
        assert_eq!(
            m.add(bad_time, NOW).expect_err("refused").to_string(),
            "endsAt \"tomorrow\" is not an RFC 3339 time, e.g. 2026-12-06T22:00:00Z"
        );
    }
}
