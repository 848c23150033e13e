//! Wiring: builds the parts, spawns the tasks, owns shutdown and the drain.
//!
//! The HTTP server comes up first, so that `/-/healthy` answers and `/-/ready` says "not yet"
//! while the engine is still out of reach; the engine side retries until it gets through.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::actions::{self, Dry, Executor, Reactor, RuleMetrics};
use crate::cli::Cli;
use crate::docker::endpoint::Endpoint;
use crate::docker::state::{Position, Saved, StateFile};
use crate::docker::stream::{INSPECT_QUEUE, MAX_BACKOFF, Watch, backoff, spawn_inspector};
use crate::docker::{ContainerSnapshot, Engine, EngineError, format_since};
use crate::metrics::{Metrics, Tracker};
use crate::rules::{self, Rules};
use crate::server::{self, AppState};

/// How long shutdown waits for tasks to finish before giving up on them.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let cert_path = cli
        .docker_cert_path
        .clone()
        .unwrap_or_else(default_cert_path);
    let endpoint = Endpoint::parse(&cli.docker_host, cli.tls_verify(), &cert_path)?;
    let metrics = Arc::new(Metrics::new(&cli.container_labels)?);
    let path = &cli.telemetry_path;
    if !path.starts_with('/') || ["/", "/-/healthy", "/-/ready"].contains(&path.as_str()) {
        anyhow::bail!(
            "--web.telemetry-path {path:?} must start with / and differ from /, /-/healthy and /-/ready"
        );
    }
    let rules = match &cli.config {
        Some(path) => {
            let (loaded, rule_metrics) = actions::load_rules(path, &metrics.registry)?;
            tracing::info!(config = %path.display(), rules = loaded.rules.len(), dry_run = cli.dry_run, "rules loaded");
            let (tx, rx) = watch::channel(Arc::new(loaded));
            Some(RulesSetup {
                tx,
                rx,
                metrics: rule_metrics,
            })
        }
        None => None,
    };
    let web = load_web_config(&cli)?;
    let listener = bind(&cli.listen_address).await?;
    tracing::info!(
        address = %listener.local_addr()?,
        path = %path,
        version = env!("CARGO_PKG_VERSION"),
        web = %web.summary(),
        "serving metrics"
    );

    let cancel = CancellationToken::new();
    let tasks = TaskTracker::new();
    tasks.spawn(cancel_on_signal(cancel.clone()));
    match (&rules, &cli.config) {
        (Some(r), Some(path)) => {
            tasks.spawn(reload_on_sighup(
                path.clone(),
                r.tx.clone(),
                r.metrics.clone(),
                metrics.clone(),
                cancel.clone(),
            ));
        }
        // SIGHUP's default action ends the process; a `systemctl reload` must not.
        _ => {
            tasks.spawn(ignore_sighup(cancel.clone()));
        }
    }
    tasks.spawn(watch_engine(
        endpoint,
        metrics.clone(),
        rules,
        cli.clone(),
        cancel.clone(),
        tasks.clone(),
    ));

    let app = server::router(AppState {
        metrics,
        telemetry_path: path.clone(),
        scrapes: server::ScrapeLimits::default(),
        auth: web.auth,
    });
    let served = server::serve(listener, app, web.tls, cancel.clone(), DRAIN_TIMEOUT)
        .await
        .context("serving HTTP");
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

/// The `--web.config.file`, checked (every problem with its place), or plain HTTP without one.
pub fn load_web_config(cli: &Cli) -> anyhow::Result<crate::web::WebConfig> {
    match &cli.web_config_file {
        Some(file) => Ok(crate::web::load(file)?),
        None => Ok(crate::web::WebConfig {
            tls: None,
            auth: None,
        }),
    }
}

fn default_cert_path() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
        .join(".docker")
}

/// Binds the listen address; `:PORT` means every interface, IPv6 and IPv4 where the host has
/// IPv6, IPv4 alone where it does not.
pub async fn bind(addr: &str) -> anyhow::Result<TcpListener> {
    let ctx = || format!("cannot listen on --web.listen-address {addr:?}");
    if let Some(port) = addr.strip_prefix(':') {
        let port: u16 = port
            .parse()
            .with_context(|| format!("{}: not a port number", ctx()))?;
        return match TcpListener::bind(("::", port)).await {
            Ok(l) => Ok(l),
            Err(_) => TcpListener::bind(("0.0.0.0", port)).await.with_context(ctx),
        };
    }
    TcpListener::bind(addr).await.with_context(ctx)
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

/// The rules, when `--config` is given: the current set (reloads send a new one) and the
/// rules layer's metrics.
struct RulesSetup {
    tx: watch::Sender<Arc<Rules>>,
    rx: watch::Receiver<Arc<Rules>>,
    metrics: Arc<RuleMetrics>,
}

/// SIGHUP reloads the rules file. A file with problems keeps the old rules, logs every problem
/// and sets docker_events_exporter_config_last_reload_successful to 0.
async fn reload_on_sighup(
    path: PathBuf,
    tx: watch::Sender<Arc<Rules>>,
    rule_metrics: Arc<RuleMetrics>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::error!("cannot install the SIGHUP handler; the rules config will not reload");
        return;
    };
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = hup.recv() => {}
        }
        let new = match rules::load(&path) {
            Ok(new) => new,
            Err(errors) => {
                for e in &errors.0 {
                    tracing::error!(problem = %e, "rules config has a problem");
                }
                tracing::error!(config = %path.display(), problems = errors.0.len(), "reload failed; keeping the previous rules");
                rule_metrics.loaded(false);
                continue;
            }
        };
        let old = tx.borrow().clone();
        for c in old.metric_collectors() {
            let _ = metrics.registry.unregister(Box::new(c.clone()));
        }
        let registered: Result<(), prometheus::Error> = new
            .metric_collectors()
            .try_for_each(|c| metrics.registry.register(Box::new(c.clone())));
        if let Err(e) = registered {
            for c in new.metric_collectors() {
                let _ = metrics.registry.unregister(Box::new(c.clone()));
            }
            for c in old.metric_collectors() {
                let _ = metrics.registry.register(Box::new(c.clone()));
            }
            tracing::error!(config = %path.display(), error = %e, "reload failed: a metric action cannot be registered; keeping the previous rules");
            rule_metrics.loaded(false);
            continue;
        }
        rule_metrics.init(&new);
        rule_metrics.loaded(true);
        tracing::info!(config = %path.display(), rules = new.rules.len(), "rules reloaded");
        let _ = tx.send(Arc::new(new));
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
async fn prepare(endpoint: &Endpoint) -> Result<Start, EngineError> {
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
            tracing::warn!(position = %format_since(saved.position_nano), "the engine no longer holds the events since the saved position (it restarted, or more than 256 events passed): events from then until now may be lost; the gauges are set from the engine's containers");
        }
        Err(e) => {
            tracing::warn!(error = %format!("{:#}", anyhow::Error::from(e)), "could not ask the engine which events it holds; resuming anyway")
        }
    }
    tracing::info!(since = %format_since(saved.position_nano), "resuming from the saved position");
    saved
}

async fn watch_engine(
    endpoint: Endpoint,
    metrics: Arc<Metrics>,
    rules: Option<RulesSetup>,
    cli: Cli,
    cancel: CancellationToken,
    tasks: TaskTracker,
) {
    let mut delays = backoff();
    let start = loop {
        let attempt = tokio::select! {
            _ = cancel.cancelled() => return,
            r = prepare(&endpoint) => r,
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

    let (inspect_tx, inspect_rx) = mpsc::channel(INSPECT_QUEUE);
    let (answer_tx, answer_rx) = mpsc::channel(INSPECT_QUEUE);
    let state_file = cli.state_file.as_deref().map(StateFile::new);
    let resume = resume_point(state_file.as_ref(), &start, &metrics).await;
    let since_nano = resume.position_nano;
    let mut tracker = Tracker::new(metrics.clone(), cli.series_ttl, Some(inspect_tx));
    for c in &start.containers {
        tracker.seed(c, since_nano);
    }
    spawn_inspector(
        start.engine.clone(),
        inspect_rx,
        answer_tx,
        &tasks,
        cancel.clone(),
    );
    let host: Arc<str> = start.host.into();
    let reactor = rules.map(|r| {
        let (queue_tx, queue_rx) = mpsc::channel(cli.rules_queue_size);
        let executor = Arc::new(Executor::new(
            r.metrics.clone(),
            if cli.dry_run { Dry::Log } else { Dry::Off },
            host.clone(),
            Some(start.engine.clone()),
        ));
        tasks.spawn(actions::dispatch(
            queue_rx,
            executor,
            cli.rules_workers,
            tasks.clone(),
            cancel.clone(),
        ));
        Reactor::new(r.rx, queue_tx, r.metrics, host.clone())
    });
    Watch {
        engine: start.engine,
        tracker,
        reactor,
        metrics,
        answers: answer_rx,
        position: Position::new(resume),
        state_file,
        ping_interval: cli.ping_interval,
        series_ttl: cli.series_ttl,
    }
    .run(cancel)
    .await;
}
