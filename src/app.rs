//! Wiring: builds the parts, spawns the tasks, owns shutdown and the drain.
//!
//! The HTTP server comes up first, so that `/-/healthy` answers and `/-/ready` says "not yet"
//! while the engine is still out of reach; the engine side retries until it gets through.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::actions::{self, Dry, Executor, Loaded, Reactor};
use crate::docker::state::{Position, Saved, StateFile};
use crate::docker::stream::{MAX_BACKOFF, Watch, backoff};
use crate::docker::{ContainerSnapshot, Engine, EngineError, format_since};
use crate::metrics::{Metrics, Tracker};
use crate::pipeline::Pipeline;
use crate::server::Server;
use crate::settings::{EngineSettings, Settings};

/// How long shutdown waits for tasks to finish before giving up on them.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(settings: Settings, engine: EngineSettings) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new(&settings.metrics.container_labels)?);
    let rules = match &settings.rules.config {
        Some(path) => {
            let loaded = Loaded::start(path, &metrics.registry)?;
            tracing::info!(config = %path.display(), rules = loaded.current().rules.rules.len(), dry_run = settings.rules.dry_run, "rules loaded");
            Some(Arc::new(loaded))
        }
        None => None,
    };
    let server = Server::bind(&settings.web, metrics.clone()).await?;
    tracing::info!(
        address = %server.address(),
        path = %settings.web.telemetry_path,
        version = env!("CARGO_PKG_VERSION"),
        web = %settings.web.summary(),
        "serving metrics"
    );

    let cancel = CancellationToken::new();
    let tasks = TaskTracker::new();
    tasks.spawn(cancel_on_signal(cancel.clone()));
    match &rules {
        Some(r) => {
            tasks.spawn(reload_on_sighup(r.clone(), cancel.clone()));
        }
        // SIGHUP's default action ends the process; a `systemctl reload` must not.
        None => {
            tasks.spawn(ignore_sighup(cancel.clone()));
        }
    }
    tasks.spawn(watch_engine(
        engine,
        settings,
        metrics,
        rules,
        cancel.clone(),
        tasks.clone(),
    ));

    let served = server.serve(cancel.clone(), DRAIN_TIMEOUT).await;
    cancel.cancel();
    tasks.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(timeout = ?DRAIN_TIMEOUT, "tasks did not finish in time; exiting anyway");
    }
    tracing::info!("stopped");
    served
}

async fn cancel_on_signal(cancel: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (mut int, mut term) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(i), Ok(t)) => (i, t),
        _ => {
            tracing::error!("cannot install signal handlers; SIGINT and SIGTERM will not drain");
            return;
        }
    };
    let name = tokio::select! {
        _ = cancel.cancelled() => return,
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    };
    tracing::info!(signal = name, "shutting down");
    cancel.cancel();
}

/// SIGHUP reloads the rules file (see [`Loaded::reload`]).
async fn reload_on_sighup(rules: Arc<Loaded>, cancel: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::error!("cannot install the SIGHUP handler; the rules config will not reload");
        return;
    };
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = hup.recv() => rules.reload(),
        }
    }
}

async fn ignore_sighup(cancel: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = hup.recv() => tracing::info!("SIGHUP: there is no --config to reload"),
        }
    }
}

/// What start-up learns before subscribing.
struct Start {
    engine: Engine,
    since_nano: i64,
    host: String,
    engine_id: String,
    containers: Vec<ContainerSnapshot>,
}

/// Take the engine's time first, then list and inspect the containers, so that every event
/// after the snapshot is replayed by the subscription from that time.
async fn prepare(endpoint: &crate::docker::endpoint::Endpoint) -> Result<Start, EngineError> {
    let engine = Engine::connect(endpoint.clone()).await?;
    let (info, containers) = engine.snapshot().await?;
    Ok(Start {
        engine,
        since_nano: info.now_nano,
        host: info.name,
        engine_id: info.id,
        containers,
    })
}

/// Where the subscription starts: the saved position if the state file has one for this
/// engine, else the engine's present. Resuming from a position the engine no longer holds
/// (it restarted, or more than its 256 buffered events passed) is a gap: counted and logged.
/// The snapshot taken at start-up sets every gauge right either way.
async fn resume_point(state_file: Option<&StateFile>, start: &Start, metrics: &Metrics) -> Saved {
    let present = Saved {
        engine_id: start.engine_id.clone(),
        position_nano: start.since_nano,
        lines_at_position: Vec::new(),
    };
    let Some(file) = state_file else {
        return present;
    };
    let saved = match file.load() {
        Ok(Some(saved)) => saved,
        Ok(None) => {
            tracing::info!(state_file = %file.path().display(), "no saved position yet; starting from the present");
            return present;
        }
        Err(e) => {
            tracing::warn!(error = %e, "starting from the present");
            return present;
        }
    };
    if saved.engine_id != start.engine_id {
        tracing::warn!(state_file = %file.path().display(), saved_engine = %saved.engine_id, engine = %start.engine_id, "the saved position is another engine's; starting from the present");
        return present;
    }
    if saved.position_nano > start.since_nano {
        tracing::warn!(position = %format_since(saved.position_nano), engine_time = %format_since(start.since_nano), "the saved position is in the engine's future (its clock went back?); starting from the present");
        return present;
    }
    match start.engine.holds_events_until(saved.position_nano).await {
        Ok(true) => {}
        Ok(false) => {
            metrics.stream_gaps.inc();
            tracing::warn!(position = %format_since(saved.position_nano), "the engine no longer holds the events since the saved position (it restarted, more than 256 events passed, or its event log was cut): events from then until now may be lost; the gauges are set from the engine's containers");
        }
        Err(e) => {
            tracing::warn!(error = %format!("{:#}", anyhow::Error::from(e)), "could not ask the engine which events it holds; resuming anyway")
        }
    }
    tracing::info!(since = %format_since(saved.position_nano), "resuming from the saved position");
    saved
}

async fn watch_engine(
    engine: EngineSettings,
    settings: Settings,
    metrics: Arc<Metrics>,
    rules: Option<Arc<Loaded>>,
    cancel: CancellationToken,
    tasks: TaskTracker,
) {
    let endpoint = &engine.endpoint;
    let mut delays = backoff();
    let start = loop {
        let attempt = tokio::select! {
            _ = cancel.cancelled() => return,
            r = prepare(endpoint) => r,
        };
        match attempt {
            Ok(s) => break s,
            Err(e) => {
                let wait = delays.next().unwrap_or(MAX_BACKOFF);
                tracing::warn!(endpoint = %endpoint, error = %format!("{:#}", anyhow::Error::from(e)), retry_in = ?wait, "cannot reach the Docker Engine");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    };
    let v = start.engine.version();
    tracing::info!(
        endpoint = %endpoint,
        engine_version = %v.version,
        engine_api_version = %v.api_version,
        api_version = start.engine.api_version(),
        containers = start.containers.len(),
        "connected to the Docker Engine"
    );
    metrics
        .engine_info
        .with_label_values(&[&v.version, &v.api_version, &v.os, &v.arch])
        .set(1);

    let state_file = engine.state_file.as_deref().map(StateFile::new);
    let resume = resume_point(state_file.as_ref(), &start, &metrics).await;
    let since_nano = resume.position_nano;
    let ttl = settings.metrics.series_ttl;
    let mut tracker = Tracker::new(metrics.clone(), ttl).asking_inspects();
    for c in &start.containers {
        tracker.seed(c, since_nano);
    }
    let host: Arc<str> = start.host.into();
    let reactor = rules.map(|r| {
        let (queue_tx, queue_rx) = mpsc::channel(settings.rules.queue_size);
        let dry = if settings.rules.dry_run {
            Dry::Log
        } else {
            Dry::Off
        };
        let executor = Arc::new(Executor::new(
            r.metrics.clone(),
            dry,
            host.clone(),
            Some(start.engine.clone()),
        ));
        tasks.spawn(actions::dispatch(
            queue_rx,
            executor,
            settings.rules.workers,
            tasks.clone(),
            cancel.clone(),
        ));
        Reactor::new(r.subscribe(), queue_tx, r.metrics.clone(), host.clone())
    });
    Watch {
        engine: start.engine,
        consumer: Pipeline::new(metrics, tracker, reactor),
        position: Position::new(resume),
        state_file,
        ping_interval: engine.ping_interval,
        // Expired series go within a quarter of their TTL.
        tick_interval: (ttl / 4).clamp(Duration::from_millis(100), Duration::from_secs(30)),
    }
    .run(&tasks, cancel)
    .await;
}
