//! Debian's docker-registry on 127.0.0.1, for real pushes and pulls.

use std::process::{Child, Command, Stdio};

use super::{DEADLINE, free_port, http_get, tempdir, wait_until};

pub struct Registry {
    child: Child,
    pub port: u16,
}

impl Registry {
    pub fn start() -> Self {
        let port = free_port();
        let dir = tempdir("registry");
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.join("data").display()
            ),
        )
        .expect("write registry config");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry runs (apt-get install docker-registry)");
        let r = Self { child, port };
        assert!(
            wait_until(DEADLINE, || http_get(port, "/v2/")
                .is_some_and(|(s, _)| s == 200)),
            "registry on 127.0.0.1:{port} did not come up"
        );
        r
    }
}

impl Registry {
    /// Tags `image` into this registry under a new repository, pushes it, removes it locally
    /// and pulls it back: one push and one pull event. Returns the repository (the `image`
    /// label) and a guard that removes the pulled image.
    pub fn push_and_pull(&self, image: &str, what: &str) -> (String, super::RemoveImage) {
        let repo = format!("127.0.0.1:{}/{}", self.port, super::unique(what));
        let tagged = format!("{repo}:v1");
        let guard = super::RemoveImage(tagged.clone());
        super::docker(&["tag", image, &tagged]);
        super::docker(&["push", &tagged]);
        super::docker(&["rmi", &tagged]);
        super::docker(&["pull", &tagged]);
        (repo, guard)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
