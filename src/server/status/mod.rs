//! The status page at `/`: what is crashing or unhealthy now, every container's state, and
//! the live event log. The page is written here, whole, on the server (so that it reads
//! without its script, and its first paint needs no second request); its script
//! ([`SCRIPT`]) then keeps it current from `/api/v1/status` and the live events. Every value
//! on it comes from the engine's events, which anyone who can name a container writes: each
//! is escaped here, and the script only ever sets text.

use std::fmt::Write as _;
use std::sync::Arc;

use serde::Serialize;

use crate::metrics::Metrics;

/// The page's style sheet and script, served from the binary.
pub const STYLE: &str = include_str!("page.css");
pub const SCRIPT: &str = include_str!("page.js");

/// Events the page shows when it opens (the live log then adds to them).
pub const FIRST_EVENTS: usize = 100;

/// How far back "crashing now" looks, as `DockerContainerCrashLooping` does.
pub const CRASH_WINDOW_NANOS: i64 = 600 * 1_000_000_000;

/// Exits on its own with an error in that window that make a container "crashing now" (the
/// alert's count).
pub const CRASH_EXITS: usize = 3;

/// What the page shows, also served as JSON at `/api/v1/status`.
#[derive(Debug, Serialize)]
pub struct Status {
    /// Whether several engines are watched (the page then shows an Engine column).
    pub several_engines: bool,
    pub crashing: Vec<Crashing>,
    pub unhealthy: Vec<Row>,
    /// The rules' firings waiting for their resolving event.
    pub firing: Vec<FiringRow>,
    /// The mutes in force or to come.
    pub mutes: Vec<MuteRow>,
    pub containers: Vec<Row>,
}

/// A mute in force (or to come).
#[derive(Debug, Serialize)]
pub struct MuteRow {
    pub id: String,
    /// Its matchers as amtool writes them: `name=~"web-.*"`, `engine="h1"`.
    pub matchers: String,
    /// `active` or `pending`.
    pub state: String,
    pub starts_at: String,
    pub ends_at: String,
    pub created_by: String,
    pub comment: String,
}

impl MuteRow {
    /// The mutes of `mutes` not expired at `now_nano`.
    pub fn all(mutes: &crate::actions::Mutes, now_nano: i64) -> Vec<Self> {
        mutes
            .list(now_nano)
            .into_iter()
            .filter(|l| l.status.state != "expired")
            .map(|l| {
                let matchers: Vec<String> =
                    l.mute.matchers.iter().map(ToString::to_string).collect();
                Self {
                    id: l.mute.id,
                    matchers: matchers.join(", "),
                    state: l.status.state.to_owned(),
                    starts_at: l.mute.starts_at,
                    ends_at: l.mute.ends_at,
                    created_by: l.mute.created_by,
                    comment: l.mute.comment,
                }
            })
            .collect()
    }
}

/// A rule's firing open now.
#[derive(Debug, Serialize)]
pub struct FiringRow {
    pub engine: String,
    pub rule: String,
    pub name: String,
    /// The event that opened it.
    pub action: String,
    /// When, RFC 3339 to the second.
    pub since: String,
}

/// A container that died on its own, with an error, three times or more in the last ten
/// minutes (a kill before an exit makes it no crash).
#[derive(Debug, Serialize)]
pub struct Crashing {
    pub engine: String,
    pub name: String,
    /// Its crash exits in the last ten minutes (up to the five kept: "5" is five or more).
    pub exits: usize,
    pub last_exit_code: Option<i64>,
    pub state: String,
}

/// One container's series.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Row {
    pub engine: String,
    pub name: String,
    pub image: String,
    /// Its compose project, or Swarm stack.
    pub project: String,
    /// Its compose service, or Swarm service.
    pub service: String,
    pub state: String,
    pub health: String,
    pub restarts: u64,
    pub last_exit_code: Option<i64>,
    pub last_exit_reason: String,
    /// Milliseconds since the epoch, for the script's clock.
    pub finished_ms: Option<i64>,
}

impl Status {
    pub fn now(metrics: &Metrics, mutes: &crate::actions::Mutes, now_nano: i64) -> Self {
        let since = now_nano.saturating_sub(CRASH_WINDOW_NANOS);
        let mut crashing = Vec::new();
        let mut containers: Vec<Row> = metrics
            .containers
            .cells()
            .iter()
            .map(|cell| {
                let mut row = Row::default();
                for (label, value) in cell.label_pairs() {
                    match label {
                        "engine" => row.engine = value,
                        "name" => row.name = value,
                        "image" => row.image = value,
                        "compose_project" | "swarm_stack" if row.project.is_empty() => {
                            row.project = value;
                        }
                        "compose_service" | "swarm_service" if row.service.is_empty() => {
                            row.service = value;
                        }
                        _ => {}
                    }
                }
                let d = cell.lock();
                row.state = d.state.map_or("", |s| s.as_str()).to_owned();
                row.health = d
                    .health
                    .as_ref()
                    .and_then(|h| h.status)
                    .map_or("", |h| h.as_str())
                    .to_owned();
                row.restarts = d.restarts;
                if let Some((code, reason)) = d.life.last_exit {
                    row.last_exit_code = Some(code);
                    row.last_exit_reason = reason.as_str().to_owned();
                }
                row.finished_ms = d.life.finished_nano.map(|n| n / 1_000_000);
                let exits = d.crash_exits.since(since);
                if exits >= CRASH_EXITS {
                    crashing.push(Crashing {
                        engine: row.engine.clone(),
                        name: row.name.clone(),
                        exits,
                        last_exit_code: row.last_exit_code,
                        state: row.state.clone(),
                    });
                }
                row
            })
            .collect();
        containers.sort_by(|a, b| (&a.engine, &a.name).cmp(&(&b.engine, &b.name)));
        crashing.sort_by(|a, b| (&a.engine, &a.name).cmp(&(&b.engine, &b.name)));
        let unhealthy = containers
            .iter()
            .filter(|r| r.health == "unhealthy")
            .cloned()
            .collect();
        let firing = metrics
            .firing_now
            .list()
            .into_iter()
            .map(|f| FiringRow {
                since: crate::rules::template::date(f.since_nano),
                engine: f.engine,
                rule: f.rule,
                name: f.name,
                action: f.action,
            })
            .collect();
        Self {
            several_engines: metrics.several_engines,
            crashing,
            unhealthy,
            firing,
            mutes: MuteRow::all(mutes, now_nano),
            containers,
        }
    }
}

/// Text made safe for HTML, in an element or a quoted attribute: as `|html` escapes it.
pub fn escape(s: &str) -> String {
    crate::rules::template::escaped(s, crate::rules::template::Escape::Html)
}

/// The page, whole. `links`: the footer's (label, href) pairs.
pub fn page(status: &Status, events: &[(Arc<str>, i64, String)], links: &[(&str, &str)]) -> String {
    let mut h = String::with_capacity(4096 + status.containers.len() * 300);
    h.push_str(concat!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        "<title>docker-events-exporter</title>",
        "<link rel=\"stylesheet\" href=\"static/status.css\"></head>\n<body>\n",
        "<header><h1>docker-events-exporter</h1><span id=\"live\" class=\"off\">live log: connecting</span></header>\n<main>\n",
    ));
    let several = status.several_engines;
    let engine_th = if several { "<th>Engine</th>" } else { "" };
    let engine_td = |h: &mut String, engine: &str| {
        if several {
            let _ = write!(h, "<td>{}</td>", escape(engine));
        }
    };

    let _ = write!(
        h,
        "<section id=\"crashing\"><h2>Crashing now <span class=\"count\">{}</span></h2>\
         <p class=\"hint\">died on its own with an error {} times or more in the last 10 minutes</p>\
         <table><thead><tr>{engine_th}<th>Name</th><th>Exits (10 min)</th><th>Last exit code</th><th>State</th></tr></thead><tbody>",
        status.crashing.len(),
        CRASH_EXITS
    );
    for c in &status.crashing {
        h.push_str("<tr class=\"bad\">");
        engine_td(&mut h, &c.engine);
        let _ = write!(
            h,
            "<td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&c.name),
            c.exits,
            c.last_exit_code.map(|c| c.to_string()).unwrap_or_default(),
            escape(&c.state)
        );
    }
    h.push_str("</tbody></table></section>\n");

    let _ = write!(
        h,
        "<section id=\"unhealthy\"><h2>Unhealthy now <span class=\"count\">{}</span></h2>\
         <table><thead><tr>{engine_th}<th>Name</th><th>Image</th><th>State</th></tr></thead><tbody>",
        status.unhealthy.len()
    );
    for r in &status.unhealthy {
        h.push_str("<tr class=\"bad\">");
        engine_td(&mut h, &r.engine);
        let _ = write!(
            h,
            "<td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&r.name),
            escape(&r.image),
            escape(&r.state)
        );
    }
    h.push_str("</tbody></table></section>\n");

    let _ = write!(
        h,
        "<section id=\"firing\"><h2>Firing now <span class=\"count\">{}</span></h2>\
         <p class=\"hint\">the rules' firings waiting for their resolving event or their condition's end</p>\
         <table><thead><tr>{engine_th}<th>Rule</th><th>Name</th><th>Opened by</th><th>Since</th></tr></thead><tbody>",
        status.firing.len()
    );
    for f in &status.firing {
        h.push_str("<tr class=\"bad\">");
        engine_td(&mut h, &f.engine);
        let _ = write!(
            h,
            "<td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&f.rule),
            escape(&f.name),
            escape(&f.action),
            escape(&f.since)
        );
    }
    h.push_str("</tbody></table></section>\n");

    let _ = write!(
        h,
        "<section id=\"mutes\"><h2>Mutes <span class=\"count\">{}</span></h2>\
         <p class=\"hint\">what the rules do not tell while they hold (/api/v1/mutes, the mute command)</p>\
         <table><thead><tr><th>Matchers</th><th>State</th><th>Until</th><th>By</th><th>Comment</th><th>ID</th></tr></thead><tbody>",
        status.mutes.len()
    );
    for m in &status.mutes {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&m.matchers),
            escape(&m.state),
            escape(&m.ends_at),
            escape(&m.created_by),
            escape(&m.comment),
            escape(&m.id)
        );
    }
    h.push_str("</tbody></table></section>\n");

    let _ = write!(
        h,
        "<section id=\"containers\"><h2>Containers <span class=\"count\">{}</span></h2>\
         <div class=\"scroll\"><table><thead><tr>{engine_th}<th>Name</th><th>Image</th><th>Project</th><th>Service</th>\
         <th>State</th><th>Health</th><th>Restarts</th><th>Last exit</th></tr></thead><tbody>",
        status.containers.len()
    );
    for r in &status.containers {
        let _ = write!(h, "<tr class=\"{}\">", state_class(r));
        engine_td(&mut h, &r.engine);
        let _ = write!(
            h,
            "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&r.name),
            escape(&r.image),
            escape(&r.project),
            escape(&r.service),
            escape(&r.state),
            escape(&r.health),
            r.restarts,
            escape(&last_exit(r)),
        );
    }
    h.push_str("</tbody></table></div></section>\n");

    h.push_str(concat!(
        "<section id=\"log\"><h2>Events</h2><form id=\"filter\">",
        "<input name=\"text\" type=\"search\" placeholder=\"name, image, label\" aria-label=\"name, image or label contains\">",
        "<select name=\"type\" aria-label=\"type\"><option value=\"\">every type</option>",
        "<option>container</option><option>image</option><option>network</option>",
        "<option>volume</option><option>service</option><option>node</option><option>daemon</option></select>",
        "<input name=\"action\" type=\"search\" placeholder=\"action\" aria-label=\"action starts with\">",
        "</form>\n<ol id=\"events\">"
    ));
    for (engine, time_nano, line) in events {
        log_item(&mut h, engine, *time_nano, line, several);
    }
    h.push_str("</ol></section>\n</main>\n<footer>");
    for (i, (label, href)) in links.iter().enumerate() {
        if i > 0 {
            h.push_str(" · ");
        }
        let _ = write!(h, "<a href=\"{}\">{}</a>", escape(href), escape(label));
    }
    let _ = write!(
        h,
        " · version {}</footer>\n<script src=\"static/status.js\"></script>\n</body></html>\n",
        env!("CARGO_PKG_VERSION")
    );
    h
}

fn state_class(r: &Row) -> &'static str {
    match (r.state.as_str(), r.health.as_str()) {
        (_, "unhealthy") | ("restarting" | "dead", _) => "bad",
        ("running", _) => "ok",
        _ => "",
    }
}

fn last_exit(r: &Row) -> String {
    match r.last_exit_code {
        Some(code) => format!("{code} ({})", r.last_exit_reason),
        None => String::new(),
    }
}

/// One event of the log, as the script writes it: `<li data-...>` with its time, type,
/// action, actor and attributes.
fn log_item(h: &mut String, engine: &str, time_nano: i64, line: &str, several: bool) {
    let Ok(ev) = crate::docker::event::Event::decode(line.as_bytes()) else {
        return;
    };
    let name = ev.attr("name").unwrap_or(ev.actor_id());
    let attributes: String = ev
        .attributes()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ");
    let when = crate::docker::format_rfc3339_nano(time_nano).unwrap_or_default();
    let _ = write!(
        h,
        "<li data-type=\"{}\" data-action=\"{}\" data-text=\"{}\"><time datetime=\"{}\">{}</time> ",
        escape(ev.type_name()),
        escape(ev.action()),
        escape(&format!("{name} {attributes}")),
        escape(&when),
        escape(when.get(11..19).unwrap_or(&when)),
    );
    if several {
        let _ = write!(h, "<span class=\"engine\">{}</span> ", escape(engine));
    }
    let _ = writeln!(
        h,
        "<span class=\"type\">{}</span> <b>{}</b> <span class=\"name\">{}</span> <span class=\"attrs\">{}</span></li>",
        escape(ev.type_name()),
        escape(ev.action()),
        escape(name),
        escape(&attributes),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crashing_now_is_three_exits_on_its_own_with_an_error_in_ten_minutes() {
        let m = std::sync::Arc::new(Metrics::new(&[]).expect("metrics"));
        let tracker = crate::metrics::Tracker::new(m.clone(), std::time::Duration::from_secs(60));
        let mut p = crate::pipeline::Pipeline::new(tracker, None);
        let s = 1_000_000_000;
        let mut t = 1_700_000_000 * s;
        let mut event = |action: &str, name: &str, extra: &str| {
            t += s;
            let line = format!(
                r#"{{"Type":"container","Action":"{action}","Actor":{{"ID":"id-{name}","Attributes":{{"name":"{name}","image":"i"{extra}}}}},"time":{},"timeNano":{t}}}"#,
                t / s
            );
            p.line(line.as_bytes());
        };
        for _ in 0..3 {
            event("start", "loop", "");
            event("die", "loop", r#","exitCode":"4""#);
            // Stopped by a person three times: no crash.
            event("start", "stopped", "");
            event("kill", "stopped", r#","signal":"15""#);
            event("die", "stopped", r#","exitCode":"143""#);
            // Done three times: no crash either.
            event("start", "done", "");
            event("die", "done", r#","exitCode":"0""#);
        }
        event("start", "loop", "");
        let now = 1_700_000_000 * s + 30 * s;
        let status = Status::now(&m, &crate::actions::Mutes::default(), now);
        let names: Vec<(&str, usize, Option<i64>, &str)> = status
            .crashing
            .iter()
            .map(|c| (c.name.as_str(), c.exits, c.last_exit_code, c.state.as_str()))
            .collect();
        assert_eq!(names, [("loop", 3, Some(4), "running")]);
        assert!(
            Status::now(
                &m,
                &crate::actions::Mutes::default(),
                now + CRASH_WINDOW_NANOS
            )
            .crashing
            .is_empty(),
            "ten minutes on"
        );
    }

    #[test]
    fn every_field_is_escaped() {
        assert_eq!(
            escape(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        let status = Status {
            several_engines: true,
            crashing: vec![Crashing {
                engine: "<e>".into(),
                name: "<b>loop</b>".into(),
                exits: 3,
                last_exit_code: Some(4),
                state: "restarting".into(),
            }],
            unhealthy: vec![],
            firing: vec![FiringRow {
                engine: "e".into(),
                rule: "<u>sick</u>".into(),
                name: "web".into(),
                action: "health_status: unhealthy".into(),
                since: "2023-11-14T22:13:20Z".into(),
            }],
            mutes: vec![MuteRow {
                id: "m1".into(),
                matchers: "name=\"<web>\"".into(),
                state: "active".into(),
                starts_at: "2023-11-14T22:13:20Z".into(),
                ends_at: "2023-11-14T23:13:20Z".into(),
                created_by: "<ops>".into(),
                comment: "<script>deploy</script>".into(),
            }],
            containers: vec![Row {
                name: "<img src=x onerror=alert(1)>".into(),
                image: "i\"mg".into(),
                ..Row::default()
            }],
        };
        let line = r#"{"Type":"container","Action":"start","Actor":{"ID":"c","Attributes":{"name":"</li><script>x</script>","team":"<i>"}},"time":1,"timeNano":1000000000}"#;
        let page = page(
            &status,
            &[("<e>".into(), 1_000_000_000, line.to_owned())],
            &[("Metrics", "/metrics\"x")],
        );
        assert!(!page.contains("<script>x"), "{page}");
        assert!(!page.contains("<img"), "{page}");
        assert!(!page.contains("<b>loop"), "{page}");
        assert!(
            page.contains("<td>name=&quot;&lt;web&gt;&quot;</td><td>active</td><td>2023-11-14T23:13:20Z</td><td>&lt;ops&gt;</td><td>&lt;script&gt;deploy&lt;/script&gt;</td><td>m1</td>"),
            "{page}"
        );
        assert!(
            page.contains("<td>&lt;u&gt;sick&lt;/u&gt;</td><td>web</td><td>health_status: unhealthy</td><td>2023-11-14T22:13:20Z</td>"),
            "{page}"
        );
        assert!(
            page.contains("<td>&lt;img src=x onerror=alert(1)&gt;</td><td>i&quot;mg</td>"),
            "{page}"
        );
        assert!(page.contains("<span class=\"name\">&lt;/li&gt;&lt;script&gt;x&lt;/script&gt;</span> <span class=\"attrs\">name=&lt;/li&gt;&lt;script&gt;x&lt;/script&gt;, team=&lt;i&gt;</span>"), "{page}");
        assert!(
            page.contains("<a href=\"/metrics&quot;x\">Metrics</a>"),
            "{page}"
        );
        assert_eq!(
            page.matches("<script").count(),
            1,
            "only the page's own script"
        );
    }
}
