//! JSON strings, fast: where a plain run of a string ends (for the event scanner) and how to
//! write one escaped (for payloads and the `|json` filter). Both find the next quote, backslash
//! or control character eight bytes at a time.

use std::fmt::Write;

/// Where a plain run ends: the first quote, backslash or control character (which JSON forbids
/// raw in strings). Most strings here are 5 to 64 bytes, too short for `memchr`'s SIMD set-up
/// to pay.
#[inline]
pub fn special(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let quote = x ^ (ONES * u64::from(b'"'));
        let backslash = x ^ (ONES * u64::from(b'\\'));
        // The classic "has a zero byte" and "has a byte below n" tests: exact at the lowest
        // match, which is the one taken (a borrow only spreads upward from a true match).
        let hits = ((quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (x.wrapping_sub(ONES * 0x20) & !x))
            & HIGH;
        if hits != 0 {
            return Some(at + hits.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|b| matches!(b, b'"' | b'\\' | 0..=0x1f))
        .map(|i| at + i)
}

/// Appends `s` with what JSON requires escaped escaped (without the quotes around it).
pub fn push_escaped(out: &mut String, s: &str) {
    let mut rest = s;
    while let Some(n) = special(rest.as_bytes()) {
        // `n` is at an ASCII byte: a character boundary on both sides.
        let (plain, tail) = rest.split_at(n);
        out.push_str(plain);
        match tail.as_bytes()[0] {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            c => {
                let _ = write!(out, "\\u{c:04x}");
            }
        }
        rest = &tail[1..];
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_finds_the_first_quote_backslash_or_control_byte() {
        let naive = |b: &[u8]| b.iter().position(|c| matches!(c, b'"' | b'\\' | 0..=0x1f));
        for len in 0..20 {
            for at in 0..len {
                for byte in 0..=255u8 {
                    // Every byte at every place, after plain text and before another hit.
                    let mut buf = vec![b'a'; len];
                    buf[at] = byte;
                    if at + 1 < len {
                        buf[at + 1] = b'"';
                    }
                    assert_eq!(special(&buf), naive(&buf), "{buf:?}");
                    // And after bytes just above the hits (a borrow must not fake one).
                    buf[..at].fill(0x21);
                    assert_eq!(special(&buf), naive(&buf), "{buf:?}");
                    buf[..at].fill(0x5d);
                    assert_eq!(special(&buf), naive(&buf), "{buf:?}");
                }
            }
        }
    }

    #[test]
    fn escaped_strings_read_back_as_themselves() {
        for s in [
            "",
            "plain",
            "web; rm -rf / \"x\"",
            "back\\slash and / slash",
            "tab\tnew\nline\rbell\u{7}nul\u{0}",
            "café 😀 <&> long enough to take the eight-byte path twice over",
        ] {
            let mut out = String::from("\"");
            push_escaped(&mut out, s);
            out.push('"');
            assert_eq!(serde_json::from_str::<String>(&out).expect(&out), s);
        }
    }
}
