//! Image pushes and pulls through a real registry (Debian's docker-registry) on 127.0.0.1.

use std::process::{Child, Command, Stdio};

use crate::support::{
    DEADLINE, Exporter, docker, docker_output, free_port, http_get, tempdir, test_image, unique,
    wait_until,
};

struct Registry {
    child: Child,
    port: u16,
}

impl Registry {
    fn start() -> Self {
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

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct RemoveImage(String);

impl Drop for RemoveImage {
    fn drop(&mut self) {
        let _ = docker_output(&["rmi", "-f", &self.0]);
    }
}

#[test]
fn image_push_and_pull_through_a_local_registry() {
    let image = test_image();
    let registry = Registry::start();
    let e = Exporter::start(&[]);
    let repo = format!("127.0.0.1:{}/{}", registry.port, unique("img"));
    let tagged = format!("{repo}:v1");
    let _rm = RemoveImage(tagged.clone());
    docker(&["tag", image, &tagged]);
    docker(&["push", &tagged]);
    docker(&["rmi", &tagged]);
    docker(&["pull", &tagged]);
    e.wait_for("docker_image_pushes_total", &[("image", &repo)], 1.0);
    e.wait_for("docker_image_pulls_total", &[("image", &repo)], 1.0);
    // Pulling again by digest is the same repository, not a new series.
    let digest = docker(&["inspect", "-f", "{{index .RepoDigests 0}}", &tagged]);
    docker(&["pull", &digest]);
    e.wait_for("docker_image_pulls_total", &[("image", &repo)], 2.0);
    assert_eq!(
        e.scrape()
            .matching("docker_image_pulls_total", &[("image", &repo)])
            .len(),
        1
    );
}
