//! The subcommands, apart from the daemon's wiring (`app`): each runs once and exits. They check
//! their flags as the daemon does (`settings`) and print an error the same way ([`fail`]).

pub mod check_config;
mod client;
pub mod events;
pub mod generate;
pub mod healthcheck;
pub mod mute;
pub mod replay;

use std::process::ExitCode;

/// Prints the error once, with its causes, and exits 1.
pub fn fail(e: &anyhow::Error) -> ExitCode {
    // Multi-line errors (every problem of a config file) end in a newline of their own.
    let message = format!("{e:#}");
    eprintln!("docker-events-exporter: error: {}", message.trim_end());
    ExitCode::FAILURE
}
