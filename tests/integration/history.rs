//! The event history against the real engine: `/api/v1/events` answers what the engine's own
//! `docker events` answers, and goes on answering after the engine has forgotten (1,000 more
//! events, an exporter restart with `--history.dir`); the status page in headless Chromium.

use std::io::BufRead as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::assert_same;
use crate::support::chromium::Browser;
use crate::support::engine::PrivateEngine;
use crate::support::{
    Cleanup, DEADLINE, Exporter, IMAGE, docker, http_get, now_secs, repo_root, tempdir, test_image,
    unique, wait_until,
};

/// `docker events --format '{{json .}}'` of the engine at `host` for the window and filters:
/// the engine's answer.
fn engine_events(host: &str, since: &str, until: &str, filters: &[&str]) -> Vec<String> {
    let mut args = vec!["-H", host, "events", "--since", since, "--until", until];
    for f in filters {
        args.extend(["--filter", f]);
    }
    args.extend(["--format", "{{json .}}"]);
    lines(&docker(&args))
}

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Every byte but letters and digits as `%XX`.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The engine's `filters` parameter for `KEY=VALUE` filters.
fn filters_json(filters: &[&str]) -> String {
    let mut map = serde_json::Map::new();
    for f in filters {
        let (k, v) = f.split_once('=').expect("KEY=VALUE");
        let entry = map
            .entry(k.to_owned())
            .or_insert_with(|| serde_json::json!({}));
        entry[v] = serde_json::json!(true);
    }
    serde_json::Value::Object(map).to_string()
}

/// The exporter's answer for the window and filters.
fn api_events(e: &Exporter, since: &str, until: Option<&str>, filters: &[&str]) -> Vec<String> {
    let mut path = format!(
        "/api/v1/events?since={since}&filters={}",
        urlencode(&filters_json(filters))
    );
    if let Some(until) = until {
        path.push_str(&format!("&until={until}"));
    }
    let (status, body) = http_get(e.port, &path).expect("an answer from /api/v1/events");
    assert_eq!(status, 200, "{path}: {body}");
    lines(&body)
}

/// `docker events` following the engine at `host` from now on, into a file: what the engine
/// sent, for when it no longer holds it.
struct Follower {
    child: Child,
    out: std::path::PathBuf,
}

impl Follower {
    fn start(host: &str, filters: &[&str]) -> Self {
        let out = tempdir("follower").join("events.jsonl");
        let mut args = vec!["-H".to_owned(), host.to_owned(), "events".to_owned()];
        for f in filters {
            args.extend(["--filter".to_owned(), (*f).to_owned()]);
        }
        args.extend(["--format".to_owned(), "{{json .}}".to_owned()]);
        let child = Command::new("docker")
            .args(&args)
            .stdout(std::fs::File::create(&out).expect("the follower's file"))
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker events");
        Self { child, out }
    }

    fn lines(&self) -> Vec<String> {
        let f = std::fs::File::open(&self.out).expect("the follower's file");
        std::io::BufReader::new(f)
            .lines()
            .map_while(Result::ok)
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// Its lines once one holds `needle` and half a second has passed without another (the
    /// engine sends a step's events within milliseconds of each other).
    fn wait_for(&self, needle: &str) -> Vec<String> {
        let mut got = Vec::new();
        let mut changed = std::time::Instant::now();
        let ok = wait_until(DEADLINE, || {
            let now = self.lines();
            if now.len() != got.len() {
                changed = std::time::Instant::now();
            }
            got = now;
            got.iter().any(|l| l.contains(needle)) && changed.elapsed() > Duration::from_millis(500)
        });
        assert!(ok, "the engine sent no {needle}: {got:#?}");
        got
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the exporter's answer for `filters` since `since` holds `n` events.
fn wait_events(e: &Exporter, since: &str, filters: &[&str], n: usize) -> Vec<String> {
    let mut got = Vec::new();
    let ok = wait_until(DEADLINE, || {
        got = api_events(e, since, None, filters);
        got.len() >= n
    });
    assert!(ok, "{} events, not {n}: {got:#?}\n{}", got.len(), e.log());
    got
}

/// `docker ARGS`, a `run` whose container exits with `code`.
fn exits_with(code: i32, args: &[&str]) {
    let out = crate::support::docker_output(args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The lines the exporter binary prints with `args`; it must succeed.
fn exporter_says(args: &[&str]) -> Vec<String> {
    lines(&crate::support::exporter_stdout(args))
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// On an engine of the test's own, so that no other test's events push the window out of
/// the engine's buffer of 256 before it is asked, and every event on it is the test's.
#[test]
fn the_api_answers_as_the_engine_does_and_still_after_1000_more_events_and_a_restart() {
    let engine = PrivateEngine::start();
    let host = engine.host();
    let mark = unique("hist");
    let label = format!("dee.test={mark}");
    let follower = Follower::start(&host, &[]);
    let dir = tempdir("history");
    let history = dir.join("events");
    let state = dir.join("state.json");
    let flags = [
        "--docker.host",
        &host,
        "--history.dir",
        history.to_str().expect("a UTF-8 path"),
        "--docker.state-file",
        state.to_str().expect("a UTF-8 path"),
    ];
    let (exits, execs, noisy, late) = (
        format!("{mark}-exits"),
        format!("{mark}-execs"),
        format!("{mark}-noisy"),
        format!("{mark}-late"),
    );
    let e = Exporter::start(&flags);

    // A window of events the engine still holds: a container that exits 3 and is removed
    // (with a label that is markup), one that is exec'ed into and killed.
    let t0 = now_secs();
    exits_with(
        3,
        &[
            "-H",
            &host,
            "run",
            "--network",
            "none",
            "--name",
            &exits,
            "--label",
            &label,
            "--label",
            "dee.note=<b>&amp;</b>",
            IMAGE,
            "sh",
            "-c",
            "exit 3",
        ],
    );
    engine.docker(&["rm", &exits]);
    engine.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &execs,
        "--label",
        &label,
        IMAGE,
        "sleep",
        "300",
    ]);
    engine.docker(&["exec", &execs, "true"]);
    engine.docker(&["kill", &execs]);
    let window = follower.wait_for(r#""exitCode":"137""#).len();
    let t1 = now_secs();
    let questions: Vec<Vec<String>> = vec![
        vec![],
        vec![format!("label={label}")],
        vec![format!("label={label}"), format!("container={exits}")],
        vec!["event=die".into()],
        vec!["type=container".into(), "event=exec_die".into()],
        vec![format!("image={IMAGE}")],
        vec!["label=dee.note=<b>&amp;</b>".into()],
        vec!["type=network".into(), "event=connect".into()],
        vec![
            format!("container={execs}"),
            "event=exec_create".into(),
            "event=kill".into(),
        ],
    ];
    let answers: Vec<Vec<String>> = questions
        .iter()
        .map(|q| engine_events(&host, &t0, &t1, &strs(q)))
        .collect();
    assert_eq!(answers[0], follower.lines(), "the engine holds the window");
    wait_events(&e, &t0, &[], window);
    for (q, answer) in questions.iter().zip(&answers) {
        assert!(!answer.is_empty(), "the engine has events for {q:?}");
        assert_eq!(
            &api_events(&e, &t0, Some(&t1), &strs(q)),
            answer,
            "filters {q:?}"
        );
    }
    // The `events` command prints the same, asked of the running exporter.
    let url = format!("http://127.0.0.1:{}", e.port);
    let printed = exporter_says(&[
        "events",
        "--url",
        &url,
        "--since",
        &t0,
        "--until",
        &t1,
        "--filter",
        &format!("label={label}"),
    ]);
    assert_eq!(printed, answers[1]);

    // 1,000 more events (a pause and an unpause 500 times): the engine's buffer of 256 no
    // longer reaches back to the window.
    engine.run(&noisy, "sleep 300");
    let storm = format!(
        "for i in $(seq 500); do for a in pause unpause; do \
         curl -sSf -o /dev/null -X POST --unix-socket {} http://engine/containers/{noisy}/$a || exit 1; \
         done; done",
        engine.socket().display()
    );
    crate::support::run_ok("sh", &["-c", &storm]);
    assert_eq!(
        engine_events(&host, &t0, &t1, &[]),
        Vec::<String>::new(),
        "the engine has forgotten the window"
    );
    for (q, answer) in questions.iter().zip(&answers) {
        assert_eq!(
            &api_events(&e, &t0, Some(&t1), &strs(q)),
            answer,
            "after the storm, {q:?}"
        );
    }

    // A restart: the exporter stops (once it has read the storm to its end), a container runs
    // and goes while it is down, and the restarted exporter answers for the window still, and
    // has every event once.
    let sent = follower.wait_for(r#""Action":"unpause""#);
    assert_same(
        &wait_events(&e, &t0, &[], sent.len()),
        &sent,
        "the storm, as the engine sent it",
    );
    assert!(e.terminate().success());
    let dir_arg = history.to_str().unwrap_or("");
    let on_disk = exporter_says(&["events", "--history.dir", dir_arg, "--since", &t0]);
    assert_same(
        &on_disk,
        &follower.lines(),
        "--history.dir holds every event once",
    );
    exits_with(
        5,
        &[
            "-H",
            &host,
            "run",
            "--rm",
            "--network",
            "none",
            "--name",
            &late,
            "--label",
            &label,
            IMAGE,
            "sh",
            "-c",
            "exit 5",
        ],
    );
    let all = follower.wait_for(r#""exitCode":"5""#);
    let e = Exporter::start(&flags);
    assert_same(
        &wait_events(&e, &t0, &[], all.len()),
        &all,
        "nothing lost or doubled across the restart",
    );
    for (q, answer) in questions.iter().zip(&answers) {
        assert_eq!(
            &api_events(&e, &t0, Some(&t1), &strs(q)),
            answer,
            "after the restart, {q:?}"
        );
    }
    let scrape = e.scrape();
    assert_eq!(
        scrape.value("docker_events_exporter_history_dropped_total", &[]),
        Some(0.0)
    );
    assert_eq!(
        scrape.value("docker_events_exporter_stream_gaps_total", &[]),
        Some(0.0)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_status_page_shows_a_crash_loop_and_its_events_live_and_markup_as_text() {
    let image = test_image();
    let name = unique("page-loop");
    let _cleanup = Cleanup(vec![name.clone()]);
    let e = Exporter::start(&[]);
    let mut page = Browser::open(&format!("http://127.0.0.1:{}/", e.port), 1280, 1000);
    // Set once: were the page reloaded, it would be gone.
    page.eval("window.deeLoadedOnce = true");
    let note =
        "<script>window.deePwned = true</script><img src=x onerror=\"window.deePwned = true\">";
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--restart",
        "always",
        "--label",
        &format!("dee.note={note}"),
        image,
        "sh",
        "-c",
        "sleep 1; exit 4",
    ]);
    let crashing = format!(
        "document.querySelector('#crashing tbody').textContent.includes({})",
        serde_json::json!(name)
    );
    let logged = format!(
        "[...document.querySelectorAll('#events li')].some(li => li.dataset.action === 'die' && li.textContent.includes({}))",
        serde_json::json!(name)
    );
    let shown = wait_until(DEADLINE, || {
        page.eval(&crashing) == serde_json::json!(true)
            && page.eval(&logged) == serde_json::json!(true)
    });
    let shot = repo_root().join("target/artefacts/status-page.png");
    page.screenshot(&shot);
    assert!(
        shown,
        "the loop is not shown as crashing with its events; screenshot at {}",
        shot.display()
    );
    assert_eq!(
        page.eval("window.deeLoadedOnce"),
        serde_json::json!(true),
        "no reload"
    );
    assert_eq!(
        page.eval("window.deePwned === undefined"),
        serde_json::json!(true)
    );
    assert_eq!(page.eval("document.scripts.length"), serde_json::json!(1));
    assert_eq!(page.eval("document.images.length"), serde_json::json!(0));
    let as_text = format!(
        "[...document.querySelectorAll('#events .attrs')].some(a => a.textContent.includes({}))",
        serde_json::json!(format!("dee.note={note}"))
    );
    assert_eq!(
        page.eval(&as_text),
        serde_json::json!(true),
        "the label shows as text"
    );
    // The state table, too, came again without a reload: the container is there, restarting
    // or running, with its restarts.
    let row = page.eval(&format!(
        "[...document.querySelectorAll('#containers tbody tr')].map(r => r.textContent).find(t => t.includes({}))",
        serde_json::json!(name)
    ));
    assert!(
        row.as_str().is_some_and(|r| r.contains("dee-test-busybox")),
        "{row}"
    );
    eprintln!("status page screenshot: {}", shot.display());
}

/// A benchmark, not a test: `scripts/bench.sh history` serves 10,000 containers with
/// `replay --serve` and runs this to load its page in headless Chromium, printing the page's
/// timings as the browser measured them (the median of five loads). Needs DEE_BENCH_PAGE_URL.
#[test]
#[ignore = "a benchmark: scripts/bench.sh history runs it against a served replay"]
fn bench_status_page_first_paint() {
    let url = std::env::var("DEE_BENCH_PAGE_URL")
        .expect("DEE_BENCH_PAGE_URL: the page to load (scripts/bench.sh history sets it)");
    let mut rows = Vec::new();
    for _ in 0..5 {
        let mut page = Browser::open(&url, 1280, 1000);
        let timings = page.eval(
            "(() => { const n = performance.getEntriesByType('navigation')[0]; \
             const p = performance.getEntriesByName('first-contentful-paint')[0]; \
             return [n.responseStart, n.responseEnd, p ? p.startTime : -1, n.domContentLoadedEventEnd, \
             n.loadEventEnd, n.decodedBodySize, document.querySelectorAll('#containers tbody tr').length]; })()",
        );
        let t: Vec<f64> = timings
            .as_array()
            .expect("an array of timings")
            .iter()
            .map(|v| v.as_f64().unwrap_or(-1.0))
            .collect();
        rows.push(t);
    }
    rows.sort_by(|a, b| a[2].total_cmp(&b[2]));
    for r in &rows {
        eprintln!(
            "first byte {:.0} ms, last byte {:.0} ms, first contentful paint {:.0} ms, DOMContentLoaded {:.0} ms, load {:.0} ms; {:.1} MB of HTML, {} container rows",
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            r[5] / 1e6,
            r[6]
        );
    }
    let m = &rows[rows.len() / 2];
    eprintln!(
        "median of {}: first contentful paint {:.0} ms (first byte {:.0} ms, last byte {:.0} ms, load {:.0} ms)",
        rows.len(),
        m[2],
        m[0],
        m[1],
        m[4]
    );
}

/// `replay FILE --history.dir DIR` brings a saved log into a history folder; replayed twice,
/// nothing is kept twice; `events --history.dir` prints it back as it was saved, filtered as
/// the engine would.
#[test]
fn a_saved_log_replayed_into_a_history_folder_is_kept_once() {
    let dir = tempdir("replayed");
    let log = dir.join("saved.jsonl");
    let history = dir.join("history");
    let line = |action: &str, name: &str, t: i64| {
        format!(
            r#"{{"status":"{action}","id":"id-{name}","from":"img","Type":"container","Action":"{action}","Actor":{{"ID":"id-{name}","Attributes":{{"image":"img","name":"{name}"}}}},"scope":"local","time":{},"timeNano":{t}}}"#,
            t / 1_000_000_000
        )
    };
    let saved: Vec<String> = (0..50)
        .map(|i| {
            line(
                if i % 2 == 0 { "start" } else { "die" },
                &format!("c{}", i % 5),
                1_700_000_000_000_000_000 + i,
            )
        })
        .collect();
    std::fs::write(&log, saved.join("\n") + "\n").expect("write the log");
    let history = history.to_str().expect("a UTF-8 path");
    for _ in 0..2 {
        let log = log.to_str().unwrap_or("");
        exporter_says(&["replay", log, "--history.dir", history]);
    }
    let printed = |filters: &[&str]| {
        let mut args = vec!["events", "--history.dir", history];
        for f in filters {
            args.extend(["--filter", f]);
        }
        exporter_says(&args)
    };
    assert_same(&printed(&[]), &saved, "replayed twice, kept once");
    let c3_dies: Vec<String> = saved
        .iter()
        .filter(|l| l.contains(r#""name":"c3""#) && l.contains(r#""Action":"die""#))
        .cloned()
        .collect();
    assert_eq!(c3_dies.len(), 5);
    assert_same(
        &printed(&["container=c3", "event=die"]),
        &c3_dies,
        "container=c3, event=die",
    );
    let _ = std::fs::remove_dir_all(&dir);
}
