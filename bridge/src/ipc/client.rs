//! The client: one exchange with a running bridge.
//!
//! `tunbridge read` and `tunbridge write <hex>` exist so that an agent whose shell
//! commands are checked one by one (Claude Code's default permission mode) can be
//! allowed exactly these two commands. They speak over the bridge's private channel (a
//! Unix socket beside the FIFOs, see [`crate::ipc::channel`]): a connection of their own, so
//! their answer cannot reach anyone else, whatever other clients do, and the bridge sees
//! at once when one goes away. They wait as long as the bridge's read timeout, which the
//! bridge names in its greeting. [`Client::exchange_fifo`] speaks the shared FIFOs
//! instead, as a raw client does, for bridges without the channel (the Python helper in
//! the benchmarks); its exchanges are serialized with a lock on the answer FIFO.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::ipc::channel::{parse_greeting, socket_path};
use crate::ipc::fifo::{wait, CHUNK};
use crate::ipc::protocol::MAX_LINE;

/// How long the bridge may take to greet a new connection.
const GREETING_WAIT: Duration = Duration::from_secs(10);
/// Added to the bridge's read timeout: the longest an answer can take on its way.
const MARGIN: Duration = Duration::from_secs(5);
/// How long [`Client::exchange_fifo`] waits when not told: over the default read timeout.
const FIFO_WAIT: Duration = Duration::from_secs(40);
/// The longest answer line kept: longer than any packet's hex and any `ERR` line.
const MAX_ANSWER: usize = 2 * MAX_LINE;

/// Why an exchange failed (not an `ERR` answer: those are answers).
#[derive(Debug)]
pub enum ClientError {
    /// The FIFO or socket is not there: no bridge has been started on it.
    NoFifo(PathBuf),
    /// Nobody reads the command FIFO, or listens on the socket: the bridge is not running.
    NoBridge(PathBuf),
    /// Another client held the lock for too long.
    Busy,
    /// No answer came in time.
    NoAnswer(Duration),
    /// The bridge closed the connection without an answer (it is stopping).
    HungUp,
    /// The first line on the connection was not the bridge's greeting.
    NotABridge(String),
    /// An answer line longer than any the bridge sends.
    TooLong,
    /// The bridge refused the connection, with its one-line reason (`ERR too many clients
    /// connected`: every one of its connections has a command under way).
    Refused(String),
    /// A system call failed.
    Io {
        step: &'static str,
        source: io::Error,
    },
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoFifo(p) => write!(
                f,
                "{} does not exist: is `tunbridge serve` running?",
                p.display()
            ),
            Self::NoBridge(p) => write!(
                f,
                "no bridge is serving {}: is `tunbridge serve` running?",
                p.display()
            ),
            Self::Busy => write!(f, "another client kept the bridge busy for too long"),
            Self::NoAnswer(d) => write!(f, "no answer from the bridge within {} s", d.as_secs()),
            Self::HungUp => write!(f, "the bridge closed the connection without an answer"),
            Self::NotABridge(l) => write!(f, "not a bridge's greeting: {:?}", clip(l)),
            Self::TooLong => write!(f, "the answer is longer than any the bridge sends"),
            Self::Refused(l) => write!(f, "the bridge refused the connection: {l}"),
            Self::Io { step, source } => write!(f, "{step}: {source}"),
        }
    }
}

impl std::error::Error for ClientError {}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Where the bridge listens and how long to wait for it.
#[derive(Debug, Clone)]
pub struct Client {
    /// Command FIFO path; the channel's socket is beside it ([`socket_path`]).
    pub cmd_fifo: PathBuf,
    /// Answer FIFO path (for [`Client::exchange_fifo`]).
    pub resp_fifo: PathBuf,
    /// Longest wait for the answer; `None`: the bridge's read timeout plus a margin.
    pub timeout: Option<Duration>,
}

impl Client {
    /// A client of the bridge on these FIFOs that waits as long as the bridge says.
    pub fn new(cmd_fifo: impl Into<PathBuf>, resp_fifo: impl Into<PathBuf>) -> Client {
        Client {
            cmd_fifo: cmd_fifo.into(),
            resp_fifo: resp_fifo.into(),
            timeout: None,
        }
    }

    /// The private channel's socket path.
    pub fn socket(&self) -> PathBuf {
        socket_path(&self.cmd_fifo)
    }

    /// Whether the bridge offers the private channel (its socket exists).
    pub fn has_channel(&self) -> bool {
        self.socket().exists()
    }

    /// Sends one command line on a connection of its own and returns the one answer
    /// line, without its newline.
    pub fn exchange(&self, command: &str) -> Result<String, ClientError> {
        let mut answers = self.exchange_all(&[command]).map_err(|u| u.error)?;
        Ok(answers.remove(0))
    }

    /// Sends command lines on one connection of its own and returns their answer lines,
    /// in order; or the answers that came and why the rest did not. A bridge that refuses
    /// the connection answers with one `ERR` line, which is then the only answer.
    pub fn exchange_all(&self, commands: &[&str]) -> Result<Vec<String>, Unfinished> {
        self.call(commands).map_err(Unfinished::from)?.wait()
    }

    /// Connects and sends command lines; their answers are read with [`Call::read_ready`]
    /// or [`Call::wait`].
    pub fn call(&self, commands: &[&str]) -> Result<Call, ClientError> {
        let stream = self.connect()?;
        Call::start(stream, commands, self.timeout)
    }

    /// A connection kept for many exchanges, for a persistent agent: no connection to set
    /// up per exchange. Its greeting is read here.
    pub fn session(&self) -> Result<Session, ClientError> {
        let mut call = self.call(&[])?;
        call.wait_greeting()?;
        Ok(Session {
            client: self.clone(),
            call,
        })
    }

    fn connect(&self) -> Result<UnixStream, ClientError> {
        let path = self.socket();
        UnixStream::connect(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ClientError::NoFifo(path.clone()),
            io::ErrorKind::ConnectionRefused => ClientError::NoBridge(path.clone()),
            _ => ClientError::Io {
                step: "connecting to the bridge",
                source: e,
            },
        })
    }

    /// [`Client::exchange`] when the bridge offers the channel, else [`Client::exchange_fifo`].
    pub fn exchange_any(&self, command: &str) -> Result<String, ClientError> {
        if self.has_channel() {
            self.exchange(command)
        } else {
            self.exchange_fifo(command)
        }
    }

    /// Sends one command line on the shared FIFOs, as a raw client does, and returns the
    /// one answer line, without its newline.
    pub fn exchange_fifo(&self, command: &str) -> Result<String, ClientError> {
        let timeout = self.timeout.unwrap_or(FIFO_WAIT);
        let deadline = Instant::now() + timeout;
        let resp = open_answer(&self.resp_fifo)?;
        let resp = lock(resp, deadline)?;
        // Bytes left from an earlier exchange whose reader died belong to nobody.
        discard_pending(&resp);
        send(&self.cmd_fifo, command)?;
        read_line(&resp, &self.resp_fifo, deadline).ok_or(ClientError::NoAnswer(timeout))
    }
}

/// An exchange that stopped before every answer came: the answers that did, and why.
#[derive(Debug)]
pub struct Unfinished {
    /// The answer lines received, in order (none when the connection failed).
    pub answers: Vec<String>,
    /// Why no more came.
    pub error: ClientError,
}

impl From<ClientError> for Unfinished {
    fn from(error: ClientError) -> Self {
        Unfinished {
            answers: Vec::new(),
            error,
        }
    }
}

/// A connection to the bridge's channel kept for many exchanges ([`Client::session`]).
///
/// Between exchanges the bridge may close it: to make room for another client at its cap,
/// or because it restarted. A connection found closed (or holding a line no command asked
/// for, the bridge's reason) before a command is sent is replaced by a new one; a command
/// is never sent twice.
#[derive(Debug)]
pub struct Session {
    client: Client,
    call: Call,
}

impl Session {
    /// Sends one command line and returns its one answer line, without its newline.
    pub fn exchange(&mut self, command: &str) -> Result<String, ClientError> {
        if self.call.closed_by_bridge() {
            *self = self.client.session()?;
        }
        self.call.push(command)?;
        self.call.wait_next()
    }
}

/// One exchange under way on a connection of its own ([`Client::call`]). Its command
/// lines went out at once, before the greeting is read (a round trip saved; a bridge that
/// refuses the connection says why in its first line). Their answers are read as they
/// come: without waiting ([`Call::read_ready`], for a caller that polls [`Call::fd`]
/// beside other descriptors), or by waiting ([`Call::wait`]). Dropping it closes the
/// connection, which the bridge sees at once: a READ not yet answered takes no packet.
#[derive(Debug)]
pub struct Call {
    stream: UnixStream,
    /// Bytes read and not yet split into lines.
    buf: Vec<u8>,
    /// Command lines sent on this connection.
    commands: usize,
    /// Their answers so far, in order.
    answers: Vec<String>,
    /// The bridge refused the connection (its greeting was an `ERR` line, the one answer).
    refused: bool,
    /// The wait for each answer, once the greeting has named the bridge's read timeout.
    wait: Option<Duration>,
    /// The client's own limit ([`Client::timeout`]).
    timeout: Option<Duration>,
    /// When the next line is due.
    deadline: Instant,
    /// Sending failed before the greeting was read (reported after it, if it is one).
    unsent: Option<io::Error>,
}

impl Call {
    fn start(
        stream: UnixStream,
        commands: &[&str],
        timeout: Option<Duration>,
    ) -> Result<Call, ClientError> {
        let io_err = |source| ClientError::Io {
            step: "preparing the connection",
            source,
        };
        stream.set_nonblocking(true).map_err(io_err)?;
        let deadline = Instant::now() + GREETING_WAIT;
        let lines: String = commands.iter().map(|c| one_line(c)).collect();
        let unsent = send_all(&stream, lines.as_bytes(), deadline).err();
        Ok(Call {
            stream,
            buf: Vec::new(),
            commands: commands.len(),
            answers: Vec::new(),
            refused: false,
            wait: None,
            timeout,
            deadline,
            unsent,
        })
    }

    /// The connection, to poll for reading.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }

    /// When the next line is due: past it, [`Call::read_ready`] fails.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The answers so far, in order.
    pub fn answers(&self) -> &[String] {
        &self.answers
    }

    /// Whether every command has its answer (or the bridge refused the connection).
    pub fn is_done(&self) -> bool {
        self.refused || self.answers.len() == self.commands
    }

    /// Reads what has come without waiting: true once every answer is in.
    pub fn read_ready(&mut self) -> Result<bool, ClientError> {
        self.read_for(Call::is_done)
    }

    /// Reads what has come without waiting: true once `done`; an error when the bridge has
    /// closed the connection before, or the next line is overdue.
    fn read_for(&mut self, done: impl Fn(&Call) -> bool) -> Result<bool, ClientError> {
        let mut chunk = [0u8; CHUNK];
        let closed = loop {
            match (&self.stream).read(&mut chunk) {
                Ok(0) => break true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                // The bridge closed with our command unread: it went away.
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break true,
                Err(source) => {
                    return Err(ClientError::Io {
                        step: "reading the answer",
                        source,
                    })
                }
            }
        };
        self.take_lines()?;
        match (done(self), closed) {
            (true, _) => Ok(true),
            (false, true) => Err(ClientError::HungUp),
            (false, false) => self.overdue(),
        }
    }

    /// Waits for every answer.
    pub fn wait(mut self) -> Result<Vec<String>, Unfinished> {
        match self.wait_until(|call| call.is_done()) {
            Ok(()) => Ok(self.answers),
            Err(error) => Err(Unfinished {
                answers: self.answers,
                error,
            }),
        }
    }

    /// Sends one more command line on the connection (with a fresh wait for its answer).
    fn push(&mut self, command: &str) -> Result<(), ClientError> {
        let deadline = Instant::now() + self.wait.unwrap_or(GREETING_WAIT);
        send_all(&self.stream, one_line(command).as_bytes(), deadline).map_err(|source| {
            ClientError::Io {
                step: "sending the command",
                source,
            }
        })?;
        self.commands += 1;
        self.deadline = deadline;
        Ok(())
    }

    /// Whether the bridge has closed the connection, or is closing it: with no command
    /// under way, anything to read (its one-line reason, or the end) says so.
    fn closed_by_bridge(&self) -> bool {
        let mut fds = [PollFd::new(self.stream.as_fd(), PollFlags::POLLIN)];
        !self.buf.is_empty() || matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
    }

    /// Waits for the answer to the last command pushed and takes it.
    fn wait_next(&mut self) -> Result<String, ClientError> {
        self.wait_until(|call| call.is_done())?;
        // Done: the last command has its answer, or the refusal stands in for it.
        let answer = self.answers.pop().ok_or(ClientError::HungUp)?;
        self.commands = self.answers.len();
        Ok(answer)
    }

    /// Waits for the greeting; a refusal is an error here (no command to answer).
    fn wait_greeting(&mut self) -> Result<(), ClientError> {
        self.wait_until(|call| call.wait.is_some() || call.refused)?;
        match self.answers.pop() {
            Some(refusal) => Err(ClientError::Refused(refusal)),
            None => Ok(()),
        }
    }

    /// Reads, sleeping in poll(2) between reads, until `done` or the deadline.
    fn wait_until(&mut self, done: impl Fn(&Call) -> bool) -> Result<(), ClientError> {
        loop {
            self.take_lines()?;
            if done(self) {
                return Ok(());
            }
            let left = self.deadline.saturating_duration_since(Instant::now());
            let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(self.stream.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, timeout) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => {
                    return Err(ClientError::Io {
                        step: "waiting for the answer",
                        source: e.into(),
                    })
                }
            }
            if self.read_for(&done)? {
                return Ok(());
            }
        }
    }

    /// Takes the complete lines read: the greeting first, then the answers.
    fn take_lines(&mut self) -> Result<(), ClientError> {
        while let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = self.buf.drain(..=i).collect();
            let line = String::from_utf8_lossy(&raw[..i]).into_owned();
            if self.wait.is_some() {
                self.answers.push(line);
            } else if let Some(read_timeout) = parse_greeting(&line) {
                if let Some(source) = self.unsent.take() {
                    return Err(ClientError::Io {
                        step: "sending the command",
                        source,
                    });
                }
                self.wait = Some(self.timeout.unwrap_or(read_timeout + MARGIN));
            } else if line.starts_with("ERR") {
                self.refused = true;
                self.answers.push(line);
            } else {
                return Err(ClientError::NotABridge(line));
            }
            self.deadline = Instant::now() + self.wait.unwrap_or(GREETING_WAIT);
        }
        if self.buf.len() > MAX_ANSWER {
            return Err(ClientError::TooLong);
        }
        Ok(())
    }

    /// The error for a line that is late, if it is.
    fn overdue(&self) -> Result<bool, ClientError> {
        if Instant::now() < self.deadline {
            return Ok(false);
        }
        Err(ClientError::NoAnswer(self.wait.unwrap_or(GREETING_WAIT)))
    }
}

/// The command as one line: newlines inside become spaces.
fn one_line(command: &str) -> String {
    let mut line = command.replace(['\n', '\r'], " ");
    line.push('\n');
    line
}

/// Writes everything to a non-blocking socket, waiting for room until `deadline`.
fn send_all(stream: &UnixStream, mut data: &[u8], deadline: Instant) -> io::Result<()> {
    while !data.is_empty() {
        match (&mut &*stream).write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
                let mut fds = [PollFd::new(stream.as_fd(), PollFlags::POLLOUT)];
                match poll(&mut fds, timeout) {
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn open_answer(path: &Path) -> Result<File, ClientError> {
    OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW).bits())
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ClientError::NoFifo(path.into()),
            _ => ClientError::Io {
                step: "opening the answer FIFO",
                source: e,
            },
        })
}

/// Takes the exclusive lock on the answer FIFO, trying until `deadline`.
fn lock(file: File, deadline: Instant) -> Result<Flock<File>, ClientError> {
    let mut file = file;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(locked) => return Ok(locked),
            Err((f, Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                file = f;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err((_, Errno::EWOULDBLOCK)) => return Err(ClientError::Busy),
            Err((_, e)) => {
                return Err(ClientError::Io {
                    step: "locking the answer FIFO",
                    source: e.into(),
                })
            }
        }
    }
}

fn discard_pending(mut file: &File) {
    let mut junk = [0u8; 4096];
    while matches!(file.read(&mut junk), Ok(n) if n > 0) {}
}

fn send(path: &Path, command: &str) -> Result<(), ClientError> {
    let mut cmd = OpenOptions::new()
        .write(true)
        .custom_flags((OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW).bits())
        .open(path)
        .map_err(|e| match (e.kind(), e.raw_os_error()) {
            (io::ErrorKind::NotFound, _) => ClientError::NoFifo(path.into()),
            (_, Some(code)) if code == Errno::ENXIO as i32 => ClientError::NoBridge(path.into()),
            _ => ClientError::Io {
                step: "opening the command FIFO",
                source: e,
            },
        })?;
    write_all(&mut cmd, one_line(command).as_bytes()).map_err(|source| ClientError::Io {
        step: "sending the command",
        source,
    })
}

/// Writes everything to a non-blocking pipe, waiting for room as needed.
fn write_all(file: &mut File, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match file.write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait(file, PollFlags::POLLOUT, Duration::from_secs(1))?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads up to the first newline, or what came before the writer closed.
///
/// A hang-up before anything was read comes from the writer of an earlier answer that
/// was still open when `file` was opened: Linux then reports the hang-up on every poll
/// until the next writer comes. Instead of polling in a loop, the rest is read through a
/// second descriptor of `path`, opened after that writer left, which sleeps in `poll`
/// until our answer's writer arrives. `file` stays open, and locked, all along.
fn read_line(file: &File, path: &Path, deadline: Instant) -> Option<String> {
    let mut got = Vec::new();
    let mut chunk = [0u8; CHUNK];
    let mut seen_writer = false;
    let mut fresh: Option<File> = None;
    loop {
        let mut from = fresh.as_ref().unwrap_or(file);
        let left = deadline.checked_duration_since(Instant::now())?;
        if !wait(
            from,
            PollFlags::POLLIN,
            left.min(Duration::from_millis(100)),
        )
        .ok()?
        {
            continue;
        }
        match from.read(&mut chunk) {
            Ok(0) if seen_writer || !got.is_empty() => break,
            // A stale hang-up (see above); once per answer, then a short wait as before.
            Ok(0) if fresh.is_none() => fresh = Some(open_answer(path).ok()?),
            Ok(0) => std::thread::sleep(Duration::from_millis(1)),
            Ok(n) => {
                seen_writer = true;
                got.extend_from_slice(&chunk[..n]);
                if got.contains(&b'\n') {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => seen_writer = true,
            Err(_) => return None,
        }
    }
    let end = got.iter().position(|&b| b == b'\n').unwrap_or(got.len());
    Some(String::from_utf8_lossy(&got[..end]).into_owned())
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::testdir::TestDir;
    use nix::sys::stat::Mode;

    fn fifo() -> (TestDir, PathBuf) {
        let dir = TestDir::new("client");
        let path = dir.join("resp");
        nix::unistd::mkfifo(&path, Mode::S_IRUSR | Mode::S_IWUSR).unwrap();
        (dir, path)
    }

    fn writer(path: &Path) -> File {
        OpenOptions::new().write(true).open(path).unwrap()
    }

    /// A writer that is open (it needs a reader to open: the first one, kept open too).
    fn stale_writer(path: &Path) -> (File, File) {
        let first = open_answer(path).unwrap();
        (first, writer(path))
    }

    /// The writer of an earlier answer is still open when the client opens the FIFO and
    /// closes without writing to it: the answer that comes after is still read whole.
    #[test]
    fn answer_after_a_stale_writer_is_read() {
        let (_dir, path) = fifo();
        let (_first, old) = stale_writer(&path);
        let resp = open_answer(&path).unwrap();
        drop(old);
        let late = std::thread::spawn({
            let path = path.clone();
            move || {
                std::thread::sleep(Duration::from_millis(50));
                writer(&path).write_all(b"OK\n").unwrap();
            }
        });
        let line = read_line(&resp, &path, Instant::now() + Duration::from_secs(5));
        late.join().unwrap();
        assert_eq!(line.as_deref(), Some("OK"));
    }

    /// The same, with no answer at all: nothing, once the deadline passes.
    #[test]
    fn stale_writer_and_no_answer_gives_nothing() {
        let (_dir, path) = fifo();
        let (_first, old) = stale_writer(&path);
        let resp = open_answer(&path).unwrap();
        drop(old);
        let line = read_line(&resp, &path, Instant::now() + Duration::from_millis(200));
        assert_eq!(line, None);
    }

    /// An answer written in two pieces by one writer is one line.
    #[test]
    fn answer_in_pieces_is_one_line() {
        let (_dir, path) = fifo();
        let resp = open_answer(&path).unwrap();
        let mut w = writer(&path);
        w.write_all(b"45").unwrap();
        let rest = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            w.write_all(b"00\n").unwrap();
        });
        let line = read_line(&resp, &path, Instant::now() + Duration::from_secs(5));
        rest.join().unwrap();
        assert_eq!(line.as_deref(), Some("4500"));
    }
}
