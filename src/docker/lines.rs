//! Splitting a byte stream into event lines: the live stream's frames and replay's reads alike.
//!
//! Lines are handed over where they lie in the chunk; only a line cut by the end of a chunk is
//! copied, to be completed by the next one. A line longer than [`MAX_LINE_BYTES`] is reported
//! once and skipped up to its newline, so that memory stays bounded whatever the input.

/// The longest event line we accept. Longer ones (no engine sends them) are counted as decode
/// errors and skipped up to the next newline, keeping memory bounded.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// The record separator that starts each record of an RFC 7464 JSON text sequence
/// (`application/json-seq`, which engines from 29 on can answer `GET /events` in).
const RECORD_SEPARATOR: u8 = 0x1E;

/// The record on a line: without surrounding whitespace, nor the record separator an
/// `application/json-seq` stream puts before it, so that every framing an engine may choose
/// gives the same bytes (and the same dedupe key).
pub fn record(line: &[u8]) -> &[u8] {
    let line = line.trim_ascii();
    match line.split_first() {
        Some((&RECORD_SEPARATOR, rest)) => rest.trim_ascii(),
        _ => line,
    }
}

/// What [`Lines`] hands over.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// A whole line, without its newline.
    Line(&'a [u8]),
    /// A line past [`MAX_LINE_BYTES`], skipped.
    TooLong,
}

/// Splits a byte stream into lines of at most [`MAX_LINE_BYTES`].
#[derive(Default)]
pub struct Lines {
    /// The start of a line cut by the end of the last chunk.
    partial: Vec<u8>,
    /// Skipping the rest of an overlong line.
    skipping: bool,
}

impl Lines {
    /// Feeds a chunk; calls `each` for each complete line and once for each overlong one.
    pub fn feed(&mut self, chunk: &[u8], mut each: impl FnMut(Piece<'_>)) {
        let mut rest = chunk;
        while let Some(n) = memchr::memchr(b'\n', rest) {
            let piece = &rest[..n];
            rest = &rest[n + 1..];
            if std::mem::take(&mut self.skipping) {
                continue;
            }
            if self.partial.is_empty() {
                each(Self::one(piece));
            } else {
                self.partial.extend_from_slice(piece);
                each(Self::one(&self.partial));
                self.partial.clear();
            }
        }
        if !self.skipping && !rest.is_empty() {
            self.partial.extend_from_slice(rest);
            if self.partial.len() > MAX_LINE_BYTES {
                each(Piece::TooLong);
                self.skipping = true;
                self.partial.clear();
            }
        }
    }

    /// The end of the input ends its last line, if it has one without a newline.
    pub fn finish(&mut self, mut each: impl FnMut(Piece<'_>)) {
        if !self.skipping && !self.partial.is_empty() {
            each(Self::one(&self.partial));
        }
        self.reset();
    }

    /// Forgets a partial line (the connection it came from is gone).
    pub fn reset(&mut self) {
        self.partial.clear();
        self.skipping = false;
    }

    fn one(piece: &[u8]) -> Piece<'_> {
        if piece.len() > MAX_LINE_BYTES {
            Piece::TooLong
        } else {
            Piece::Line(piece)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines fed, and how many were too long.
    #[derive(Default)]
    struct Got(Vec<Vec<u8>>, usize);

    impl Got {
        fn take(&mut self, piece: Piece<'_>) {
            match piece {
                Piece::Line(x) => self.0.push(x.to_vec()),
                Piece::TooLong => self.1 += 1,
            }
        }
    }

    #[test]
    fn a_record_is_the_line_without_its_separator_or_whitespace() {
        assert_eq!(record(b"\x1e{\"a\":1}\r"), b"{\"a\":1}");
        assert_eq!(record(b" {\"a\":1}\n"), b"{\"a\":1}");
        assert_eq!(record(b"\x1e"), b"");
        // Only one leading separator is framing; anything else is left for the decoder to refuse.
        assert_eq!(record(b"\x1e\x1e{}"), b"\x1e{}");
    }

    #[test]
    fn lines_split_across_chunks_and_overlong_ones_are_skipped() {
        let mut l = Lines::default();
        let mut got = Got::default();
        l.feed(b"one\ntw", |p| got.take(p));
        l.feed(b"o\n", |p| got.take(p));
        let big = vec![b'x'; MAX_LINE_BYTES + 1];
        l.feed(&big, |p| got.take(p));
        l.feed(b"more of it\nthree\n", |p| got.take(p));
        assert_eq!(got.0, [b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]);
        assert_eq!(got.1, 1);
    }

    /// The same input whatever the chunks: an overlong line whole in one chunk or cut across
    /// many, a blank line, and a last line without its newline.
    #[test]
    fn the_same_lines_whatever_the_chunks() {
        let input = format!(
            "a\n\n{}\nb\n{}x\nc",
            "y".repeat(MAX_LINE_BYTES + 5),
            "z".repeat(MAX_LINE_BYTES)
        );
        for size in [1, 7, 4096, 1 << 17, input.len()] {
            let mut l = Lines::default();
            let mut got = Got::default();
            for chunk in input.as_bytes().chunks(size) {
                l.feed(chunk, |p| got.take(p));
            }
            l.finish(|p| got.take(p));
            assert_eq!(
                got.0,
                [b"a".to_vec(), b"".to_vec(), b"b".to_vec(), b"c".to_vec()],
                "chunks of {size}"
            );
            assert_eq!(got.1, 2, "chunks of {size}");
        }
    }
}
