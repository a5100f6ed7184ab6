//! The client: one exchange with a running bridge over its FIFOs.
//!
//! `tunbridge read` and `tunbridge write <hex>` exist so that an agent whose shell
//! commands are checked one by one (Claude Code's default permission mode) can be
//! allowed exactly these two commands. Exchanges are serialized with a lock on the
//! answer FIFO, so two clients at once each get their own answer.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::poll::PollFlags;

use crate::fifo::{wait, CHUNK};

/// Why an exchange failed (not an `ERR` answer: those are answers).
#[derive(Debug)]
pub enum ClientError {
    /// The answer FIFO is not there: no bridge has been started on it.
    NoFifo(PathBuf),
    /// Nobody reads the command FIFO: the bridge is not running.
    NoBridge(PathBuf),
    /// Another client held the lock for too long.
    Busy,
    /// No answer came in time.
    NoAnswer(Duration),
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
                "no bridge is reading {}: is `tunbridge serve` running?",
                p.display()
            ),
            Self::Busy => write!(f, "another client kept the bridge busy for too long"),
            Self::NoAnswer(d) => write!(f, "no answer from the bridge within {} s", d.as_secs()),
            Self::Io { step, source } => write!(f, "{step}: {source}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// Where the bridge listens and how long to wait for it.
#[derive(Debug, Clone)]
pub struct Client {
    /// Command FIFO path.
    pub cmd_fifo: PathBuf,
    /// Answer FIFO path.
    pub resp_fifo: PathBuf,
    /// Longest wait for the lock plus the answer.
    pub timeout: Duration,
}

impl Client {
    /// Sends one command line and returns the one answer line, without its newline.
    pub fn exchange(&self, command: &str) -> Result<String, ClientError> {
        let deadline = Instant::now() + self.timeout;
        let resp = open_answer(&self.resp_fifo)?;
        let resp = lock(resp, deadline)?;
        // Bytes left from an earlier exchange whose reader died belong to nobody.
        discard_pending(&resp);
        send(&self.cmd_fifo, command)?;
        read_line(&resp, &self.resp_fifo, deadline).ok_or(ClientError::NoAnswer(self.timeout))
    }
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
    let mut line = command.replace(['\n', '\r'], " ");
    line.push('\n');
    write_all(&mut cmd, line.as_bytes()).map_err(|source| ClientError::Io {
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
