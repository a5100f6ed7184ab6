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
//! given out only once the last one was answered. Lines are split by [`Lines`] (the same
//! limits as the command FIFO). All connections are watched through one epoll descriptor
//! ([`Channel::fd`]), which the server's loop polls beside the device and the command FIFO,
//! then calls [`Channel::service`].

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::stat::Mode;
use tracing::{debug, warn};

use crate::ipc::fifo::{clear_stale_kind, FifoError, Owner, PathKind, PathState, Placed, CHUNK};
use crate::ipc::lines::{Incoming, Lines};

/// Most clients connected at once; one more is told so and closed.
pub const MAX_CLIENTS: usize = 64;

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
    /// The client went away; `unread`: it left bytes of an answer unread.
    Gone { conn: ConnId, unread: bool },
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
    /// What epoll watches for now.
    interest: EpollFlags,
}

impl Conn {
    /// Readable only between commands, so a client's next lines wait in the socket.
    fn wanted(&self) -> EpollFlags {
        let mut flags = EpollFlags::empty();
        if !self.busy && !self.ended {
            flags |= EpollFlags::EPOLLIN;
        }
        if !self.out.is_empty() {
            flags |= EpollFlags::EPOLLOUT;
        }
        flags
    }

    /// Writes what the socket takes of `out`; an error means the client is gone.
    fn flush(&mut self) -> io::Result<()> {
        while !self.out.is_empty() {
            match self.stream.write(&self.out) {
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads one chunk into the line splitter; notes the end of the client's input.
    fn fill(&mut self) {
        let mut chunk = [0u8; CHUNK];
        match self.stream.read(&mut chunk) {
            Ok(0) => self.ended = true,
            Ok(n) => self.lines.push(&chunk[..n], Instant::now()),
            Err(_) => {}
        }
    }

    /// Whether the client left unread bytes behind (the socket reports ECONNRESET).
    fn left_unread(&self) -> bool {
        !self.out.is_empty() || matches!(self.stream.take_error(), Ok(Some(_)))
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
    /// A connection was answered with its next command already read: service soon.
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
    /// answered has its next command already read).
    pub fn has_pending(&self) -> bool {
        self.pending
    }

    /// How many clients are connected.
    pub fn clients(&self) -> usize {
        self.conns.len()
    }

    /// Accepts clients, reads and writes what is ready, notes hang-ups and gives out the
    /// next command of every connection that is not waiting for an answer, oldest
    /// connection first. Never waits.
    pub fn service(&mut self) -> Vec<Event> {
        self.pending = false;
        let mut events = Vec::new();
        let mut ready = [EpollEvent::empty(); 32];
        let n = self.epoll.wait(&mut ready, EpollTimeout::ZERO).unwrap_or(0);
        for ev in &ready[..n] {
            match ev.data() {
                LISTENER => self.accept(),
                id => self.ready(id, ev.events(), &mut events),
            }
        }
        self.commands(Instant::now(), &mut events);
        events
    }

    /// Sends `line` (without its newline) as the answer to the connection's command, and
    /// lets its next command through. `Err` when the client has gone: nothing reached it.
    pub fn answer(&mut self, conn: ConnId, line: &[u8]) -> Result<(), Gone> {
        let Some(c) = self.conns.get_mut(&conn.0) else {
            return Err(Gone);
        };
        c.busy = false;
        self.pending |= !c.lines.is_empty();
        c.out.extend_from_slice(line);
        c.out.push(b'\n');
        if c.flush().is_err() {
            self.close(conn.0);
            return Err(Gone);
        }
        self.watch(conn.0);
        Ok(())
    }

    /// Sends what is waiting to go out on every connection (greetings of new clients whose
    /// command was not answered at once). Call after acting on [`Channel::service`]'s events.
    pub fn flush(&mut self) {
        for c in self.conns.values_mut().filter(|c| !c.out.is_empty()) {
            // A client gone is reported by epoll, as a hang-up, on the next service.
            let _ = c.flush();
        }
        for id in self.conns.keys().copied().collect::<Vec<_>>() {
            self.watch(id);
        }
    }

    /// Ends a connection from this side (a client that broke the protocol).
    pub fn drop_client(&mut self, conn: ConnId) {
        self.close(conn.0);
    }

    fn accept(&mut self) {
        loop {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            if self.conns.len() >= MAX_CLIENTS {
                warn!(max = MAX_CLIENTS, "client refused: too many connected");
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
                interest: EpollFlags::empty(),
            };
            // A client sends its command right after connecting: read it now, not after
            // another round through poll. The greeting goes out with the first answer, or
            // in `flush` when the command waits (one write, one wake-up for the client).
            conn.fill();
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

    /// Acts on what epoll reported for connection `id`.
    fn ready(&mut self, id: u64, flags: EpollFlags, events: &mut Vec<Event>) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if flags.intersects(EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR) {
            let unread = c.left_unread();
            self.close(id);
            events.push(Event::Gone {
                conn: ConnId(id),
                unread,
            });
            return;
        }
        if flags.contains(EpollFlags::EPOLLOUT) && c.flush().is_err() {
            let unread = true;
            self.close(id);
            events.push(Event::Gone {
                conn: ConnId(id),
                unread,
            });
            return;
        }
        if flags.contains(EpollFlags::EPOLLIN) {
            c.fill();
        }
        self.watch(id);
    }

    /// Gives out the next command of every free connection; drops idle half lines and
    /// closes connections whose client has said all it will and has all its answers.
    fn commands(&mut self, now: Instant, events: &mut Vec<Event>) {
        let mut finished = Vec::new();
        for (&id, c) in self.conns.iter_mut().filter(|(_, c)| !c.busy) {
            match c
                .lines
                .next()
                .or_else(|| c.ended.then(|| c.lines.end()).flatten())
            {
                Some(Incoming::Dropped(n)) => {
                    warn!(conn = id, len = n, "unfinished command line dropped")
                }
                Some(incoming) => {
                    c.busy = true;
                    events.push(Event::Command {
                        conn: ConnId(id),
                        incoming,
                        received: c.lines.received(),
                    });
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
                }
            }
        }
        for id in finished {
            self.close(id);
            events.push(Event::Gone {
                conn: ConnId(id),
                unread: false,
            });
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

/// Binds the socket at `path` for `owner`, after checking what was there.
fn listen(path: &Path, owner: Owner) -> Result<(UnixListener, Placed), ChannelError> {
    if UnixStream::connect(path).is_ok() {
        return Err(ChannelError::InUse(path.into()));
    }
    clear_stale_kind(path, owner, PathKind::Socket).map_err(ChannelError::Path)?;
    let bind_err = |source| ChannelError::Bind {
        path: path.into(),
        source,
    };
    let listener = bind_private(path).map_err(bind_err)?;
    listener.set_nonblocking(true).map_err(bind_err)?;
    let meta = std::fs::symlink_metadata(path).map_err(bind_err)?;
    let placed = Placed::new(path, &meta);
    std::os::unix::fs::lchown(path, Some(owner.uid), Some(owner.gid)).map_err(bind_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(owner.mode))
        .map_err(bind_err)?;
    Ok((listener, placed))
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::ipc::protocol::MAX_LINE;
    use crate::testdir::TestDir;
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
            got.extend(ch.service());
            std::thread::sleep(Duration::from_millis(2));
        }
        got
    }

    /// A connected client past its greeting.
    fn connect(ch: &mut Channel) -> BufReader<UnixStream> {
        let mut client = BufReader::new(UnixStream::connect(ch.path()).unwrap());
        ch.service();
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

    /// Checks that the next event is the end of `conn`.
    fn assert_gone(ch: &mut Channel, conn: ConnId, unread: bool) {
        assert_eq!(events(ch, 1), [Event::Gone { conn, unread }]);
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
        ch.service();
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
        ch.service();
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

    #[test]
    fn too_many_clients_are_told_so() {
        let (_dir, mut ch) = channel("many");
        let clients: Vec<_> = (0..MAX_CLIENTS)
            .map(|_| UnixStream::connect(ch.path()).unwrap())
            .collect();
        ch.service();
        assert_eq!(ch.clients(), MAX_CLIENTS);
        let mut extra = BufReader::new(UnixStream::connect(ch.path()).unwrap());
        ch.service();
        assert_eq!(line(&mut extra), "ERR too many clients connected\n");
        drop(clients);
    }
}
