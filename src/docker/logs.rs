//! A container's last lines of output, for `%%logs%%`: `GET /containers/ID/logs?tail=N`, in
//! the engine's stream format (each frame of output behind an 8-byte header, unless the
//! container has a terminal), cut to the end that fits [`MAX_LOG_BYTES`] and made printable.

use super::{CALL_TIMEOUT, Engine, EngineError, check_status, get, read_body, url_path_segment};

/// The most of a container's last lines `%%logs%%` holds: their end.
pub const MAX_LOG_BYTES: usize = 4096;

impl Engine {
    /// The container's last `lines` lines of standard output and error, as the engine logged
    /// them (each stream's in order; the engine copies the two apart), at most
    /// [`MAX_LOG_BYTES`] of their end; or, in their place, why they cannot be read.
    pub async fn container_logs(&self, id: &str, lines: usize) -> String {
        let path = format!(
            "/v{}/containers/{}/logs?stdout=1&stderr=1&tail={lines}",
            self.api,
            url_path_segment(id)
        );
        let call = async {
            let resp = check_status(&path, self.endpoint.send(get(&path)?).await?).await?;
            read_body(&path, resp.into_body()).await
        };
        let why = match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(body)) => return printable_tail(&output(&body), MAX_LOG_BYTES),
            // The engine's own words: "configured logging driver does not support reading".
            Ok(Err(EngineError::Status { message, .. })) => message,
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("the engine did not answer within {CALL_TIMEOUT:?}"),
        };
        format!("(the container's logs cannot be read: {why})")
    }
}

/// The output without the stream format's frame headers (the stream, three zero bytes, the
/// frame's length big-endian). A body that does not start with one is a terminal's output,
/// as it is; a frame cut short keeps what came.
fn output(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut rest = body;
    while let Some((header, after)) = rest.split_first_chunk::<8>() {
        if !matches!(header, [0..=2, 0, 0, 0, ..]) {
            break;
        }
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let (frame, next) = after.split_at(len.min(after.len()));
        out.extend_from_slice(frame);
        rest = next;
    }
    if rest.len() == body.len() {
        return body.to_vec();
    }
    out.extend_from_slice(rest);
    out
}

/// The end of `bytes` as text, at most `max` bytes of it, from the start of a line where one
/// begins in that end; terminal escape sequences and control characters other than newlines
/// and tabs are left out, and trailing blank lines.
pub(super) fn printable_tail(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len().min(max));
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // CSI (`ESC [ ... final`): colours, cursor moves.
            '\u{1b}' if chars.peek() == Some(&'[') => {
                chars.next();
                while chars
                    .next()
                    .is_some_and(|c| !('\u{40}'..='\u{7e}').contains(&c))
                {}
            }
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    let end = out.trim_end().len();
    out.truncate(end);
    if out.len() <= max {
        return out;
    }
    let mut start = out.len() - max;
    while !out.is_char_boundary(start) {
        start += 1;
    }
    let start = out[start..].find('\n').map_or(start, |i| start + i + 1);
    out[start..].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(stream: u8, text: &str) -> Vec<u8> {
        let mut f = vec![stream, 0, 0, 0];
        f.extend_from_slice(&(text.len() as u32).to_be_bytes());
        f.extend_from_slice(text.as_bytes());
        f
    }

    #[test]
    fn frames_lose_their_headers_and_a_terminals_output_stays_as_it_is() {
        let body = [frame(1, "out 1\n"), frame(2, "err\n"), frame(1, "out 2\n")].concat();
        assert_eq!(output(&body), b"out 1\nerr\nout 2\n");
        assert_eq!(output(b"plain\r\nterminal\r\n"), b"plain\r\nterminal\r\n");
        let cut = [frame(1, "whole\n"), frame(1, "cut short")[..12].to_vec()].concat();
        assert_eq!(output(&cut), b"whole\ncut ");
        assert_eq!(output(b""), b"");
    }

    #[test]
    fn the_tail_is_whole_lines_that_fit_printable() {
        let text = "\u{1b}[31mred\u{1b}[0m alert\u{7}\r\nsecond\tline\n\n";
        assert_eq!(
            printable_tail(text.as_bytes(), 100),
            "red alert\nsecond\tline"
        );
        let many: String = (0..100).map(|i| format!("line {i:03}\n")).collect();
        let tail = printable_tail(many.as_bytes(), 30);
        assert_eq!(tail, "line 097\nline 098\nline 099");
        // One long line: its end, cut at a character.
        let long = "é".repeat(40);
        let tail = printable_tail(long.as_bytes(), 11);
        assert_eq!(tail, "é".repeat(5));
    }
}
