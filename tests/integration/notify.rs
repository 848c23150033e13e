//! Notifications against real peers: Debian's `apprise` CLI as the reference for what ntfy,
//! Gotify, Matrix and a JSON endpoint expect (both sent to one capture server and compared), a
//! capture server standing in for the services that cannot be self-hosted (through each
//! preset's `base_url`), and a real Alertmanager read back with amtool.

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::support::alertmanager::Alertmanager;
use crate::support::capture::{Capture, Captured, matrix_answers};
use crate::support::{
    Cleanup, DEADLINE, Exporter, actions, docker, rules_config, tempdir, test_image, unique,
    wait_until,
};

const MATRIX_TOKEN: &str = "syt-matrix-s3cret";

/// Waits until `rule`'s `action` has counted `n` of `outcome`.
fn wait_actions(e: &Exporter, rule: &str, action: &str, outcome: &str, n: f64) {
    e.wait_for(
        "docker_events_exporter_actions_total",
        &[("rule", rule), ("action", action), ("outcome", outcome)],
        n,
    );
}

/// A rule firing on the start of the container `name`.
fn on_start(name: &str) -> String {
    format!("event: {{type: container, action: start, actor: {{name: {name}}}}}")
}

fn form(body: &str) -> HashMap<String, String> {
    form_urlencoded::parse(body.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The request as compared: method, path, the headers that carry meaning, the body.
fn shape(r: &Captured) -> (String, String, Vec<(String, String)>, Value) {
    let headers = [
        "content-type",
        "x-priority",
        "x-tags",
        "x-gotify-key",
        "authorization",
    ]
    .iter()
    .filter_map(|h| r.header(h).map(|v| ((*h).to_owned(), v.to_owned())))
    .collect();
    (r.method.clone(), r.path.clone(), headers, r.json())
}

#[test]
fn apprise_and_notify_send_the_same_requests_to_ntfy_gotify_matrix_and_json() {
    let image = test_image();
    let cap = Capture::start(|r| matrix_answers(r, MATRIX_TOKEN));
    let at = format!("127.0.0.1:{}", cap.port);
    let urls = [
        format!("ntfy://{at}/alerts?priority=high&tags=warning,skull"),
        format!("gotify://{at}/gotify/gotify-s3cret?priority=high"),
        format!("matrix://bot:{MATRIX_TOKEN}@{at}/#ops"),
        format!("json://{at}/json-hook"),
    ];
    let (title, body) = (
        "Container web-1 died",
        "exit code 137 on host h1 (image x:1)",
    );
    let out = Command::new("apprise")
        .args(["-vv", "-n", "failure", "-t", title, "-b", body])
        .args(&urls)
        .output()
        .expect("apprise runs (apt-get install apprise)");
    assert!(
        out.status.success(),
        "apprise: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs = cap.requests();
    cap.clear();

    let dir = tempdir("notify-apprise");
    let name = unique("apprise");
    let targets: String = urls
        .iter()
        .map(|u| format!("      - {{url: {u:?}, title: {title:?}, message: {body:?}}}\n"))
        .collect();
    let cfg = rules_config(
        &dir,
        &format!(
            "events_reactor:\n  compare:\n    {}\n    notify:\n{targets}",
            on_start(&name)
        ),
    );
    let e = Exporter::start(&["--config", cfg.to_str().expect("utf-8")]);
    let _c = Cleanup(vec![name.clone()]);
    docker(&["run", "-d", "--name", &name, image, "true"]);
    wait_actions(&e, "compare", "notify", "success", 1.0);
    let ours = cap.requests();

    type Which = dyn Fn(&Captured) -> bool;
    let pick = |all: &[Captured], f: &Which| -> Vec<_> {
        all.iter().filter(|r| f(r)).map(shape).collect()
    };
    // ntfy, Gotify and the JSON endpoint: the same request, field for field.
    let same: [(&str, &Which); 3] = [
        ("ntfy", &|r| r.path == "/"),
        ("gotify", &|r| r.path.starts_with("/gotify/")),
        ("json", &|r| r.path == "/json-hook"),
    ];
    for (service, f) in same {
        let (a, b) = (pick(&theirs, f), pick(&ours, f));
        assert_eq!(a.len(), 1, "{service}: apprise sent {theirs:#?}");
        assert_eq!(b, a, "{service}: ours, then apprise's");
    }
    let ntfy = pick(&ours, &|r| r.path == "/");
    assert_eq!(
        ntfy[0].3,
        serde_json::json!({"topic": "alerts", "title": title, "message": body})
    );

    // Matrix: the same join and the same message; where they differ, they differ as the
    // README says: the current v3 API and its PUT with a transaction ID (a retry is not a
    // second message), where Apprise 1.2 logs in with the token as a password and POSTs to r0.
    let matrix = |all: &[Captured], what: &str| -> Vec<Captured> {
        all.iter()
            .filter(|r| r.path.starts_with("/_matrix/") && r.path.contains(what))
            .cloned()
            .collect()
    };
    let (their_join, our_join) = (matrix(&theirs, "/join/"), matrix(&ours, "/join/"));
    assert_eq!(
        (their_join.len(), our_join.len()),
        (1, 1),
        "{theirs:#?}\n{ours:#?}"
    );
    assert_eq!(
        our_join[0].path.replace("/v3/", "/r0/"),
        their_join[0].path,
        "the room alias"
    );
    assert_eq!(our_join[0].method, "POST");
    let (their_send, our_send) = (matrix(&theirs, "/send/"), matrix(&ours, "/send/"));
    assert_eq!((their_send.len(), our_send.len()), (1, 1));
    let (t, o) = (&their_send[0], &our_send[0]);
    assert_eq!((t.method.as_str(), o.method.as_str()), ("POST", "PUT"));
    let ours_path = o.path.replace("/v3/", "/r0/");
    assert!(
        ours_path.starts_with(&format!("{}/", t.path)),
        "{ours_path} is {} and a transaction ID",
        t.path
    );
    for field in ["msgtype", "body"] {
        assert_eq!(o.json()[field], t.json()[field], "matrix {field}");
    }
    assert_eq!(
        o.header("authorization"),
        t.header("authorization"),
        "the access token"
    );
    assert_eq!(
        o.header("authorization"),
        Some(format!("Bearer {MATRIX_TOKEN}").as_str())
    );
    assert!(matrix(&ours, "/login").is_empty(), "a token needs no login");
    let log = e.log();
    assert!(!log.contains("s3cret"), "a secret in the log:\n{log}");
}

/// The services people cannot run themselves, through a capture server, with every URL from
/// the environment or a file; plus a real Alertmanager. The issue's "done when".
#[test]
fn a_container_unhealthy_then_healthy_notifies_each_service_once_and_resolves_its_alert() {
    let cap = Capture::start(|r| matrix_answers(r, MATRIX_TOKEN));
    let am = Alertmanager::start();
    let (base, at) = (cap.base(), format!("127.0.0.1:{}", cap.port));
    let dir = tempdir("notify-done");
    let tgram_file = dir.join("tgram.url");
    std::fs::write(&tgram_file, "tgram://4242:tgram-s3cret/-1001\n").expect("write url file");
    let env = [
        ("DEE_NTFY", format!("ntfy://ops:ntfy-s3cret@{at}/alerts")),
        ("DEE_GOTIFY", format!("gotify://{at}/gotify/gotify-s3cret")),
        ("DEE_DISCORD", "discord://4242/discord-s3cret".to_owned()),
        ("DEE_SLACK", "slack://T0001/B0002/slack-s3cret".to_owned()),
        ("DEE_MATRIX", format!("matrix://bot:{MATRIX_TOKEN}@{at}/#ops")),
        (
            "DEE_TEAMS",
            "teams://example.logic.azure.com/workflows/w1/triggers/manual/paths/invoke?api-version=2016-06-01&sig=teams-s3cret".to_owned(),
        ),
        ("DEE_PUSHOVER", "pover://user-s3cret@app-s3cret".to_owned()),
        ("DEE_JSON", format!("json://hook:json-s3cret@{at}/json-hook")),
    ];
    let name = unique("done");
    let cfg = rules_config(
        &dir,
        &format!(
            "events_reactor:\n  unhealthy:\n    event: {{type: container, action: \"health_status: unhealthy\", actor: {{name: {name}}}}}\n    \
             resolve: {{action: \"health_status: healthy\"}}\n    notify:\n\
             \x20     - {{url_from_env: DEE_NTFY}}\n\
             \x20     - {{url_from_env: DEE_GOTIFY}}\n\
             \x20     - {{url_from_env: DEE_DISCORD, base_url: {base:?}}}\n\
             \x20     - {{url_from_env: DEE_SLACK, base_url: {base:?}}}\n\
             \x20     - {{url_file: {tgram:?}, base_url: {base:?}}}\n\
             \x20     - {{url_from_env: DEE_MATRIX}}\n\
             \x20     - {{url_from_env: DEE_TEAMS, base_url: {base:?}}}\n\
             \x20     - {{url_from_env: DEE_PUSHOVER, base_url: {base:?}}}\n\
             \x20     - {{url_from_env: DEE_JSON}}\n    \
             alertmanager: {{url: {am:?}, labels: {{severity: warning}}, resend_interval: 1h}}\n",
            tgram = tgram_file.display().to_string(),
            am = am.url(),
        ),
    );
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let e = Exporter::start_with_env(&["--config", cfg.to_str().expect("utf-8")], &env_refs);
    let _c = Cleanup(vec![name.clone()]);
    // Unhealthy from its first probe, until the test makes it healthy.
    crate::support::run_unhealthy(&name);
    wait_actions(&e, "unhealthy", "notify", "success", 1.0);
    let matchers = format!("name={name}");
    let active = wait_until(DEADLINE, || am.query(&[&matchers]).len() == 1);
    let alerts = am.query(&[&matchers]);
    assert!(active, "one active alert: {alerts:#?}\n{}", e.log());
    assert_eq!(alerts[0]["labels"]["alertname"], "unhealthy");
    assert_eq!(alerts[0]["labels"]["severity"], "warning");
    assert_eq!(alerts[0]["status"]["state"], "active");

    crate::support::make_healthy(&name);
    wait_actions(&e, "unhealthy", "notify", "success", 2.0);
    e.wait_for(
        "docker_events_exporter_rule_resolutions_total",
        &[("rule", "unhealthy")],
        1.0,
    );
    // Resolved: in none of the states amtool shows (active, silenced, inhibited, unprocessed).
    let any = ["-a", "-s", "-i", "-u", matchers.as_str()];
    let resolved = wait_until(DEADLINE, || am.query(&any).is_empty());
    assert!(resolved, "resolved: {:#?}", am.query(&any));
    wait_actions(&e, "unhealthy", "alertmanager", "success", 2.0);

    let host = docker(&["info", "-f", "{{.Name}}"]);
    // The default titles, each value escaped as `escape` does.
    let titles = |escape: &dyn Fn(&str) -> String| {
        let (h, n) = (escape(&host), escape(&name));
        (
            format!(
                "[{h}] container {n}: {}",
                escape("health_status: unhealthy")
            ),
            format!(
                "[{h}] recovered: container {n}: {}",
                escape("health_status: healthy")
            ),
        )
    };
    let (firing, recovered) = titles(&|s| s.to_owned());
    let (md_firing, md_recovered) = titles(&|s| {
        s.chars().fold(String::new(), |mut out, c| {
            if "\\`*_{}[]()<>#+-.!|~".contains(c) {
                out.push('\\');
            }
            out.push(c);
            out
        })
    });
    // Where each service's title is: the path its requests go to, and the JSON pointer to
    // the text whose first line it is (Pushover's is a form field).
    let services: [(&str, &str, &str); 9] = [
        ("ntfy", "/", "/title"),
        ("gotify", "/gotify/message", "/title"),
        (
            "discord",
            "/api/webhooks/4242/discord-s3cret",
            "/embeds/0/title",
        ),
        ("slack", "/services/T0001/B0002/slack-s3cret", "/text"),
        ("telegram", "/bot4242:tgram-s3cret/sendMessage", "/text"),
        ("matrix", "/_matrix/client/v3/rooms/", "/body"),
        (
            "teams",
            "/workflows/w1/triggers/manual/paths/invoke?api-version=2016-06-01&sig=teams-s3cret",
            "/attachments/0/content/body/0/text",
        ),
        ("pushover", "/1/messages.json", ""),
        ("json", "/json-hook", "/title"),
    ];
    let title = |r: &Captured, pointer: &str| -> String {
        let text = match pointer {
            "" => form(&r.body).remove("title").unwrap_or_default(),
            p => r
                .json()
                .pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        };
        text.lines().next().unwrap_or_default().to_owned()
    };
    let all = cap.requests();
    for (service, path, pointer) in services {
        let got: Vec<String> = all
            .iter()
            .filter(|r| {
                if path == "/" {
                    r.path == "/"
                } else {
                    r.path.starts_with(path)
                }
            })
            .map(|r| title(r, pointer))
            .collect();
        let want = match service {
            "discord" | "teams" => vec![md_firing.clone(), md_recovered.clone()],
            "slack" => vec![format!("*{firing}*"), format!("*{recovered}*")],
            "telegram" => vec![format!("<b>{firing}</b>"), format!("<b>{recovered}</b>")],
            "matrix" => vec![format!("# {firing}"), format!("# {recovered}")],
            _ => vec![firing.clone(), recovered.clone()],
        };
        assert_eq!(got, want, "{service}: one unhealthy, then one recovered");
    }
    // Service details the presets promise.
    let one = |path: &str| {
        all.iter()
            .find(|r| r.path.starts_with(path))
            .cloned()
            .unwrap_or_else(|| panic!("no request to {path}"))
    };
    let ntfy: Vec<&Captured> = all.iter().filter(|r| r.path == "/").collect();
    assert_eq!(
        ntfy.iter().map(|r| r.header("x-tags")).collect::<Vec<_>>(),
        [Some("warning"), Some("white_check_mark")]
    );
    assert!(
        ntfy[0]
            .header("authorization")
            .is_some_and(|a| a.starts_with("Basic ")),
        "ntfy's user and password"
    );
    let discord = one("/api/webhooks/");
    assert_eq!(discord.json()["embeds"][0]["color"], 0x00E7_4C3C);
    assert_eq!(
        discord.json()["allowed_mentions"]["parse"],
        serde_json::json!([])
    );
    assert_eq!(one("/bot").json()["parse_mode"], "HTML");
    assert_eq!(one("/bot").json()["chat_id"], "-1001");
    let pushover = form(&one("/1/messages.json").body);
    assert_eq!(
        (pushover["user"].as_str(), pushover["token"].as_str()),
        ("user-s3cret", "app-s3cret")
    );
    assert_eq!(one("/json-hook").json()["type"], "failure");

    // No secret in the log or the metrics; the log names each target masked.
    let log = e.log();
    let metrics = crate::support::http_get(e.port, "/metrics")
        .expect("metrics")
        .1;
    for (what, text) in [("log", &log), ("metrics", &metrics)] {
        assert!(!text.contains("s3cret"), "a secret in the {what}:\n{text}");
    }
    assert!(
        log.contains("discord://4242/****") && log.contains("pover://****@****"),
        "masked URLs in the log:\n{log}"
    );
}

/// An alert waiting for its resolving event (or its condition's end) is posted again each
/// `resend_interval`, with `endsAt` four intervals on: it stays active past the first four
/// while the exporter lives, and once the exporter is SIGKILLed, Alertmanager resolves it by
/// itself (the container is still unhealthy, so no resolving event was sent). The same for an
/// event rule with `resolve` and for a condition.
#[test]
fn an_open_alert_is_renewed_while_the_exporter_lives_and_ends_without_it() {
    const INTERVAL_SECS: f64 = 2.0;
    let am = Alertmanager::start();
    let dir = tempdir("am-resend");
    let name = unique("resend");
    let cfg = rules_config(
        &dir,
        &format!(
            "events_reactor:\n  unhealthy:\n    event: {{type: container, action: \"health_status: unhealthy\", actor: {{name: {name}}}}}\n    \
             resolve: {{action: \"health_status: healthy\"}}\n    \
             alertmanager: {{url: {am:?}, resend_interval: {INTERVAL_SECS}s}}\n  \
             unhealthy for long:\n    condition: {{unhealthy: {{for: 1s}}}}\n    event: {{actor: {{name: {name}}}}}\n    \
             alertmanager: {{url: {am:?}, resend_interval: {INTERVAL_SECS}s}}\n",
            am = am.url(),
        ),
    );
    let e = Exporter::start(&["--config", cfg.to_str().expect("utf-8")]);
    let _c = Cleanup(vec![name.clone()]);
    crate::support::run_probed(&name, "false", &["sleep", "300"]);
    let matchers = format!("name={name}");
    let active = wait_until(DEADLINE, || am.query(&[&matchers]).len() == 2);
    assert!(active, "the two alerts are active; log:\n{}", e.log());
    // Posted again until past the first post's endsAt (four intervals): still active. The
    // count grows every interval, so it is waited for as at least, not exactly.
    let posts = || actions(&e, "unhealthy", "alertmanager", "success").unwrap_or(0.0);
    assert!(
        wait_until(DEADLINE, || posts() >= 6.0),
        "five resends after the first post: {} posts; log:\n{}",
        posts(),
        e.log()
    );
    let alerts = am.query(&[&matchers]);
    let mut names: Vec<&str> = alerts
        .iter()
        .map(|a| a["labels"]["alertname"].as_str().unwrap_or_default())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["unhealthy", "unhealthy for long"],
        "still active after five resends: {alerts:#?}"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after the epoch")
        .as_secs_f64();
    for alert in &alerts {
        assert_eq!(alert["status"]["state"], "active");
        let ends = alert["endsAt"]
            .as_str()
            .and_then(crate::support::rfc3339_secs);
        let held = ends.map(|t| t - now);
        assert!(
            held.is_some_and(|h| h > 0.0 && h <= 4.0 * INTERVAL_SECS + 1.0),
            "endsAt four intervals after the last post, not later: {held:?} s from now"
        );
    }

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(e.pid() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("SIGKILL");
    let resolved = wait_until(DEADLINE, || am.query(&[&matchers]).is_empty());
    assert!(
        resolved,
        "Alertmanager resolved it by itself: {:#?}",
        am.query(&[&matchers])
    );
    let status = docker(&["inspect", "-f", "{{.State.Health.Status}}", &name]);
    assert_eq!(status, "unhealthy", "no resolving event happened");
}

#[test]
fn a_429_with_retry_after_is_retried_after_a_second() {
    let image = test_image();
    let limited = Arc::new(AtomicBool::new(false));
    let once = limited.clone();
    let cap = Capture::start(move |r| {
        (r.path.starts_with("/api/webhooks/") && !once.swap(true, Ordering::SeqCst)).then(|| {
            (
                429,
                vec![("Retry-After".to_owned(), "1".to_owned())],
                r#"{"message": "You are being rate limited.", "retry_after": 1.0}"#.to_owned(),
            )
        })
    });
    let dir = tempdir("notify-429");
    let name = unique("ratelimit");
    let cfg = rules_config(
        &dir,
        &format!(
            "events_reactor:\n  limited:\n    {}\n    notify: {{url_from_env: DEE_DISCORD, base_url: {:?}}}\n",
            on_start(&name),
            cap.base()
        ),
    );
    let e = Exporter::start_with_env(
        &["--config", cfg.to_str().expect("utf-8")],
        &[("DEE_DISCORD", "discord://1/discord-s3cret")],
    );
    let _c = Cleanup(vec![name.clone()]);
    docker(&["run", "-d", "--name", &name, image, "true"]);
    wait_actions(&e, "limited", "notify", "success", 1.0);
    let got = cap.to("/api/webhooks/1/discord-s3cret");
    assert_eq!(got.len(), 2, "a 429, then the retry: {got:#?}");
    assert_eq!(got[0].body, got[1].body, "the same message");
    let waited = got[1].at.duration_since(got[0].at);
    assert!(
        waited >= Duration::from_millis(950),
        "the retry waited {waited:?}, not the second Retry-After asked"
    );
    assert_eq!(actions(&e, "limited", "notify", "failure"), Some(0.0));
}

#[test]
fn an_amtool_silence_holds_the_exporters_alert() {
    let image = test_image();
    let am = Alertmanager::start();
    let name = unique("silenced");
    let matcher = format!("name={name}");
    am.amtool(&[
        "silence",
        "add",
        &matcher,
        "--author",
        "dee-test",
        "--comment",
        "maintenance",
        "--duration",
        "1h",
    ])
    .expect("amtool silence add");
    let dir = tempdir("notify-silence");
    let cfg = rules_config(
        &dir,
        &format!(
            "events_reactor:\n  started:\n    {}\n    alertmanager: {{url: {:?}, resolve_after: 1h}}\n",
            on_start(&name),
            am.url()
        ),
    );
    let e = Exporter::start(&["--config", cfg.to_str().expect("utf-8")]);
    let _c = Cleanup(vec![name.clone()]);
    docker(&["run", "-d", "--name", &name, image, "true"]);
    wait_actions(&e, "started", "alertmanager", "success", 1.0);
    let held = wait_until(DEADLINE, || {
        am.query(&["--silenced", &matcher])
            .first()
            .is_some_and(|a| a["status"]["state"] == "suppressed")
    });
    let silenced = am.query(&["--silenced", &matcher]);
    assert!(
        held,
        "suppressed by the silence: {silenced:#?}\n{}",
        am.log()
    );
    assert_eq!(silenced.len(), 1);
    assert_eq!(silenced[0]["labels"]["alertname"], "started");
    assert_eq!(
        silenced[0]["status"]["silencedBy"].as_array().map(Vec::len),
        Some(1)
    );
    assert!(
        am.query(&[&matcher]).is_empty(),
        "not among the active ones"
    );
}

#[test]
fn dry_run_shows_notify_urls_masked_and_sends_nothing() {
    let image = test_image();
    let cap = Capture::start(|_| None);
    let dir = tempdir("notify-dry");
    let name = unique("notify-dry");
    let cfg = rules_config(
        &dir,
        &format!(
            "events_reactor:\n  dry:\n    {}\n    notify: {{url_from_env: DEE_TGRAM, base_url: {:?}}}\n    alertmanager: {{url_from_env: DEE_AM}}\n",
            on_start(&name),
            cap.base()
        ),
    );
    let e = Exporter::start_with_env(
        &["--config", cfg.to_str().expect("utf-8"), "--dry-run"],
        &[
            ("DEE_TGRAM", "tgram://777:tgram-s3cret/55"),
            (
                "DEE_AM",
                &format!("http://am:am-s3cret@127.0.0.1:{}", cap.port),
            ),
        ],
    );
    let _c = Cleanup(vec![name.clone()]);
    docker(&["run", "-d", "--name", &name, image, "true"]);
    wait_actions(&e, "dry", "notify", "success", 1.0);
    wait_actions(&e, "dry", "alertmanager", "success", 1.0);
    let log = e.log();
    assert!(log.contains("dry run: would notify"), "{log}");
    assert!(log.contains("tgram://****/55"), "{log}");
    assert!(log.contains("http://am:****@127.0.0.1"), "{log}");
    assert!(
        log.contains(&format!("container {name}: start")),
        "the rendered title: {log}"
    );
    assert!(!log.contains("s3cret"), "a secret in the dry run:\n{log}");
    assert!(cap.requests().is_empty(), "a dry run sends nothing");
}

/// A 4xx other than 429 is final: not retried, counted as a failure, its reason logged with the
/// target masked; the other target of the rule still gets its message.
#[test]
fn a_refused_message_is_not_retried_and_its_reason_is_logged_masked() {
    let image = test_image();
    let cap = Capture::start(|r| {
        r.path.starts_with("/bot").then(|| {
            (
                400,
                Vec::new(),
                r#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#
                    .to_owned(),
            )
        })
    });
    let dir = tempdir("notify-400");
    let name = unique("refused");
    let cfg = rules_config(
        &dir,
        &format!(
            "events_reactor:\n  refused:\n    {}\n    notify:\n      - {{url_from_env: DEE_TGRAM, base_url: {base:?}}}\n      - {{url: \"json://127.0.0.1:{port}/json-hook\"}}\n",
            on_start(&name),
            base = cap.base(),
            port = cap.port,
        ),
    );
    let e = Exporter::start_with_env(
        &["--config", cfg.to_str().expect("utf-8")],
        &[("DEE_TGRAM", "tgram://777:tgram-s3cret/55")],
    );
    let _c = Cleanup(vec![name.clone()]);
    docker(&["run", "-d", "--name", &name, image, "true"]);
    wait_actions(&e, "refused", "notify", "failure", 1.0);
    assert_eq!(cap.to("/bot").len(), 1, "not retried");
    assert_eq!(
        cap.to("/json-hook").len(),
        1,
        "the other target was sent to"
    );
    assert_eq!(actions(&e, "refused", "notify", "success"), Some(0.0));
    let log = e.log();
    assert!(
        log.contains(r#"tgram://****/55 answered 400 Bad Request ({\"ok\":false,\"error_code\":400,\"description\":\"Bad Request: chat not found\"}); not retried"#),
        "{log}"
    );
    assert!(!log.contains("s3cret"), "{log}");
}
