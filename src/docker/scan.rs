//! The fast path of [`Event::decode`]: a scanner for the compact JSON every engine writes
//! (`{"Type":"container","Action":"start","Actor":{"ID":...,"Attributes":{...}},...}`), decoding
//! into the event's one buffer: the line itself, where strings without escapes stay in place,
//! followed by the decoded form of those with escapes.
//!
//! Going through serde cost half of the pipeline's time (a visitor call and an owned `String` per
//! field). This scanner accepts only a strict subset of JSON (no whitespace, string or integer
//! values where the event has them, no duplicate fields) and gives up with `None` on anything
//! else, which then goes the general serde way: that path decides every line the scanner is not
//! sure of and words every error. A line the scanner accepts is valid JSON that decodes to the
//! same event both ways: the `decode_and_apply` fuzz target checks exactly that.

use super::event::{Buffers, Event, Parts, Span};

/// The event on `line`, or `None` if the line is not in the compact form this scanner knows.
pub(super) fn scan(line: &str, spare: &mut Buffers) -> Option<Event> {
    let mut on_stack = [0; INDEX_WORDS];
    let mut on_heap = Vec::new();
    let specials = if line.len() <= INDEXED_BYTES {
        &mut on_stack[..]
    } else {
        on_heap.resize(line.len().div_ceil(64), 0);
        &mut on_heap[..]
    };
    index_specials(line.as_bytes(), specials);
    let mut sc = Scanner {
        s: line,
        b: line.as_bytes(),
        i: 0,
        specials,
    };
    // One copy of the line, not one per field: spans of strings without escapes point into it.
    let Buffers {
        mut text,
        mut attributes,
    } = std::mem::take(spare);
    text.reserve(line.len() + line.len() / 4);
    text.push_str(line);
    attributes.reserve(ATTRIBUTES_CAPACITY);
    let mut f = Fields {
        canonical: true,
        // Room for a compose container's labels without growing the list on the way.
        attributes,
        ..Fields::default()
    };
    sc.eat(b'{')?;
    if sc.eat(b'}').is_none() {
        loop {
            match sc.key()? {
                b"Type" => {
                    f.saw(Key::Type);
                    once(&mut f.type_name, sc.string_span(&mut text)?)?;
                }
                b"Action" => {
                    f.saw(Key::Action);
                    once(&mut f.action, sc.string_span(&mut text)?)?;
                }
                b"Actor" => {
                    f.saw(Key::Actor);
                    once(&mut f.actor, ())?;
                    sc.actor(&mut text, &mut f)?;
                }
                b"scope" => {
                    f.saw(Key::Scope);
                    once(&mut f.scope, sc.string_span(&mut text)?)?;
                }
                b"time" => {
                    f.saw(Key::Time);
                    once(&mut f.time, sc.int()?)?;
                }
                b"timeNano" => {
                    f.saw(Key::TimeNano);
                    once(&mut f.time_nano, sc.int()?)?;
                }
                // Podman's health status, beside a bare `health_status` action.
                b"HealthStatus" => {
                    f.canonical = false;
                    once(&mut f.health_status, sc.string_span(&mut text)?)?;
                }
                // The legacy `status`, `id` and `from`, and whatever a later engine adds.
                _ => {
                    f.canonical = false;
                    sc.skip_value()?;
                }
            }
            if sc.eat(b',').is_none() {
                sc.eat(b'}')?;
                break;
            }
        }
    }
    if sc.i != sc.b.len() {
        return None;
    }
    // Missing or empty required fields: the general path says which.
    let type_name = f.type_name.filter(|s| !s.is_empty())?;
    let action = f.action.filter(|s| !s.is_empty())?;
    let time_nano = f
        .time_nano
        .or_else(|| f.time.and_then(|s| s.checked_mul(1_000_000_000)))?;
    // Every field in write_json's order, nothing else, no escapes (nothing decoded onto the
    // end), and `time` what write_json derives: the line is the event's JSON.
    let verbatim = f.canonical
        && f.order == Key::TimeNano as usize + 1
        && text.len() == line.len()
        && f.time_nano.is_some()
        && f.time == Some(time_nano.div_euclid(1_000_000_000));
    Some(Event::from_parts(Parts {
        text,
        type_name,
        action,
        actor_id: f.actor_id.unwrap_or_default(),
        scope: f.scope.unwrap_or_default(),
        health_status: f.health_status.unwrap_or_default(),
        attributes: f.attributes,
        time_nano,
        // The line's own strings had no escapes; decoded ones come after it.
        plain_until: line.len(),
        verbatim,
    }))
}

/// Attributes an event's list has room for before it grows.
const ATTRIBUTES_CAPACITY: usize = 16;

/// The keys the scanner reads, in the order [`Event::write_json`] writes them (the actor's
/// among them).
#[derive(Clone, Copy)]
enum Key {
    Type,
    Action,
    Actor,
    Id,
    Attributes,
    Scope,
    Time,
    TimeNano,
}

#[derive(Default)]
struct Fields {
    type_name: Option<Span>,
    action: Option<Span>,
    actor: Option<()>,
    actor_id: Option<Span>,
    attributes_seen: Option<()>,
    attributes: Vec<(Span, Span)>,
    scope: Option<Span>,
    health_status: Option<Span>,
    time: Option<i64>,
    time_nano: Option<i64>,
    /// The keys so far are the first `order` [`Key`]s, in order.
    canonical: bool,
    order: usize,
}

impl Fields {
    fn saw(&mut self, key: Key) {
        if self.canonical && self.order == key as usize {
            self.order += 1;
        } else {
            self.canonical = false;
        }
    }
}

/// Sets a field seen for the first time; a second sighting is serde's "duplicate field" error,
/// left to the general path.
fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    match slot {
        Some(_) => None,
        None => {
            *slot = Some(value);
            Some(())
        }
    }
}

/// Lines up to this long are indexed on the stack (nearly all: an event of a compose
/// container, its labels and all, is about 1.5 KiB); longer ones on the heap.
const INDEXED_BYTES: usize = 2048;
const INDEX_WORDS: usize = INDEXED_BYTES / 64;

/// Marks in `words` (a bit a byte) where `line`'s quotes, backslashes and control characters
/// are: what ends a plain run in a JSON string.
///
/// Searching for each string's end on its own (8 bytes at a time) cost about 70 instructions a
/// string, most of them in setting up and ending the search, and a branch the processor could
/// not foresee. This pass takes the line 16 bytes at a time with SIMD (through `wide`, which
/// picks SSE2 or NEON at compile time: no `unsafe` here), and a string's end is then the next
/// bit.
fn index_specials(line: &[u8], words: &mut [u64]) {
    let (blocks, rest) = line.as_chunks::<64>();
    for (word, block) in words.iter_mut().zip(blocks) {
        *word = block_specials(block);
    }
    if !rest.is_empty() {
        // Padded with a byte that is not special.
        let mut block = [b'a'; 64];
        block[..rest.len()].copy_from_slice(rest);
        words[blocks.len()] = block_specials(&block);
    }
}

fn block_specials(block: &[u8; 64]) -> u64 {
    use wide::u8x16;
    let (chunks, _) = block.as_chunks::<16>();
    let mut bits = 0;
    for (j, chunk) in chunks.iter().enumerate() {
        let v = u8x16::new(*chunk);
        let quote = v.simd_eq(u8x16::splat(b'"'));
        let backslash = v.simd_eq(u8x16::splat(b'\\'));
        // Below 0x20: where the larger of the byte and 0x1f is 0x1f.
        let control = v.max(u8x16::splat(0x1f)).simd_eq(u8x16::splat(0x1f));
        let mask = (quote | backslash | control).to_bitmask();
        bits |= u64::from(mask) << (j * 16);
    }
    bits
}

/// The value of at most 19 ASCII digits, eight at a time: a digit at a time was a chain of a
/// multiplication and an overflow check per digit, 29 of them in an event's two times.
fn decimal(digits: &[u8]) -> u64 {
    let (eights, rest) = digits.as_chunks::<8>();
    let mut v = 0;
    for eight in eights {
        v = v * 100_000_000 + eight_digits(*eight);
    }
    for d in rest {
        v = v * 10 + u64::from(d - b'0');
    }
    v
}

/// Whether all eight bytes are ASCII digits: each byte's high half is 3, and still is with 6
/// added (which no byte from `0x30` to `0x3f` carries out of).
fn all_digits(eight: [u8; 8]) -> bool {
    const HIGH: u64 = 0xf0f0_f0f0_f0f0_f0f0;
    const THREES: u64 = 0x3030_3030_3030_3030;
    let v = u64::from_le_bytes(eight);
    v & HIGH == THREES && (v + 0x0606_0606_0606_0606) & HIGH == THREES
}

/// Eight ASCII digits, first the most significant, as one number: pairs, then fours, then
/// the eight, each step a multiplication of all lanes at once.
fn eight_digits(eight: [u8; 8]) -> u64 {
    let v = u64::from_le_bytes(eight) - 0x3030_3030_3030_3030;
    // Each byte pair (low byte the higher digit): the pair's value in the low byte.
    let v = (v * 10 + (v >> 8)) & 0x00ff_00ff_00ff_00ff;
    // Each 16-bit pair of pairs: its four digits' value.
    let v = (v * 100 + (v >> 16)) & 0x0000_ffff_0000_ffff;
    (v * 10_000 + (v >> 32)) & 0xffff_ffff
}

struct Scanner<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    /// The line's specials (see [`index_specials`]).
    specials: &'a [u64],
}

impl<'a> Scanner<'a> {
    /// Where the first quote, backslash or control character at or after `from` is.
    #[inline]
    fn next_special(&self, from: usize) -> Option<usize> {
        let mut w = from / 64;
        // The bits from `from` on.
        let mut bits = self.specials.get(w)? & (u64::MAX << (from % 64));
        while bits == 0 {
            w += 1;
            bits = *self.specials.get(w)?;
        }
        // The padding is not special: the bit is in the line.
        Some(w * 64 + bits.trailing_zeros() as usize)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.b
            .get(self.i..)?
            .starts_with(word)
            .then(|| self.i += word.len())
    }

    /// A key without escapes (keys with escapes are the general path's), and its colon: its
    /// bytes, which are only compared with the keys the scanner knows.
    fn key(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.i;
        let end = self.next_special(start)?;
        if self.b[end] != b'"' {
            return None;
        }
        self.i = end + 1;
        self.eat(b':')?;
        Some(&self.b[start..end])
    }

    /// A string: its place in `text`, which starts with the line. One with escapes is decoded
    /// onto the end of `text`.
    #[inline(always)]
    fn string_span(&mut self, text: &mut String) -> Option<Span> {
        if self.b.get(self.i) == Some(&b'"') {
            let start = self.i + 1;
            let end = self.next_special(start)?;
            if self.b[end] == b'"' {
                self.i = end + 1;
                return Some(Span::new(start, end));
            }
        }
        let start = text.len();
        self.string(Some(text))?;
        Some(Span::new(start, text.len()))
    }

    /// A string, decoded into `out` (or only checked, without `out`).
    fn string(&mut self, mut out: Option<&mut String>) -> Option<()> {
        self.eat(b'"')?;
        loop {
            let end = self.next_special(self.i)?;
            let stop = self.b[end];
            if stop < 0x20 {
                return None;
            }
            if let Some(out) = out.as_deref_mut() {
                // Both ends are at ASCII bytes (a quote, a backslash, the end of an escape).
                out.push_str(self.s.get(self.i..end)?);
            }
            self.i = end + 1;
            if stop == b'"' {
                return Some(());
            }
            let c = self.escape()?;
            if let Some(out) = out.as_deref_mut() {
                out.push(c);
            }
        }
    }

    /// The character an escape (after its backslash) stands for.
    fn escape(&mut self) -> Option<char> {
        let e = *self.b.get(self.i)?;
        self.i += 1;
        Some(match e {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            // Go writes `<`, `>` and `&` as `\u003c`, `\u003e`, `\u0026`.
            b'u' => {
                let hi = self.hex4()?;
                if (0xD800..0xDC00).contains(&hi) {
                    self.literal(b"\\u")?;
                    let lo = self.hex4()?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return None;
                    }
                    char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))?
                } else {
                    // A lone low surrogate is no character: None.
                    char::from_u32(hi)?
                }
            }
            _ => return None,
        })
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.b.get(self.i..self.i + 4)?;
        let mut v = 0;
        for d in digits {
            v = v * 16 + char::from(*d).to_digit(16)?;
        }
        self.i += 4;
        Some(v)
    }

    /// An integer that fits an i64, in JSON's form (no leading zeros, no fraction or exponent).
    fn int(&mut self) -> Option<i64> {
        let negative = self.eat(b'-').is_some();
        let start = self.i;
        let rest = &self.b[start..];
        let mut digits = 0;
        while let Some(eight) = rest[digits..].first_chunk::<8>()
            && all_digits(*eight)
        {
            digits += 8;
        }
        digits += rest[digits..]
            .iter()
            .take_while(|d| d.is_ascii_digit())
            .count();
        // `-0` is a float to serde: the general path's to refuse (below). An i64 has at most
        // 19 digits, and 19 digits fit a u64 whatever they are.
        if digits == 0 || digits > 19 || (digits > 1 && self.b[start] == b'0') {
            return None;
        }
        self.i += digits;
        if matches!(self.b.get(self.i), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        let v = i64::try_from(decimal(&self.b[start..self.i])).ok()?;
        if negative && v == 0 {
            return None;
        }
        Some(if negative { -v } else { v })
    }

    /// A value we do not read: a string, an integer, `null`, `true` or `false`.
    fn skip_value(&mut self) -> Option<()> {
        match self.b.get(self.i)? {
            b'"' => self.string(None),
            b'-' | b'0'..=b'9' => self.int().map(drop),
            b'n' => self.literal(b"null"),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            _ => None,
        }
    }

    /// `{"ID":"...","Attributes":{"k":"v",...}}`.
    fn actor(&mut self, text: &mut String, f: &mut Fields) -> Option<()> {
        self.eat(b'{')?;
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            match self.key()? {
                b"ID" => {
                    f.saw(Key::Id);
                    once(&mut f.actor_id, self.string_span(text)?)?;
                }
                b"Attributes" => {
                    f.saw(Key::Attributes);
                    once(&mut f.attributes_seen, ())?;
                    self.attributes(text, &mut f.attributes)?;
                }
                _ => {
                    f.canonical = false;
                    self.skip_value()?;
                }
            }
            if self.eat(b',').is_none() {
                return self.eat(b'}');
            }
        }
    }

    /// An object of strings, its pairs kept in order (duplicates too, as the general path does).
    fn attributes(&mut self, text: &mut String, out: &mut Vec<(Span, Span)>) -> Option<()> {
        self.eat(b'{')?;
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            let key = self.string_span(text)?;
            self.eat(b':')?;
            let value = self.string_span(text)?;
            out.push((key, value));
            if self.eat(b',').is_none() {
                return self.eat(b'}');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(
        line: &str,
    ) -> (
        Option<Event>,
        Result<Event, crate::docker::event::DecodeError>,
    ) {
        (
            scan(line, &mut Buffers::default()),
            Event::decode_general(line),
        )
    }

    /// Integers of every length, at the edges of an i64, as serde reads them (or left to
    /// serde, which refuses them, but for i64::MIN).
    #[test]
    fn integers_of_every_length_are_read_as_serde_reads_them() {
        let mut values: Vec<String> = (1..=20)
            .flat_map(|n| {
                [
                    "1".repeat(n),
                    "9".repeat(n),
                    format!("1{}", "0".repeat(n - 1)),
                ]
            })
            .collect();
        for v in [
            i64::MAX.to_string(),
            (i64::MAX as u64 + 1).to_string(),
            "0".into(),
            "07".into(),
            "12345678".into(),
            "123456789".into(),
        ] {
            values.push(v);
        }
        for v in values {
            for sign in ["", "-"] {
                let line = format!(
                    r#"{{"Type":"container","Action":"start","Actor":{{"ID":"c"}},"timeNano":{sign}{v},"n":{sign}{v}}}"#
                );
                let (fast, general) = both(&line);
                match fast {
                    Some(fast) => assert_eq!(Ok(fast), general, "{line}"),
                    // i64::MIN is the one the scanner leaves to serde though serde takes it.
                    None => assert!(
                        general.is_err() || format!("{sign}{v}") == i64::MIN.to_string(),
                        "{line}"
                    ),
                }
            }
        }
        assert_eq!(decimal(b"1700000000123456789"), 1_700_000_000_123_456_789);
        assert_eq!(eight_digits(*b"01234567"), 1_234_567);
        assert!(all_digits(*b"01234589"));
        for bad in [b'/', b':', b'?', b'@', b' ', 0x80, 0xb0, 0xf9] {
            for at in 0..8 {
                let mut eight = *b"01234567";
                eight[at] = bad;
                assert!(!all_digits(eight), "{bad:#x} at {at}");
            }
        }
    }

    /// Lines the scanner takes: the same event as the general path.
    #[test]
    fn compact_engine_lines_decode_as_serde_decodes_them() {
        for line in [
            r#"{"status":"die","id":"abc","from":"busybox","Type":"container","Action":"die","Actor":{"ID":"abc","Attributes":{"exitCode":"1","image":"busybox","name":"web"}},"scope":"local","time":1700000000,"timeNano":1700000000123456789}"#,
            r#"{"Type":"container","Action":"exec_start: /bin/sh -c \"curl -f http://x/ \u0026\u0026 true\"","Actor":{"ID":"abc","Attributes":{"name":"caf\u00e9 \ud83d\ude00\/\t"}},"scope":"local","time":1,"timeNano":2}"#,
            r#"{"Type":"image","Action":"pull","Actor":{"ID":"x"},"time":5}"#,
            r#"{"Type":"network","Action":"connect","Actor":{},"time":0,"extra":null,"flag":true,"n":-12}"#,
            r#"{"Type":"volume","Action":"mount","Actor":{"ID":"v","Attributes":{},"Other":"x"},"time":0}"#,
            r#"{"Type":"container","Action":"start","Actor":{"Attributes":{"a":"1","a":"2"}},"time":1}"#,
        ] {
            let (fast, general) = both(line);
            let (fast, general) = (fast.expect(line), general.expect(line));
            assert_eq!(fast, general, "{line}");
            // Written back as JSON, the same text, though the fast path skips escaping the
            // strings that had no escapes.
            let json = |e: &Event| {
                let mut out = String::new();
                e.write_json(&mut out);
                out
            };
            assert_eq!(json(&fast), json(&general), "{line}");
        }
    }

    /// Wherever a string's end, an escape or a control character falls against the 64-byte
    /// blocks of the map (and past the stack's, in a line of many kilobytes), the scanner reads
    /// the line as serde does, or leaves it to serde.
    #[test]
    fn the_specials_map_finds_ends_escapes_and_control_characters_anywhere() {
        for pad in (0..140).chain([2040, 2100, 5000]) {
            let value = "v".repeat(pad);
            for tail in ["", r#"\""#, r"\\x", r"\u00e9", r"\u0001", r"\t", "\u{1}"] {
                let line = format!(
                    r#"{{"Type":"container","Action":"start","Actor":{{"ID":"c","Attributes":{{"k":"{value}{tail}","name":"{value}"}}}},"time":1}}"#
                );
                let (fast, general) = both(&line);
                match fast {
                    Some(fast) => assert_eq!(Ok(fast), general, "{pad} {tail:?}"),
                    // A raw control character: not JSON; serde says so.
                    None => assert!(general.is_err(), "{pad} {tail:?}"),
                }
            }
        }
    }

    /// An Engine 29 line is its own payload; anything else is written field by field.
    #[test]
    fn a_line_in_the_payload_form_is_its_own_json() {
        let json = |line: &str| {
            let mut out = String::new();
            scan(line, &mut Buffers::default())
                .expect(line)
                .write_json(&mut out);
            out
        };
        let canonical = r#"{"Type":"container","Action":"die","Actor":{"ID":"abc","Attributes":{"exitCode":"1","name":"web"}},"scope":"local","time":1700000000,"timeNano":1700000000123456789}"#;
        assert!(
            scan(canonical, &mut Buffers::default())
                .expect("scans")
                .verbatim
        );
        assert_eq!(json(canonical), canonical);
        for line in [
            // Legacy fields, another order, a `time` that is not timeNano's, an escape.
            r#"{"status":"die","Type":"container","Action":"die","Actor":{"ID":"abc","Attributes":{}},"scope":"local","time":1700000000,"timeNano":1700000000123456789}"#,
            r#"{"Action":"die","Type":"container","Actor":{"ID":"abc","Attributes":{}},"scope":"local","time":1700000000,"timeNano":1700000000123456789}"#,
            r#"{"Type":"container","Action":"die","Actor":{"ID":"abc","Attributes":{}},"scope":"local","time":1,"timeNano":1700000000123456789}"#,
            r#"{"Type":"container","Action":"d\u0069e","Actor":{"ID":"abc","Attributes":{}},"scope":"local","time":1700000000,"timeNano":1700000000123456789}"#,
        ] {
            assert!(
                !scan(line, &mut Buffers::default()).expect(line).verbatim,
                "{line}"
            );
            assert_eq!(
                json(line),
                canonical
                    .replace(r#"{"exitCode":"1","name":"web"}"#, "{}")
                    .replace("\"time\":1,", "\"time\":1700000000,"),
                "{line}"
            );
        }
    }

    /// Lines the scanner leaves to the general path: errors, and JSON it does not know.
    #[test]
    fn anything_unusual_goes_the_general_way() {
        for line in [
            r#"{"Type":"container","Action":"start","time":1,}"#,
            r#"{"Type":"container","Action":"start","time":1} "#,
            r#"{ "Type":"container","Action":"start","time":1}"#,
            r#"{"Type":"container","Type":"image","Action":"start","time":1}"#,
            r#"{"Type":"container","Action":"start","time":01}"#,
            r#"{"Type":"container","Action":"start","time":1.5}"#,
            r#"{"Type":"container","Action":"start","time":-0}"#,
            r#"{"Type":"container","Action":"start","time":99999999999999999999}"#,
            r#"{"Type":null,"Action":"start","time":1}"#,
            r#"{"Type":"","Action":"start","time":1}"#,
            r#"{"Action":"start","time":1}"#,
            r#"{"Type":"container","Action":"start"}"#,
            r#"{"Typ\u0065":"container","Action":"start","time":1}"#,
            r#"{"Type":"container","Action":"\ud800","time":1}"#,
            r#"{"Type":"container","Action":"\x","time":1}"#,
            "{\"Type\":\"contai\tner\",\"Action\":\"start\",\"time\":1}",
            r#"{"Type":"container","Action":"start","Actor":null,"time":1}"#,
            r#"{"Type":"container","Action":"start","Actor":{"Attributes":{"a":1}},"time":1}"#,
            r#"{"Type":"container","Action":"start","x":[1],"time":1}"#,
            r#"["container","start"]"#,
            r#"{"Type":"container","Action":"start","time":1"#,
        ] {
            assert_eq!(scan(line, &mut Buffers::default()), None, "{line}");
        }
    }
}
