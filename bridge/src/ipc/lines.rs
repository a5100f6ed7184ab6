//! Command lines out of a byte stream: the one line splitter for the command FIFO and for
//! each connection of the private channel.
//!
//! A line longer than [`MAX_LINE`] is not kept: its bytes are counted and skipped, and it is
//! refused once, when it has ended (its newline, or the end of the stream), so that a raw
//! client that writes it all before it opens the answer FIFO is there to read the refusal.
//! An unfinished line (kept or skipped) that sits idle longer than [`LINE_IDLE`] is dropped,
//! so a writer that stalls or is killed mid-line cannot glue its bytes to, or swallow, the
//! next client's command.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::ipc::protocol::MAX_LINE;

/// How long an unfinished command line may sit before it is dropped.
pub const LINE_IDLE: Duration = Duration::from_secs(1);

/// A buffer emptied with more room than this gives the room back, so one long line does
/// not keep its memory for the life of the stream.
const KEEP: usize = 64 * 1024;

/// One event from a command stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A complete command line, without its newline.
    Line(Vec<u8>),
    /// A line longer than [`MAX_LINE`] has ended; its length. It gets one `ERR`.
    TooLong(usize),
    /// An unfinished line was dropped after sitting idle; its length so far.
    Dropped(usize),
}

/// Splits bytes into command lines, as they are read.
#[derive(Debug)]
pub struct Lines {
    buf: Vec<u8>,
    /// How far `buf` is known to hold no newline: each byte is searched once.
    scanned: usize,
    /// Inside an over-long line: its length so far.
    skipping: Option<usize>,
    /// Events decided while taking bytes, given out before the lines in `buf`.
    ready: VecDeque<Incoming>,
    last_data: Instant,
}

impl Default for Lines {
    fn default() -> Self {
        Lines::new()
    }
}

impl Lines {
    /// An empty splitter.
    pub fn new() -> Lines {
        Lines {
            buf: Vec::new(),
            scanned: 0,
            skipping: None,
            ready: VecDeque::new(),
            last_data: Instant::now(),
        }
    }

    /// Takes bytes read at `now`. An unfinished line idle since before them is dropped first.
    pub fn push(&mut self, data: &[u8], now: Instant) {
        if let Some(dropped) = self.idle(now) {
            self.ready.push_back(dropped);
        }
        self.last_data = now;
        let Some(skipped) = self.skipping else {
            return self.buf.extend_from_slice(data);
        };
        match data.iter().position(|&b| b == b'\n') {
            Some(i) => {
                self.skipping = None;
                self.ready.push_back(Incoming::TooLong(skipped + i));
                self.buf.extend_from_slice(&data[i + 1..]);
            }
            None => self.skipping = Some(skipped + data.len()),
        }
    }

    /// Drops an unfinished line that has sat idle longer than [`LINE_IDLE`] at `now`
    /// (call once the iterator has given every complete line).
    pub fn idle(&mut self, now: Instant) -> Option<Incoming> {
        if self.is_empty() || now.saturating_duration_since(self.last_data) <= LINE_IDLE {
            return None;
        }
        let n = self.skipping.take().unwrap_or(self.buf.len());
        self.forget();
        Some(Incoming::Dropped(n))
    }

    /// The stream ended: an unterminated last line still counts (an over-long one is
    /// refused). Leaves the splitter empty.
    pub fn end(&mut self) -> Option<Incoming> {
        let event = match self.skipping.take() {
            Some(n) => Some(Incoming::TooLong(n)),
            None if self.buf.is_empty() => None,
            None => Some(Incoming::Line(std::mem::take(&mut self.buf))),
        };
        self.clear();
        event
    }

    /// True when no bytes are held or skipped.
    pub fn is_empty(&self) -> bool {
        self.skipping.is_none() && self.buf.is_empty()
    }

    /// True when an event is ready to be taken without more bytes (a whole line, or one
    /// decided while taking bytes): reading more can wait.
    pub fn has_event(&self) -> bool {
        !self.ready.is_empty() || self.buf[self.scanned..].contains(&b'\n')
    }

    /// The bytes of memory held, for the channel's bound.
    pub fn held(&self) -> usize {
        self.buf.capacity()
    }

    /// Forgets everything held.
    pub fn clear(&mut self) {
        self.forget();
        self.skipping = None;
        self.ready.clear();
    }

    /// Empties the buffer; a large one gives its room back.
    fn forget(&mut self) {
        self.buf.clear();
        self.scanned = 0;
        if self.buf.capacity() > KEEP {
            self.buf = Vec::new();
        }
    }

    /// When the last bytes were taken: for an event just given, when its line was complete.
    pub fn received(&self) -> Instant {
        self.last_data
    }
}

/// The events complete in the bytes taken so far, in order.
impl Iterator for Lines {
    type Item = Incoming;

    /// The next event from the bytes taken so far, if one is complete.
    fn next(&mut self) -> Option<Incoming> {
        if let Some(event) = self.ready.pop_front() {
            return Some(event);
        }
        let newline = self.buf[self.scanned..].iter().position(|&b| b == b'\n');
        if let Some(i) = newline.map(|i| i + self.scanned) {
            let mut line: Vec<u8> = self.buf.drain(..=i).collect();
            self.scanned = 0;
            if self.buf.is_empty() {
                self.forget();
            }
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Some(Incoming::Line(line));
        }
        self.scanned = self.buf.len();
        if self.buf.len() > MAX_LINE {
            self.skipping = Some(self.buf.len());
            self.buf = Vec::new();
            self.scanned = 0;
        }
        None
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn all(lines: &mut Lines) -> Vec<Incoming> {
        lines.collect()
    }

    #[test]
    fn lines_crlf_and_pieces() {
        let mut lines = Lines::new();
        let now = Instant::now();
        lines.push(b"READ\r\nWRI", now);
        assert_eq!(all(&mut lines), [Incoming::Line(b"READ".to_vec())]);
        assert!(!lines.is_empty());
        lines.push(b"TE 45\n", now);
        assert_eq!(all(&mut lines), [Incoming::Line(b"WRITE 45".to_vec())]);
        assert!(lines.is_empty());
    }

    #[test]
    fn over_long_line_is_refused_once_when_it_ends() {
        let mut lines = Lines::new();
        let now = Instant::now();
        let chunk = [b'a'; 4096];
        let mut sent = 0;
        while sent <= MAX_LINE + 8192 {
            lines.push(&chunk, now);
            sent += chunk.len();
            assert_eq!(lines.next(), None, "nothing before the line has ended");
        }
        lines.push(b"aa\nREAD\n", now);
        assert_eq!(
            all(&mut lines),
            [
                Incoming::TooLong(sent + 2),
                Incoming::Line(b"READ".to_vec())
            ]
        );
    }

    #[test]
    fn over_long_line_ended_by_the_stream_is_refused() {
        let mut lines = Lines::new();
        lines.push(&vec![b'a'; MAX_LINE + 1], Instant::now());
        assert_eq!(lines.next(), None);
        assert_eq!(lines.end(), Some(Incoming::TooLong(MAX_LINE + 1)));
        assert!(lines.is_empty());
    }

    #[test]
    fn unterminated_last_line_counts_at_the_end() {
        let mut lines = Lines::new();
        lines.push(b"READ", Instant::now());
        assert_eq!(lines.next(), None);
        assert_eq!(lines.end(), Some(Incoming::Line(b"READ".to_vec())));
        assert_eq!(lines.end(), None);
    }

    #[test]
    fn idle_half_line_is_dropped_and_the_next_line_stands_alone() {
        let mut lines = Lines::new();
        let t0 = Instant::now();
        lines.push(b"WRITE 4500", t0);
        assert_eq!(lines.next(), None);
        assert_eq!(lines.idle(t0 + LINE_IDLE), None);
        lines.push(b"READ\n", t0 + LINE_IDLE * 2);
        assert_eq!(
            all(&mut lines),
            [Incoming::Dropped(10), Incoming::Line(b"READ".to_vec())]
        );
    }

    #[test]
    fn idle_skipping_state_expires() {
        let mut lines = Lines::new();
        let t0 = Instant::now();
        lines.push(&vec![b'a'; MAX_LINE + 10], t0);
        assert_eq!(lines.next(), None);
        let later = t0 + LINE_IDLE * 2;
        assert_eq!(lines.idle(later), Some(Incoming::Dropped(MAX_LINE + 10)));
        lines.push(b"READ\n", later);
        assert_eq!(all(&mut lines), [Incoming::Line(b"READ".to_vec())]);
    }

    #[test]
    fn skipping_expires_even_without_an_idle_check() {
        let mut lines = Lines::new();
        let t0 = Instant::now();
        lines.push(&vec![b'a'; MAX_LINE + 10], t0);
        assert_eq!(lines.next(), None);
        lines.push(b"READ\n", t0 + LINE_IDLE * 2);
        assert_eq!(
            all(&mut lines),
            [
                Incoming::Dropped(MAX_LINE + 10),
                Incoming::Line(b"READ".to_vec())
            ]
        );
    }

    #[test]
    fn has_event_says_whether_a_line_waits_without_more_bytes() {
        let mut lines = Lines::new();
        let now = Instant::now();
        lines.push(b"REA", now);
        assert!(!lines.has_event());
        lines.push(b"D\nWRITE", now);
        assert!(lines.has_event());
        assert_eq!(lines.next(), Some(Incoming::Line(b"READ".to_vec())));
        assert!(!lines.has_event(), "only half a line left");
        lines.push(b" 45\n", now + LINE_IDLE * 2);
        assert!(lines.has_event(), "the dropped half line, then the line");
    }

    #[test]
    fn a_long_line_gives_its_room_back_once_taken() {
        let mut lines = Lines::new();
        let now = Instant::now();
        let mut long = vec![b'a'; MAX_LINE - 1];
        long.push(b'\n');
        for chunk in long.chunks(4096) {
            lines.push(chunk, now);
            let _ = lines.next();
        }
        assert!(
            lines.held() <= KEEP,
            "{} bytes held after the line",
            lines.held()
        );
        lines.push(&vec![b'b'; MAX_LINE / 2], now);
        assert_eq!(lines.next(), None);
        assert_eq!(
            lines.idle(now + LINE_IDLE * 2),
            Some(Incoming::Dropped(MAX_LINE / 2))
        );
        assert!(
            lines.held() <= KEEP,
            "{} bytes held after the drop",
            lines.held()
        );
    }
}
