//! The fuzzers' corpora (fuzz/corpus/, kept in the repository) replayed through the same
//! functions on the stable toolchain, so that every input the fuzzers found interesting, and
//! every crash they ever found (fuzz/regressions/), stays a test. `scripts/fuzz.sh` runs the
//! fuzzers themselves (nightly, cargo-fuzz).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use docker_events_exporter::docker::event::Event;
use docker_events_exporter::docker::stream::{Dedupe, process_line};
use docker_events_exporter::metrics::{Metrics, Tracker};
use docker_events_exporter::rules::config::compile;
use docker_events_exporter::rules::template::{Context, Template};

use crate::support::repo_root;

/// Every file of fuzz/corpus/TARGET and fuzz/regressions/TARGET.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for kind in ["corpus", "regressions"] {
        let dir = repo_root().join("fuzz").join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let bytes = std::fs::read(e.path()).expect("read corpus file");
            out.push((e.path(), bytes));
        }
    }
    out.sort();
    out
}

#[test]
fn decode_and_apply_corpus() {
    let inputs = inputs("decode_and_apply");
    assert!(
        inputs.len() >= 10,
        "the corpus is missing: {}",
        inputs.len()
    );
    let m = Arc::new(Metrics::new(&["com.example.team".to_owned()]).expect("metrics"));
    let mut t = Tracker::new(m.clone(), Duration::from_secs(60), None);
    let mut d = Dedupe::default();
    let mut newest = 0;
    for (_, data) in &inputs {
        for line in data.split(|b| *b == b'\n') {
            let _ = process_line(line, Some(&mut d), &mut t, None, &m, &mut newest);
        }
    }
    t.sweep();
    let text = m.encode();
    assert!(
        text.contains("docker_events_total{"),
        "the seeds are real events"
    );
}

#[test]
fn rules_config_corpus() {
    let inputs = inputs("rules_config");
    assert!(inputs.len() >= 5, "the corpus is missing: {}", inputs.len());
    for (path, data) in &inputs {
        let Ok(text) = std::str::from_utf8(data) else {
            continue;
        };
        if let Err(errors) = compile("corpus.yml", text) {
            let shown = errors.to_string();
            assert!(shown.contains("corpus.yml"), "{}: {shown}", path.display());
        }
    }
}

#[test]
fn template_corpus() {
    const CAP: usize = 4096;
    let inputs = inputs("template");
    assert!(inputs.len() >= 4, "the corpus is missing: {}", inputs.len());
    for (path, data) in &inputs {
        let Some(split) = data.iter().position(|b| *b == 0) else {
            continue;
        };
        let (Ok(template), Ok(event)) = (
            std::str::from_utf8(&data[..split]),
            Event::decode(&data[split + 1..]),
        ) else {
            continue;
        };
        let Ok(t) = Template::parse(template) else {
            continue;
        };
        let events = [Arc::new(event)];
        let ctx = Context {
            events: &events,
            rule: "fuzz",
            host: "host",
            ip: Some("10.0.0.1"),
        };
        let out = t.render(&ctx, CAP);
        assert!(out.len() <= CAP, "{}: {} bytes", path.display(), out.len());
    }
}
