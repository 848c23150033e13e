//! Event matchers: which events a rule fires on.
//!
//! A value is matched by a pattern: `exact`, a glob (`web-*`, `db-[0-9]`), a regex between
//! slashes (`/^web-\d+$/`, unanchored unless anchored), or any of those negated with a leading
//! `!`. A list matches when any of its plain patterns matches (or it has none) and none of its
//! negated ones does. Keys of one matcher are ANDed. An attribute the event lacks is "".

use globset::{Glob, GlobMatcher};
use regex::{Regex, RegexBuilder};

use crate::docker::event::Event;

/// Compiled size limit of one regex: a config cannot make us allocate without bound.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

#[derive(Debug, Clone)]
enum Pattern {
    Exact(String),
    Glob(GlobMatcher),
    Regex(Regex),
}

impl Pattern {
    fn parse(s: &str) -> Result<Self, String> {
        if let Some(inner) = s
            .strip_prefix('/')
            .and_then(|r| r.strip_suffix('/'))
            .filter(|_| s.len() >= 2)
        {
            return RegexBuilder::new(inner)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map(Self::Regex)
                .map_err(|e| format!("invalid regex /{inner}/: {}", last_line(&e.to_string())));
        }
        if s.contains(['*', '?', '[']) {
            return Glob::new(s)
                .map(|g| Self::Glob(g.compile_matcher()))
                .map_err(|e| format!("invalid glob {s:?}: {e}"));
        }
        Ok(Self::Exact(s.to_owned()))
    }

    fn is_match(&self, v: &str) -> bool {
        match self {
            Self::Exact(x) => x == v,
            Self::Glob(g) => g.is_match(v),
            Self::Regex(r) => r.is_match(v),
        }
    }
}

fn last_line(s: &str) -> String {
    // regex errors are multi-line pictures; the last line says what is wrong.
    s.lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .to_owned()
}

/// One value's patterns.
#[derive(Debug, Clone, Default)]
pub struct ValueMatcher {
    any: Vec<Pattern>,
    none: Vec<Pattern>,
}

impl ValueMatcher {
    /// Compiles the patterns of one key; each error names the pattern.
    pub fn parse<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut m = Self::default();
        for p in patterns {
            match p.strip_prefix('!') {
                Some(neg) => m.none.push(Pattern::parse(neg)?),
                None => m.any.push(Pattern::parse(p)?),
            }
        }
        Ok(m)
    }

    pub fn is_match(&self, v: &str) -> bool {
        (self.any.is_empty() || self.any.iter().any(|p| p.is_match(v)))
            && !self.none.iter().any(|p| p.is_match(v))
    }
}

/// What a rule's `event:` asks of an event.
#[derive(Debug, Clone, Default)]
pub struct EventMatcher {
    pub typ: Option<ValueMatcher>,
    /// Matched against the verb (`exec_start`) and against the full action
    /// (`exec_start: /bin/sh -c true`): either may match.
    pub action: Option<ValueMatcher>,
    pub scope: Option<ValueMatcher>,
    pub actor_id: Option<ValueMatcher>,
    pub attributes: Vec<(String, ValueMatcher)>,
}

impl EventMatcher {
    pub fn is_match(&self, ev: &Event) -> bool {
        let ok = |m: &Option<ValueMatcher>, v: &str| m.as_ref().is_none_or(|m| m.is_match(v));
        ok(&self.typ, &ev.type_name)
            && self
                .action
                .as_ref()
                .is_none_or(|m| m.is_match(ev.verb()) || m.is_match(&ev.action))
            && ok(&self.scope, &ev.scope)
            && ok(&self.actor_id, &ev.actor_id)
            && self
                .attributes
                .iter()
                .all(|(k, m)| m.is_match(ev.attr(k).unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &[&str]) -> ValueMatcher {
        ValueMatcher::parse(p.iter().copied()).expect("compiles")
    }

    #[test]
    fn exact_glob_regex_and_negation() {
        assert!(m(&["web"]).is_match("web"));
        assert!(!m(&["web"]).is_match("web-1"));
        assert!(m(&["web-*"]).is_match("web-1"));
        assert!(m(&["/^db-\\d+$/"]).is_match("db-12"));
        assert!(!m(&["/^db-\\d+$/"]).is_match("db-x"));
        assert!(m(&["!0"]).is_match("137"));
        assert!(!m(&["!0"]).is_match("0"));
        assert!(m(&["a", "b*"]).is_match("bee"));
        assert!(!m(&["web-*", "!web-test"]).is_match("web-test"));
        assert!(m(&["!x"]).is_match(""), "absent is empty, and not x");
    }

    #[test]
    fn bad_patterns_say_what_is_wrong() {
        let err = ValueMatcher::parse(["/(unclosed/"]).expect_err("bad regex");
        assert!(err.starts_with("invalid regex /(unclosed/: "), "{err}");
        let err = ValueMatcher::parse(["web-[a"]).expect_err("bad glob");
        assert!(err.starts_with("invalid glob \"web-[a\": "), "{err}");
    }
}
