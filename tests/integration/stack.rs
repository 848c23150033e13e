//! The shipped assets, tested for real: alert rules (promtool), configs, the dashboard, a real
//! Prometheus scraping the exporter while containers crash-loop and get OOM-killed, and the
//! exporter image.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::support::prometheus::{Prometheus, encode, rules_for_test};
use crate::support::registry::Registry;
use crate::support::{
    Cleanup, DEADLINE, Exporter, RemoveImage, docker, free_port, http_get, repo_root, rfc3339_secs,
    tempdir, test_image, unique, wait_status, wait_until,
};

fn run_ok(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("{cmd} runs: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd} {args:?} failed:\n{text}");
    text
}

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
    assert!(out.contains("SUCCESS: 17 rules found"), "{out}");
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
        ["datasource", "job", "instance", "compose_project", "name"]
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
fn real_prometheus_fires_crash_loop_and_oom_alerts_and_every_panel_returns_data() {
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
    let e = Exporter::start(&["--config", rules.to_str().expect("utf-8")]);
    let started = now() - 1.0;
    let target = format!("127.0.0.1:{}", e.port);
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [rules.yml]\n\
         scrape_configs:\n  - job_name: docker-events-exporter\n    static_configs:\n      - targets: ['{target}']\n"
    );
    let prom = Prometheus::start(&config, &[("rules.yml", &rules_for_test(repo_root()))]);
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
    let _c = Cleanup(vec![
        crash.clone(),
        oom.clone(),
        stopped.clone(),
        healthy.clone(),
    ]);
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
    docker(&[
        "run",
        "-d",
        "--name",
        &oom,
        "-m",
        "8m",
        "--memory-swap",
        "8m",
        image,
        "tail",
        "/dev/zero",
    ]);
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
    let fired = wait_until(Duration::from_secs(90), || {
        alerts = prom.alerts();
        firing("DockerContainerCrashLooping", &crash) && firing("DockerContainerOOMKilled", &oom)
    });
    assert!(
        fired,
        "crash-loop and OOM alerts fire; alerts now: {alerts:#?}"
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
    let about_stopped: Vec<_> = prom
        .alerts()
        .into_iter()
        .filter(|(_, _, l)| l["name"] == stopped.as_str())
        .collect();
    assert!(
        about_stopped.is_empty(),
        "a container stopped on purpose fires nothing: {about_stopped:#?}"
    );

    // Every dashboard query parses and, with the variables filled in, returns data.
    let fill = |expr: &str| {
        expr.replace("$job", "docker-events-exporter")
            .replace("$instance", &target)
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
