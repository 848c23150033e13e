//! `mute_time_intervals`: named quiet hours in Alertmanager's `time_intervals` syntax (times,
//! weekdays, days of month, months, years, a location), referenced by rules whose firings
//! they mute. Compiled into plain data here; the reactor asks [`QuietTimes::contains`].
//!
//! ```yaml
//! mute_time_intervals:
//!   - name: nights
//!     time_intervals:
//!       - times: [{start_time: "00:00", end_time: "07:00"}]
//!         weekdays: ["monday:friday"]
//!         location: Europe/Paris
//! events_reactor:
//!   Crash loop:
//!     condition: crash_loop
//!     mute_time_intervals: [nights]
//! ```

use marked_yaml::Node;
use marked_yaml::types::MarkedScalarNode;

use super::config::Checker;

const INTERVAL_KEYS: &[&str] = &["name", "time_intervals"];
const FIELDS: &[&str] = &[
    "times",
    "weekdays",
    "days_of_month",
    "months",
    "years",
    "location",
];
const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];
const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// Reads one value of a list (a weekday, a day, a month, a year) as a number.
type ValueOf = fn(&str) -> Option<i64>;
/// A list's key, the ranges it fills, and how it reads a value.
type Field<'a> = (&'static str, &'a mut Vec<(i64, i64)>, ValueOf);

/// One named set of time intervals: quiet while any of them contains the time.
#[derive(Debug, Clone)]
pub struct QuietTimes {
    pub name: String,
    intervals: Vec<TimeInterval>,
}

/// One interval: each list given must contain the time (an empty one contains every time).
#[derive(Debug, Clone)]
struct TimeInterval {
    /// Minutes of the day, start included, end not.
    times: Vec<(u16, u16)>,
    /// 0 is Sunday.
    weekdays: Vec<(i64, i64)>,
    /// From 1, or from the month's end (-1 is its last day).
    days_of_month: Vec<(i64, i64)>,
    /// 1 is January.
    months: Vec<(i64, i64)>,
    years: Vec<(i64, i64)>,
    location: jiff::tz::TimeZone,
}

impl QuietTimes {
    /// Whether the time `nanos` (since the epoch) is in any of its intervals.
    pub fn contains(&self, nanos: i64) -> bool {
        let Ok(t) = jiff::Timestamp::from_nanosecond(i128::from(nanos)) else {
            return false;
        };
        self.intervals.iter().any(|i| i.contains(t))
    }
}

impl TimeInterval {
    fn contains(&self, t: jiff::Timestamp) -> bool {
        let z = t.to_zoned(self.location.clone());
        let within = |ranges: &[(i64, i64)], v: i64| {
            ranges.is_empty() || ranges.iter().any(|&(a, b)| a <= v && v <= b)
        };
        let minute = u16::try_from(i32::from(z.hour()) * 60 + i32::from(z.minute())).unwrap_or(0);
        let days_in_month = i64::from(z.days_in_month());
        let day = i64::from(z.day());
        let day_ok = self.days_of_month.is_empty()
            || self.days_of_month.iter().any(|&(a, b)| {
                let from_end = |d: i64| if d < 0 { days_in_month + d + 1 } else { d };
                from_end(a) <= day && day <= from_end(b)
            });
        (self.times.is_empty() || self.times.iter().any(|&(a, b)| a <= minute && minute < b))
            && within(
                &self.weekdays,
                i64::from(z.weekday().to_sunday_zero_offset()),
            )
            && day_ok
            && within(&self.months, i64::from(z.month()))
            && within(&self.years, i64::from(z.year()))
    }
}

/// Compiles the file's `mute_time_intervals`: a list of `{name, time_intervals}`.
pub fn compile(c: &mut Checker<'_>, node: &Node) -> Vec<QuietTimes> {
    let Some(list) = node.as_sequence() else {
        c.err(
            node.span(),
            "mute_time_intervals must be a list of {name, time_intervals}",
        );
        return Vec::new();
    };
    let mut all: Vec<QuietTimes> = Vec::new();
    for item in list.iter() {
        let Some(map) = c.keyed_mapping(item, INTERVAL_KEYS, "an item of mute_time_intervals")
        else {
            continue;
        };
        let Some(name) = map.get_scalar("name") else {
            c.err(item.span(), "an item of mute_time_intervals needs a name");
            continue;
        };
        let place = format!("mute_time_intervals {:?}", name.as_str());
        if all.iter().any(|q| q.name == name.as_str()) {
            c.err(name.span(), format!("{place} is named twice"));
            continue;
        }
        let mut intervals = Vec::new();
        match map.get_node("time_intervals").map(|n| (n, n.as_sequence())) {
            Some((_, Some(seq))) => {
                for i in seq.iter() {
                    intervals.extend(interval(c, i, &place));
                }
            }
            Some((n, None)) => c.err(
                n.span(),
                format!("time_intervals of {place} must be a list"),
            ),
            None => c.err(name.span(), format!("{place} has no time_intervals")),
        }
        all.push(QuietTimes {
            name: name.as_str().to_owned(),
            intervals,
        });
    }
    all
}

fn interval(c: &mut Checker<'_>, node: &Node, place: &str) -> Option<TimeInterval> {
    let what = format!("a time interval of {place}");
    let map = c.keyed_mapping(node, FIELDS, &what)?;
    let errors = c.error_count();
    let mut i = TimeInterval {
        times: Vec::new(),
        weekdays: Vec::new(),
        days_of_month: Vec::new(),
        months: Vec::new(),
        years: Vec::new(),
        location: jiff::tz::TimeZone::UTC,
    };
    if let Some(times) = map.get_node("times") {
        match times.as_sequence() {
            Some(seq) => {
                for t in seq.iter() {
                    i.times.extend(time_range(c, t, place));
                }
            }
            None => c.err(
                times.span(),
                format!("times of {place} must be a list of {{start_time, end_time}}"),
            ),
        }
    }
    let fields: [Field<'_>; 4] = [
        ("weekdays", &mut i.weekdays, |s| named(&WEEKDAYS, s, 0)),
        ("days_of_month", &mut i.days_of_month, |s| {
            s.parse().ok().filter(|d: &i64| (1..=31).contains(&d.abs()))
        }),
        ("months", &mut i.months, |s| {
            named(&MONTHS, s, 1).or_else(|| s.parse().ok().filter(|m| (1..=12).contains(m)))
        }),
        ("years", &mut i.years, |s| {
            s.parse().ok().filter(|y| (1..=9999).contains(y))
        }),
    ];
    for (key, ranges, value) in fields {
        let Some(n) = map.get_node(key) else {
            continue;
        };
        for item in items(c, n, &format!("{key} of {place}")) {
            let text = item.as_str();
            let (a, b) = text.split_once(':').unwrap_or((text, text));
            match (value(a.trim()), value(b.trim())) {
                (Some(a), Some(b)) if a <= b || (key == "days_of_month" && (a < 0) != (b < 0)) => {
                    ranges.push((a, b));
                }
                _ => c.err(
                    item.span(),
                    format!("{key} of {place}: {text:?} is not a {} or a range of them, start before end", match key {
                        "weekdays" => "weekday (monday)",
                        "days_of_month" => "day of the month (1 to 31, or -1 for the last)",
                        "months" => "month (january, or 1 to 12)",
                        _ => "year",
                    }),
                ),
            }
        }
    }
    if let Some(loc) = map.get_node("location")
        && let Some(s) = c.scalar(loc, &format!("location of {place}"))
    {
        let tz = match s.as_str() {
            "Local" => Ok(jiff::tz::TimeZone::system()),
            "UTC" => Ok(jiff::tz::TimeZone::UTC),
            name => jiff::tz::TimeZone::get(name),
        };
        match tz {
            Ok(tz) => i.location = tz,
            Err(_) => c.err(
                s.span(),
                format!(
                    "location of {place}: unknown time zone {:?}; use an IANA name like Europe/Paris, UTC or Local",
                    s.as_str()
                ),
            ),
        }
    }
    (c.error_count() == errors).then_some(i)
}

/// The place of `s` among `names` (any case), counted from `first`.
fn named(names: &[&str], s: &str, first: i64) -> Option<i64> {
    let p = names.iter().position(|n| n.eq_ignore_ascii_case(s))?;
    i64::try_from(p).ok().map(|p| p + first)
}

/// The scalar items of a list (or a single value), each problem reported.
fn items<'n>(c: &mut Checker<'_>, node: &'n Node, what: &str) -> Vec<&'n MarkedScalarNode> {
    match node {
        Node::Scalar(s) => vec![s],
        Node::Sequence(seq) => seq
            .iter()
            .filter_map(|n| c.scalar(n, &format!("each value of {what}")))
            .collect(),
        Node::Mapping(_) => {
            c.err(node.span(), format!("{what} must be a list"));
            Vec::new()
        }
    }
}

/// `{start_time: "HH:MM", end_time: "HH:MM"}`: minutes of the day, the end up to 24:00.
fn time_range(c: &mut Checker<'_>, node: &Node, place: &str) -> Option<(u16, u16)> {
    let what = format!("times of {place}");
    let map = c.keyed_mapping(node, &["start_time", "end_time"], &what)?;
    let minute = |c: &mut Checker<'_>, key: &str| -> Option<u16> {
        let Some(s) = map.get_scalar(key) else {
            c.err(node.span(), format!("{what}: each item needs a {key}"));
            return None;
        };
        let parsed = s.as_str().split_once(':').and_then(|(h, m)| {
            let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
            (h <= 24 && m <= 59 && h * 60 + m <= 1440 && s.as_str().len() == 5)
                .then_some(h * 60 + m)
        });
        if parsed.is_none() {
            c.err(
                s.span(),
                format!(
                    "{key} of {what}: {:?} is not a time of day like 07:30 (00:00 to 24:00)",
                    s.as_str()
                ),
            );
        }
        parsed
    };
    let (start, end) = (minute(c, "start_time"), minute(c, "end_time"));
    let (start, end) = (start?, end?);
    if start >= end {
        c.err(
            node.span(),
            format!("{what}: start_time must be before end_time (a range past midnight is two ranges, as in Alertmanager)"),
        );
        return None;
    }
    Some((start, end))
}
