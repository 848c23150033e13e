//! What the tracker learns from the engine rather than from events: the containers found at
//! start-up, inspect answers, and the reconcile after a gap in the events.

use std::collections::HashSet;

use super::id::IdRef;
use super::series::SeriesKey;
use super::{SWARM_SERVICE, Tracker};
use crate::docker::stream::InspectRequest;
use crate::docker::{ContainerSnapshot, ContainerState};
use crate::metrics::containers::{Code, bump};

impl Tracker {
    /// Seeds a container found at start-up. `since_nano` is where the subscription starts: a
    /// start at or after it will be replayed as an event, so it does not count as "has run".
    pub fn seed(&mut self, snap: &ContainerSnapshot, since_nano: i64) {
        let key = SeriesKey::of(&snap.name, &snap.image, &self.m.all.label_keys, |k| {
            snap.labels.get(k).map(String::as_str)
        });
        let before = |t: Option<i64>| t.is_some_and(|t| t < since_nano);
        let running = matches!(
            snap.state,
            Some(ContainerState::Running | ContainerState::Paused)
        );
        let mut c = self.new_container(&key, snap.labels.contains_key(SWARM_SERVICE), 0);
        c.started_nano = if running { snap.started_at_nano } else { None };
        c.has_run = before(snap.started_at_nano) || before(snap.finished_at_nano);
        c.after_exit = snap.after_exit;
        let unowned = self.series.get(c.slot).owner.is_none();
        self.insert_container(&snap.id, c);
        // Of a Swarm slot's containers, the running task's are the gauges.
        let current = matches!(
            snap.state,
            Some(ContainerState::Running | ContainerState::Paused | ContainerState::Restarting)
        );
        if current || unowned {
            self.own(&snap.id);
        }
        self.learn_life(&snap.id, snap);
        self.set_healthcheck(&snap.id, snap.healthcheck_command.clone());
        self.set_state(&snap.id, snap.state);
        let health = if running { snap.health } else { None };
        self.set_health(&snap.id, health);
    }

    /// Applies an inspect that was asked for at `req.seq`: the healthcheck command always; state
    /// and health only if no event changed them since the request.
    pub fn apply_inspect(&mut self, req: &InspectRequest, snap: &ContainerSnapshot) {
        let Some(c) = self.containers.get_mut(&IdRef(&req.id)) else {
            return;
        };
        let fresh = c.seq <= req.seq;
        let running = c.state == Some(ContainerState::Running);
        c.after_exit = snap.after_exit;
        // The OOM kill no event told of, if the engine says it was one: of the run that ended
        // at that die, not a later one.
        let oom = c
            .oom_unknown_since
            .is_some_and(|die| snap.oom_killed && snap.finished_at_nano.is_some_and(|f| f <= die));

        let missing_health = c.health.is_none();
        if oom {
            self.oom_killed(&req.id);
        }
        self.learn_life(&req.id, snap);
        self.set_healthcheck(&req.id, snap.healthcheck_command.clone());
        // A transient state (removing, stopping) leaves the last known one in place.
        if fresh && snap.state.is_some() {
            self.set_state(&req.id, snap.state);
        }
        // Learning only now that a running container has a healthcheck: show what the engine says.
        if fresh || (running && missing_health) {
            let running = matches!(
                snap.state,
                Some(ContainerState::Running | ContainerState::Paused)
            );
            self.set_health(&req.id, if running { snap.health } else { None });
        }
    }

    /// Brings the tracker in line with the engine after a gap in the events: `snaps` is every
    /// container, listed at engine time `snapshot_nano`; `position_nano` is where our events
    /// stopped. Corrects state and health, forgets removed containers, learns new ones, and
    /// counts the transitions the events missed where the engine still tells them: the last
    /// start and last exit (with its exit code and OOM kill) of each container, and its restart
    /// policy's restarts. Transitions after `snapshot_nano` are left to their events, which the
    /// subscription delivers. Returns how many changes it made; logs each one.
    pub fn reconcile(
        &mut self,
        snaps: &[ContainerSnapshot],
        position_nano: i64,
        snapshot_nano: i64,
        seq: u64,
    ) -> u64 {
        let mut changes = 0;
        let present: HashSet<&str> = snaps.iter().map(|s| s.id.as_str()).collect();
        // Not in the snapshot: removed in the gap, unless an event since the request made it
        // (created after the snapshot was taken).
        let gone: Vec<String> = self
            .containers
            .iter()
            .filter(|(id, c)| !present.contains(id.as_str()) && c.seq <= seq)
            .map(|(id, _)| id.as_str().to_owned())
            .collect();
        let destroyed_since: HashSet<&str> = self
            .destroyed
            .iter()
            .filter(|(at, _)| *at > seq)
            .map(|(_, id)| id.as_str())
            .collect();
        let snaps: Vec<&ContainerSnapshot> = snaps
            .iter()
            .filter(|s| !destroyed_since.contains(s.id.as_str()))
            .collect();
        for id in gone {
            let name = self.name_of(&id);
            tracing::info!(container = %name, "reconciled: removed while the events were lost");
            self.remove_container(&id);
            changes += 1;
        }
        let in_gap = |t: Option<i64>| t.filter(|t| *t > position_nano && *t <= snapshot_nano);
        for snap in snaps {
            if !self.containers.contains_key(&IdRef(&snap.id)) {
                // Created while the events were lost: known from now on. Its missed start and
                // exit are counted below like anyone's.
                self.seed(snap, position_nano);
                if let Some(c) = self.containers.get_mut(&IdRef(&snap.id)) {
                    c.life.started_nano = None;
                    c.life.finished_nano = None;
                    c.life.restart_count = Some(0);
                }
                tracing::info!(container = %snap.name, "reconciled: created while the events were lost");
                changes += 1;
            }
            let Some(c) = self.containers.get_mut(&IdRef(&snap.id)) else {
                continue;
            };
            let missed_start = in_gap(snap.started_at_nano)
                .filter(|t| c.life.started_nano.is_none_or(|known| *t > known));
            let missed_exit = in_gap(snap.finished_at_nano)
                .filter(|t| c.life.finished_nano.is_none_or(|known| *t > known));
            // How many starts: the engine counts its restart policy's restarts; a start that is
            // not one of them (`docker start`) shows only as a newer StartedAt.
            let policy_restarts = u64::try_from(
                snap.restart_count - c.life.restart_count.unwrap_or(snap.restart_count),
            )
            .unwrap_or(0);
            c.after_exit = snap.after_exit;
            let first_run = u64::from(!c.has_run);
            let starts = (policy_restarts + first_run).max(1);
            if let Some(t) = missed_start {
                c.has_run = true;
                c.started_nano = Some(t);
            }
            let s = self.series.get(c.slot);
            let name = s.key.name().to_owned();
            {
                let mut d = s.cell.lock();
                if missed_start.is_some() {
                    let restarts = starts - first_run;
                    d.starts += starts;
                    d.restarts += restarts;
                    tracing::info!(container = %name, restarts, "reconciled: started while the events were lost");
                    changes += 1;
                }
                if missed_exit.is_some() {
                    bump(&mut d.exits, Code::exit_number(snap.exit_code));
                    if snap.oom_killed {
                        d.oom_kills += 1;
                    }
                    tracing::info!(container = %name, exit_code = ?snap.exit_code, oom_killed = snap.oom_killed, "reconciled: exited while the events were lost");
                    changes += 1;
                }
            }
            // Gauges: what the engine says, unless an event since the request said otherwise.
            if c.seq <= seq {
                let running = matches!(
                    snap.state,
                    Some(ContainerState::Running | ContainerState::Paused)
                );
                let health = if running { snap.health } else { None };
                if snap.state.is_some() && c.state != snap.state {
                    tracing::info!(container = %name, state = ?snap.state, was = ?c.state, "reconciled: state");
                    changes += 1;
                    self.set_state(&snap.id, snap.state);
                }
                let c = &self.containers[&IdRef(&snap.id)];
                if c.health != health {
                    tracing::info!(container = %name, health = ?health, was = ?c.health, "reconciled: health");
                    changes += 1;
                    self.set_health(&snap.id, health);
                }
            }
            // The exit the gap hid is the last one: its code and reason, and the new times.
            self.learn_life(&snap.id, snap);
            self.set_healthcheck(&snap.id, snap.healthcheck_command.clone());
        }
        changes
    }

    /// The name in the container's series, for logs.
    fn name_of(&self, id: &str) -> String {
        self.containers
            .get(&IdRef(id))
            .map(|c| self.series.get(c.slot).key.name().to_owned())
            .unwrap_or_default()
    }

    /// The tracker's count of container events, for [`Self::reconcile`]'s `seq`.
    pub fn seq(&self) -> u64 {
        self.seq
    }
}
