//! The fuzzers' corpora (fuzz/corpus/, kept in the repository) replayed through the same
//! functions on the stable toolchain, so that every input the fuzzers found interesting, and
//! every crash they ever found (fuzz/regressions/), stays a test. The bodies are the fuzz
//! targets' own (`docker_events_exporter::fuzzing`). `scripts/fuzz.sh` runs the
//! fuzzers themselves (nightly, cargo-fuzz).

use std::path::PathBuf;

use docker_events_exporter::fuzzing;

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
    let mut target = fuzzing::DecodeAndApply::default();
    for (_, data) in &inputs {
        target.input(data);
    }
    let text = target.finish();
    assert!(
        text.contains("docker_events_total{"),
        "the seeds are real events"
    );
}

#[test]
fn rules_config_corpus() {
    let inputs = inputs("rules_config");
    assert!(inputs.len() >= 5, "the corpus is missing: {}", inputs.len());
    for (_, data) in &inputs {
        fuzzing::rules_config(data);
    }
}

#[test]
fn template_corpus() {
    let inputs = inputs("template");
    assert!(inputs.len() >= 4, "the corpus is missing: {}", inputs.len());
    for (_, data) in &inputs {
        fuzzing::template(data);
    }
}
