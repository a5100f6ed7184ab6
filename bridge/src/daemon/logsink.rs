//! Where the daemon's log lines go: standard error, without ever blocking the one thread.
//!
//! The server answers every client from one thread, and it logs from that thread. A
//! blocking `write(2)` to a standard error whose reader is alive but not reading (`tunbridge
//! serve 2>&1 | less`, paused; a stalled ssh session) would stop the bridge once the pipe or
//! terminal is full. So the sink never writes to standard error's shared file description
//! in a way that can wait:
//! - a pipe, FIFO or terminal is reopened through `/proc/self/fd` as a description of the
//!   sink's own, non-blocking (the user's descriptor, shared with other processes, keeps
//!   its flags);
//! - a socket gets each piece with `MSG_DONTWAIT`;
//! - a regular file is written as it is (a write to a file does not wait for a reader);
//! - anything else, or a pipe when `/proc` is not there, only while `poll(2)` says it
//!   takes more, in pieces of `PIPE_BUF` (which a pipe with room for one takes whole).
//!
//! A line that cannot be written at once is dropped and counted; the next line written is
//! preceded by one saying how many were. A broken pipe loses lines the same way, and only
//! lines: the record, not the log, is the data of record.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::MsgFlags;
use nix::sys::stat::{fstat, SFlag};
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

impl State {
    /// What goes before the next line: a newline after a line cut short, and the count of
    /// lines dropped. Empty when nothing is owed.
    fn preamble(&self) -> String {
        let mut text = String::new();
        if self.cut {
            text.push('\n');
        }
        if self.dropped > 0 {
            text += &format!(
                "tunbridge: log lines dropped: {} (standard error took no more)\n",
                self.dropped
            );
        }
        text
    }

    /// Counts a line that did not go out whole; part of one leaves the next to start anew.
    fn missed(&mut self, written: Written) {
        self.dropped += 1;
        self.cut |= written == Written::Part;
    }
}

/// How the sink writes to its destination without waiting.
#[derive(Debug)]
enum Way {
    /// Through a non-blocking description of its own (a pipe, FIFO or terminal).
    Own(File),
    /// A socket: `send(2)` with `MSG_DONTWAIT`.
    Socket,
    /// A regular file: plain writes.
    File,
    /// Only while `poll(2)` says it takes more.
    Polled,
}

impl Way {
    /// Chooses how to write to `out` without blocking.
    fn of(out: BorrowedFd<'_>) -> Way {
        let Ok(stat) = fstat(out) else {
            return Way::Polled;
        };
        let kind = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
        if kind == SFlag::S_IFREG {
            return Way::File;
        }
        if kind == SFlag::S_IFSOCK {
            return Way::Socket;
        }
        let own = OpenOptions::new()
            .write(true)
            .custom_flags((OFlag::O_NONBLOCK | OFlag::O_NOCTTY).bits())
            .open(format!("/proc/self/fd/{}", out.as_raw_fd()));
        match own {
            Ok(file) if kind == SFlag::S_IFIFO || kind == SFlag::S_IFCHR => Way::Own(file),
            _ => Way::Polled,
        }
    }
}

/// A log destination for `tracing_subscriber::fmt().with_writer(...)` that never blocks:
/// standard error ([`LogSink::stderr`]), or any descriptor.
#[derive(Debug)]
pub struct LogSink<F = io::Stderr> {
    out: F,
    way: Way,
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
        let way = Way::of(out.as_fd());
        LogSink {
            out,
            way,
            state: Mutex::default(),
        }
    }

    /// Writes one formatted log line, or counts it as dropped.
    fn emit(&self, line: &[u8]) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let preamble = state.preamble();
        if !preamble.is_empty() {
            match self.write_whole(preamble.as_bytes()) {
                Written::All => *state = State::default(),
                missed => return state.missed(missed),
            }
        }
        match self.write_whole(line) {
            Written::All => {}
            missed => state.missed(missed),
        }
    }

    /// At exit: gives the destination up to `limit` to take the count of lines dropped and,
    /// when the last line logged (`last`, the reason the bridge stops) was among them, that
    /// line, so that neither is lost with the process. Returns at once when nothing is owed.
    pub fn finish(&self, last: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.dropped == 0 {
            return;
        }
        // The line before `last` was written whole if `last` was, so `last` is owed.
        let text = state.preamble() + &format!("tunbridge: {last}\n");
        loop {
            match self.write_whole(text.as_bytes()) {
                Written::All => {
                    *state = State::default();
                    return;
                }
                Written::Nothing if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Written::Part | Written::Nothing => return,
            }
        }
    }

    /// Writes `bytes` in pieces while the destination takes them without waiting.
    fn write_whole(&self, bytes: &[u8]) -> Written {
        let mut rest = bytes;
        while !rest.is_empty() {
            let piece = &rest[..rest.len().min(PIECE)];
            match self.write_piece(piece) {
                Ok(n) if n > 0 => rest = &rest[n..],
                Err(Errno::EINTR) => {}
                _ if rest.len() == bytes.len() => return Written::Nothing,
                _ => return Written::Part,
            }
        }
        Written::All
    }

    /// One write that does not wait; `EAGAIN` when the destination takes nothing now.
    fn write_piece(&self, piece: &[u8]) -> nix::Result<usize> {
        let out = self.out.as_fd();
        match &self.way {
            Way::Own(file) => nix::unistd::write(file, piece),
            Way::Socket => nix::sys::socket::send(
                out.as_raw_fd(),
                piece,
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
            ),
            Way::File => nix::unistd::write(out, piece),
            Way::Polled if writable(out) => nix::unistd::write(out, piece),
            Way::Polled => Err(Errno::EAGAIN),
        }
    }
}

/// How much of a line reached the destination.
#[derive(Debug, PartialEq, Eq)]
enum Written {
    All,
    Part,
    Nothing,
}

/// Whether `fd` takes a write now: ready for output, and no error or hang-up.
fn writable(fd: BorrowedFd<'_>) -> bool {
    let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(1) => fds[0].revents().is_some_and(|r| {
            r.contains(PollFlags::POLLOUT) && !r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP)
        }),
        _ => false,
    }
}

/// The writer `tracing` gets for one event: the formatted line arrives in one `write_all`.
impl<F: AsFd> Write for &LogSink<F> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.emit(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a, F: AsFd + 'a> MakeWriter<'a> for LogSink<F> {
    type Writer = &'a LogSink<F>;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::OwnedFd;
    use std::os::unix::net::UnixStream;

    /// A pipe, and a sink on its write end filled to the brim through its own description.
    fn full_pipe() -> (OwnedFd, LogSink<OwnedFd>) {
        let (r, w) = nix::unistd::pipe().unwrap();
        let sink = LogSink::new(w);
        let page = [b'x'; PIECE];
        while sink.write_whole(&page) == Written::All {}
        (r, sink)
    }

    /// Everything the pipe or socket holds now, without waiting for more.
    fn drain(fd: &impl AsFd) -> Vec<u8> {
        let mut file = File::from(fd.as_fd().try_clone_to_owned().unwrap());
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
    fn a_pipe_gets_a_description_of_its_own_and_the_shared_one_keeps_its_flags() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let sink = LogSink::new(w.try_clone().unwrap());
        assert!(matches!(sink.way, Way::Own(_)), "{:?}", sink.way);
        let shared = OFlag::from_bits_truncate(
            nix::fcntl::fcntl(&w, nix::fcntl::FcntlArg::F_GETFL).unwrap(),
        );
        assert!(!shared.contains(OFlag::O_NONBLOCK));
        assert_eq!(sink.write_whole(b"hello\n"), Written::All);
        assert_eq!(drain(&r), b"hello\n");
    }

    #[test]
    fn a_regular_file_is_written_plainly() {
        let dir = crate::testdir::TestDir::new("logsink-file");
        let file = File::create(dir.join("log")).unwrap();
        let sink = LogSink::new(file);
        assert!(matches!(sink.way, Way::File), "{:?}", sink.way);
        sink.make_writer().write_all(b"kept\n").unwrap();
        assert_eq!(std::fs::read(dir.join("log")).unwrap(), b"kept\n");
    }

    #[test]
    fn a_full_pipe_takes_nothing_and_does_not_block() {
        let (r, sink) = full_pipe();
        assert_eq!(sink.write_whole(b"more\n"), Written::Nothing);
        assert!(drain(&r).iter().all(|b| *b == b'x'));
        assert_eq!(sink.write_whole(b"more\n"), Written::All);
        assert_eq!(drain(&r), b"more\n");
    }

    #[test]
    fn a_line_longer_than_the_room_is_cut_not_blocked_on() {
        let (r, sink) = full_pipe();
        File::from(r.try_clone().unwrap())
            .read_exact(&mut [0u8; PIECE])
            .unwrap();
        let long = [b'y'; 3 * PIECE];
        assert_eq!(sink.write_whole(&long), Written::Part);
        let rest = drain(&r);
        assert_eq!(rest.iter().filter(|b| **b == b'y').count(), PIECE);
    }

    #[test]
    fn lines_dropped_while_full_are_counted_on_the_next_line_written() {
        let (r, sink) = full_pipe();
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
        let (r, sink) = full_pipe();
        File::from(r.try_clone().unwrap())
            .read_exact(&mut [0u8; PIECE])
            .unwrap();
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
    fn a_full_socket_takes_nothing_and_does_not_block() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let sink = LogSink::new(ours);
        assert!(matches!(sink.way, Way::Socket), "{:?}", sink.way);
        let line = [b's'; 100];
        let mut sent = 0;
        while sink.write_whole(&line) == Written::All {
            sent += 1;
            assert!(sent < 1_000_000, "the socket never filled");
        }
        sink.make_writer().write_all(b"lost\n").unwrap();
        assert!(drain(&theirs).iter().all(|b| *b == b's'));
        sink.make_writer().write_all(b"kept\n").unwrap();
        assert_eq!(
            String::from_utf8(drain(&theirs)).unwrap(),
            "tunbridge: log lines dropped: 1 (standard error took no more)\nkept\n"
        );
    }

    #[test]
    fn at_exit_the_count_and_the_last_line_get_a_moment_to_go_out() {
        let (r, sink) = full_pipe();
        sink.make_writer()
            .write_all(b"bridge stopped: gone\n")
            .unwrap();
        let reader = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            let mut text = Vec::new();
            File::from(r).read_to_end(&mut text).unwrap();
            text
        });
        sink.finish("bridge stopped: gone", Duration::from_secs(5));
        drop(sink);
        let text = String::from_utf8(reader.join().unwrap()).unwrap();
        assert!(
            text.ends_with("tunbridge: log lines dropped: 1 (standard error took no more)\ntunbridge: bridge stopped: gone\n"),
            "{:?}",
            &text[text.len().saturating_sub(200)..]
        );
    }

    #[test]
    fn at_exit_nothing_owed_returns_at_once() {
        let (_r, w) = nix::unistd::pipe().unwrap();
        let sink = LogSink::new(w);
        let start = Instant::now();
        sink.finish("bridge stopped", Duration::from_secs(5));
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_broken_pipe_takes_nothing() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let sink = LogSink::new(w);
        drop(r);
        assert_eq!(sink.write_whole(b"lost\n"), Written::Nothing);
    }
}
