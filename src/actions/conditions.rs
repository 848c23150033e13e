//! What the conditions read: each container's recent life as its events (and the engine's
//! answers) tell it, and whether a condition holds for it now or has ended. Pure state, no
//! clock of its own: the reactor says what time it is, and fires and resolves on the edges.
//!
//! A container's exits are read as the tracker reads them: a run ends on its own unless a kill
//! that ends runs (or Podman's `stop`) came first; a crash is an exit on its own with a
//! non-zero code. A restart by its policy is a start after an exit on its own, of a container
//! whose policy may restart it: `docker restart` and `docker stop` kill first, so a person's
//! restarts are not counted.
//!
//! A Swarm task is kept under its slot (`web.1`), as its series are: Swarm replaces a task
//! that ended with a new container, so a slot's tasks are one life, and a new task after an
//! exit on its own is a restart.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::docker::event::{Event, Verb};
use crate::docker::{
    AfterExit, ContainerSnapshot, ContainerState, Health, kill_ends_run, swarm_slot,
};
use crate::metrics::containers::Termination;
use crate::rules::Condition;
use crate::rules::condition::{LABEL_PREFIX, MAX_COUNT};
// The longest window or `for` a condition may have, as any duration in the rules file.
use crate::rules::config::MAX_DURATION;
use crate::rules::template::Facts;

/// Containers watched at most; past this, a new one is not watched (and that is logged).
pub(super) const MAX_WATCHED: usize = 50_000;

const COMPOSE_SERVICE: &str = "com.docker.compose.service";
const SWARM_SERVICE: &str = "com.docker.swarm.service.name";
const SWARM_TASK_NAME: &str = "com.docker.swarm.task.name";
const SWARM_TASK_ID: &str = "com.docker.swarm.task.id";

/// The key a container's conditions are kept under (and their firings are of): its Swarm
/// slot for a Swarm task, else its ID.
pub(super) fn key_of<'a>(id: &'a str, label: impl Fn(&str) -> Option<&'a str>) -> &'a str {
    label(SWARM_SERVICE)
        .and(label(SWARM_TASK_NAME))
        .and_then(|task| swarm_slot(task, label(SWARM_TASK_ID)))
        .unwrap_or(id)
}

/// One container's recent life.
pub(super) struct Watched {
    /// Its newest create, start or rename (or its listing): its ID (a Swarm slot's newest
    /// task's), name and labels, for matching and for the firing.
    pub last: Arc<Event>,
    /// When the container of `last` was created (a Swarm slot's newest task wins a list).
    created_nano: i64,
    /// A Swarm slot's new task was created or started since its last start.
    new_task: bool,
    /// `last` has a label of ours (`docker-events-exporter.…`): a mute or a threshold.
    pub labelled: bool,
    running: bool,
    has_run: bool,
    /// Since its last start: a kill that ends runs, an OOM kill.
    killed: bool,
    oom_killed: bool,
    /// How its last run ended, and whether on its own.
    last_exit: Option<(i64, Termination)>,
    last_exit_on_own: bool,
    /// A person stopped it (`docker stop`, `docker kill`): it is not down, it is off.
    stopped_by_person: bool,
    after_exit: AfterExit,
    /// The times of its latest crashes and restarts by policy, newest last.
    crashes: VecDeque<i64>,
    restarts: VecDeque<i64>,
    unhealthy_since: Option<i64>,
    down_since: Option<i64>,
    /// A label of its that does not override a threshold was logged.
    pub label_problem_logged: bool,
}

impl Watched {
    fn new(last: Arc<Event>) -> Self {
        Self {
            labelled: labelled(&last),
            last,
            created_nano: 0,
            new_task: false,
            running: false,
            has_run: false,
            killed: false,
            oom_killed: false,
            last_exit: None,
            last_exit_on_own: false,
            stopped_by_person: false,
            after_exit: AfterExit::Unknown,
            crashes: VecDeque::new(),
            restarts: VecDeque::new(),
            unhealthy_since: None,
            down_since: None,
            label_problem_logged: false,
        }
    }

    /// A container found by a list (at start-up, or after a gap), `now_nano` being when.
    pub fn from_snapshot(snap: &ContainerSnapshot, now_nano: i64) -> Self {
        let attrs = [("name", snap.name.as_str()), ("image", snap.image.as_str())]
            .into_iter()
            .chain(snap.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let last = Event::new("container", "list", &snap.id, attrs, "local", now_nano);
        let mut w = Self::new(Arc::new(last));
        w.created_nano = snap.created_at_nano.unwrap_or(0);
        w.learn(snap, now_nano);
        w
    }

    /// What an inspect said of it, asked after one of its events: its restart policy, and
    /// (Podman's health statuses tell the status before the probe) its health while it runs.
    /// Not whether it runs: the events since may have changed that, and they say it.
    pub fn learn_policy(&mut self, snap: &ContainerSnapshot, now_nano: i64) {
        self.after_exit = snap.after_exit;
        if !self.running {
            return;
        }
        match snap.health {
            Some(Health::Unhealthy) => {
                self.unhealthy_since.get_or_insert(now_nano);
            }
            Some(_) => self.unhealthy_since = None,
            None => {}
        }
    }

    /// What a list of the engine's containers said of it (at start-up, after a gap).
    pub fn learn(&mut self, snap: &ContainerSnapshot, now_nano: i64) {
        self.after_exit = snap.after_exit;
        let running = matches!(
            snap.state,
            Some(ContainerState::Running | ContainerState::Paused)
        );
        self.running = running;
        if running {
            self.down_since = None;
        } else if self.down_since.is_none() {
            self.down_since = Some(snap.finished_at_nano.unwrap_or(now_nano));
        }
        self.has_run |= snap.started_at_nano.is_some();
        if !running && let (Some(code), None) = (snap.exit_code, self.last_exit) {
            let reason = Termination::from_inspect(code, snap.oom_killed, snap.last_exit_killed);
            self.last_exit = Some((code, reason));
            self.last_exit_on_own = reason != Termination::Killed;
            // An exit 0 whose events the engine no longer holds was most likely a stop (an
            // app that ends cleanly on SIGTERM): not down.
            let unknown_clean = code == 0 && snap.last_exit_killed.is_none();
            self.stopped_by_person = reason == Termination::Killed || unknown_clean;
        }
        match (running, snap.health) {
            (true, Some(Health::Unhealthy)) => {
                self.unhealthy_since.get_or_insert(now_nano);
            }
            _ => self.unhealthy_since = None,
        }
    }

    /// What one of its events tells; whether it may have begun or ended a condition (a
    /// start, an exit, a stop, a health status: not an exec, a kill before its exit or an
    /// OOM kill before its exit).
    pub fn apply(&mut self, ev: &Arc<Event>) -> bool {
        let t = ev.time_nano;
        if matches!(ev.verb, Verb::Create | Verb::Start) && ev.actor_id() != self.last.actor_id() {
            self.new_task = true;
            self.created_nano = t;
        }
        match ev.verb {
            Verb::Start => {
                let code = self.last_exit.map(|(c, _)| c.to_string());
                let policy_restart = self.has_run
                    && self.last_exit_on_own
                    && (std::mem::take(&mut self.new_task)
                        || self.after_exit.may_restart(code.as_deref()));
                if policy_restart {
                    push_capped(&mut self.restarts, t);
                }
                self.running = true;
                self.has_run = true;
                self.killed = false;
                self.oom_killed = false;
                self.stopped_by_person = false;
                self.down_since = None;
                self.unhealthy_since = None;
            }
            Verb::Die => {
                self.oom_killed |= ev.attr("oomKilled") == Some("true");
                let code = ev
                    .attr("exitCode")
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(-1);
                let reason = Termination::of(code, self.oom_killed, self.killed);
                let on_own = !self.killed;
                if on_own && code != 0 {
                    push_capped(&mut self.crashes, t);
                }
                self.last_exit = Some((code, reason));
                self.last_exit_on_own = on_own;
                self.stopped_by_person = !on_own;
                self.running = false;
                self.down_since = Some(t);
                self.unhealthy_since = None;
            }
            Verb::Oom => self.oom_killed = true,
            Verb::Kill => self.killed |= kill_ends_run(ev.attr("signal")),
            // Podman stops a running container with a `stop` before its die; Docker's comes
            // after the die of a `docker stop`.
            Verb::Stop if self.running => self.killed = true,
            Verb::Stop => self.stopped_by_person = true,
            Verb::HealthStatus => match ev.health_status().and_then(Health::parse) {
                Some(Health::Unhealthy) if self.running => {
                    self.unhealthy_since.get_or_insert(t);
                }
                Some(_) => self.unhealthy_since = None,
                None => {}
            },
            _ => {}
        }
        // The events that say what the container is (a create, a start, a rename) carry its
        // name and labels; an engine need not send them on the others.
        if matches!(ev.verb, Verb::Create | Verb::Start | Verb::Rename) {
            self.last = ev.clone();
            self.labelled = labelled(ev);
        }
        matches!(
            ev.verb,
            Verb::Start | Verb::Die | Verb::Stop | Verb::HealthStatus
        )
    }

    /// Whether it should be running: its policy restarts it (`on-failure` only after a
    /// failure), or it is a compose service's. (A Swarm slot is Swarm's to keep running: it
    /// is not judged.)
    fn should_run(&self) -> bool {
        if self.last.attr(SWARM_SERVICE).is_some() {
            return false;
        }
        let exit_code = self.last_exit.map(|(c, _)| c);
        match self.after_exit {
            AfterExit::Restarts => true,
            AfterExit::RestartsOnFailure => exit_code != Some(0),
            AfterExit::Stays | AfterExit::Unknown => self.last.attr(COMPOSE_SERVICE).is_some(),
            AfterExit::Removed => false,
        }
    }

    /// What `c` finds if it holds now: `None` if it does not.
    pub fn holds(&self, c: &Condition, now_nano: i64) -> Option<Facts> {
        let lasted = |since: Option<i64>, d: std::time::Duration| {
            since.filter(|s| now_nano.saturating_sub(*s) >= nanos(d))
        };
        let (since, exits) = match *c {
            Condition::CrashLoop { exits, within } => {
                let n = in_window(&self.crashes, now_nano, within);
                (self.crashes.back().copied().filter(|_| n >= exits), Some(n))
            }
            Condition::RestartLoop { restarts, within } => {
                let n = in_window(&self.restarts, now_nano, within);
                (
                    self.restarts.back().copied().filter(|_| n >= restarts),
                    Some(n),
                )
            }
            Condition::Unhealthy { for_ } => (lasted(self.unhealthy_since, for_), None),
            Condition::Down { for_ } if self.is_down() => (lasted(self.down_since, for_), None),
            Condition::Down { .. } | Condition::EngineDown { .. } | Condition::EventsMissed => {
                (None, None)
            }
        };
        Some(Facts {
            condition: c.name().to_owned(),
            since_nano: since?,
            exits,
            last_exit_code: self.last_exit.map(|(code, _)| code),
            reason: self.last_exit.map(|(_, r)| r.as_str().to_owned()),
        })
    }

    /// Whether a firing of `c` has ended: what it is about is over (a loop has fewer exits in
    /// its window; health is no longer `unhealthy`; it runs, or a person stopped it). A loop
    /// firing taken back from the state file, whose exits before the restart are not known,
    /// ends only once a whole window has been watched since `watched_from`.
    pub fn ended(&self, c: &Condition, now_nano: i64, watched_from: Option<i64>) -> bool {
        let watched =
            |within| watched_from.is_none_or(|t| now_nano.saturating_sub(t) >= nanos(within));
        match *c {
            Condition::CrashLoop { exits, within } => {
                in_window(&self.crashes, now_nano, within) < exits && watched(within)
            }
            Condition::RestartLoop { restarts, within } => {
                in_window(&self.restarts, now_nano, within) < restarts && watched(within)
            }
            Condition::Unhealthy { .. } => self.unhealthy_since.is_none(),
            Condition::Down { .. } => !self.is_down(),
            Condition::EngineDown { .. } | Condition::EventsMissed => true,
        }
    }

    fn is_down(&self) -> bool {
        !self.running && !self.stopped_by_person && self.has_run && self.should_run()
    }

    /// Whether time alone may make a condition of its begin or end: it is unhealthy or down,
    /// or has crashed or restarted within the longest window a condition may have. The others
    /// change only with their events, and a tick passes them by.
    pub fn pending(&self, now_nano: i64) -> bool {
        let recent = |times: &VecDeque<i64>| {
            times
                .back()
                .is_some_and(|t| now_nano.saturating_sub(*t) <= nanos(MAX_DURATION))
        };
        self.unhealthy_since.is_some()
            || self.is_down()
            || recent(&self.crashes)
            || recent(&self.restarts)
    }
}

/// The containers the conditions read, by ID.
#[derive(Default)]
pub(super) struct Containers {
    pub by_id: HashMap<String, Watched, foldhash::fast::RandomState>,
    full_logged: bool,
}

impl Containers {
    /// Applies a container's event; its key if it may have begun or ended a condition (not
    /// when there are too many containers to watch, or it is an older task of a Swarm slot
    /// than the slot's newest).
    pub fn apply(&mut self, ev: &Arc<Event>) -> Option<String> {
        let id = ev.actor_id();
        let key = key_of(id, |k| ev.attr(k));
        match self.by_id.get_mut(key) {
            Some(w) => {
                let newer = matches!(ev.verb, Verb::Create | Verb::Start);
                if w.last.actor_id() != id && !newer {
                    return None;
                }
                if !w.apply(ev) {
                    return None;
                }
            }
            None => {
                if self.by_id.len() >= MAX_WATCHED {
                    if !std::mem::replace(&mut self.full_logged, true) {
                        tracing::warn!(
                            watched = MAX_WATCHED,
                            "too many containers for the conditions to watch; new ones are not watched"
                        );
                    }
                    return None;
                }
                let mut w = Watched::new(ev.clone());
                w.apply(ev);
                self.by_id.insert(key.to_owned(), w);
            }
        }
        Some(key.to_owned())
    }

    /// A container's removal: its key, if it was the one its key watches (a Swarm slot's
    /// older tasks go without ending anything); it is watched no more.
    pub fn remove(&mut self, ev: &Event) -> Option<String> {
        let key = key_of(ev.actor_id(), |k| ev.attr(k));
        let w = self.by_id.get(key)?;
        if w.last.actor_id() != ev.actor_id() {
            return None;
        }
        self.by_id.remove(key);
        Some(key.to_owned())
    }

    /// What a list of the engine's containers said of one. Of a Swarm slot's tasks, the
    /// newest is the slot's.
    pub fn learn(&mut self, snap: &ContainerSnapshot, now_nano: i64) {
        let key = key_of(&snap.id, |k| snap.labels.get(k).map(String::as_str));
        let room = self.by_id.len() < MAX_WATCHED;
        match self.by_id.get_mut(key) {
            Some(w) if w.last.actor_id() == snap.id => w.learn(snap, now_nano),
            Some(w) if snap.created_at_nano.unwrap_or(0) > w.created_nano => {
                // A newer task of the slot, found by a list: the slot's life goes on in it.
                let mut newer = Watched::from_snapshot(snap, now_nano);
                newer.crashes = std::mem::take(&mut w.crashes);
                newer.restarts = std::mem::take(&mut w.restarts);
                *w = newer;
            }
            Some(_) => {}
            None if room => {
                self.by_id
                    .insert(key.to_owned(), Watched::from_snapshot(snap, now_nano));
            }
            None => {}
        }
    }

    /// What an inspect asked after one of its events said of a container (see
    /// [`Watched::learn_policy`]), if it is the one its key watches.
    pub fn learn_policy(&mut self, snap: &ContainerSnapshot, now_nano: i64) {
        let key = key_of(&snap.id, |k| snap.labels.get(k).map(String::as_str));
        if let Some(w) = self.by_id.get_mut(key)
            && w.last.actor_id() == snap.id
        {
            w.learn_policy(snap, now_nano);
        }
    }

    /// The keys of `present`'s containers, as [`Containers::apply`] keeps them.
    pub fn keys_of(present: &[ContainerSnapshot]) -> std::collections::HashSet<&str> {
        present
            .iter()
            .map(|c| key_of(&c.id, |k| c.labels.get(k).map(String::as_str)))
            .collect()
    }
}

/// Whether `ev` has a label of ours (`docker-events-exporter.…`).
fn labelled(ev: &Event) -> bool {
    ev.attributes().any(|(k, _)| k.starts_with(LABEL_PREFIX))
}

fn push_capped(times: &mut VecDeque<i64>, t: i64) {
    if times.len() >= MAX_COUNT as usize {
        times.pop_front();
    }
    times.push_back(t);
}

/// How many of `times` fall in the `within` before `now_nano`.
fn in_window(times: &VecDeque<i64>, now_nano: i64, within: std::time::Duration) -> u32 {
    let from = now_nano.saturating_sub(nanos(within));
    times.iter().rev().take_while(|t| **t > from).count() as u32
}

/// `d` in nanoseconds (saturating).
pub(super) fn nanos(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}
