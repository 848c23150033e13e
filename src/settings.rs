//! The checked settings: what the flags ask for, checked once and split by the part that uses
//! it. The daemon, `replay` (and its `--serve`) and `check-config` all build [`Settings`] first,
//! so a bad flag is one line naming it and exit 1, whichever command was given; the daemon
//! also builds [`EngineSettings`], the only part that needs the engine's address.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::Cli;
use crate::docker::context;
use crate::docker::endpoint::Endpoint;
pub use crate::history::HistorySettings;
use crate::server::WebSettings;
use crate::server::web_config::WebConfig;

/// Paths the server answers itself, which the metrics cannot take.
const RESERVED_PATHS: [&str; 3] = ["/", "/-/healthy", "/-/ready"];

/// Folders of paths the server answers itself (the status page's assets, the history's API).
const RESERVED_FOLDERS: [&str; 2] = ["/api/", "/static/"];

/// Every part's settings but the engine's.
pub struct Settings {
    pub web: WebSettings,
    pub metrics: MetricsSettings,
    pub rules: RulesSettings,
    pub history: HistorySettings,
    /// `--sink`, checked; only with `--history.dir`, which they read.
    pub sinks: Vec<crate::sinks::SinkSpec>,
}

/// The metrics and their labels.
#[derive(Debug)]
pub struct MetricsSettings {
    /// Docker labels exported as `label_<KEY>`, checked: none empty, no two the same label.
    pub container_labels: Vec<String>,
    pub series_ttl: Duration,
}

/// The rules and their actions.
#[derive(Debug)]
pub struct RulesSettings {
    pub config: Option<PathBuf>,
    pub dry_run: bool,
    pub queue_size: usize,
    pub workers: usize,
}

/// The engine side of the daemon: the engines to watch, and what they share.
#[derive(Debug)]
pub struct EngineSettings {
    /// One or more, in the order given; no two with the same name or address.
    pub engines: Vec<WatchedEngine>,
    pub ping_interval: Duration,
    /// One file for every engine's position.
    pub state_file: Option<PathBuf>,
}

/// One engine to watch.
#[derive(Debug)]
pub struct WatchedEngine {
    /// The name given with `NAME=URL`; without one, the engine's own, once it answers.
    pub name: Option<String>,
    pub endpoint: Endpoint,
}

impl Settings {
    pub fn new(cli: &Cli) -> anyhow::Result<Self> {
        let path = &cli.telemetry_path;
        if !path.starts_with('/')
            || RESERVED_PATHS.contains(&path.as_str())
            || RESERVED_FOLDERS.iter().any(|f| path.starts_with(f))
        {
            anyhow::bail!(
                "--web.telemetry-path {path:?} must start with /, differ from {} and be outside {}",
                list(&RESERVED_PATHS),
                list(&RESERVED_FOLDERS)
            );
        }
        let retention = crate::history::Retention::parse(&cli.history_retention)
            .map_err(|e| anyhow::anyhow!("--history.retention {:?}: {e}", cli.history_retention))?;
        let config = match &cli.web_config_file {
            Some(file) => crate::server::web_config::load(file)?,
            None => WebConfig {
                tls: None,
                auth: None,
            },
        };
        let container_labels = crate::metrics::checked_label_keys(&cli.container_labels)?;
        let env = |k: &str| std::env::var(k).ok();
        let sinks = cli
            .sinks
            .iter()
            .map(|s| crate::sinks::SinkSpec::parse(s, &env))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(s) = sinks.first()
            && cli.history_dir.is_none()
        {
            anyhow::bail!(
                "--sink {} needs --history.dir: a sink ships the events kept there, from where it left off",
                s.shown
            );
        }
        Ok(Self {
            web: WebSettings {
                listen_address: cli.listen_address.clone(),
                telemetry_path: path.clone(),
                config,
            },
            metrics: MetricsSettings {
                container_labels,
                series_ttl: cli.series_ttl,
            },
            rules: RulesSettings {
                config: cli.config.clone(),
                dry_run: cli.dry_run,
                queue_size: cli.rules_queue_size,
                workers: cli.rules_workers,
            },
            history: HistorySettings {
                size: cli.history_size,
                dir: cli.history_dir.clone(),
                retention,
            },
            sinks,
        })
    }
}

impl EngineSettings {
    pub fn new(cli: &Cli) -> anyhow::Result<Self> {
        let (host_values, context_values) = chosen(cli)?;
        let mut hosts: Vec<(Option<String>, String, Option<PathBuf>)> = Vec::new();
        let mut add = |flag: &str, name: Option<&str>, url: String, tls_dir: Option<PathBuf>| {
            if let Some(name) = name
                && hosts.iter().any(|(n, _, _)| n.as_deref() == Some(name))
            {
                anyhow::bail!("{flag}: the name {name:?} is given to two engines");
            }
            hosts.push((name.map(str::to_owned), url, tls_dir));
            Ok(())
        };
        for value in &host_values {
            let (name, url) = named("--docker.host", value, "URL")?;
            add("--docker.host", name, url.to_owned(), None)?;
        }
        let store = context::config_dir();
        for value in &context_values {
            let (name, ctx) = named("--docker.context", value, "CONTEXT")?;
            if ctx == context::DEFAULT {
                add("--docker.context", name, default_socket(), None)?;
                continue;
            }
            let endpoint = context::resolve(&store, ctx)?;
            tracing::info!(context = ctx, host = %endpoint.host, tls = endpoint.tls_dir.is_some(), "the docker context's engine");
            add("--docker.context", name, endpoint.host, endpoint.tls_dir)?;
        }
        let mut default_certs = None;
        let mut own_certs: Vec<(&str, PathBuf)> = Vec::new();
        for value in &cli.docker_cert_paths {
            match named("--docker.cert-path", value, "DIR")? {
                (None, dir) if default_certs.is_none() => default_certs = Some(PathBuf::from(dir)),
                (None, _) => anyhow::bail!(
                    "--docker.cert-path {value:?}: a second folder for every engine; give the others as NAME=DIR"
                ),
                (Some(name), dir) => {
                    if !hosts.iter().any(|(n, _, _)| n.as_deref() == Some(name)) {
                        let names: Vec<&str> =
                            hosts.iter().filter_map(|(n, _, _)| n.as_deref()).collect();
                        anyhow::bail!(
                            "--docker.cert-path {value:?}: no --docker.host is named {name:?}; named ones: {}",
                            if names.is_empty() {
                                "none".to_owned()
                            } else {
                                names.join(", ")
                            }
                        );
                    }
                    if own_certs.iter().any(|(n, _)| *n == name) {
                        anyhow::bail!("--docker.cert-path: two folders for the engine {name:?}");
                    }
                    own_certs.push((name, PathBuf::from(dir)));
                }
            }
        }
        let default_certs = default_certs.unwrap_or_else(default_cert_path);
        let mut engines: Vec<WatchedEngine> = Vec::new();
        for (name, url, context_tls) in hosts {
            let url = url.as_str();
            let own = own_certs.iter().find(|(n, _)| Some(*n) == name.as_deref());
            // A folder of the engine's own (or its context's TLS material) asks for TLS as
            // plainly as --docker.tls-verify.
            let tls = cli.tls_verify() || own.is_some() || context_tls.is_some();
            let certs = own
                .map(|(_, dir)| dir)
                .or(context_tls.as_ref())
                .unwrap_or(&default_certs);
            let endpoint = Endpoint::parse(url, tls, certs)?.with_batch_window(cli.batch_window);
            if let Some(twin) = engines
                .iter()
                .find(|e| e.endpoint.to_string() == endpoint.to_string())
            {
                anyhow::bail!(
                    "--docker.host {url:?}: {} is watched already{}; give each engine once",
                    endpoint,
                    twin.name
                        .as_deref()
                        .map(|n| format!(" (as {n})"))
                        .unwrap_or_default()
                );
            }
            engines.push(WatchedEngine { name, endpoint });
        }
        Ok(Self {
            engines,
            ping_interval: cli.ping_interval,
            state_file: cli.state_file.clone(),
        })
    }
}

/// The engines to watch, as `--docker.host` and `--docker.context` values, by the docker
/// CLI's precedence: the flags (both, for several engines), else `DOCKER_HOST`, else
/// `DOCKER_CONTEXT`, else the CLI's current context (`docker context use`), else the default
/// socket ([`default_socket`]).
fn chosen(cli: &Cli) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let host_flag = !cli.docker_hosts.is_empty() && !cli.docker_host_from_env;
    let context_flag = !cli.docker_contexts.is_empty() && !cli.docker_context_from_env;
    let hosts = || cli.docker_hosts.clone();
    let contexts = || cli.docker_contexts.clone();
    Ok(match () {
        _ if host_flag || context_flag => (
            if host_flag { hosts() } else { Vec::new() },
            if context_flag { contexts() } else { Vec::new() },
        ),
        _ if !cli.docker_hosts.is_empty() => (hosts(), Vec::new()),
        _ if !cli.docker_contexts.is_empty() => (Vec::new(), contexts()),
        _ => match context::current(&context::config_dir())? {
            Some(current) => {
                tracing::info!(context = %current, "no engine given: watching the docker CLI's current context");
                (Vec::new(), vec![current])
            }
            None => (vec![default_socket()], Vec::new()),
        },
    })
}

/// The engine watched when none is given: the first of these sockets that is there, else the
/// first (whose absence the connection then reports).
pub const DEFAULT_SOCKETS: &str = "/var/run/docker.sock, $XDG_RUNTIME_DIR/docker.sock (rootless Docker), $XDG_RUNTIME_DIR/podman/podman.sock (rootless Podman), /run/podman/podman.sock (Podman as root)";

fn default_socket() -> String {
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(format!("/run/user/{}", nix::unistd::getuid())));
    let chosen = first_socket(&runtime, |p| {
        use std::os::unix::fs::FileTypeExt;
        std::fs::metadata(p).is_ok_and(|m| m.file_type().is_socket())
    });
    let host = format!("unix://{}", chosen.display());
    tracing::info!(host = %host, tried = DEFAULT_SOCKETS, "no engine given: watching the first engine socket there is");
    host
}

/// The first of the default sockets (in `runtime`, the user's runtime folder) that `there`
/// says is there, else the system's.
fn first_socket(runtime: &Path, there: impl Fn(&Path) -> bool) -> PathBuf {
    let system = PathBuf::from("/var/run/docker.sock");
    [
        system.clone(),
        runtime.join("docker.sock"),
        runtime.join("podman/podman.sock"),
        PathBuf::from("/run/podman/podman.sock"),
    ]
    .into_iter()
    .find(|p| there(p))
    .unwrap_or(system)
}

/// `NAME=VALUE` or `VALUE`: a name is what comes before the first `=`, if that holds no `:`
/// or `/` (a URL's or a path's).
fn named<'a>(flag: &str, value: &'a str, what: &str) -> anyhow::Result<(Option<&'a str>, &'a str)> {
    let Some((name, rest)) = value
        .split_once('=')
        .filter(|(n, _)| !n.contains([':', '/']))
    else {
        return Ok((None, value));
    };
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || !name.chars().all(allowed) {
        anyhow::bail!(
            "{flag} {value:?}: the engine name {name:?} must be letters, digits, '.', '_' and '-'; use NAME={what}"
        );
    }
    if rest.is_empty() {
        anyhow::bail!("{flag} {value:?}: no {what} after the name; use NAME={what}");
    }
    Ok((Some(name), rest))
}

fn default_cert_path() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
        .join(".docker")
}

/// `a, b and c`.
fn list(items: &[&str]) -> String {
    match items.split_last() {
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// With no engine given: the system's socket, else rootless Docker's, else rootless
    /// Podman's, else Podman's as root; the system's if none is there.
    #[test]
    fn the_default_socket_is_the_first_there_rootless_ones_after_the_systems() {
        let runtime = Path::new("/run/user/1000");
        let first = |there: &[&str]| {
            first_socket(runtime, |p| there.iter().any(|t| Path::new(t) == p))
                .display()
                .to_string()
        };
        assert_eq!(
            first(&["/var/run/docker.sock", "/run/user/1000/docker.sock"]),
            "/var/run/docker.sock"
        );
        assert_eq!(
            first(&[
                "/run/user/1000/docker.sock",
                "/run/user/1000/podman/podman.sock"
            ]),
            "/run/user/1000/docker.sock"
        );
        assert_eq!(
            first(&[
                "/run/user/1000/podman/podman.sock",
                "/run/podman/podman.sock"
            ]),
            "/run/user/1000/podman/podman.sock"
        );
        assert_eq!(
            first(&["/run/podman/podman.sock"]),
            "/run/podman/podman.sock"
        );
        assert_eq!(first(&[]), "/var/run/docker.sock");
    }

    fn refused(args: &[&str]) -> String {
        let cli = Cli::try_parse_from(args).expect("the flags parse");
        match Settings::new(&cli) {
            Ok(_) => panic!("{args:?} accepted"),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn a_telemetry_path_the_router_cannot_take_is_refused_naming_the_flag() {
        for path in [
            "metrics",
            "/",
            "/-/ready",
            "/-/healthy",
            "",
            "/api/v1/events",
            "/static/m",
        ] {
            assert_eq!(
                refused(&["x", "--web.telemetry-path", path]),
                format!(
                    "--web.telemetry-path {path:?} must start with /, differ from /, /-/healthy and /-/ready and be outside /api/ and /static/"
                )
            );
        }
        assert_eq!(
            refused(&["x", "--history.retention", "7d,forever"]),
            "--history.retention \"7d,forever\": \"forever\" is neither a duration (7d, 12h) nor a size (512MiB, 1GB)"
        );
    }

    fn engines(args: &[&str]) -> Result<Vec<(Option<String>, String)>, String> {
        let cli = Cli::try_parse_from(args).expect("the flags parse");
        EngineSettings::new(&cli)
            .map(|s| {
                s.engines
                    .into_iter()
                    .map(|e| (e.name, e.endpoint.to_string()))
                    .collect()
            })
            .map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn engines_are_named_or_not_and_each_given_once() {
        assert_eq!(
            engines(&[
                "x",
                "--docker.host",
                "web-1=tcp://10.0.0.11:2375",
                "--docker.host",
                "unix:///run/a=b.sock",
            ]),
            Ok(vec![
                (Some("web-1".into()), "tcp://10.0.0.11:2375".into()),
                (None, "unix:///run/a=b.sock".into()),
            ])
        );
        let cases: [(&[&str], &str); 6] = [
            (
                &[
                    "--docker.host",
                    "a=tcp://h:1",
                    "--docker.host",
                    "a=tcp://h:2",
                ],
                "--docker.host: the name \"a\" is given to two engines",
            ),
            (
                &["--docker.host", "a=tcp://h:1", "--docker.host", "tcp://h:1"],
                "--docker.host \"tcp://h:1\": tcp://h:1 is watched already (as a); give each engine once",
            ),
            (
                &["--docker.host", "web 1=tcp://h:1"],
                "--docker.host \"web 1=tcp://h:1\": the engine name \"web 1\" must be letters, digits, '.', '_' and '-'; use NAME=URL",
            ),
            (
                &["--docker.host", "web="],
                "--docker.host \"web=\": no URL after the name; use NAME=URL",
            ),
            (
                &[
                    "--docker.host",
                    "a=tcp://h:1",
                    "--docker.cert-path",
                    "b=/certs/b",
                ],
                "--docker.cert-path \"b=/certs/b\": no --docker.host is named \"b\"; named ones: a",
            ),
            (
                &["--docker.cert-path", "/c1", "--docker.cert-path", "/c2"],
                "--docker.cert-path \"/c2\": a second folder for every engine; give the others as NAME=DIR",
            ),
        ];
        for (args, want) in cases {
            let all: Vec<&str> = std::iter::once("x").chain(args.iter().copied()).collect();
            assert_eq!(engines(&all), Err(want.to_owned()), "{args:?}");
        }
    }

    #[test]
    fn an_engine_with_a_cert_folder_of_its_own_speaks_tls_with_it() {
        let missing = "/nonexistent/dee-certs";
        let err = engines(&[
            "x",
            "--docker.host",
            "plain=tcp://10.0.0.1:2375",
            "--docker.host",
            "safe=tcp://10.0.0.2:2376",
            "--docker.cert-path",
            &format!("safe={missing}"),
        ])
        .expect_err("its certificates are missing");
        assert!(err.contains(missing), "{err}");
    }

    #[test]
    fn the_subcommands_are_checked_alike() {
        assert_eq!(
            refused(&[
                "x",
                "replay",
                "f",
                "--serve",
                "--web.telemetry-path",
                "metrics"
            ]),
            refused(&["x", "--web.telemetry-path", "metrics"])
        );
        assert_eq!(
            refused(&["x", "check-config", "f", "--container-label", ""]),
            "--container-label must not be empty"
        );
    }
}
