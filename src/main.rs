use std::process::ExitCode;

use docker_events_exporter::cli::{Cli, Command, MuteAction};
use docker_events_exporter::cmd::{
    self, check_config, events, generate, healthcheck, mute, replay,
};
use docker_events_exporter::settings::{EngineSettings, Settings};
use docker_events_exporter::{app, logging};

fn main() -> ExitCode {
    let cli = Cli::parse_args();
    if let Some(Command::GenerateEvents {
        events,
        containers,
        engine,
        seed,
        churn,
        chaotic,
    }) = &cli.command
    {
        let spec = generate::Spec {
            events: *events,
            containers: *containers,
            shape: *engine,
            seed: *seed,
            churn: *churn,
            chaotic: *chaotic,
            ..generate::Spec::default()
        };
        let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
        return match generate::generate(&spec, &mut out) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("docker-events-exporter: error: writing events: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // Every command's flags are checked alike, before anything starts.
    let settings = Settings::new(&cli);
    if let Some(Command::CheckConfig { file }) = &cli.command {
        return check_config::run(file, cli.web_config_file.as_deref(), settings);
    }
    let settings = match settings {
        Ok(s) => s,
        Err(e) => return cmd::fail(&e),
    };
    logging::init(cli.log_level, cli.log_format);
    // One TLS provider for the process (ring): reqwest and lettre use the process default.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // One thread: the stream, its inspects, the server and the actions all wait on I/O, and
    // on one thread a read wakes its consumer without a cross-thread wake-up (a futex and a
    // task switch per event on two workers). A scrape's text is written on the blocking pool.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("docker-events-exporter: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match &cli.command {
        Some(Command::Replay { files, serve }) => {
            runtime.block_on(replay::run(&settings, files, *serve))
        }
        Some(Command::Events {
            since,
            until,
            filters,
            url,
        }) => {
            let ask = events::Ask {
                since: since.as_deref(),
                until: until.as_deref(),
                filters,
                url: url.as_deref(),
            };
            runtime.block_on(events::run(&settings, &ask))
        }
        Some(Command::Healthcheck { url }) => {
            runtime.block_on(healthcheck::run(&settings, url.as_deref()))
        }
        Some(Command::Mute {
            action,
            duration,
            matchers,
            comment,
            created_by,
            url,
        }) => {
            let ask = match (action, duration) {
                (Some(MuteAction::List), _) => Ok(mute::Ask::List),
                (Some(MuteAction::Expire { id }), _) => Ok(mute::Ask::Expire { id }),
                (None, Some(duration)) => Ok(mute::Ask::Add {
                    duration,
                    matchers,
                    comment: comment.as_deref(),
                    created_by: created_by.as_deref(),
                }),
                (None, None) => Err(anyhow::anyhow!(
                    "mute needs --for and at least one --match, e.g. mute --for 30m --match name=web-*; or mute list, mute expire ID"
                )),
            };
            ask.and_then(|ask| runtime.block_on(mute::run(&settings, &ask, url.as_deref())))
        }
        _ => EngineSettings::new(&cli)
            .and_then(|engine| runtime.block_on(app::run(settings, engine))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => cmd::fail(&e),
    }
}
