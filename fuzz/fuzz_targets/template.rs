//! Any text as a `%%key%%` template, rendered against any event line: must never panic and
//! must respect the size cap.
#![no_main]

use std::sync::Arc;

use docker_events_exporter::docker::event::Event;
use docker_events_exporter::rules::template::{Context, Template};
use libfuzzer_sys::fuzz_target;

const CAP: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some(split) = data.iter().position(|b| *b == 0) else {
        return;
    };
    let (template, line) = (&data[..split], &data[split + 1..]);
    let Ok(template) = std::str::from_utf8(template) else {
        return;
    };
    let Ok(t) = Template::parse(template) else {
        return;
    };
    let Ok(event) = Event::decode(line) else {
        return;
    };
    let events = [Arc::new(event)];
    let ctx = Context {
        events: &events,
        rule: "fuzz",
        host: "host",
        ip: Some("10.0.0.1"),
    };
    let out = t.render(&ctx, CAP);
    assert!(
        out.len() <= CAP,
        "{} bytes past the cap of {CAP}",
        out.len()
    );
});
