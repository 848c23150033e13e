//! Command-line flags. Every flag has help text, a value name and an environment variable.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::TypedValueParser;
use clap::{Parser, Subcommand, ValueEnum};

/// Turns the Docker Engine's event stream into Prometheus metrics.
#[derive(Debug, Clone, Parser)]
#[command(name = "docker-events-exporter", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The Docker Engine to watch: unix:///path, tcp://host:port, http://host:port or
    /// https://host:port (as the docker CLI reads DOCKER_HOST). Repeat it to watch several,
    /// each optionally named (NAME=URL; the name defaults to the engine's own): their series
    /// then carry an `engine` label. With no engine and no context given: the docker CLI's
    /// current context, else the first of /var/run/docker.sock, rootless Docker's and
    /// rootless Podman's sockets that exists.
    #[arg(
        global = true,
        long = "docker.host",
        value_name = "[NAME=]URL",
        env = "DOCKER_HOST"
    )]
    pub docker_hosts: Vec<String>,

    /// A docker CLI context to watch the engine of (`docker context ls`), its endpoint and TLS
    /// material read from the CLI's context store ($DOCKER_CONFIG or ~/.docker); repeatable,
    /// each optionally named as --docker.host's. As in the docker CLI, DOCKER_HOST wins over
    /// DOCKER_CONTEXT, and either flag over both.
    #[arg(
        global = true,
        long = "docker.context",
        value_name = "[NAME=]CONTEXT",
        env = "DOCKER_CONTEXT"
    )]
    pub docker_contexts: Vec<String>,

    /// DOCKER_HOST gave `docker_hosts` (not the flag).
    #[arg(skip)]
    pub docker_host_from_env: bool,
    /// DOCKER_CONTEXT gave `docker_contexts` (not the flag).
    #[arg(skip)]
    pub docker_context_from_env: bool,

    /// Speak TLS to every tcp:// engine and verify it with ca.pem, presenting cert.pem and
    /// key.pem from its --docker.cert-path. Also enabled by any non-empty DOCKER_TLS_VERIFY, as
    /// in the docker CLI. (An https:// engine, or one with a cert path of its own, speaks TLS
    /// without it.)
    #[arg(global = true, long = "docker.tls-verify")]
    pub docker_tls_verify: bool,

    /// Folder holding ca.pem, cert.pem and key.pem for TLS [default: ~/.docker]; NAME=DIR
    /// (repeatable) gives the engine NAME a folder of its own and TLS.
    #[arg(
        global = true,
        long = "docker.cert-path",
        value_name = "[NAME=]DIR",
        env = "DOCKER_CERT_PATH"
    )]
    pub docker_cert_paths: Vec<String>,

    /// How often to ping the engine; a failed ping ends a stream that may be half-open.
    #[arg(
        global = true,
        long = "docker.ping-interval",
        value_name = "DURATION",
        env = "DOCKER_EVENTS_EXPORTER_PING_INTERVAL",
        default_value = "10s",
        value_parser = parse_duration
    )]
    pub ping_interval: Duration,

    /// Read the event stream at most once per this window while events keep coming (less
    /// when they come fast, so that the engine never waits for us): one wake-up for a burst
    /// instead of one per event, for at most this much delay before an event is counted. 0
    /// reads each event as it comes.
    #[arg(
        global = true,
        long = "docker.batch-window",
        value_name = "DURATION",
        env = "DOCKER_EVENTS_EXPORTER_BATCH_WINDOW",
        default_value = "1s",
        value_parser = parse_window
    )]
    pub batch_window: Duration,

    /// Keep the stream's position in this file (every engine's, by its name or address), so
    /// that a restarted exporter resumes where it stopped (`since=`) and recognises the events
    /// it had already counted. Without it, a restart starts from the engine's present.
    #[arg(
        global = true,
        long = "docker.state-file",
        value_name = "PATH",
        env = "DOCKER_EVENTS_EXPORTER_STATE_FILE"
    )]
    pub state_file: Option<std::path::PathBuf>,

    /// Address to serve metrics on; ":PORT" listens on every interface.
    #[arg(
        global = true,
        long = "web.listen-address",
        value_name = "ADDR",
        env = "DOCKER_EVENTS_EXPORTER_LISTEN_ADDRESS",
        default_value = ":10050"
    )]
    pub listen_address: String,

    /// TLS and basic auth for the HTTP side, in the web config format Prometheus exporters
    /// share (exporter-toolkit); check it with `promtool check web-config` or `check-config`.
    #[arg(
        global = true,
        long = "web.config.file",
        value_name = "FILE",
        env = "DOCKER_EVENTS_EXPORTER_WEB_CONFIG_FILE"
    )]
    pub web_config_file: Option<PathBuf>,

    /// Path under which to expose metrics.
    #[arg(
        global = true,
        long = "web.telemetry-path",
        value_name = "PATH",
        env = "DOCKER_EVENTS_EXPORTER_TELEMETRY_PATH",
        default_value = "/metrics"
    )]
    pub telemetry_path: String,

    /// How long the series of a removed container stay before they are dropped.
    #[arg(
        global = true,
        long = "metrics.series-ttl",
        value_name = "DURATION",
        env = "DOCKER_EVENTS_EXPORTER_SERIES_TTL",
        default_value = "1h",
        value_parser = parse_duration
    )]
    pub series_ttl: Duration,

    /// Docker container label to export as the Prometheus label `label_<KEY>` (repeatable; the
    /// environment variable takes a comma-separated list).
    #[arg(
        global = true,
        long = "container-label",
        value_name = "KEY",
        env = "DOCKER_EVENTS_EXPORTER_CONTAINER_LABELS",
        value_delimiter = ','
    )]
    pub container_labels: Vec<String>,

    /// Rules config (YAML): match events and run actions. Without it, metrics only. SIGHUP
    /// reloads it.
    #[arg(
        global = true,
        long = "config",
        value_name = "FILE",
        env = "DOCKER_EVENTS_EXPORTER_CONFIG"
    )]
    pub config: Option<PathBuf>,

    /// Log what each rule action would do (argv, URL, body) instead of doing it.
    #[arg(
        global = true,
        long = "dry-run",
        env = "DOCKER_EVENTS_EXPORTER_DRY_RUN"
    )]
    pub dry_run: bool,

    /// Rule firings that may wait for a free worker; past this they are dropped and counted.
    #[arg(
        global = true,
        long = "rules.queue-size",
        value_name = "N",
        env = "DOCKER_EVENTS_EXPORTER_RULES_QUEUE_SIZE",
        default_value_t = crate::actions::DEFAULT_QUEUE,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000).map(|n| n as usize)
    )]
    pub rules_queue_size: usize,

    /// Rule actions running at once.
    #[arg(
        global = true,
        long = "rules.workers",
        value_name = "N",
        env = "DOCKER_EVENTS_EXPORTER_RULES_WORKERS",
        default_value_t = crate::actions::DEFAULT_WORKERS,
        value_parser = clap::value_parser!(u32).range(1..=1024).map(|n| n as usize)
    )]
    pub rules_workers: usize,

    /// Events to keep in memory, per engine, for the status page, /api/v1/events and the
    /// `events` command (0: none; the live log still works). Their lines take at most 64 MiB
    /// an engine whatever the count.
    #[arg(
        global = true,
        long = "history.size",
        value_name = "N",
        env = "DOCKER_EVENTS_EXPORTER_HISTORY_SIZE",
        default_value_t = crate::history::DEFAULT_SIZE,
        value_parser = clap::value_parser!(u32).range(0..=10_000_000).map(|n| n as usize)
    )]
    pub history_size: usize,

    /// Also keep every event on disk here, in JSON-lines segments that outlive restarts (with
    /// several engines, a folder each, by name or address). Without it, the history is
    /// memory only.
    #[arg(
        global = true,
        long = "history.dir",
        value_name = "DIR",
        env = "DOCKER_EVENTS_EXPORTER_HISTORY_DIR"
    )]
    pub history_dir: Option<PathBuf>,

    /// How long --history.dir keeps events: an age, a size, or both (7d,1GiB); the oldest
    /// segments go first.
    #[arg(
        global = true,
        long = "history.retention",
        value_name = "AGE,SIZE",
        env = "DOCKER_EVENTS_EXPORTER_HISTORY_RETENTION",
        default_value = "7d,1GiB"
    )]
    pub history_retention: String,

    /// Ship every event kept in --history.dir to a store, in order, resuming where it left off:
    /// otlp://HOST:PORT[/PATH] (otlps:// for HTTPS), syslog://HOST:PORT (syslogs:// for TLS) or
    /// nats://HOST:PORT/SUBJECT (tls:// for TLS), options as query parameters. Repeat it for
    /// several; the environment variable takes a comma-separated list.
    #[arg(
        global = true,
        long = "sink",
        value_name = "URL",
        env = "DOCKER_EVENTS_EXPORTER_SINK",
        value_delimiter = ','
    )]
    pub sinks: Vec<String>,

    /// Least severe level of log lines to print.
    #[arg(
        global = true,
        long = "log.level",
        value_name = "LEVEL",
        env = "DOCKER_EVENTS_EXPORTER_LOG_LEVEL",
        default_value = "info"
    )]
    pub log_level: LogLevel,

    /// Format of log lines (on standard error).
    #[arg(
        global = true,
        long = "log.format",
        value_name = "FORMAT",
        env = "DOCKER_EVENTS_EXPORTER_LOG_FORMAT",
        default_value = "logfmt"
    )]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Check a rules config and report every problem with its file:line:column; exit 1 if
    /// there is any. The same checks start-up and SIGHUP run.
    CheckConfig {
        /// The rules config to check.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Run saved events (`docker events --format '{{json .}}'`, one per line) through the same
    /// pipeline, with --config rules in dry run; print the resulting metrics. With
    /// --history.dir, the events are kept there too.
    Replay {
        /// The event file; - for standard input. Several files are several engines' logs, each
        /// replayed as the engine named after its file (web-1.jsonl: engine="web-1").
        #[arg(value_name = "FILE", required = true, num_args = 1..)]
        files: Vec<PathBuf>,
        /// Serve the metrics on --web.listen-address instead of printing them.
        #[arg(long)]
        serve: bool,
    },
    /// Print the events the exporter keeps, as `docker events --format '{{json .}}'` does: from
    /// a running exporter's /api/v1/events, or straight from --history.dir when it is given.
    Events {
        /// Events from this time on: a Unix time, an RFC 3339 time, or a duration before now
        /// (2h).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Events up to this time (the same forms).
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// KEY=VALUE, as `docker events --filter` takes it (container, event, image, label,
        /// type, ..., and engine); repeatable.
        #[arg(short, long = "filter", value_name = "KEY=VALUE")]
        filters: Vec<String>,
        /// The exporter to ask [default: http://127.0.0.1:PORT, the port of
        /// --web.listen-address]; user:password@ in it for basic auth.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// Mute the rules' firings that match, for a while (as `amtool silence add` does), on a
    /// running exporter; print the mute's ID. `mute list` lists the mutes, `mute expire ID`
    /// ends one.
    #[command(args_conflicts_with_subcommands = true)]
    Mute {
        #[command(subcommand)]
        action: Option<MuteAction>,
        /// How long it holds, from now (30m, 2h).
        #[arg(long = "for", value_name = "DURATION")]
        duration: Option<String>,
        /// What it mutes: NAME=VALUE (a VALUE with * or ? is a glob), NAME!=VALUE,
        /// NAME=~REGEX or NAME!~REGEX, NAME one of name, compose_project, compose_service,
        /// swarm_service, engine, rule, label_KEY; repeatable, all must match.
        #[arg(long = "match", value_name = "MATCHER")]
        matchers: Vec<String>,
        /// Why.
        #[arg(long, value_name = "TEXT")]
        comment: Option<String>,
        /// Who [default: $USER].
        #[arg(long = "by", value_name = "NAME")]
        created_by: Option<String>,
        /// The exporter to ask [default: http://127.0.0.1:PORT, the port of
        /// --web.listen-address]; user:password@ in it for basic auth.
        #[arg(long, value_name = "URL", global = true)]
        url: Option<String>,
    },
    /// Ask a running exporter's /-/healthy: exit 0 if it answers 200, else 1 with why (the
    /// image's HEALTHCHECK, where there is no curl).
    Healthcheck {
        /// The exporter to ask [default: http://127.0.0.1:PORT, the port of
        /// --web.listen-address]; user:password@ in it for basic auth.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// Write a realistic event file (for replay and benchmarks) to standard output.
    GenerateEvents {
        /// Events to write.
        #[arg(long, value_name = "N", default_value_t = 1_000_000)]
        events: u64,
        /// Containers alive at once.
        #[arg(long, value_name = "N", default_value_t = 200)]
        containers: usize,
        /// Engine event shape.
        #[arg(long, value_name = "VERSION", default_value = "29")]
        engine: crate::cmd::generate::Shape,
        /// Seed: the same seed writes the same file.
        #[arg(long, value_name = "N", default_value_t = 1)]
        seed: u64,
        /// Every container lives once (create, start, die, destroy) under a new name.
        #[arg(long)]
        churn: bool,
        /// The keys of each object in a random order (the same events otherwise).
        #[arg(long)]
        chaotic: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Logfmt,
    Json,
}

impl Cli {
    /// Parses the command line (exiting with clap's message on a bad one), noting which of the
    /// engine flags came from the environment: the docker CLI ranks them by where they come
    /// from.
    pub fn parse_args() -> Self {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Self::command().get_matches();
        let mut cli = Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        let from_env =
            |id: &str| matches.value_source(id) == Some(clap::parser::ValueSource::EnvVariable);
        cli.docker_host_from_env = from_env("docker_hosts");
        cli.docker_context_from_env = from_env("docker_contexts");
        cli
    }

    /// TLS is on when asked for by flag or, as the docker CLI reads it, by any non-empty
    /// `DOCKER_TLS_VERIFY` (even "0").
    pub fn tls_verify(&self) -> bool {
        self.docker_tls_verify
            || std::env::var_os("DOCKER_TLS_VERIFY").is_some_and(|v| !v.is_empty())
    }
}

/// A duration of at most 10 s, or 0.
fn parse_window(s: &str) -> Result<Duration, String> {
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    let d = humantime::parse_duration(s).map_err(|e| {
        format!("{e}; use a duration like 1s or 250ms, or 0 to read each event as it comes")
    })?;
    if d > MAX_BATCH_WINDOW {
        return Err(format!(
            "at most {}",
            humantime::format_duration(MAX_BATCH_WINDOW)
        ));
    }
    Ok(d)
}

/// The longest `--docker.batch-window`: the delay must stay well under a scrape interval.
const MAX_BATCH_WINDOW: Duration = Duration::from_secs(10);

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("{e}; use a duration like 30s, 5m or 1h"))?;
    if d.is_zero() {
        return Err("must be longer than zero".to_owned());
    }
    Ok(d)
}

/// What `mute` does besides making one.
#[derive(Debug, Clone, Subcommand)]
pub enum MuteAction {
    /// List the mutes: in force, to come, and expired in the last day.
    List,
    /// End the mute ID now.
    Expire {
        /// The mute's ID, as `mute` printed it.
        #[arg(value_name = "ID")]
        id: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/flags.md's table is `--help`'s: every flag the command takes, with its value's
    /// name and its environment variable, and no flag it does not take.
    #[test]
    fn the_flags_page_is_the_help() {
        use clap::CommandFactory;
        let page = include_str!("../docs/flags.md");
        // | `--flag VALUE` | `ENV` ... | default | meaning |
        let mut rows: Vec<(String, String, Option<String>)> = page
            .lines()
            .filter_map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                let flag = cells.get(1)?.strip_prefix("`--")?.strip_suffix('`')?;
                let (long, value) = flag.split_once(' ').unwrap_or((flag, ""));
                let env = cells
                    .get(2)
                    .and_then(|c| c.split('`').nth(1))
                    .map(str::to_owned);
                Some((long.to_owned(), value.to_owned(), env))
            })
            .collect();
        rows.sort();
        let mut help: Vec<(String, String, Option<String>)> = Cli::command()
            .get_arguments()
            .filter_map(|a| {
                let long = a.get_long()?;
                let value = a
                    .get_value_names()
                    .map(|v| v.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(" "))
                    .unwrap_or_default();
                let takes_value = a.get_action().takes_values();
                let env = a.get_env().map(|e| e.to_string_lossy().into_owned());
                Some((
                    long.to_owned(),
                    if takes_value { value } else { String::new() },
                    env,
                ))
            })
            .filter(|(long, _, _)| long != "help" && long != "version")
            .collect();
        help.sort();
        let names = |v: &[(String, String, Option<String>)]| -> Vec<String> {
            v.iter().map(|r| r.0.clone()).collect()
        };
        assert_eq!(
            names(&rows),
            names(&help),
            "the flags of docs/flags.md and of --help"
        );
        for ((long, value, env), (_, help_value, help_env)) in rows.iter().zip(&help) {
            assert_eq!(value, help_value, "--{long}: its value's name");
            // A flag may also read a variable of its own accord (--docker.tls-verify reads
            // DOCKER_TLS_VERIFY as the docker CLI does); where clap reads one, the page names it.
            if help_env.is_some() {
                assert_eq!(env, help_env, "--{long}: its environment variable");
            }
        }
    }

    #[test]
    fn defaults_match_the_readme() {
        let cli = Cli::try_parse_from(["docker-events-exporter"]).expect("defaults parse");
        assert_eq!(cli.listen_address, ":10050");
        assert_eq!(cli.telemetry_path, "/metrics");
        assert_eq!(cli.series_ttl, Duration::from_secs(3600));
        assert_eq!(cli.ping_interval, Duration::from_secs(10));
        assert_eq!(cli.batch_window, Duration::from_secs(1));
        assert_eq!(cli.log_format, LogFormat::Logfmt);
    }

    #[test]
    fn bad_duration_names_the_flag_and_gives_a_hint() {
        let err =
            Cli::try_parse_from(["x", "--metrics.series-ttl", "soon"]).expect_err("not a duration");
        let msg = err.to_string();
        assert!(msg.contains("--metrics.series-ttl"), "{msg}");
        assert!(msg.contains("use a duration like 30s, 5m or 1h"), "{msg}");
    }

    #[test]
    fn a_batch_window_is_a_duration_up_to_10s_or_0() {
        let window = |v: &str| Cli::try_parse_from(["x", "--docker.batch-window", v]);
        assert_eq!(window("0").expect("0").batch_window, Duration::ZERO);
        assert_eq!(
            window("250ms").expect("250ms").batch_window,
            Duration::from_millis(250)
        );
        let msg = window("1m").expect_err("too long").to_string();
        assert!(
            msg.contains("invalid value '1m' for '--docker.batch-window <DURATION>': at most 10s"),
            "{msg}"
        );
    }

    #[test]
    fn engines_repeat_and_none_is_given_by_default() {
        // (Which engine is watched then is the settings': see `settings::default_socket`.)
        let cli = Cli::try_parse_from(["x"]).expect("parse");
        if std::env::var_os("DOCKER_HOST").is_none() {
            assert_eq!(cli.docker_hosts, Vec::<String>::new());
        }
        let cli = Cli::try_parse_from([
            "x",
            "--docker.host",
            "a=tcp://10.0.0.1:2375",
            "--docker.host",
            "unix:///run/b.sock",
        ])
        .expect("parse");
        assert_eq!(
            cli.docker_hosts,
            ["a=tcp://10.0.0.1:2375", "unix:///run/b.sock"]
        );
    }

    #[test]
    fn container_labels_repeat() {
        let cli = Cli::try_parse_from([
            "x",
            "--container-label",
            "team",
            "--container-label",
            "tier",
        ])
        .expect("parse");
        assert_eq!(cli.container_labels, ["team", "tier"]);
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
