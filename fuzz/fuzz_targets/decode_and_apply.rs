//! Any bytes as event lines, decoded and applied as the live stream does; the body is
//! `docker_events_exporter::fuzzing::DecodeAndApply`, shared with the corpus replay test.
#![no_main]

use std::sync::{LazyLock, Mutex};

use docker_events_exporter::fuzzing::DecodeAndApply;
use libfuzzer_sys::fuzz_target;

static STATE: LazyLock<Mutex<DecodeAndApply>> = LazyLock::new(Mutex::default);

fuzz_target!(|data: &[u8]| {
    STATE.lock().unwrap_or_else(|e| e.into_inner()).input(data);
});
