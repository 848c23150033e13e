//! The pipeline's stages over generated events: decode, metrics update, rule matching,
//! template rendering. `cargo bench`; figures are events per second per core.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use docker_events_exporter::actions::{Loaded, Origin, Reactor};
use docker_events_exporter::cmd::generate::{Shape, Spec, generate};
use docker_events_exporter::docker::event::Event;
use docker_events_exporter::metrics::{Metrics, Tracker};
use docker_events_exporter::rules::template::{Context, Escape, Template};

const EVENTS: u64 = 20_000;

fn lines(shape: Shape) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    generate(
        &Spec {
            events: EVENTS,
            containers: 200,
            shape,
            ..Spec::default()
        },
        &mut out,
    )
    .expect("generate");
    out.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    for (name, shape) in [
        ("engine-29", Shape::Engine29),
        ("engine-20.10", Shape::Engine20),
    ] {
        let lines = lines(shape);
        g.throughput(Throughput::Elements(lines.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                for l in &lines {
                    black_box(Event::decode(black_box(l)).ok());
                }
            });
        });
    }
    g.finish();
}

fn events() -> Vec<Event> {
    lines(Shape::Engine29)
        .iter()
        .filter_map(|l| Event::decode(l).ok())
        .collect()
}

fn metrics_update(c: &mut Criterion) {
    let events = events();
    let mut g = c.benchmark_group("metrics");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("tracker-apply", |b| {
        let m = Arc::new(Metrics::new(&[]).expect("metrics"));
        let mut t = Tracker::new(m, Duration::from_secs(3600));
        b.iter(|| {
            for e in &events {
                t.apply(black_box(e));
            }
        });
    });
    g.finish();
}

fn rule_matching(c: &mut Criterion) {
    let events = events();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/rules-20.yml");
    let registry = prometheus::Registry::new();
    let loaded =
        Loaded::start(std::path::Path::new(path), &registry, Default::default()).expect("rules");
    let mut reactor = Reactor::keeping(
        loaded.subscribe(),
        loaded.metrics.clone(),
        Origin::offline("bench"),
    );
    let mut g = c.benchmark_group("rules");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("match-20-rules", |b| {
        b.iter(|| {
            for e in &events {
                reactor.on_event(black_box(e).clone());
                for fire in reactor.fired() {
                    black_box(fire);
                }
            }
        });
    });
    g.finish();
}

fn template_rendering(c: &mut Criterion) {
    let events: Vec<Arc<Event>> = events().into_iter().take(1000).map(Arc::new).collect();
    let argv = Template::parse("Docker container %%actor.name%% (%%actor.com.docker.compose.service%%): %%action%% on %%host%%")
        .expect("template");
    let payload = Template::parse("%%payload%%").expect("template");
    let mut g = c.benchmark_group("template");
    g.throughput(Throughput::Elements(events.len() as u64));
    // "markdown" and "html": the text template as notify renders it for Discord and Telegram.
    for (name, t, escape) in [
        ("text", &argv, Escape::None),
        ("payload", &payload, Escape::None),
        ("markdown", &argv, Escape::Markdown),
        ("html", &argv, Escape::Html),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                for e in &events {
                    let ctx = Context {
                        events: std::slice::from_ref(e),
                        rule: "r",
                        host: "h",
                        engine: "h",
                        opened_by: None,
                        looked_up: Default::default(),
                        condition: None,
                    };
                    black_box(t.render_escaped(&ctx, 1 << 20, escape));
                }
            });
        });
    }
    g.finish();
}

/// A scrape's text of 10,000 containers' series (the bench script's scrape figure without the
/// HTTP side), written into chunks that are dropped.
fn scrape_encoding(c: &mut Criterion) {
    // `cargo test --all-targets` runs this once, unoptimized, as a smoke test: a tenth of it.
    let scale = if cfg!(debug_assertions) { 10 } else { 1 };
    let mut text = Vec::new();
    generate(
        &Spec {
            events: 400_000 / scale,
            containers: 10_000 / scale as usize,
            ..Spec::default()
        },
        &mut text,
    )
    .expect("generate");
    let m = Arc::new(Metrics::new(&[]).expect("metrics"));
    let mut t = Tracker::new(m.clone(), Duration::from_secs(3600));
    for l in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        if let Ok(e) = Event::decode(l) {
            t.apply(&e);
        }
    }
    let mut bytes = 0;
    m.encode_chunks(&mut Vec::new(), &mut |c| {
        bytes += c.len();
        true
    });
    let mut g = c.benchmark_group("scrape");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("encode-10k-containers", |b| {
        b.iter(|| {
            let mut out = Vec::new();
            m.encode_chunks(&mut out, &mut |c| {
                black_box(&c);
                c.clear();
                true
            });
            black_box(out);
        });
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1)).sample_size(20);
    targets = decode, metrics_update, rule_matching, template_rendering, scrape_encoding
}
criterion_main!(benches);
