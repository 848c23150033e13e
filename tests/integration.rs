//! Integration tests: the exporter binary against the real Docker Engine on this machine (and,
//! for inputs a real engine never sends, a stand-in engine). Each test makes its own uniquely
//! named containers, removes them even when it fails, and asserts exact metric values.

#[path = "support/mod.rs"]
mod support;

#[path = "integration/cli.rs"]
mod cli;
#[path = "integration/conditions.rs"]
mod conditions;
#[path = "integration/engines.rs"]
mod engines;
#[path = "integration/fuzz_corpus.rs"]
mod fuzz_corpus;
#[path = "integration/health.rs"]
mod health;
#[path = "integration/history.rs"]
mod history;
#[path = "integration/images.rs"]
mod images;
#[path = "integration/lifecycle.rs"]
mod lifecycle;
#[path = "integration/notify.rs"]
mod notify;
#[path = "integration/our_image.rs"]
mod our_image;
#[path = "integration/podman.rs"]
mod podman;
#[path = "integration/reliability.rs"]
mod reliability;
#[path = "integration/resilience.rs"]
mod resilience;
#[path = "integration/rules.rs"]
mod rules;
#[path = "integration/security.rs"]
mod security;
#[path = "integration/sinks.rs"]
mod sinks;
#[path = "integration/stack.rs"]
mod stack;
#[path = "integration/swarm.rs"]
mod swarm;
#[path = "integration/tls.rs"]
mod tls;
