//! docker-events-exporter turns a Docker Engine's event stream into Prometheus metrics.
//!
//! The pipeline: [`docker`] connects to the engine and keeps one event subscription alive
//! (resume, backoff, dedupe), knowing nothing downstream of it (with several engines, one
//! such pipeline runs for each, into one registry); [`pipeline`] takes each line,
//! decodes it, applies it to the [`metrics::Tracker`] (the one place where an event changes a
//! metric), keeps it in the [`history`] and hands it to the rules ([`actions::Reactor`]);
//! [`server`] lets Prometheus scrape the result, and people look at it ([`server::status`]).
//!
//! # Layout
//! ```text
//! The data flows one way: engine -> docker (the source) -> pipeline (decode, then the tracker,
//! the history and the rules) -> metrics / history / actions -> status -> server. docker knows
//! no part downstream of it, rules knows nothing of actions; the pipeline and app are where the
//! parts meet.
//!
//! src/main.rs              CLI parse, then the checked settings, logging, runtime; prints an
//!                          error once with its causes
//! src/cli.rs               the flags, each with its environment variable
//! src/settings.rs          the flags checked once, for every command, split by the part that
//!                          uses them
//! src/app.rs               the daemon's wiring: server first, one task per engine (retry,
//!                          naming, resume), the shared action queue, signals, SIGHUP reloads,
//!                          drain
//! src/docker/              the source: endpoint (unix/tcp/TLS/ssh transport, kept connections),
//!                          ssh (ssh:// through the system's ssh and docker system dial-stdio),
//!                          paced (reading the stream in batches), event (our decoded type), decode
//!                          (a line to an event: scan, its fast path, then serde), lines
//!                          (splitting a byte stream), stream
//!                          (subscription, backoff, dedupe, ping, gaps; yields lines and signals
//!                          to a Consumer), state (--docker.state-file), mod (the engine client:
//!                          version, info, list, inspect, snapshot), container (the container
//!                          model, read from an inspect), context (the docker CLI's contexts),
//!                          held (what the engine's held events
//!                          say of exits), logs (a container's last lines, for %%logs%%)
//! src/pipeline.rs          what happens to one line: decode, the tracker, the history, the
//!                          rules; the live stream, replay and the fuzz targets all enter here
//! src/metrics/             families (every family declared once: name, help, type, labels,
//!                          buckets), mod (the registry), firing (the rules' firings open now,
//!                          for the page), tracker (an event looks its container
//!                          up once, by its ID held in place (tracker/id), and writes its
//!                          series' cell once; a container's verbs in
//!                          tracker/container, the series table in tracker/series, seed,
//!                          inspects and reconcile in tracker/reconcile, Podman's execs without
//!                          an ID in tracker/unnamed_execs, its tests in tracker/tests),
//!                          containers (the compact container series and their text)
//! src/rules/               the rules config as plain data: compiling and resolving it (config),
//!                          matchers (event and resolve), conditions and their label overrides
//!                          (condition), quiet hours (quiet: mute_time_intervals), templates
//!                          (placeholders, filters); the rules an event matches or resolves
//! src/actions/             everything that runs: reactor (match, throttle, open firings and their
//!                          resolving events, conditions' edges, enqueue), conditions (what each
//!                          container's recent life says: holds, ended), mutes (Alertmanager's
//!                          silences for the rules, shared by the API and every reactor),
//!                          dispatch (queue, batches, worker pool), executor (dry run,
//!                          timing, outcomes), series (the rules layer's
//!                          metrics), set (the loaded rules and their swap on SIGHUP), delivery
//!                          (HTTP retries, Retry-After; URLs from the environment or a file), one
//!                          file per action kind (run, webhook, notify with notify/service for
//!                          the services' URLs and requests, alertmanager, log, email, metric)
//! src/history/             the event history: mod (every engine's, queries, live followers),
//!                          ring (the last events in memory), disk (--history.dir segments,
//!                          their writer thread and retention), filter (the engine's filters
//!                          and times, matched as the engine does)
//! src/sinks/               --sink: the history shipped to stores: spec (the URLs, checked),
//!                          record (what a store receives of an event), reader (a cursor in a
//!                          history folder), ship (batches, retries, skips, the cursor saved),
//!                          otlp, syslog, nats (the protocols)
//! src/server/              the HTTP side, all of it: mod (router, state, basic auth, start-up,
//!                          the page's handler, WebSettings), listen (binding, the TLS accept
//!                          loop, the drain), scrape (/metrics and its limits), api (the
//!                          history's API and live stream), mutes (/api/v1/mutes), web_config (--web.config.file: TLS
//!                          and basic auth), status (the status page at /: its data from the
//!                          metrics' cells, its HTML escaped, page.css and page.js), tests
//! src/cmd/                 the subcommands, apart from the daemon: replay (`replay FILE...`),
//!                          events (the history, from a running exporter or --history.dir),
//!                          generate (`generate-events`), check_config, mute (`mute`, `mute
//!                          list`, `mute expire`), healthcheck (the image's HEALTHCHECK), client
//!                          (asking a running exporter's API); mod (their error line)
//! src/json.rs              JSON strings, fast: a string's end, writing one escaped
//! src/config_error.rs      a problem in a config file with its place, and how a file's problems
//!                          are shown (the rules config's and the web config's alike)
//! src/secret.rs            a value kept out of logs, metrics and pages (the actions' and sinks')
//! src/logging.rs           tracing set-up: logfmt or JSON on standard error
//! src/fuzzing.rs           the fuzz targets' bodies, shared with the corpus replay in the tests
//! benches/                 criterion benches of the pipeline's stages
//! scripts/                 bench.sh (the Performance figures), fuzz.sh (runs the fuzzers),
//!                          image.sh (the runtime image with no pull, for the tests)
//! fuzz/                    cargo-fuzz targets and their corpora
//! tests/                   one integration test binary against the real engine; helpers in
//!                          tests/support/; promtool unit tests of the alerts in tests/alerts/;
//!                          engines' recorded logs in tests/fixtures/
//! examples/                rules configs, each checked by the tests
//! mixin/                   the monitoring mixin (jsonnet): config, rules, alerts, dashboards;
//!                          render.sh renders it into alerts/ and dashboards/
//! alerts/                  Prometheus rules (recording rules and alerts), rendered from mixin/
//! dashboards/              Grafana dashboard JSON, rendered from mixin/
//! docs/                    the manual, a page a subject: metrics, flags, engines, history, sinks,
//!                          rules, alerts, reliability, security, performance, development, and
//!                          runbook.md (what to check first, per alert); the README links them
//! deploy/                  Prometheus, Alertmanager and Grafana provisioning for the compose stack
//! docker-compose.yml       the stack: exporter, Prometheus, Alertmanager, Grafana
//! Dockerfile               the exporter image
//! .ci/run                  CI, and the README's test command: installs and starts what the tests
//!                          need, then fmt, clippy, cargo deny and the tests
//! ```

pub mod actions;
pub mod app;
pub mod cli;
pub mod cmd;
pub mod config_error;
pub mod docker;
#[doc(hidden)]
pub mod fuzzing;
pub mod history;
pub mod json;
pub mod logging;
pub mod metrics;
pub mod pipeline;
pub mod rules;
pub mod secret;
pub mod server;
pub mod settings;
pub mod sinks;

/// The Layout above is docs/development.md's, line for line, and names every source file and folder.
#[cfg(test)]
mod layout {
    fn block<'a>(text: &'a str, heading: &str) -> Vec<&'a str> {
        text.lines()
            .skip_while(|l| l.trim_start_matches("//!").trim() != heading)
            .map(|l| {
                l.strip_prefix("//!")
                    .map_or(l, |l| l.strip_prefix(' ').unwrap_or(l))
            })
            .skip_while(|l| !l.starts_with("```"))
            .skip(1)
            .take_while(|l| !l.starts_with("```"))
            .collect()
    }

    #[test]
    fn the_layout_is_the_readmes_and_names_every_module() {
        let here = block(include_str!("lib.rs"), "# Layout");
        let readme = block(include_str!("../docs/development.md"), "## Layout");
        assert!(here.len() > 10, "{here:?}");
        assert_eq!(
            here, readme,
            "src/lib.rs and the Layout of docs/development.md differ"
        );
        let text = here.join("\n");
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        for entry in std::fs::read_dir(&src).expect("src/ lists") {
            let name = entry.expect("an entry").file_name();
            let name = name.to_string_lossy();
            let named = match name.strip_suffix(".rs") {
                Some(_) => format!("src/{name}"),
                None => format!("src/{name}/"),
            };
            if name != "lib.rs" {
                assert!(text.contains(&named), "the Layout does not name {named}");
            }
        }
    }
}
