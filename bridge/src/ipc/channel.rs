//! The private channel: a Unix stream socket beside the FIFOs, one connection per client.
//!
//! `tunbridge read` and `tunbridge write` connect to it, are greeted with one line that
//! names the bridge's read timeout (`HELLO read_timeout_ms=30000`), send one command line
//! and read its one answer line on their own connection, so no other client, raw or not,
//! can take their answer. The bridge sees a client's hang-up at once: a READ whose client
//! has gone takes no packet. When a client goes away with an answer it did not read,
//! Linux reports `ECONNRESET` to the bridge (a Unix stream socket closed with unread data):
//! [`Event::Gone`] says so, and a packet in that answer goes back to the head of the queue.
//!
//! Each connection's commands are answered one at a time: the next line of a connection is
//! given out only once the last one was answered and its answer is (nearly all) in the
//! socket, and more bytes are read from a client only when no whole line of it is waiting.
//! So what the bridge holds per client is bounded ([`Channel::held`]): one line being read,
//! [`HELD_ANSWERS`] of answers plus the last; the rest waits in the kernel, and a client
//! that writes on without reading is stopped by its own full socket. One whose answers
//! stay unsent for [`STALL_LIMIT`] is dropped.
//!
//! Silence cannot hold the [`MAX_CLIENTS`] places: a connection that has sent no whole
//! command within [`SILENCE_LIMIT`] is told so and closed, and at the cap a newcomer takes
//! the place of the oldest silent connection, else of the one idle longest (at least
//! [`IDLE_MIN`]). A connection waiting in READ, or whose answer is under way, is never
//! cut; one that has sent a command is never closed for time, however long it then waits.
//!
//! Lines are split by [`Lines`] (the same limits as the command FIFO). All connections are
//! watched through one epoll descriptor ([`Channel::fd`]), which the server's loop polls
//! beside the device and the command FIFO, then calls [`Channel::service`].

use std::collections::BTreeMap;
use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::stat::Mode;
use tracing::{debug, info, warn};

use crate::ipc::fifo::{check_stale, FifoError, Owner, PathKind, PathState, Placed, CHUNK};
use crate::ipc::lines::{Incoming, Lines};

/// Most clients connected at once; one more takes a silent or idle one's place, or is
/// told the bridge is full and closed.
pub const MAX_CLIENTS: usize = 64;

/// How long a new connection may go without sending a whole command before it is closed.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(10);

/// How long a connection's answers may stay unsent (its socket full, the client not
/// reading) before the client is dropped.
pub const STALL_LIMIT: Duration = Duration::from_secs(10);

/// The shortest idle time (no command under way, every answer sent) after which a
/// connection that has sent commands may make room for a newcomer at the cap.
pub const IDLE_MIN: Duration = Duration::from_secs(1);

/// Answer bytes the socket has not taken beyond which a client gets no next command.
pub const HELD_ANSWERS: usize = 4096;

/// The epoll token of the listening socket; connections count up from 0.
const LISTENER: u64 = u64::MAX;

/// The channel's socket for the command FIFO at `cmd_fifo`: the same path plus `.sock`.
pub fn socket_path(cmd_fifo: &Path) -> PathBuf {
    let mut path = cmd_fifo.as_os_str().to_owned();
    path.push(".sock");
    path.into()
}

/// The first line on every connection, naming the bridge's read timeout.
pub fn greeting(read_timeout: Duration) -> String {
    format!("HELLO read_timeout_ms={}", read_timeout.as_millis())
}

/// The read timeout a greeting line names, if it is one.
pub fn parse_greeting(line: &str) -> Option<Duration> {
    let mut words = line.split_ascii_whitespace();
    if words.next() != Some("HELLO") {
        return None;
    }
    words
        .find_map(|w| w.strip_prefix("read_timeout_ms="))
        .and_then(|ms| ms.parse().ok())
        .map(Duration::from_millis)
}

/// Why the channel could not be set up.
#[derive(Debug)]
pub enum ChannelError {
    /// What is at the socket path may not be replaced.
    Path(FifoError),
    /// A running bridge listens on the socket.
    InUse(PathBuf),
    /// Binding or preparing the socket failed.
    Bind { path: PathBuf, source: io::Error },
    /// The epoll descriptor could not be made or changed.
    Epoll(io::Error),
}

impl fmt::Display for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Path(e) => write!(f, "{e}"),
            Self::InUse(p) => write!(
                f,
                "another bridge is serving {}: stop it first, or give this one other FIFO paths",
                p.display()
            ),
            Self::Bind { path, source } => {
                write!(f, "cannot listen on {}: {source}", path.display())
            }
            Self::Epoll(e) => write!(f, "cannot watch the client connections: {e}"),
        }
    }
}

impl std::error::Error for ChannelError {}

/// A client's connection, as the server names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(u64);

impl ConnId {
    /// A connection named by its number, as the tests name one.
    #[cfg(test)]
    pub(crate) fn from_raw(n: u64) -> ConnId {
        ConnId(n)
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What happened on the channel.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// A command (a line, or the end of an over-long one) to answer with
    /// [`Channel::answer`]; `received` is when its last byte was read.
    Command {
        conn: ConnId,
        incoming: Incoming,
        received: Instant,
    },
    /// The client went away, or was closed from this side (`ending` says which and why);
    /// `unread`: it left bytes of an answer unread.
    Gone {
        conn: ConnId,
        unread: bool,
        ending: Ending,
    },
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The client closed it, or shut its side and has every answer.
    Left,
    /// Closed from this side: no whole command within [`SILENCE_LIMIT`] of connecting.
    Silent,
    /// Closed from this side: its place went to a newcomer at the cap.
    MadeRoom,
    /// Dropped: its answers did not move for [`STALL_LIMIT`].
    Stalled,
}

impl Ending {
    /// The one line a client closed from this side is told, if it is told anything.
    fn farewell(self) -> Option<String> {
        match self {
            Ending::Silent => Some(format!(
                "ERR closing: no command within {} s of connecting\n",
                SILENCE_LIMIT.as_secs()
            )),
            Ending::MadeRoom => Some(format!(
                "ERR closing: {MAX_CLIENTS} clients connected and this one was the quietest\n"
            )),
            Ending::Left | Ending::Stalled => None,
        }
    }
}

/// The connection a client holds and what is under way on it.
#[derive(Debug)]
struct Conn {
    stream: UnixStream,
    lines: Lines,
    /// Answer bytes not yet taken by the socket.
    out: Vec<u8>,
    /// A command was given out and is not answered yet.
    busy: bool,
    /// The client shut its sending side: no more commands.
    ended: bool,
    /// When it connected.
    since: Instant,
    /// When it sent its first whole command; `None`: a silent connection.
    spoke: Option<Instant>,
    /// When its last command was answered (or it connected): idle since, when not busy.
    answered: Instant,
    /// Answers wait unsent, and the socket has taken none of them since this time.
    stalled: Option<Instant>,
    /// What epoll watches for now.
    interest: EpollFlags,
}

impl Conn {
    /// Whether it may be given its next command: none under way, and its answers taken
    /// by the socket (but for a few bytes, such as the greeting).
    fn free(&self) -> bool {
        !self.busy && self.out.len() <= HELD_ANSWERS
    }

    /// Readable only when free and with no whole line waiting, so a client's next lines
    /// wait in its socket, and a client that does not read cannot make the bridge read on.
    fn wanted(&self) -> EpollFlags {
        let mut flags = EpollFlags::empty();
        if self.free() && !self.ended && !self.lines.has_event() {
            flags |= EpollFlags::EPOLLIN;
        }
        if !self.out.is_empty() {
            flags |= EpollFlags::EPOLLOUT;
        }
        flags
    }

    /// Writes what the socket takes of `out`; an error means the client is gone.
    fn flush(&mut self, now: Instant) -> io::Result<()> {
        let mut moved = false;
        while !self.out.is_empty() {
            match self.stream.write(&self.out) {
                Ok(n) => {
                    self.out.drain(..n);
                    moved = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.stalled = match self.stalled {
            _ if self.out.is_empty() => None,
            Some(since) if !moved => Some(since),
            _ => Some(now),
        };
        if self.out.is_empty() && self.out.capacity() > HELD_ANSWERS {
            self.out = Vec::new();
        }
        Ok(())
    }

    /// Reads one chunk into the line splitter; notes the end of the client's input.
    fn fill(&mut self, now: Instant) {
        let mut chunk = [0u8; CHUNK];
        match self.stream.read(&mut chunk) {
            Ok(0) => self.ended = true,
            Ok(n) => self.lines.push(&chunk[..n], now),
            Err(_) => {}
        }
    }

    /// Whether the client left unread bytes behind (the socket reports ECONNRESET).
    fn left_unread(&self) -> bool {
        !self.out.is_empty() || matches!(self.stream.take_error(), Ok(Some(_)))
    }

    /// Since when it is quiet, if it may make room at the cap: silent connections count
    /// from their connecting, others from their last answer, once every answer is sent.
    fn quiet_since(&self, now: Instant) -> Option<(bool, Instant)> {
        if self.busy || self.lines.has_event() {
            return None;
        }
        match self.spoke {
            // Nothing for it but the greeting, sent or not.
            None => Some((false, self.since)),
            Some(_)
                if self.out.is_empty()
                    && now.saturating_duration_since(self.answered) >= IDLE_MIN =>
            {
                Some((true, self.answered))
            }
            Some(_) => None,
        }
    }

    /// The bytes of memory held for this client.
    fn held(&self) -> usize {
        self.lines.held() + self.out.capacity()
    }
}

/// The listening socket and every client connection.
#[derive(Debug)]
pub struct Channel {
    listener: UnixListener,
    placed: Placed,
    owner: Owner,
    epoll: Epoll,
    conns: BTreeMap<u64, Conn>,
    next: u64,
    greeting: Vec<u8>,
    /// A connection was answered: service soon, for its next command or its end.
    pending: bool,
}

impl Channel {
    /// Listens at `path` for `owner` (mode as for the FIFOs), greeting each client with
    /// `read_timeout`. A stale socket of ours is replaced; a live one is refused.
    pub fn open(
        path: &Path,
        owner: Owner,
        read_timeout: Duration,
    ) -> Result<Channel, ChannelError> {
        let (listener, placed) = listen(path, owner)?;
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(epoll_err)?;
        let event = EpollEvent::new(EpollFlags::EPOLLIN, LISTENER);
        epoll.add(&listener, event).map_err(epoll_err)?;
        let mut greeting = greeting(read_timeout).into_bytes();
        greeting.push(b'\n');
        Ok(Channel {
            listener,
            placed,
            owner,
            epoll,
            conns: BTreeMap::new(),
            next: 0,
            greeting,
            pending: false,
        })
    }

    /// The one descriptor to poll: readable when [`Channel::service`] has work.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.epoll.0.as_fd()
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        self.placed.path()
    }

    /// Whether our socket is still at its path.
    pub fn state(&self) -> PathState {
        self.placed.state()
    }

    /// Listens afresh at the same path, as after the socket was deleted; connected
    /// clients keep their connections.
    pub fn relisten(&mut self) -> Result<(), ChannelError> {
        let (listener, placed) = listen(self.placed.path(), self.owner)?;
        let _ = self.epoll.delete(&self.listener);
        let event = EpollEvent::new(EpollFlags::EPOLLIN, LISTENER);
        self.epoll.add(&listener, event).map_err(epoll_err)?;
        self.listener = listener;
        self.placed = placed;
        Ok(())
    }

    /// Whether [`Channel::service`] has work without a new event (a connection that was
    /// answered may have its next command already read).
    pub fn has_pending(&self) -> bool {
        self.pending
    }

    /// How many clients are connected.
    pub fn clients(&self) -> usize {
        self.conns.len()
    }

    /// The bytes of memory held for all clients: their unfinished lines and unsent
    /// answers (at most about `MAX_LINE + CHUNK + HELD_ANSWERS` and one answer each).
    pub fn held(&self) -> usize {
        self.conns.values().map(Conn::held).sum()
    }

    /// Accepts clients, reads and writes what is ready, notes hang-ups, closes silent and
    /// stalled connections, and gives out the next command of every connection that is
    /// free, oldest connection first, as of `now`. Never waits; call it at least every
    /// second or so, for the time limits.
    pub fn service(&mut self, now: Instant) -> Vec<Event> {
        self.pending = false;
        let mut events = Vec::new();
        let mut ready = [EpollEvent::empty(); 32];
        let n = self.epoll.wait(&mut ready, EpollTimeout::ZERO).unwrap_or(0);
        for ev in &ready[..n] {
            match ev.data() {
                LISTENER => self.accept(now, &mut events),
                id => self.ready(id, ev.events(), now, &mut events),
            }
        }
        self.limits(now, &mut events);
        self.commands(now, &mut events);
        events
    }

    /// Sends `line` (without its newline) as the answer to the connection's command, and
    /// lets its next command through. `Err` when the client has gone: nothing reached it.
    pub fn answer(&mut self, conn: ConnId, line: &[u8]) -> Result<(), Gone> {
        let Some(c) = self.conns.get_mut(&conn.0) else {
            return Err(Gone);
        };
        let now = Instant::now();
        c.busy = false;
        c.answered = now;
        c.out.extend_from_slice(line);
        c.out.push(b'\n');
        if c.flush(now).is_err() {
            self.close(conn.0);
            return Err(Gone);
        }
        // Its next command may be waiting, or its end (a client that shut its side).
        self.pending |= c.lines.has_event() || c.ended;
        self.watch(conn.0);
        Ok(())
    }

    /// Sends what is waiting to go out on every connection (greetings of new clients whose
    /// command was not answered at once). Call after acting on [`Channel::service`]'s events.
    pub fn flush(&mut self) {
        let now = Instant::now();
        for c in self.conns.values_mut().filter(|c| !c.out.is_empty()) {
            // A client gone is reported by epoll, as a hang-up, on the next service.
            let _ = c.flush(now);
        }
        for id in self.conns.keys().copied().collect::<Vec<_>>() {
            self.watch(id);
        }
    }

    /// Ends a connection from this side (a client that broke the protocol).
    pub fn drop_client(&mut self, conn: ConnId) {
        self.close(conn.0);
    }

    fn accept(&mut self, now: Instant, events: &mut Vec<Event>) {
        loop {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            if self.conns.len() >= MAX_CLIENTS && !self.make_room(now, events) {
                warn!(
                    max = MAX_CLIENTS,
                    "client refused: every connection has a command under way"
                );
                let _ = (&stream).write(b"ERR too many clients connected\n");
                continue;
            }
            let id = self.next;
            self.next += 1;
            let mut conn = Conn {
                stream,
                lines: Lines::new(),
                out: self.greeting.clone(),
                busy: false,
                ended: false,
                since: now,
                spoke: None,
                answered: now,
                stalled: None,
                interest: EpollFlags::empty(),
            };
            // A client sends its command right after connecting: read it now, not after
            // another round through poll. The greeting goes out with the first answer, or
            // in `flush` when the command waits (one write, one wake-up for the client).
            conn.fill(now);
            conn.interest = conn.wanted();
            if self
                .epoll
                .add(&conn.stream, EpollEvent::new(conn.interest, id))
                .is_err()
            {
                continue;
            }
            debug!(conn = id, "client connected");
            self.conns.insert(id, conn);
        }
    }

    /// At the cap: closes the oldest silent connection, else the one idle longest, to
    /// make room for a newcomer. False when every connection has a command under way.
    fn make_room(&mut self, now: Instant, events: &mut Vec<Event>) -> bool {
        let quietest = self
            .conns
            .iter()
            .filter_map(|(&id, c)| c.quiet_since(now).map(|q| (q, id)))
            .min();
        let Some(((spoke, since), id)) = quietest else {
            return false;
        };
        let quiet_ms = now.saturating_duration_since(since).as_millis() as u64;
        info!(
            conn = id,
            spoke, quiet_ms, "client closed to make room for another"
        );
        self.farewell(id, Ending::MadeRoom, events);
        true
    }

    /// Acts on what epoll reported for connection `id`.
    fn ready(&mut self, id: u64, flags: EpollFlags, now: Instant, events: &mut Vec<Event>) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if flags.intersects(EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR) {
            let unread = c.left_unread();
            self.gone(id, unread, Ending::Left, events);
            return;
        }
        if flags.contains(EpollFlags::EPOLLOUT) && c.flush(now).is_err() {
            self.gone(id, true, Ending::Left, events);
            return;
        }
        if flags.contains(EpollFlags::EPOLLIN) {
            c.fill(now);
        }
        self.watch(id);
    }

    /// Closes connections silent past [`SILENCE_LIMIT`], and drops clients whose answers
    /// have not moved for [`STALL_LIMIT`].
    fn limits(&mut self, now: Instant, events: &mut Vec<Event>) {
        let mut silent = Vec::new();
        let mut stalled = Vec::new();
        for (&id, c) in &self.conns {
            if c.spoke.is_none()
                && !c.busy
                && now.saturating_duration_since(c.since) >= SILENCE_LIMIT
            {
                silent.push(id);
            } else if let Some(since) = c.stalled {
                if now.saturating_duration_since(since) >= STALL_LIMIT {
                    stalled.push((id, c.out.len()));
                }
            }
        }
        for id in silent {
            info!(conn = id, "client closed: no command since it connected");
            self.farewell(id, Ending::Silent, events);
        }
        for (id, unsent) in stalled {
            warn!(
                conn = id,
                unsent,
                stall_s = STALL_LIMIT.as_secs(),
                "client dropped: it does not read its answers"
            );
            self.gone(id, true, Ending::Stalled, events);
        }
    }

    /// Gives out the next command of every free connection; drops idle half lines and
    /// closes connections whose client has said all it will and has all its answers.
    fn commands(&mut self, now: Instant, events: &mut Vec<Event>) {
        let mut finished = Vec::new();
        for (&id, c) in self.conns.iter_mut().filter(|(_, c)| c.free()) {
            loop {
                let next = c
                    .lines
                    .next()
                    .or_else(|| c.ended.then(|| c.lines.end()).flatten());
                match next {
                    // A half line dropped for idling: the line behind it is next.
                    Some(Incoming::Dropped(n)) => {
                        warn!(conn = id, len = n, "unfinished command line dropped")
                    }
                    Some(incoming) => {
                        c.busy = true;
                        c.spoke.get_or_insert(now);
                        events.push(Event::Command {
                            conn: ConnId(id),
                            incoming,
                            received: c.lines.received(),
                        });
                        break;
                    }
                    None => {
                        if let Some(Incoming::Dropped(n)) = c.lines.idle(now) {
                            warn!(
                                conn = id,
                                len = n,
                                "unfinished command line dropped after idling"
                            );
                        }
                        if c.ended && c.out.is_empty() {
                            finished.push(id);
                        }
                        break;
                    }
                }
            }
        }
        for id in finished {
            self.gone(id, false, Ending::Left, events);
        }
        for id in self.conns.keys().copied().collect::<Vec<_>>() {
            self.watch(id);
        }
    }

    /// Brings epoll's interest in connection `id` up to date.
    fn watch(&mut self, id: u64) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let wanted = c.wanted();
        if wanted == c.interest {
            return;
        }
        let mut event = EpollEvent::new(wanted, id);
        if self.epoll.modify(&c.stream, &mut event).is_ok() {
            c.interest = wanted;
        }
    }

    /// Tells the client why in one line (if its socket takes it), then closes it.
    fn farewell(&mut self, id: u64, ending: Ending, events: &mut Vec<Event>) {
        if let (Some(c), Some(line)) = (self.conns.get_mut(&id), ending.farewell()) {
            c.out.extend_from_slice(line.as_bytes());
            let _ = c.flush(Instant::now());
        }
        self.gone(id, false, ending, events);
    }

    /// Closes connection `id` and reports it gone.
    fn gone(&mut self, id: u64, unread: bool, ending: Ending, events: &mut Vec<Event>) {
        self.close(id);
        events.push(Event::Gone {
            conn: ConnId(id),
            unread,
            ending,
        });
    }

    fn close(&mut self, id: u64) {
        if let Some(c) = self.conns.remove(&id) {
            let _ = self.epoll.delete(&c.stream);
            debug!(conn = id, "client disconnected");
        }
    }
}

/// The client has gone; the answer did not reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone;

/// A listening socket at `path` whose file is 0600 from the moment it exists, so nobody
/// connects before it has its owner and mode. On Linux the file takes the mode of the
/// socket itself (less the umask), so the socket is chmod-ed before bind(2). Not by
/// setting the umask: that is the whole process's, and two threads setting and restoring
/// it at once (tests run servers side by side) can leave it at 0177 for good.
fn bind_private(path: &Path) -> io::Result<UnixListener> {
    use nix::sys::socket::{bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType};
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    nix::sys::stat::fchmod(&fd, Mode::S_IRUSR | Mode::S_IWUSR)?;
    bind(fd.as_raw_fd(), &nix::sys::socket::UnixAddr::new(path)?)?;
    listen(&fd, Backlog::MAXCONN)?;
    Ok(UnixListener::from(fd))
}

fn epoll_err(e: nix::errno::Errno) -> ChannelError {
    ChannelError::Epoll(e.into())
}

/// Refuses a socket path where this bridge may not listen: anything but nothing or a
/// socket of ours (a link is refused by name), or a socket a running bridge listens on.
/// Nothing is followed: a link is never connected to, and neither is a socket of another
/// user. Returns whether a stale socket of ours is there, to be replaced.
pub fn ensure_free(path: &Path, owner: Owner) -> Result<bool, ChannelError> {
    if !check_stale(path, owner, PathKind::Socket).map_err(ChannelError::Path)? {
        return Ok(false);
    }
    if listening(path) {
        return Err(ChannelError::InUse(path.into()));
    }
    Ok(true)
}

/// Whether something listens on the socket at `path`. The socket is opened without
/// following a link and connected to through that descriptor, so what is asked is the
/// very file that was checked, even if the path changes meanwhile.
fn listening(path: &Path) -> bool {
    let Ok((file, meta)) = open_path(path) else {
        return false;
    };
    meta.file_type().is_socket() && UnixStream::connect(through(&file, path)).is_ok()
}

/// `path` opened as a name only (`O_PATH | O_NOFOLLOW`: a link is the link itself).
fn open_path(path: &Path) -> io::Result<(std::fs::File, std::fs::Metadata)> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).bits())
        .open(path)?;
    let meta = file.metadata()?;
    Ok((file, meta))
}

/// A path that reaches the file `file` was opened on, whatever `path` holds now:
/// `/proc/self/fd/N`, or `path` itself where /proc is not mounted.
fn through(file: &std::fs::File, path: &Path) -> PathBuf {
    let fd = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    if fd.exists() {
        fd
    } else {
        path.into()
    }
}

/// Binds the socket at `path` for `owner`, after checking what was there, and gives it
/// to `owner` through a descriptor of the very socket bound.
fn listen(path: &Path, owner: Owner) -> Result<(UnixListener, Placed), ChannelError> {
    let bind_err = |source| ChannelError::Bind {
        path: path.into(),
        source,
    };
    if ensure_free(path, owner)? {
        std::fs::remove_file(path).map_err(bind_err)?;
    }
    let listener = bind_private(path).map_err(bind_err)?;
    listener.set_nonblocking(true).map_err(bind_err)?;
    let (file, meta) = open_path(path).map_err(bind_err)?;
    if !meta.file_type().is_socket() || meta.uid() != nix::unistd::geteuid().as_raw() {
        let swapped = io::Error::other("the path no longer holds the socket just bound");
        return Err(bind_err(swapped));
    }
    let placed = Placed::new(path, &meta);
    std::os::unix::fs::lchown(path, Some(owner.uid), Some(owner.gid)).map_err(bind_err)?;
    let mode = std::fs::Permissions::from_mode(owner.mode);
    std::fs::set_permissions(through(&file, path), mode).map_err(bind_err)?;
    Ok((listener, placed))
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::ipc::protocol::MAX_LINE;
    use crate::testdir::TestDir;
    use proptest::prelude::*;
    use std::io::{BufRead, BufReader};
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    fn me() -> Owner {
        Owner {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            mode: 0o600,
        }
    }

    fn channel(tag: &str) -> (TestDir, Channel) {
        let dir = TestDir::new(&format!("channel-{tag}"));
        let ch = Channel::open(&dir.join("cmd.sock"), me(), Duration::from_secs(30)).unwrap();
        (dir, ch)
    }

    /// The process's umask, read from /proc without setting it.
    fn umask_now() -> String {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("Umask:"));
        line.expect("a Umask line").to_string()
    }

    #[test]
    fn channels_opened_side_by_side_leave_the_umask_alone() {
        // Tests run servers side by side in one process: setting and restoring the
        // process-wide umask around bind(2) from two threads at once could leave it at
        // 0177, and every directory made after that unusable by a non-root user.
        let before = umask_now();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    for i in 0..200 {
                        let (_dir, ch) = channel(&format!("umask-{t}-{i}"));
                        let mode = std::fs::metadata(ch.path()).unwrap().mode();
                        assert_eq!(mode & 0o777, 0o600);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(umask_now(), before);
    }

    /// Services the channel until it has given `n` events or a second has passed.
    fn events(ch: &mut Channel, n: usize) -> Vec<Event> {
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut got = Vec::new();
        while got.len() < n && Instant::now() < deadline {
            got.extend(ch.service(Instant::now()));
            std::thread::sleep(Duration::from_millis(2));
        }
        got
    }

    /// A connected client past its greeting.
    fn connect(ch: &mut Channel) -> BufReader<UnixStream> {
        let mut client = BufReader::new(UnixStream::connect(ch.path()).unwrap());
        ch.service(Instant::now());
        ch.flush();
        assert!(line(&mut client).starts_with("HELLO"));
        client
    }

    fn line(client: &mut BufReader<UnixStream>) -> String {
        let mut text = String::new();
        client.read_line(&mut text).unwrap();
        text
    }

    /// Writes `bytes` from the client; returns the connection of the one command they give.
    fn send(ch: &mut Channel, client: &mut BufReader<UnixStream>, bytes: &[u8]) -> ConnId {
        client.get_mut().write_all(bytes).unwrap();
        let got = events(ch, 1);
        command(&got[0]).0
    }

    /// Checks that the next event is the end of `conn`, as the client left it.
    fn assert_gone(ch: &mut Channel, conn: ConnId, unread: bool) {
        assert_eq!(events(ch, 1), [gone(conn, unread, Ending::Left)]);
    }

    fn gone(conn: ConnId, unread: bool, ending: Ending) -> Event {
        Event::Gone {
            conn,
            unread,
            ending,
        }
    }

    fn command(event: &Event) -> (ConnId, &[u8]) {
        match event {
            Event::Command {
                conn,
                incoming: Incoming::Line(line),
                ..
            } => (*conn, line),
            other => panic!("not a command: {other:?}"),
        }
    }

    #[test]
    fn socket_is_beside_the_command_fifo_with_the_fifo_mode() {
        assert_eq!(
            socket_path(Path::new("/tmp/tun_cmd")),
            Path::new("/tmp/tun_cmd.sock")
        );
        let (_dir, ch) = channel("mode");
        let meta = std::fs::symlink_metadata(ch.path()).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.mode() & 0o777, 0o600);
        let path = ch.path().to_path_buf();
        drop(ch);
        assert!(!path.exists(), "removed on drop");
    }

    #[test]
    fn greets_with_the_read_timeout() {
        let (_dir, mut ch) = channel("hello");
        let mut client = BufReader::new(UnixStream::connect(ch.path()).unwrap());
        ch.service(Instant::now());
        ch.flush();
        let hello = line(&mut client);
        assert_eq!(hello, "HELLO read_timeout_ms=30000\n");
        assert_eq!(parse_greeting(hello.trim()), Some(Duration::from_secs(30)));
        assert_eq!(parse_greeting("OK"), None);
    }

    #[test]
    fn each_client_gets_its_own_answer() {
        let (_dir, mut ch) = channel("own");
        let mut a = UnixStream::connect(ch.path()).unwrap();
        let mut b = UnixStream::connect(ch.path()).unwrap();
        ch.service(Instant::now());
        a.write_all(b"READ\n").unwrap();
        b.write_all(b"WRITE 45\n").unwrap();
        let got = events(&mut ch, 2);
        let (first, second) = (command(&got[0]), command(&got[1]));
        assert_eq!(first.1, b"READ");
        assert_eq!(second.1, b"WRITE 45");
        // Answered in the other order: each still gets its own.
        ch.answer(second.0, b"OK").unwrap();
        ch.answer(first.0, b"4500").unwrap();
        let (mut a, mut b) = (BufReader::new(a), BufReader::new(b));
        assert!(line(&mut a).starts_with("HELLO"));
        assert!(line(&mut b).starts_with("HELLO"));
        assert_eq!(line(&mut a), "4500\n");
        assert_eq!(line(&mut b), "OK\n");
    }

    #[test]
    fn a_connection_gets_its_next_command_only_after_an_answer() {
        let (_dir, mut ch) = channel("order");
        let mut client = connect(&mut ch);
        client.get_mut().write_all(b"READ\nWRITE 45\n").unwrap();
        let got = events(&mut ch, 2);
        assert_eq!(got.len(), 1, "{got:?}");
        let (conn, _) = command(&got[0]);
        assert!(events(&mut ch, 1).is_empty(), "busy until answered");
        ch.answer(conn, b"TIMEOUT").unwrap();
        let got = events(&mut ch, 1);
        assert_eq!(command(&got[0]), (conn, &b"WRITE 45"[..]));
        assert_eq!(line(&mut client), "TIMEOUT\n");
    }

    #[test]
    fn a_client_that_goes_away_while_waiting_is_seen_at_once() {
        let (_dir, mut ch) = channel("gone");
        let mut client = connect(&mut ch);
        let conn = send(&mut ch, &mut client, b"READ\n");
        drop(client);
        assert_gone(&mut ch, conn, false);
        assert_eq!(ch.answer(conn, b"4500"), Err(Gone), "nothing sent to it");
        assert_eq!(ch.clients(), 0);
    }

    #[test]
    fn a_client_gone_with_its_answer_unread_is_reported() {
        let (_dir, mut ch) = channel("unread");
        let mut client = connect(&mut ch);
        let conn = send(&mut ch, &mut client, b"READ\n");
        ch.answer(conn, b"4500").unwrap();
        drop(client);
        assert_gone(&mut ch, conn, true);
        // One that read its answer and closed left nothing behind.
        let mut client = connect(&mut ch);
        let conn = send(&mut ch, &mut client, b"READ\n");
        ch.answer(conn, b"4500").unwrap();
        assert_eq!(line(&mut client), "4500\n");
        drop(client);
        assert_gone(&mut ch, conn, false);
    }

    #[test]
    fn over_long_line_is_refused_once_it_ends_and_the_connection_goes_on() {
        let (_dir, mut ch) = channel("long");
        let mut client = connect(&mut ch);
        let writer = std::thread::spawn({
            let mut stream = client.get_ref().try_clone().unwrap();
            move || {
                let mut data = vec![b'a'; MAX_LINE + 5000];
                data.extend_from_slice(b"\nREAD\n");
                stream.write_all(&data).unwrap();
            }
        });
        let got = events(&mut ch, 1);
        let Event::Command {
            conn,
            incoming: Incoming::TooLong(n),
            ..
        } = got[0]
        else {
            panic!("{got:?}")
        };
        assert_eq!(n, MAX_LINE + 5000);
        ch.answer(conn, b"ERR too long").unwrap();
        writer.join().unwrap();
        let got = events(&mut ch, 1);
        assert_eq!(command(&got[0]), (conn, &b"READ"[..]));
        assert_eq!(line(&mut client), "ERR too long\n");
    }

    #[test]
    fn a_last_line_without_newline_counts_when_the_client_shuts_its_side() {
        let (_dir, mut ch) = channel("shut");
        let mut client = connect(&mut ch);
        client.get_mut().write_all(b"READ").unwrap();
        client
            .get_ref()
            .shutdown(std::net::Shutdown::Write)
            .unwrap();
        let got = events(&mut ch, 1);
        let (conn, line_) = command(&got[0]);
        assert_eq!(line_, b"READ");
        ch.answer(conn, b"TIMEOUT").unwrap();
        assert_eq!(line(&mut client), "TIMEOUT\n");
        // Said all it will and has its answer: closed from this side.
        assert_gone(&mut ch, conn, false);
    }

    #[test]
    fn a_live_socket_is_refused_and_a_stale_one_replaced() {
        let (dir, ch) = channel("live");
        let path = ch.path().to_path_buf();
        let err = Channel::open(&path, me(), Duration::from_secs(1)).unwrap_err();
        assert!(matches!(err, ChannelError::InUse(_)), "{err}");
        drop(ch);
        // A socket nobody listens on, as after kill -9.
        let stale = UnixListener::bind(&path).unwrap();
        drop(stale);
        assert!(path.exists());
        let ch = Channel::open(&path, me(), Duration::from_secs(1)).unwrap();
        assert_eq!(ch.state(), PathState::Ours);
        let file = dir.join("file");
        std::fs::write(&file, b"keep").unwrap();
        let err = Channel::open(&file, me(), Duration::from_secs(1)).unwrap_err();
        assert!(err.to_string().contains("regular file"), "{err}");
        assert_eq!(std::fs::read(&file).unwrap(), b"keep");
    }

    /// Connects `n` clients, each with a READ given out and not answered.
    fn busy_clients(ch: &mut Channel, n: usize) -> Vec<(BufReader<UnixStream>, ConnId)> {
        (0..n)
            .map(|_| {
                let mut client = connect(ch);
                let conn = send(ch, &mut client, b"READ\n");
                (client, conn)
            })
            .collect()
    }

    /// Reads lines until the end of the connection; the lines read.
    fn to_the_end(client: &mut BufReader<UnixStream>) -> Vec<String> {
        client
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut lines = Vec::new();
        loop {
            let mut text = String::new();
            match client.read_line(&mut text) {
                Ok(0) => return lines,
                Ok(_) => lines.push(text),
                Err(e) => panic!("no end after {lines:?}: {e}"),
            }
        }
    }

    #[test]
    fn with_every_client_busy_one_more_is_told_so() {
        let (_dir, mut ch) = channel("many");
        let _busy = busy_clients(&mut ch, MAX_CLIENTS);
        let mut extra = BufReader::new(UnixStream::connect(ch.path()).unwrap());
        assert!(ch.service(Instant::now()).is_empty());
        assert_eq!(to_the_end(&mut extra), ["ERR too many clients connected\n"]);
        assert_eq!(ch.clients(), MAX_CLIENTS);
    }

    #[test]
    fn at_the_cap_the_oldest_silent_connection_makes_room() {
        let (_dir, mut ch) = channel("room-silent");
        let mut silent = connect(&mut ch);
        let silent_conn = ConnId(0);
        let _busy = busy_clients(&mut ch, MAX_CLIENTS - 1);
        let mut extra = BufReader::new(UnixStream::connect(ch.path()).unwrap());
        let events = ch.service(Instant::now());
        assert_eq!(events, [gone(silent_conn, false, Ending::MadeRoom)]);
        let told = to_the_end(&mut silent);
        assert_eq!(told.len(), 1, "{told:?}");
        assert!(told[0].starts_with("ERR closing: "), "{told:?}");
        ch.flush();
        assert!(line(&mut extra).starts_with("HELLO"));
        let conn = send(&mut ch, &mut extra, b"WRITE 45\n");
        ch.answer(conn, b"ERR no").unwrap();
        assert_eq!(line(&mut extra), "ERR no\n");
    }

    #[test]
    fn at_the_cap_a_connection_idle_a_second_makes_room_the_longest_idle_first() {
        let (_dir, mut ch) = channel("room-idle");
        let mut clients = busy_clients(&mut ch, MAX_CLIENTS);
        for (client, conn) in &mut clients {
            ch.answer(*conn, b"TIMEOUT").unwrap();
            assert_eq!(line(client), "TIMEOUT\n");
        }
        ch.service(Instant::now());
        // Just answered: none has been idle a second yet.
        let mut early = BufReader::new(UnixStream::connect(ch.path()).unwrap());
        assert!(ch.service(Instant::now()).is_empty());
        assert_eq!(to_the_end(&mut early), ["ERR too many clients connected\n"]);
        let _late = UnixStream::connect(ch.path()).unwrap();
        let events = ch.service(Instant::now() + IDLE_MIN);
        let first = clients[0].1;
        assert_eq!(events, [gone(first, false, Ending::MadeRoom)]);
        let told = to_the_end(&mut clients[0].0);
        assert!(told[0].starts_with("ERR closing: "), "{told:?}");
    }

    #[test]
    fn only_a_connection_that_never_sent_a_command_is_closed_for_silence() {
        let (_dir, mut ch) = channel("silence");
        let mut silent = connect(&mut ch);
        silent.get_mut().write_all(b"REA").unwrap();
        let mut spoke = connect(&mut ch);
        let conn = send(&mut ch, &mut spoke, b"WRITE 45\n");
        ch.answer(conn, b"ERR no").unwrap();
        let waiting = busy_clients(&mut ch, 1);
        let now = Instant::now();
        assert!(ch.service(now + SILENCE_LIMIT / 2).is_empty());
        let events = ch.service(now + SILENCE_LIMIT);
        assert_eq!(events, [gone(ConnId(0), false, Ending::Silent)]);
        let told = to_the_end(&mut silent);
        assert_eq!(told.len(), 1, "{told:?}");
        assert!(told[0].contains("no command within 10 s"), "{told:?}");
        // A client that spoke once, and one waiting in READ, stay for as long as they like.
        assert!(ch.service(now + Duration::from_secs(3600)).is_empty());
        assert_eq!(ch.clients(), 2);
        ch.answer(waiting[0].1, b"TIMEOUT").unwrap();
    }

    #[test]
    fn a_half_line_dropped_for_idling_lets_the_next_line_through() {
        let (_dir, mut ch) = channel("dropped");
        let mut client = connect(&mut ch);
        client.get_mut().write_all(b"JUNK").unwrap();
        let t0 = Instant::now();
        ch.service(t0);
        client.get_mut().write_all(b"READ\n").unwrap();
        let later = t0 + crate::ipc::lines::LINE_IDLE * 2;
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut got = Vec::new();
        while got.is_empty() && Instant::now() < deadline {
            got = ch.service(later);
        }
        assert_eq!(command(&got[0]).1, b"READ");
    }

    #[test]
    fn a_client_that_does_not_read_is_held_to_a_bound_then_dropped() {
        let (_dir, mut ch) = channel("stall");
        let client = connect(&mut ch);
        client.get_ref().set_nonblocking(true).unwrap();
        let flood = b"WRITE 45\n".repeat(1000);
        let mut taken = 0;
        let mut answered = 0;
        let mut quiet = 0;
        // Write while the socket takes it, answer everything given out, never read.
        while quiet < 50 {
            let n = (&mut client.get_ref()).write(&flood).unwrap_or(0);
            taken += n;
            let events = ch.service(Instant::now());
            for event in &events {
                if let Event::Command { conn, .. } = event {
                    ch.answer(*conn, &[b'e'; 100]).unwrap();
                    answered += 1;
                }
            }
            quiet = if n == 0 && events.is_empty() {
                quiet + 1
            } else {
                0
            };
            assert!(ch.held() <= HELD_ANSWERS + 2 * CHUNK + 200, "{}", ch.held());
        }
        assert!(taken < 4 << 20, "{taken} bytes taken");
        assert!(answered > 0);
        let events = ch.service(Instant::now() + STALL_LIMIT);
        assert_eq!(events, [gone(ConnId(0), true, Ending::Stalled)]);
        assert_eq!(ch.clients(), 0);
    }

    /// What a test client does with its stream of bytes and its answers.
    #[derive(Debug, Clone)]
    struct Plan {
        bytes: Vec<u8>,
        /// Reads its answers (else never reads one).
        reads: bool,
        /// Shuts its sending side once all is written (else stays connected).
        half_close: bool,
        /// Bytes in each answer it is given.
        answer: usize,
    }

    fn piece() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            4 => Just(b"READ\n".to_vec()),
            4 => Just(b"WRITE zz\r\n".to_vec()),
            3 => proptest::collection::vec(any::<u8>(), 0..200),
            1 => (0usize..2).prop_map(|n| {
                let mut line = vec![b'a'; MAX_LINE + n * 3000];
                line.push(b'\n');
                line
            }),
            1 => Just(b"WRITE zz\n".repeat(500)),
        ]
    }

    fn plan() -> impl Strategy<Value = Plan> {
        (
            proptest::collection::vec(piece(), 0..12),
            any::<bool>(),
            any::<bool>(),
            prop_oneof![Just(8usize), Just(3000), Just(131_071)],
        )
            .prop_map(|(pieces, reads, half_close, answer)| Plan {
                bytes: pieces.concat(),
                reads,
                half_close,
                answer,
            })
    }

    /// The most the channel may hold for one client: a line being read (a buffer that may
    /// have doubled past `MAX_LINE + CHUNK`), and unsent answers up to [`HELD_ANSWERS`]
    /// plus the last one (doubled too).
    fn bound(answer: usize) -> usize {
        2 * (MAX_LINE + CHUNK) + 2 * (HELD_ANSWERS + answer + 64)
    }

    /// Runs the plans against one channel, answering every command at once, until nothing
    /// moves; returns the answers each client read and whether each saw the end.
    fn drive(ch: &mut Channel, plans: &[Plan]) -> Result<Vec<(usize, bool)>, TestCaseError> {
        let mut clients: Vec<UnixStream> = plans
            .iter()
            .map(|_| UnixStream::connect(ch.path()).unwrap())
            .collect();
        let mut sent = vec![0usize; plans.len()];
        let mut read = vec![Vec::<u8>::new(); plans.len()];
        let mut ended = vec![false; plans.len()];
        let mut closed = vec![false; plans.len()];
        let limit: usize = plans.iter().map(|p| bound(p.answer)).sum();
        // The bridge reads a client's big write a page at a time, and the writer gets room
        // only when a whole buffer of it is read: nothing seen moving for a while is not
        // the end.
        let mut still = 0;
        while still < 200 {
            let mut moved = false;
            for (i, (client, plan)) in clients.iter_mut().zip(plans).enumerate() {
                client.set_nonblocking(true).unwrap();
                if sent[i] < plan.bytes.len() {
                    if let Ok(n) = client.write(&plan.bytes[sent[i]..]) {
                        sent[i] += n;
                        moved |= n > 0;
                    }
                } else if plan.half_close && !closed[i] {
                    client.shutdown(std::net::Shutdown::Write).unwrap();
                    closed[i] = true;
                    moved = true;
                }
                let mut chunk = [0u8; 65536];
                while plan.reads && !ended[i] {
                    match client.read(&mut chunk) {
                        Ok(0) => ended[i] = true,
                        Ok(n) => {
                            read[i].extend_from_slice(&chunk[..n]);
                            moved = true;
                        }
                        Err(_) => break,
                    }
                }
            }
            let events = ch.service(Instant::now());
            moved |= !events.is_empty();
            for event in events {
                match event {
                    Event::Command { conn, .. } => {
                        // Connections count up from 0 in the order the plans connected.
                        let answer = vec![b'e'; plans[conn.0 as usize].answer];
                        let _ = ch.answer(conn, &answer);
                    }
                    Event::Gone { .. } => {}
                }
            }
            ch.flush();
            prop_assert!(ch.held() <= limit, "held {} > {limit}", ch.held());
            still = if moved { 0 } else { still + 1 };
            if !moved {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        Ok(read
            .iter()
            .zip(ended)
            .map(|(bytes, end)| (bytes.iter().filter(|&&b| b == b'\n').count(), end))
            .collect())
    }

    /// Answers owed to a stream: one per newline, one more for an unterminated last line
    /// when the client shuts its side (a greeting comes first).
    fn owed(plan: &Plan) -> usize {
        let lines = plan.bytes.iter().filter(|&&b| b == b'\n').count();
        let tail = plan.half_close && plan.bytes.last().is_some_and(|&b| b != b'\n');
        1 + lines + usize::from(tail)
    }

    proptest! {
        // More cases with PROPTEST_CASES=N.
        #![proptest_config(ProptestConfig {
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(24),
            ..ProptestConfig::default()
        })]

        /// Whatever clients send, and whether or not they read, the channel holds a bounded
        /// amount for each; a client that reads and shuts its side gets one answer per
        /// command, then the end.
        #[test]
        fn what_the_channel_holds_is_bounded_and_each_command_answered_once(
            plans in proptest::collection::vec(plan(), 1..5)
        ) {
            let (_dir, mut ch) = channel("prop");
            let got = drive(&mut ch, &plans)?;
            for (plan, (lines, end)) in plans.iter().zip(got) {
                if plan.reads && plan.half_close {
                    prop_assert_eq!(lines, owed(plan));
                    prop_assert!(end, "no end of file");
                }
            }
        }
    }
}
