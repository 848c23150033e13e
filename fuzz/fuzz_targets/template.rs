//! A template and an event line; the body is `docker_events_exporter::fuzzing::template`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| docker_events_exporter::fuzzing::template(data));
