//! The series table: a label set's series, made when the first container takes it and dropped a
//! TTL after the last one lets it go. Containers hold their series by place (a [`SlotId`]), so an
//! event finds them without hashing label values; the table keys them by label values only when
//! a container takes a label set.

use std::sync::Arc;

use super::container::{Change, Container};
use super::{
    COMPOSE_PROJECT, COMPOSE_SERVICE, FastMap, SWARM_SERVICE, SWARM_STACK, SWARM_TASK_ID,
    SWARM_TASK_NAME, cap, digest,
};
use crate::metrics::EngineMetrics;
use crate::metrics::containers::{Cell, CellData, bump};
use crate::metrics::families::{
    CONTAINER_EXEC_DURATION, CONTAINER_HEALTHCHECK_DURATION, CONTAINER_RUN_DURATION,
};

/// A series' label values, with their hash computed once.
#[derive(Clone)]
pub(super) struct SeriesKey {
    hash: u64,
    values: Arc<[String]>,
}

impl SeriesKey {
    pub fn new(values: Vec<String>) -> Self {
        Self {
            hash: digest(&values),
            values: values.into(),
        }
    }

    /// The label values for a container of this name, image and labels (`label` gives a
    /// label's value), in the families' label order; `label_keys` are the allow-listed ones.
    pub fn of<'a>(
        name: &str,
        image: &str,
        label_keys: &[String],
        label: impl Fn(&str) -> Option<&'a str>,
    ) -> Self {
        let service = label(SWARM_SERVICE);
        // A Swarm task is its slot (`web.1`, or `web.NODE` for a global service): its task
        // ID would make a series per replacement.
        let name = service
            .and_then(|_| crate::docker::swarm_slot(label(SWARM_TASK_NAME)?, label(SWARM_TASK_ID)))
            .unwrap_or(name);
        let mut values = vec![
            cap(name),
            cap(image),
            cap(label(COMPOSE_PROJECT).unwrap_or_default()),
            cap(label(COMPOSE_SERVICE).unwrap_or_default()),
            cap(service.unwrap_or_default()),
            cap(label(SWARM_STACK).unwrap_or_default()),
        ];
        values.extend(label_keys.iter().map(|k| cap(label(k).unwrap_or_default())));
        Self::new(values)
    }

    /// The same label values under another container name.
    pub fn renamed(&self, name: &str) -> Self {
        let mut values = self.values.to_vec();
        values[0] = cap(name);
        Self::new(values)
    }

    pub fn name(&self) -> &str {
        &self.values[0]
    }
}

impl PartialEq for SeriesKey {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash
            && (Arc::ptr_eq(&self.values, &other.values) || self.values == other.values)
    }
}

impl Eq for SeriesKey {}

impl std::hash::Hash for SeriesKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// A label set's place in the table; valid while a container holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SlotId(u32);

impl SlotId {
    /// The first slot (tests).
    #[cfg(test)]
    pub fn first() -> Self {
        Self(0)
    }
}

/// One label set's place in the container series. Counters that alerts use with `increase()`
/// exist from the start at 0, so that their first increment is seen; the rest appear on first
/// use (see [`CellData`]).
pub(super) struct Series {
    pub key: SeriesKey,
    /// Containers currently holding this label set: 0 or 1 but for Swarm, whose slot keeps
    /// its last few tasks' exited containers beside the running one.
    live: u32,
    /// The container (its serial) whose state, health and lifecycle the gauges show: the
    /// newest to be created or started under this label set.
    pub owner: Option<u64>,
    /// Whether the owner's last run ended on its own (no kill): a Swarm task that replaces it
    /// is then a restart of the slot, where one after a kill (a service update, a scale-down)
    /// is not.
    ended_on_own: bool,
    /// When the series go, in the tracker's clock (nanoseconds since the epoch).
    expires_at: Option<i64>,
    id: u64,
    pub cell: Arc<Cell>,
}

impl Series {
    /// Whether the container's gauges are what these series show.
    pub fn owned_by(&self, c: &Container) -> bool {
        self.owner == Some(c.serial)
    }

    /// Writes what an event did to `c` into the cell: one lock, none for an empty change.
    pub fn write(&mut self, c: &Container, change: &Change) {
        if change.own {
            self.owner = Some(c.serial);
        }
        let owner = self.owned_by(c);
        if !change.counts() && !(owner && (change.gauges || change.own)) {
            return;
        }
        let mut d = self.cell.lock();
        if let Some(start) = change.start {
            // A Swarm task's first start replaces the slot's last task: a restart if that one
            // ended on its own.
            let replaces = !start.again && c.swarm_task && self.ended_on_own;
            self.ended_on_own = false;
            d.starts += 1;
            if start.again || replaces {
                d.restarts += 1;
            }
        }
        if change.oom_kill {
            d.oom_kills += 1;
        }
        if let Some(exit) = change.exit {
            if owner {
                self.ended_on_own = exit.on_own;
            }
            bump(&mut d.exits, exit.code);
            if let Some(at) = exit.crashed_at {
                d.crash_exits.push(at);
            }
            if let Some(secs) = exit.run_seconds {
                d.run_duration
                    .get_or_insert_default()
                    .observe(CONTAINER_RUN_DURATION.buckets, secs);
            }
        }
        if let Some(signal) = change.kill {
            bump(&mut d.kills, signal);
        }
        if let Some(exec) = change.exec {
            if exec.probe {
                let h = d.health.get_or_insert_default();
                if exec.success {
                    h.success += 1;
                } else {
                    h.failure += 1;
                }
                if let Some(secs) = exec.seconds {
                    h.duration
                        .observe(CONTAINER_HEALTHCHECK_DURATION.buckets, secs);
                }
            } else {
                bump(&mut d.execs, exec.code);
                if let Some(secs) = exec.seconds {
                    d.exec_duration
                        .get_or_insert_default()
                        .observe(CONTAINER_EXEC_DURATION.buckets, secs);
                }
            }
        }
        if owner && (change.gauges || change.own) {
            show(&mut d, c);
        }
    }
}

/// The container's state, health and lifecycle as the series' gauges.
fn show(d: &mut CellData, c: &Container) {
    d.state = c.state;
    // Health series only for a container that has (or had) a health.
    if c.health.is_some() || d.health.is_some() {
        d.health.get_or_insert_default().status = c.health;
    }
    d.life.clone_from(&c.life);
}

/// Every label set with series: held by containers, or waiting out its TTL.
#[derive(Default)]
pub(super) struct SeriesTable {
    by_key: FastMap<SeriesKey, SlotId>,
    slots: Vec<Option<Series>>,
    /// Slots free for the next label set.
    free: Vec<SlotId>,
}

impl SeriesTable {
    /// A container takes the label set: its series made if need be, any expiry stopped.
    pub fn hold(&mut self, m: &EngineMetrics, key: &SeriesKey) -> SlotId {
        if let Some(&slot) = self.by_key.get(key) {
            let s = self.get_mut(slot);
            s.live += 1;
            s.expires_at = None;
            return slot;
        }
        let (id, cell) = m
            .all
            .containers
            .insert(m.label.as_deref(), key.values.as_ref());
        let series = Series {
            key: key.clone(),
            live: 1,
            owner: None,
            ended_on_own: false,
            expires_at: None,
            id,
            cell,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot.0 as usize] = Some(series);
                slot
            }
            None => {
                // More label sets than a u32 counts cannot be held in memory anyway.
                let slot = SlotId(u32::try_from(self.slots.len()).unwrap_or(u32::MAX));
                self.slots.push(Some(series));
                slot
            }
        };
        self.by_key.insert(key.clone(), slot);
        slot
    }

    /// A container lets the label set go; the last one starts its TTL (ending `at`).
    pub fn release(&mut self, slot: SlotId, c: &Container, expires_at: i64) {
        let s = self.get_mut(slot);
        s.live = s.live.saturating_sub(1);
        if s.live == 0 {
            s.expires_at = Some(expires_at);
        }
        if s.owned_by(c) {
            s.owner = None;
        }
    }

    pub fn get(&self, slot: SlotId) -> &Series {
        self.slots[slot.0 as usize]
            .as_ref()
            .expect("a slot held by a container is filled")
    }

    pub fn get_mut(&mut self, slot: SlotId) -> &mut Series {
        self.slots[slot.0 as usize]
            .as_mut()
            .expect("a slot held by a container is filled")
    }

    /// Drops the series of label sets no container has held for the TTL.
    pub fn sweep(&mut self, m: &EngineMetrics, now: i64) {
        for (i, place) in self.slots.iter_mut().enumerate() {
            let Some(s) = place else {
                continue;
            };
            if s.live > 0 || s.expires_at.is_none_or(|t| t > now) {
                continue;
            }
            m.all.containers.remove(s.id);
            self.by_key.remove(&s.key);
            self.free.push(SlotId(u32::try_from(i).unwrap_or(u32::MAX)));
            *place = None;
        }
    }

    /// How many label sets have series.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }
}
