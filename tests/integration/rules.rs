//! The rules layer against the real engine and real peers: a command that records its argv, a
//! local HTTP server, a local SMTP server (Debian's aiosmtpd), a hanging command, a flood, a
//! reload with a broken file, check-config and dry-run.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::support::{
    Cleanup, DEADLINE, Exporter, PYTHON, RECORD_ARGV, actions, docker, file_lines as lines,
    free_port, logged_actions, make_healthy, repo_root, rules_config, run_unhealthy, tempdir,
    test_image, unique, wait_status, wait_until,
};

#[test]
fn run_passes_a_label_with_shell_metacharacters_as_one_literal_argument() {
    let image = test_image();
    let dir = tempdir("rules-run");
    let (out, pwned) = (dir.join("argv.jsonl"), dir.join("pwned"));
    let name = unique("run");
    let cfg = rules_config(
        &dir,
        &format!(
            "events_reactor:\n  record:\n    event:\n      type: container\n      action: start\n      actor:\n        name: {name}\n    \
             run: [{PYTHON:?}, \"-c\", {RECORD_ARGV:?}, {out:?}, \"%%actor.name%%\", \"%%actor.evil%%\", \"%%host%%\", \"x-%%action%%-y\"]\n",
            out = out.display().to_string()
        ),
    );
    let e = Exporter::start(&["--config", cfg.to_str().expect("utf-8")]);
    let evil = format!(
        "a b; touch {} $(touch {}) `id` \"q\" 'r' | cat\nline2",
        pwned.display(),
        pwned.display()
    );
    let _c = Cleanup(vec![name.clone()]);
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "-l",
        &format!("evil={evil}"),
        image,
        "true",
    ]);
    e.wait_for(
        "docker_events_exporter_actions_total",
        &[
            ("rule", "record"),
            ("action", "run"),
            ("outcome", "success"),
        ],
        1.0,
    );
    let host = docker(&["info", "-f", "{{.Name}}"]);
    let got: Vec<Vec<String>> = lines(&out)
        .iter()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(
        got,
        [vec![name.clone(), evil, host, "x-start-y".to_owned()]]
    );
    assert!(!pwned.exists(), "nothing in the label ran");
    assert_eq!(
        e.value(
            "docker_events_exporter_rule_matches_total",
            &[("rule", "record")]
        ),
        Some(1.0)
    );
}

/// A one-connection-at-a-time HTTP server: answers each request with the next status of
/// `statuses` (then 200) and records the bodies.
/// What a test server saw, shared with its thread.
type Seen = Arc<Mutex<Vec<String>>>;

fn http_server(statuses: Vec<u16>) -> (u16, Seen, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let bodies: Seen = Arc::default();
    let headers: Seen = Arc::default();
    let (seen, seen_headers) = (bodies.clone(), headers.clone());
    std::thread::spawn(move || {
        let mut statuses = statuses.into_iter();
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().expect("clone"));
            let mut len = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                seen_headers
                    .lock()
                    .expect("lock")
                    .push(line.trim_end().to_owned());
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            seen.lock()
                .expect("lock")
                .push(String::from_utf8_lossy(&body).into_owned());
            let status = statuses.next().unwrap_or(200);
            let _ = write!(
                conn,
                "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    (port, bodies, headers)
}

#[test]
fn webhook_is_retried_after_a_500_and_carries_the_event() {
    let image = test_image();
    let dir = tempdir("rules-webhook");
    let (port, bodies, headers) = http_server(vec![500]);
    let name = unique("hook");
    let cfg = rules_config(
        &dir,
        &format!(
            "events_reactor:\n  notify:\n    event: {{type: container, action: die, actor: {{name: {name}}}}}\n    \
             webhook:\n      url: http://127.0.0.1:{port}/hook\n      retries: 2\n      headers: {{X-Container: \"%%actor.name%%\"}}\n      \
             headers_from_env: {{Authorization: DEE_TEST_TOKEN}}\n"
        ),
    );
    let e = Exporter::start_with_env(
        &["--config", cfg.to_str().expect("utf-8")],
        &[("DEE_TEST_TOKEN", "Bearer s3cret-token")],
    );
    let _c = Cleanup(vec![name.clone()]);
    docker(&["run", "-d", "--name", &name, image, "sh", "-c", "exit 7"]);
    e.wait_for(
        "docker_events_exporter_actions_total",
        &[
            ("rule", "notify"),
            ("action", "webhook"),
            ("outcome", "success"),
        ],
        1.0,
    );
    let bodies = bodies.lock().expect("lock").clone();
    assert_eq!(bodies.len(), 2, "a 500, then a 200: {bodies:?}");
    assert_eq!(bodies[0], bodies[1], "the retry sends the same body");
    let ev: serde_json::Value = serde_json::from_str(&bodies[1]).expect("the event as JSON");
    assert_eq!(ev["Type"], "container");
    assert_eq!(ev["Action"], "die");
    assert_eq!(ev["Actor"]["Attributes"]["name"], name.as_str());
    assert_eq!(ev["Actor"]["Attributes"]["exitCode"], "7");
    assert_eq!(actions(&e, "notify", "webhook", "failure"), Some(0.0));
    let headers = headers.lock().expect("lock").clone();
    assert_eq!(
        headers
            .iter()
            .filter(|h| *h == "authorization: Bearer s3cret-token")
            .count(),
        2,
        "{headers:?}"
    );
    assert_eq!(
        headers
            .iter()
            .filter(|h| **h == format!("x-container: {name}"))
            .count(),
        2,
        "{headers:?}"
    );
    assert!(!e.log().contains("s3cret"), "the token is never logged");
}

#[test]
fn run_commands_do_not_inherit_the_configs_secret_variables() {
    let image = test_image();
    let dir = tempdir("rules-env");
    let out = dir.join("env.txt");
    let name = unique("env");
    let cfg = rules_config(
        &dir,
        &format!(
            "events_reactor:\n  notify:\n    event: {{type: never}}\n    webhook:\n      url: http://127.0.0.1:1/\n      \
             headers_from_env: {{Authorization: DEE_SECRET}}\n  show env:\n    event: {{type: container, action: start, actor: {{name: {name}}}}}\n    \
             run: [{PYTHON:?}, \"-c\", \"import os,sys; print(os.environ.get('DEE_SECRET', 'absent'), os.environ.get('DEE_PLAIN', 'absent'), file=open(sys.argv[1], 'a'))\", {:?}]\n",
            out.display().to_string()
        ),
    );
    let e = Exporter::start_with_env(
        &["--config", cfg.to_str().expect("utf-8")],
        &[("DEE_SECRET", "Bearer hush"), ("DEE_PLAIN", "visible")],
    );
    let _c = Cleanup(vec![name.clone()]);
    docker(&["run", "-d", "--name", &name, image, "true"]);
    e.wait_for(
        "docker_events_exporter_actions_total",
        &[
            ("rule", "show env"),
            ("action", "run"),
            ("outcome", "success"),
        ],
        1.0,
    );
    assert_eq!(lines(&out), ["absent visible"]);
}

#[test]
fn sighup_without_a_config_does_not_stop_the_exporter() {
    let e = Exporter::start(&[]);
    Command::new("kill")
        .args(["-HUP", &e.pid().to_string()])
        .status()
        .expect("kill -HUP");
    assert!(
        wait_until(DEADLINE, || e
            .log()
            .contains("SIGHUP: there is no --config to reload")),
        "{}",
        e.log()
    );
    assert_eq!(e.value("docker_events_exporter_up", &[]), Some(1.0));
}

#[test]
fn ip_placeholder_is_the_containers_address() {
    let image = test_image();
    let dir = tempdir("rules-ip");
    let out = dir.join("argv.jsonl");
    let name = unique("ip");
    let cfg = rules_config(
        &dir,
        &format!(
            "events_reactor:\n  ip:\n    event: {{type: container, action: start, actor: {{name: {name}}}}}\n    \
             run: [{PYTHON:?}, \"-c\", {RECORD_ARGV:?}, {:?}, \"%%ip%%\"]\n",
            out.display().to_string()
        ),
    );
    let e = Exporter::start(&["--config", cfg.to_str().expect("utf-8")]);
    let _c = Cleanup(vec![name.clone()]);
    docker(&["run", "-d", "--name", &name, image, "sleep", "300"]);
    e.wait_for(
        "docker_events_exporter_actions_total",
        &[("rule", "ip"), ("action", "run"), ("outcome", "success")],
        1.0,
    );
    let ip = crate::support::container_ip(&name);
    assert!(!ip.is_empty());
    assert_eq!(lines(&out), [format!("[\"{ip}\"]")]);
}

struct Smtp {
    child: Child,
    maildir: PathBuf,
    port: u16,
}

impl Smtp {
    fn start() -> Self {
        let maildir = tempdir("maildir").join("mail");
        let port = free_port();
        let child = Command::new(PYTHON)
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aiosmtpd runs (apt-get install python3-aiosmtpd)");
        assert!(
            wait_until(DEADLINE, || std::net::TcpStream::connect((
                "127.0.0.1",
                port
            ))
            .is_ok()),
            "aiosmtpd listens"
        );
        Self {
            child,
            maildir,
            port,
        }
    }

    fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.maildir.join(sub)) else {
                continue;
            };
            for e in entries.flatten() {
                // Undo quoted-printable soft line breaks, which may split a long line anywhere.
                let raw = std::fs::read_to_string(e.path()).unwrap_or_default();
                out.push(raw.replace("=\r\n", "").replace("=\n", ""));
            }
        }
        out
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn email_batches_crashes_into_one_digest_flushed_at_shutdown() {
    let image = test_image();
    let dir = tempdir("rules-email");
    let smtp = Smtp::start();
    let prefix = unique("crash");
    // A window far longer than the test: the digest goes out when the exporter drains on SIGTERM.
    let cfg = rules_config(
        &dir,
        &format!(
            "events_reactor:\n  crashes:\n    event:\n      type: container\n      action: die\n      actor:\n        name: \"{prefix}-*\"\n        exitCode: \"!0\"\n    \
             batch: 1h\n    email:\n      smtp: {{host: 127.0.0.1, port: {}, tls: none}}\n      from: docker@example.com\n      to: [ops@example.com]\n",
            smtp.port
        ),
    );
    let e = Exporter::start(&["--config", cfg.to_str().expect("utf-8")]);
    let names: Vec<String> = (1..=4).map(|i| format!("{prefix}-{i}")).collect();
    let _c = Cleanup(names.clone());
    // A clean exit is not a crash: it must not be mailed.
    docker(&["run", "-d", "--name", &names[0], image, "true"]);
    for (i, n) in names[1..].iter().enumerate() {
        docker(&[
            "run",
            "-d",
            "--name",
            n,
            image,
            "sh",
            "-c",
            &format!("exit {}", i + 1),
        ]);
    }
    e.wait_for(
        "docker_events_exporter_rule_matches_total",
        &[("rule", "crashes")],
        3.0,
    );
    // The first crash went out at once; the other two wait in the batch.
    e.wait_for(
        "docker_events_exporter_actions_total",
        &[
            ("rule", "crashes"),
            ("action", "email"),
            ("outcome", "success"),
        ],
        1.0,
    );
    assert_eq!(smtp.messages().len(), 1);
    let status = e.terminate();
    assert!(status.success(), "{status}");
    let got = smtp.messages();
    assert_eq!(got.len(), 2, "{got:#?}");
    let (first, digest) = if got[0].contains("1 event(s)") {
        (&got[0], &got[1])
    } else {
        (&got[1], &got[0])
    };
    assert!(
        first.contains("1 event(s) matched rule \"crashes\""),
        "{first}"
    );
    assert!(
        digest.contains("2 event(s) matched rule \"crashes\""),
        "{digest}"
    );
    for n in &names[1..] {
        assert_eq!(
            usize::from(first.contains(n.as_str())) + usize::from(digest.contains(n.as_str())),
            1,
            "{n} mailed once:\n{first}\n{digest}"
        );
    }
    assert!(
        !first.contains(names[0].as_str()) && !digest.contains(names[0].as_str()),
        "the clean exit is not mailed"
    );
    assert!(
        digest.contains("Subject: [") && digest.contains("exit code"),
        "{digest}"
    );
}

#[test]
fn a_hanging_command_is_killed_with_its_process_group_at_its_timeout() {
    let image = test_image();
    let dir = tempdir("rules-hang");
    let name = unique("hang");
    // Unusual sleep lengths mark the processes this test starts.
    let marker = format!("{}", 3000 + (std::process::id() % 900));
    let cfg = rules_config(
        &dir,
        &format!(
            "events_reactor:\n  hang:\n    event: {{type: container, action: start, actor: {{name: {name}}}}}\n    \
             run: [\"sh\", \"-c\", \"sleep {marker}.1 & sleep {marker}.2\"]\n    timeout: 1s\n"
        ),
    );
    let e = Exporter::start(&["--config", cfg.to_str().expect("utf-8")]);
    let _c = Cleanup(vec![name.clone()]);
    docker(&["run", "-d", "--name", &name, image, "true"]);
    e.wait_for(
        "docker_events_exporter_actions_total",
        &[("rule", "hang"), ("action", "run"), ("outcome", "timeout")],
        1.0,
    );
    let alive = |m: &str| {
        Command::new("pgrep")
            .args(["-f", &format!("sleep {m}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    assert!(
        wait_until(DEADLINE, || !alive(&format!("{marker}.1"))
            && !alive(&format!("{marker}.2"))),
        "the group is gone"
    );
    assert!(
        e.log()
            .contains("sh did not finish within 1s; killed its process group"),
        "{}",
        e.log()
    );
    assert_eq!(e.value("docker_events_exporter_up", &[]), Some(1.0));
}

#[test]
fn a_flood_with_a_slow_action_keeps_metrics_exact_and_counts_drops() {
    let image = test_image();
    let dir = tempdir("rules-flood");
    let name = unique("flood");
    let cfg = rules_config(
        &dir,
        &format!(
            "events_reactor:\n  slow:\n    event: {{type: container, action: exec_die, actor: {{name: {name}}}}}\n    \
             run: [\"sleep\", \"1\"]\n"
        ),
    );
    let e = Exporter::start(&[
        "--config",
        cfg.to_str().expect("utf-8"),
        "--rules.workers",
        "1",
        "--rules.queue-size",
        "2",
    ]);
    let _c = Cleanup(vec![name.clone()]);
    docker(&["run", "-d", "--name", &name, image, "sleep", "300"]);
    const EXECS: usize = 40;
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let name = name.clone();
            std::thread::spawn(move || {
                for _ in 0..EXECS / 4 {
                    docker(&["exec", &name, "true"]);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("exec thread");
    }
    let labels = crate::support::container_labels(&name, &[("exit_code", "0")]);
    e.wait_for("docker_container_execs_total", &labels, EXECS as f64);
    e.wait_for(
        "docker_events_exporter_rule_matches_total",
        &[("rule", "slow")],
        EXECS as f64,
    );
    let mut last = (None, None);
    let settled = wait_until(DEADLINE, || {
        last = (
            actions(&e, "slow", "run", "success"),
            actions(&e, "slow", "run", "dropped"),
        );
        matches!(last, (Some(s), Some(d)) if s + d == EXECS as f64)
    });
    assert!(settled, "every match ran or was dropped: {last:?}");
    let (Some(success), Some(dropped)) = last else {
        unreachable!()
    };
    assert!(
        dropped > 0.0,
        "a queue of 2 with one slow worker drops some of {EXECS}: {last:?}"
    );
    assert!(success >= 1.0, "{last:?}");
    assert!(e.log().contains("action queue full"), "{}", e.log());
    assert_eq!(e.value("docker_events_exporter_up", &[]), Some(1.0));
}

#[test]
fn sighup_with_a_broken_file_keeps_the_old_rules() {
    let image = test_image();
    let dir = tempdir("rules-reload");
    let audit = dir.join("audit.jsonl");
    let prefix = unique("reload");
    let good = format!(
        "events_reactor:\n  audit:\n    event: {{type: container, action: start, actor: {{name: \"{prefix}-*\"}}}}\n    log: {:?}\n",
        audit.display().to_string()
    );
    let cfg = rules_config(&dir, &good);
    let e = Exporter::start(&["--config", cfg.to_str().expect("utf-8")]);
    assert_eq!(
        e.value("docker_events_exporter_config_last_reload_successful", &[]),
        Some(1.0)
    );
    std::fs::write(&cfg, format!("{good}  broken:\n    evnt: {{}}\n")).expect("write");
    let pid = e.pid().to_string();
    Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill -HUP");
    e.wait_for(
        "docker_events_exporter_config_last_reload_successful",
        &[],
        0.0,
    );
    let log = e.log();
    assert!(
        log.contains(&format!(
            "{}:6:5: unknown key \\\"evnt\\\" in rule \\\"broken\\\"",
            cfg.display()
        )),
        "{log}"
    );
    assert!(
        log.contains("reload failed; keeping the previous rules"),
        "{log}"
    );
    let names = vec![format!("{prefix}-1"), format!("{prefix}-2")];
    let _c = Cleanup(names.clone());
    docker(&["run", "-d", "--name", &names[0], image, "true"]);
    assert!(
        wait_until(DEADLINE, || lines(&audit).len() == 1),
        "the old rule still logs"
    );
    // The first container's die is seen under the old rules (start only): not logged.
    e.wait_for(
        "docker_container_exits_total",
        &crate::support::container_labels(&names[0], &[("exit_code", "0")]),
        1.0,
    );
    // A good file again: the new rules (die only) take over.
    std::fs::write(&cfg, good.replace("action: start", "action: die")).expect("write");
    Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill -HUP");
    e.wait_for(
        "docker_events_exporter_config_last_reload_successful",
        &[],
        1.0,
    );
    docker(&["run", "-d", "--name", &names[1], image, "true"]);
    let logged = |want: &[(&str, &str)]| {
        lines(&audit)
            .iter()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("json");
                (
                    v["Action"].as_str().unwrap_or_default().to_owned(),
                    v["Actor"]["Attributes"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect::<Vec<_>>()
            == want
                .iter()
                .map(|(a, n)| ((*a).to_owned(), (*n).to_owned()))
                .collect::<Vec<_>>()
    };
    let want = [("start", names[0].as_str()), ("die", names[1].as_str())];
    assert!(
        wait_until(DEADLINE, || logged(&want)),
        "the old rule logged the first start, the new one the second die: {:?}",
        lines(&audit)
    );
}

#[test]
fn check_config_reports_every_problem_with_its_place_and_exits_1() {
    let dir = tempdir("rules-check");
    let cfg = rules_config(
        &dir,
        "events_reactor:\n  bad:\n    event:\n      action: /[/\n    run: [\"notify\", \"%%nope%%\"]\n    timeout: soon\n  empty:\n    run: []\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_docker-events-exporter"))
        .args(["check-config", cfg.to_str().expect("utf-8")])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let f = cfg.display();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "4 problems in the rules config:\n\
             {f}:4:15: event.action of rule \"bad\": invalid regex /[/: error: unclosed character class\n\
             {f}:5:21: unknown placeholder %%nope%%; known: type, action, scope, time, timeNano, date, actor.id, actor.<attribute>, payload, host, engine, ip, logs, health_output, rule, count, status, condition, since, exits, last_exit_code, reason\n\
             {f}:6:14: timeout of rule \"bad\": expected number at 0; use a duration like 30s, 5m or 1h\n\
             {f}:8:10: run of rule \"empty\" is empty; give the program and its arguments, e.g. run: [\"notify\", \"%%actor.name%%\"]\n"
        )
    );
    // Start-up runs the same checks and refuses to start.
    let out = Command::new(env!("CARGO_BIN_EXE_docker-events-exporter"))
        .args([
            "--config",
            cfg.to_str().expect("utf-8"),
            "--web.listen-address",
            "127.0.0.1:0",
        ])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains(&format!("{f}:8:10: run of rule \"empty\" is empty"))
    );
}

#[test]
fn the_shipped_examples_pass_check_config() {
    let examples = repo_root().join("examples");
    // What examples read from /run/secrets/ is read from here instead.
    let secrets = tempdir("examples");
    std::fs::write(
        secrets.join("gotify-url"),
        "gotifys://gotify.example.com/AbCdEf123456?priority=high\n",
    )
    .expect("write");
    let mut checked = 0;
    for entry in std::fs::read_dir(&examples).expect("examples/") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "yml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read example");
        let copy = secrets.join(path.file_name().expect("a file name"));
        let secrets_dir = format!("{}/", secrets.display());
        std::fs::write(&copy, text.replace("/run/secrets/", &secrets_dir)).expect("write");
        let out = Command::new(env!("CARGO_BIN_EXE_docker-events-exporter"))
            .args(["check-config"])
            .arg(&copy)
            // What the examples read from the environment.
            .env("WEBHOOK_AUTHORIZATION", "Bearer example")
            .env("NTFY_URL", "ntfys://ops:pw@ntfy.example.com/docker?priority=high")
            .env("DISCORD_URL", "discord://1234/token")
            .env("SLACK_URL", "slack://T000/B000/XXXX")
            .env("TELEGRAM_URL", "tgram://123456789:AAE-token/-100123")
            .env("MATRIX_URL", "matrixs://bot:syt_token@matrix.example.com/#ops")
            .env("TEAMS_URL", "teams://x.logic.azure.com/workflows/w/triggers/manual/paths/invoke?api-version=2016-06-01&sig=S")
            .env("PUSHOVER_URL", "pover://user@token")
            .env("JSON_URL", "jsons://hook:pw@hooks.example.com/docker")
            .output()
            .expect("runs");
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    assert!(checked >= 15, "examples checked: {checked}");
}

#[test]
fn dry_run_logs_the_rendered_action_and_runs_nothing() {
    let image = test_image();
    let dir = tempdir("rules-dry");
    let (marker, name) = (dir.join("ran"), unique("dry"));
    let cfg = rules_config(
        &dir,
        &format!(
            "events_reactor:\n  touch:\n    event: {{type: container, action: start, actor: {{name: {name}}}}}\n    \
             run: [\"touch\", {:?}, \"%%actor.name%%\"]\n",
            marker.display().to_string()
        ),
    );
    let e = Exporter::start(&["--config", cfg.to_str().expect("utf-8"), "--dry-run"]);
    let _c = Cleanup(vec![name.clone()]);
    docker(&["run", "-d", "--name", &name, image, "true"]);
    e.wait_for(
        "docker_events_exporter_actions_total",
        &[("rule", "touch"), ("action", "run"), ("outcome", "success")],
        1.0,
    );
    assert!(!marker.exists(), "nothing ran");
    let log = e.log();
    assert!(log.contains("dry run: would run"), "{log}");
    assert!(
        log.contains(&format!(
            "argv=\"[\\\"touch\\\", \\\"{}\\\", \\\"{name}\\\"]\"",
            marker.display()
        )),
        "{log}"
    );
}

#[test]
fn metric_action_counts_by_label_up_to_its_series_limit_and_throttle_holds() {
    let image = test_image();
    let dir = tempdir("rules-metric");
    let prefix = unique("metric");
    let cfg = rules_config(
        &dir,
        &format!(
            "events_reactor:\n  count starts:\n    event: {{type: container, action: start, actor: {{name: \"{prefix}-*\"}}}}\n    \
             metric:\n      name: dee_test_starts_total\n      labels: {{container: \"%%actor.name%%\"}}\n      max_series: 1\n  \
             once per name:\n    event: {{type: container, action: start, actor: {{name: \"{prefix}-*\"}}}}\n    \
             throttle: {{key: \"%%actor.name%%\", interval: 1h}}\n    log: {:?}\n",
            dir.join("once.jsonl").display().to_string()
        ),
    );
    let e = Exporter::start(&["--config", cfg.to_str().expect("utf-8")]);
    let (a, b) = (format!("{prefix}-a"), format!("{prefix}-b"));
    let _c = Cleanup(vec![a.clone(), b.clone()]);
    docker(&["run", "-d", "--name", &a, image, "true"]);
    wait_status(&a, "exited");
    docker(&["start", &a]);
    wait_status(&a, "exited");
    docker(&["run", "-d", "--name", &b, image, "true"]);
    e.wait_for(
        "docker_events_exporter_rule_matches_total",
        &[("rule", "count starts")],
        3.0,
    );
    e.wait_for("dee_test_starts_total", &[("container", &a)], 2.0);
    e.wait_for(
        "docker_events_exporter_actions_total",
        &[
            ("rule", "count starts"),
            ("action", "metric"),
            ("outcome", "dropped"),
        ],
        1.0,
    );
    assert_eq!(
        e.value("dee_test_starts_total", &[("container", &b)]),
        None,
        "over max_series"
    );
    e.wait_for(
        "docker_events_exporter_actions_total",
        &[
            ("rule", "once per name"),
            ("action", "log"),
            ("outcome", "success"),
        ],
        2.0,
    );
    assert_eq!(actions(&e, "once per name", "log", "throttled"), Some(1.0));
}

/// Accepts connections and answers each after `delay`, or never (`None`); counts requests.
fn slow_server(delay: Option<std::time::Duration>) -> (u16, Arc<Mutex<usize>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen: Arc<Mutex<usize>> = Arc::default();
    let counter = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                *counter.lock().expect("lock") += 1;
                match delay {
                    Some(d) => {
                        std::thread::sleep(d);
                        let _ = write!(
                            stream,
                            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        );
                    }
                    // Hold the connection open and say nothing, until the test ends.
                    None => std::thread::sleep(std::time::Duration::from_secs(120)),
                }
            });
        }
    });
    (port, seen)
}

#[test]
fn webhook_targets_that_refuse_hang_or_dawdle_never_hold_up_the_metrics() {
    let image = test_image();
    let dir = tempdir("rules-targets");
    let name = unique("targets");
    let (hang, _) = slow_server(None);
    let (slow, slow_seen) = slow_server(Some(std::time::Duration::from_millis(1500)));
    // Picked after the servers are bound, so that it cannot be one of theirs.
    let refused = free_port();
    let rule = |rule: &str, port: u16, timeout: &str| {
        format!(
            "  {rule}:\n    event: {{type: container, action: die, actor: {{name: \"{name}-*\"}}}}\n    \
             webhook:\n      url: http://127.0.0.1:{port}/hook\n      retries: 0\n      timeout: {timeout}\n"
        )
    };
    let cfg = rules_config(
        &dir,
        &format!(
            "events_reactor:\n{}{}{}",
            rule("refused", refused, "2s"),
            rule("hang", hang, "3s"),
            rule("slow", slow, "10s")
        ),
    );
    let e = Exporter::start(&["--config", cfg.to_str().expect("utf-8")]);
    let names: Vec<String> = (0..5).map(|i| format!("{name}-{i}")).collect();
    let _c = Cleanup(names.clone());
    for n in &names {
        docker(&["run", "-d", "--name", n, image, "sh", "-c", "exit 5"]);
    }
    for n in &names {
        e.wait_for(
            "docker_container_exits_total",
            &crate::support::container_labels(n, &[("exit_code", "5")]),
            1.0,
        );
    }
    // Every exit is counted while the hanging target still holds its requests.
    let hung = actions(&e, "hang", "webhook", "timeout").unwrap_or_default();
    assert!(
        hung < 5.0,
        "the metrics waited for the hanging webhook ({hung} done)"
    );
    let settled = wait_until(DEADLINE, || {
        actions(&e, "refused", "webhook", "failure") == Some(5.0)
            && actions(&e, "hang", "webhook", "timeout") == Some(5.0)
            && actions(&e, "slow", "webhook", "success") == Some(5.0)
    });
    assert!(
        settled,
        "refused {:?}, hang {:?}, slow {:?}; log:\n{}",
        actions(&e, "refused", "webhook", "failure"),
        actions(&e, "hang", "webhook", "timeout"),
        actions(&e, "slow", "webhook", "success"),
        crate::support::tail(&e.log(), 30)
    );
    assert_eq!(*slow_seen.lock().expect("lock"), 5);
    assert_eq!(e.value("docker_events_exporter_up", &[]), Some(1.0));
    let log = e.log();
    assert!(log.contains("webhook"), "failures are logged");
}

/// A container deployed with `docker-events-exporter.mute=true` fires no rule: the engine
/// passes its labels in its events, and the one beside it without the label is logged.
#[test]
fn a_container_labelled_mute_fires_no_rule() {
    let dir = tempdir("rules-mute");
    let audit = dir.join("audit.jsonl");
    let prefix = unique("mute");
    let cfg = rules_config(
        &dir,
        &format!(
            "events_reactor:\n  started:\n    event: {{type: container, action: start, actor: {{name: \"{prefix}-*\"}}}}\n    log: {:?}\n",
            audit.display().to_string()
        ),
    );
    let e = Exporter::start(&["--config", cfg.to_str().expect("utf-8")]);
    let (muted, heard) = (format!("{prefix}-muted"), format!("{prefix}-heard"));
    let _c = Cleanup(vec![muted.clone(), heard.clone()]);
    let label = "docker-events-exporter.mute=true";
    docker(&[
        "run",
        "-d",
        "--name",
        &muted,
        "--label",
        label,
        test_image(),
        "true",
    ]);
    e.wait_for(
        "docker_events_exporter_rule_muted_total",
        &[("rule", "started")],
        1.0,
    );
    docker(&["run", "-d", "--name", &heard, test_image(), "true"]);
    assert!(
        wait_until(DEADLINE, || lines(&audit).len() == 1),
        "the unmuted container's start; log:\n{}",
        e.log()
    );
    let logged: serde_json::Value = serde_json::from_str(&lines(&audit)[0]).expect("a JSON line");
    assert_eq!(logged["Actor"]["Attributes"]["name"], heard.as_str());
    assert_eq!(
        e.value(
            "docker_events_exporter_rule_matches_total",
            &[("rule", "started")]
        ),
        Some(2.0)
    );
    assert_eq!(actions(&e, "started", "log", "success"), Some(1.0));
}

/// `%%logs%%` is the container's last lines as the rule's action runs: its `logs` lines of
/// standard output and error, colours left out (the engine copies the two streams apart, so
/// only each one's own order is kept); a terminal's output as well; and for a log driver the
/// engine cannot read back, why not.
#[test]
fn logs_placeholder_carries_the_last_lines_or_why_there_are_none() {
    let image = test_image();
    let dir = tempdir("rules-logs");
    let out = dir.join("argv.jsonl");
    let prefix = unique("logs");
    let cfg = rules_config(
        &dir,
        &format!(
            "events_reactor:\n  died:\n    event: {{type: container, action: die, actor: {{name: \"{prefix}-*\"}}}}\n    \
             run: [{PYTHON:?}, \"-c\", {RECORD_ARGV:?}, {out:?}, \"%%actor.name%%\", \"%%logs%%\"]\n    logs: 4\n",
            out = out.display().to_string()
        ),
    );
    let e = Exporter::start(&["--config", cfg.to_str().expect("utf-8")]);
    let [plain, many, tty, none] =
        ["plain", "many", "tty", "none"].map(|n| format!("{prefix}-{n}"));
    let _c = Cleanup(vec![plain.clone(), many.clone(), tty.clone(), none.clone()]);
    let script = r#"echo one; echo two >&2; printf '\033[31mthree\033[0m\n'; echo four; exit 3"#;
    docker(&["run", "-d", "--name", &plain, image, "sh", "-c", script]);
    let ten = "for i in 1 2 3 4 5 6 7 8 9 10; do echo line $i; done";
    docker(&["run", "-d", "--name", &many, image, "sh", "-c", ten]);
    docker(&[
        "run",
        "-d",
        "-t",
        "--name",
        &tty,
        image,
        "sh",
        "-c",
        "echo tty line; exit 0",
    ]);
    let hidden = "echo hidden; exit 1";
    docker(&[
        "run",
        "-d",
        "--log-driver",
        "none",
        "--name",
        &none,
        image,
        "sh",
        "-c",
        hidden,
    ]);
    e.wait_for(
        "docker_events_exporter_actions_total",
        &[("rule", "died"), ("action", "run"), ("outcome", "success")],
        4.0,
    );
    let got: std::collections::HashMap<String, String> = lines(&out)
        .iter()
        .map(|l| {
            let argv: Vec<String> = serde_json::from_str(l).expect("json");
            (argv[0].clone(), argv[1].clone())
        })
        .collect();
    let plain_lines: Vec<&str> = got[&plain].lines().collect();
    let mut sorted = plain_lines.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ["four", "one", "three", "two"], "{plain_lines:?}");
    let stdout: Vec<&str> = plain_lines.into_iter().filter(|l| *l != "two").collect();
    assert_eq!(
        stdout,
        ["one", "three", "four"],
        "standard output in its order"
    );
    assert_eq!(got[&many], "line 7\nline 8\nline 9\nline 10", "the last 4");
    assert_eq!(got[&tty], "tty line");
    assert_eq!(
        got[&none],
        "(the container's logs cannot be read: configured logging driver does not support reading)"
    );
}

/// `%%health_output%%` is what the container's last probe printed, read as the action runs.
#[test]
fn health_output_placeholder_is_the_last_probes_output() {
    let dir = tempdir("rules-health-output");
    let out = dir.join("argv.jsonl");
    let name = unique("probe-says");
    let cfg = rules_config(
        &dir,
        &format!(
            "events_reactor:\n  sick:\n    event: {{type: container, action: \"health_status: unhealthy\", actor: {{name: {name}}}}}\n    \
             run: [{PYTHON:?}, \"-c\", {RECORD_ARGV:?}, {out:?}, \"%%health_output|html%%\"]\n",
            out = out.display().to_string()
        ),
    );
    let e = Exporter::start(&["--config", cfg.to_str().expect("utf-8")]);
    let _c = Cleanup(vec![name.clone()]);
    let probe = "echo '<b>refused</b> on :80'; exit 1";
    crate::support::run_probed(&name, probe, &["sleep", "300"]);
    e.wait_for(
        "docker_events_exporter_actions_total",
        &[("rule", "sick"), ("action", "run"), ("outcome", "success")],
        1.0,
    );
    let argv: Vec<String> = serde_json::from_str(&lines(&out)[0]).expect("json");
    assert_eq!(argv, ["&lt;b&gt;refused&lt;/b&gt; on :80"]);
}

/// `repeat` sends a firing still open again, every action, until its resolving event; the
/// firing gauge shows it open meanwhile.
#[test]
fn repeat_reminds_until_the_recovery() {
    let dir = tempdir("rules-repeat");
    let audit = dir.join("audit.jsonl");
    let name = unique("repeat");
    let cfg = rules_config(
        &dir,
        &format!(
            "events_reactor:\n  sick:\n    event: {{type: container, action: \"health_status: unhealthy\", actor: {{name: {name}}}}}\n    \
             resolve: {{action: \"health_status: healthy\"}}\n    repeat: 2s\n    log: {:?}\n",
            audit.display().to_string()
        ),
    );
    let e = Exporter::start(&["--config", cfg.to_str().expect("utf-8")]);
    let _c = Cleanup(vec![name.clone()]);
    run_unhealthy(&name);
    let actions_of = || logged_actions(&audit);
    assert!(
        wait_until(DEADLINE, || actions_of().len() >= 3),
        "the firing and two reminders; log:\n{}",
        e.log()
    );
    assert_eq!(
        e.value("docker_events_exporter_rule_firing", &[("rule", "sick")]),
        Some(1.0)
    );
    let firing = || -> Vec<(String, String, String)> {
        let (_, body) = crate::support::http_get(e.port, "/api/v1/status").expect("an answer");
        let status: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        status["firing"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| {
                let s = |k: &str| f[k].as_str().unwrap_or_default().to_owned();
                (s("rule"), s("name"), s("action"))
            })
            .collect()
    };
    let open = (
        "sick".to_owned(),
        name.clone(),
        "health_status: unhealthy".to_owned(),
    );
    assert_eq!(firing(), [open], "the status lists it");
    make_healthy(&name);
    e.wait_for(
        "docker_events_exporter_rule_firing",
        &[("rule", "sick")],
        0.0,
    );
    let healthy = "health_status: healthy";
    assert!(
        wait_until(DEADLINE, || actions_of().iter().any(|a| a == healthy)),
        "the recovery; log:\n{}",
        e.log()
    );
    // A reminder handed on just before the recovery may be written just after it: the two
    // run on the worker pool side by side.
    let got = actions_of();
    assert_eq!(firing(), [], "the status no longer lists it");
    let recoveries = got.iter().filter(|a| *a == healthy).count();
    assert_eq!(recoveries, 1, "one recovery: {got:?}");
    assert!(
        got.iter()
            .all(|a| a == healthy || a == "health_status: unhealthy"),
        "each reminder is of the event that opened it: {got:?}"
    );
}
