//! How a line becomes an [`Event`]: the fast scanner ([`super::scan`]) first, and serde for
//! whatever it is not sure of (every error's wording comes from there). The event type itself
//! (`event`) knows neither path, and the scanner knows only the type.

use serde::Deserialize;

use super::event::{Buffers, DecodeError, Event};

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "Type")]
    typ: Option<String>,
    #[serde(rename = "Action")]
    action: Option<String>,
    #[serde(rename = "Actor")]
    actor: Option<RawActor>,
    scope: Option<String>,
    #[serde(rename = "HealthStatus")]
    health_status: Option<String>,
    time: Option<i64>,
    #[serde(rename = "timeNano")]
    time_nano: Option<i64>,
}

#[derive(Deserialize)]
struct RawActor {
    #[serde(rename = "ID")]
    id: Option<String>,
    #[serde(rename = "Attributes", default, deserialize_with = "pairs")]
    attributes: Vec<(String, String)>,
}

/// A JSON object (or null) as its key/value pairs, in order.
fn pairs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    struct Pairs;
    impl<'de> serde::de::Visitor<'de> for Pairs {
        type Value = Vec<(String, String)>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object of string values")
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut v = Vec::with_capacity(map.size_hint().unwrap_or(8));
            while let Some(pair) = map.next_entry::<String, String>()? {
                v.push(pair);
            }
            Ok(v)
        }
    }
    d.deserialize_any(Pairs)
}

impl Event {
    /// Decodes one line (without its newline).
    pub fn decode(line: &[u8]) -> Result<Self, DecodeError> {
        Self::decode_reusing(line, &mut Buffers::default())
    }

    /// The same, the event's text and attributes in `spare`'s memory (a stream of events
    /// decoded one after another allocates nothing for them; see [`Event::into_buffers`]).
    pub fn decode_reusing(line: &[u8], spare: &mut Buffers) -> Result<Self, DecodeError> {
        // One UTF-8 check for the whole line lets both paths skip their own check of every
        // string. simdutf8's (SIMD, chosen at run time) made a replay of the chaotic file 6%
        // faster than std's.
        let text = match simdutf8::basic::from_utf8(line) {
            Ok(text) => text,
            // std's error says where the line goes wrong.
            Err(_) => match std::str::from_utf8(line) {
                Ok(text) => text,
                Err(e) => return Err(DecodeError::Json(format!("not UTF-8: {e}"))),
            },
        };
        match super::scan::scan(text, spare) {
            Some(ev) => Ok(ev),
            None => Self::decode_general(text),
        }
    }

    /// For the fuzzers: the fast path's event, if it takes the line, and the general path's.
    #[doc(hidden)]
    pub fn decode_paths(text: &str) -> (Option<Self>, Result<Self, DecodeError>) {
        (
            super::scan::scan(text, &mut Buffers::default()),
            Self::decode_general(text),
        )
    }

    /// Any JSON, through serde: what the fast path is not sure of, and every error's wording.
    pub(crate) fn decode_general(text: &str) -> Result<Self, DecodeError> {
        // sonic-rs (SIMD) parses these lines about 14% faster end to end than serde_json, with
        // the same serde structs. Its errors end in a picture of the line; the first line says it.
        let raw: Raw = sonic_rs::from_str(text).map_err(|e| {
            let msg = e.to_string();
            DecodeError::Json(msg.lines().next().unwrap_or_default().to_owned())
        })?;
        let type_name = raw
            .typ
            .filter(|t| !t.is_empty())
            .ok_or(DecodeError::Missing("Type"))?;
        let action = raw
            .action
            .filter(|a| !a.is_empty())
            .ok_or(DecodeError::Missing("Action"))?;
        let time_nano = raw
            .time_nano
            .or_else(|| raw.time.and_then(|s| s.checked_mul(1_000_000_000)))
            .ok_or(DecodeError::Missing("time or timeNano"))?;
        let (actor_id, attributes) = match raw.actor {
            Some(a) => (a.id.unwrap_or_default(), a.attributes),
            None => Default::default(),
        };
        Ok(Self::new(
            &type_name,
            &action,
            &actor_id,
            attributes.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            raw.scope.as_deref().unwrap_or_default(),
            time_nano,
        )
        .with_health_status(raw.health_status.as_deref().unwrap_or_default()))
    }
}
