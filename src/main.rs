use std::process::ExitCode;

use clap::Parser;
use docker_events_exporter::cli::{Cli, Command};
use docker_events_exporter::{app, generate, logging, replay, rules};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::CheckConfig { file }) => {
            return check_config(file, cli.web_config_file.as_deref());
        }
        Some(Command::GenerateEvents {
            events,
            containers,
            engine,
            seed,
            churn,
        }) => {
            let spec = generate::Spec {
                events: *events,
                containers: *containers,
                shape: *engine,
                seed: *seed,
                churn: *churn,
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
        _ => {}
    }
    logging::init(cli.log_level, cli.log_format);
    // One TLS provider for the process (ring): reqwest and lettre use the process default.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
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
        Some(Command::Replay { file, serve }) => runtime.block_on(replay::run(&cli, file, *serve)),
        _ => runtime.block_on(app::run(cli)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Multi-line errors (every problem of a config file) end in a newline of their own.
            let message = format!("{e:#}");
            eprintln!("docker-events-exporter: error: {}", message.trim_end());
            ExitCode::FAILURE
        }
    }
}

fn check_config(file: &std::path::Path, web: Option<&std::path::Path>) -> ExitCode {
    if let Some(web) = web {
        match docker_events_exporter::web::load(web) {
            Ok(w) => println!("{}: ok, {}", web.display(), w.summary()),
            Err(errors) => {
                eprint!("{errors}");
                return ExitCode::FAILURE;
            }
        }
    }
    match rules::load(file) {
        Ok(r) => {
            let names: Vec<&str> = r.rules.iter().map(|r| r.name.as_str()).collect();
            println!(
                "{}: ok, {} rule(s): {}",
                file.display(),
                names.len(),
                names.join(", ")
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprint!("{errors}");
            ExitCode::FAILURE
        }
    }
}
