//! Event matchers: which events a rule fires on.
//!
//! A value is matched by a pattern: `exact`, a glob (`web-*`, `db-[0-9]`), a regex between
//! slashes (`/^web-\d+$/`, unanchored unless anchored), or any of those negated with a leading
//! `!`. A list matches when any of its plain patterns matches (or it has none) and none of its
//! negated ones does. Keys of one matcher are ANDed. An attribute the event lacks is "".

use globset::{Glob, GlobMatcher};
use regex::{Regex, RegexBuilder};

use crate::docker::event::{Event, ObjectType, Verb, verb_of};

/// What globset reads as more than a literal character.
const GLOB_SYNTAX: &[char] = &['*', '?', '[', ']', '{', '}', '\\'];

/// Compiled size limit of one regex: a config cannot make us allocate without bound.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

#[derive(Debug, Clone)]
enum Pattern {
    Exact(String),
    /// A glob of a literal and one `*` after it (`shop-*`), the usual kind: a prefix test
    /// instead of an automaton.
    Prefix(String),
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
        if let Some(prefix) = s.strip_suffix('*')
            && !prefix.contains(GLOB_SYNTAX)
        {
            return Ok(Self::Prefix(prefix.to_owned()));
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
            Self::Prefix(p) => v.starts_with(p.as_str()),
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

    /// The exact values one of which a value must equal to match; `None` when it may match
    /// others too (globs, regexes, or only negations).
    fn exact_values(&self) -> Option<impl Iterator<Item = &str>> {
        let all_exact =
            !self.any.is_empty() && self.any.iter().all(|p| matches!(p, Pattern::Exact(_)));
        all_exact.then(|| {
            self.any.iter().filter_map(|p| match p {
                Pattern::Exact(x) => Some(x.as_str()),
                _ => None,
            })
        })
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
    /// Matched against the name of the engine the event came from.
    pub engine: Option<ValueMatcher>,
    pub actor_id: Option<ValueMatcher>,
    pub attributes: Vec<(String, ValueMatcher)>,
    /// Object types and verbs an event must have to match: with most rules naming a type and
    /// an action outright, two bit tests turn most events away before any string is compared.
    kinds: Kinds,
}

/// Sets of object types and verbs, one bit each.
#[derive(Debug, Clone, Copy)]
struct Kinds {
    objects: u16,
    verbs: u64,
}

impl Default for Kinds {
    fn default() -> Self {
        Self {
            objects: u16::MAX,
            verbs: u64::MAX,
        }
    }
}

const _: () = assert!(ObjectType::COUNT <= 16 && Verb::COUNT <= 64);

impl EventMatcher {
    /// Works out which object types and verbs the matcher can match at all. Until this is
    /// called, it tries every event.
    pub fn indexed(mut self) -> Self {
        let mut kinds = Kinds::default();
        if let Some(exact) = self.typ.as_ref().and_then(ValueMatcher::exact_values) {
            // An event's object type is parsed from its `Type`: equal types, equal objects.
            kinds.objects = exact.fold(0, |m, t| m | 1 << ObjectType::parse(t).index());
        }
        if let Some(exact) = self.action.as_ref().and_then(ValueMatcher::exact_values) {
            // A value matches the verb or the whole action; either way the event's verb is
            // the verb of the value.
            kinds.verbs = exact.fold(0, |m, a| {
                m | 1 << Verb::parse(a).index() | 1 << Verb::parse(verb_of(a)).index()
            });
        }
        self.kinds = kinds;
        self
    }

    fn kinds_admit(&self, ev: &Event) -> bool {
        (self.kinds.objects & (1 << ev.object.index())) != 0
            && (self.kinds.verbs & (1 << ev.verb.index())) != 0
    }

    /// Whether `ev`, of the engine named `engine`, matches.
    pub fn is_match(&self, ev: &Event, engine: &str) -> bool {
        let ok = |m: &Option<ValueMatcher>, v: &str| m.as_ref().is_none_or(|m| m.is_match(v));
        self.kinds_admit(ev)
            && ok(&self.typ, ev.type_name())
            && self
                .action
                .as_ref()
                .is_none_or(|m| m.is_match(ev.verb()) || m.is_match(&ev.docker_action()))
            && ok(&self.scope, ev.scope())
            && ok(&self.engine, engine)
            && ok(&self.actor_id, ev.actor_id())
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
        // Prefix globs match as globset would: `*` takes anything, `/` and nothing included.
        for (glob, value, want) in [
            ("shop-*", "shop-api-1", true),
            ("shop-*", "shop-", true),
            ("shop-*", "shop", false),
            ("registry.example.com/*", "registry.example.com/a/b:1", true),
            ("*", "", true),
            ("a[b]*", "ab-x", true),
            ("a{b,c}*", "ac", true),
        ] {
            let g = Glob::new(glob).expect("glob").compile_matcher();
            assert_eq!(g.is_match(value), want, "globset: {glob} on {value}");
            assert_eq!(m(&[glob]).is_match(value), want, "{glob} on {value}");
        }
        assert!(matches!(Pattern::parse("shop-*"), Ok(Pattern::Prefix(_))));
        assert!(matches!(Pattern::parse("a[b]*"), Ok(Pattern::Glob(_))));
    }

    /// The index only turns away events the matcher itself would refuse.
    #[test]
    fn an_indexed_matcher_matches_what_the_plain_one_does() {
        let events = [
            ("container", "start"),
            ("container", "exec_start: /bin/sh -c true"),
            ("container", "health_status: unhealthy"),
            ("container", "die"),
            ("image", "pull"),
            ("gizmo", "frob"),
            ("gizmo", "frob: x"),
            ("network", "connect"),
        ]
        .map(|(t, a)| Event::new(t, a, "id", [("name", "web")], "local", 1));
        let patterns: &[&[&str]] = &[
            &["container"],
            &["container", "image"],
            &["gizmo"],
            &["!container"],
            &["cont*"],
            &["/^(start|die)$/"],
            &["start"],
            &["exec_start"],
            &["exec_start: /bin/sh -c true"],
            &["health_status: unhealthy", "die"],
            &["frob"],
            &["frob: x"],
            &["start", "!start"],
        ];
        let mut fields = Vec::new();
        for p in patterns {
            fields.push((Some(m(p)), None));
            fields.push((None, Some(m(p))));
        }
        fields.push((Some(m(&["container"])), Some(m(&["die", "start"]))));
        let mut turned_away = 0;
        for (typ, action) in fields {
            let plain = EventMatcher {
                typ,
                action,
                ..EventMatcher::default()
            };
            let indexed = plain.clone().indexed();
            for ev in &events {
                assert_eq!(
                    indexed.is_match(ev, "e"),
                    plain.is_match(ev, "e"),
                    "{plain:?} on {ev:?}"
                );
                turned_away += usize::from(!indexed.kinds_admit(ev));
            }
        }
        assert!(
            turned_away > 50,
            "the index turned away only {turned_away} events"
        );
    }

    #[test]
    fn bad_patterns_say_what_is_wrong() {
        let err = ValueMatcher::parse(["/(unclosed/"]).expect_err("bad regex");
        assert!(err.starts_with("invalid regex /(unclosed/: "), "{err}");
        let err = ValueMatcher::parse(["web-[a"]).expect_err("bad glob");
        assert!(err.starts_with("invalid glob \"web-[a\": "), "{err}");
    }
}
