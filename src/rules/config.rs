//! The config file, checked: a walk over the YAML tree (with positions) that compiles rules and
//! collects every problem with its file:line:column and a hint, instead of stopping at the first.
//!
//! ```yaml
//! events_reactor:
//!   <rule name>:
//!     event: {type: ..., action: ..., scope: ..., engine: ..., actor: {id: ..., <attribute>: ...}}
//!     run: [program, arg, ...]          # and/or webhook, notify, alertmanager, log, email, metric
//!     timeout: 30s                      # run options: timeout, env, cwd
//!     throttle: {key: "%%actor.name%%", interval: 5m}
//!     batch: 10m
//!     resolve: {action: ...}            # the event that ends a firing, of the same actor
//! ```

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use marked_yaml::loader::{LoadError, LoaderOptions, parse_yaml_with_options};
use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode};
use marked_yaml::{Node, Span};

use super::condition::{CONDITIONS, Condition};
use super::matcher::{EventMatcher, ValueMatcher};
use super::quiet::QuietTimes;
use super::template::{Key, Template};
use super::{ActionConfig, ActionKind, ConfigErrors, Rule, Rules, Throttle};
use crate::config_error::ConfigError;
use crate::secret::Secret;

const TOP_KEYS: &[&str] = &["events_reactor", "mute_time_intervals"];
/// The rule keys of the rules layer itself; the action kinds add theirs between `event` and
/// these.
const RULE_KEYS: &[&str] = &[
    "condition",
    "throttle",
    "batch",
    "resolve",
    "repeat",
    "logs",
    "mute_time_intervals",
];
/// The shortest `repeat`: the exporter looks for firings due once a second.
const MIN_REPEAT: Duration = Duration::from_secs(1);
/// `logs`'s default, and its largest.
const DEFAULT_LOG_LINES: usize = 20;
const MAX_LOG_LINES: usize = 1000;
const EVENT_KEYS: &[&str] = &["type", "action", "scope", "engine", "actor"];
const THROTTLE_KEYS: &[&str] = &["key", "interval"];
/// The longest duration a config may give (a typo like `30000h` is a mistake, not a wish).
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Whether the firings of the rule `rule` stay open until they end, read from its YAML for the
/// action kinds that compile beside it: it has `resolve`, or a condition that ends.
pub fn opens(rule: &MarkedMappingNode) -> bool {
    let condition = match rule.get_node("condition") {
        Some(Node::Scalar(s)) => Condition::named(s.as_str()),
        Some(Node::Mapping(m)) => m.keys().next().and_then(|k| Condition::named(k.as_str())),
        _ => None,
    };
    rule.get_node("resolve").is_some() || condition.is_some_and(|c| c.resolves())
}

/// Walks a config file's YAML and collects its problems; the action kinds compile their parts
/// with its helpers.
pub struct Checker<'a> {
    file: &'a str,
    errors: Vec<ConfigError>,
    /// Names that must be unique across the file, by what they name (metric names).
    claimed: HashSet<(&'static str, String)>,
}

/// Compiles and resolves the text of a rules file named `file`: every problem at once.
pub fn parse<A: ActionConfig>(
    file: &str,
    text: &str,
    kinds: &[&dyn ActionKind<A>],
) -> Result<Rules<A>, ConfigErrors> {
    let (mut rules, mut errors) = compile(file, text, kinds);
    let mut r = Resolver {
        file,
        errors: Vec::new(),
        secret_vars: Vec::new(),
    };
    for rule in &mut rules {
        for action in &mut rule.actions {
            action.resolve(&mut r);
        }
    }
    errors.extend(r.errors);
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    Ok(Rules {
        rules,
        secret_vars: r.secret_vars,
    })
}

/// Compiles the text of a rules file named `file`: the rules that compiled and every problem.
/// Pure: no environment, no files.
pub fn compile<A: ActionConfig>(
    file: &str,
    text: &str,
    kinds: &[&dyn ActionKind<A>],
) -> (Vec<Rule<A>>, Vec<ConfigError>) {
    let mut c = Checker {
        file,
        errors: Vec::new(),
        claimed: HashSet::new(),
    };
    let options = LoaderOptions::default()
        .error_on_duplicate_keys(true)
        .prevent_coercion(true);
    let root = match parse_yaml_with_options(0, text, options) {
        Ok(root) => root,
        Err(e) => {
            c.load_error(&e);
            return (Vec::new(), c.errors);
        }
    };
    let rules = c.top(&root, kinds);
    (rules, c.errors)
}

/// Resolves what actions take from outside their file: environment variables and files,
/// each problem with the place in the file that names it.
pub struct Resolver<'a> {
    file: &'a str,
    errors: Vec<ConfigError>,
    secret_vars: Vec<String>,
}

impl Resolver<'_> {
    /// A problem at `at` (a line and column of the file).
    pub fn err(&mut self, at: Place, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.to_owned(),
            line: at.line,
            column: at.column,
            message: message.into(),
        });
    }

    /// The secret in environment variable `var`, named `purpose` in problems; `check` tells
    /// whether a value will do (`Err` says why not). The variable is kept out of the commands
    /// the rules run.
    pub fn env_secret(
        &mut self,
        var: &Named,
        purpose: &str,
        check: impl Fn(&str) -> Result<(), &'static str>,
    ) -> Option<Secret> {
        self.secret_vars.push(var.value.clone());
        match std::env::var(&var.value) {
            Ok(v) => match check(&v) {
                Ok(()) => Some(Secret::new(v)),
                Err(why) => {
                    self.err(
                        var.at,
                        format!("environment variable {} ({purpose}) {why}", var.value),
                    );
                    None
                }
            },
            Err(_) => {
                self.err(
                    var.at,
                    format!("environment variable {} ({purpose}) is not set", var.value),
                );
                None
            }
        }
    }

    /// The secret in the file `path` (its first line's end trimmed), given by the key `key`.
    pub fn file_secret(&mut self, path: &Named, key: &str) -> Option<Secret> {
        match std::fs::read_to_string(&path.value) {
            Ok(v) => Some(Secret::new(v.trim_end_matches(['\n', '\r']).to_owned())),
            Err(e) => {
                self.err(path.at, format!("cannot read {key} {}: {e}", path.value));
                None
            }
        }
    }

    /// Whether `dir` is a directory; a problem naming `what` if not.
    pub fn directory(&mut self, dir: &Named, what: &str) -> bool {
        let ok = Path::new(&dir.value).is_dir();
        if !ok {
            self.err(
                dir.at,
                format!("{what}: {:?} is not a directory", dir.value),
            );
        }
        ok
    }
}

/// A line and column in the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub line: usize,
    pub column: usize,
}

/// A value from the file with its place, kept for the resolve step to name.
#[derive(Debug, Clone)]
pub struct Named {
    pub value: String,
    pub at: Place,
}

impl Named {
    pub fn new(node: &MarkedScalarNode) -> Self {
        let (line, column) = node
            .span()
            .start()
            .map_or((1, 1), |m| (m.line(), m.column()));
        Self {
            value: node.as_str().to_owned(),
            at: Place { line, column },
        }
    }
}

impl Checker<'_> {
    /// A problem at `span`.
    pub fn err(&mut self, span: &Span, message: impl Into<String>) {
        let (line, column) = span.start().map_or((1, 1), |m| (m.line(), m.column()));
        self.errors.push(ConfigError {
            file: self.file.to_owned(),
            line,
            column,
            message: message.into(),
        });
    }

    fn load_error(&mut self, e: &LoadError) {
        let (marker, message) = match e {
            LoadError::ScanError(m, se) => (*m, format!("invalid YAML: {}", se.info())),
            LoadError::TopLevelMustBeMapping(m) => (
                *m,
                "the file must be a mapping with an events_reactor key; see docs/rules.md"
                    .to_owned(),
            ),
            LoadError::DuplicateKey(d) => (
                d.key.span().start().copied().unwrap_or(marker_at_start()),
                format!(
                    "duplicate key {:?}; each rule name and key may appear once",
                    d.key.as_str()
                ),
            ),
            LoadError::UnexpectedAnchor(m)
            | LoadError::MappingKeyMustBeScalar(m)
            | LoadError::UnexpectedTag(m) => (*m, format!("unsupported YAML: {e}")),
            other => (marker_at_start(), format!("invalid YAML: {other}")),
        };
        self.errors.push(ConfigError {
            file: self.file.to_owned(),
            line: marker.line(),
            column: marker.column(),
            message,
        });
    }

    /// Reports keys outside `allowed`, naming where they are and what is allowed.
    pub fn known_keys(&mut self, map: &MarkedMappingNode, allowed: &[&str], place: &str) {
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                self.err(
                    key.span(),
                    format!(
                        "unknown key {:?} in {place}; expected one of: {}",
                        key.as_str(),
                        allowed.join(", ")
                    ),
                );
            }
        }
    }

    /// A mapping whose keys are all in `allowed`; each other key is a problem, and the
    /// mapping is still read.
    pub fn keyed_mapping<'n>(
        &mut self,
        node: &'n Node,
        allowed: &[&str],
        what: &str,
    ) -> Option<&'n MarkedMappingNode> {
        let map = self.mapping(node, what)?;
        self.known_keys(map, allowed, what);
        Some(map)
    }

    pub fn mapping<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n MarkedMappingNode> {
        let m = node.as_mapping();
        if m.is_none() {
            self.err(node.span(), format!("{what} must be a mapping"));
        }
        m
    }

    pub fn scalar<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n MarkedScalarNode> {
        let s = node.as_scalar();
        if s.is_none() {
            self.err(node.span(), format!("{what} must be a single value"));
        }
        s
    }

    pub fn template(&mut self, node: &MarkedScalarNode) -> Option<Template> {
        match Template::parse(node.as_str()) {
            Ok(t) => Some(t),
            Err(e) => {
                self.err(node.span(), e);
                None
            }
        }
    }

    /// A duration from 1ns to 7 days.
    pub fn duration(&mut self, node: &Node, what: &str) -> Option<Duration> {
        let s = self.scalar(node, what)?;
        match humantime::parse_duration(s.as_str()) {
            Ok(d) if !d.is_zero() && d <= MAX_DURATION => Some(d),
            Ok(_) => {
                self.err(
                    s.span(),
                    format!(
                        "{what} must be between 1ns and 7 days; got {:?}",
                        s.as_str()
                    ),
                );
                None
            }
            Err(e) => {
                self.err(
                    s.span(),
                    format!("{what}: {e}; use a duration like 30s, 5m or 1h"),
                );
                None
            }
        }
    }

    /// How many problems are known so far.
    pub fn error_count(&self) -> usize {
        self.errors.len()
    }

    /// Claims `name` as a `what` (a metric name) for this file: false if a rule did already.
    pub fn claim(&mut self, what: &'static str, name: &str) -> bool {
        self.claimed.insert((what, name.to_owned()))
    }

    fn top<A: ActionConfig>(&mut self, root: &Node, kinds: &[&dyn ActionKind<A>]) -> Vec<Rule<A>> {
        let Some(top) = self.mapping(root, "the file") else {
            return Vec::new();
        };
        self.known_keys(top, TOP_KEYS, "the file");
        let quiet: Vec<std::sync::Arc<QuietTimes>> = top
            .get_node("mute_time_intervals")
            .map(|n| super::quiet::compile(self, n))
            .unwrap_or_default()
            .into_iter()
            .map(std::sync::Arc::new)
            .collect();
        let Some(reactor) = top.get_node("events_reactor") else {
            self.err(
                root.span(),
                "no events_reactor key; the rules go under events_reactor:",
            );
            return Vec::new();
        };
        let Some(reactor) = self.mapping(reactor, "events_reactor") else {
            return Vec::new();
        };
        let mut keys = vec!["event"];
        for kind in kinds {
            keys.push(kind.key());
            keys.extend(kind.options());
        }
        keys.extend(RULE_KEYS);
        let mut rules = Vec::new();
        for (name, body) in reactor.iter() {
            if name.as_str().trim().is_empty() {
                self.err(name.span(), "a rule name must not be empty");
                continue;
            }
            rules.extend(self.rule(name, body, kinds, &keys, &quiet));
        }
        rules
    }

    fn rule<A: ActionConfig>(
        &mut self,
        name: &MarkedScalarNode,
        body: &Node,
        kinds: &[&dyn ActionKind<A>],
        keys: &[&str],
        quiet: &[std::sync::Arc<QuietTimes>],
    ) -> Option<Rule<A>> {
        let rule_name = name.as_str().to_owned();
        let place = format!("rule {rule_name:?}");
        let body = self.mapping(body, &place)?;
        let errors_before = self.errors.len();
        self.known_keys(body, keys, &place);

        let condition = body
            .get_node("condition")
            .and_then(|n| self.condition(n, &place));
        let matcher = body
            .get_node("event")
            .and_then(|n| self.event(n, "event", &place))
            .unwrap_or_default();
        let resolve = body
            .get_node("resolve")
            .and_then(|n| self.event(n, "resolve", &place));
        if body.get_node("condition").is_some() {
            self.condition_fits(body, &place);
        }
        let mut actions = Vec::new();
        for kind in kinds {
            let key = kind.key();
            if let Some(n) = body.get_node(key) {
                actions.extend(kind.compile(self, n, body, &place));
                continue;
            }
            for opt in kind.options() {
                if let Some(k) = body.keys().find(|k| k.as_str() == *opt) {
                    self.err(
                        k.span(),
                        format!("{opt} applies to {key}, and {place} has no {key}"),
                    );
                }
            }
        }
        if !kinds.iter().any(|k| body.get_node(k.key()).is_some()) {
            let names: Vec<&str> = kinds.iter().map(|k| k.key()).collect();
            let listed = match names.split_last() {
                Some((last, [])) => (*last).to_owned(),
                Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                None => String::new(),
            };
            self.err(
                name.span(),
                format!("{place} has no action; give it {listed}"),
            );
        }
        let throttle = body
            .get_node("throttle")
            .and_then(|n| self.throttle(n, &place));
        let batch = body
            .get_node("batch")
            .and_then(|n| self.duration(n, &format!("batch of {place}")));
        if let (Some(_), Some(k)) = (
            resolve.as_ref(),
            body.keys().find(|k| k.as_str() == "batch"),
        ) {
            // A digest of several firings has no one actor for its resolving event to end.
            self.err(
                k.span(),
                format!("{place} has resolve and batch; a resolved firing is of one container, so use throttle instead of batch"),
            );
        }
        let uses = |key: &Key| {
            actions
                .iter()
                .any(|a| a.templates().iter().any(|t| t.uses(key)))
        };
        let uses_ip = uses(&Key::Ip);
        let uses_health_output = uses(&Key::HealthOutput);
        let logs = self.log_lines(body, uses(&Key::Logs), &place);
        let quiet = body
            .get_node("mute_time_intervals")
            .map(|n| self.quiet_names(n, quiet, &place))
            .unwrap_or_default();
        let resolvable = resolve.is_some() || condition.is_some_and(|c| c.resolves());
        let repeat = body
            .get_node("repeat")
            .map(|n| self.repeat(n, resolvable, &place));
        if self.errors.len() > errors_before {
            return None;
        }
        let logs = logs?;
        let repeat = match repeat {
            Some(r) => Some(r?),
            None => None,
        };
        Some(Rule {
            name: rule_name,
            quiet,
            condition,
            matcher,
            actions,
            throttle,
            batch,
            resolve,
            uses_ip,
            uses_health_output,
            logs,
            repeat,
        })
    }

    /// A rule's `condition`: a name (with its defaults), or a mapping of one name to its
    /// parameters.
    fn condition(&mut self, node: &Node, place: &str) -> Option<Condition> {
        let what = format!("condition of {place}");
        let (name, params) = match node {
            Node::Scalar(s) => (s, None),
            Node::Mapping(m) if m.len() == 1 => {
                let (k, v) = m.iter().next()?;
                (k, Some(v))
            }
            _ => {
                self.err(
                    node.span(),
                    format!("{what} must be a condition's name or a mapping of one name to its settings, e.g. crash_loop: {{exits: 3, within: 10m}}"),
                );
                return None;
            }
        };
        let Some(mut c) = Condition::named(name.as_str()) else {
            self.err(
                name.span(),
                format!(
                    "unknown condition {:?} in {place}; expected one of: {CONDITIONS}",
                    name.as_str()
                ),
            );
            return None;
        };
        let params = match params {
            // `crash_loop:` with nothing after it: the defaults.
            Some(Node::Scalar(s)) if s.as_str().is_empty() => None,
            Some(p) => Some(self.keyed_mapping(
                p,
                c.params(),
                &format!("condition.{} of {place}", c.name()),
            )?),
            None => None,
        };
        let mut ok = true;
        for (k, v) in params.into_iter().flat_map(|p| p.iter()) {
            if !c.params().contains(&k.as_str()) {
                continue;
            }
            let what = format!("condition.{}.{} of {place}", c.name(), k.as_str());
            let Some(v) = self.scalar(v, &what) else {
                ok = false;
                continue;
            };
            if let Err(why) = c.set(k.as_str(), v.as_str()) {
                self.err(v.span(), format!("{what} {why}"));
                ok = false;
            }
        }
        ok.then_some(c)
    }

    /// A rule's `mute_time_intervals`: names of the file's.
    fn quiet_names(
        &mut self,
        node: &Node,
        all: &[std::sync::Arc<QuietTimes>],
        place: &str,
    ) -> Vec<std::sync::Arc<QuietTimes>> {
        let names: Vec<&MarkedScalarNode> = match node {
            Node::Scalar(s) => vec![s],
            Node::Sequence(seq) => seq
                .iter()
                .filter_map(|n| self.scalar(n, &format!("each of mute_time_intervals of {place}")))
                .collect(),
            Node::Mapping(_) => {
                self.err(
                    node.span(),
                    format!("mute_time_intervals of {place} must be a list of names of the file's mute_time_intervals"),
                );
                return Vec::new();
            }
        };
        let mut found = Vec::new();
        for n in names {
            match all.iter().find(|q| q.name == n.as_str()) {
                Some(q) => found.push(q.clone()),
                None => {
                    let known: Vec<&str> = all.iter().map(|q| q.name.as_str()).collect();
                    self.err(
                        n.span(),
                        format!(
                            "mute_time_intervals of {place}: no interval named {:?} in the file's mute_time_intervals{}",
                            n.as_str(),
                            if known.is_empty() {
                                String::new()
                            } else {
                                format!(" (there are: {})", known.join(", "))
                            }
                        ),
                    );
                }
            }
        }
        found
    }

    /// What a rule with a condition may not have: `event:` selects what it watches (the
    /// condition says when it fires), and it ends by itself.
    fn condition_fits(&mut self, body: &MarkedMappingNode, place: &str) {
        if let Some(action) = body
            .get_mapping("event")
            .and_then(|e| e.keys().find(|k| k.as_str() == "action"))
        {
            self.err(
                action.span(),
                format!("{place} has a condition: its event selects what it watches (type, scope, engine, actor), and the condition says when it fires; remove action"),
            );
        }
        for (key, why) in [
            (
                "resolve",
                "a condition resolves by itself when it stops holding",
            ),
            (
                "batch",
                "a condition fires for one container or engine at a time",
            ),
            (
                "throttle",
                "a condition fires once until it resolves; use repeat to be reminded",
            ),
        ] {
            if let Some(k) = body.keys().find(|k| k.as_str() == key) {
                self.err(
                    k.span(),
                    format!("{place} has a condition and {key}: {why}"),
                );
            }
        }
    }

    /// A rule's `repeat`: only for a rule with `resolve`, at least [`MIN_REPEAT`].
    fn repeat(&mut self, node: &Node, resolvable: bool, place: &str) -> Option<Duration> {
        let what = format!("repeat of {place}");
        let d = self.duration(node, &what)?;
        if !resolvable {
            self.err(
                node.span(),
                format!("{place} has repeat and no resolve: only a firing waiting for its resolving event (or a condition's end) is sent again"),
            );
            return None;
        }
        if d < MIN_REPEAT {
            self.err(
                node.span(),
                format!("{what} must be at least 1s; got {d:?}"),
            );
            return None;
        }
        Some(d)
    }

    /// How many of the container's last lines `%%logs%%` holds: the rule's `logs`, for a rule
    /// whose actions use it. `None` inside: no action uses it.
    fn log_lines(
        &mut self,
        body: &MarkedMappingNode,
        used: bool,
        place: &str,
    ) -> Option<Option<usize>> {
        let Some(n) = body.get_node("logs") else {
            return Some(used.then_some(DEFAULT_LOG_LINES));
        };
        let s = self.scalar(n, &format!("logs of {place}"))?;
        let lines = match s.as_str().parse::<usize>() {
            Ok(lines) if (1..=MAX_LOG_LINES).contains(&lines) => lines,
            _ => {
                self.err(
                    s.span(),
                    format!("logs of {place} must be a whole number of lines from 1 to {MAX_LOG_LINES}; got {:?}", s.as_str()),
                );
                return None;
            }
        };
        if !used {
            self.err(
                s.span(),
                format!("{place} has logs, and none of its actions uses %%logs%%"),
            );
            return None;
        }
        Some(Some(lines))
    }

    fn patterns(&mut self, node: &Node, what: &str) -> Option<ValueMatcher> {
        let items: Vec<&MarkedScalarNode> = match node {
            Node::Scalar(s) => vec![s],
            Node::Sequence(seq) => {
                let mut v = Vec::new();
                for item in seq.iter() {
                    v.extend(self.scalar(item, &format!("each value of {what}")));
                }
                v
            }
            Node::Mapping(_) => {
                self.err(
                    node.span(),
                    format!("{what} must be a value or a list of values"),
                );
                return None;
            }
        };
        let mut ok = true;
        for item in &items {
            if let Err(e) = ValueMatcher::parse([item.as_str()]) {
                self.err(item.span(), format!("{what}: {e}"));
                ok = false;
            }
        }
        if !ok {
            return None;
        }
        ValueMatcher::parse(items.iter().map(|s| s.as_str())).ok()
    }

    /// An event matcher: the rule's `event`, or its `resolve` (named `what`).
    fn event(&mut self, node: &Node, what: &str, place: &str) -> Option<EventMatcher> {
        let map = self.keyed_mapping(node, EVENT_KEYS, &format!("{what} of {place}"))?;
        let mut m = EventMatcher::default();
        let field = |c: &mut Self, key: &str| {
            map.get_node(key)
                .and_then(|n| c.patterns(n, &format!("{what}.{key} of {place}")))
        };
        m.typ = field(self, "type");
        m.action = field(self, "action");
        m.scope = field(self, "scope");
        m.engine = field(self, "engine");
        if let Some(actor) = map.get_node("actor") {
            let actor = self.mapping(actor, &format!("{what}.actor of {place}"))?;
            for (k, v) in actor.iter() {
                let what = format!("{what}.actor.{} of {place}", k.as_str());
                let Some(p) = self.patterns(v, &what) else {
                    continue;
                };
                match k.as_str() {
                    "id" | "ID" => m.actor_id = Some(p),
                    attr => m.attributes.push((attr.to_owned(), p)),
                }
            }
        }
        Some(m.indexed())
    }

    fn throttle(&mut self, node: &Node, place: &str) -> Option<Throttle> {
        let place = format!("throttle of {place}");
        match node {
            // `throttle: 5m`: at most one firing per interval for the whole rule.
            Node::Scalar(_) => Some(Throttle {
                key: Template::literal(""),
                interval: self.duration(node, &place)?,
            }),
            _ => {
                let map = self.keyed_mapping(node, THROTTLE_KEYS, &place)?;
                let key = match map.get_scalar("key") {
                    Some(k) => {
                        let t = self.template(k)?;
                        if t.uses(&Key::Ip) || t.uses(&Key::Payload) {
                            self.err(k.span(), format!("key of {place} cannot use %%ip%% or %%payload%%; use %%actor.name%% or %%actor.id%%"));
                            return None;
                        }
                        t
                    }
                    None => Template::literal(""),
                };
                let Some(interval) = map.get_node("interval") else {
                    self.err(
                        node.span(),
                        format!("{place} needs an interval, e.g. interval: 5m"),
                    );
                    return None;
                };
                Some(Throttle {
                    key,
                    interval: self.duration(interval, &format!("interval of {place}"))?,
                })
            }
        }
    }
}

fn marker_at_start() -> marked_yaml::Marker {
    marked_yaml::Marker::new(0, 0, 1, 1)
}
