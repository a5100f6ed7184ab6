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
//!   line does not reach its reader is reported [`FifoEvent::Undelivered`].
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
