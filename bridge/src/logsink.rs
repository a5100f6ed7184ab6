//! Where the daemon's log lines go: standard error, without ever blocking the one thread.
//!
//! The server answers every client from one thread, and it logs from that thread. A
//! blocking `write(2)` to a standard error whose reader is alive but not reading (`tunbridge
//! serve 2>&1 | less`, paused) would stop the bridge once the pipe is full. So a line is
//! written only while `poll(2)` says standard error takes more, in pieces no longer than
//! `PIPE_BUF` (a pipe with room for one takes it whole, at once); otherwise it is dropped
//! and counted. The next line that can be written is preceded by one saying how many were
//! dropped. A broken pipe loses lines the same way, and only lines: the record, not the
//! log, is the data of record.

use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Mutex;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use tracing_subscriber::fmt::MakeWriter;

/// The longest piece written at once: what a pipe with room takes whole (`PIPE_BUF`).
const PIECE: usize = 4096;

/// What the sink remembers between lines.
#[derive(Debug, Default)]
struct State {
    /// Lines dropped since the last one written.
    dropped: u64,
    /// A line was cut off after part of it was written: the next starts on a new line.
    cut: bool,
}

/// A log destination for `tracing_subscriber::fmt().with_writer(...)` that never blocks:
/// standard error ([`LogSink::stderr`]), or any descriptor.
#[derive(Debug)]
pub struct LogSink<F = io::Stderr> {
    out: F,
    state: Mutex<State>,
}

impl LogSink {
    /// The daemon's standard error.
    pub fn stderr() -> LogSink {
        LogSink::new(io::stderr())
    }
}

impl<F: AsFd> LogSink<F> {
    /// A sink writing to `out`.
    pub fn new(out: F) -> LogSink<F> {
        LogSink {
            out,
            state: Mutex::default(),
        }
    }

    /// Writes one formatted log line, or counts it as dropped.
    fn emit(&self, line: &[u8]) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let fd = self.out.as_fd();
        let mut note = String::new();
        if state.cut {
            note.push('\n');
        }
        if state.dropped > 0 {
            note += &format!(
                "tunbridge: log lines dropped: {} (standard error took no more)\n",
                state.dropped
            );
        }
        if !note.is_empty() {
            match write_whole(fd, note.as_bytes()) {
                Written::All => state.cut = false,
                Written::Part => {
                    state.cut = true;
                    state.dropped += 1;
                    return;
                }
                Written::Nothing => {
                    state.dropped += 1;
                    return;
                }
            }
            state.dropped = 0;
        }
        match write_whole(fd, line) {
            Written::All => {}
            Written::Part => {
                state.cut = true;
                state.dropped += 1;
            }
            Written::Nothing => state.dropped += 1,
        }
    }
}

/// How much of a line reached standard error.
#[derive(Debug, PartialEq, Eq)]
enum Written {
    All,
    Part,
    Nothing,
}

/// Writes `bytes` in pieces while `fd` takes them without blocking.
fn write_whole(fd: BorrowedFd<'_>, bytes: &[u8]) -> Written {
    let mut rest = bytes;
    while !rest.is_empty() {
        let piece = &rest[..rest.len().min(PIECE)];
        let n = match writable(fd) {
            true => nix::unistd::write(fd, piece).unwrap_or(0),
            false => 0,
        };
        if n == 0 {
            return if rest.len() == bytes.len() {
                Written::Nothing
            } else {
                Written::Part
            };
        }
        rest = &rest[n..];
    }
    Written::All
}

/// Whether `fd` takes a write now: readable for output, no error, no hang-up.
fn writable(fd: BorrowedFd<'_>) -> bool {
    let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(1) => fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLOUT) && !r.intersects(PollFlags::POLLERR)),
        _ => false,
    }
}

/// The writer `tracing` gets for one event: the formatted line arrives in one `write_all`.
pub struct Line<'a, F>(&'a LogSink<F>);

impl<F: AsFd> Write for Line<'_, F> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.emit(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a, F: AsFd + 'a> MakeWriter<'a> for LogSink<F> {
    type Writer = Line<'a, F>;

    fn make_writer(&'a self) -> Self::Writer {
        Line(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::OwnedFd;

    /// A pipe whose write end is full: 16 pages, the default size on Linux.
    fn full_pipe() -> (OwnedFd, OwnedFd) {
        let (r, w) = nix::unistd::pipe().unwrap();
        let page = [b'x'; PIECE];
        while write_whole(w.as_fd(), &page) == Written::All {}
        (r, w)
    }

    /// Everything the pipe holds now, without waiting for more.
    fn drain(fd: &OwnedFd) -> Vec<u8> {
        let mut file = std::fs::File::from(fd.try_clone().unwrap());
        let mut out = Vec::new();
        let mut buf = [0u8; PIECE];
        loop {
            let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
            if poll(&mut fds, PollTimeout::ZERO) != Ok(1) {
                return out;
            }
            let n = file.read(&mut buf).unwrap();
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn a_pipe_with_room_takes_the_line_whole() {
        let (r, w) = nix::unistd::pipe().unwrap();
        assert_eq!(write_whole(w.as_fd(), b"hello\n"), Written::All);
        assert_eq!(drain(&r), b"hello\n");
    }

    #[test]
    fn a_full_pipe_takes_nothing_and_does_not_block() {
        let (r, w) = full_pipe();
        assert_eq!(write_whole(w.as_fd(), b"more\n"), Written::Nothing);
        assert!(drain(&r).iter().all(|b| *b == b'x'));
        assert_eq!(write_whole(w.as_fd(), b"more\n"), Written::All);
        assert_eq!(drain(&r), b"more\n");
    }

    #[test]
    fn a_line_longer_than_the_room_is_cut_not_blocked_on() {
        let (r, w) = full_pipe();
        let mut file = std::fs::File::from(r.try_clone().unwrap());
        file.read_exact(&mut [0u8; PIECE]).unwrap();
        let long = [b'y'; 3 * PIECE];
        assert_eq!(write_whole(w.as_fd(), &long), Written::Part);
        let rest = drain(&r);
        assert_eq!(rest.iter().filter(|b| **b == b'y').count(), PIECE);
    }

    #[test]
    fn lines_dropped_while_full_are_counted_on_the_next_line_written() {
        let (r, w) = full_pipe();
        let sink = LogSink::new(w);
        for _ in 0..3 {
            sink.make_writer().write_all(b"lost\n").unwrap();
        }
        assert!(drain(&r).iter().all(|b| *b == b'x'));
        sink.make_writer().write_all(b"kept\n").unwrap();
        assert_eq!(
            String::from_utf8(drain(&r)).unwrap(),
            "tunbridge: log lines dropped: 3 (standard error took no more)\nkept\n"
        );
    }

    #[test]
    fn a_line_cut_short_leaves_the_next_on_a_line_of_its_own() {
        let (r, w) = full_pipe();
        let sink = LogSink::new(w);
        let mut file = std::fs::File::from(r.try_clone().unwrap());
        file.read_exact(&mut [0u8; PIECE]).unwrap();
        let mut long = vec![b'z'; 2 * PIECE];
        long.push(b'\n');
        sink.make_writer().write_all(&long).unwrap();
        assert!(drain(&r).ends_with(&[b'z'; PIECE]));
        sink.make_writer().write_all(b"next\n").unwrap();
        assert_eq!(
            String::from_utf8(drain(&r)).unwrap(),
            "\ntunbridge: log lines dropped: 1 (standard error took no more)\nnext\n"
        );
    }

    #[test]
    fn a_broken_pipe_takes_nothing() {
        let (r, w) = nix::unistd::pipe().unwrap();
        drop(r);
        assert_eq!(write_whole(w.as_fd(), b"lost\n"), Written::Nothing);
    }
}
