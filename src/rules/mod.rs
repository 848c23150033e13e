//! The rules layer: raw YAML -> compiled rules (matchers, templates) -> the rules an event
//! matches. Compiled rules are plain data: no counters, no locks, no I/O; what runs them
//! (throttles, queues, series) belongs to `actions`.
//!
//! [`load`] reads and checks a config file and reports every problem at once, each with its
//! file:line:column; `check-config`, start-up and SIGHUP reloads all call it.

pub mod condition;
pub mod config;
pub mod matcher;
pub mod quiet;
pub mod template;

use std::fmt;
use std::path::Path;
use std::time::Duration;

pub use self::condition::Condition;
pub use self::config::{Checker, Resolver};
use self::matcher::EventMatcher;
use self::template::Template;
use crate::config_error::{ConfigError, write_problems};
use crate::docker::event::Event;

/// Every problem found in one file.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_problems(f, "the rules config", &self.0)
    }
}

impl std::error::Error for ConfigErrors {}

/// A compiled set of rules; `A` is the compiled action, whose kinds live downstream (in
/// `actions`) and are handed to [`load`].
#[derive(Debug)]
pub struct Rules<A> {
    pub rules: Vec<Rule<A>>,
    /// Environment variables the config reads secrets from: kept out of the commands the
    /// rules run, whichever rule reads them.
    pub secret_vars: Vec<String>,
}

impl<A> Rules<A> {
    /// The event rules `ev` of the engine named `engine` matches, with their places in
    /// [`Rules::rules`], in order (a rule with a condition fires on the condition, not on
    /// events).
    pub fn matching<'a>(
        &'a self,
        ev: &'a Event,
        engine: &'a str,
    ) -> impl Iterator<Item = (usize, &'a Rule<A>)> {
        self.rules
            .iter()
            .enumerate()
            .filter(move |(_, r)| r.condition.is_none() && r.matcher.is_match(ev, engine))
    }
}

#[derive(Debug)]
pub struct Rule<A> {
    pub name: String,
    /// Its quiet hours (`mute_time_intervals`): its firings are muted while any holds.
    pub quiet: Vec<std::sync::Arc<quiet::QuietTimes>>,
    /// What it fires on instead of events: its `matcher` then selects the containers (or
    /// engines) it watches.
    pub condition: Option<Condition>,
    pub matcher: EventMatcher,
    pub actions: Vec<A>,
    pub throttle: Option<Throttle>,
    /// The first event fires at once; those that follow within this window go out together.
    pub batch: Option<Duration>,
    /// The events that end an open firing of the same actor (a container turned healthy
    /// again, started again): each fires the rule's actions once more, as `resolved`.
    pub resolve: Option<EventMatcher>,
    /// A firing still open is sent again, every action, this long after it last was.
    pub repeat: Option<Duration>,
    /// Some action renders `%%ip%%`: look the container's address up before rendering. Derived
    /// from the actions' templates.
    pub uses_ip: bool,
    /// Some action renders `%%health_output%%`: inspect the container for its last probe.
    pub uses_health_output: bool,
    /// Some action renders `%%logs%%`: read that many of the container's last lines before
    /// rendering (the rule's `logs`, 20 by default).
    pub logs: Option<usize>,
}

impl<A> Rule<A> {
    /// Whether the time `nanos` is in one of its quiet hours.
    pub fn quiet_at(&self, nanos: i64) -> bool {
        self.quiet.iter().any(|q| q.contains(nanos))
    }

    /// Whether its firings stay open until they end: it has `resolve`, or a condition that
    /// ends.
    pub fn opens(&self) -> bool {
        self.resolve.is_some() || self.condition.is_some_and(|c| c.resolves())
    }

    /// Whether `ev`, of the engine named `engine`, resolves this rule's firings of its actor:
    /// it matches `resolve` and not `event`, or it removes the actor (a container's, volume's
    /// or network's `destroy`, an image's `delete`), whose problem then is no more.
    pub fn resolved_by(&self, ev: &Event, engine: &str) -> bool {
        let Some(resolve) = &self.resolve else {
            return false;
        };
        let removed = matches!(ev.verb(), "destroy" | "delete");
        (removed || resolve.is_match(ev, engine)) && !self.matcher.is_match(ev, engine)
    }
}

#[derive(Debug)]
pub struct Throttle {
    pub key: Template,
    pub interval: Duration,
}

/// What the rules layer needs of a compiled action: its templates (to know what it renders)
/// and its references to the world outside the file, resolved after compiling.
pub trait ActionConfig {
    /// Every template the action renders.
    fn templates(&self) -> Vec<&Template>;
    /// Reads what the action takes from outside the file (secrets, folders): the one step
    /// after compiling that does I/O.
    fn resolve(&mut self, _r: &mut Resolver<'_>) {}
}

impl<T: ActionConfig + ?Sized> ActionConfig for Box<T> {
    fn templates(&self) -> Vec<&Template> {
        (**self).templates()
    }

    fn resolve(&mut self, r: &mut Resolver<'_>) {
        (**self).resolve(r);
    }
}

/// An action kind, as the compiler sees it: the rule keys it reads and how it compiles them
/// into an `A`.
pub trait ActionKind<A>: Sync {
    /// The rule key that asks for this action (`run`, `webhook`, ...).
    fn key(&self) -> &'static str;
    /// Further rule keys that configure it (`timeout`, `env`, `cwd` for `run`).
    fn options(&self) -> &'static [&'static str] {
        &[]
    }
    /// Compiles `node`, the value of [`ActionKind::key`] in the rule `rule` (named `place` in
    /// messages); every problem goes to `c`.
    fn compile(
        &self,
        c: &mut Checker<'_>,
        node: &marked_yaml::Node,
        rule: &marked_yaml::types::MarkedMappingNode,
        place: &str,
    ) -> Option<A>;
}

/// Reads and checks a rules file: compiles it with `kinds`, then resolves what its actions
/// take from outside it; every problem at once. `check-config`, start-up and SIGHUP reloads
/// all call it.
pub fn load<A: ActionConfig>(
    path: &Path,
    kinds: &[&dyn ActionKind<A>],
) -> Result<Rules<A>, ConfigErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: file.clone(),
            line: 0,
            column: 0,
            message: format!("cannot read the file: {e}"),
        }])
    })?;
    config::parse(&file, &text, kinds)
}
