//! A single-node Swarm on the local engine (`docker swarm init --advertise-addr 127.0.0.1`,
//! which needs no network), shared by the tests that need one: the first to join makes it, the
//! last to leave leaves it and removes the `docker_gwbridge` network it made, also when a test
//! fails.

use std::sync::Mutex;

use super::{docker, docker_output};

/// How many tests hold the swarm now.
static HOLDERS: Mutex<usize> = Mutex::new(0);

/// A test's hold on the swarm; dropping it lets go.
pub struct Swarm(());

impl Swarm {
    pub fn join() -> Self {
        let mut holders = HOLDERS.lock().unwrap_or_else(|e| e.into_inner());
        if *holders == 0 {
            // One left behind by a run that was killed is taken over.
            let state = docker_output(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
            if String::from_utf8_lossy(&state.stdout).trim() != "active" {
                let out = docker_output(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
                assert!(
                    out.status.success(),
                    "docker swarm init: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        *holders += 1;
        Self(())
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        let mut holders = HOLDERS.lock().unwrap_or_else(|e| e.into_inner());
        *holders -= 1;
        if *holders == 0 {
            let _ = docker_output(&["swarm", "leave", "--force"]);
            let _ = docker_output(&["network", "rm", "docker_gwbridge"]);
        }
    }
}

/// Creates a replicated service of one task running `sh -c CMD` in the local `image`, restarted
/// a second after whatever end (`--restart-condition any`).
pub fn create_service(name: &str, image: &str, cmd: &str) {
    docker(&[
        "service",
        "create",
        "-d",
        "--no-resolve-image",
        "--name",
        name,
        "--restart-condition",
        "any",
        "--restart-delay",
        "1s",
        image,
        "sh",
        "-c",
        cmd,
    ]);
}

/// Removes the named services when dropped, also when the test panics.
pub struct RemoveServices(pub Vec<String>);

impl Drop for RemoveServices {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = docker_output(&["service", "rm", name]);
        }
    }
}
