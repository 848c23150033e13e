//! Any text as a rules file; the body is `docker_events_exporter::fuzzing::rules_config`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| docker_events_exporter::fuzzing::rules_config(data));
