//! What happens to one line of the event stream: decode it, apply it to the tracker (the
//! metrics), keep it in the history, then hand it to the rules. The live stream (as its
//! [`Consumer`]), `replay` and the fuzz targets all enter here, through [`Pipeline::line`].
//! The history takes the events of each read from the engine together, at its end
//! ([`Pipeline::publish`]): keeping an event then takes no lock.

use std::sync::Arc;

use crate::actions::Reactor;
use crate::docker::ContainerSnapshot;
use crate::docker::event::{Buffers, Event};
use crate::docker::state::OpenFiring;
use crate::docker::stream::{Consumer, InspectRequest, Signal, Snapshot};
use crate::history::{History, Staged};
use crate::metrics::Tracker;

/// How many characters of a bad line a log line shows.
const LOG_PREVIEW_CHARS: usize = 200;

/// What one line did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineOutcome {
    /// An event, applied; its engine time.
    Applied {
        time_nano: i64,
    },
    /// Not an event: counted and logged.
    DecodeError,
    Blank,
}

/// Decode, metrics, history, rules.
pub struct Pipeline {
    tracker: Tracker,
    /// The history, and the events applied and not yet handed to it.
    history: Option<(Arc<History>, Staged)>,
    rules: Option<Reactor>,
    /// The last event's memory, when the rules did not keep it.
    spare: Buffers,
}

impl Pipeline {
    /// The tracker's metrics are the engine's: its self-metrics are counted there.
    pub fn new(tracker: Tracker, rules: Option<Reactor>) -> Self {
        Self {
            tracker,
            history: None,
            rules,
            spare: Buffers::default(),
        }
    }

    /// Keeps every event it applies in `history` too.
    pub fn with_history(mut self, history: Option<Arc<History>>) -> Self {
        self.history = history.map(|h| (h, Staged::default()));
        self
    }

    /// Decodes and applies one line: metrics first, then the history, then the rules.
    pub fn line(&mut self, line: &[u8]) -> LineOutcome {
        self.record(crate::docker::lines::record(line))
    }

    /// The same for a record: a line already trimmed, without its record separator (as the
    /// stream hands lines over), so that a live line is trimmed once.
    fn record(&mut self, line: &[u8]) -> LineOutcome {
        if line.is_empty() {
            return LineOutcome::Blank;
        }
        match Event::decode_reusing(line, &mut self.spare) {
            Ok(ev) => {
                let time_nano = ev.time_nano;
                self.tracker.apply(&ev);
                if let Some((h, staged)) = &mut self.history
                    && staged.push(time_nano, line)
                {
                    h.take(staged);
                }
                match &mut self.rules {
                    Some(r) => r.on_event(ev),
                    None => self.spare = ev.into_buffers(),
                }
                LineOutcome::Applied { time_nano }
            }
            Err(e) => {
                self.tracker.metrics().decode_errors.inc();
                tracing::warn!(error = %e, line = %preview(line), "skipping an event line that cannot be read");
                LineOutcome::DecodeError
            }
        }
    }

    /// Hands the events applied since the last call to the history: at the end of each read
    /// from the engine, so that what the stream has read is there before it reads again.
    pub fn publish(&mut self) {
        if let Some((h, staged)) = &mut self.history
            && !staged.is_empty()
        {
            h.take(staged);
        }
    }

    /// A line past the length limit was skipped: counted like any line that cannot be read.
    pub fn too_long(&mut self) {
        self.tracker.metrics().decode_errors.inc();
        tracing::warn!(
            limit = crate::docker::lines::MAX_LINE_BYTES,
            "skipping an event line longer than the limit"
        );
    }

    pub fn tracker(&mut self) -> &mut Tracker {
        &mut self.tracker
    }

    pub fn rules(&mut self) -> Option<&mut Reactor> {
        self.rules.as_mut()
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.publish();
    }
}

impl Consumer for Pipeline {
    fn line(&mut self, line: &[u8]) -> Option<i64> {
        match self.record(line) {
            LineOutcome::Applied { time_nano } => Some(time_nano),
            LineOutcome::DecodeError | LineOutcome::Blank => None,
        }
    }

    fn read_done(&mut self) {
        self.publish();
    }

    fn signal(&mut self, signal: Signal) {
        let m = self.tracker.metrics();
        let now_nano = crate::docker::now_nano;
        match signal {
            Signal::Subscribed { again } => {
                m.set_up(true);
                if again {
                    m.reconnects.inc();
                }
                if let Some(r) = &mut self.rules {
                    r.engine_back(now_nano());
                }
            }
            Signal::Lost => {
                m.set_up(false);
                if let Some(r) = &mut self.rules {
                    r.engine_lost(now_nano());
                }
            }
            Signal::Gap => {
                m.stream_gaps.inc();
                if let Some(r) = &mut self.rules {
                    r.events_missed(now_nano());
                }
            }
            Signal::Replayed => m.replayed_events.inc(),
            Signal::LineTooLong => self.too_long(),
        }
    }

    fn take_inspects(&mut self, out: &mut Vec<InspectRequest>) {
        self.tracker.take_inspects(out);
    }

    fn inspected(&mut self, req: &InspectRequest, snap: &ContainerSnapshot) {
        self.tracker.apply_inspect(req, snap);
        if let Some(r) = &mut self.rules {
            r.learn(snap);
        }
    }

    fn seq(&self) -> u64 {
        self.tracker.seq()
    }

    fn reconcile(&mut self, s: &Snapshot) {
        let changes =
            self.tracker
                .reconcile(&s.containers, s.position_nano, s.snapshot_nano, s.seq);
        self.tracker.metrics().reconciled_changes.inc_by(changes);
        tracing::info!(
            changes,
            containers = s.containers.len(),
            "reconciled with the engine's containers after a gap"
        );
        if let Some(r) = &mut self.rules {
            r.reconcile(&s.containers);
        }
    }

    fn take_open_firings(&mut self) -> Option<Vec<OpenFiring>> {
        self.rules.as_mut()?.take_open_firings()
    }

    fn tick(&mut self) {
        self.tracker.sweep();
        self.tracker.ask_overdue_restarts();
        if let Some(r) = &mut self.rules {
            r.tick(std::time::Instant::now(), crate::docker::now_nano());
        }
    }
}

fn preview(line: &[u8]) -> String {
    String::from_utf8_lossy(line)
        .chars()
        .take(LOG_PREVIEW_CHARS)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::docker::stream::{Dedupe, hand_over};
    use crate::metrics::Metrics;

    fn pipeline(labels: &[String]) -> (Pipeline, Arc<Metrics>) {
        let m = Arc::new(Metrics::new(labels).expect("metrics"));
        let t = Tracker::new(m.clone(), Duration::from_secs(60));
        (Pipeline::new(t, None), m)
    }

    #[test]
    fn bad_lines_are_counted_and_the_next_one_still_applies() {
        let (mut p, m) = pipeline(&[]);
        let mut d = Dedupe::default();
        let good = br#"{"Type":"container","Action":"oom","Actor":{"ID":"c","Attributes":{"name":"n","image":"i"}},"time":1,"timeNano":1000000005}"#;
        assert_eq!(p.line(b"{oops"), LineOutcome::DecodeError);
        assert_eq!(
            hand_over(good, &mut d, &mut p).map(|(t, _)| t),
            Some(1_000_000_005)
        );
        assert_eq!(hand_over(good, &mut d, &mut p), None, "a duplicate");
        assert_eq!(p.tracker().metrics().decode_errors.get(), 1);
        assert!(
            m.encode().contains(
                "docker_container_oom_kills_total{name=\"n\",image=\"i\",compose_project=\"\",compose_service=\"\",swarm_service=\"\",swarm_stack=\"\"} 1\n"
            ),
            "counted once"
        );
    }

    #[test]
    fn hostile_lines_give_counted_errors_or_capped_values() {
        let (mut p, m) = pipeline(&["team".to_owned()]);
        let mut apply = |line: &[u8]| matches!(p.line(line), LineOutcome::Applied { .. });
        // 20,000 attributes: decoded and applied; only the labels we use reach the metrics.
        let many: String = (0..20_000).map(|i| format!(",\"k{i}\":\"v{i}\"")).collect();
        let huge_map = format!(
            r#"{{"Type":"container","Action":"create","Actor":{{"ID":"c1","Attributes":{{"name":"many"{many}}}}},"time":1,"timeNano":1000000001}}"#
        );
        assert!(apply(huge_map.as_bytes()));
        // A name and a label value of 900 KB: the series' labels are cut to 256 bytes.
        let big = "x".repeat(900 * 1024);
        let big_label = format!(
            r#"{{"Type":"container","Action":"create","Actor":{{"ID":"c2","Attributes":{{"name":"{big}","team":"{big}"}}}},"time":1,"timeNano":1000000002}}"#
        );
        assert!(apply(big_label.as_bytes()));
        // Invalid UTF-8 inside a string: a counted error, not a replacement character.
        let mut invalid =
            br#"{"Type":"container","Action":"create","Actor":{"ID":"c3","Attributes":{"name":"#
                .to_vec();
        invalid.extend_from_slice(b"\"bad\xff\xfe\"}},\"time\":1}");
        assert!(!apply(&invalid));
        assert_eq!(p.tracker().metrics().decode_errors.get(), 1);
        let text = m.encode();
        let capped = "x".repeat(crate::metrics::tracker::MAX_LABEL_VALUE_BYTES);
        assert!(
            text.contains(&format!(
                "docker_container_starts_total{{name=\"{capped}\",image=\"\",compose_project=\"\",compose_service=\"\",swarm_service=\"\",swarm_stack=\"\",label_team=\"{capped}\"}} 0\n"
            )),
            "the 900 KB values are capped"
        );
        let longest = text.lines().map(str::len).max().unwrap_or(0);
        assert!(longest < 1024, "a line of {longest} bytes");
    }
}
