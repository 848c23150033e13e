//! Any bytes as an event line: decoded, deduplicated and applied to the metrics exactly as the
//! live stream does. Must never panic, and the exposition must stay valid UTF-8.
#![no_main]

use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use docker_events_exporter::docker::stream::{Dedupe, process_line};
use docker_events_exporter::metrics::{Metrics, Tracker};
use libfuzzer_sys::fuzz_target;

struct State {
    metrics: Arc<Metrics>,
    tracker: Tracker,
    dedupe: Dedupe,
    newest: i64,
    lines: u64,
}

static STATE: LazyLock<Mutex<State>> = LazyLock::new(|| {
    let metrics = Arc::new(Metrics::new(&["com.example.team".to_owned()]).expect("metrics"));
    let tracker = Tracker::new(metrics.clone(), Duration::from_secs(60), None);
    Mutex::new(State {
        metrics,
        tracker,
        dedupe: Dedupe::default(),
        newest: 0,
        lines: 0,
    })
});

fuzz_target!(|data: &[u8]| {
    let mut s = STATE.lock().unwrap_or_else(|e| e.into_inner());
    let s = &mut *s;
    // Several lines per input, so that sequences (create, start, die...) are explored too.
    for line in data.split(|b| *b == b'\n') {
        let _ = process_line(
            line,
            Some(&mut s.dedupe),
            &mut s.tracker,
            None,
            &s.metrics,
            &mut s.newest,
        );
    }
    s.lines += 1;
    if s.lines % 1000 == 0 {
        s.tracker.sweep();
        let text = s.metrics.encode();
        assert!(text.is_char_boundary(text.len()));
    }
});
