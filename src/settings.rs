//! The checked settings: what the flags ask for, checked once and split by the part that uses
//! it. The daemon, `replay` (and its `--serve`) and `check-config` all build [`Settings`] first,
//! so a bad flag is one line naming it and exit 1, whichever command was given; the daemon
//! also builds [`EngineSettings`], the only part that needs the engine's address.

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::Cli;
use crate::docker::endpoint::Endpoint;
use crate::web::WebConfig;

/// Paths the server answers itself, which the metrics cannot take.
const RESERVED_PATHS: [&str; 3] = ["/", "/-/healthy", "/-/ready"];

/// Every part's settings but the engine's.
pub struct Settings {
    pub web: WebSettings,
    pub metrics: MetricsSettings,
    pub rules: RulesSettings,
}

/// The HTTP side.
pub struct WebSettings {
    pub listen_address: String,
    /// Starts with `/` and is none of the paths the server answers itself.
    pub telemetry_path: String,
    /// TLS and basic auth from `--web.config.file`, checked; plain HTTP without one.
    pub config: WebConfig,
}

impl WebSettings {
    /// One line for the start-up log.
    pub fn summary(&self) -> String {
        self.config.summary()
    }
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

/// The engine side of the daemon.
#[derive(Debug)]
pub struct EngineSettings {
    pub endpoint: Endpoint,
    pub ping_interval: Duration,
    pub state_file: Option<PathBuf>,
}

impl Settings {
    pub fn new(cli: &Cli) -> anyhow::Result<Self> {
        let path = &cli.telemetry_path;
        if !path.starts_with('/') || RESERVED_PATHS.contains(&path.as_str()) {
            anyhow::bail!(
                "--web.telemetry-path {path:?} must start with / and differ from {}",
                list(&RESERVED_PATHS)
            );
        }
        let config = match &cli.web_config_file {
            Some(file) => crate::web::load(file)?,
            None => WebConfig {
                tls: None,
                auth: None,
            },
        };
        let container_labels = crate::metrics::checked_label_keys(&cli.container_labels)?;
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
        })
    }
}

impl EngineSettings {
    pub fn new(cli: &Cli) -> anyhow::Result<Self> {
        let cert_path = cli
            .docker_cert_path
            .clone()
            .unwrap_or_else(default_cert_path);
        Ok(Self {
            endpoint: Endpoint::parse(&cli.docker_host, cli.tls_verify(), &cert_path)?
                .with_batch_window(cli.batch_window),
            ping_interval: cli.ping_interval,
            state_file: cli.state_file.clone(),
        })
    }
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

    fn refused(args: &[&str]) -> String {
        let cli = Cli::try_parse_from(args).expect("the flags parse");
        match Settings::new(&cli) {
            Ok(_) => panic!("{args:?} accepted"),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn a_telemetry_path_the_router_cannot_take_is_refused_naming_the_flag() {
        for path in ["metrics", "/", "/-/ready", "/-/healthy", ""] {
            assert_eq!(
                refused(&["x", "--web.telemetry-path", path]),
                format!(
                    "--web.telemetry-path {path:?} must start with / and differ from /, /-/healthy and /-/ready"
                )
            );
        }
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
