//! Podman's execs and probes, whose events carry no exec ID: which `exec_died` ends which exec,
//! and which is only the second write of an end already counted.
//!
//! What Podman sends (3.3 and later, read from `libpod/container_exec.go` and checked against
//! 4.3.1): one `exec` as an exec starts, and `exec_died` with the exit code as it ends. Its
//! `newExecDiedEvent` sets the session ID as an attribute and then replaces the attributes with
//! the container's labels, so no ID reaches the stream. An attached `podman exec` writes its
//! `exec_died` twice when the cleanup process that conmon starts at the exec's exit takes the
//! container's lock before the `podman exec` process does (about two runs in three here, 2 to
//! 100 ms apart): the cleanup writes one because the session still reads as running, and the
//! `podman exec` process writes its own regardless. The two are the same but for their time,
//! and the second is written before that `podman exec` returns, so before any exec started
//! after it has begun. A detached exec, an exec through the Docker API and a probe are written
//! once. Before 4.7 a probe is a `health_status` as it starts, then its `exec_died`; 4.7 sends
//! the `exec_died` first, and 4.8 and later send no `exec_died` for a probe at all.
//!
//! So: an `exec_died` with the exit code of an exec that ended within
//! [`SECOND_WRITE_WINDOW_NANOS`], with no exec or probe begun since, is that exec's second write. Any other ends the newest exec or probe
//! still open: the usual overlap is a long session (a shell, a `tail -f`) beside short
//! commands, and a stale entry (an end the stream never showed) then shifts no later one.

/// How long after an exec's end its second `exec_died` may come. Seen here: at most 100 ms on
/// an idle machine; the `podman exec` process writes it as soon as it has the container's lock.
const SECOND_WRITE_WINDOW_NANOS: i64 = 1_000_000_000;
/// Ended execs remembered for their second write: as many as may end at once in one container.
const MAX_ENDED: usize = 16;
/// Execs and probes remembered between their start and their end (an exec that never ends is
/// otherwise kept until its container stops).
const MAX_OPEN: usize = super::MAX_OPEN_EXECS_PER_CONTAINER;

/// What an ID-less `exec_died` was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Died {
    /// A person's exec ended; since when, if its start was seen.
    Exec { since: Option<i64> },
    /// A probe ended, begun at `since` (its `health_status`).
    Probe { since: i64 },
    /// The second write of an exec's end, already counted.
    SecondWrite,
}

#[derive(Debug, Default)]
pub(super) struct UnnamedExecs {
    /// Begun and not ended, newest last.
    open: Vec<Open>,
    /// Execs ended since the last one began, whose second write may still come.
    ended: Vec<Ended>,
}

#[derive(Debug, Clone, Copy)]
struct Open {
    since: i64,
    probe: bool,
}

#[derive(Debug, Clone, Copy)]
struct Ended {
    code: Option<i64>,
    at: i64,
}

impl UnnamedExecs {
    /// An `exec` event: a person's exec began. A second write of an earlier exec's end can no
    /// longer come, unless that exec's `podman exec` was still running beside this one.
    pub(super) fn exec_began(&mut self, at: i64) {
        self.ended.clear();
        self.push(Open {
            since: at,
            probe: false,
        });
    }

    /// Podman's `health_status` as a probe begins; as for an exec, a second write of an earlier
    /// end can no longer come. A probe still open is one whose end the engine does not send
    /// (Podman 4.8 and later): this one takes its place.
    pub(super) fn probe_began(&mut self, at: i64) {
        self.ended.clear();
        self.open.retain(|o| !o.probe);
        self.push(Open {
            since: at,
            probe: true,
        });
    }

    /// An `exec_died` with exit code `code` at `at`.
    pub(super) fn died(&mut self, code: Option<&str>, at: i64) -> Died {
        let code = code.and_then(|c| c.parse().ok());
        self.ended
            .retain(|e| at.saturating_sub(e.at) <= SECOND_WRITE_WINDOW_NANOS);
        if let Some(i) = self.ended.iter().position(|e| e.code == code) {
            self.ended.remove(i);
            return Died::SecondWrite;
        }
        match self.open.pop() {
            // A probe is written once (no cleanup process ends it): nothing to wait for.
            Some(Open { since, probe: true }) => Died::Probe { since },
            open => {
                if self.ended.len() >= MAX_ENDED {
                    self.ended.remove(0);
                }
                self.ended.push(Ended { code, at });
                Died::Exec {
                    since: open.map(|o| o.since),
                }
            }
        }
    }

    /// The container's run ended: so did every exec in it. A second write may still come.
    pub(super) fn run_ended(&mut self) {
        self.open.clear();
    }

    fn push(&mut self, open: Open) {
        if self.open.len() >= MAX_OPEN {
            self.open.remove(0);
        }
        self.open.push(open);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    /// Feeds a compact trace: `E` an exec begins, `P` a probe begins, `Dn` an `exec_died` with
    /// exit code n, each 10 ms after the last; returns what each `exec_died` was.
    fn run(trace: &str) -> Vec<Died> {
        let mut u = UnnamedExecs::default();
        let mut out = Vec::new();
        for (i, step) in trace.split_whitespace().enumerate() {
            let at = i as i64 * 10 * MS;
            match step {
                "E" => u.exec_began(at),
                "P" => u.probe_began(at),
                d => out.push(u.died(d.strip_prefix('D'), at)),
            }
        }
        out
    }

    fn exec(since_step: i64) -> Died {
        Died::Exec {
            since: Some(since_step * 10 * MS),
        }
    }

    const SECOND: Died = Died::SecondWrite;

    #[test]
    fn a_podman_exec_written_twice_is_one_exec() {
        assert_eq!(run("E D5 D5 E D0"), [exec(0), SECOND, exec(3)]);
        assert_eq!(run("E D0 D0 E D0 D0"), [exec(0), SECOND, exec(3), SECOND]);
        // Written once, then the next exec ends with the same code: its own end.
        assert_eq!(run("E D0 E D0 D0"), [exec(0), exec(2), SECOND]);
    }

    #[test]
    fn concurrent_execs_with_different_codes_are_each_counted_once_with_their_code() {
        // Every order in which two execs' ends and second writes can come.
        for trace in [
            "E E D3 D3 D6 D6",
            "E E D3 D6 D3 D6",
            "E E D3 D6 D6 D3",
            "E E D3 D6",
            "E E D3 D3 D6",
            "E E D3 D6 D6",
        ] {
            let died = run(trace);
            let ends: Vec<_> = trace
                .split_whitespace()
                .filter(|s| s.starts_with('D'))
                .zip(&died)
                .filter(|(_, d)| **d != SECOND)
                .map(|(s, _)| s)
                .collect();
            assert_eq!(ends, ["D3", "D6"], "{trace}: {died:?}");
        }
    }

    #[test]
    fn an_exec_beside_a_long_one_ends_itself_not_the_long_one() {
        // A shell opened at step 0; two commands run and end (one written twice) beside it.
        assert_eq!(
            run("E E D0 D0 E D1 D9"),
            [exec(1), SECOND, exec(4), exec(0)]
        );
    }

    #[test]
    fn a_probe_ends_with_its_exec_died_and_an_unended_one_is_replaced() {
        assert_eq!(
            run("P D1 E D0 D0 P D0"),
            [
                Died::Probe { since: 0 },
                exec(2),
                SECOND,
                Died::Probe { since: 50 * MS }
            ]
        );
        // Podman 4.8: a probe's end is never sent; the next probe takes its place and a
        // person's exec is not taken for it.
        assert_eq!(run("P P E D0"), [exec(2)]);
        assert_eq!(run("P P D1"), [Died::Probe { since: 10 * MS }]);
        // `podman exec` then `podman healthcheck run`: the probe's end, not a second write.
        assert_eq!(run("E D0 P D0"), [exec(0), Died::Probe { since: 20 * MS }]);
    }

    #[test]
    fn an_end_whose_start_was_not_seen_is_an_exec_and_a_late_write_is_not_second() {
        assert_eq!(run("D4 D4"), [Died::Exec { since: None }, SECOND]);
        let mut u = UnnamedExecs::default();
        u.exec_began(0);
        assert_eq!(u.died(Some("0"), MS), Died::Exec { since: Some(0) });
        // Past the window: an exec whose start the stream did not show.
        let late = MS + SECOND_WRITE_WINDOW_NANOS + 1;
        assert_eq!(u.died(Some("0"), late), Died::Exec { since: None });
    }

    #[test]
    fn a_run_that_ends_ends_its_execs() {
        let mut u = UnnamedExecs::default();
        u.exec_began(0);
        u.run_ended();
        assert_eq!(u.died(Some("1"), MS), Died::Exec { since: None });
    }
}
