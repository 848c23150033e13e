//! Actions: everything that runs what the rules match. The reader's side ([`Reactor`]: match,
//! throttle, enqueue, never waiting), the bounded queue, the dispatcher (batching) and the
//! worker pool ([`dispatch`]), the executor (dry runs, timing, outcomes), the rules layer's
//! series, the loaded rule set and its swap on reload, and one file per action kind.
//!
//! When the queue is full a firing is dropped and counted, and the stream and its metrics go
//! on. The dispatcher takes firings off the queue, gathers batches, and runs each action on a
//! pool of at most `workers` at once; while the pool is busy the queue fills, and that is where
//! drops happen.
//!
//! # Adding an action kind
//! One file here: its config struct (compiled by [`rules`](crate::rules) through the file's
//! `Kind`, an [`ActionKind`]), its templates and resolve step ([`ActionConfig`]), and
//! [`Action`]: its `action` label, its dry run, how it runs. Then its name in the `kinds!` line
//! below. A kind that keeps something while its rules are loaded (as `metric` keeps its
//! counter) also gives it a field in [`Live`].

mod conditions;
mod delivery;
mod dispatch;
mod executor;
pub mod mutes;
mod reactor;
mod series;
mod set;

use std::fmt;
use std::sync::Arc;

use futures_util::future::BoxFuture;

pub use self::dispatch::dispatch;
pub use self::executor::Executor;
pub use self::mutes::Mutes;
pub use self::reactor::Reactor;
pub use self::series::{ActionSeries, Outcome, RuleMetrics, RuleSeries};
pub use self::set::{Loaded, RuleSet, Rules};
use crate::docker::Engine;
use crate::docker::event::Event;
use crate::rules::template::{Context, Facts};
use crate::rules::{ActionConfig, ActionKind, ConfigErrors, Rule};

/// Default firings waiting for the dispatcher.
pub const DEFAULT_QUEUE: usize = 1024;
/// Default actions running at once.
pub const DEFAULT_WORKERS: usize = 4;
/// Cap of one rendered argument, header, URL, subject or label value.
pub const MAX_FIELD_BYTES: usize = 64 * 1024;
/// Cap of a rendered body (webhook, e-mail, log line).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// One action kind's compiled action: what the rules layer needs of it ([`ActionConfig`]),
/// and what running it takes.
pub trait Action: ActionConfig + fmt::Debug + Send + Sync {
    /// The `action` label value.
    fn kind(&self) -> &'static str;
    /// What it keeps while its rules are loaded (made at load and at each reload).
    fn live(&self) -> prometheus::Result<Live> {
        Ok(Live::default())
    }
    /// How often a firing of its rule that waits for its resolving event is to be run again
    /// (an Alertmanager alert, whose `endsAt` runs out unless renewed); `None`: once.
    fn resend_interval(&self) -> Option<std::time::Duration> {
        None
    }
    /// Renders what it would do, and logs that when `log`; does nothing.
    fn dry_run(&self, ctx: &Context<'_>, log: bool);
    /// Does it.
    fn run<'a>(&'a self, ctx: &'a Context<'a>, rt: Runtime<'a>) -> BoxFuture<'a, ActionResult>;
}

/// A compiled action of any kind.
pub type BoxedAction = Box<dyn Action>;

/// Declares each kind's module and lists its `Kind` in [`KINDS`]: one name, one place.
macro_rules! kinds {
    ($($kind:ident),+) => {
        $(mod $kind;)+
        /// Every action kind, in the order a rule's actions run and the config's hints list
        /// them.
        pub const KINDS: &[&dyn ActionKind<BoxedAction>] = &[$(&$kind::Kind),+];
    };
}

kinds!(run, webhook, notify, alertmanager, log, email, metric);

/// Reads and checks a rules file with every action kind: what `check-config`, start-up and
/// reloads run.
pub fn load(path: &std::path::Path) -> Result<Rules, ConfigErrors> {
    crate::rules::load(path, KINDS)
}

/// What an action keeps while its rules are loaded, beside its plain config.
#[derive(Debug, Default)]
pub struct Live {
    /// A `metric` action's counter.
    pub counter: Option<metric::Counter>,
}

/// What an action may use while it runs.
#[derive(Clone, Copy)]
pub struct Runtime<'a> {
    pub http: &'a reqwest::Client,
    pub logs: &'a log::Writers,
    pub live: &'a Live,
    /// Environment variables that hold the config's secrets: kept out of commands.
    pub secret_vars: &'a [String],
}

/// An action's result: `Err((Failure | Timeout | Dropped, why))`.
pub type ActionResult = Result<(), (Outcome, String)>;

/// Whether actions act.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dry {
    /// Act.
    Off,
    /// Render, and log what would be done (`--dry-run`).
    Log,
    /// Render only (replay: measure the work without the logging).
    Silent,
}

/// Where events come from: one engine.
pub struct Origin {
    /// The engine's name: `%%engine%%`, and what `engine:` matches.
    pub engine: Arc<str>,
    /// The engine's host name, as its `/info` says: `%%host%%`.
    pub host: Arc<str>,
    /// Asked for `%%ip%%`; none in a replay.
    pub api: Option<Engine>,
}

impl Origin {
    /// Events of no engine that can be asked (a replay, a benchmark): named `name`.
    pub fn offline(name: &str) -> Arc<Self> {
        Arc::new(Self {
            engine: name.into(),
            host: name.into(),
            api: None,
        })
    }
}

/// One firing of a rule: one event, or a batch's digest, of one engine.
pub struct Fire {
    /// The rule set the rule belongs to (a reload may have replaced it since).
    pub set: Arc<RuleSet>,
    /// The rule's place in the set.
    pub index: usize,
    pub events: Vec<Arc<Event>>,
    pub origin: Arc<Origin>,
    /// When this firing resolves one (its rule's `resolve` matched): the event that opened it.
    pub opened_by: Option<Arc<Event>>,
    /// A firing still open, handed on again; no batch holds it.
    pub again: Option<Again>,
    /// A condition's firing (or recovery): what it found.
    pub condition: Option<Arc<Facts>>,
}

/// Why a firing still open is handed on again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Again {
    /// For the actions with a [`Action::resend_interval`] only: an Alertmanager alert renewed.
    Resend,
    /// The rule's `repeat`: every action, as a reminder that it still holds.
    Repeat,
}

impl Fire {
    pub fn rule(&self) -> &Rule<BoxedAction> {
        &self.set.rules.rules[self.index]
    }

    /// Whether `action`, one of its rule's, runs for this firing: a resend runs only those
    /// that re-send.
    pub fn runs(&self, action: &BoxedAction) -> bool {
        self.again != Some(Again::Resend) || action.resend_interval().is_some()
    }
}

#[cfg(test)]
mod tests {
    //! The rules compiler with every action kind: what `check-config`, start-up and reloads
    //! run.

    use super::*;
    use crate::rules::config::parse;
    use crate::rules::template::Template;

    fn compile(file: &str, yaml: &str) -> Result<Vec<Rule<BoxedAction>>, ConfigErrors> {
        parse(file, yaml, KINDS).map(|r| r.rules)
    }

    fn errors(yaml: &str) -> Vec<String> {
        match compile("rules.yml", yaml) {
            Ok(_) => panic!("accepted"),
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }

    /// One rules file for several engines: `engine:` picks them by name, `%%engine%%` says
    /// which one an event came from.
    #[test]
    fn rules_match_and_render_the_engine() {
        let yaml = r#"
events_reactor:
  web hosts:
    event: {type: container, engine: ["web-*", "!web-test"]}
    log: {path: /dev/null}
"#;
        let rules = Rules {
            rules: compile("rules.yml", yaml).expect("compiles"),
            secret_vars: Vec::new(),
        };
        let ev = Event::new("container", "start", "id", [("name", "app")], "local", 1);
        let on = |engine: &str| rules.matching(&ev, engine).count();
        assert_eq!(
            (on("web-1"), on("web-test"), on("db-1")),
            (1, 0, 0),
            "web-1, web-test, db-1"
        );
        let events = [Arc::new(ev.clone())];
        let ctx = Context {
            events: &events,
            rule: "web hosts",
            host: "host-a",
            engine: "web-1",
            opened_by: None,
            looked_up: Default::default(),
            condition: None,
        };
        let format = Template::parse("%%engine%% %%host%% %%actor.name%%").expect("parses");
        assert_eq!(format.render(&ctx, 1 << 10), "web-1 host-a app");
    }

    #[test]
    fn the_issue_example_compiles_verbatim() {
        let yaml = r#"
events_reactor:
  Fire notification on container lifecycle event:
    event:
      type: container
    run: ["notification-push", "--project", "Nasqueron", "--service", "Docker",
          "--type", "container.%%action%%", "--group", "ops",
          "--text", "Docker container %%actor.name%%: %%action%%", "--link", "%%host%%"]
  Propagate all events to Salt:
    run: ["sudo", "salt-call", "event.send", "docker", "%%payload%%"]
  Update Sentry Relay configuration:
    event:
      type: container
      action: start
      actor:
        name: sentry_web
    run: ["docker-paas-propagate-sentry-relay", "%%ip%%"]
"#;
        let rules = compile("rules.yml", yaml).expect("compiles");
        assert_eq!(rules.len(), 3);
        assert_eq!(
            rules[0].name,
            "Fire notification on container lifecycle event"
        );
        assert!(!rules[1].uses_ip);
        assert!(rules[2].uses_ip);
        let run = &rules[0].actions[0];
        assert_eq!(run.kind(), "run");
        assert_eq!(run.templates().len(), 13, "the argv");
        assert_eq!(run::DEFAULT_TIMEOUT, std::time::Duration::from_secs(30));
        assert!(
            format!("{run:?}").contains("timeout: 30s"),
            "the default timeout: {run:?}"
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_place() {
        let yaml = "\
events_reactor:
  one:
    event:
      typ: container
      actor:
        name: /(unclosed/
    run: [\"notify\", \"%%actor%%\"]
    timout: 5s
  two:
    run: []
  three:
    event: {type: container}
";
        assert_eq!(
            errors(yaml),
            [
                "rules.yml:8:5: unknown key \"timout\" in rule \"one\"; expected one of: event, run, timeout, env, cwd, webhook, notify, alertmanager, log, email, metric, condition, throttle, batch, resolve, repeat, logs, mute_time_intervals",
                "rules.yml:4:7: unknown key \"typ\" in event of rule \"one\"; expected one of: type, action, scope, engine, actor",
                "rules.yml:6:15: event.actor.name of rule \"one\": invalid regex /(unclosed/: error: unclosed group",
                "rules.yml:7:21: unknown placeholder %%actor%%; known: type, action, scope, time, timeNano, date, actor.id, actor.<attribute>, payload, host, engine, ip, logs, health_output, rule, count, status, condition, since, exits, last_exit_code, reason",
                "rules.yml:10:10: run of rule \"two\" is empty; give the program and its arguments, e.g. run: [\"notify\", \"%%actor.name%%\"]",
                "rules.yml:11:3: rule \"three\" has no action; give it run, webhook, notify, alertmanager, log, email or metric",
            ]
        );
    }

    #[test]
    fn the_program_cannot_come_from_the_event() {
        assert_eq!(
            errors("events_reactor:\n  r:\n    run: [\"%%actor.name%%\", \"x\"]\n"),
            [
                "rules.yml:3:11: the program of run of rule \"r\" must be a fixed name or path, without placeholders; pass event fields as arguments"
            ]
        );
    }

    /// `%%logs%%` reads 20 lines unless the rule's `logs` says; `logs` without an action that
    /// uses it, or out of its range, is a problem with its place.
    #[test]
    fn logs_is_a_count_of_lines_for_the_rules_that_use_them() {
        let ok = "events_reactor:\n  a:\n    run: [echo, \"%%logs%%\"]\n  b:\n    notify: {url: \"ntfy://h/t\", message: \"%%logs|markdown%%\"}\n    logs: 1000\n  c:\n    run: [echo]\n";
        let rules = compile("rules.yml", ok).expect("compiles");
        let logs: Vec<Option<usize>> = rules.iter().map(|r| r.logs).collect();
        assert_eq!(logs, [Some(20), Some(1000), None]);
        let bad = "events_reactor:\n  a:\n    run: [echo, \"%%actor.name%%\"]\n    logs: 5\n  b:\n    run: [echo, \"%%logs%%\"]\n    logs: 0\n  c:\n    run: [echo, \"%%logs%%\"]\n    logs: many\n";
        assert_eq!(
            errors(bad),
            [
                "rules.yml:4:11: rule \"a\" has logs, and none of its actions uses %%logs%%",
                "rules.yml:7:11: logs of rule \"b\" must be a whole number of lines from 1 to 1000; got \"0\"",
                "rules.yml:10:11: logs of rule \"c\" must be a whole number of lines from 1 to 1000; got \"many\"",
            ]
        );
    }

    /// A condition is a name or a name with its settings; every problem of one is named with
    /// its place: an unknown condition or setting, a bad value, and what a condition's rule
    /// may not have.
    #[test]
    fn condition_problems_are_named_with_their_place() {
        let ok = "events_reactor:\n  a:\n    condition: crash_loop\n    log: /dev/null\n  b:\n    condition: {unhealthy: {for: 5m}}\n    event: {actor: {name: web}}\n    repeat: 4h\n    log: /dev/null\n  c:\n    condition:\n      events_missed:\n    log: /dev/null\n";
        let rules = compile("rules.yml", ok).expect("compiles");
        let conditions: Vec<String> = rules
            .iter()
            .map(|r| format!("{:?}", r.condition.expect("a condition")))
            .collect();
        assert_eq!(
            conditions,
            [
                "CrashLoop { exits: 3, within: 600s }",
                "Unhealthy { for_: 300s }",
                "EventsMissed"
            ]
        );
        let bad = "events_reactor:\n  a:\n    condition: flapping\n    log: /dev/null\n  b:\n    condition: {crash_loop: {exits: 0, within: soon, for: 1m}}\n    log: /dev/null\n  c:\n    condition: {down: {for: 5m}}\n    event: {action: die}\n    resolve: {action: start}\n    log: /dev/null\n  d:\n    condition: [down]\n    log: /dev/null\n  e:\n    condition: events_missed\n    repeat: 1h\n    log: /dev/null\n";
        assert_eq!(
            errors(bad),
            [
                "rules.yml:3:16: unknown condition \"flapping\" in rule \"a\"; expected one of: crash_loop, restart_loop, unhealthy, down, engine_down, events_missed",
                "rules.yml:6:54: unknown key \"for\" in condition.crash_loop of rule \"b\"; expected one of: exits, within",
                "rules.yml:6:37: condition.crash_loop.exits of rule \"b\" must be a whole number from 1 to 100; got \"0\"",
                "rules.yml:6:48: condition.crash_loop.within of rule \"b\" is not a duration (expected number at 0); use one like 30s, 5m or 1h",
                "rules.yml:10:13: rule \"c\" has a condition: its event selects what it watches (type, scope, engine, actor), and the condition says when it fires; remove action",
                "rules.yml:11:5: rule \"c\" has a condition and resolve: a condition resolves by itself when it stops holding",
                "rules.yml:14:16: condition of rule \"d\" must be a condition's name or a mapping of one name to its settings, e.g. crash_loop: {exits: 3, within: 10m}",
                "rules.yml:18:13: rule \"e\" has repeat and no resolve: only a firing waiting for its resolving event (or a condition's end) is sent again",
            ]
        );
    }

    /// `mute_time_intervals` are Alertmanager's `time_intervals`: times (end excluded),
    /// weekday ranges, days of month from the end, months, years, in a location; a rule is
    /// quiet while any interval it names holds.
    #[test]
    fn quiet_hours_are_alertmanagers_time_intervals() {
        let yaml = "mute_time_intervals:\n  - name: nights\n    time_intervals:\n      - times: [{start_time: \"22:00\", end_time: \"24:00\"}, {start_time: \"00:00\", end_time: \"06:00\"}]\n        weekdays: [\"monday:friday\"]\n        location: Europe/Paris\n  - name: year-end\n    time_intervals:\n      - days_of_month: [\"-1\"]\n        months: [december]\n        years: [\"2026:2027\"]\nevents_reactor:\n  a:\n    condition: crash_loop\n    mute_time_intervals: [nights, year-end]\n    log: /dev/null\n";
        let rules = compile("rules.yml", yaml).expect("compiles");
        let at = |rfc3339: &str| {
            let t = time::OffsetDateTime::parse(
                rfc3339,
                &time::format_description::well_known::Rfc3339,
            )
            .expect("a time");
            rules[0].quiet_at(i64::try_from(t.unix_timestamp_nanos()).expect("fits"))
        };
        // Paris is UTC+1 in December.
        assert!(at("2026-12-07T22:30:00Z"), "Monday 23:30 in Paris");
        assert!(!at("2026-12-07T20:30:00Z"), "Monday 21:30");
        assert!(at("2026-12-08T04:59:00Z"), "Tuesday 05:59");
        assert!(
            !at("2026-12-08T05:00:00Z"),
            "Tuesday 06:00: the end is not in it"
        );
        assert!(!at("2026-12-12T22:30:00Z"), "Saturday 23:30");
        assert!(at("2026-12-31T12:00:00Z"), "the last day of December");
        assert!(!at("2026-12-30T12:00:00Z"));
        assert!(!at("2028-12-31T12:00:00Z"), "past the years");
    }

    #[test]
    fn quiet_hours_problems_are_named_with_their_place() {
        let bad = "mute_time_intervals:\n  - name: a\n    time_intervals:\n      - times: [{start_time: \"22:00\", end_time: \"06:00\"}]\n        weekdays: [\"friday:monday\", funday]\n        location: Mars/Olympus\n      - days_of_month: [\"0\"]\n        times: [{start_time: \"7:00\", end_time: \"25:00\"}]\nevents_reactor:\n  r:\n    event: {action: die}\n    mute_time_intervals: [b]\n    log: /dev/null\n";
        assert_eq!(
            errors(bad),
            [
                "rules.yml:4:17: times of mute_time_intervals \"a\": start_time must be before end_time (a range past midnight is two ranges, as in Alertmanager)",
                "rules.yml:5:20: weekdays of mute_time_intervals \"a\": \"friday:monday\" is not a weekday (monday) or a range of them, start before end",
                "rules.yml:5:37: weekdays of mute_time_intervals \"a\": \"funday\" is not a weekday (monday) or a range of them, start before end",
                "rules.yml:6:19: location of mute_time_intervals \"a\": unknown time zone \"Mars/Olympus\"; use an IANA name like Europe/Paris, UTC or Local",
                "rules.yml:8:30: start_time of times of mute_time_intervals \"a\": \"7:00\" is not a time of day like 07:30 (00:00 to 24:00)",
                "rules.yml:8:48: end_time of times of mute_time_intervals \"a\": \"25:00\" is not a time of day like 07:30 (00:00 to 24:00)",
                "rules.yml:7:25: days_of_month of mute_time_intervals \"a\": \"0\" is not a day of the month (1 to 31, or -1 for the last) or a range of them, start before end",
                "rules.yml:12:27: mute_time_intervals of rule \"r\": no interval named \"b\" in the file's mute_time_intervals (there are: a)",
            ]
        );
    }

    #[test]
    fn repeat_needs_resolve_and_a_second() {
        let bad = "events_reactor:\n  a:\n    event: {action: die}\n    repeat: 4h\n    log: /dev/null\n  b:\n    event: {action: die}\n    resolve: {action: start}\n    repeat: 500ms\n    log: /dev/null\n  c:\n    event: {action: die}\n    resolve: {action: start}\n    batch: 1m\n    repeat: 0s\n    log: /dev/null\n";
        assert_eq!(
            errors(bad),
            [
                "rules.yml:4:13: rule \"a\" has repeat and no resolve: only a firing waiting for its resolving event (or a condition's end) is sent again",
                "rules.yml:9:13: repeat of rule \"b\" must be at least 1s; got 500ms",
                // Every problem of a rule, not only the first.
                "rules.yml:14:5: rule \"c\" has resolve and batch; a resolved firing is of one container, so use throttle instead of batch",
                "rules.yml:15:13: repeat of rule \"c\" must be between 1ns and 7 days; got \"0s\"",
            ]
        );
    }

    #[test]
    fn notify_and_alertmanager_problems_name_their_place_and_never_the_secret() {
        let yaml = "\
events_reactor:
  a:
    notify: {url: \"tgram://s3cret/1\", colour: red}
  b:
    notify:
      - {url: \"discord://1/s3cret\", url_file: /x}
      - {title: t}
  c:
    alertmanager: {url: \"ftp://am\", labels: {9x: y}}
    batch: 1m
    resolve: {action: start}
  d:
    notify: {url_from_env: DEE_UNIT_TEST_UNSET_VAR}
  e:
    notify: {url: \"ntfy://h/t\", title: [a, b], base_url: ftp://x}
  f:
    alertmanager: {url: \"http://am\", resend_interval: 500ms}
    resolve: {action: start}
";
        assert_eq!(
            errors(yaml),
            [
                "rules.yml:3:39: unknown key \"colour\" in notify of rule \"a\"; expected one of: url, url_from_env, url_file, title, message, recovered_title, recovered_message, base_url, timeout, retries",
                "rules.yml:3:19: url of notify of rule \"a\": its bot token has no \":\" (BotFather's tokens look like 123456:ABC-DEF...); the form is tgram://BOT_TOKEN/CHAT_ID[/CHAT_ID...]",
                "rules.yml:6:47: target 1 of notify of rule \"b\" has url_file and another of url, url_from_env and url_file; give one",
                "rules.yml:7:9: target 2 of notify of rule \"b\" needs url, url_from_env (an environment variable that holds it) or url_file (a file that holds it)",
                "rules.yml:9:25: url of alertmanager of rule \"c\": it must be an http:// or https:// URL of Alertmanager, e.g. http://127.0.0.1:9093",
                "rules.yml:9:46: \"9x\" in labels of alertmanager of rule \"c\" is not a label name; use letters, digits and _, not starting with a digit or __",
                "rules.yml:10:5: rule \"c\" has resolve and batch; a resolved firing is of one container, so use throttle instead of batch",
                "rules.yml:15:40: title of notify of rule \"e\" must be a single value",
                "rules.yml:15:58: base_url of notify of rule \"e\" must be an http:// or https:// URL; got \"ftp://x\"",
                "rules.yml:17:55: resend_interval of alertmanager of rule \"f\" must be at least 1s; got 500ms",
                "rules.yml:13:28: environment variable DEE_UNIT_TEST_UNSET_VAR (notify URL) is not set",
            ]
        );
    }

    #[test]
    fn yaml_syntax_errors_have_a_place() {
        let e = errors("events_reactor:\n  r: [unclosed\n");
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("rules.yml:3:1: invalid YAML: "), "{e:?}");
    }

    #[test]
    fn duplicate_rule_names_are_refused() {
        let e = errors("events_reactor:\n  r:\n    log: \"-\"\n  r:\n    log: \"-\"\n");
        assert_eq!(
            e,
            ["rules.yml:4:3: duplicate key \"r\"; each rule name and key may appear once"]
        );
    }
}
