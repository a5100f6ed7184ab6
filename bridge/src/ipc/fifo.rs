//! The two named pipes: creating them safely, reading command lines, and delivering
//! answer lines only to a reader that is there (the daemon's turn over them is
//! `daemon::endpoint`).
//!
//! The command FIFO is read in sessions: a writer's bytes up to its close (EOF),
//! after which the FIFO is reopened so an idle pipe never spins. Lines are split by
//! [`Lines`]: a half line that sits unfinished longer than [`LINE_IDLE`] is dropped, so
//! a client killed in the middle of a WRITE cannot glue its bytes to the next client's
//! command, and an over-long line is refused once it has ended.
//! The answer FIFO is opened without blocking: no reader means the answer is not
//! delivered, and the write end is closed after each answer so a dead reader's
//! bytes never wait in the pipe for the next client.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::stat::Mode;

use crate::ipc::lines::Lines;
pub use crate::ipc::lines::{Incoming, LINE_IDLE};

/// Bytes taken from a FIFO per read: one page. A 64 KiB stack buffer, zeroed on
/// every call, was 3% of the bridge's CPU time in a ping benchmark profile.
pub const CHUNK: usize = 4096;

/// Why a FIFO could not be set up or used.
#[derive(Debug)]
pub enum FifoError {
    /// The path exists and is not a FIFO we may replace.
    Refused { path: PathBuf, what: String },
    /// mkfifo failed.
    MakeFifo { path: PathBuf, source: io::Error },
    /// Opening, owning or inspecting the FIFO failed.
    Open { path: PathBuf, source: io::Error },
    /// A running bridge holds the command FIFO at this path.
    InUse(PathBuf),
}

impl fmt::Display for FifoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused { path, what } => write!(
                f,
                "refusing to use {}: it exists and is {what}; remove it or choose another path",
                path.display()
            ),
            Self::MakeFifo { path, source } => {
                write!(f, "cannot create FIFO {}: {source}", path.display())
            }
            Self::Open { path, source } => {
                write!(f, "cannot open FIFO {}: {source}", path.display())
            }
            Self::InUse(path) => write!(
                f,
                "another bridge is serving {}: stop it first, or give this one other FIFO paths",
                path.display()
            ),
        }
    }
}

impl std::error::Error for FifoError {}

/// Who owns the FIFOs and may use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// User id given the FIFOs.
    pub uid: u32,
    /// Group id given the FIFOs.
    pub gid: u32,
    /// Permission bits, 0o600 or 0o660.
    pub mode: u32,
}

/// A path this process made (a FIFO, the channel's socket); removed on drop if it is
/// still the one it made.
#[derive(Debug)]
pub struct Placed {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Placed {
    /// Takes charge of what this process has just made at `path`, as `meta` describes it.
    pub fn new(path: &Path, meta: &std::fs::Metadata) -> Placed {
        Placed {
            path: path.into(),
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tells whether what we made is still at its path.
    pub fn state(&self) -> PathState {
        match std::fs::symlink_metadata(&self.path) {
            Ok(m) if m.dev() == self.dev && m.ino() == self.ino => PathState::Ours,
            Ok(_) => PathState::Replaced,
            Err(_) => PathState::Missing,
        }
    }
}

impl Drop for Placed {
    fn drop(&mut self) {
        if self.state() != PathState::Ours {
            return;
        }
        // After dropping root this fails where the user may not write the directory.
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e,
                           "cannot remove the FIFO or socket; the next start replaces it");
        }
    }
}

/// A FIFO this process created; removed on drop if it is still ours.
#[derive(Debug)]
pub struct Fifo {
    placed: Placed,
    /// For the command FIFO: a read descriptor holding the exclusive `flock` that tells
    /// a second bridge this FIFO is served. (The answer FIFO cannot hold one: a reader
    /// of its own would take the answers meant for clients.)
    _claim: Option<Flock<File>>,
    /// The FIFO opened as a name only (`O_PATH`: neither reader nor writer). While it is
    /// open the FIFO's inode lives on after a removal, so its number cannot go to what
    /// replaces it (ext4 gives a freed number again at once), which would pass for ours.
    _pin: File,
}

/// What is at the path of something we made, now.
#[derive(Debug, PartialEq, Eq)]
pub enum PathState {
    /// Ours is still there.
    Ours,
    /// Nothing is there.
    Missing,
    /// Something else is there.
    Replaced,
}

impl Fifo {
    /// Creates the command FIFO at `path` for `owner` and claims it for this bridge; refuses
    /// one that a running bridge has claimed, replaces only a stale FIFO of ours.
    pub fn create_command(path: &Path, owner: Owner) -> Result<Fifo, FifoError> {
        Self::ensure_unclaimed(path)?;
        let (mut fifo, file) = Self::make(path, owner)?;
        let claim = Flock::lock(file, FlockArg::LockExclusiveNonblock)
            .map_err(|_| FifoError::InUse(path.into()))?;
        fifo._claim = Some(claim);
        Ok(fifo)
    }

    /// Refuses a command FIFO at `path` that a running bridge has claimed.
    pub fn ensure_unclaimed(path: &Path) -> Result<(), FifoError> {
        if claimed(path) {
            return Err(FifoError::InUse(path.into()));
        }
        Ok(())
    }

    /// Creates the FIFO at `path` for `owner`, replacing only a stale FIFO of ours.
    pub fn create(path: &Path, owner: Owner) -> Result<Fifo, FifoError> {
        Self::make(path, owner).map(|(fifo, _)| fifo)
    }

    /// Makes the FIFO; gives it with the read descriptor it was checked through.
    fn make(path: &Path, owner: Owner) -> Result<(Fifo, File), FifoError> {
        clear_stale(path, owner)?;
        nix::unistd::mkfifo(path, Mode::from_bits_truncate(0o600)).map_err(|e| {
            FifoError::MakeFifo {
                path: path.into(),
                source: e.into(),
            }
        })?;
        let open_err = |source| FifoError::Open {
            path: path.into(),
            source,
        };
        // O_NONBLOCK: opening a FIFO for reading must not wait for a writer.
        let file = open_no_follow(path, libc_flags::O_NONBLOCK).map_err(open_err)?;
        let meta = file.metadata().map_err(open_err)?;
        let pin = open_no_follow(path, libc_flags::O_PATH).map_err(open_err)?;
        let pinned = pin.metadata().map_err(open_err)?;
        let same = (pinned.dev(), pinned.ino()) == (meta.dev(), meta.ino());
        if !meta.file_type().is_fifo() || !same {
            return Err(FifoError::Refused {
                path: path.into(),
                what: "not the FIFO we made".into(),
            });
        }
        std::os::unix::fs::fchown(&file, Some(owner.uid), Some(owner.gid)).map_err(open_err)?;
        file.set_permissions(std::fs::Permissions::from_mode(owner.mode))
            .map_err(open_err)?;
        let fifo = Fifo {
            placed: Placed::new(path, &meta),
            _claim: None,
            _pin: pin,
        };
        Ok((fifo, file))
    }

    /// The path of this FIFO.
    pub fn path(&self) -> &Path {
        self.placed.path()
    }

    /// Tells whether our FIFO is still at its path.
    pub fn state(&self) -> PathState {
        self.placed.state()
    }
}

/// Flags the standard library does not name.
mod libc_flags {
    pub const O_NONBLOCK: i32 = nix::fcntl::OFlag::O_NONBLOCK.bits();
    pub const O_NOFOLLOW: i32 = nix::fcntl::OFlag::O_NOFOLLOW.bits();
    pub const O_PATH: i32 = nix::fcntl::OFlag::O_PATH.bits();
}

/// Whether a FIFO at `path` is claimed by a running bridge ([`Fifo::create_command`]).
fn claimed(path: &Path) -> bool {
    let Ok(file) = open_read(path) else {
        return false;
    };
    matches!(
        Flock::lock(file, FlockArg::LockExclusiveNonblock),
        Err((_, Errno::EWOULDBLOCK))
    )
}

/// What a path this bridge makes should hold: its FIFOs, or the channel's socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// A named pipe.
    Fifo,
    /// A Unix socket.
    Socket,
}

impl PathKind {
    fn is(self, kind: std::fs::FileType) -> bool {
        match self {
            PathKind::Fifo => kind.is_fifo(),
            PathKind::Socket => kind.is_socket(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            PathKind::Fifo => "FIFO",
            PathKind::Socket => "socket",
        }
    }
}

/// Removes a stale FIFO of ours at `path`; refuses anything else that is there.
fn clear_stale(path: &Path, owner: Owner) -> Result<(), FifoError> {
    clear_stale_kind(path, owner, PathKind::Fifo)
}

/// Removes a stale `want` of ours (owned by root or `owner`) at `path`; refuses anything
/// else that is there, leaving it alone.
pub fn clear_stale_kind(path: &Path, owner: Owner, want: PathKind) -> Result<(), FifoError> {
    if !check_stale(path, owner, want)? {
        return Ok(());
    }
    std::fs::remove_file(path).map_err(|source| FifoError::Open {
        path: path.into(),
        source,
    })
}

/// Looks at `path` without following a link: `false` when nothing is there, `true` when a
/// `want` of ours (owned by root or `owner`) is, which may be replaced. Anything else is
/// refused by name (a link with its target) and left alone.
pub fn check_stale(path: &Path, owner: Owner, want: PathKind) -> Result<bool, FifoError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(FifoError::Open {
                path: path.into(),
                source,
            })
        }
    };
    let kind = meta.file_type();
    let refuse = |what: &str| {
        Err(FifoError::Refused {
            path: path.into(),
            what: what.into(),
        })
    };
    if kind.is_symlink() {
        return match std::fs::read_link(path) {
            Ok(target) => refuse(&format!("a symbolic link to {}", target.display())),
            Err(_) => refuse("a symbolic link"),
        };
    }
    if kind.is_dir() {
        return refuse("a directory");
    }
    if kind.is_file() {
        return refuse("a regular file");
    }
    if !want.is(kind) {
        return refuse(&format!("not a {}", want.name()));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != owner.uid && meta.uid() != me {
        return refuse(&format!(
            "a {} owned by another user (uid {})",
            want.name(),
            meta.uid()
        ));
    }
    Ok(true)
}

/// Reads command lines from the command FIFO.
#[derive(Debug)]
pub struct CommandReader {
    path: PathBuf,
    file: File,
    lines: Lines,
}

impl CommandReader {
    /// Opens the command FIFO for reading without waiting for a writer.
    pub fn open(path: &Path) -> io::Result<Self> {
        Ok(CommandReader {
            path: path.into(),
            file: open_read(path)?,
            lines: Lines::new(),
        })
    }

    /// Waits up to `timeout` for the next event; `None` when nothing happened.
    pub fn next(&mut self, timeout: Duration) -> io::Result<Option<Incoming>> {
        if let Some(event) = self.buffered() {
            return Ok(Some(event));
        }
        if !wait(&self.file, PollFlags::POLLIN, timeout)? {
            return Ok(None);
        }
        self.read_chunk()
    }

    /// The next event when `poll(2)` has just reported the FIFO readable (or its writers
    /// gone): reads at once, without a second poll. (Without that report a read could
    /// see the end of a FIFO that never had a writer.)
    pub fn next_ready(&mut self) -> io::Result<Option<Incoming>> {
        if let Some(event) = self.buffered() {
            return Ok(Some(event));
        }
        self.read_chunk()
    }

    /// A line already read, or an unfinished one dropped for idling.
    fn buffered(&mut self) -> Option<Incoming> {
        self.lines
            .next()
            .or_else(|| self.lines.idle(Instant::now()))
    }

    /// Reads one chunk and returns the event it completes, if any.
    fn read_chunk(&mut self) -> io::Result<Option<Incoming>> {
        let mut chunk = [0u8; CHUNK];
        match self.file.read(&mut chunk) {
            Ok(0) => {
                // All writers closed: an unfinished last line still counts, then reopen.
                let event = self.lines.end();
                self.reopen()?;
                Ok(event)
            }
            Ok(n) => {
                self.lines.push(&chunk[..n], Instant::now());
                Ok(self.lines.next())
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The descriptor to poll for command bytes; it changes when the FIFO is reopened.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// When the bytes that completed the last event were read from the FIFO.
    pub fn received(&self) -> Instant {
        self.lines.received()
    }

    /// Reopens the FIFO, as after it was recreated at its path.
    pub fn reopen(&mut self) -> io::Result<()> {
        self.file = open_read(&self.path)?;
        self.lines.clear();
        Ok(())
    }

    /// Reopens at once if every writer has closed and nothing is left to read, as when a
    /// READ's client has sent its line; otherwise leaves everything to [`CommandReader::next`].
    /// Called while a READ waits, so the reopen is not done after the hand-over instead.
    pub fn reopen_if_ended(&mut self) -> io::Result<()> {
        if !self.lines.is_empty() {
            return Ok(());
        }
        let mut fds = [PollFd::new(self.file.as_fd(), PollFlags::POLLIN)];
        let ended = match poll(&mut fds, PollTimeout::ZERO) {
            Ok(n) if n > 0 => fds[0]
                .revents()
                .is_some_and(|r| r.contains(PollFlags::POLLHUP) && !r.contains(PollFlags::POLLIN)),
            _ => false,
        };
        if ended {
            self.reopen()?;
        }
        Ok(())
    }
}

impl AsFd for CommandReader {
    /// The FIFO's descriptor, for a caller's `poll` (readable: call [`CommandReader::next`]).
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.file.as_fd()
    }
}

fn open_read(path: &Path) -> io::Result<File> {
    let file = open_no_follow(path, libc_flags::O_NONBLOCK)?;
    ensure_fifo(&file)?;
    Ok(file)
}

/// Opens `path` for reading with `flags`, a link at it refused, not followed.
fn open_no_follow(path: &Path, flags: i32) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(flags | libc_flags::O_NOFOLLOW)
        .open(path)
}

fn ensure_fifo(file: &File) -> io::Result<()> {
    if file.metadata()?.file_type().is_fifo() {
        return Ok(());
    }
    Err(io::Error::new(io::ErrorKind::InvalidInput, "not a FIFO"))
}

/// Waits up to `timeout` for `events` on `file`; true when one is ready.
pub fn wait(file: &File, events: PollFlags, timeout: Duration) -> io::Result<bool> {
    let ms = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
    let mut fds = [PollFd::new(file.as_fd(), events)];
    match poll(&mut fds, ms) {
        Ok(n) => Ok(n > 0),
        Err(Errno::EINTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Takes what waits in the answer FIFO at `path` (at most `limit` bytes), without waiting
/// for anything: the bytes of an answer whose reader never read them. Opened for reading
/// only for this, with no writer open, so nothing else is taken.
pub fn take_unread(path: &Path, limit: usize) -> io::Result<Vec<u8>> {
    let file = open_read(path)?;
    let mut taken = Vec::new();
    let mut chunk = [0u8; CHUNK];
    while taken.len() < limit {
        let want = CHUNK.min(limit - taken.len());
        match (&file).read(&mut chunk[..want]) {
            Ok(0) => break,
            Ok(n) => taken.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(taken)
}

/// Linux's PIPE_BUF: a write of at most this many bytes goes into a pipe whole or not at all.
pub const PIPE_BUF: usize = 4096;

/// The write end of the answer FIFO, held for one answer.
#[derive(Debug)]
pub struct AnswerPipe {
    file: File,
}

impl AnswerPipe {
    /// Opens the answer FIFO without waiting; `None` when no reader is there (or no FIFO).
    pub fn open(path: &Path) -> io::Result<Option<AnswerPipe>> {
        let opened = OpenOptions::new()
            .write(true)
            .custom_flags(libc_flags::O_NONBLOCK | libc_flags::O_NOFOLLOW)
            .open(path);
        match opened {
            Ok(file) => {
                ensure_fifo(&file)?;
                Ok(Some(AnswerPipe { file }))
            }
            // ENXIO: a FIFO with no reader cannot be opened for writing without blocking.
            Err(e) if e.raw_os_error() == Some(Errno::ENXIO as i32) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The write end's descriptor, to poll for room (`POLLOUT`) or for the reader leaving.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Writes as much of `data` as the pipe takes now, without waiting; 0 when it is full.
    /// A write of at most [`PIPE_BUF`] bytes is whole or nothing.
    pub fn write_some(&self, data: &[u8]) -> io::Result<usize> {
        match (&self.file).write(data) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Whether the reader has gone away (the pipe reports an error to the writer).
    pub fn reader_gone(&self) -> bool {
        let mut fds = [PollFd::new(self.file.as_fd(), PollFlags::empty())];
        match poll(&mut fds, PollTimeout::ZERO) {
            Ok(n) if n > 0 => fds[0]
                .revents()
                .is_some_and(|r| r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP)),
            _ => false,
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::ipc::protocol::MAX_LINE;
    use crate::testdir::TestDir;

    fn temp_dir(tag: &str) -> TestDir {
        TestDir::new(&format!("fifo-{tag}"))
    }

    fn me() -> Owner {
        Owner {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            mode: 0o600,
        }
    }

    /// A command FIFO in a fresh directory, and a reader on it.
    fn command_fifo(tag: &str) -> (TestDir, PathBuf, Fifo, CommandReader) {
        let dir = temp_dir(tag);
        let path = dir.join("cmd");
        let fifo = Fifo::create(&path, me()).unwrap();
        let reader = CommandReader::open(&path).unwrap();
        (dir, path, fifo, reader)
    }

    fn write_to(path: &Path, data: &[u8]) {
        let mut f = OpenOptions::new().write(true).open(path).unwrap();
        f.write_all(data).unwrap();
    }

    #[test]
    fn creates_mode_0600_and_removes_on_drop() {
        let dir = temp_dir("mode");
        let path = dir.join("cmd");
        let fifo = Fifo::create(&path, me()).unwrap();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_fifo());
        assert_eq!(meta.mode() & 0o777, 0o600);
        drop(fifo);
        assert!(!path.exists());
    }

    #[test]
    fn a_claimed_command_fifo_is_refused_and_a_released_one_replaced() {
        let dir = temp_dir("claim");
        let path = dir.join("cmd");
        let first = Fifo::create_command(&path, me()).unwrap();
        let err = Fifo::create_command(&path, me()).unwrap_err();
        assert!(matches!(err, FifoError::InUse(_)), "{err}");
        assert_eq!(
            first.state(),
            PathState::Ours,
            "the first one is left alone"
        );
        drop(first);
        // A bridge gone without removing it (kill -9) leaves a FIFO nobody claims.
        nix::unistd::mkfifo(&path, Mode::from_bits_truncate(0o600)).unwrap();
        let second = Fifo::create_command(&path, me()).unwrap();
        assert_eq!(second.state(), PathState::Ours);
    }

    #[test]
    fn refuses_what_is_not_ours() {
        let dir = temp_dir("refuse");
        let file = dir.join("file");
        std::fs::write(&file, b"keep me").unwrap();
        let link = dir.join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let sub = dir.join("sub");
        std::fs::create_dir(&sub).unwrap();
        for (path, what) in [
            (&file, "regular file"),
            (&link, "symbolic link"),
            (&sub, "directory"),
        ] {
            let err = Fifo::create(path, me()).unwrap_err().to_string();
            assert!(err.contains(what), "{err}");
        }
        assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
    }

    #[test]
    fn replaces_a_stale_fifo_of_ours() {
        let dir = temp_dir("stale");
        let path = dir.join("cmd");
        nix::unistd::mkfifo(&path, Mode::from_bits_truncate(0o600)).unwrap();
        let fifo = Fifo::create(&path, me()).unwrap();
        assert_eq!(fifo.state(), PathState::Ours);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(fifo.state(), PathState::Missing);
    }

    #[test]
    fn lines_and_unterminated_last_line() {
        let (_dir, path, _fifo, mut reader) = command_fifo("lines");
        write_to(&path, b"READ\r\nWRITE 45\nREAD");
        let mut got = Vec::new();
        for _ in 0..10 {
            if let Some(ev) = reader.next(Duration::from_millis(100)).unwrap() {
                got.push(ev);
            }
        }
        assert_eq!(
            got,
            [
                Incoming::Line(b"READ".to_vec()),
                Incoming::Line(b"WRITE 45".to_vec()),
                Incoming::Line(b"READ".to_vec())
            ]
        );
    }

    #[test]
    fn reopens_early_only_at_an_empty_end_of_session() {
        let (_dir, path, _fifo, mut reader) = command_fifo("ended");
        write_to(&path, b"READ\nWRI");
        assert_eq!(
            reader.next(Duration::from_millis(100)).unwrap(),
            Some(Incoming::Line(b"READ".to_vec()))
        );
        // A partial line is pending: left alone, and still a line at the end of the session.
        reader.reopen_if_ended().unwrap();
        assert_eq!(
            reader.next(Duration::from_millis(100)).unwrap(),
            Some(Incoming::Line(b"WRI".to_vec()))
        );
        write_to(&path, b"READ\n");
        assert_eq!(
            reader.next(Duration::from_millis(100)).unwrap(),
            Some(Incoming::Line(b"READ".to_vec()))
        );
        // Writer gone, nothing left: reopened, so the next wait sees no end of session.
        reader.reopen_if_ended().unwrap();
        assert!(!wait(&reader.file, PollFlags::POLLIN, Duration::ZERO).unwrap());
        write_to(&path, b"READ\n");
        assert_eq!(
            reader.next(Duration::from_millis(100)).unwrap(),
            Some(Incoming::Line(b"READ".to_vec()))
        );
    }

    #[test]
    fn over_long_line_is_refused_once() {
        let (_dir, path, _fifo, mut reader) = command_fifo("long");
        let writer = std::thread::spawn({
            let path = path.clone();
            move || {
                let mut line = vec![b'A'; MAX_LINE * 2];
                line.extend_from_slice(b"\nREAD\n");
                write_to(&path, &line);
            }
        });
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < 2 && Instant::now() < deadline {
            if let Some(ev) = reader.next(Duration::from_millis(50)).unwrap() {
                got.push(ev);
            }
        }
        writer.join().unwrap();
        assert!(matches!(got[0], Incoming::TooLong(_)), "{got:?}");
        assert_eq!(got[1], Incoming::Line(b"READ".to_vec()));
    }

    /// Opens the FIFO at `path` for reading without waiting for a writer.
    fn nonblocking_reader(path: &Path) -> std::fs::File {
        OpenOptions::new()
            .read(true)
            .custom_flags(libc_flags::O_NONBLOCK)
            .open(path)
            .unwrap()
    }

    #[test]
    fn answer_needs_a_reader() {
        let dir = temp_dir("answer");
        let path = dir.join("resp");
        let _fifo = Fifo::create(&path, me()).unwrap();
        assert!(AnswerPipe::open(&path).unwrap().is_none());
        let reader = nonblocking_reader(&path);
        let answer = AnswerPipe::open(&path).unwrap().unwrap();
        assert!(!answer.reader_gone());
        assert_eq!(answer.write_some(b"OK\n").unwrap(), 3);
        drop(answer);
        let mut text = String::new();
        (&reader).read_to_string(&mut text).unwrap();
        assert_eq!(text, "OK\n");
        let answer = AnswerPipe::open(&path).unwrap().unwrap();
        drop(reader);
        assert!(answer.reader_gone());
        assert!(answer.write_some(b"OK\n").is_err(), "no reader: EPIPE");
    }

    #[test]
    fn write_some_takes_what_the_pipe_holds() {
        let dir = temp_dir("some");
        let path = dir.join("resp");
        let _fifo = Fifo::create(&path, me()).unwrap();
        let reader = nonblocking_reader(&path);
        let answer = AnswerPipe::open(&path).unwrap().unwrap();
        let big = vec![b'a'; 1 << 20];
        let first = answer.write_some(&big).unwrap();
        assert!(first > 0 && first < big.len(), "{first}");
        assert_eq!(answer.write_some(&big[first..]).unwrap(), 0, "full");
        let mut chunk = vec![0u8; PIPE_BUF];
        assert_eq!((&reader).read(&mut chunk).unwrap(), PIPE_BUF);
        assert!(answer.write_some(&big[first..]).unwrap() > 0, "room again");
    }
}
