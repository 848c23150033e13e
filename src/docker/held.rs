//! The engine's held events read for what they say of exits: which container's last run a kill
//! ended (for a start-up or a reconcile that has only the inspect's exit code).

use std::collections::HashMap;

use super::{event, kill_ends_run, lines};

/// A container's last `die` among the engine's held events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct HeldExit {
    die_nano: i64,
    killed: Option<bool>,
}

impl HeldExit {
    /// Whether a kill ended the run that finished at `finished_nano` (the inspect's
    /// `FinishedAt`), if this `die` is that exit's: the engine sets `FinishedAt` and then sends
    /// the `die`, so an older `die` is an earlier run's.
    pub(super) fn killed_in(self, finished_nano: Option<i64>) -> Option<bool> {
        finished_nano
            .filter(|f| self.die_nano >= *f)
            .and(self.killed)
    }
}

/// Each container's last `die` in `lines` (start, kill and die events, oldest first), with
/// whether a kill that ends a run came since that run's start.
pub(super) fn held_exits(lines: &[u8]) -> HashMap<String, HeldExit> {
    #[derive(Default)]
    struct Run {
        started: bool,
        killed: bool,
        last: Option<HeldExit>,
    }
    let mut runs: HashMap<String, Run> = HashMap::new();
    for line in lines.split(|b| *b == b'\n') {
        let Ok(ev) = event::Event::decode(lines::record(line)) else {
            continue;
        };
        let run = runs.entry(ev.actor_id().to_owned()).or_default();
        match ev.verb {
            event::Verb::Start => {
                run.started = true;
                run.killed = false;
            }
            event::Verb::Kill if kill_ends_run(ev.attr("signal")) => run.killed = true,
            // Podman sends `stop` before the die of a run it stops (Docker, after it).
            event::Verb::Stop if run.started => run.killed = true,
            event::Verb::Die => {
                let killed = if run.killed {
                    Some(true)
                } else {
                    // Without the run's start, its kill may be older than what is held.
                    run.started.then_some(false)
                };
                run.last = Some(HeldExit {
                    die_nano: ev.time_nano,
                    killed,
                });
                run.started = false;
                run.killed = false;
            }
            _ => {}
        }
    }
    runs.into_iter()
        .filter_map(|(id, run)| Some((id, run.last?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_events_tell_whether_a_kill_ended_the_last_run() {
        let ev = |id: &str, action: &str, t: i64, attrs: &str| {
            format!(
                r#"{{"status":"{action}","id":"{id}","Type":"container","Action":"{action}","Actor":{{"ID":"{id}","Attributes":{{{attrs}}}}},"scope":"local","time":{},"timeNano":{t}}}"#,
                t / 1_000_000_000
            )
        };
        let lines = [
            // a: stopped (TERM, then KILL after the timeout).
            ev("a", "start", 1_000, r#""name":"a""#),
            ev("a", "kill", 2_000, r#""name":"a","signal":"15""#),
            ev("a", "kill", 3_000, r#""name":"a","signal":"9""#),
            ev("a", "die", 4_000, r#""exitCode":"137","name":"a""#),
            // b: reloaded with SIGHUP, then died of its own; c: its run's start is not held.
            ev("b", "start", 1_100, r#""name":"b""#),
            ev("b", "kill", 1_200, r#""name":"b","signal":"1""#),
            ev("b", "die", 1_300, r#""exitCode":"1","name":"b""#),
            ev("c", "die", 1_400, r#""exitCode":"0","name":"c""#),
            // d: stopped by Podman, which sends the stop before the die (Docker, after it).
            ev("d", "start", 1_500, r#""name":"d""#),
            ev("d", "stop", 1_600, r#""name":"d""#),
            ev("d", "die", 1_700, r#""exitCode":"137","name":"d""#),
            // a again: killed before (and Docker's stop after that die), then a clean run.
            ev("a", "stop", 4_100, r#""name":"a""#),
            ev("a", "start", 5_000, r#""name":"a""#),
            ev("a", "die", 6_000, r#""exitCode":"0","name":"a""#),
        ]
        .join("\n");
        let exits = held_exits(lines.as_bytes());
        let a = exits["a"];
        assert_eq!(a.killed_in(Some(5_999)), Some(false), "the last run's");
        assert_eq!(a.killed_in(Some(7_000)), None, "a later exit, not held");
        assert_eq!(exits["b"].killed_in(Some(1_290)), Some(false));
        assert_eq!(exits["c"].killed_in(Some(1_390)), None);
        assert_eq!(exits["d"].killed_in(Some(1_690)), Some(true));
        let stopped = held_exits(
            lines
                .lines()
                .take(4)
                .collect::<Vec<_>>()
                .join("\n")
                .as_bytes(),
        );
        assert_eq!(stopped["a"].killed_in(Some(3_999)), Some(true));
    }
}
