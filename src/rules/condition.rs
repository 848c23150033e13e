//! A rule's `condition:`: a state of a container or an engine that fires once when it
//! begins to hold and resolves once when it ends, compiled into plain data; and the overrides
//! of its thresholds a container's labels give.
//!
//! ```yaml
//! condition: crash_loop                      # with its defaults
//! condition: {crash_loop: {exits: 5, within: 30m}}
//! ```

use std::time::Duration;

/// The conditions, for error messages.
pub const CONDITIONS: &str =
    "crash_loop, restart_loop, unhealthy, down, engine_down, events_missed";
/// The prefix of a container label that overrides a threshold for that container:
/// `docker-events-exporter.crash_loop.exits=5`.
pub const LABEL_PREFIX: &str = "docker-events-exporter.";
/// The most exits or restarts a loop may ask for (each container keeps this many times).
pub const MAX_COUNT: u32 = 100;

const MIN: u64 = 60;

/// A condition with its thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Died on its own with a non-zero exit `exits` times within `within`: what
    /// `DockerContainerCrashLooping` and the status page's "Crashing now" call a crash loop.
    CrashLoop { exits: u32, within: Duration },
    /// Started again by its restart policy `restarts` times within `within`, whatever the
    /// exit code.
    RestartLoop { restarts: u32, within: Duration },
    /// Its health `unhealthy` without a break for `for_`.
    Unhealthy { for_: Duration },
    /// A container that should run (a restart policy other than `no`, or a compose service's)
    /// not running for `for_`, and not stopped by a person.
    Down { for_: Duration },
    /// The exporter not subscribed to the engine for `for_`.
    EngineDown { for_: Duration },
    /// A gap found in an engine's events: fires once per gap, resolves nothing.
    EventsMissed,
}

impl Condition {
    /// The condition named `name`, with its defaults.
    pub fn named(name: &str) -> Option<Self> {
        Some(match name {
            "crash_loop" => Self::CrashLoop {
                exits: 3,
                within: Duration::from_secs(10 * MIN),
            },
            "restart_loop" => Self::RestartLoop {
                restarts: 3,
                within: Duration::from_secs(10 * MIN),
            },
            "unhealthy" => Self::Unhealthy {
                for_: Duration::from_secs(2 * MIN),
            },
            "down" => Self::Down {
                for_: Duration::from_secs(5 * MIN),
            },
            "engine_down" => Self::EngineDown {
                for_: Duration::from_secs(MIN),
            },
            "events_missed" => Self::EventsMissed,
            _ => return None,
        })
    }

    /// Its name, as `%%condition%%` shows it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::CrashLoop { .. } => "crash_loop",
            Self::RestartLoop { .. } => "restart_loop",
            Self::Unhealthy { .. } => "unhealthy",
            Self::Down { .. } => "down",
            Self::EngineDown { .. } => "engine_down",
            Self::EventsMissed => "events_missed",
        }
    }

    /// The keys its mapping takes.
    pub fn params(&self) -> &'static [&'static str] {
        match self {
            Self::CrashLoop { .. } => &["exits", "within"],
            Self::RestartLoop { .. } => &["restarts", "within"],
            Self::Unhealthy { .. } | Self::Down { .. } | Self::EngineDown { .. } => &["for"],
            Self::EventsMissed => &[],
        }
    }

    /// Whether it is an engine's (else a container's).
    pub fn of_engine(&self) -> bool {
        matches!(self, Self::EngineDown { .. } | Self::EventsMissed)
    }

    /// Whether it ends (every condition but `events_missed`).
    pub fn resolves(&self) -> bool {
        !matches!(self, Self::EventsMissed)
    }

    /// Sets the parameter `key` (one of [`Condition::params`]) from `value`; `Err` says what
    /// a value must be.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let count = |v: &str| match v.parse::<u32>() {
            Ok(n) if (1..=MAX_COUNT).contains(&n) => Ok(n),
            _ => Err(format!(
                "must be a whole number from 1 to {MAX_COUNT}; got {v:?}"
            )),
        };
        let duration = |v: &str| match humantime::parse_duration(v) {
            Ok(d) if d >= Duration::from_secs(1) && d <= super::config::MAX_DURATION => Ok(d),
            Ok(_) => Err(format!("must be between 1s and 7 days; got {v:?}")),
            Err(e) => Err(format!(
                "is not a duration ({e}); use one like 30s, 5m or 1h"
            )),
        };
        match (self, key) {
            (Self::CrashLoop { exits: n, .. } | Self::RestartLoop { restarts: n, .. }, _)
                if key == "exits" || key == "restarts" =>
            {
                *n = count(value)?;
            }
            (Self::CrashLoop { within, .. } | Self::RestartLoop { within, .. }, "within") => {
                *within = duration(value)?;
            }
            (Self::Unhealthy { for_ } | Self::Down { for_ } | Self::EngineDown { for_ }, "for") => {
                *for_ = duration(value)?
            }
            (c, key) => {
                return Err(format!(
                    "{} has no {key:?}; it takes {}",
                    c.name(),
                    match c.params() {
                        [] => "nothing".to_owned(),
                        p => p.join(", "),
                    }
                ));
            }
        }
        Ok(())
    }

    /// This condition for a container whose labels are read by `label`: each
    /// `docker-events-exporter.<condition>.<param>` label overrides that threshold. A label
    /// whose value will not do is left out, and named in the second value with why.
    pub fn for_container<'a>(
        &self,
        label: impl Fn(&str) -> Option<&'a str>,
    ) -> (Self, Option<String>) {
        let mut c = *self;
        let mut problem = None;
        for param in self.params() {
            let key = format!("{LABEL_PREFIX}{}.{param}", self.name());
            if let Some(value) = label(&key)
                && let Err(why) = c.set(param, value)
            {
                problem = Some(format!("label {key} {why}"));
            }
        }
        (c, problem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_override_thresholds_and_a_bad_label_is_named_and_left_out() {
        let rule = Condition::named("crash_loop").expect("known");
        let labels = [
            ("docker-events-exporter.crash_loop.exits", "5"),
            ("docker-events-exporter.crash_loop.within", "soon"),
        ];
        let (c, problem) =
            rule.for_container(|k| labels.iter().find(|(l, _)| *l == k).map(|(_, v)| *v));
        assert_eq!(
            c,
            Condition::CrashLoop {
                exits: 5,
                within: Duration::from_secs(600)
            }
        );
        assert_eq!(
            problem.as_deref(),
            Some(
                "label docker-events-exporter.crash_loop.within is not a duration (expected number at 0); use one like 30s, 5m or 1h"
            )
        );
        let (same, none) = rule.for_container(|_| None);
        assert_eq!((same, none), (rule, None));
        let mut down = Condition::named("down").expect("known");
        assert_eq!(
            down.set("exits", "3").expect_err("refused"),
            "down has no \"exits\"; it takes for"
        );
        assert_eq!(
            down.set("for", "0s").expect_err("refused"),
            "must be between 1s and 7 days; got \"0s\""
        );
        assert_eq!(
            Condition::named("crash_loop")
                .expect("known")
                .set("exits", "101")
                .expect_err("refused"),
            "must be a whole number from 1 to 100; got \"101\""
        );
    }
}
