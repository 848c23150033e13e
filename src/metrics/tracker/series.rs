//! Series lifetime: the label set a container holds, its series made when the first container
//! takes it and dropped a TTL after the last one lets it go; the per-container gauges kept in
//! line with what the tracker knows.

use super::{
    COMPOSE_PROJECT, COMPOSE_SERVICE, MAX_DESTROYED_REMEMBERED, SWARM_SERVICE, SWARM_STACK,
    SWARM_TASK_ID, SWARM_TASK_NAME,
};
use super::{Clock, Container, Series, SeriesKey, Tracker, cap};
use crate::docker::event::Event;
use crate::docker::{ContainerState, Health};

impl Tracker {
    pub(super) fn now_nano(&self) -> i64 {
        match self.clock {
            Clock::Events => self.newest_nano,
            Clock::Wall => crate::docker::now_nano(),
        }
    }

    /// Drops the series of label sets that no container has held for the TTL.
    pub fn sweep(&mut self) {
        let now = self.now_nano();
        let m = &self.m;
        self.series.retain(|_, s| {
            if s.live > 0 || s.expires_at.is_none_or(|t| t > now) {
                return true;
            }
            m.all.containers.remove(s.id);
            false
        });
    }

    /// How many label sets have series now (live or waiting to expire).
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    pub(super) fn key_for<'a>(
        &self,
        name: &str,
        image: &str,
        label: impl Fn(&str) -> Option<&'a str>,
    ) -> SeriesKey {
        let service = label(SWARM_SERVICE);
        // A Swarm task is its slot (`web.1`, or `web.NODE` for a global service): its task
        // ID would make a series per replacement.
        let name = service
            .and_then(|_| swarm_slot(label(SWARM_TASK_NAME)?, label(SWARM_TASK_ID)))
            .unwrap_or(name);
        let mut values = vec![
            cap(name),
            cap(image),
            cap(label(COMPOSE_PROJECT).unwrap_or_default()),
            cap(label(COMPOSE_SERVICE).unwrap_or_default()),
            cap(service.unwrap_or_default()),
            cap(label(SWARM_STACK).unwrap_or_default()),
        ];
        values.extend(
            self.m
                .all
                .label_keys
                .iter()
                .map(|k| cap(label(k).unwrap_or_default())),
        );
        SeriesKey::new(values)
    }

    pub(super) fn insert_container(&mut self, id: String, c: Container) {
        self.hold(&c.key);
        if let Some(old) = self.containers.insert(id, c) {
            self.release(&old.key);
        }
    }

    pub(super) fn remove_container(&mut self, id: &str) {
        self.set_state(id, None);
        self.set_health(id, None);
        if let Some(c) = self.containers.remove(id) {
            if let Some(s) = self.series.get_mut(&c.key)
                && s.owned_by(id)
            {
                s.owner = None;
            }
            self.release(&c.key);
            if self.destroyed.len() == MAX_DESTROYED_REMEMBERED {
                self.destroyed.pop_front();
            }
            self.destroyed.push_back((self.seq, id.to_owned()));
        }
    }

    pub(super) fn rename(&mut self, id: &str, ev: &Event) {
        let Some(new_name) = ev.attr("name") else {
            return;
        };
        let Some(c) = self.containers.get(id) else {
            return;
        };
        if c.key[0] == cap(new_name) {
            return;
        }
        let mut values = c.key.to_vec();
        values[0] = cap(new_name);
        let new_key = SeriesKey::new(values);
        let (state, health) = (c.state, c.health);
        self.set_state(id, None);
        self.set_health(id, None);
        let old_key = std::mem::replace(
            &mut self.containers.get_mut(id).expect("checked above").key,
            new_key.clone(),
        );
        self.hold(&new_key);
        self.release(&old_key);
        if let Some(s) = self.series.get_mut(&old_key)
            && s.owned_by(id)
        {
            s.owner = None;
        }
        self.own(id);
        let hc = self
            .containers
            .get(id)
            .and_then(|c| c.healthcheck_command.clone());
        self.set_healthcheck(id, hc);
        self.set_state(id, state);
        self.set_health(id, health);
        self.publish_life(id);
    }

    /// A container takes the label set: create its series if need be and stop any expiry.
    pub(super) fn hold(&mut self, key: &SeriesKey) {
        let m = &self.m;
        let s = self.series.entry(key.clone()).or_insert_with(|| {
            let (id, cell) = m.all.containers.insert(m.label.as_deref(), key);
            Series {
                live: 0,
                owner: None,
                ended_on_own: false,
                expires_at: None,
                id,
                cell,
            }
        });
        s.live += 1;
        s.expires_at = None;
    }

    pub(super) fn release(&mut self, key: &SeriesKey) {
        let ttl = i64::try_from(self.ttl.as_nanos()).unwrap_or(i64::MAX);
        let expires_at = self.now_nano().saturating_add(ttl);
        if let Some(s) = self.series.get_mut(key) {
            s.live = s.live.saturating_sub(1);
            if s.live == 0 {
                s.expires_at = Some(expires_at);
            }
        }
    }

    pub(super) fn series_of(&self, id: &str) -> Option<&Series> {
        let key = &self.containers.get(id)?.key;
        self.series.get(key)
    }

    pub(super) fn series_mut(&mut self, id: &str) -> Option<&mut Series> {
        let key = &self.containers.get(id)?.key;
        self.series.get_mut(key)
    }

    /// The container's state, health and lifecycle are from now on what its series show.
    pub(super) fn own(&mut self, id: &str) {
        let Some(c) = self.containers.get(id) else {
            return;
        };
        let (state, health) = (c.state, c.health);
        let Some(s) = self.series.get_mut(&c.key) else {
            return;
        };
        if s.owned_by(id) {
            return;
        }
        s.owner = Some(id.to_owned());
        let mut d = s.cell.lock();
        d.state = state;
        if health.is_some() || d.health.is_some() {
            d.health.get_or_insert_default().status = health;
        }
        d.life.clone_from(&c.life);
    }

    pub(super) fn set_healthcheck(&mut self, id: &str, command: Option<String>) {
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        c.healthcheck_command = command;
        if c.healthcheck_command.is_some()
            && let Some(s) = self.series.get(&c.key)
        {
            s.cell.lock().health.get_or_insert_default();
        }
    }

    pub(super) fn set_state(&mut self, id: &str, state: Option<ContainerState>) {
        let seq = self.seq;
        // The clock is read only for the state that needs it.
        let restarting = state == Some(ContainerState::Restarting);
        let now = if restarting { self.now_nano() } else { 0 };
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        if !restarting {
            c.restarting_since = None;
        } else if c.state != state {
            c.restarting_since = Some(now);
        }
        c.state = state;
        c.seq = seq;
        if let Some(s) = self.series.get(&c.key)
            && s.owned_by(id)
        {
            s.cell.lock().state = state;
        }
    }

    pub(super) fn set_health(&mut self, id: &str, health: Option<Health>) {
        let seq = self.seq;
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        c.health = health;
        c.seq = seq;
        let Some(s) = self.series.get(&c.key).filter(|s| s.owned_by(id)) else {
            return;
        };
        let mut d = s.cell.lock();
        if health.is_none() && d.health.is_none() {
            return;
        }
        d.health.get_or_insert_default().status = health;
    }
}

/// A Swarm task's slot: its task name (`SERVICE.SLOT.TASKID`, or `SERVICE.NODEID.TASKID` for
/// a global service) without the task ID.
fn swarm_slot<'a>(task_name: &'a str, task_id: Option<&str>) -> Option<&'a str> {
    let slot = match task_id.and_then(|id| task_name.strip_suffix(id)) {
        Some(slot) => slot.strip_suffix('.')?,
        None => task_name.rsplit_once('.')?.0,
    };
    Some(slot).filter(|s| !s.is_empty())
}
