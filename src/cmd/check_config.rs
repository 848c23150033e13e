//! `check-config FILE`: the flags' checks, then the rules file's.

use std::path::Path;
use std::process::ExitCode;

use super::fail;
use crate::actions;
use crate::server::web_config::WebConfigErrors;
use crate::settings::Settings;

/// `check-config FILE`: the flags' checks, then the rules file's. Lists of problems are
/// printed as they are, one problem a line.
pub fn run(
    file: &Path,
    web_config_file: Option<&Path>,
    settings: anyhow::Result<Settings>,
) -> ExitCode {
    let settings = match settings {
        Ok(s) => s,
        Err(e) => match e.downcast_ref::<WebConfigErrors>() {
            Some(problems) => {
                eprint!("{problems}");
                return ExitCode::FAILURE;
            }
            None => return fail(&e),
        },
    };
    if let Some(web) = web_config_file {
        println!("{}: ok, {}", web.display(), settings.web.summary());
    }
    for sink in &settings.sinks {
        println!("--sink {}: ok", sink.shown);
    }
    match actions::load(file) {
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
