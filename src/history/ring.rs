//! The last events in memory: their lines packed into large chunks rather than one allocation
//! each, so that keeping an event costs a copy of its bytes and nothing more.

use std::collections::VecDeque;

/// A chunk's size: many events each, few allocations; a line longer than this gets a chunk of
/// its own.
const CHUNK_BYTES: usize = 256 * 1024;

/// One event: its engine time and where its line is.
#[derive(Debug, Clone, Copy)]
struct Entry {
    time_nano: i64,
    chunk: u64,
    start: u32,
    len: u32,
}

/// At most `limit` events and about `budget` bytes of lines, the oldest going first.
#[derive(Debug)]
pub struct Ring {
    entries: VecDeque<Entry>,
    chunks: VecDeque<Vec<u8>>,
    /// The id of `chunks[0]`; ids grow by one a chunk.
    first_chunk: u64,
    limit: usize,
    budget: usize,
    /// The chunks' capacity, together.
    bytes: usize,
    /// What the newest chunk has room for.
    room: usize,
    /// Whether an event ever went (past the limit or the budget): until then the ring holds
    /// every event it was given.
    evicted: bool,
    /// The last chunk dropped, kept for the next one: in the steady state no chunk is
    /// allocated (a chunk is past the allocator's mmap threshold, so each new one would be
    /// mapped, faulted in page by page and unmapped again).
    spare: Option<Vec<u8>>,
}

impl Ring {
    pub fn new(limit: usize, budget: usize) -> Self {
        Self {
            entries: VecDeque::with_capacity(limit.min(1 << 16)),
            chunks: VecDeque::new(),
            first_chunk: 0,
            limit,
            budget,
            bytes: 0,
            room: 0,
            evicted: false,
            spare: None,
        }
    }

    pub fn push(&mut self, time_nano: i64, line: &[u8]) {
        self.push_all(line, &[(time_nano, line.len())]);
    }

    /// Keeps several events whose lines lie one after another in `lines`, each given by its
    /// time and where its line ends: those that fit a chunk are copied in one piece, which
    /// writes memory the cache has long let go of far faster than one line at a time.
    pub fn push_all(&mut self, lines: &[u8], events: &[(i64, usize)]) {
        if self.limit == 0 {
            return;
        }
        let (mut i, mut from) = (0, 0);
        while let Some(&(_, first_end)) = events.get(i) {
            // A line has at most MAX_LINE_BYTES (1 MiB), a chunk at most a line's length more
            // than CHUNK_BYTES: offsets fit a u32.
            if self.room < first_end - from {
                self.new_chunk(first_end - from);
            }
            let run = events[i..]
                .iter()
                .take_while(|&&(_, end)| end - from <= self.room)
                .count();
            let to = events[i + run - 1].1;
            let id = self.first_chunk + self.chunks.len() as u64 - 1;
            // new_chunk made one if there was none.
            let Some(chunk) = self.chunks.back_mut() else {
                return;
            };
            let (at, run_from) = (chunk.len(), from);
            chunk.extend_from_slice(&lines[from..to]);
            self.room -= to - from;
            for &(time_nano, end) in &events[i..i + run] {
                self.entries.push_back(Entry {
                    time_nano,
                    chunk: id,
                    start: (at + from - run_from) as u32,
                    len: (end - from) as u32,
                });
                from = end;
                if self.entries.len() > self.limit {
                    self.evicted = true;
                    // The oldest event goes; its chunk too, once no event is left in it.
                    if let Some(gone) = self.entries.pop_front()
                        && self.entries.front().is_some_and(|e| e.chunk != gone.chunk)
                    {
                        self.drop_first_chunk();
                    }
                }
            }
            i += run;
            if self.bytes > self.budget {
                self.over_budget();
            }
        }
    }

    #[cold]
    fn new_chunk(&mut self, at_least: usize) {
        let chunk = match self.spare.take() {
            Some(mut c) if c.capacity() >= at_least => {
                c.clear();
                c
            }
            _ => Vec::with_capacity(CHUNK_BYTES.max(at_least)),
        };
        self.bytes += chunk.capacity();
        self.room = chunk.capacity();
        self.chunks.push_back(chunk);
    }

    /// Drops the oldest chunks, and their events, until the lines fit the budget again (one
    /// chunk stays, whatever its size).
    #[cold]
    fn over_budget(&mut self) {
        while self.bytes > self.budget && self.chunks.len() > 1 {
            self.evicted = true;
            let oldest = self.first_chunk;
            while self.entries.front().is_some_and(|e| e.chunk == oldest) {
                self.entries.pop_front();
            }
            self.drop_first_chunk();
        }
    }

    fn drop_first_chunk(&mut self) {
        if let Some(c) = self.chunks.pop_front() {
            self.bytes -= c.capacity();
            self.first_chunk += 1;
            if c.capacity() == CHUNK_BYTES {
                self.spare = Some(c);
            }
        }
        if self.chunks.is_empty() {
            self.room = 0;
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The memory the lines take (their chunks), in bytes.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether it has let any event go: if not, it holds all it was given.
    pub fn evicted(&self) -> bool {
        self.evicted || self.limit == 0
    }

    /// Every event held, oldest first: (time, line).
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (i64, &[u8])> + '_ {
        self.entries.iter().map(|e| {
            let chunk = &self.chunks[(e.chunk - self.first_chunk) as usize];
            let start = e.start as usize;
            (e.time_nano, &chunk[start..start + e.len as usize])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(r: &Ring) -> Vec<String> {
        r.iter()
            .map(|(_, l)| String::from_utf8_lossy(l).into_owned())
            .collect()
    }

    #[test]
    fn the_newest_events_stay_up_to_the_limit() {
        let mut r = Ring::new(3, usize::MAX);
        for i in 0..5 {
            r.push(i, format!("line {i}").as_bytes());
        }
        assert_eq!(lines(&r), ["line 2", "line 3", "line 4"]);
        assert_eq!(r.iter().next().map(|(t, _)| t), Some(2));
        assert!(r.evicted());
        assert_eq!(r.bytes(), CHUNK_BYTES, "one chunk holds them");
    }

    #[test]
    fn the_byte_budget_drops_whole_chunks_and_their_events() {
        // Lines of 100 KiB: two to a chunk; a budget of two chunks keeps three or four lines.
        let mut r = Ring::new(1000, 2 * CHUNK_BYTES);
        let line = |i: u8| vec![b'a' + i; 100 * 1024];
        for i in 0..10 {
            r.push(i64::from(i), &line(i));
        }
        assert!(r.bytes() <= 2 * CHUNK_BYTES, "{} bytes", r.bytes());
        let held: Vec<i64> = r.iter().map(|(t, _)| t).collect();
        assert_eq!(held, [6, 7, 8, 9]);
        assert!(r.iter().all(|(t, l)| l == line(t as u8).as_slice()));
    }

    /// Lines given many at a time are kept exactly as one at a time would keep them: across
    /// chunk ends, past the limit and the budget, a line longer than a chunk among them.
    #[test]
    fn events_pushed_together_are_kept_as_one_by_one() {
        let sizes = [
            300,
            90_000,
            5,
            120_000,
            400,
            CHUNK_BYTES + 7,
            1,
            70_000,
            250,
            64_000,
        ];
        let line = |i: usize| vec![b'a' + (i % 26) as u8; sizes[i % sizes.len()]];
        for (limit, budget) in [(1000, usize::MAX), (7, usize::MAX), (1000, 3 * CHUNK_BYTES)] {
            for batch in [1, 2, 3, 10] {
                let (mut one, mut many) = (Ring::new(limit, budget), Ring::new(limit, budget));
                let (mut lines, mut events) = (Vec::new(), Vec::new());
                for i in 0..60 {
                    let l = line(i);
                    one.push(i as i64, &l);
                    lines.extend_from_slice(&l);
                    events.push((i as i64, lines.len()));
                    if events.len() == batch {
                        many.push_all(&lines, &events);
                        lines.clear();
                        events.clear();
                    }
                }
                many.push_all(&lines, &events);
                let what = format!("limit {limit}, budget {budget}, {batch} at a time");
                assert!(one.iter().eq(many.iter()), "{what}");
                assert_eq!(one.len(), many.len(), "{what}");
                assert_eq!(one.bytes(), many.bytes(), "{what}");
                assert_eq!(one.evicted(), many.evicted(), "{what}");
            }
        }
    }

    #[test]
    fn a_line_longer_than_a_chunk_gets_one_of_its_own_and_size_zero_keeps_nothing() {
        let mut r = Ring::new(10, usize::MAX);
        let long = vec![b'x'; CHUNK_BYTES + 1];
        r.push(1, b"short");
        r.push(2, &long);
        r.push(3, b"after");
        assert_eq!(r.len(), 3);
        assert!(!r.evicted(), "all it was given");
        assert_eq!(r.iter().nth(1).map(|(_, l)| l.len()), Some(CHUNK_BYTES + 1));
        let mut none = Ring::new(0, usize::MAX);
        none.push(1, b"x");
        assert!(none.is_empty());
        assert_eq!(none.bytes(), 0);
    }
}
