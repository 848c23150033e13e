//! The router, through `tower::ServiceExt::oneshot`: every path, its answers and its limits.

use axum::body::Body;

use super::*;
use crate::metrics::containers::CHUNK_BYTES;
use axum::http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;

fn app() -> (Router, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new(&[]).expect("metrics"));
    (router(AppState::for_tests(metrics.clone())), metrics)
}

fn histories(metrics: &Metrics) -> Arc<Histories> {
    let settings = crate::history::HistorySettings {
        size: 100,
        dir: None,
        retention: crate::history::Retention {
            max_age: None,
            max_bytes: None,
        },
    };
    Histories::new(settings, false, &metrics.registry).expect("histories")
}

impl AppState {
    fn for_tests(metrics: Arc<Metrics>) -> Self {
        Self {
            histories: histories(&metrics),
            metrics,
            telemetry_path: "/custom".to_owned(),
            scrapes: ScrapeLimits::default(),
            auth: None,
            closing: tokio_util::sync::CancellationToken::new(),
            mutes: Arc::default(),
        }
    }
}

async fn get(app: Router, path: &str) -> (StatusCode, String, String) {
    let resp = app
        .oneshot(Request::get(path).body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let status = resp.status();
    let ctype = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, ctype, String::from_utf8_lossy(&body).into_owned())
}

/// A state with one engine's history, and that history.
fn with_history() -> (AppState, Arc<crate::history::History>) {
    let metrics = Arc::new(Metrics::new(&[]).expect("metrics"));
    let state = AppState::for_tests(metrics);
    let h = state
        .histories
        .engine("e", "e".into(), None)
        .expect("history");
    (state, h)
}

fn record(h: &crate::history::History, line: &str) {
    let ev = crate::docker::event::Event::decode(line.as_bytes()).expect("event");
    h.record(&ev, line.as_bytes());
}

/// One engine's history holding `lines`.
fn with_events(lines: &[&str]) -> Router {
    let (state, h) = with_history();
    for l in lines {
        record(&h, l);
    }
    router(state)
}

const START: &str = r#"{"status":"start","id":"c1","Type":"container","Action":"start","Actor":{"ID":"c1","Attributes":{"name":"web","x":"\u003cb\u003e"}},"scope":"local","time":10,"timeNano":10000000000}"#;
const DIE: &str = r#"{"status":"die","id":"c2","Type":"container","Action":"die","Actor":{"ID":"c2","Attributes":{"exitCode":"1","name":"db"}},"scope":"local","time":20,"timeNano":20000000000}"#;

#[tokio::test]
async fn the_history_answers_as_docker_events_prints_with_the_engines_filters() {
    let app = with_events(&[START, DIE]);
    let (status, ctype, body) = get(app.clone(), "/api/v1/events").await;
    assert_eq!(
        (status, ctype.as_str()),
        (StatusCode::OK, "application/x-ndjson")
    );
    // The API's \u003c escapes as the docker CLI prints them: plain.
    assert_eq!(
        body,
        format!(
            "{}\n{DIE}\n",
            START.replace("\\u003c", "<").replace("\\u003e", ">")
        )
    );
    let (_, _, body) = get(app.clone(), "/api/v1/events?since=15").await;
    assert_eq!(body, format!("{DIE}\n"));
    let (_, _, body) = get(app.clone(), "/api/v1/events?until=10.000000000").await;
    assert!(body.starts_with("{\"status\":\"start\""), "{body}");
    let (_, _, body) = get(
        app.clone(),
        "/api/v1/events?filters=%7B%22container%22%3A%5B%22db%22%5D%7D",
    )
    .await;
    assert_eq!(body, format!("{DIE}\n"));
    let (status, ctype, body) = get(
        app.clone(),
        "/api/v1/events?filters=%7B%22colour%22%3A%5B%22red%22%5D%7D",
    )
    .await;
    assert_eq!(
        (status, ctype.as_str()),
        (StatusCode::BAD_REQUEST, "application/json")
    );
    assert!(
        body.starts_with(
            r#"{"message":"invalid filter \"colour\"; the keys are config, container"#
        ),
        "{body}"
    );
    let (status, _, body) = get(app, "/api/v1/events?since=soon").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains(r#"since \"soon\": not a time"#), "{body}");
}

#[tokio::test]
async fn the_live_stream_sends_the_events_that_pass_its_filters_from_now_on() {
    let (state, h) = with_history();
    record(&h, START);
    let app = router(state);
    let resp = app
        .oneshot(
            Request::get("/api/v1/events/live?filters=%7B%22event%22%3A%5B%22die%22%5D%7D")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
    assert_eq!(
        resp.headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or("")),
        Some("text/event-stream")
    );
    record(&h, START);
    record(&h, DIE);
    let mut body = resp.into_body();
    let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("an event within 5 s")
        .expect("a frame")
        .expect("data");
    let data = frame.into_data().expect("data");
    assert_eq!(
        String::from_utf8_lossy(&data),
        format!("data: {{\"engine\":\"e\",\"event\":{DIE}}}\n\n"),
        "the start before it and the one after it are not sent"
    );
}

#[tokio::test]
async fn the_page_and_the_api_ask_for_basic_auth_as_the_metrics_do() {
    let metrics = Arc::new(Metrics::new(&[]).expect("metrics"));
    let mut state = AppState::for_tests(metrics);
    let users = std::collections::BTreeMap::from([("u".to_owned(), "$2y$04$x".to_owned())]);
    state.auth = Some(Arc::new(BasicAuth::new(users)));
    let app = router(state);
    for path in [
        "/",
        "/api/v1/events",
        "/api/v1/events/live",
        "/api/v1/status",
        "/api/v1/mutes",
        "/static/status.js",
        "/custom",
    ] {
        assert_eq!(
            get(app.clone(), path).await.0,
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
    }
}

#[tokio::test]
async fn the_page_serves_its_own_script_and_style_only() {
    let app = with_events(&[START]);
    let resp = app
        .clone()
        .oneshot(Request::get("/").body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    assert_eq!(
        resp.headers()
            .get(header::CONTENT_SECURITY_POLICY)
            .map(|v| v.to_str().unwrap_or("")),
        Some(PAGE_POLICY)
    );
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let page = String::from_utf8_lossy(&body);
    assert!(
        page.contains("<script src=\"static/status.js\"></script>"),
        "{page}"
    );
    assert!(page.contains("<b>start</b> <span class=\"name\">web</span> <span class=\"attrs\">name=web, x=&lt;b&gt;</span>"), "{page}");
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no external asset"
    );
    let (status, ctype, js) = get(app.clone(), "/static/status.js").await;
    assert_eq!(
        (status, ctype.as_str()),
        (StatusCode::OK, "text/javascript; charset=utf-8")
    );
    assert!(!js.contains("innerHTML"), "the script sets text only");
    let (_, ctype, _) = get(app, "/static/status.css").await;
    assert_eq!(ctype, "text/css; charset=utf-8");
}

#[tokio::test]
async fn metrics_at_the_configured_path() {
    let (app, metrics) = app();
    let _engine = metrics.engine("");
    let (status, ctype, body) = get(app.clone(), "/custom").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ctype, TEXT_FORMAT);
    assert!(body.contains("docker_events_exporter_up 0\n"), "{body}");
    assert_eq!(get(app, "/metrics").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_large_scrape_streams_the_same_text_as_encode() {
    let (app, metrics) = app();
    for i in 0..3000 {
        let (_, cell) = metrics.containers.insert(
            None,
            &[
                format!("container-{i}"),
                "image".to_owned(),
                "project".to_owned(),
                "service".to_owned(),
            ],
        );
        cell.lock().starts = i;
    }
    let containers = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.contains("docker_container_"))
            .map(str::to_owned)
            .collect()
    };
    let (status, _, body) = get(app, "/custom").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.len() > 2 * CHUNK_BYTES,
        "{} bytes: not chunked",
        body.len()
    );
    let want = containers(&metrics.encode());
    assert_eq!(
        want.len(),
        3000 * 9 + 4 * 2,
        "starts, oom, restarts, 6 states; HELP and TYPE of 4 families"
    );
    assert_eq!(containers(&body), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_abandoned_and_frees_its_place() {
    let metrics = Arc::new(Metrics::new(&[]).expect("metrics"));
    for i in 0..3000 {
        let name = format!("container-{i}");
        metrics
            .containers
            .insert(None, &[name, "image".into(), String::new(), String::new()]);
    }
    let app = router(AppState {
        metrics: metrics.clone(),
        telemetry_path: "/metrics".to_owned(),
        scrapes: ScrapeLimits::new(1, Duration::from_secs(20), Duration::from_millis(300)),
        auth: None,
        histories: histories(&metrics),
        closing: tokio_util::sync::CancellationToken::new(),
        mutes: Arc::default(),
    });
    let request = || {
        Request::get("/metrics")
            .body(Body::empty())
            .expect("request")
    };
    // Takes the only place, then reads nothing: its encoder stalls on a full channel.
    let stalled = app.clone().oneshot(request()).await.expect("infallible");
    // Waits for the place, which the stall timeout gives back.
    let (status, _, body) = get(app, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let whole = body.matches("docker_container_state{").count();
    assert_eq!(whole, 3000 * 6);
    let cut = stalled
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let cut = String::from_utf8_lossy(&cut);
    assert!(
        cut.matches("docker_container_state{").count() < whole,
        "the stalled scrape was abandoned, not finished"
    );
}

#[tokio::test]
async fn ready_follows_the_subscription() {
    let (app, metrics) = app();
    assert_eq!(
        get(app.clone(), "/-/ready").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(get(app.clone(), "/-/healthy").await.0, StatusCode::OK);
    let engine = metrics.engine("");
    engine.set_up(true);
    assert_eq!(get(app.clone(), "/-/ready").await.0, StatusCode::OK);
    engine.set_up(false);
    assert_eq!(
        get(app, "/-/ready").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

/// With several engines, ready while any one is subscribed: one engine down does not
/// take the others' metrics out of a load balancer's rotation.
#[tokio::test]
async fn with_several_engines_ready_while_any_is_subscribed() {
    let metrics = Arc::new(Metrics::for_engines(&[], true).expect("metrics"));
    let app = router(AppState::for_tests(metrics.clone()));
    let (a, b) = (metrics.engine("a"), metrics.engine("b"));
    let (status, _, body) = get(app.clone(), "/-/ready").await;
    assert_eq!(
        (status, body.as_str()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "Not ready: subscribed to none of the engines' events\n"
        )
    );
    a.set_up(true);
    b.set_up(true);
    a.set_up(false);
    assert_eq!(get(app.clone(), "/-/ready").await.0, StatusCode::OK);
    b.set_up(false);
    assert_eq!(
        get(app.clone(), "/-/ready").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let text = get(app, "/custom").await.2;
    assert!(
        text.contains("docker_events_exporter_up{engine=\"a\"} 0\n"),
        "{text}"
    );
    assert!(
        text.contains("docker_events_exporter_up{engine=\"b\"} 0\n"),
        "{text}"
    );
}

#[tokio::test]
async fn the_page_links_the_metrics_path_in_its_footer() {
    let (app, _) = app();
    let (status, _, body) = get(app, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("<a href=\"/custom\">Metrics</a>"), "{body}");
}

/// Sends `method` `path` with `body`; the status and the body.
async fn send(app: Router, method: &str, path: &str, body: &str) -> (StatusCode, String) {
    let resp = app
        .oneshot(
            Request::builder()
                .method(method)
                .uri(path)
                .body(Body::from(body.to_owned()))
                .expect("request"),
        )
        .await
        .expect("infallible");
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A mute is made with Alertmanager's silence body and answered with its ID, listed with its
/// state, and expired by ID; a bad one and an unknown ID are answered with what is wrong.
#[tokio::test]
async fn mutes_are_made_listed_and_expired_through_the_api() {
    let (app, _) = app();
    let ends = crate::docker::format_rfc3339_nano(now_nano() + 3_600_000_000_000).expect("a time");
    let body = format!(
        r#"{{"matchers": [{{"name": "name", "value": "web-.*", "isRegex": true}}], "endsAt": "{ends}", "createdBy": "ops", "comment": "deploy"}}"#
    );
    let (status, answer) = send(app.clone(), "POST", "/api/v1/mutes", &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).expect("JSON");
    let id = answer["muteID"].as_str().expect("an ID").to_owned();
    let listed = |app: Router| async move {
        let (status, _, body) = get(app, "/api/v1/mutes").await;
        assert_eq!(status, StatusCode::OK);
        let list: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        list.as_array()
            .expect("a list")
            .iter()
            .map(|m| {
                (
                    m["id"].as_str().unwrap_or_default().to_owned(),
                    m["status"]["state"].as_str().unwrap_or_default().to_owned(),
                    m["comment"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        listed(app.clone()).await,
        [(id.clone(), "active".to_owned(), "deploy".to_owned())]
    );
    let path = format!("/api/v1/mutes/{id}");
    assert_eq!(
        send(app.clone(), "DELETE", &path, "").await.0,
        StatusCode::OK
    );
    assert_eq!(
        listed(app.clone()).await,
        [(id, "expired".to_owned(), "deploy".to_owned())]
    );
    assert_eq!(
        send(app.clone(), "DELETE", "/api/v1/mutes/nope", "").await,
        (
            StatusCode::NOT_FOUND,
            r#"{"message":"no mute \"nope\""}"#.to_owned()
        )
    );
    let bad = format!(r#"{{"matchers": [{{"name": "image", "value": "x"}}], "endsAt": "{ends}"}}"#);
    assert_eq!(
        send(app.clone(), "POST", "/api/v1/mutes", &bad).await,
        (
            StatusCode::BAD_REQUEST,
            r#"{"message":"matchers[0]: unknown name \"image\"; expected one of: name, compose_project, compose_service, swarm_service, engine, rule, label_<KEY>"}"#
                .to_owned()
        )
    );
    let (status, answer) = send(
        app,
        "POST",
        "/api/v1/mutes",
        r#"{"matchers": [], "until": 1}"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer.starts_with(r#"{"message":"the body is not a mute: unknown field `until`"#),
        "{answer}"
    );
}
