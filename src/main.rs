use std::process::ExitCode;

use clap::Parser;
use docker_events_exporter::cli::{Cli, Command};
use docker_events_exporter::{app, logging, rules};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::CheckConfig { file }) = &cli.command {
        return check_config(file);
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
    match runtime.block_on(app::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("docker-events-exporter: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(file: &std::path::Path) -> ExitCode {
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
