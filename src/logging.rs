//! Tracing set-up: logfmt or JSON lines on standard error.

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::cli::{LogFormat, LogLevel};

/// Installs the global subscriber. Our own crate logs at `level`; dependencies only from `warn`
/// up, so that `--log.level debug` shows our decisions, not hyper's connection chatter.
pub fn init(level: LogLevel, format: LogFormat) {
    let level = match level {
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Trace => LevelFilter::TRACE,
    };
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::WARN.min(level).into())
        .parse_lossy(format!("docker_events_exporter={level}"));
    let layer = match format {
        // A span's fields (`engine=`) are on each line; its name and path would say nothing.
        LogFormat::Logfmt => tracing_logfmt::builder()
            .with_span_name(false)
            .with_span_path(false)
            .layer()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    // A second init (only possible in tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init();
}
