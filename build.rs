//! Stamps the git revision into `docker_events_exporter_build_info` when built from a checkout.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-env-changed=DEE_GIT_REVISION");
    if std::env::var_os("DEE_GIT_REVISION").is_some() {
        return;
    }
    let rev = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok());
    if let Some(rev) = rev {
        println!("cargo:rustc-env=DEE_GIT_REVISION={}", rev.trim());
    }
}
