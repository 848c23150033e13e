//! Image pushes and pulls through a real registry (Debian's docker-registry) on 127.0.0.1.

use crate::support::registry::Registry;
use crate::support::{Exporter, docker, test_image};

#[test]
fn image_push_and_pull_through_a_local_registry() {
    let image = test_image();
    let registry = Registry::start();
    let e = Exporter::start(&[]);
    let (repo, _rm) = registry.push_and_pull(image, "img");
    let tagged = format!("{repo}:v1");
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
