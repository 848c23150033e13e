//! Any text as a rules file: compiled with every check start-up runs. Must never panic; an
//! error must name the file.
#![no_main]

use docker_events_exporter::rules::config::compile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(errors) = compile("fuzz.yml", text) {
        let shown = errors.to_string();
        assert!(shown.contains("fuzz.yml"), "{shown}");
    }
});
