//! One container as the tracker knows it, and what each event does to it: a method a verb, pure
//! (no lookup, no lock, no clock), returning the [`Change`] its series are to show. The tracker
//! finds the container once per event, calls its verb, and writes the change into the series'
//! cell once (see `Series::write`).

use super::cap;
use super::unnamed_execs::{Died, UnnamedExecs};
use super::{FastMap, MAX_OPEN_EXECS_PER_CONTAINER, SlotId, digest};
use crate::docker::event::{Event, Verb};
use crate::docker::{AfterExit, ContainerSnapshot, ContainerState, Health, kill_ends_run};
use crate::metrics::containers::{Code, Info, Lifecycle, Termination};

pub(super) struct Container {
    /// Which container owns a series' gauges (see `Series::owner`): IDs are compared as
    /// numbers, not as 64-character strings.
    pub serial: u64,
    /// Its series, by place in the table: no hashing of its label values per event.
    pub slot: SlotId,
    pub state: Option<ContainerState>,
    pub health: Option<Health>,
    pub healthcheck_command: Option<String>,
    pub started_nano: Option<i64>,
    pub has_run: bool,
    /// What its lifecycle gauges show. Its start and finish times are the newest we know of,
    /// from events or the engine (a reconcile counts only what is newer); its restart count is
    /// the engine's, when last asked.
    pub life: Lifecycle,
    /// The engine time of the newest start or exit behind `life.restart_count`: inspects are
    /// answered out of order, and an older answer must not undo a newer one.
    pub count_as_of: i64,
    /// Since its last start: a kill that ends a run, an OOM kill.
    pub killed: bool,
    pub oom_killed: bool,
    /// Since when it is `restarting` (or last asked about it), in the tracker's clock.
    pub restarting_since: Option<i64>,
    /// What the engine does when its process ends, once an inspect told.
    pub after_exit: AfterExit,
    /// Open execs by their ID's digest.
    pub execs: FastMap<u64, OpenExec>,
    /// Execs and probes whose events carry no ID (Podman's).
    pub unnamed_execs: UnnamedExecs,
    /// When it died with 137, no OOM event and no kill seen: Podman sends no `oom` event, and
    /// only its inspect tells an OOM kill.
    pub oom_unknown_since: Option<i64>,
    /// A Swarm task: a new one in a slot whose last task ended on its own is a restart.
    pub swarm_task: bool,
    /// `seq` of the last event that set `state` or `health`.
    pub seq: u64,
}

/// An exec between its create or start and its die. Its ID and command are kept as digests
/// (see [`digest`]): an exec's events allocate nothing.
#[derive(Default)]
pub(super) struct OpenExec {
    command: Option<u64>,
    started_nano: Option<i64>,
}

/// What an event did that the container's series show: counts to add, and whether its gauges
/// (state, health, lifecycle) are to be shown again.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Change {
    /// Its gauges become the series' (a new container, a start).
    pub own: bool,
    /// Its state, health or lifecycle changed.
    pub gauges: bool,
    pub start: Option<Start>,
    pub exit: Option<Exit>,
    /// A kill's signal.
    pub kill: Option<Code>,
    pub oom_kill: bool,
    pub exec: Option<ExecEnd>,
    /// The engine is to be asked about it.
    pub inspect: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Start {
    /// A start after a run: a restart. Without one, its first start: a Swarm task's is a
    /// restart of its slot if the last task ended on its own (the series tell).
    pub again: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Exit {
    pub code: Code,
    /// The run ended without a kill.
    pub on_own: bool,
    /// A crash (ended on its own, not with 0): when.
    pub crashed_at: Option<i64>,
    pub run_seconds: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct ExecEnd {
    /// A healthcheck probe (else a user's exec).
    pub probe: bool,
    pub code: Code,
    pub success: bool,
    pub seconds: Option<f64>,
}

impl Change {
    pub fn gauges() -> Self {
        Self {
            gauges: true,
            ..Self::default()
        }
    }

    /// Whether it adds to any count.
    pub fn counts(&self) -> bool {
        self.start.is_some()
            || self.exit.is_some()
            || self.kill.is_some()
            || self.oom_kill
            || self.exec.is_some()
    }
}

impl Container {
    /// A container first seen now: by its create, or by any other event, or found by a list.
    pub fn new(serial: u64, slot: SlotId, swarm_task: bool, seq: u64) -> Self {
        Self {
            serial,
            slot,
            state: None,
            health: None,
            healthcheck_command: None,
            started_nano: None,
            has_run: false,
            life: Lifecycle::default(),
            count_as_of: 0,
            killed: false,
            oom_killed: false,
            restarting_since: None,
            after_exit: AfterExit::Unknown,
            execs: FastMap::default(),
            unnamed_execs: UnnamedExecs::default(),
            oom_unknown_since: None,
            swarm_task,
            seq,
        }
    }

    /// What an event of a container does to it (a destroy and a rename are the tracker's:
    /// they change which series it holds).
    pub fn apply(&mut self, ev: &Event, seq: u64) -> Change {
        match ev.verb {
            Verb::Create => self.set_state(Some(ContainerState::Created), seq, || 0),
            Verb::Start => self.started(ev.time_nano, seq),
            Verb::Die => self.died(ev, seq),
            Verb::Oom => self.oom_killed(),
            Verb::Stop => self.stopped(),
            Verb::Kill => self.killed_with(ev.attr("signal")),
            Verb::Pause => self.set_state(Some(ContainerState::Paused), seq, || 0),
            Verb::Unpause => self.set_state(Some(ContainerState::Running), seq, || 0),
            Verb::HealthStatus => self.health_status(ev, seq),
            Verb::ExecCreate => self.exec_began(ev, false),
            Verb::ExecStart => self.exec_began(ev, true),
            Verb::ExecDie => self.exec_died(ev),
            _ => Change::default(),
        }
    }

    /// `state` from now on. `now` (the tracker's clock) is read only for `restarting`, the one
    /// state that needs it.
    pub fn set_state(
        &mut self,
        state: Option<ContainerState>,
        seq: u64,
        now: impl FnOnce() -> i64,
    ) -> Change {
        if state != Some(ContainerState::Restarting) {
            self.restarting_since = None;
        } else if self.state != state {
            self.restarting_since = Some(now());
        }
        self.state = state;
        self.seq = seq;
        Change::gauges()
    }

    pub fn set_health(&mut self, health: Option<Health>, seq: u64) -> Change {
        self.health = health;
        self.seq = seq;
        Change::gauges()
    }

    fn set(&mut self, state: ContainerState, health: Option<Health>, seq: u64) {
        self.restarting_since = None;
        self.state = Some(state);
        self.health = health;
        self.seq = seq;
    }

    pub fn started(&mut self, at: i64, seq: u64) -> Change {
        let has_run = std::mem::replace(&mut self.has_run, true);
        // A start not out of `restarting` may be a person's `docker start` or `docker
        // restart`, which sets the engine's restart count back to 0.
        let by_hand = has_run
            && self.state != Some(ContainerState::Restarting)
            && self.after_exit.may_restart(None);
        self.started_nano = Some(at);
        self.life.started_nano = self.life.started_nano.max(Some(at));
        self.killed = false;
        self.oom_killed = false;
        self.unnamed_execs.run_ended();
        self.oom_unknown_since = None;
        let health = self
            .healthcheck_command
            .is_some()
            .then_some(Health::Starting)
            .or(self.health);
        self.set(ContainerState::Running, health, seq);
        Change {
            own: true,
            gauges: true,
            start: Some(Start { again: has_run }),
            inspect: by_hand,
            ..Change::default()
        }
    }

    pub fn died(&mut self, ev: &Event, seq: u64) -> Change {
        // An engine that names an OOM kill on the die rather than in an `oom` event before it.
        let oom_kill = ev.attr("oomKilled") == Some("true") && !self.oom_killed;
        if oom_kill {
            self.oom_killed_now();
        }
        let exit_attr = ev.attr("exitCode");
        self.life.finished_nano = self.life.finished_nano.max(Some(ev.time_nano));
        self.unnamed_execs.run_ended();
        // -1, as the engine writes an exit code it could not tell.
        let exit_code = exit_attr.and_then(|c| c.parse().ok()).unwrap_or(-1);
        let reason = Termination::of(exit_code, self.oom_killed, self.killed);
        self.life.last_exit = Some((exit_code, reason));
        let started = self.started_nano.take();
        let on_own = !self.killed;
        // Whether the kernel killed it, where no event said so: the engine's inspect tells
        // (see `oom_unknown_since`).
        let oom_unknown = exit_attr == Some("137") && !self.oom_killed && !self.killed;
        self.oom_unknown_since = oom_unknown.then_some(ev.time_nano);
        let run_seconds = match (started, ev.attr("execDuration")) {
            // Our own start and die times are nanosecond-precise; the engine's execDuration
            // (newer engines) is whole seconds, so it is the fallback.
            (Some(start), _) if ev.time_nano >= start => Some((ev.time_nano - start) as f64 / 1e9),
            (_, Some(d)) => d.parse::<f64>().ok().filter(|d| *d >= 0.0),
            _ => None,
        };
        self.set(ContainerState::Exited, None, seq);
        Change {
            gauges: true,
            exit: Some(Exit {
                code: Code::exit(exit_attr),
                on_own,
                crashed_at: (on_own && exit_code != 0).then_some(ev.time_nano),
                run_seconds,
            }),
            oom_kill,
            // The engine knows whether it will restart the container; ask it, unless its
            // policy (or `--rm`) says it will not.
            inspect: self.after_exit.may_restart(exit_attr) || oom_unknown,
            ..Change::default()
        }
    }

    /// The kernel's OOM killer ended its run: an `oom` event, an `oomKilled` on the die, or
    /// (for Podman) an inspect after it.
    pub fn oom_killed(&mut self) -> Change {
        self.oom_killed_now();
        Change {
            gauges: true,
            oom_kill: true,
            ..Change::default()
        }
    }

    fn oom_killed_now(&mut self) {
        self.oom_killed = true;
        self.oom_unknown_since = None;
        // The engine sends it before the `die`; should one come after, it is still this run's.
        if self.state == Some(ContainerState::Exited)
            && let Some((_, reason)) = &mut self.life.last_exit
        {
            *reason = Termination::OomKilled;
        }
    }

    /// Podman stops a container with a `stop` before its die (Docker sends its `stop` after
    /// the die, and a kill before it).
    pub fn stopped(&mut self) -> Change {
        if self.state == Some(ContainerState::Running) {
            self.killed = true;
        }
        Change::default()
    }

    pub fn killed_with(&mut self, signal: Option<&str>) -> Change {
        self.killed |= kill_ends_run(signal);
        Change {
            kill: Some(Code::signal(signal)),
            ..Change::default()
        }
    }

    pub fn health_status(&mut self, ev: &Event, seq: u64) -> Change {
        // Podman's (a bare `health_status`) comes as a probe begins; Docker's after it, and
        // its probe's exec events carry their ID.
        if ev.action_detail().is_none() {
            self.unnamed_execs.probe_began(ev.time_nano);
        }
        match ev.health_status().and_then(Health::parse) {
            Some(h) => self.set_health(Some(h), seq),
            None => Change::default(),
        }
    }

    /// An `exec_create` or `exec_start`.
    pub fn exec_began(&mut self, ev: &Event, started: bool) -> Change {
        let Some(exec_id) = ev.attr("execID") else {
            if started {
                self.unnamed_execs.exec_began(ev.time_nano);
            }
            return Change::default();
        };
        let exec_id = digest(exec_id);
        if self.execs.len() >= MAX_OPEN_EXECS_PER_CONTAINER && !self.execs.contains_key(&exec_id) {
            tracing::debug!(
                container = ev.attr("name"),
                "too many open execs; forgetting them"
            );
            self.execs.clear();
        }
        let exec = self.execs.entry(exec_id).or_default();
        if exec.command.is_none() {
            exec.command = ev.action_detail().map(digest);
        }
        if started {
            exec.started_nano = Some(ev.time_nano);
        }
        Change::default()
    }

    pub fn exec_died(&mut self, ev: &Event) -> Change {
        let exec_id = ev.attr("execID");
        let exit_code = ev.exit_code();
        let (probe, started_nano) = match exec_id {
            Some(exec_id) => {
                let exec = self.execs.remove(&digest(exec_id)).unwrap_or_default();
                let probe = exec.command.is_some()
                    && exec.command == self.healthcheck_command.as_deref().map(digest);
                (probe, exec.started_nano)
            }
            None => match self.unnamed_execs.died(exit_code, ev.time_nano) {
                Died::Probe { since } => (true, Some(since)),
                Died::Exec { since } => (false, since),
                Died::SecondWrite => return Change::default(),
            },
        };
        Change {
            exec: Some(ExecEnd {
                probe,
                code: Code::exit(exit_code),
                success: exit_code == Some("0"),
                seconds: started_nano
                    .filter(|s| ev.time_nano >= *s)
                    .map(|s| (ev.time_nano - s) as f64 / 1e9),
            }),
            // Podman's `health_status` comes as a probe starts, with the status before it:
            // what the probe made of it, only an inspect tells.
            inspect: probe && exec_id.is_none(),
            ..Change::default()
        }
    }

    /// Learns the lifecycle from what the engine says of it: its times, its restart count and
    /// policy, and an exit newer than any we saw (its reason as the inspect and the engine's
    /// held events tell it).
    pub fn learn_life(&mut self, snap: &ContainerSnapshot) -> Change {
        let life = &mut self.life;
        if snap.created_at_nano.is_some() {
            life.created_nano = snap.created_at_nano;
        }
        if let (Some(finished), Some(code)) = (snap.finished_at_nano, snap.exit_code)
            && life.finished_nano.is_none_or(|known| finished > known)
        {
            let reason = Termination::from_inspect(code, snap.oom_killed, snap.last_exit_killed);
            life.last_exit = Some((code, reason));
        }
        life.started_nano = life.started_nano.max(snap.started_at_nano);
        life.finished_nano = life.finished_nano.max(snap.finished_at_nano);
        let as_of = snap.started_at_nano.max(snap.finished_at_nano).unwrap_or(0);
        if as_of >= self.count_as_of {
            self.count_as_of = as_of;
            life.restart_count = Some(snap.restart_count);
        }
        life.info = Some(Info {
            image_id: cap(&snap.image_id).into(),
            restart_policy: snap.restart_policy,
        });
        Change::gauges()
    }
}
