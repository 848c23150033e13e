//! The rules layer: raw YAML -> compiled rules (matchers, templates) -> matched actions.
//!
//! [`load`] reads and checks a config file and reports every problem at once, each with its
//! file:line:column; `check-config`, start-up and SIGHUP reloads all call it.

pub mod config;
pub mod matcher;
pub mod template;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use prometheus::IntCounterVec;

use self::matcher::EventMatcher;
use self::template::Template;
use crate::docker::event::Event;

/// Default time a `run` command may take before its process group is killed.
pub const DEFAULT_RUN_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time one webhook attempt may take.
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// Default webhook retries after the first attempt (5xx and network errors only).
pub const DEFAULT_WEBHOOK_RETRIES: u32 = 3;
/// Default time one e-mail may take to send.
pub const DEFAULT_EMAIL_TIMEOUT: Duration = Duration::from_secs(30);
/// Default label sets a `metric` action may create.
pub const DEFAULT_METRIC_MAX_SERIES: usize = 100;

/// One problem in a config file, with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            return write!(f, "{}: {}", self.file, self.message);
        }
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// Every problem found in one file.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_problems(f, "the rules config", &self.0)
    }
}

/// `N problem(s) in WHAT:` and then each problem on its own line: how every config file's
/// problems are shown.
pub fn write_problems(
    f: &mut fmt::Formatter<'_>,
    what: &str,
    errors: &[ConfigError],
) -> fmt::Result {
    let n = errors.len();
    writeln!(f, "{n} problem{} in {what}:", if n == 1 { "" } else { "s" })?;
    for e in errors {
        writeln!(f, "{e}")?;
    }
    Ok(())
}

impl std::error::Error for ConfigErrors {}

/// A compiled set of rules.
#[derive(Debug, Default)]
pub struct Rules {
    pub rules: Vec<Arc<Rule>>,
    pub source: PathBuf,
}

impl Rules {
    /// The user-named counters of `metric` actions, for (un)registering on load and reload.
    pub fn metric_collectors(&self) -> impl Iterator<Item = &IntCounterVec> {
        self.rules.iter().flat_map(|r| {
            r.actions.iter().filter_map(|a| match a {
                Action::Metric(m) => Some(&m.counter),
                _ => None,
            })
        })
    }
}

#[derive(Debug)]
pub struct Rule {
    pub name: String,
    pub matcher: EventMatcher,
    pub actions: Vec<Action>,
    pub throttle: Option<Throttle>,
    /// The first event fires at once; those that follow within this window go out together.
    pub batch: Option<Duration>,
    /// Some action uses `%%ip%%`: look the container's address up before rendering.
    pub uses_ip: bool,
    /// The rule's own series of the rules layer's metrics, looked up on its first firing.
    pub series: std::sync::OnceLock<crate::actions::RuleSeries>,
}

impl Rule {
    pub fn is_match(&self, ev: &Event) -> bool {
        self.matcher.is_match(ev)
    }
}

#[derive(Debug)]
pub struct Throttle {
    pub key: Template,
    pub interval: Duration,
}

#[derive(Debug)]
pub enum Action {
    Run(RunAction),
    Webhook(WebhookAction),
    Log(LogAction),
    Email(EmailAction),
    Metric(MetricAction),
}

impl Action {
    /// The `action` label value.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Run(_) => "run",
            Self::Webhook(_) => "webhook",
            Self::Log(_) => "log",
            Self::Email(_) => "email",
            Self::Metric(_) => "metric",
        }
    }
}

#[derive(Debug)]
pub struct RunAction {
    /// `argv[0]` is a plain program name or path: no placeholders.
    pub argv: Vec<Template>,
    pub timeout: Duration,
    pub env: Vec<(String, Template)>,
    pub cwd: Option<PathBuf>,
    /// Environment variables that hold this config's secrets (SMTP passwords, webhook
    /// headers): removed from the command's environment.
    pub scrub_env: Vec<String>,
}

#[derive(Debug)]
pub struct WebhookAction {
    pub url: Template,
    pub method: http::Method,
    pub headers: Vec<(http::HeaderName, Template)>,
    /// Header values read from the environment at load: never logged, never rendered.
    pub secret_headers: Vec<(http::HeaderName, Secret)>,
    /// None: the event (or a batch's events) as JSON.
    pub body: Option<Template>,
    pub timeout: Duration,
    pub retries: u32,
}

#[derive(Debug)]
pub struct LogAction {
    /// None: standard output.
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    None,
    StartTls,
    Tls,
}

#[derive(Debug)]
pub struct EmailAction {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub from: String,
    pub to: Vec<String>,
    pub subject: Template,
    /// None: a digest listing each event.
    pub body: Option<Template>,
    pub timeout: Duration,
}

#[derive(Debug)]
pub struct MetricAction {
    pub name: String,
    pub labels: Vec<(String, Template)>,
    pub max_series: usize,
    pub counter: IntCounterVec,
    /// The label sets created so far, to hold `max_series`.
    pub seen: std::sync::Mutex<std::collections::HashSet<Vec<String>>>,
}

/// A value that must never reach a log line or a metric.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Self {
        Self(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

/// Reads and compiles a rules file; every problem at once.
pub fn load(path: &Path) -> Result<Rules, ConfigErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: file.clone(),
            line: 0,
            column: 0,
            message: format!("cannot read the file: {e}"),
        }])
    })?;
    let rules = config::compile(&file, &text)?;
    Ok(Rules {
        rules,
        source: path.to_owned(),
    })
}
