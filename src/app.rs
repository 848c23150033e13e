//! Wiring: builds the parts, spawns the tasks, owns shutdown and the drain.
//!
//! The HTTP server comes up first, so that `/-/healthy` answers and `/-/ready` says "not yet"
//! while the engine is still out of reach; the engine side retries until it gets through.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use crate::actions::{self, Dry, Executor, Fire, Loaded, Mutes, Origin, Reactor};
use crate::docker::state::{Position, Saved, StateFile};
use crate::docker::stream::{MAX_BACKOFF, Watch, backoff};
use crate::docker::{ContainerSnapshot, Engine, EngineError, format_since};
use crate::history::Histories;
use crate::metrics::{EngineMetrics, Metrics, Tracker};
use crate::pipeline::Pipeline;
use crate::server::Server;
use crate::settings::{EngineSettings, Settings, WatchedEngine};
use crate::sinks::Sinks;

/// How long shutdown waits for tasks to finish before giving up on them.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(settings: Settings, engines: EngineSettings) -> anyhow::Result<()> {
    let several = engines.engines.len() > 1;
    let metrics = Arc::new(Metrics::for_engines(
        &settings.metrics.container_labels,
        several,
    )?);
    let rules = match &settings.rules.config {
        Some(path) => {
            let loaded = Loaded::start(path, &metrics.registry, metrics.firing_now.clone())?;
            tracing::info!(config = %path.display(), rules = loaded.current().rules.rules.len(), dry_run = settings.rules.dry_run, "rules loaded");
            Some(Arc::new(loaded))
        }
        None => None,
    };
    let histories = Histories::new(settings.history.clone(), several, &metrics.registry)?;
    let sinks = Sinks::new(settings.sinks, several, &metrics.registry)?;
    if let Some(dir) = &settings.history.dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("--history.dir {}: cannot make it", dir.display()))?;
    }
    let state_file = engines.state_file.as_deref().map(|path| {
        let file = StateFile::new(path);
        match file.load() {
            Ok(0) => {
                tracing::info!(state_file = %path.display(), "no saved position yet; starting from the present");
            }
            Ok(n) => tracing::debug!(state_file = %path.display(), positions = n, "state file read"),
            Err(e) => tracing::warn!(error = %e, "starting from the present"),
        }
        Arc::new(file)
    });
    let mutes = Arc::new(Mutes::load(state_file.clone()));
    let server = Server::bind(
        &settings.web,
        metrics.clone(),
        histories.clone(),
        mutes.clone(),
    )
    .await?;
    tracing::info!(
        address = %server.address(),
        path = %settings.web.telemetry_path,
        version = env!("CARGO_PKG_VERSION"),
        web = %settings.web.summary(),
        engines = engines.engines.len(),
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
    // One action queue and one pool of workers for every engine's rules.
    let rules = rules.map(|r| {
        let (queue_tx, queue_rx) = mpsc::channel(settings.rules.queue_size);
        let dry = if settings.rules.dry_run {
            Dry::Log
        } else {
            Dry::Off
        };
        let executor = Arc::new(Executor::new(r.metrics.clone(), dry));
        tasks.spawn(actions::dispatch(
            queue_rx,
            executor,
            settings.rules.workers,
            tasks.clone(),
            cancel.clone(),
        ));
        (r, queue_tx)
    });
    let shared = Arc::new(Shared {
        metrics,
        histories: histories.clone(),
        sinks,
        rules,
        state_file,
        mutes,
        claimed: Mutex::new(Vec::new()),
        given: engines
            .engines
            .iter()
            .filter_map(|e| e.name.clone())
            .collect(),
        series_ttl: settings.metrics.series_ttl,
        ping_interval: engines.ping_interval,
    });
    for engine in engines.engines {
        tasks.spawn(watch_engine(
            engine,
            shared.clone(),
            cancel.clone(),
            tasks.clone(),
        ));
    }

    let served = server.serve(cancel.clone(), DRAIN_TIMEOUT).await;
    cancel.cancel();
    tasks.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(timeout = ?DRAIN_TIMEOUT, "tasks did not finish in time; exiting anyway");
    }
    // After the streams: every event they applied reaches the disk.
    histories.close();
    tracing::info!("stopped");
    served
}

/// What every engine's watch shares.
struct Shared {
    metrics: Arc<Metrics>,
    histories: Arc<Histories>,
    sinks: Sinks,
    /// The rules, and the queue their firings go on.
    rules: Option<(Arc<Loaded>, mpsc::Sender<Fire>)>,
    state_file: Option<Arc<StateFile>>,
    /// The mutes in force, read by every engine's rules.
    mutes: Arc<Mutes>,
    /// The engines answering now, as (name, identity): no two names alike, and no engine
    /// watched twice (under two addresses).
    claimed: Mutex<Vec<(Arc<str>, Option<String>)>>,
    /// The names given with `NAME=URL`: an unnamed engine's own name must be none of them.
    given: Vec<String>,
    series_ttl: Duration,
    ping_interval: Duration,
}

impl Shared {
    /// The name the engine is shown by: the one it was given, else its own, else (its own is
    /// another's already) its address. `Err` names the engine it is the same as.
    fn claim(
        &self,
        given: Option<&str>,
        own: &str,
        address: &str,
        identity: Option<&str>,
    ) -> Result<Arc<str>, Arc<str>> {
        let mut claimed = self.claimed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((twin, _)) = claimed
            .iter()
            .find(|(_, id)| identity.is_some() && id.as_deref() == identity)
        {
            return Err(twin.clone());
        }
        let taken =
            |n: &str| claimed.iter().any(|(c, _)| &**c == n) || self.given.iter().any(|g| g == n);
        let name: Arc<str> = match given {
            Some(n) => n.into(),
            None if !taken(own) && !own.is_empty() => own.into(),
            None => {
                tracing::warn!(
                    own_name = own,
                    shown_as = address,
                    "another engine has this engine's name; shown by its address (name it with --docker.host NAME=URL)"
                );
                address.into()
            }
        };
        claimed.push((name.clone(), identity.map(str::to_owned)));
        Ok(name)
    }
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
    /// Tells engines apart where their IDs do not (the dockerds of one machine, cloned
    /// machines): the ID, the host name and the storage root; none for an engine (or a proxy
    /// in front of one) that gives no ID.
    twin_key: Option<String>,
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
        twin_key: (!info.id.is_empty())
            .then(|| format!("{}|{}|{}", info.id, info.name, info.root_dir)),
        host: info.name,
        engine_id: info.id,
        containers,
    })
}

/// Where the subscription starts: the saved position if the state file has one for this
/// engine, else the engine's present. Resuming from a position the engine no longer holds
/// (it restarted, or more than its 256 buffered events passed) is a gap: counted and logged.
/// The snapshot taken at start-up sets every gauge right either way.
/// `key` is the engine's entry in the state file: its name if it was given one, else its
/// address.
async fn resume_point(
    state_file: Option<&StateFile>,
    key: &str,
    start: &Start,
    metrics: &EngineMetrics,
) -> Saved {
    let present = Saved {
        engine: key.to_owned(),
        engine_id: start.engine_id.clone(),
        position_nano: start.since_nano,
        lines_at_position: Vec::new(),
        open_firings: Vec::new(),
    };
    let Some(file) = state_file else {
        return present;
    };
    let Some(saved) = file.position_of(key) else {
        tracing::info!(state_file = %file.path().display(), "no saved position for this engine; starting from the present");
        return present;
    };
    if saved.engine_id != start.engine_id {
        tracing::warn!(state_file = %file.path().display(), saved_engine = %saved.engine_id, engine_id = %start.engine_id, "the saved position is another engine's; starting from the present");
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

/// One engine, on its own: connects (retrying with backoff), resumes, and streams until
/// `cancel`. Nothing it meets (a refusal, a timeout, an engine that restarts) reaches the
/// other engines.
async fn watch_engine(
    engine: WatchedEngine,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    tasks: TaskTracker,
) {
    let endpoint = &engine.endpoint;
    let address = endpoint.to_string();
    // Its name if it was given one, else its address: what the state file keeps its position
    // under, and (until it answers with a name of its own) what it is shown by.
    let key = engine.name.clone().unwrap_or_else(|| address.clone());
    let mut metrics = shared.metrics.engine(&key);
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
                tracing::warn!(engine = %key, endpoint = %endpoint, error = %format!("{:#}", anyhow::Error::from(e)), retry_in = ?wait, "cannot reach the Docker Engine");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    };
    let name = match shared.claim(
        engine.name.as_deref(),
        &start.host,
        &address,
        start.twin_key.as_deref(),
    ) {
        Ok(name) => name,
        Err(twin) => {
            tracing::error!(endpoint = %endpoint, same_as = %twin, engine_id = %start.engine_id, "this is an engine watched already; watching it once");
            metrics.forget();
            return;
        }
    };
    if engine.name.is_none() && shared.metrics.several_engines {
        metrics = metrics.renamed(&name);
    }
    // From here on, every line this engine's parts log names it.
    let span = tracing::info_span!("engine", engine = %name);
    follow(start, &key, name, metrics, &shared, cancel, tasks)
        .instrument(span)
        .await;
}

/// The named engine's subscription from its resume point on.
async fn follow(
    start: Start,
    key: &str,
    name: Arc<str>,
    metrics: EngineMetrics,
    shared: &Shared,
    cancel: CancellationToken,
    tasks: TaskTracker,
) {
    let endpoint = start.engine.endpoint();
    let v = start.engine.version();
    tracing::info!(
        endpoint = %endpoint,
        engine_version = %v.version,
        engine_api_version = %v.api_version,
        api_version = start.engine.api_version(),
        containers = start.containers.len(),
        "connected to the Docker Engine"
    );
    metrics.engine_info(&v.version, &v.api_version, &v.os, &v.arch);

    let state_file = shared.state_file.clone();
    let resume = resume_point(state_file.as_deref(), key, &start, &metrics).await;
    let since_nano = resume.position_nano;
    let ttl = shared.series_ttl;
    let mut tracker = Tracker::for_engine(metrics, ttl).asking_inspects();
    for c in &start.containers {
        tracker.seed(c, since_nano);
    }
    // From the state file's position, the engine sends again what the history may hold.
    let resumed = (since_nano != start.since_nano).then_some(since_nano);
    let history = match shared.histories.engine(key, name.clone(), resumed) {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::error!(error = %e, "this engine's events are not kept in the history");
            None
        }
    };
    if let Some(folder) = history.as_ref().and_then(|h| h.on_disk()) {
        let origin = crate::sinks::Origin {
            engine: name.to_string(),
            host: start.host.clone(),
            engine_id: start.engine_id.clone(),
        };
        shared.sinks.start_engine(&origin, &folder, &tasks, &cancel);
    }
    let origin = Arc::new(Origin {
        engine: name,
        host: start.host.into(),
        api: Some(start.engine.clone()),
    });
    let reactor = shared.rules.as_ref().map(|(r, queue)| {
        let mut reactor = Reactor::new(r.subscribe(), queue.clone(), r.metrics.clone(), origin)
            .with_mutes(shared.mutes.clone());
        reactor.restore(&resume.open_firings);
        reactor.seed(&start.containers);
        reactor
    });
    Watch {
        engine: start.engine,
        consumer: Pipeline::new(tracker, reactor).with_history(history),
        position: Position::new(resume),
        state_file,
        ping_interval: shared.ping_interval,
        // Expired series go within a quarter of their TTL, and open alerts are sent again
        // within a second of their resend interval.
        tick_interval: (ttl / 4).clamp(Duration::from_millis(100), Duration::from_secs(1)),
    }
    .run(&tasks, cancel)
    .await;
}
