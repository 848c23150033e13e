//! The shipped assets, tested for real: alert rules (promtool), configs, the dashboard, a real
//! Prometheus scraping the exporter while containers crash-loop and get OOM-killed, and the
//! exporter image.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::support::prometheus::{Prometheus, encode, render_mixin, rules_for_test};
use crate::support::registry::Registry;
use crate::support::{
    Cleanup, DEADLINE, Exporter, RemoveImage, docker, free_port, http_get, repo_root, rfc3339_secs,
    run_ok, tempdir, test_image, unique, wait_status, wait_until,
};

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

fn dashboard() -> Value {
    let text = std::fs::read_to_string(repo_root().join("dashboards/docker-events-overview.json"))
        .expect("dashboard");
    serde_json::from_str(&text).expect("dashboard is JSON")
}

/// Every (title, expr) of the dashboard's panels and annotations.
fn dashboard_queries(d: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((
                p["title"].as_str().unwrap_or_default().to_owned(),
                t["expr"].as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    for a in d["annotations"]["list"].as_array().expect("annotations") {
        if let Some(expr) = a["expr"].as_str() {
            out.push((
                format!("annotation {}", a["name"].as_str().unwrap_or_default()),
                expr.to_owned(),
            ));
        }
    }
    out
}

#[test]
fn alert_rules_pass_promtool_check_and_unit_tests() {
    let out = run_ok(
        "promtool",
        &["check", "rules", "alerts/docker-events-exporter.rules.yml"],
    );
    assert!(out.contains("SUCCESS: 22 rules found"), "{out}");
    let out = run_ok(
        "promtool",
        &[
            "test",
            "rules",
            "tests/alerts/docker-events-exporter.test.yml",
        ],
    );
    assert!(out.contains("SUCCESS"), "{out}");
}

/// A rule file, as far as these tests read it.
#[derive(serde::Deserialize)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(serde::Deserialize)]
struct RuleGroup {
    rules: Vec<Rule>,
}

#[derive(serde::Deserialize)]
struct Rule {
    alert: Option<String>,
    record: Option<String>,
    expr: String,
    #[serde(rename = "for")]
    for_: Option<String>,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

fn rule_file(text: &str) -> RuleFile {
    let node = marked_yaml::parse_yaml(0, text).expect("rules are YAML");
    marked_yaml::from_node(&node).expect("rules have groups")
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// CI's check that the committed alerts/ and dashboards/ are what the mixin renders, and that
/// the mixin is formatted as jsonnetfmt writes it.
#[test]
fn the_committed_alerts_and_dashboard_are_the_rendered_mixin() {
    let root = repo_root();
    let out = render_mixin(root, "");
    for file in [
        "alerts/docker-events-exporter.rules.yml",
        "dashboards/docker-events-overview.json",
    ] {
        assert!(
            read(&out.join(file)) == read(&root.join(file)),
            "{file} differs from what the mixin renders: run mixin/render.sh and commit the result"
        );
    }
    let mut sources = Vec::new();
    for dir in [
        "mixin",
        "mixin/alerts",
        "mixin/rules",
        "mixin/dashboards",
        "mixin/lib",
    ] {
        for entry in std::fs::read_dir(root.join(dir)).expect("mixin folder") {
            let path = entry.expect("entry").path();
            if path
                .extension()
                .is_some_and(|e| e == "libsonnet" || e == "jsonnet")
            {
                sources.push(path.to_str().expect("utf-8").to_owned());
            }
        }
    }
    assert!(sources.len() >= 7, "{sources:?}");
    let mut args = vec!["--test"];
    args.extend(sources.iter().map(String::as_str));
    run_ok("jsonnetfmt", &args);
}

/// Rendered for a scrape job of another name, every series an alert or recording rule reads
/// carries that job's selector, and the dashboard's job variable asks for it.
#[test]
fn a_custom_job_selector_reaches_every_expression() {
    let out = render_mixin(repo_root(), "selector: 'job=\"my-docker\"'");
    let rules_path = out.join("alerts/docker-events-exporter.rules.yml");
    let checked = run_ok(
        "promtool",
        &["check", "rules", rules_path.to_str().expect("utf-8")],
    );
    assert!(checked.contains("SUCCESS: 22 rules found"), "{checked}");
    let rules = rule_file(&read(&rules_path));
    let mut selectors = 0;
    for rule in rules.groups.iter().flat_map(|g| &g.rules) {
        let name = rule
            .alert
            .as_deref()
            .or(rule.record.as_deref())
            .unwrap_or_default();
        // Every metric name (recorded ones have a colon and carry the selector inside).
        let expr = rule.expr.as_str();
        let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
        let mut rest = expr;
        while let Some(start) = rest.find(|c: char| c.is_ascii_alphabetic() || c == '_') {
            let word_len = rest[start..]
                .find(|c: char| !ident(c))
                .unwrap_or(rest.len() - start);
            let word = &rest[start..start + word_len];
            rest = &rest[start + word_len..];
            if (word.starts_with("docker_") && !word.contains(':')) || word == "up" {
                assert!(
                    rest.starts_with("{job=\"my-docker\""),
                    "{name}: {word} without the selector in\n{expr}"
                );
                selectors += 1;
            }
        }
    }
    assert!(selectors > 30, "{selectors} selectors seen");
    let dashboard: Value =
        serde_json::from_str(&read(&out.join("dashboards/docker-events-overview.json")))
            .expect("JSON");
    let job = dashboard["templating"]["list"]
        .as_array()
        .and_then(|l| l.iter().find(|v| v["name"] == "job"))
        .expect("job variable");
    assert_eq!(
        job["query"]["query"],
        "label_values(docker_events_exporter_build_info{job=\"my-docker\"}, job)"
    );
}

/// The alerts table of docs/alerts.md (name and `for`) and docs/runbook.md (a section per alert, where
/// its `runbook_url` points) say what the mixin does.
#[test]
fn the_readme_alerts_table_and_the_runbook_agree_with_the_mixin() {
    let root = repo_root();
    let rules = rule_file(&read(&root.join("alerts/docker-events-exporter.rules.yml")));
    let alerts: Vec<&Rule> = rules
        .groups
        .iter()
        .flat_map(|g| &g.rules)
        .filter(|r| r.alert.is_some())
        .collect();
    let readme = read(&root.join("docs/alerts.md"));
    let table: Vec<(String, String)> = readme
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells.len() >= 5 && cells[1].starts_with("`Docker"))
                .then(|| (cells[1].trim_matches('`').to_owned(), cells[3].to_owned()))
        })
        .collect();
    let shipped: Vec<(String, String)> = alerts
        .iter()
        .map(|r| {
            let name = r.alert.clone().unwrap_or_default();
            (name, r.for_.clone().unwrap_or_else(|| "-".to_owned()))
        })
        .collect();
    assert_eq!(
        table, shipped,
        "docs/alerts.md's alerts table vs the rule file"
    );
    let runbook = read(&root.join("docs/runbook.md"));
    for r in &alerts {
        let name = r.alert.as_deref().unwrap_or_default();
        let heading = format!("\n## {name}\n");
        assert!(
            runbook.contains(&heading),
            "docs/runbook.md has no section {name}"
        );
        let url = &r.annotations["runbook_url"];
        assert!(
            url.ends_with(&format!("/docs/runbook.md#{}", name.to_ascii_lowercase())),
            "{name}: {url}"
        );
    }
}

/// The status page's "Crashing now" counts what `DockerContainerCrashLooping` counts: as many
/// exits on their own with an error, in as long a window (the page reads its constants, the
/// alert the mixin's `crashLoopingExits` and its 10-minute records).
#[test]
fn the_pages_crash_threshold_is_the_alerts() {
    use docker_events_exporter::server::status::{CRASH_EXITS, CRASH_WINDOW_NANOS};
    let minutes = CRASH_WINDOW_NANOS / 60_000_000_000;
    assert_eq!(
        minutes * 60_000_000_000,
        CRASH_WINDOW_NANOS,
        "whole minutes"
    );
    let rules = rule_file(&read(
        &repo_root().join("alerts/docker-events-exporter.rules.yml"),
    ));
    let all: Vec<&Rule> = rules.groups.iter().flat_map(|g| &g.rules).collect();
    let alert = all
        .iter()
        .find(|r| r.alert.as_deref() == Some("DockerContainerCrashLooping"))
        .expect("the crash-loop alert");
    let exits = format!("docker_container:crash_exits:increase{minutes}m >= {CRASH_EXITS}");
    let restarts = format!("[{minutes}m]) >= {CRASH_EXITS}");
    assert!(
        alert.expr.contains(&exits) && alert.expr.contains(&restarts),
        "the alert counts {CRASH_EXITS} exits in {minutes}m, as the page does: {}",
        alert.expr
    );
    for record in [
        format!("docker_container:exits_nonzero:increase{minutes}m"),
        format!("docker_container:kills:increase{minutes}m"),
    ] {
        let rule = all
            .iter()
            .find(|r| r.record.as_deref() == Some(record.as_str()))
            .unwrap_or_else(|| panic!("the record {record}"));
        assert!(
            rule.expr.contains(&format!("[{minutes}m]")),
            "{record}: {}",
            rule.expr
        );
    }
}

#[test]
fn shipped_configs_validate() {
    run_ok(
        "promtool",
        &["check", "config", "deploy/prometheus/prometheus.yml"],
    );
    run_ok(
        "amtool",
        &["check-config", "deploy/alertmanager/alertmanager.yml"],
    );
    let config = run_ok("docker-compose", &["-f", "docker-compose.yml", "config"]);
    for service in ["exporter:", "prometheus:", "alertmanager:", "grafana:"] {
        assert!(config.contains(service), "{service} in {config}");
    }
    assert!(
        config.contains("/var/run/docker.sock:/var/run/docker.sock:ro"),
        "{config}"
    );
}

#[test]
fn dashboard_is_provisionable_and_every_panel_is_described() {
    let d = dashboard();
    assert_eq!(d["uid"], "docker-events-overview");
    assert!(
        d.get("__inputs").is_none(),
        "no __inputs: file provisioning cannot fill them"
    );
    let vars: Vec<&Value> = d["templating"]["list"]
        .as_array()
        .expect("variables")
        .iter()
        .collect();
    let names: Vec<&str> = vars.iter().filter_map(|v| v["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "datasource",
            "job",
            "instance",
            "engine",
            "compose_project",
            "name"
        ]
    );
    assert_eq!(vars[0]["type"], "datasource");
    assert_eq!(vars[0]["query"], "prometheus");
    for p in d["panels"].as_array().expect("panels") {
        let title = p["title"].as_str().unwrap_or_default();
        if p["type"] == "row" {
            continue;
        }
        assert!(
            p["description"].as_str().is_some_and(|s| !s.is_empty()),
            "{title}: description"
        );
        assert!(
            p["fieldConfig"]["defaults"]["unit"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{title}: unit"
        );
        assert_eq!(
            p["datasource"]["uid"], "${datasource}",
            "{title}: datasource variable"
        );
        for t in p["targets"].as_array().expect("targets") {
            assert_eq!(
                t["datasource"]["uid"], "${datasource}",
                "{title}: target datasource"
            );
        }
    }
    for (title, expr) in dashboard_queries(&d) {
        // Windows are $__rate_interval or $__range, or the alerts' own 10m/1h windows.
        for window in expr
            .split('[')
            .skip(1)
            .map(|w| w.split(']').next().unwrap_or_default())
        {
            assert!(
                ["$__rate_interval", "$__range", "10m", "1h"].contains(&window),
                "{title}: window [{window}] in {expr}"
            );
        }
    }
    let annotations: BTreeSet<&str> = d["annotations"]["list"]
        .as_array()
        .expect("annotations")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert!(
        annotations.contains("OOM kills") && annotations.contains("Crash loops"),
        "{annotations:?}"
    );
}

#[test]
fn real_prometheus_fires_the_container_alerts_and_every_panel_returns_data() {
    let image = test_image();
    let registry = Registry::start();
    // A rule with an action, so the rule-action panel has series too.
    let dir = tempdir("stack-rules");
    let rules = dir.join("rules.yml");
    std::fs::write(
        &rules,
        format!(
            "events_reactor:\n  audit:\n    event: {{type: container}}\n    log: {:?}\n",
            dir.join("audit.jsonl").display().to_string()
        ),
    )
    .expect("write rules");
    // A sink whose store is not there, so the sink panels have series (and failures) too.
    let history = dir.join("history");
    let sink = format!("otlp://127.0.0.1:{}", crate::support::free_port());
    let e = Exporter::start(&[
        "--config",
        rules.to_str().expect("utf-8"),
        "--history.dir",
        history.to_str().expect("utf-8"),
        "--sink",
        &sink,
    ]);
    let started = now() - 1.0;
    let target = format!("127.0.0.1:{}", e.port);
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [rules.yml]\n\
         scrape_configs:\n  - job_name: docker-events-exporter\n    static_configs:\n      - targets: ['{target}']\n"
    );
    // Thresholds a test can wait for; the restart loop is removed once its alert fired, before
    // its restart delay (doubling up to a minute) could pass the stuck threshold.
    let rules = rules_for_test(
        repo_root(),
        "stuckRestartingSeconds: 20, healthStartingSeconds: 10",
    );
    let prom = Prometheus::start(&config, &[("rules.yml", &rules)]);
    let scraped = wait_until(DEADLINE, || {
        prom.api(&format!(
            "/api/v1/query?query={}",
            encode("docker_events_exporter_up == 1")
        ))
        .is_ok_and(|d| d["result"].as_array().is_some_and(|r| !r.is_empty()))
    });
    assert!(scraped, "prometheus scrapes the exporter");

    let (crash, oom, stopped, healthy) = (
        unique("stack-crash"),
        unique("stack-oom"),
        unique("stack-stopped"),
        unique("stack-healthy"),
    );
    let (restart_loop, by_hand, stuck, starting) = (
        unique("stack-restart-loop"),
        unique("stack-by-hand"),
        unique("stack-stuck"),
        unique("stack-starting"),
    );
    // A Swarm service whose task dies each second: its slot crash-loops like a container.
    let _swarm = crate::support::swarm::Swarm::join();
    let service = unique("stack-sw");
    let _services = crate::support::swarm::RemoveServices(vec![service.clone()]);
    crate::support::swarm::create_service(&service, image, "sleep 1; exit 4");
    let service_slot = format!("{service}.1");
    let _c = Cleanup(vec![
        crash.clone(),
        oom.clone(),
        stopped.clone(),
        healthy.clone(),
        restart_loop.clone(),
        by_hand.clone(),
        stuck.clone(),
        starting.clone(),
    ]);
    // Exits 0 a second after each start, restarted by its policy forever.
    docker(&[
        "run",
        "-d",
        "--name",
        &restart_loop,
        "--restart",
        "always",
        image,
        "sh",
        "-c",
        "sleep 1; exit 0",
    ]);
    // Its restart fails (the bind mount's source is gone): the engine leaves it exited.
    let mount = dir.join("mount");
    std::fs::create_dir(&mount).expect("mount source");
    docker(&[
        "run",
        "-d",
        "--name",
        &stuck,
        "--restart",
        "always",
        "--mount",
        &format!("type=bind,src={},dst=/x", mount.display()),
        image,
        "sh",
        "-c",
        "sleep 1; exit 1",
    ]);
    std::fs::remove_dir(&mount).expect("remove the mount source");
    // Its probe never passes, and never fails often enough in a row to be unhealthy.
    docker(&[
        "run",
        "-d",
        "--name",
        &starting,
        "--health-cmd",
        "false",
        "--health-interval",
        "1s",
        "--health-retries",
        "100000",
        image,
        "sleep",
        "300",
    ]);
    // Restarted three times by a person: no loop.
    docker(&["run", "-d", "--name", &by_hand, image, "sleep", "300"]);
    for _ in 0..3 {
        docker(&["restart", "-t", "0", &by_hand]);
    }
    docker(&["run", "-d", "--name", &stopped, image, "sleep", "300"]);
    crate::support::run_healthy(&healthy);
    docker(&[
        "run",
        "-d",
        "--name",
        &crash,
        "--restart",
        "on-failure:5",
        image,
        "sh",
        "-c",
        "sleep 0.3; exit 3",
    ]);
    crate::support::run_oom_killed(&oom);
    // Stopped on purpose: SIGTERM (ignored by sleep as PID 1), then SIGKILL after 1 s.
    docker(&["stop", "-t", "1", &stopped]);
    let _pulled = registry.push_and_pull(image, "stack-img");

    // Two user execs with a scrape between them, so the exec histogram (born at its first
    // observation) shows an increase.
    let has = |q: &str| {
        prom.api(&format!("/api/v1/query?query={}", encode(q)))
            .is_ok_and(|d| d["result"].as_array().is_some_and(|r| !r.is_empty()))
    };
    docker(&["exec", &healthy, "true"]);
    let q = format!("docker_container_execs_total{{name=\"{healthy}\"}} == 1");
    assert!(
        wait_until(DEADLINE, || has(&q)),
        "prometheus saw the first exec"
    );
    docker(&["exec", &healthy, "true"]);

    let firing = |alert: &str, name: &str| {
        prom.alerts()
            .iter()
            .any(|(a, state, labels)| a == alert && state == "firing" && labels["name"] == name)
    };
    let mut alerts = Vec::new();
    let fired = wait_until(Duration::from_secs(60), || {
        alerts = prom.alerts();
        firing("DockerContainerRestartLooping", &restart_loop)
    });
    assert!(
        fired,
        "the restart loop of exits 0 fires; alerts now: {alerts:#?}"
    );
    docker(&["rm", "-f", &restart_loop]);
    let fired = wait_until(Duration::from_secs(90), || {
        alerts = prom.alerts();
        firing("DockerContainerCrashLooping", &crash)
            && firing("DockerContainerCrashLooping", &service_slot)
            && firing("DockerContainerOOMKilled", &oom)
            && firing("DockerContainerStuckRestarting", &stuck)
            && firing("DockerContainerHealthStartingTooLong", &starting)
    });
    assert!(
        fired,
        "crash-loop (a container's and a Swarm slot's), OOM, stuck and health-starting alerts fire; alerts now: {alerts:#?}"
    );

    // The stopped container: once Prometheus has evaluated the rules on its exit for a few
    // seconds, nothing fires (or is pending) for it.
    wait_status(&stopped, "exited");
    let q = format!("docker_container_state{{name=\"{stopped}\",state=\"exited\"}} == 1");
    let stop_seen = wait_until(DEADLINE, || has(&q));
    assert!(stop_seen, "prometheus saw {stopped} exit");
    let after = now() + 3.0;
    let evaluated = wait_until(DEADLINE, || {
        prom.api("/api/v1/rules").is_ok_and(|d| {
            d["groups"].as_array().is_some_and(|groups| {
                groups.iter().all(|g| {
                    g["lastEvaluation"]
                        .as_str()
                        .and_then(rfc3339_secs)
                        .is_some_and(|t| t > after)
                })
            })
        })
    });
    assert!(evaluated, "rules evaluated after the stop");
    let alerts = prom.alerts();
    let about = |name: &str| -> Vec<&str> {
        alerts
            .iter()
            .filter(|(_, _, l)| l["name"] == name)
            .map(|(a, _, _)| a.as_str())
            .collect()
    };
    assert_eq!(
        about(&stopped),
        Vec::<&str>::new(),
        "a container stopped on purpose fires nothing"
    );
    assert_eq!(
        about(&by_hand),
        Vec::<&str>::new(),
        "a container restarted three times by hand fires nothing"
    );
    assert_eq!(about(&healthy), Vec::<&str>::new(), "a healthy one neither");
    assert!(
        !about(&crash).contains(&"DockerContainerRestartLooping"),
        "a crash loop pages once, as DockerContainerCrashLooping: {:?}",
        about(&crash)
    );

    // Every dashboard query parses and, with the variables filled in, returns data.
    let fill = |expr: &str| {
        expr.replace("$job", "docker-events-exporter")
            .replace("$instance", &target)
            .replace("$engine", ".*")
            .replace("$compose_project", ".*")
            .replace("$name", ".*")
            .replace("$__rate_interval", "5s")
            .replace("$__range", "5m")
    };
    let end = now();
    let mut empty = Vec::new();
    for (title, expr) in dashboard_queries(&dashboard()) {
        let data = prom
            .query_range(&fill(&expr), started, end, "1s")
            .unwrap_or_else(|err| panic!("{title}: {expr} does not run: {err}"));
        let has_data = data["result"].as_array().is_some_and(|series| {
            series.iter().any(|s| {
                s["values"]
                    .as_array()
                    .is_some_and(|v| v.iter().any(|p| p[1].as_str().is_some_and(|x| x != "NaN")))
            })
        });
        if !has_data {
            empty.push(format!("{title}: {}", fill(&expr)));
        }
    }
    assert!(
        empty.is_empty(),
        "panels without data:\n{}",
        empty.join("\n")
    );
    for (label, matcher) in [
        ("job", "docker_events_exporter_build_info".to_owned()),
        (
            "instance",
            "docker_events_exporter_build_info{job=~\"docker-events-exporter\"}".to_owned(),
        ),
        (
            "name",
            format!(
                "docker_container_state{{job=~\"docker-events-exporter\", instance=~\"{target}\"}}"
            ),
        ),
    ] {
        let values = prom
            .api(&format!(
                "/api/v1/label/{label}/values?match[]={}",
                encode(&matcher)
            ))
            .expect("label values");
        assert!(
            values.as_array().is_some_and(|v| !v.is_empty()),
            "variable {label} has values"
        );
    }
}

#[test]
fn exporter_image_builds_without_a_registry_and_serves_metrics_as_non_root() {
    // The user image builds on rust and distroless images, which cannot be pulled here; this
    // one wraps the same binary, with the libraries it links, in an image FROM scratch.
    let bin = env!("CARGO_BIN_EXE_docker-events-exporter");
    let ctx = tempdir("image-ctx");
    let root = ctx.join("rootfs");
    let ldd = run_ok("ldd", &[bin]);
    let mut files: Vec<String> = ldd
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with('/'))
                .map(str::to_owned)
        })
        .collect();
    files.push(bin.to_owned());
    for f in &files {
        let dest = if f == bin {
            root.join("usr/local/bin/docker-events-exporter")
        } else {
            root.join(f.trim_start_matches('/'))
        };
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        std::fs::copy(f, &dest).unwrap_or_else(|e| panic!("copy {f}: {e}"));
    }
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY rootfs/ /\nUSER 65532:65532\nEXPOSE 10050\nENTRYPOINT [\"/usr/local/bin/docker-events-exporter\"]\n",
    )
    .expect("Dockerfile");
    let tag = format!("{}:test", unique("exporter-image"));
    let _rm = RemoveImage(tag.clone());
    let out = Command::new("docker")
        .args(["build", "-q", "-t", &tag])
        .arg(&ctx)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .expect("docker build runs");
    assert!(
        out.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let name = unique("exporter-container");
    let _c = Cleanup(vec![name.clone()]);
    let port = free_port();
    let gid = run_ok("stat", &["-c", "%g", "/var/run/docker.sock"])
        .trim()
        .to_owned();
    let listen = format!("127.0.0.1:{port}");
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "host",
        "--group-add",
        &gid,
        "-v",
        "/var/run/docker.sock:/var/run/docker.sock:ro",
        &tag,
        "--web.listen-address",
        &listen,
    ]);
    let ready = wait_until(DEADLINE, || {
        http_get(port, "/-/ready").is_some_and(|(s, _)| s == 200)
    });
    assert!(
        ready,
        "the containerised exporter subscribes; logs:\n{}",
        docker(&["logs", &name])
    );
    let (_, body) = http_get(port, "/metrics").expect("scrape");
    assert!(body.contains("docker_engine_info{"), "{body}");
    assert_eq!(
        docker(&["inspect", "-f", "{{.Config.User}}", &name]),
        "65532:65532"
    );
    let size = docker(&["image", "inspect", "-f", "{{.Size}}", &tag]);
    eprintln!("test image {tag}: {size} bytes (debug binary and its libraries)");
}
