//! The fuzz targets' bodies, shared by `fuzz/` (cargo-fuzz, nightly) and by the test suite's
//! replay of their corpora (stable), so that both run exactly the same code and checks. Each
//! panics on what must never happen; bad input itself is fine.

use std::sync::Arc;
use std::time::Duration;

use crate::docker::event::Event;
use crate::docker::stream::{Dedupe, hand_over};
use crate::metrics::{Metrics, Tracker};
use crate::pipeline::Pipeline;
use crate::rules::config::parse;
use crate::rules::template::{Context, LookedUp, Template};

/// The size cap `template` renders with.
pub const TEMPLATE_CAP: usize = 4096;

/// Any bytes as event lines, handed over as the live stream does (dedupe, then the pipeline)
/// to a long-lived pipeline (so that sequences of events are explored too). Every 1000 inputs
/// the series are swept and the exposition written.
pub struct DecodeAndApply {
    metrics: Arc<Metrics>,
    pipeline: Pipeline,
    dedupe: Dedupe,
    inputs: u64,
}

impl Default for DecodeAndApply {
    fn default() -> Self {
        let metrics = Arc::new(
            // One allow-listed label, so that label values reach the metrics too. A fixed,
            // valid label name cannot fail.
            Metrics::new(&["com.example.team".to_owned()]).unwrap_or_else(|e| panic!("{e}")),
        );
        let tracker = Tracker::new(metrics.clone(), Duration::from_secs(60));
        Self {
            pipeline: Pipeline::new(tracker, None),
            metrics,
            dedupe: Dedupe::default(),
            inputs: 0,
        }
    }
}

impl DecodeAndApply {
    pub fn input(&mut self, data: &[u8]) {
        for line in data.split(|b| *b == b'\n') {
            same_event_both_ways(line);
            let _ = hand_over(line, &mut self.dedupe, &mut self.pipeline);
        }
        self.inputs += 1;
        if self.inputs.is_multiple_of(1000) {
            self.finish();
        }
    }

    /// Sweeps the series and returns the exposition.
    pub fn finish(&mut self) -> String {
        self.pipeline.tracker().sweep();
        self.metrics.encode()
    }
}

/// A line the fast decoding path takes must be one the general path decodes to the same event.
fn same_event_both_ways(line: &[u8]) {
    let Ok(text) = std::str::from_utf8(crate::docker::lines::record(line)) else {
        return;
    };
    let (fast, general) = Event::decode_paths(text);
    if let Some(fast) = fast {
        let json = |e: &Event| {
            let mut out = String::new();
            e.write_json(&mut out);
            out
        };
        let (fast_json, general_json) = (json(&fast), general.as_ref().map(json));
        assert_eq!(
            Ok(fast),
            general,
            "the two decoding paths differ on {text:?}"
        );
        assert_eq!(
            Ok(fast_json),
            general_json,
            "the two payloads differ on {text:?}"
        );
    }
}

/// Any text as a rules file, with every check start-up runs: an error must name the file.
pub fn rules_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(errors) = parse("fuzz.yml", text, crate::actions::KINDS) {
        let shown = errors.to_string();
        assert!(shown.contains("fuzz.yml"), "{shown}");
    }
}

/// A template, a NUL byte, then an event line: the template rendered against the event must
/// respect the size cap.
pub fn template(data: &[u8]) {
    let Some(split) = data.iter().position(|b| *b == 0) else {
        return;
    };
    let (Ok(template), Ok(event)) = (
        std::str::from_utf8(&data[..split]),
        Event::decode(&data[split + 1..]),
    ) else {
        return;
    };
    let Ok(t) = Template::parse(template) else {
        return;
    };
    let events = [Arc::new(event)];
    let ctx = Context {
        events: &events,
        rule: "fuzz",
        host: "host",
        engine: "engine",
        opened_by: None,
        condition: None,
        looked_up: LookedUp {
            ip: Some("10.0.0.1"),
            logs: Some("a \u{1b}[31mlog\u{1b}[0m line <b>&"),
            health_output: Some("probe said <b>no</b>"),
        },
    };
    let out = t.render(&ctx, TEMPLATE_CAP);
    assert!(
        out.len() <= TEMPLATE_CAP,
        "{} bytes past the cap of {TEMPLATE_CAP}",
        out.len()
    );
}
