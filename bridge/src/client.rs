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
        read_line(&resp, deadline).ok_or(ClientError::NoAnswer(self.timeout))
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
fn read_line(mut file: &File, deadline: Instant) -> Option<String> {
    let mut got = Vec::new();
    let mut chunk = [0u8; CHUNK];
    let mut seen_writer = false;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        if !wait(
            file,
            PollFlags::POLLIN,
            left.min(Duration::from_millis(100)),
        )
        .ok()?
        {
            continue;
        }
        match file.read(&mut chunk) {
            Ok(0) if seen_writer || !got.is_empty() => break,
            // A hang-up with nothing read: the writer of a previous answer; keep waiting.
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
