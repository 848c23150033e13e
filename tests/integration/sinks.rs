//! Sinks against real stores: rotel (OTLP over HTTP), rsyslog (RFC 5424 over TCP and TLS) and
//! nats-server (JetStream). The engine's own `docker events` is the truth each store is held to.
//! Every test filters its sinks to a label of its own, so the other tests' events (the engine
//! is shared) stay out of its stores.

use std::collections::HashSet;
use std::path::Path;

use serde_json::Value;

use crate::support::assert_same;
use crate::support::capture::Capture;
use crate::support::stores::{NatsServer, Rotel, Rsyslog};
use crate::support::{
    DEADLINE, Exporter, docker, now_secs, tempdir, test_image, unique, wait_until,
};

/// What tells one event from another: its time, type, action and actor.
type Key = (i64, String, String, String);

fn key_of(line: &str) -> Option<Key> {
    let v: Value = serde_json::from_str(line).ok()?;
    Some((
        v["timeNano"].as_i64()?,
        v["Type"].as_str()?.to_owned(),
        v["Action"].as_str()?.to_owned(),
        v["Actor"]["ID"].as_str()?.to_owned(),
    ))
}

/// The engine's own account of what happened: a `docker events` subscription from `since` on
/// (the engine holds only its last 256 events, too few to ask for afterwards). With a label,
/// only the events of containers that carry `dee.test=LABEL`.
struct Truth {
    child: std::process::Child,
    path: std::path::PathBuf,
}

impl Truth {
    fn from(since: &str, label: Option<&str>) -> Self {
        let path = tempdir("truth").join("events.jsonl");
        let out = std::fs::File::create(&path).expect("truth file");
        let mut cmd = std::process::Command::new("docker");
        cmd.args(["events", "--since", since, "--format", "{{json .}}"]);
        if let Some(l) = label {
            cmd.args(["--filter", &format!("label=dee.test={l}")]);
        }
        let child = cmd
            .stdout(out)
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("docker events runs");
        Self { child, path }
    }

    fn keys(&self) -> Vec<Key> {
        std::fs::read_to_string(&self.path)
            .unwrap_or_default()
            .lines()
            .filter_map(key_of)
            .collect()
    }

    /// The events up to `until` (nanoseconds), once `marker` made one after it that the
    /// subscription has seen.
    fn until(&self, until: i64, marker: impl Fn()) -> Vec<Key> {
        marker();
        let seen = wait_until(DEADLINE, || self.keys().iter().any(|k| k.0 > until));
        assert!(seen, "docker events saw the marker");
        self.keys().into_iter().filter(|k| k.0 <= until).collect()
    }
}

impl Drop for Truth {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A pause and an unpause of `name`: events after everything before them.
fn mark(name: &str) -> impl Fn() + '_ {
    move || pause_storm(name, 1)
}

/// Sink URLs for the three stores, with `query` (`filter=...&batch=...`, or empty) on each.
fn sinks(
    rotel: &Rotel,
    syslog: &str,
    nats: &NatsServer,
    subject: &str,
    query: &str,
) -> Vec<String> {
    let with = |url: String| match (query.is_empty(), url.contains('?')) {
        (true, _) => url,
        (false, true) => format!("{url}&{query}"),
        (false, false) => format!("{url}?{query}"),
    };
    vec![
        with(format!("otlp://127.0.0.1:{}", rotel.port)),
        with(syslog.to_owned()),
        with(format!("nats://127.0.0.1:{}/dee.{subject}", nats.port)),
    ]
}

/// Only this test's events: its containers carry `dee.test=LABEL`.
fn only(label: &str, more: &str) -> String {
    format!("filter=label=dee.test={label}{more}")
}

fn exporter_with(history: &Path, state: &Path, sinks: &[String], env: &[(&str, &str)]) -> Exporter {
    let mut args = vec![
        "--history.dir".to_owned(),
        history.display().to_string(),
        "--docker.state-file".to_owned(),
        state.display().to_string(),
    ];
    for s in sinks {
        args.push("--sink".into());
        args.push(s.clone());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Exporter::start_with_env(&args, env)
}

/// What each store holds now, as keys, in the order it holds them.
struct Held {
    otlp: Vec<Key>,
    syslog: Vec<Key>,
    nats: Vec<Key>,
}

fn held(rotel: &Rotel, syslog: &Rsyslog, nats: &NatsServer, stream: &str) -> Held {
    // rotel may print two requests in another order than they came; every record carries
    // its batch's send time, by which (stably) the records are in the order sent.
    let mut records = rotel.records();
    records.sort_by_key(|r| r.observed_nano);
    Held {
        otlp: records.iter().filter_map(|r| key_of(&r.body)).collect(),
        syslog: syslog
            .messages()
            .iter()
            .filter_map(|m| key_of(&m.msg))
            .collect(),
        nats: nats
            .messages(stream)
            .iter()
            .filter_map(|m| key_of(&m.payload))
            .collect(),
    }
}

/// Waits until every store holds every event of `want`; panics with what each lacks.
fn wait_all_held(
    rotel: &Rotel,
    syslog: &Rsyslog,
    nats: &NatsServer,
    stream: &str,
    want: &[Key],
    deadline: std::time::Duration,
    e: &Exporter,
) -> Held {
    let want_set: HashSet<&Key> = want.iter().collect();
    let mut last = None;
    let ok = wait_until(deadline, || {
        let h = held(rotel, syslog, nats, stream);
        let has = |got: &[Key]| {
            let got: HashSet<&Key> = got.iter().collect();
            want_set.iter().all(|k| got.contains(k))
        };
        let done = has(&h.otlp) && has(&h.syslog) && has(&h.nats);
        last = Some(h);
        done
    });
    let h = last.expect("looked at least once");
    assert!(
        ok,
        "the stores lack events: want {}, otlp {}, syslog {}, nats {}; exporter log:\n{}\nrsyslog:\n{}",
        want.len(),
        h.otlp.len(),
        h.syslog.len(),
        h.nats.len(),
        crate::support::tail(&e.log(), 40),
        syslog.log()
    );
    h
}

fn label_args(label: &str) -> String {
    format!("dee.test={label}")
}

/// The three stores, for the tests that stop and start them together; the NATS stream `stream`
/// takes `dee.LABEL.>`.
struct Stores {
    rotel: Rotel,
    syslog: Rsyslog,
    nats: NatsServer,
    stream: &'static str,
}

impl Stores {
    fn start(stream: &'static str, label: &str) -> Self {
        let nats = NatsServer::start();
        nats.add_stream(stream, &format!("dee.{label}"));
        Self {
            rotel: Rotel::start(),
            syslog: Rsyslog::start(None),
            nats,
            stream,
        }
    }

    /// A sink for each (syslog in plain TCP), taking only the label's events, with `more`.
    fn urls(&self, label: &str, more: &str) -> Vec<String> {
        let plain = format!("syslog://127.0.0.1:{}", self.syslog.port);
        sinks(&self.rotel, &plain, &self.nats, label, &only(label, more))
    }

    fn down(&mut self) {
        self.rotel.down();
        self.syslog.down();
        self.nats.down();
    }

    fn up(&mut self) {
        self.rotel.up();
        self.syslog.up();
        self.nats.up();
    }

    fn wait_all_held(&self, want: &[Key], deadline: std::time::Duration, e: &Exporter) -> Held {
        wait_all_held(
            &self.rotel,
            &self.syslog,
            &self.nats,
            self.stream,
            want,
            deadline,
            e,
        )
    }
}

/// Containers, a volume and a network made, run, exec'd into, killed and removed: each store
/// holds exactly the engine's events, in the engine's order, with the fields the docs list.
#[test]
fn each_store_holds_exactly_the_engines_events_in_order() {
    let label = unique("sink");
    let certs = tempdir("sink-certs");
    crate::tls::make_certs(&certs);
    let rotel = Rotel::start();
    let syslog = Rsyslog::start(Some(&certs));
    let nats = NatsServer::start();
    nats.add_stream("DEE", &format!("dee.{label}"));
    let dir = tempdir("sink-history");
    let c = certs.display();
    let syslogs = format!(
        "syslogs://localhost:{}?ca={c}/ca.pem&cert={c}/cert.pem&key={c}/key.pem",
        syslog.port
    );
    let urls = sinks(&rotel, &syslogs, &nats, &label, "");
    // Every event, unfiltered: a volume's and a network's carry no labels to filter by.
    let e = exporter_with(&dir.join("history"), &dir.join("state.json"), &urls, &[]);
    let since = now_secs();
    let truth = Truth::from(&since, None);
    let l = label_args(&label);
    let name = format!("{label}-c");
    let _c = crate::support::Cleanup(vec![name.clone()]);
    let _leftovers = Leftovers(label.clone());
    docker(&["volume", "create", "--label", &l, &format!("{label}-v")]);
    docker(&["network", "create", "--label", &l, &format!("{label}-n")]);
    docker(&[
        "run",
        "-d",
        "--label",
        &l,
        "--name",
        &name,
        "--network",
        &format!("{label}-n"),
        "-v",
        &format!("{label}-v:/data"),
        test_image(),
        "sleep",
        "300",
    ]);
    let exec = crate::support::docker_output(&["exec", &name, "sh", "-c", "exit 3"]);
    assert_eq!(exec.status.code(), Some(3));
    docker(&["kill", &name]);
    docker(&["rm", &name]);
    docker(&["network", "rm", &format!("{label}-n")]);
    docker(&["volume", "rm", &format!("{label}-v")]);
    let until = now_secs();
    // The window, inside its ends on both sides: the engine's and the stores' alike.
    let (from, to) = (nanos(&since), nanos(&until));
    let inside = |keys: Vec<Key>| -> Vec<Key> {
        keys.into_iter()
            .filter(|k| k.0 > from && k.0 < to)
            .collect()
    };
    let marker = format!("{label}-marker");
    let want = inside(truth.until(to, || {
        docker(&["volume", "create", &marker]);
        docker(&["volume", "rm", &marker]);
    }));
    let h = wait_all_held(&rotel, &syslog, &nats, "DEE", &want, DEADLINE, &e);
    // The engine publishes each event to each subscriber on a goroutine of its own (moby's
    // pkg/pubsub), so two events of the same moment may reach two subscribers in two orders:
    // the order to hold the stores to is the one the engine gave the exporter, which its
    // history keeps. The events themselves are the engine's, exactly.
    let kept = inside(history_keys(&dir.join("history")));
    let sorted = |keys: &[Key]| {
        let mut k = keys.to_vec();
        k.sort();
        k
    };
    assert_eq!(
        sorted(&kept),
        sorted(&want),
        "the history holds the engine's events, once each"
    );
    assert_same(&inside(h.otlp), &kept, "otlp");
    assert_same(&inside(h.syslog), &kept, "syslog");
    assert_same(&inside(h.nats), &kept, "nats");
    for (object, action) in [
        ("volume", "create"),
        ("network", "create"),
        ("container", "start"),
        ("network", "connect"),
        ("volume", "mount"),
        ("container", "kill"),
        ("container", "destroy"),
        ("network", "destroy"),
        ("volume", "destroy"),
    ] {
        assert!(
            want.iter().any(|k| k.1 == object && k.2 == action),
            "the window holds a {object} {action}: {want:?}"
        );
    }

    // The fields, store by store, for the exec's end.
    // Other tests' events go through these unfiltered sinks too: this container's, by name.
    let ours = |line: &str, action: &str| {
        key_of(line).is_some_and(|k| k.2 == action)
            && line.contains(&format!("\"name\":\"{name}\""))
    };
    let is_exec_die = |line: &str| ours(line, "exec_die");
    let records = rotel.records();
    let r = records
        .iter()
        .find(|r| is_exec_die(&r.body))
        .expect("the exec_die record");
    let k = key_of(&r.body).expect("a key");
    assert_eq!(r.time_nano, k.0);
    assert_eq!(r.event_name, "docker.container.exec_die");
    assert_eq!(r.severity, "INFO");
    assert_eq!(r.attributes.get("container.name"), Some(&name));
    assert_eq!(r.attributes.get("container.id"), Some(&k.3));
    assert_eq!(
        r.attributes.get("process.exit.code").map(String::as_str),
        Some("3")
    );
    assert_eq!(r.attributes.get("container.label.dee.test"), Some(&label));
    assert_eq!(
        r.attributes.get("log.record.uid").map(String::len),
        Some(32)
    );
    assert_eq!(
        r.resource.get("service.name").map(String::as_str),
        Some("docker")
    );
    assert!(r.resource.contains_key("host.name") && r.resource.contains_key("docker.engine.id"));
    let uids: HashSet<&String> = records
        .iter()
        .filter_map(|r| r.attributes.get("log.record.uid"))
        .collect();
    assert_eq!(uids.len(), records.len(), "an ID an event");

    let messages = syslog.messages();
    let m = messages
        .iter()
        .find(|m| is_exec_die(&m.msg))
        .expect("the exec_die message");
    assert_eq!(m.app_name, "docker-events");
    assert_eq!(m.msgid, "container.exec_die");
    assert_eq!(m.pri, "30", "daemon.info");
    assert!(
        m.structured_data.starts_with("[docker@32473 id=\"")
            && m.structured_data.contains(&format!("name=\"{name}\""))
            && m.structured_data.contains("exitCode=\"3\""),
        "{}",
        m.structured_data
    );
    let kill = messages
        .iter()
        .find(|m| ours(&m.msg, "die"))
        .expect("the die");
    assert_eq!(kill.pri, "28", "a non-zero exit is daemon.warning");

    let stream = nats.messages("DEE");
    let n = stream
        .iter()
        .find(|m| is_exec_die(&m.payload))
        .expect("the exec_die message");
    assert_eq!(n.subject, format!("dee.{label}.container.exec_die"));
    assert_eq!(
        n.msg_id, r.attributes["log.record.uid"],
        "one ID in every store"
    );
    // Other tests' events go on through this unfiltered sink: at least the window's.
    let sent = e
        .value(
            "docker_events_exporter_sink_events_sent_total",
            &[(
                "sink",
                &format!("nats://127.0.0.1:{}/dee.{label}", nats.port),
            )],
        )
        .unwrap_or(0.0);
    assert!(sent >= want.len() as f64, "{sent} sent");
    // Caught up: nothing waits longer than a batch's flush (other tests' events keep coming
    // through this unfiltered sink, so a batch may be on its way).
    let lag = [("sink", format!("otlp://127.0.0.1:{}", rotel.port))];
    let lag: Vec<(&str, &str)> = lag.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let caught_up = wait_until(DEADLINE, || {
        e.value("docker_events_exporter_sink_lag_seconds", &lag)
            .is_some_and(|v| v < 2.0)
    });
    assert!(
        caught_up,
        "the otlp sink's lag: {:?}",
        e.value("docker_events_exporter_sink_lag_seconds", &lag)
    );
}

/// The stores stopped for 60 s while 500 events happen: each receives all of them once it is
/// back; the NATS stream holds each exactly once, the others at most one batch twice.
#[test]
fn stores_down_for_a_minute_receive_every_event_when_back() {
    const BATCH: usize = 50;
    let label = unique("outage");
    let mut stores = Stores::start("OUTAGE", &label);
    let dir = tempdir("outage");
    let urls = stores.urls(&label, &format!("&batch={BATCH}&flush=200ms"));
    let e = exporter_with(&dir.join("history"), &dir.join("state.json"), &urls, &[]);
    let (truth, name, _c) = sleeper(&label);
    let started = truth.until(nanos(&now_secs()), mark(&name));
    stores.wait_all_held(&started, DEADLINE, &e);

    let down_at = std::time::Instant::now();
    stores.down();
    pause_storm(&name, 250);
    let failing = wait_until(DEADLINE, || {
        ["otlp", "syslog", "nats"].iter().all(|s| {
            e.scrape()
                .matching("docker_events_exporter_sink_batches_failed_total", &[])
                .iter()
                .any(|(l, v)| l["sink"].starts_with(s) && *v > 0.0)
        })
    });
    assert!(failing, "every sink saw its store gone; log:\n{}", e.log());
    // The outage is a minute long, whatever the storm took.
    std::thread::sleep(std::time::Duration::from_secs(60).saturating_sub(down_at.elapsed()));
    let lag = e
        .scrape()
        .matching("docker_events_exporter_sink_lag_seconds", &[]);
    assert!(
        lag.iter().all(|(_, v)| *v >= 30.0),
        "the sinks are behind: {lag:?}"
    );
    stores.up();
    let until = nanos(&now_secs());
    let want = truth.until(until, mark(&name));
    assert!(want.len() >= 502, "the engine's events: {}", want.len());
    let h = stores.wait_all_held(&want, std::time::Duration::from_secs(90), &e);
    assert_exactly_once(&h.nats, &want, until);
    for (store, got) in [("otlp", &h.otlp), ("syslog", &h.syslog)] {
        let again = got.len() - got.iter().collect::<HashSet<_>>().len();
        assert!(
            again <= BATCH,
            "{store}: {again} events twice, more than a batch"
        );
    }
}

/// SIGKILL in the middle of catching up, then the same folders again: every store receives
/// every event; the NATS stream holds each exactly once.
#[test]
fn a_sigkilled_exporter_resumes_every_sink_from_its_cursor() {
    let label = unique("killed");
    let mut stores = Stores::start("KILLED", &label);
    let dir = tempdir("killed");
    let urls = stores.urls(&label, "&batch=5&flush=100ms");
    let (history, state) = (dir.join("history"), dir.join("state.json"));
    // The stores are down while the events happen: they wait on disk.
    stores.down();
    let e = exporter_with(&history, &state, &urls, &[]);
    let (truth, name, _c) = sleeper(&label);
    pause_storm(&name, 100);
    let until = nanos(&now_secs());
    let want = truth.until(until, mark(&name));
    let on_disk = wait_until(DEADLINE, || {
        e.value(
            "docker_events_total",
            &[("object", "container"), ("action", "unpause")],
        )
        .is_some_and(|v| v >= 100.0)
    });
    assert!(on_disk, "the storm reached the exporter");
    stores.up();
    let sent = |e: &Exporter| -> f64 {
        e.scrape()
            .matching("docker_events_exporter_sink_events_sent_total", &[])
            .iter()
            .map(|(_, v)| v)
            .sum()
    };
    let moving = wait_until(std::time::Duration::from_secs(60), || sent(&e) > 0.0);
    assert!(moving, "a sink began; log:\n{}", e.log());
    let at_kill = sent(&e);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(e.pid() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("SIGKILL");
    assert!(
        at_kill < 3.0 * want.len() as f64,
        "killed in the middle: {at_kill} of {} sent",
        3 * want.len()
    );
    drop(e);
    let again = exporter_with(&history, &state, &urls, &[]);
    let h = stores.wait_all_held(&want, std::time::Duration::from_secs(60), &again);
    assert_exactly_once(&h.nats, &want, until);
    for (store, got) in [("otlp", &h.otlp), ("syslog", &h.syslog)] {
        let unique: HashSet<_> = got.iter().filter(|k| k.0 <= until).collect();
        assert_eq!(unique.len(), want.len(), "{store}: every event");
    }
}

/// A store that answers every batch with a 400: logged with its answer and counted; the other
/// sinks and the metrics go on as if it were not there.
#[test]
fn a_store_that_refuses_every_batch_is_logged_counted_and_harms_nothing() {
    let label = unique("refused");
    let store = Capture::start(|_| {
        Some((
            400,
            vec![],
            r#"{"code":3,"message":"log record is malformed"}"#.into(),
        ))
    });
    let syslog = Rsyslog::start(None);
    let dir = tempdir("refused");
    let filter = format!("filter=label=dee.test={label}");
    let refusing = format!("{}/v1/logs", store.base().replace("http://", "otlp://"));
    let urls = [
        format!("{refusing}?{filter}&encoding=json"),
        format!("syslog://127.0.0.1:{}?{filter}", syslog.port),
    ];
    let e = exporter_with(&dir.join("history"), &dir.join("state.json"), &urls, &[]);
    let since = now_secs();
    let truth = Truth::from(&since, Some(&label));
    let name = format!("{label}-c");
    let _c = crate::support::Cleanup(vec![name.clone()]);
    let run = crate::support::docker_output(&[
        "run",
        "--label",
        &label_args(&label),
        "--name",
        &name,
        test_image(),
        "sh",
        "-c",
        "exit 3",
    ]);
    assert_eq!(run.status.code(), Some(3));
    // Its removal is the last event: then the subscription has them all.
    truth.until(nanos(&now_secs()), || {
        docker(&["rm", &name]);
    });
    let want = truth.keys();
    let shown = refusing.clone();
    let skipped = [("sink", shown.as_str()), ("reason", "rejected")];
    e.wait_for(
        "docker_events_exporter_sink_events_skipped_total",
        &skipped,
        want.len() as f64,
    );
    let ok = wait_until(DEADLINE, || {
        let got: Vec<Key> = syslog
            .messages()
            .iter()
            .filter_map(|m| key_of(&m.msg))
            .collect();
        got == want
    });
    assert!(ok, "the syslog sink has every event; log:\n{}", e.log());
    let failed = e
        .value(
            "docker_events_exporter_sink_batches_failed_total",
            &[("sink", &shown), ("reason", "rejected")],
        )
        .unwrap_or(0.0);
    assert!(failed >= 1.0, "{failed}");
    assert_eq!(
        e.value(
            "docker_events_exporter_sink_events_sent_total",
            &[("sink", &shown)]
        ),
        Some(0.0)
    );
    let log = e.log();
    assert!(
        log.contains("the store refused a batch; its events are skipped")
            && log.contains("HTTP 400 Bad Request: {\\\"code\\\":3,\\\"message\\\":\\\"log record is malformed\\\"}"),
        "{log}"
    );
    let labels = crate::support::container_labels(&name, &[("exit_code", "3")]);
    e.wait_for("docker_container_exits_total", &labels, 1.0);
    assert!(store.requests().iter().all(|r| r.path == "/v1/logs"));
}

/// An event over the NATS server's `max_payload` is refused alone, logged and counted; the
/// events beside it in its batch are stored.
#[test]
fn an_event_over_the_nats_max_payload_is_skipped_alone() {
    let label = unique("bignats");
    let nats = NatsServer::start_with("max_payload: 4096\n");
    nats.add_stream("BIG", &format!("dee.{label}"));
    let dir = tempdir("bignats");
    let url = format!(
        "nats://127.0.0.1:{}/dee.{label}?{}",
        nats.port,
        only(&label, "&flush=2s")
    );
    let e = exporter_with(
        &dir.join("history"),
        &dir.join("state.json"),
        std::slice::from_ref(&url),
        &[],
    );
    let (truth, name, _c) = sleeper(&label);
    let big = format!("{label}-big");
    let _b = crate::support::Cleanup(vec![big.clone()]);
    let huge = format!("huge={}", "x".repeat(5000));
    docker(&[
        "create",
        "--label",
        &label_args(&label),
        "--label",
        &huge,
        "--name",
        &big,
        test_image(),
        "true",
    ]);
    let until = nanos(&now_secs());
    let want = truth.until(until, mark(&name));
    let big_id = docker(&["inspect", "--format", "{{.Id}}", &big]);
    let (too_big, fits): (Vec<Key>, Vec<Key>) = want.into_iter().partition(|k| k.3 == big_id);
    assert_eq!(too_big.len(), 1, "the big container's create: {too_big:?}");
    let shown = url.split('?').next().unwrap_or_default().to_owned();
    e.wait_for(
        "docker_events_exporter_sink_events_skipped_total",
        &[("sink", &shown), ("reason", "rejected")],
        1.0,
    );
    let ok = wait_until(DEADLINE, || {
        let got: HashSet<Key> = nats
            .messages("BIG")
            .iter()
            .filter_map(|m| key_of(&m.payload))
            .collect();
        fits.iter().all(|k| got.contains(k))
    });
    assert!(ok, "every event that fits is stored; log:\n{}", e.log());
    let stored: Vec<Key> = nats
        .messages("BIG")
        .iter()
        .filter_map(|m| key_of(&m.payload))
        .collect();
    assert!(!stored.contains(&too_big[0]), "the big one is not stored");
    let log = e.log();
    assert!(
        log.contains("the store refused some events of a batch")
            && log.contains("over the max_payload of the server"),
        "{log}"
    );
}

/// `--sink` is checked with the other flags: a bad one stops the exporter with one line.
#[test]
fn a_bad_sink_or_one_without_history_is_refused_in_one_line() {
    let bin = env!("CARGO_BIN_EXE_docker-events-exporter");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin)
            .args(args)
            .output()
            .expect("runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        )
    };
    let dir = tempdir("bad-sink");
    let d = dir.display().to_string();
    assert_eq!(
        run(&["--sink", "otlp://c:4318"]),
        (
            Some(1),
            "docker-events-exporter: error: --sink otlp://c:4318 needs --history.dir: a sink ships the events kept there, from where it left off".to_owned()
        )
    );
    let rules = crate::support::repo_root().join("examples/audit-log.yml");
    let rules = rules.to_str().expect("utf-8");
    assert_eq!(
        run(&["--history.dir", &d, "--sink", "loki://c:3100", "check-config", rules]),
        (
            Some(1),
            "docker-events-exporter: error: --sink loki://c:3100: unknown scheme \"loki\"; a sink is otlp://, otlps://, syslog://, syslogs://, nats:// or tls://".to_owned()
        )
    );
    let (code, err) = run(&["--history.dir", &d, "--sink", "nats://u:hunter2@n:4222/ev"]);
    assert_eq!(code, Some(1));
    assert!(!err.contains("hunter2"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// The events of a history folder's segments, in the order they were kept.
fn history_keys(dir: &Path) -> Vec<Key> {
    let mut segments: Vec<_> = std::fs::read_dir(dir)
        .expect("the history folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    segments.sort();
    segments
        .iter()
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .lines()
                .filter_map(key_of)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// From now on: the engine's account of the label's events, and a container of the label's
/// that sleeps (removed when the guard returned drops).
fn sleeper(label: &str) -> (Truth, String, crate::support::Cleanup) {
    let truth = Truth::from(&now_secs(), Some(label));
    let name = format!("{label}-c");
    let cleanup = crate::support::Cleanup(vec![name.clone()]);
    docker(&[
        "run",
        "-d",
        "--label",
        &label_args(label),
        "--name",
        &name,
        test_image(),
        "sleep",
        "300",
    ]);
    (truth, name, cleanup)
}

/// The stream holds each event of `want` once, in order, and nothing twice after it.
fn assert_exactly_once(got: &[Key], want: &[Key], until: i64) {
    let upto: Vec<Key> = got.iter().filter(|k| k.0 <= until).cloned().collect();
    assert_eq!(upto, want, "nats: each event exactly once, in order");
    let unique: HashSet<&Key> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "nats: nothing twice");
}

/// `now_secs()`'s text as nanoseconds.
fn nanos(secs: &str) -> i64 {
    let (s, frac) = secs.split_once('.').unwrap_or((secs, "0"));
    s.parse::<i64>().expect("seconds") * 1_000_000_000
        + format!("{frac:0<9}")[..9]
            .parse::<i64>()
            .expect("nanoseconds")
}

/// Removes the test's network and volume when dropped, also when the test panics.
struct Leftovers(String);

impl Drop for Leftovers {
    fn drop(&mut self) {
        let _ = crate::support::docker_output(&["rm", "-f", &format!("{}-c", self.0)]);
        let _ = crate::support::docker_output(&["network", "rm", &format!("{}-n", self.0)]);
        let _ = crate::support::docker_output(&["volume", "rm", &format!("{}-v", self.0)]);
    }
}

/// `n` pause and unpause pairs of container `name`, through the engine's API.
fn pause_storm(name: &str, n: usize) {
    let script = format!(
        "for i in $(seq {n}); do for a in pause unpause; do \
         curl -sS --fail --unix-socket /var/run/docker.sock -X POST http://docker/containers/{name}/$a || exit 1; \
         done; done"
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "the storm: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
