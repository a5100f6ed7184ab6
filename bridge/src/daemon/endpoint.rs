//! The FIFO endpoint: the daemon's side of the two shared FIFOs, one command at a time.
//!
//! Its shape is the channel's ([`crate::ipc::channel::Channel`]): the loop polls its
//! descriptor, tells it what poll saw ([`FifoEndpoint::woken`]), takes its events
//! ([`FifoEndpoint::next_event`]) and answers. A command is read only once the one before
//! it is done, in the order they came. Its turn goes through these states:
//!
//! - **deciding**: the command was given out as [`FifoEvent::Command`]; the loop answers
//!   it ([`FifoEndpoint::answer`]) or, for a READ, lets it wait ([`FifoEndpoint::read`]);
//! - **opening**: the answer waits for its client to open the answer FIFO, at most the
//!   reply grace after the command came (no event says when a reader opens it: it is
//!   tried again every millisecond); a READ whose client never opens it takes nothing;
//! - **waiting**: a READ whose client is there waits for a packet
//!   ([`FifoEvent::Reading`]); it gets one ([`FifoEndpoint::hand`]) or TIMEOUT
//!   ([`FifoEndpoint::time_out`]), or its client leaves ([`FifoEvent::Abandoned`]);
//! - **sending**: the answer line goes out as fast as the pipe takes it; a packet whose
//!   line does not reach its reader is reported [`FifoEvent::Undelivered`], and what part
//!   of a line a stalled reader left in the pipe is taken out before the next client comes.
//!
//! The write end of the answer FIFO is closed after every answer. The bridge cannot see a
//! reader take a line from the pipe, only whether its bytes are still there: the reply
//! grace after an answer went out, the endpoint takes whatever is left in the pipe, and a
//! whole answer still there was never read ([`FifoEvent::Unread`] when it carried a
//! packet). Which packet a READ gets, and what becomes of it, is the ledger's business,
//! not this module's.

use std::io::Write as _;
use std::os::fd::BorrowedFd;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::poll::PollFlags;
use tracing::{error, info, warn};

use crate::daemon::counts::{Count, Counts};
use crate::daemon::error::ServeError;
use crate::ipc::fifo::{
    take_unread, AnswerPipe, CommandReader, Fifo, FifoError, Incoming, Owner, PathState,
};
use crate::ipc::protocol::Answer;

/// How often an answer waiting for its reader tries the answer FIFO again (no event
/// tells when a reader opens it).
const READER_RETRY: Duration = Duration::from_millis(1);

/// What the FIFO endpoint has for the loop.
#[derive(Debug, PartialEq, Eq)]
pub enum FifoEvent {
    /// A command line (never a dropped one: those are logged here), read at `received`:
    /// answer it with [`FifoEndpoint::answer`], or for a READ call [`FifoEndpoint::read`].
    Command {
        incoming: Incoming,
        received: Instant,
    },
    /// The READ's client opened the answer FIFO at `opened`: it waits for a packet, in
    /// its place as asked at `asked` (when its line was read).
    Reading { asked: Instant, opened: Instant },
    /// The waiting READ's client went away: it takes no packet.
    Abandoned,
    /// The packet's line reached its reader whole at `at`.
    Delivered { at: Instant },
    /// The packet's line did not reach its reader: the packet goes back.
    Undelivered,
    /// The packet delivered at `handover` was still in the pipe, whole, the reply grace
    /// later: its reader died without reading it (while another process held the answer
    /// FIFO open). Taken out of the pipe; the packet goes back.
    Unread { handover: Instant },
}

/// The last answer written to the answer FIFO, until its reader has had the reply grace
/// to take it.
#[derive(Debug)]
struct InPipe {
    /// The answer line, newline included.
    line: Vec<u8>,
    /// When the packet it carries was delivered, if it is a READ's.
    handover: Option<Instant>,
    /// When to look.
    due: Instant,
}

/// The most an answer FIFO holds (Linux's default pipe size): what is taken out of it
/// when an answer was left unread.
const PIPE_SIZE: usize = 65536;

/// The command being answered.
#[derive(Debug)]
enum Turn {
    /// Given out as an event; the loop decides the answer.
    Deciding { received: Instant },
    /// Waiting for the client to open the answer FIFO. A READ (`label` None) goes on to
    /// wait for a packet; any other answer is already in the line buffer, `label` its kind.
    Opening {
        received: Instant,
        label: Option<&'static str>,
    },
    /// A READ whose reader is there, waiting for a packet.
    Waiting { pipe: AnswerPipe },
    /// The answer line in the line buffer, `sent` bytes of it written; `packet`: it
    /// carries one. Given up when the reader takes nothing until `deadline`.
    Sending {
        pipe: AnswerPipe,
        sent: usize,
        deadline: Instant,
        packet: bool,
    },
}

/// Where a step of the turn got to.
enum Step {
    /// The turn waits for a reader, a packet or room in the pipe.
    Wait(Turn),
    /// The turn goes on, and the loop has an event to act on first.
    Tell(Turn, FifoEvent),
    /// The command is done; the loop may have an event to act on.
    Done(Option<FifoEvent>),
}

/// The two FIFOs and the command under way.
#[derive(Debug)]
pub struct FifoEndpoint {
    reader: CommandReader,
    cmd: Fifo,
    resp: Fifo,
    owner: Owner,
    reply_grace: Duration,
    turn: Option<Turn>,
    /// Poll has just said the command FIFO is readable: the next read needs no second poll.
    readable: bool,
    /// Poll has just said the answer FIFO's reader went away.
    hangup: bool,
    /// The answer line being sent, reused from answer to answer.
    line: Vec<u8>,
    /// The last answer sent, until it is known to be read or taken back.
    in_pipe: Option<InPipe>,
    counts: Arc<Counts>,
}

impl FifoEndpoint {
    /// Makes the command FIFO at `cmd` (claimed for this bridge) and the answer FIFO at
    /// `resp` for `owner`, and opens the command FIFO for reading. An answer waits at most
    /// `reply_grace` for its reader.
    pub fn open(
        cmd: &Path,
        resp: &Path,
        owner: Owner,
        reply_grace: Duration,
        counts: Arc<Counts>,
    ) -> Result<FifoEndpoint, ServeError> {
        let cmd_fifo = Fifo::create_command(cmd, owner).map_err(ServeError::Fifo)?;
        let resp = Fifo::create(resp, owner).map_err(ServeError::Fifo)?;
        let reader = CommandReader::open(cmd).map_err(|source| {
            ServeError::Fifo(FifoError::Open {
                path: cmd.into(),
                source,
            })
        })?;
        Ok(FifoEndpoint {
            reader,
            cmd: cmd_fifo,
            resp,
            owner,
            reply_grace,
            turn: None,
            readable: false,
            hangup: false,
            line: Vec::new(),
            in_pipe: None,
            counts,
        })
    }

    /// The descriptor to poll and for what: the command FIFO between commands, the answer
    /// FIFO while a READ waits (for its reader leaving) or a line waits for room.
    pub fn interest(&self) -> Option<(BorrowedFd<'_>, PollFlags)> {
        match &self.turn {
            None => Some((self.reader.fd(), PollFlags::POLLIN)),
            Some(Turn::Waiting { pipe }) => Some((pipe.fd(), PollFlags::empty())),
            Some(Turn::Sending { pipe, .. }) => Some((pipe.fd(), PollFlags::POLLOUT)),
            Some(Turn::Opening { .. } | Turn::Deciding { .. }) => None,
        }
    }

    /// How soon the turn needs another look without any event, if it does.
    pub fn wake_within(&self, now: Instant) -> Option<Duration> {
        let turn = match &self.turn {
            Some(Turn::Opening { .. }) => Some(READER_RETRY),
            Some(Turn::Sending { deadline, .. }) => {
                return Some(deadline.saturating_duration_since(now))
            }
            _ => None,
        };
        let look = self
            .in_pipe
            .as_ref()
            .map(|p| p.due.saturating_duration_since(now));
        turn.into_iter().chain(look).min()
    }

    /// What poll said of the descriptor of [`FifoEndpoint::interest`] (empty: nothing).
    pub fn woken(&mut self, revents: PollFlags) {
        self.readable = self.turn.is_none() && !revents.is_empty();
        // Only the answer FIFO of a waiting READ is polled for its reader leaving (the
        // command FIFO reports a hang-up whenever a client has sent its line and closed).
        self.hangup = matches!(self.turn, Some(Turn::Waiting { .. }))
            && revents.intersects(PollFlags::POLLERR | PollFlags::POLLHUP);
    }

    /// Takes the turn as far as it goes without waiting, and then the next commands; the
    /// first thing the loop must act on, or `None` when everything waits.
    pub fn next_event(&mut self) -> Option<FifoEvent> {
        if let Some(event) = self.reclaim(Instant::now()) {
            return Some(event);
        }
        loop {
            let Some(turn) = self.turn.take() else {
                return self.next_command();
            };
            match self.step(turn) {
                Step::Wait(turn) => {
                    self.turn = Some(turn);
                    return None;
                }
                Step::Tell(turn, event) => {
                    self.turn = Some(turn);
                    return Some(event);
                }
                Step::Done(Some(event)) => return Some(event),
                Step::Done(None) => {}
            }
        }
    }

    /// Answers the command given out with `answer`, once its client opens the answer FIFO.
    pub fn answer(&mut self, answer: &Answer) {
        let Some(received) = self.deciding() else {
            return;
        };
        self.line.clear();
        let _ = writeln!(self.line, "{answer}");
        self.turn = Some(Turn::Opening {
            received,
            label: Some(answer.label()),
        });
    }

    /// The command given out is a READ: it waits for a packet once its client opens the
    /// answer FIFO ([`FifoEvent::Reading`]).
    pub fn read(&mut self) {
        if let Some(received) = self.deciding() {
            self.turn = Some(Turn::Opening {
                received,
                label: None,
            });
        }
    }

    /// When the command given out was read, if one is being decided.
    fn deciding(&mut self) -> Option<Instant> {
        self.take_turn(|turn| match turn {
            Turn::Deciding { received } => Ok(received),
            other => Err(other),
        })
    }

    /// Takes the turn apart when `pick` accepts it; leaves it as it was otherwise.
    fn take_turn<T>(&mut self, pick: impl FnOnce(Turn) -> Result<T, Turn>) -> Option<T> {
        match pick(self.turn.take()?) {
            Ok(taken) => Some(taken),
            Err(turn) => {
                self.turn = Some(turn);
                None
            }
        }
    }

    /// Gives the waiting READ this packet, sent from [`FifoEndpoint::next_event`]; false
    /// when no READ waits (the packet is not taken).
    pub fn hand(&mut self, packet: &[u8]) -> bool {
        let Some(pipe) = self.waiting() else {
            return false;
        };
        let hex_len = packet.len() * 2;
        self.line.resize(hex_len + 1, b'\n');
        // The buffer is exactly twice the packet's length: encoding cannot fail.
        let _ = hex::encode_to_slice(packet, &mut self.line[..hex_len]);
        self.line[hex_len] = b'\n';
        self.sending(pipe, true);
        true
    }

    /// Answers the waiting READ with TIMEOUT, sent from [`FifoEndpoint::next_event`].
    pub fn time_out(&mut self) {
        if let Some(pipe) = self.waiting() {
            self.line.clear();
            self.line.extend_from_slice(b"TIMEOUT\n");
            self.sending(pipe, false);
        }
    }

    /// The answer FIFO of the READ waiting for a packet, if one waits.
    fn waiting(&mut self) -> Option<AnswerPipe> {
        self.take_turn(|turn| match turn {
            Turn::Waiting { pipe } => Ok(pipe),
            other => Err(other),
        })
    }

    /// Starts sending the line in the buffer.
    fn sending(&mut self, pipe: AnswerPipe, packet: bool) {
        self.turn = Some(Turn::Sending {
            pipe,
            sent: 0,
            deadline: Instant::now() + self.reply_grace,
            packet,
        });
    }

    /// Ends the turn under way at shutdown: a READ waiting learns at once, best effort,
    /// that no packet is coming (`ERR bridge stopping`). (A packet on its way is the
    /// ledger's to put back.)
    pub fn finish(&mut self) {
        if let Some(Turn::Waiting { pipe }) = self.turn.take() {
            let _ = pipe.write_some(format!("{}\n", Answer::stopping()).as_bytes());
        }
    }

    /// Takes the last answer out of the pipe when its reader has not read it within the
    /// reply grace (`now` past its time to look); a packet in it is reported unread. Not
    /// while an answer is being written.
    fn reclaim(&mut self, now: Instant) -> Option<FifoEvent> {
        let due = self.in_pipe.as_ref().is_some_and(|p| p.due <= now);
        if !due || matches!(self.turn, Some(Turn::Sending { .. })) {
            return None;
        }
        let sent = self.in_pipe.take()?;
        let taken = match take_unread(self.resp.path(), PIPE_SIZE) {
            Ok(taken) => taken,
            Err(e) => {
                warn!(error = %e, "cannot look into the answer FIFO");
                return None;
            }
        };
        if taken.is_empty() {
            return None;
        }
        // Bytes before the line are an earlier answer nobody read, or someone else's.
        let whole = taken.ends_with(&sent.line);
        let Some(stray) = taken.len().checked_sub(sent.line.len()).filter(|_| whole) else {
            warn!(
                len = taken.len(),
                "stray bytes taken out of the answer FIFO"
            );
            return None;
        };
        if stray > 0 {
            warn!(len = stray, "stray bytes taken out of the answer FIFO");
        }
        match sent.handover {
            Some(handover) => {
                self.counts.add(Count::Abandoned);
                Some(FifoEvent::Unread { handover })
            }
            None => {
                self.counts.add(Count::Discarded);
                let len = sent.line.len();
                warn!(len, "an answer nobody read taken out of the answer FIFO");
                None
            }
        }
    }

    /// Recreates a deleted FIFO; fails when one was replaced by something else.
    pub fn check_paths(&mut self) -> Result<(), ServeError> {
        for command in [true, false] {
            let fifo = if command { &self.cmd } else { &self.resp };
            match fifo.state() {
                PathState::Ours => continue,
                PathState::Replaced => return Err(ServeError::FifoReplaced(fifo.path().into())),
                PathState::Missing => {}
            }
            let path = fifo.path().to_path_buf();
            warn!(path = %path.display(), "FIFO was deleted; recreating it");
            if command {
                self.cmd = Fifo::create_command(&path, self.owner).map_err(ServeError::Fifo)?;
                self.reader.reopen().map_err(ServeError::ReadCommand)?;
            } else {
                self.resp = Fifo::create(&path, self.owner).map_err(ServeError::Fifo)?;
            }
        }
        Ok(())
    }

    /// Reads the next command line, if one is there, and gives it out.
    fn next_command(&mut self) -> Option<FifoEvent> {
        loop {
            let next = if std::mem::take(&mut self.readable) {
                self.reader.next_ready()
            } else {
                self.reader.next(Duration::ZERO)
            };
            let incoming = match next {
                Ok(Some(incoming)) => incoming,
                Ok(None) => return None,
                Err(e) => {
                    warn!(error = %e, "cannot read the command FIFO; reopening it");
                    if let Err(e) = self.reader.reopen() {
                        error!(error = %e, "cannot reopen the command FIFO");
                    }
                    return None;
                }
            };
            if let Incoming::Dropped(n) = incoming {
                self.counts.add(Count::LineDropped);
                warn!(len = n, "unfinished command line dropped after idling");
                continue;
            }
            let received = self.reader.received();
            self.turn = Some(Turn::Deciding { received });
            return Some(FifoEvent::Command { incoming, received });
        }
    }

    /// Takes one turn one step further.
    fn step(&mut self, turn: Turn) -> Step {
        match turn {
            Turn::Deciding { .. } => Step::Wait(turn),
            Turn::Opening { received, label } => self.open_answer(received, label),
            Turn::Waiting { pipe } => {
                if std::mem::take(&mut self.hangup) && pipe.reader_gone() {
                    self.counts.add(Count::Abandoned);
                    info!("READ abandoned: its reader went away");
                    return Step::Done(Some(FifoEvent::Abandoned));
                }
                Step::Wait(Turn::Waiting { pipe })
            }
            Turn::Sending {
                pipe,
                sent,
                deadline,
                packet,
            } => self.send(pipe, sent, deadline, packet),
        }
    }

    /// Opens the answer FIFO if the command's reader is there; gives up when the grace
    /// period since the command arrived is over, so a burst of unread commands is given
    /// up on within one period, not one period per command.
    fn open_answer(&mut self, received: Instant, label: Option<&'static str>) -> Step {
        let pipe = match AnswerPipe::open(self.resp.path()) {
            Ok(Some(pipe)) => pipe,
            Ok(None) if received.elapsed() < self.reply_grace => {
                return Step::Wait(Turn::Opening { received, label })
            }
            Ok(None) => {
                match label {
                    None => {
                        self.counts.add(Count::Abandoned);
                        warn!("READ abandoned: nobody is reading the answer FIFO");
                    }
                    Some(label) => {
                        self.counts.add(Count::Discarded);
                        warn!(answer = label, "nobody read the answer; discarded");
                    }
                }
                return Step::Done(None);
            }
            Err(e) => {
                warn!(error = %e, "cannot open the answer FIFO");
                return Step::Done(None);
            }
        };
        if label.is_some() {
            let deadline = Instant::now() + self.reply_grace;
            return self.send(pipe, 0, deadline, false);
        }
        // The client has sent its line and closed: reopen now, not after the hand-over.
        if let Err(e) = self.reader.reopen_if_ended() {
            warn!(error = %e, "cannot reopen the command FIFO");
        }
        let opened = Instant::now();
        let event = FifoEvent::Reading {
            asked: received,
            opened,
        };
        Step::Tell(Turn::Waiting { pipe }, event)
    }

    /// Writes what the pipe takes of the answer line.
    fn send(&mut self, pipe: AnswerPipe, sent: usize, deadline: Instant, packet: bool) -> Step {
        let failed = match pipe.write_some(&self.line[sent..]) {
            Ok(n) if sent + n == self.line.len() => None,
            Ok(0) if Instant::now() >= deadline => Some("reader stopped reading".to_string()),
            Ok(n) => {
                // Progress moves the deadline: it is for a reader that stopped reading.
                let deadline = if n > 0 {
                    Instant::now() + self.reply_grace
                } else {
                    deadline
                };
                return Step::Wait(Turn::Sending {
                    pipe,
                    sent: sent + n,
                    deadline,
                    packet,
                });
            }
            Err(e) => Some(e.to_string()),
        };
        drop(pipe);
        let now = Instant::now();
        if failed.is_none() {
            self.in_pipe = Some(InPipe {
                line: self.line.clone(),
                handover: packet.then_some(now),
                due: now + self.reply_grace,
            });
        } else if sent > 0 && self.in_pipe.is_none() {
            // Part of the line is in the pipe, its reader stalled: taken out at the next
            // look, before the next client opens the FIFO and reads it as its answer. (An
            // earlier answer still there takes it out with it when its time comes.)
            self.in_pipe = Some(InPipe {
                line: self.line[..sent].to_vec(),
                handover: None,
                due: now,
            });
        }
        match (failed, packet) {
            (None, true) => Step::Done(Some(FifoEvent::Delivered { at: now })),
            (None, false) => Step::Done(None),
            (Some(error), true) => {
                warn!(error, "packet not delivered; back to the head of the queue");
                Step::Done(Some(FifoEvent::Undelivered))
            }
            (Some(error), false) => {
                warn!(error, "answer not delivered");
                Step::Done(None)
            }
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use std::fs::{File, OpenOptions};
    use std::io::{ErrorKind, Read as _};
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    use std::path::PathBuf;

    use nix::fcntl::OFlag;
    use nix::poll::{poll, PollFd, PollTimeout};

    use crate::testdir::TestDir;

    /// A reply grace no test outlives: where a test needs it over, it passes the time in.
    const LONG: Duration = Duration::from_secs(60);
    /// A reply grace a test waits out.
    const SHORT: Duration = Duration::from_millis(50);
    /// How long a test waits for what must come, on a loaded machine.
    const PATIENCE: Duration = Duration::from_secs(20);
    /// The longest nap between two looks, as the server's loop naps.
    const TICK: Duration = Duration::from_millis(10);

    /// An endpoint on FIFOs of its own in a fresh directory.
    struct Bench {
        ep: FifoEndpoint,
        counts: Arc<Counts>,
        cmd: PathBuf,
        resp: PathBuf,
        _dir: TestDir,
    }

    impl Bench {
        fn new(tag: &str, reply_grace: Duration) -> Bench {
            let dir = TestDir::new(&format!("endpoint-{tag}"));
            let (cmd, resp) = (dir.join("cmd"), dir.join("resp"));
            let owner = Owner {
                uid: nix::unistd::geteuid().as_raw(),
                gid: nix::unistd::getegid().as_raw(),
                mode: 0o600,
            };
            let counts = Arc::new(Counts::default());
            let ep = FifoEndpoint::open(&cmd, &resp, owner, reply_grace, counts.clone()).unwrap();
            Bench {
                ep,
                counts,
                cmd,
                resp,
                _dir: dir,
            }
        }

        /// Writes `text` into the command FIFO and closes it, as `echo READ > cmd` does.
        fn send(&self, text: &str) {
            let mut writer = OpenOptions::new().write(true).open(&self.cmd).unwrap();
            writer.write_all(text.as_bytes()).unwrap();
        }

        /// A client's read end of the answer FIFO.
        fn client(&self) -> AnswerReader {
            AnswerReader::open(&self.resp)
        }

        /// Polls what the endpoint asks for, as the server's loop does, and takes its next
        /// event; `None` when none comes within `within`.
        fn pump(&mut self, within: Duration) -> Option<FifoEvent> {
            let deadline = Instant::now() + within;
            loop {
                let now = Instant::now();
                let nap = [self.ep.wake_within(now), Some(TICK)]
                    .into_iter()
                    .flatten()
                    .fold(deadline.saturating_duration_since(now), Duration::min);
                let revents = match self.ep.interest() {
                    Some((fd, events)) => {
                        let mut fds = [PollFd::new(fd, events)];
                        poll(&mut fds, PollTimeout::try_from(nap).unwrap()).unwrap();
                        fds[0].revents().unwrap_or(PollFlags::empty())
                    }
                    None => {
                        std::thread::sleep(nap);
                        PollFlags::empty()
                    }
                };
                self.ep.woken(revents);
                if let Some(event) = self.ep.next_event() {
                    return Some(event);
                }
                if Instant::now() >= deadline {
                    return None;
                }
            }
        }

        /// The next event, which must come.
        fn event(&mut self) -> FifoEvent {
            self.pump(PATIENCE).expect("an event within the patience")
        }

        /// The next command line, which must come, and when it was read.
        fn command(&mut self) -> (Incoming, Instant) {
            match self.event() {
                FifoEvent::Command { incoming, received } => (incoming, received),
                other => panic!("not a command: {other:?}"),
            }
        }

        /// Sends a READ and lets it wait for a packet (its client has the answer FIFO open).
        fn reading(&mut self) {
            self.send("READ\n");
            assert_eq!(self.command().0, Incoming::Line(b"READ".to_vec()));
            self.ep.read();
            let event = self.event();
            assert!(matches!(event, FifoEvent::Reading { .. }), "{event:?}");
        }

        /// Hands the waiting READ `packet`; when its line went out whole.
        fn deliver(&mut self, packet: &[u8]) -> Instant {
            assert!(self.ep.hand(packet), "a READ waits");
            match self.event() {
                FifoEvent::Delivered { at } => at,
                other => panic!("not delivered: {other:?}"),
            }
        }

        /// A packet delivered to a client that goes without reading it, while another
        /// process holds the answer FIFO open, so the pipe keeps it: that stray reader, and
        /// when the packet went out.
        fn left_unread(&mut self) -> (AnswerReader, Instant) {
            let stray = self.client();
            let client = self.client();
            self.reading();
            let at = self.deliver(&PACKET);
            drop(client);
            (stray, at)
        }

        /// When the last answer sent is looked for in the pipe.
        fn due(&self) -> Instant {
            let sent = self.ep.in_pipe.as_ref().expect("an answer in the pipe");
            sent.due
        }

        /// Takes the turn until no command is under way; the events it gave on the way.
        fn finish_turn(&mut self) -> Vec<FifoEvent> {
            let deadline = Instant::now() + PATIENCE;
            let mut events = Vec::new();
            while self.ep.turn.is_some() {
                assert!(
                    Instant::now() < deadline,
                    "the turn never ended: {events:?}"
                );
                events.extend(self.pump(TICK));
            }
            events
        }

        /// Nothing comes for a while (a negative: a short look is enough).
        fn quiet(&mut self) {
            let event = self.pump(Duration::from_millis(100));
            assert_eq!(event, None);
        }
    }

    /// A client's read end of the answer FIFO, opened without waiting for the bridge (a
    /// client's `cat` opens it blocking; this one is read only once the bridge has written).
    struct AnswerReader(File);

    impl AnswerReader {
        fn open(path: &Path) -> AnswerReader {
            let file = OpenOptions::new()
                .read(true)
                .custom_flags(OFlag::O_NONBLOCK.bits())
                .open(path)
                .unwrap();
            AnswerReader(file)
        }

        /// What the bridge wrote, up to the end of file; fails when the bridge still holds
        /// the write end open (the read would wait).
        fn read_to_eof(&mut self) -> String {
            let mut got = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                match self.0.read(&mut chunk) {
                    Ok(0) => return String::from_utf8(got).unwrap(),
                    Ok(n) => got.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => panic!(
                        "the answer FIFO's write end is still open after {:?}",
                        String::from_utf8_lossy(&got)
                    ),
                    Err(e) => panic!("{e}"),
                }
            }
        }
    }

    /// Some packet: the endpoint sends its hex without looking into it.
    const PACKET: [u8; 6] = [0x45, 0x00, 0x00, 0x1c, 0xbe, 0xef];

    #[test]
    fn a_command_line_comes_out_with_when_it_was_read() {
        let mut b = Bench::new("command", LONG);
        assert_eq!(b.pump(Duration::ZERO), None, "nothing sent yet");
        let before = Instant::now();
        b.send("WRITE 4500\n");
        let (incoming, received) = b.command();
        assert_eq!(incoming, Incoming::Line(b"WRITE 4500".to_vec()));
        assert!(before <= received && received <= Instant::now());
        assert!(matches!(b.ep.turn, Some(Turn::Deciding { .. })));
        assert!(b.ep.interest().is_none(), "nothing to poll while deciding");
    }

    #[test]
    fn commands_are_given_out_one_at_a_time_in_order() {
        let mut b = Bench::new("order", LONG);
        let mut first = b.client();
        b.send("HELLO\nREAD\n");
        b.send("WRITE 00\n");
        assert_eq!(b.command().0, Incoming::Line(b"HELLO".to_vec()));
        b.quiet();
        b.ep.answer(&Answer::Err("unknown command".into()));
        // The answer goes out, and only then the next line comes, in the same call.
        assert_eq!(b.command().0, Incoming::Line(b"READ".to_vec()));
        assert_eq!(first.read_to_eof(), "ERR unknown command\n");
        let mut second = b.client();
        b.ep.read();
        assert!(matches!(b.event(), FifoEvent::Reading { .. }));
        b.quiet();
        b.ep.time_out();
        assert_eq!(b.command().0, Incoming::Line(b"WRITE 00".to_vec()));
        assert_eq!(second.read_to_eof(), "TIMEOUT\n");
        let mut third = b.client();
        b.ep.answer(&Answer::Ok);
        assert_eq!(b.finish_turn(), []);
        assert_eq!(third.read_to_eof(), "OK\n");
        assert_eq!(b.pump(Duration::ZERO), None, "no line left");
    }

    #[test]
    fn a_half_line_left_idle_is_dropped_not_given_out() {
        let mut b = Bench::new("idle", LONG);
        let mut writer = OpenOptions::new().write(true).open(&b.cmd).unwrap();
        writer.write_all(b"WRITE 45").unwrap();
        b.quiet();
        std::thread::sleep(crate::ipc::fifo::LINE_IDLE + Duration::from_millis(100));
        writer.write_all(b"READ\n").unwrap();
        drop(writer);
        assert_eq!(b.command().0, Incoming::Line(b"READ".to_vec()));
        assert_eq!(b.counts.get(Count::LineDropped), 1);
    }

    #[test]
    fn an_answer_waits_for_its_client_then_goes_out_as_one_line() {
        let mut b = Bench::new("answer", LONG);
        b.send("WRITE 00\n");
        b.command();
        b.ep.answer(&Answer::Ok);
        // No reader yet, as after `echo ... > cmd` before `cat resp`: the answer waits.
        b.quiet();
        assert!(matches!(b.ep.turn, Some(Turn::Opening { .. })));
        assert_eq!(b.ep.wake_within(Instant::now()), Some(READER_RETRY));
        let mut client = b.client();
        assert_eq!(b.finish_turn(), []);
        assert_eq!(
            client.read_to_eof(),
            "OK\n",
            "one line, then the end of file"
        );
        assert_eq!(b.counts.get(Count::Discarded), 0);
    }

    #[test]
    fn a_read_waits_for_a_packet_and_gets_its_hex_line() {
        let mut b = Bench::new("read", LONG);
        let mut client = b.client();
        b.send("READ\n");
        let (_, received) = b.command();
        assert!(
            !b.ep.hand(&PACKET),
            "no READ waits while the command is decided"
        );
        b.ep.read();
        let FifoEvent::Reading { asked, opened } = b.event() else {
            panic!("not reading");
        };
        assert_eq!(asked, received, "in its place as asked");
        assert!(opened >= asked);
        // It waits: the loop polls the answer FIFO for its reader leaving, nothing more.
        let (_, events) = b.ep.interest().expect("the answer FIFO polled");
        assert_eq!(events, PollFlags::empty());
        b.quiet();
        b.ep.answer(&Answer::Ok);
        assert!(
            matches!(b.ep.turn, Some(Turn::Waiting { .. })),
            "no answer but a packet's"
        );
        let before = Instant::now();
        let at = b.deliver(&PACKET);
        assert!(at >= before);
        assert_eq!(client.read_to_eof(), "4500001cbeef\n");
        assert!(!b.ep.hand(&PACKET), "the READ is answered");
        assert_eq!(b.counts.get(Count::Abandoned), 0);
    }

    #[test]
    fn finish_tells_a_waiting_read_that_the_bridge_stops() {
        let mut b = Bench::new("finish", LONG);
        let mut client = b.client();
        b.reading();
        b.ep.finish();
        assert_eq!(client.read_to_eof(), "ERR bridge stopping\n");
        assert!(b.ep.turn.is_none());
    }

    #[test]
    fn a_read_whose_client_never_opens_the_answer_fifo_takes_nothing() {
        let mut b = Bench::new("no-reader", SHORT);
        b.send("READ\n");
        b.command();
        b.ep.read();
        assert_eq!(
            b.finish_turn(),
            [],
            "no Reading: the ledger never hears of it"
        );
        assert_eq!(b.counts.get(Count::Abandoned), 1);
        assert!(!b.ep.hand(&PACKET));
        // An answer nobody opens for is discarded the same way; the next command comes.
        b.send("WRITE 00\n");
        b.command();
        b.ep.answer(&Answer::Ok);
        assert_eq!(b.finish_turn(), []);
        assert_eq!(b.counts.get(Count::Discarded), 1);
        b.send("READ\n");
        assert_eq!(b.command().0, Incoming::Line(b"READ".to_vec()));
    }

    #[test]
    fn a_burst_nobody_reads_is_given_up_within_one_grace() {
        let mut b = Bench::new("burst", SHORT);
        b.send("WRITE 01\nWRITE 02\nWRITE 03\nWRITE 04\n");
        let (_, first) = b.command();
        b.ep.answer(&Answer::Ok);
        // The first waits out the grace, counted from when the burst was read ...
        let (_, received) = b.command();
        assert_eq!(received, first);
        for n in 3..=4 {
            // ... so each after it is over on its first look, the next given in the same call.
            b.ep.answer(&Answer::Ok);
            match b.ep.next_event() {
                Some(FifoEvent::Command { received, .. }) => assert_eq!(received, first),
                other => panic!("command {n}: {other:?}"),
            }
        }
        b.ep.answer(&Answer::Ok);
        assert_eq!(b.ep.next_event(), None);
        assert!(b.ep.turn.is_none(), "the last one given up at once too");
        assert_eq!(b.counts.get(Count::Discarded), 4);
    }

    #[test]
    fn a_waiting_read_whose_client_leaves_is_abandoned() {
        let mut b = Bench::new("leaves", LONG);
        let client = b.client();
        b.reading();
        drop(client);
        assert_eq!(b.event(), FifoEvent::Abandoned);
        assert!(b.ep.turn.is_none());
        assert_eq!(b.counts.get(Count::Abandoned), 1);
        assert!(!b.ep.hand(&PACKET), "no packet taken");
    }

    #[test]
    fn a_packet_whose_client_is_gone_is_undelivered() {
        let mut b = Bench::new("gone", LONG);
        let client = b.client();
        b.reading();
        // Gone between two looks: the packet is handed before the loop hears of it.
        drop(client);
        assert!(b.ep.hand(&PACKET));
        assert_eq!(b.event(), FifoEvent::Undelivered);
        assert!(b.ep.in_pipe.is_none(), "nothing in the pipe to look for");
    }

    #[test]
    fn a_packet_left_unread_is_taken_back_after_the_grace() {
        let mut b = Bench::new("unread", LONG);
        let (mut stray, at) = b.left_unread();
        assert_eq!(b.ep.reclaim(at + LONG - Duration::from_millis(1)), None);
        assert_eq!(b.ep.next_event(), None, "not before the grace is over");
        assert_eq!(
            b.ep.reclaim(at + LONG),
            Some(FifoEvent::Unread { handover: at })
        );
        assert_eq!(b.counts.get(Count::Abandoned), 1);
        assert_eq!(stray.read_to_eof(), "", "taken out of the pipe");
        assert_eq!(b.ep.reclaim(at + 2 * LONG), None, "reported once");
    }

    #[test]
    fn an_answer_left_unread_is_taken_out_and_one_read_is_left_alone() {
        let mut b = Bench::new("unread-answer", LONG);
        let mut stray = b.client();
        b.send("WRITE 00\n");
        b.command();
        let client = b.client();
        b.ep.answer(&Answer::Ok);
        assert_eq!(b.finish_turn(), []);
        drop(client);
        let due = b.due();
        assert_eq!(
            b.ep.reclaim(due),
            None,
            "an answer without a packet: no event"
        );
        assert_eq!(b.counts.get(Count::Discarded), 1);
        assert_eq!(stray.read_to_eof(), "");
        // Read in time: nothing to take, nothing counted.
        b.send("WRITE 00\n");
        b.command();
        let mut client = b.client();
        b.ep.answer(&Answer::Ok);
        assert_eq!(b.finish_turn(), []);
        assert_eq!(client.read_to_eof(), "OK\n");
        let due = b.due();
        assert_eq!(b.ep.reclaim(due), None);
        assert!(b.ep.in_pipe.is_none());
        assert_eq!(b.counts.get(Count::Discarded), 1);
    }

    #[test]
    fn the_loop_hears_of_an_unread_packet_once_the_grace_is_over() {
        let mut b = Bench::new("unread-loop", SHORT);
        let (mut stray, at) = b.left_unread();
        assert_eq!(b.event(), FifoEvent::Unread { handover: at });
        assert_eq!(stray.read_to_eof(), "", "taken out of the pipe");
    }

    #[test]
    fn a_reader_that_stops_reading_leaves_nothing_for_the_next_client() {
        let mut b = Bench::new("stalled", SHORT);
        // A line longer than the pipe holds (a packet near a 64 KiB MTU), to a reader that
        // takes nothing and stays.
        let big = vec![0xab; PIPE_SIZE];
        let _stalled = b.client();
        b.reading();
        assert!(b.ep.hand(&big));
        assert_eq!(b.event(), FifoEvent::Undelivered);
        // The next client gets its own answer, whole, and nothing before it.
        b.send("WRITE 00\n");
        b.command();
        assert_eq!(b.counts.get(Count::Discarded), 1, "the part sent taken out");
        let mut next = b.client();
        b.ep.answer(&Answer::Ok);
        assert_eq!(b.finish_turn(), []);
        let got = next.read_to_eof();
        assert_eq!(got, "OK\n", "{} bytes: {:.40}", got.len(), got);
    }

    #[test]
    fn a_deleted_fifo_is_made_again_and_served() {
        let mut b = Bench::new("deleted", LONG);
        b.ep.check_paths().unwrap();
        std::fs::remove_file(&b.cmd).unwrap();
        std::fs::remove_file(&b.resp).unwrap();
        b.ep.check_paths().unwrap();
        for path in [&b.cmd, &b.resp] {
            let meta = std::fs::symlink_metadata(path).unwrap();
            assert!(meta.file_type().is_fifo(), "{}", path.display());
        }
        let mut client = b.client();
        b.send("WRITE 00\n");
        b.command();
        b.ep.answer(&Answer::Ok);
        assert_eq!(b.finish_turn(), []);
        assert_eq!(client.read_to_eof(), "OK\n");
    }

    #[test]
    fn a_fifo_removed_and_replaced_is_an_error_and_left_alone() {
        // As `rm resp; touch resp` or `rm resp; mkfifo resp` do: the new file may get the
        // inode number the FIFO had (ext4 gives it again at once), which must not pass
        // for ours.
        for (name, fifo) in [
            ("cmd", false),
            ("resp", false),
            ("cmd", true),
            ("resp", true),
        ] {
            let mut b = Bench::new("replaced", LONG);
            let path = b.cmd.with_file_name(name);
            std::fs::remove_file(&path).unwrap();
            if fifo {
                nix::unistd::mkfifo(&path, nix::sys::stat::Mode::S_IRWXU).unwrap();
            } else {
                std::fs::write(&path, b"not ours").unwrap();
            }
            match b.ep.check_paths() {
                Err(ServeError::FifoReplaced(p)) => assert_eq!(p, path),
                other => panic!("{name} replaced (a FIFO: {fifo}): {other:?}"),
            }
            drop(b.ep);
            let meta = std::fs::symlink_metadata(&path).expect("left where it is");
            assert_eq!(meta.file_type().is_fifo(), fifo, "{name}");
        }
    }
}
