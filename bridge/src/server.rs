//! The daemon: owns the packet device and serves the FIFO protocol, on the shared
//! FIFOs and on the private channel of `tunbridge read`/`write` ([`Channel`]).
//!
//! One thread does everything. It sleeps in `poll(2)` on the device, the command
//! FIFO, the answer under way and the channel; drains the device into the bounded
//! [`Queue`] without blocking; and answers each command line with one line. FIFO
//! commands are answered one at a time, in the order they came; channel clients each
//! have their own connection, and their READs wait side by side. A READ gets the oldest
//! fresh packet in the queue, and READs are served in the order they asked.
//! Every request the agent reads is tracked until its reply, which is written to the
//! device first and then judged against the reference reply (before, in strict mode);
//! what happened goes to the log and, when asked, to the record and capture.
//!
//! [`run`] opens the TUN device; [`serve`] takes any [`Device`], so tests run the
//! whole server on an in-memory device without root.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::{sched_setaffinity, CpuSet};
use nix::unistd::Pid;
use tracing::{debug, error, info, trace, warn};

use crate::channel::{self, socket_path, Channel, ChannelError, ConnId, Event};
use crate::device::{self, Device, DeviceError, Ipv4Cidr, Recv, Tun};
use crate::drops::{self, Drops};
use crate::exchange::{Family, FlowKey, Response, ShowKey};
use crate::fifo::{self, Answer, CommandReader, Fifo, FifoError, Incoming, Owner, PathState};
use crate::inflight::{self, Awaiting, InFlight};
use crate::journal::Journal;
use crate::peer::{Ends, Ipv6Cidr};
use crate::privilege::{self, PrivilegeError, User};
use crate::protocol::{Command, ProtocolError, Reply};
use crate::queue::{Queue, Queued};
use crate::record::{Entry, Outcome};
use crate::verdict::{self, Verdict};

/// How long a request the agent has read waits for its reply before it counts as unanswered.
const ANSWER_LIMIT: Duration = Duration::from_secs(300);
/// The longest the loop sleeps, so it sees a stop signal soon.
const TICK: Duration = Duration::from_millis(100);
/// How often the FIFO paths are checked and old packets and requests expired.
const HOUSEKEEPING: Duration = Duration::from_millis(500);
/// How often a command waiting for its reader tries the answer FIFO again (no event
/// tells when a reader opens it).
const READER_RETRY: Duration = Duration::from_millis(1);
/// Most packets read from the device in one go, before commands get their turn.
const DRAIN_BATCH: usize = 64;
/// The answer to a READ still waiting when the bridge stops: not `TIMEOUT`, so an agent
/// does not take a shutdown for a quiet network and read on.
const STOPPING: &[u8] = b"ERR bridge stopping";
/// The most bytes an answer FIFO holds (Linux's default pipe size): what is taken out of it
/// when an answer was not read.
const PIPE_SIZE: usize = 65536;
/// The device read buffer: the largest IPv4 packet.
const RECV_BUFFER: usize = 65536;

/// Everything `serve` needs, filled from the command line.
#[derive(Debug, Clone)]
pub struct Config {
    /// TUN device name.
    pub tun: String,
    /// The host side's address and prefix on the device.
    pub address: Ipv4Cidr,
    /// The agent's address, the one to ping.
    pub peer: Ipv4Addr,
    /// The host side's IPv6 address and prefix; `None` switches IPv6 off.
    pub address6: Option<Ipv6Cidr>,
    /// The agent's IPv6 address, when IPv6 is on.
    pub peer6: Option<Ipv6Addr>,
    /// Device MTU.
    pub mtu: u16,
    /// Command FIFO path.
    pub cmd_fifo: PathBuf,
    /// Answer FIFO path.
    pub resp_fifo: PathBuf,
    /// How long READ waits for a packet.
    pub read_timeout: Duration,
    /// How long an answer waits for its reader.
    pub reply_grace: Duration,
    /// Most packets queued.
    pub queue_size: usize,
    /// Oldest packet handed out.
    pub max_age: Duration,
    /// Network namespace to enter first.
    pub netns: Option<String>,
    /// Owner and mode of the FIFOs.
    pub owner: Owner,
    /// User to become once set up.
    pub user: Option<User>,
    /// JSONL record file.
    pub record: Option<PathBuf>,
    /// pcap capture file.
    pub pcap: Option<PathBuf>,
    /// Refuse invalid replies instead of writing them.
    pub strict: bool,
    /// The CPU to pin the daemon to.
    pub cpu: Option<usize>,
}

impl Config {
    /// The host side's and the agent's addresses, per family.
    pub fn ends(&self) -> Ends {
        Ends {
            v4: (self.address.addr, self.peer),
            v6: self.address6.zip(self.peer6).map(|(a, p)| (a.addr, p)),
        }
    }
}

/// Why the daemon stopped with an error.
#[derive(Debug)]
pub enum ServeError {
    /// Entering the namespace or opening the device failed.
    Device(DeviceError),
    /// A FIFO could not be set up.
    Fifo(FifoError),
    /// The private channel's socket could not be set up.
    Channel(ChannelError),
    /// The record or capture file could not be opened.
    OpenJournal(std::io::Error),
    /// Dropping root failed.
    Privilege(PrivilegeError),
    /// A FIFO path now holds something that is not ours.
    FifoReplaced(PathBuf),
    /// Reading the command FIFO failed.
    ReadCommand(std::io::Error),
    /// The device went away (a TUN device deleted with `ip link del`).
    DeviceGone(String),
    /// Reading the device failed.
    ReadDevice(std::io::Error),
    /// Waiting in `poll(2)` failed.
    Poll(std::io::Error),
    /// Pinning to the CPU asked for failed.
    PinCpu { cpu: usize, source: std::io::Error },
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Device(e) => write!(f, "{e}"),
            Self::Fifo(e) => write!(f, "{e}"),
            Self::Channel(e) => write!(f, "{e}"),
            Self::OpenJournal(e) => write!(f, "cannot open the record or capture file: {e}"),
            Self::Privilege(e) => write!(f, "{e}"),
            Self::FifoReplaced(p) => {
                write!(
                    f,
                    "{} was replaced by something that is not our FIFO or socket; stopping",
                    p.display()
                )
            }
            Self::ReadCommand(e) => write!(f, "cannot read the command FIFO: {e}"),
            Self::DeviceGone(name) => write!(
                f,
                "the device {name} is gone (deleted?); stopping, restart the bridge to recreate it"
            ),
            Self::ReadDevice(e) => write!(f, "cannot read the device: {e}"),
            Self::Poll(e) => write!(f, "cannot wait for the device and the FIFOs: {e}"),
            Self::PinCpu { cpu, source } => write!(f, "cannot pin to CPU {cpu}: {source}"),
        }
    }
}

impl std::error::Error for ServeError {}

/// Runs the daemon on the TUN device until SIGINT or SIGTERM.
pub fn run(config: Config, stop: Arc<AtomicBool>) -> Result<(), ServeError> {
    if let Some(name) = &config.netns {
        device::enter_netns(name).map_err(ServeError::Device)?;
    }
    // A second bridge on these FIFOs refuses before it touches anything. The FIFOs are made
    // after the device: scripts take their existence as the sign that the device is up.
    Fifo::ensure_unclaimed(&config.cmd_fifo).map_err(ServeError::Fifo)?;
    let socket = socket_path(&config.cmd_fifo);
    channel::ensure_free(&socket, config.owner).map_err(ServeError::Channel)?;
    let device = Tun::open(&config.tun, config.address, config.address6, config.mtu)
        .map_err(ServeError::Device)?;
    if let Some(cpu) = config.cpu {
        pin_to_cpu(cpu)?;
        info!(cpu, "pinned to CPU");
    }
    serve(config, Box::new(device), stop)
}

/// Lets the daemon run on this CPU only.
fn pin_to_cpu(cpu: usize) -> Result<(), ServeError> {
    let err = |e: Errno| ServeError::PinCpu {
        cpu,
        source: e.into(),
    };
    let mut set = CpuSet::new();
    set.set(cpu).map_err(err)?;
    sched_setaffinity(Pid::from_raw(0), &set).map_err(err)
}

/// Serves the FIFO protocol for `device` until `stop` is set or the device goes away.
/// `config.tun`, `config.netns` and `config.cpu` are not used here: the caller opened
/// the device. Tests start it on an in-memory device ([`device::memory`]) in a thread,
/// without root.
pub fn serve(
    config: Config,
    device: Box<dyn Device>,
    stop: Arc<AtomicBool>,
) -> Result<(), ServeError> {
    let cmd = Fifo::create_command(&config.cmd_fifo, config.owner).map_err(ServeError::Fifo)?;
    let resp = Fifo::create(&config.resp_fifo, config.owner).map_err(ServeError::Fifo)?;
    let reader = CommandReader::open(&config.cmd_fifo).map_err(|source| {
        ServeError::Fifo(FifoError::Open {
            path: config.cmd_fifo.clone(),
            source,
        })
    })?;
    let socket = socket_path(&config.cmd_fifo);
    let channel =
        Channel::open(&socket, config.owner, config.read_timeout).map_err(ServeError::Channel)?;
    let journal = Journal::open(config.record.as_deref(), config.pcap.as_deref())
        .map_err(ServeError::OpenJournal)?;
    if let Some(user) = &config.user {
        privilege::drop_to(user).map_err(ServeError::Privilege)?;
        info!(user = %user.name, uid = user.uid, gid = user.gid, "dropped root");
    }
    info!(tun = device.name(), address = %config.address, peer = %config.peer, netns = ?config.netns,
          cmd = %config.cmd_fifo.display(), resp = %config.resp_fifo.display(),
          socket = %socket.display(), "bridge ready");
    let ends = config.ends();
    let mut bridge = Bridge {
        queue: Queue::new(config.queue_size, config.max_age),
        inflight: InFlight::new(inflight::CAPACITY, ANSWER_LIMIT),
        config,
        device,
        journal,
        stop,
        reader,
        cmd,
        resp,
        channel,
        waiting: VecDeque::new(),
        unconfirmed: HashMap::new(),
        turn: None,
        unsettled: None,
        in_pipe: None,
        drops: Drops::new(drops::INTERVAL),
        packet: vec![0u8; RECV_BUFFER],
        line: Vec::new(),
        ends,
        not_for_agent: 0,
    };
    let result = bridge.serve();
    bridge.finish();
    result
}

/// The command being answered. Commands are answered one at a time, in the order they
/// came; the next is read from the command FIFO only once this one is done.
enum Turn {
    /// Waiting for the client to open the answer FIFO. A READ (`label` None) goes on to
    /// wait for a packet; any other answer is already in the line buffer, `label` its kind.
    Reader {
        received: Instant,
        label: Option<&'static str>,
    },
    /// A READ, asked at `asked`, whose reader is there, waiting for a packet until `deadline`.
    Packet {
        answer: Answer,
        asked: Instant,
        deadline: Instant,
    },
    /// The answer line in the line buffer, `sent` bytes of it written; `item` is the
    /// packet it carries, if any. Given up when the reader takes nothing until `deadline`.
    Sending {
        answer: Answer,
        sent: usize,
        deadline: Instant,
        item: Option<Queued>,
    },
}

/// The last answer written to the answer FIFO, until its reader has had the grace period
/// to take it. Bytes still in the pipe then were never read: the reader died, while a
/// stray process held the FIFO open (so the write found a reader).
struct InPipe {
    /// The answer line, newline included.
    line: Vec<u8>,
    /// The hand-over of the packet it carries, if it is a READ's.
    handover: Option<Instant>,
    /// When to look.
    due: Instant,
}

/// A reply written to the device and not yet judged and recorded.
struct Written {
    packet: Response,
    received: Instant,
    written: Instant,
    written_wall: SystemTime,
}

/// What woke the loop, from one `poll(2)`.
#[derive(Debug, Default, Clone, Copy)]
struct Woken {
    /// The device has a packet, or has gone.
    device: bool,
    /// The command FIFO has bytes, or its writers closed.
    command: bool,
    /// The answer FIFO's reader went away.
    reader_gone: bool,
    /// The channel has clients, bytes or hang-ups to see to.
    channel: bool,
}

/// A channel client's READ waiting for a packet.
#[derive(Debug)]
struct Waiter {
    conn: ConnId,
    /// When its READ line was read.
    asked: Instant,
    /// When it gets TIMEOUT.
    deadline: Instant,
}

/// The descriptors the loop waits on, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Device,
    Command,
    Answer,
    Channel,
}

/// The daemon's state: one thread owns all of it.
struct Bridge {
    config: Config,
    device: Box<dyn Device>,
    journal: Journal,
    stop: Arc<AtomicBool>,
    /// Packets waiting for a READ, oldest first.
    queue: Queue,
    /// Requests the agent has read and not yet answered.
    inflight: InFlight,
    reader: CommandReader,
    cmd: Fifo,
    resp: Fifo,
    /// The private channel of `tunbridge read`/`write`.
    channel: Channel,
    /// Channel READs waiting for a packet, in the order they asked.
    waiting: VecDeque<Waiter>,
    /// When a packet went to a channel client that has not yet shown it read it (by its
    /// next command or a clean hang-up): if it leaves it unread, the packet goes back.
    unconfirmed: HashMap<ConnId, Instant>,
    turn: Option<Turn>,
    unsettled: Option<Written>,
    /// The last FIFO answer, until it is known to be read or taken back.
    in_pipe: Option<InPipe>,
    /// Packets dropped unread since the last summary.
    drops: Drops,
    /// The device read buffer.
    packet: Vec<u8>,
    /// The answer line being sent, reused from answer to answer.
    line: Vec<u8>,
    /// The host side's and the agent's addresses.
    ends: Ends,
    /// Packets off the device that were not addressed to the agent.
    not_for_agent: u64,
}

impl Bridge {
    /// Waits for the device, the command FIFO and the answer under way, and acts on
    /// what is ready, until told to stop or the device goes away.
    fn serve(&mut self) -> Result<(), ServeError> {
        let mut last_check = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            let woken = self.wait()?;
            if woken.device {
                self.drain()?;
            }
            self.advance(woken);
            if last_check.elapsed() >= HOUSEKEEPING {
                // The channel's time limits: silent and stalled connections.
                self.serve_channel();
                self.check_fifos()?;
                self.expire();
                self.summarise_drops(false);
                last_check = Instant::now();
            }
        }
        info!("stopping");
        Ok(())
    }

    /// What to wait on: the device always; the command FIFO between commands; the
    /// answer while a READ waits (for its reader leaving) or a line waits for room.
    fn interests(&self) -> Vec<(Source, BorrowedFd<'_>, PollFlags)> {
        let mut set = vec![
            (Source::Device, self.device.fd(), PollFlags::POLLIN),
            (Source::Channel, self.channel.fd(), PollFlags::POLLIN),
        ];
        match &self.turn {
            None => set.push((Source::Command, self.reader.fd(), PollFlags::POLLIN)),
            Some(Turn::Packet { answer, .. }) => {
                set.push((Source::Answer, answer.fd(), PollFlags::empty()))
            }
            Some(Turn::Sending { answer, .. }) => {
                set.push((Source::Answer, answer.fd(), PollFlags::POLLOUT))
            }
            Some(Turn::Reader { .. }) => {}
        }
        set
    }

    /// How long the loop may sleep: until the turn's or a channel READ's next deadline,
    /// at most a [`TICK`].
    fn timeout(&self) -> Duration {
        let until = |deadline: Instant| deadline.saturating_duration_since(Instant::now());
        let turn = match &self.turn {
            // No event tells when a reader opens the answer FIFO: try again shortly.
            Some(Turn::Reader { .. }) => READER_RETRY,
            Some(Turn::Packet { deadline, .. } | Turn::Sending { deadline, .. }) => {
                until(*deadline).min(TICK)
            }
            None => TICK,
        };
        let waiter = self.waiting.iter().map(|w| until(w.deadline)).min();
        let turn = match (&self.in_pipe, &self.turn) {
            (Some(p), None | Some(Turn::Reader { .. } | Turn::Packet { .. })) => {
                until(p.due).min(turn)
            }
            _ => turn,
        };
        if self.channel.has_pending() {
            return Duration::ZERO;
        }
        waiter.map_or(turn, |w| w.min(turn))
    }

    /// Sleeps in `poll(2)` until a descriptor is ready or the timeout passes.
    fn wait(&self) -> Result<Woken, ServeError> {
        let interests = self.interests();
        let mut fds: Vec<PollFd> = interests
            .iter()
            .map(|(_, fd, events)| PollFd::new(*fd, *events))
            .collect();
        let timeout = PollTimeout::try_from(self.timeout()).unwrap_or(PollTimeout::MAX);
        let mut woken = Woken::default();
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(Errno::EINTR) => return Ok(woken),
            Err(e) => return Err(ServeError::Poll(e.into())),
        }
        for ((source, _, _), fd) in interests.iter().zip(&fds) {
            let Some(revents) = fd.revents().filter(|r| !r.is_empty()) else {
                continue;
            };
            match source {
                Source::Device => woken.device = true,
                Source::Command => woken.command = true,
                Source::Answer => {
                    woken.reader_gone = revents.intersects(PollFlags::POLLERR | PollFlags::POLLHUP)
                }
                Source::Channel => woken.channel = true,
            }
        }
        Ok(woken)
    }

    /// Reads what the device holds into the queue, without waiting; at most
    /// [`DRAIN_BATCH`] packets, so a flood cannot starve the commands.
    fn drain(&mut self) -> Result<(), ServeError> {
        for _ in 0..DRAIN_BATCH {
            match self.device.recv(&mut self.packet) {
                Ok(Recv::Packet(n)) => {
                    let item = Queued::now(self.packet[..n].to_vec());
                    self.arrive(item);
                    // A READ waits: hand this one over first; the next poll finds the rest.
                    if matches!(self.turn, Some(Turn::Packet { .. })) {
                        return Ok(());
                    }
                }
                Ok(Recv::Empty) => return Ok(()),
                Ok(Recv::Gone) => return Err(ServeError::DeviceGone(self.device.name().into())),
                Err(e) => return Err(ServeError::ReadDevice(e)),
            }
        }
        Ok(())
    }

    /// Queues one packet read from the device; only the served families reach the agent.
    fn arrive(&mut self, item: Queued) {
        self.journal.packet(item.arrival_wall, &item.packet);
        if !item.parsed.family.is_some_and(Family::is_served) {
            debug!(
                len = item.packet.len(),
                "packet of an unserved family ignored"
            );
            return;
        }
        if !self.ends.is_for_agent(&item.packet) {
            self.not_for_agent += 1;
            debug!(len = item.packet.len(), "packet not for the agent");
            self.journal.entry(&entry(&item, Outcome::NotForAgent));
            return;
        }
        let (key, len) = (item.parsed.key, item.packet.len());
        trace!(hex = %hex::encode(&item.packet), "request bytes");
        let stale = self.queue.expire(item.arrival);
        let evicted = self.queue.push(item);
        debug!(flow = %ShowKey(key.as_ref()), len, "request queued");
        self.dropped(stale, Outcome::Stale);
        self.dropped(evicted.into_iter().collect(), Outcome::Overflow);
    }

    /// Takes the turn as far as it goes without waiting, then the next commands. A reply
    /// written to the device is judged and recorded once its OK is on its way (or waits
    /// for its reader), before the next command.
    fn advance(&mut self, woken: Woken) {
        self.reclaim();
        if woken.channel || self.channel.has_pending() {
            self.serve_channel();
        }
        // Poll said the command FIFO is ready: the first read needs no second poll.
        let mut ready = woken.command;
        loop {
            let turn = match self.turn.take() {
                Some(turn) => turn,
                None => {
                    self.settle_written();
                    match self.next_command(std::mem::take(&mut ready)) {
                        Some(turn) => turn,
                        None => break,
                    }
                }
            };
            if let Step::Waiting(turn) = self.step(turn, woken) {
                self.turn = Some(turn);
                break;
            }
        }
        self.settle_written();
        self.serve_waiters(self.fifo_asked());
    }

    /// Takes the last FIFO answer out of the pipe if its reader has not read it within
    /// the grace period; a packet in it goes back to the head of the queue, for the next
    /// READ. Not while an answer is being written.
    fn reclaim(&mut self) {
        let due = self
            .in_pipe
            .as_ref()
            .is_some_and(|p| p.due <= Instant::now());
        if !due || matches!(self.turn, Some(Turn::Sending { .. })) {
            return;
        }
        let Some(p) = self.in_pipe.take() else {
            return;
        };
        let taken = match fifo::take_unread(&self.config.resp_fifo, PIPE_SIZE) {
            Ok(taken) => taken,
            Err(e) => return warn!(error = %e, "cannot look into the answer FIFO"),
        };
        if taken.is_empty() {
            return;
        }
        // Bytes before the line are an earlier answer nobody read, or someone else's.
        let Some(stray) = taken.len().checked_sub(p.line.len()) else {
            return warn!(
                len = taken.len(),
                "stray bytes taken out of the answer FIFO"
            );
        };
        if !taken.ends_with(&p.line) {
            return warn!(
                len = taken.len(),
                "stray bytes taken out of the answer FIFO"
            );
        }
        if stray > 0 {
            warn!(len = stray, "stray bytes taken out of the answer FIFO");
        }
        let Some(a) = p.handover.and_then(|h| self.inflight.take_handed(h)) else {
            return warn!(
                len = taken.len(),
                "an answer nobody read taken out of the answer FIFO"
            );
        };
        warn!(flow = %ShowKey(a.key()),
              "packet never read from the answer FIFO; back to the head of the queue");
        let evicted = self.queue.push_front(a.request);
        self.dropped(evicted.into_iter().collect(), Outcome::Overflow);
    }

    /// Judges and records the reply written last, if that is not done yet.
    fn settle_written(&mut self) {
        if let Some(written) = self.unsettled.take() {
            self.settle(written);
        }
    }

    /// Reads the next command line, if one is there, and starts its turn; `ready` when
    /// poll has just reported the command FIFO readable.
    fn next_command(&mut self, mut ready: bool) -> Option<Turn> {
        loop {
            let next = if std::mem::take(&mut ready) {
                self.reader.next_ready()
            } else {
                self.reader.next(Duration::ZERO)
            };
            let event = match next {
                Ok(Some(event)) => event,
                Ok(None) => return None,
                Err(e) => {
                    warn!(error = %e, "cannot read the command FIFO; reopening it");
                    if let Err(e) = self.reader.reopen() {
                        error!(error = %e, "cannot reopen the command FIFO");
                    }
                    return None;
                }
            };
            let received = self.reader.received();
            match event {
                Incoming::Line(line) => return Some(self.command(&line, received)),
                Incoming::TooLong(n) => {
                    warn!(len = n, "command line too long");
                    let reply = Reply::Err(ProtocolError::TooLong(n).to_string());
                    return Some(self.reply(&reply, received));
                }
                Incoming::Dropped(n) => {
                    warn!(len = n, "unfinished command line dropped after idling")
                }
            }
        }
    }

    /// Parses one line, read from the FIFO at `received`, acts on it, and starts its answer.
    fn command(&mut self, line: &[u8], received: Instant) -> Turn {
        match Command::parse(line, self.device.mtu()) {
            Ok(Command::Read) => Turn::Reader {
                received,
                label: None,
            },
            Ok(Command::Write(packet)) => {
                let reply = self.write(packet, received);
                self.reply(&reply, received)
            }
            Err(e) => {
                warn!(reason = %e, len = line.len(), "command refused");
                self.reply(&Reply::Err(e.to_string()), received)
            }
        }
    }

    /// Puts `reply` in the line buffer and starts waiting for its reader.
    fn reply(&mut self, reply: &Reply, received: Instant) -> Turn {
        self.line.clear();
        let _ = writeln!(self.line, "{reply}");
        Turn::Reader {
            received,
            label: Some(reply.label()),
        }
    }

    /// Takes one turn one step further.
    fn step(&mut self, turn: Turn, woken: Woken) -> Step {
        match turn {
            Turn::Reader { received, label } => self.open_answer(received, label),
            Turn::Packet {
                answer,
                asked,
                deadline,
            } => self.hand_over(answer, asked, deadline, woken),
            Turn::Sending {
                answer,
                sent,
                deadline,
                item,
            } => self.send(answer, sent, deadline, item),
        }
    }

    /// Opens the answer FIFO if the command's reader is there; gives up when the grace
    /// period since the command arrived is over, so a burst of unread commands is given
    /// up on within one period, not one period per command.
    fn open_answer(&mut self, received: Instant, label: Option<&'static str>) -> Step {
        let answer = match Answer::open(&self.config.resp_fifo) {
            Ok(Some(answer)) => answer,
            Ok(None) if received.elapsed() < self.config.reply_grace => {
                return Step::Waiting(Turn::Reader { received, label })
            }
            Ok(None) => {
                match label {
                    None => warn!("READ abandoned: nobody is reading the answer FIFO"),
                    Some(label) => warn!(answer = label, "nobody read the answer; discarded"),
                }
                return Step::Done;
            }
            Err(e) => {
                warn!(error = %e, "cannot open the answer FIFO");
                return Step::Done;
            }
        };
        if label.is_some() {
            return self.send(answer, 0, Instant::now() + self.config.reply_grace, None);
        }
        // The client has sent its line and closed: reopen now, not after the hand-over.
        if let Err(e) = self.reader.reopen_if_ended() {
            warn!(error = %e, "cannot reopen the command FIFO");
        }
        let deadline = Instant::now() + self.config.read_timeout;
        self.hand_over(answer, received, deadline, Woken::default())
    }

    /// Gives a waiting READ, asked at `asked`, the oldest fresh packet once the channel
    /// READs that asked before it have theirs; TIMEOUT once the deadline passes (or the
    /// bridge stops), nothing if the reader left.
    fn hand_over(
        &mut self,
        answer: Answer,
        asked: Instant,
        deadline: Instant,
        woken: Woken,
    ) -> Step {
        self.serve_waiters(Some(asked));
        if let Some(item) = self.queue.pop() {
            self.line.resize(item.packet.len() * 2 + 1, b'\n');
            let hex_part = item.packet.len() * 2;
            // The buffer is exactly twice the packet's length: encoding cannot fail.
            let _ = hex::encode_to_slice(&item.packet, &mut self.line[..hex_part]);
            self.line[hex_part] = b'\n';
            let deadline = Instant::now() + self.config.reply_grace;
            return self.send(answer, 0, deadline, Some(item));
        }
        if woken.reader_gone && answer.reader_gone() {
            info!("READ abandoned: its reader went away");
            return Step::Done;
        }
        let stopping = self.stop.load(Ordering::Relaxed);
        if Instant::now() >= deadline || stopping {
            self.line.clear();
            if stopping {
                self.line.extend_from_slice(STOPPING);
            } else {
                info!("READ timed out");
                self.line.extend_from_slice(b"TIMEOUT");
            }
            self.line.push(b'\n');
            let deadline = Instant::now() + self.config.reply_grace;
            return self.send(answer, 0, deadline, None);
        }
        Step::Waiting(Turn::Packet {
            answer,
            asked,
            deadline,
        })
    }

    /// Writes what the pipe takes of the answer line; a packet whose line cannot be
    /// delivered goes back to the head of the queue.
    fn send(
        &mut self,
        answer: Answer,
        sent: usize,
        deadline: Instant,
        item: Option<Queued>,
    ) -> Step {
        let failed = match answer.write_some(&self.line[sent..]) {
            Ok(n) if sent + n == self.line.len() => None,
            Ok(0) if Instant::now() >= deadline => Some("reader stopped reading".to_string()),
            Ok(n) => {
                // Progress moves the deadline: it is for a reader that stopped reading.
                let deadline = if n > 0 {
                    Instant::now() + self.config.reply_grace
                } else {
                    deadline
                };
                return Step::Waiting(Turn::Sending {
                    answer,
                    sent: sent + n,
                    deadline,
                    item,
                });
            }
            Err(e) => Some(e.to_string()),
        };
        drop(answer);
        let now = Instant::now();
        if failed.is_none() {
            self.in_pipe = Some(InPipe {
                line: self.line.clone(),
                handover: item.as_ref().map(|_| now),
                due: now + self.config.reply_grace,
            });
        }
        match (failed, item) {
            (None, Some(item)) => self.delivered(item, now),
            (None, None) => {}
            (Some(error), Some(item)) => {
                warn!(error, "packet not delivered; back to the head of the queue");
                let evicted = self.queue.push_front(item);
                self.dropped(evicted.into_iter().collect(), Outcome::Overflow);
            }
            (Some(error), None) => warn!(error, "answer not delivered"),
        }
        Step::Done
    }

    /// Notes a request delivered at `handover` as waiting for its reply.
    fn delivered(&mut self, item: Queued, handover: Instant) {
        let queue_ms = ms(handover - item.arrival);
        debug!(
            flow = %ShowKey(item.parsed.key.as_ref()),
            len = item.packet.len(),
            queue_ms,
            "request handed to the agent"
        );
        let evicted = self.inflight.insert(Awaiting {
            request: item,
            handover,
            refused: None,
        });
        if let Some(old) = evicted {
            self.unanswered(old, "in-flight table full");
        }
    }

    /// Takes what the channel has: commands, and clients that went away.
    fn serve_channel(&mut self) {
        for event in self.channel.service(Instant::now()) {
            match event {
                Event::Command {
                    conn,
                    incoming,
                    received,
                } => {
                    // Its next command: the client has read what it was sent.
                    self.unconfirmed.remove(&conn);
                    self.channel_command(conn, incoming, received);
                }
                Event::Gone { conn, unread } => self.client_gone(conn, unread),
            }
        }
        // Packets for the READs that just came, then the greetings still unsent.
        self.serve_waiters(self.fifo_asked());
        self.channel.flush();
    }

    /// When the FIFO READ waiting for a packet asked, if one waits: channel READs that
    /// asked later must leave it the next packet.
    fn fifo_asked(&self) -> Option<Instant> {
        match &self.turn {
            Some(Turn::Packet { asked, .. }) => Some(*asked),
            _ => None,
        }
    }

    /// Acts on one command from a channel client and answers it, or lets its READ wait.
    fn channel_command(&mut self, conn: ConnId, incoming: Incoming, received: Instant) {
        let reply = match incoming {
            Incoming::Line(line) => match Command::parse(&line, self.device.mtu()) {
                Ok(Command::Read) => {
                    let deadline = received + self.config.read_timeout;
                    return self.waiting.push_back(Waiter {
                        conn,
                        asked: received,
                        deadline,
                    });
                }
                Ok(Command::Write(packet)) => self.write(packet, received),
                Err(e) => {
                    warn!(reason = %e, len = line.len(), conn = %conn, "command refused");
                    Reply::Err(e.to_string())
                }
            },
            Incoming::TooLong(n) => {
                warn!(len = n, conn = %conn, "command line too long");
                Reply::Err(ProtocolError::TooLong(n).to_string())
            }
            Incoming::Dropped(_) => return,
        };
        if self
            .channel
            .answer(conn, reply.to_string().as_bytes())
            .is_err()
        {
            warn!(answer = reply.label(), conn = %conn, "answer not delivered: its client went away");
        }
        // As for the FIFO: judged and recorded once the OK is on its way.
        self.settle_written();
    }

    /// A channel client went away: its READ stops waiting, and a packet it left unread
    /// goes back to the head of the queue.
    fn client_gone(&mut self, conn: ConnId, unread: bool) {
        if let Some(i) = self.waiting.iter().position(|w| w.conn == conn) {
            self.waiting.remove(i);
            info!(conn = %conn, "READ abandoned: its client went away");
        }
        let Some(handover) = self.unconfirmed.remove(&conn) else {
            return;
        };
        if !unread {
            return;
        }
        if let Some(a) = self.inflight.take_handed(handover) {
            warn!(flow = %ShowKey(a.key()), conn = %conn,
                  "packet not read by its client; back to the head of the queue");
            let evicted = self.queue.push_front(a.request);
            self.dropped(evicted.into_iter().collect(), Outcome::Overflow);
        }
    }

    /// Gives queued packets to the channel READs that asked before `before` (all of them
    /// when `None`), oldest first; answers TIMEOUT to those whose time is up.
    fn serve_waiters(&mut self, before: Option<Instant>) {
        let now = Instant::now();
        let stale = self.queue.expire(now);
        self.dropped(stale, Outcome::Stale);
        while let Some(w) = self.waiting.front() {
            if before.is_some_and(|t| w.asked >= t) {
                break;
            }
            let Some(item) = self.queue.pop() else {
                break;
            };
            let Some(w) = self.waiting.pop_front() else {
                break;
            };
            self.send_packet(w.conn, item);
        }
        let stopping = self.stop.load(Ordering::Relaxed);
        while let Some(i) = self
            .waiting
            .iter()
            .position(|w| stopping || w.deadline <= now)
        {
            let w = self.waiting.remove(i).map(|w| w.conn);
            if let Some(conn) = w {
                let answer = if stopping {
                    STOPPING
                } else {
                    info!(conn = %conn, "READ timed out");
                    b"TIMEOUT"
                };
                let _ = self.channel.answer(conn, answer);
            }
        }
    }

    /// Sends a packet to a channel READ; back to the head of the queue if its client left.
    fn send_packet(&mut self, conn: ConnId, item: Queued) {
        match self
            .channel
            .answer(conn, hex::encode(&item.packet).as_bytes())
        {
            Ok(()) => {
                let handover = Instant::now();
                self.unconfirmed.insert(conn, handover);
                self.delivered(item, handover);
            }
            Err(_) => {
                warn!(conn = %conn, "packet not delivered: its client went away; back to the head of the queue");
                let evicted = self.queue.push_front(item);
                self.dropped(evicted.into_iter().collect(), Outcome::Overflow);
            }
        }
    }

    /// WRITE: check and write the agent's packet; it is judged and recorded afterwards
    /// (see [`Bridge::settle`]), except in strict mode, where an invalid reply is refused.
    fn write(&mut self, packet: Response, received: Instant) -> Reply {
        if let Err(reason) = self.egress(&packet) {
            warn!(reason, "WRITE refused");
            return Reply::Err(reason);
        }
        if self.config.strict {
            if let Err(reason) = self.strict(&packet) {
                return Reply::Err(reason);
            }
        }
        if let Err(e) = self.device.send(packet.bytes()) {
            error!(error = %e, "writing to the device failed");
            return Reply::Err(format!("the TUN device refused the packet: {e}"));
        }
        self.unsettled = Some(Written {
            packet,
            received,
            written: Instant::now(),
            written_wall: SystemTime::now(),
        });
        Reply::Ok
    }

    /// The verdict on a reply against the request it answers.
    fn judge(&mut self, packet: &Response) -> Verdict {
        match packet.key().and_then(|k| self.inflight.find_mut(k)) {
            Some(a) => verdict::judge(&a.request.parsed, packet),
            None => Verdict::NoMatchingRequest,
        }
    }

    /// Strict mode: refuses an invalid reply before it is written, and notes why.
    fn strict(&mut self, packet: &Response) -> Result<(), String> {
        let verdict = self.judge(packet);
        if verdict == Verdict::Valid {
            return Ok(());
        }
        warn!(flow = %ShowKey(packet.key()), verdict = %verdict, "reply refused (strict)");
        if let Some(a) = packet.key().and_then(|k| self.inflight.find_mut(k)) {
            a.refused = Some(verdict.clone());
        }
        Err(verdict.to_string())
    }

    /// Refuses packets that would let the agent speak as anyone but the peer, or to anyone but the host side.
    fn egress(&self, packet: &Response) -> Result<(), String> {
        self.ends.egress(packet)
    }

    /// Judges a written reply, logs it and records it against its request.
    fn settle(&mut self, w: Written) {
        self.journal.packet(w.written_wall, w.packet.bytes());
        trace!(hex = %hex::encode(w.packet.bytes()), "reply bytes");
        let verdict = self.judge(&w.packet);
        let key: Option<FlowKey> = w.packet.key().copied();
        let (received, written) = (w.received, w.written);
        let write_us = (written - received).as_secs_f64() * 1e6;
        let Some(h) = key.and_then(|k| self.inflight.take(&k)) else {
            warn!(flow = %ShowKey(key.as_ref()), verdict = %verdict, "reply written, no matching request");
            let mut e = Entry::new(SystemTime::now(), key.as_ref(), 0, Outcome::Unmatched);
            e.write_us = Some(write_us);
            e.judged(&verdict);
            e.written = true;
            return self.journal.entry(&e);
        };
        info!(flow = %ShowKey(key.as_ref()), len = h.request.packet.len(),
              queue_us = us(h.handover - h.request.arrival), agent_us = us(received - h.handover),
              rtt_us = us(written - h.request.arrival), write_us = us(written - received),
              verdict = %verdict, "reply written");
        let mut e = entry(&h.request, Outcome::Answered);
        e.queue_ms = Some(ms(h.handover - h.request.arrival));
        e.agent_ms = Some(ms(received - h.handover));
        e.rtt_ms = Some(ms(written - h.request.arrival));
        e.write_us = Some(write_us);
        e.judged(&verdict);
        e.written = true;
        self.journal.entry(&e);
    }

    /// Counts packets that left the queue unread, for the next drop summary.
    fn dropped(&mut self, items: Vec<Queued>, outcome: Outcome) {
        let now = Instant::now();
        for item in items {
            debug!(
                flow = %ShowKey(item.parsed.key.as_ref()),
                len = item.packet.len(),
                age_us = us(now.saturating_duration_since(item.arrival)),
                outcome = outcome.as_str(),
                "request dropped before the agent read it"
            );
            self.drops.add(outcome, item.arrival_wall, now);
        }
    }

    /// Logs and records the drops counted: those of an interval that is over, or, with
    /// `all`, everything counted (at shutdown). One line per outcome, with the count.
    fn summarise_drops(&mut self, all: bool) {
        let tallies = if all {
            self.drops.take()
        } else {
            self.drops.due(Instant::now())
        };
        for t in tallies {
            warn!(
                outcome = t.outcome.as_str(),
                count = t.count,
                "requests dropped before the agent read them"
            );
            self.journal.entry(&t.entry());
        }
    }

    /// Records a handed-over request that got no written reply.
    fn unanswered(&self, h: Awaiting, why: &str) {
        warn!(
            flow = %ShowKey(h.key()),
            len = h.request.packet.len(),
            queue_us = us(h.handover - h.request.arrival),
            why,
            "request never answered"
        );
        let outcome = if h.refused.is_some() {
            Outcome::Refused
        } else {
            Outcome::Unanswered
        };
        let mut e = entry(&h.request, outcome);
        e.queue_ms = Some(ms(h.handover - h.request.arrival));
        if let Some(verdict) = &h.refused {
            e.judged(verdict);
        }
        e.note = Some(why.into());
        self.journal.entry(&e);
    }

    /// Drops stale queued packets and forgets long-unanswered requests.
    fn expire(&mut self) {
        let stale = self.queue.expire(Instant::now());
        self.dropped(stale, Outcome::Stale);
        for h in self.inflight.expire(Instant::now()) {
            self.unanswered(h, "no reply within the answer limit");
        }
    }

    /// Recreates a deleted FIFO; stops if one was replaced by something else.
    fn check_fifos(&mut self) -> Result<(), ServeError> {
        for which in [0, 1] {
            let fifo = if which == 0 { &self.cmd } else { &self.resp };
            match fifo.state() {
                PathState::Ours => continue,
                PathState::Replaced => return Err(ServeError::FifoReplaced(fifo.path().into())),
                PathState::Missing => {}
            }
            let path = fifo.path().to_path_buf();
            warn!(path = %path.display(), "FIFO was deleted; recreating it");
            let fresh = if which == 0 {
                Fifo::create_command(&path, self.config.owner)
            } else {
                Fifo::create(&path, self.config.owner)
            }
            .map_err(ServeError::Fifo)?;
            if which == 0 {
                self.cmd = fresh;
                self.reader.reopen().map_err(ServeError::ReadCommand)?;
            } else {
                self.resp = fresh;
            }
        }
        match self.channel.state() {
            PathState::Ours => Ok(()),
            PathState::Replaced => Err(ServeError::FifoReplaced(self.channel.path().into())),
            PathState::Missing => {
                warn!(path = %self.channel.path().display(), "socket was deleted; recreating it");
                self.channel.relisten().map_err(ServeError::Channel)
            }
        }
    }

    /// Ends the turn under way and records what is left at shutdown.
    fn finish(&mut self) {
        let not_for_agent = self.not_for_agent;
        info!(
            not_for_agent,
            "packets off the device not addressed to the agent"
        );
        // Best effort: channel clients learn at once that no packet is coming.
        for w in std::mem::take(&mut self.waiting) {
            let _ = self.channel.answer(w.conn, STOPPING);
        }
        match self.turn.take() {
            Some(Turn::Packet { answer, .. }) => {
                // Best effort: the client learns at once that no packet is coming.
                let _ = answer.write_some(b"ERR bridge stopping\n");
            }
            Some(Turn::Sending {
                item: Some(item), ..
            }) => {
                let evicted = self.queue.push_front(item);
                self.dropped(evicted.into_iter().collect(), Outcome::Unanswered);
            }
            _ => {}
        }
        self.settle_written();
        for h in self.inflight.drain() {
            self.unanswered(h, "bridge stopped");
        }
        let left: Vec<Queued> = std::iter::from_fn(|| self.queue.pop()).collect();
        if !left.is_empty() {
            info!(count = left.len(), "packets still queued at shutdown");
        }
        self.dropped(left, Outcome::Unanswered);
        self.summarise_drops(true);
    }
}

/// Where a turn got to.
enum Step {
    /// The command is answered (or given up on); the next may start.
    Done,
    /// The turn waits for a reader, a packet or room in the pipe.
    Waiting(Turn),
}

/// A record line for a request, timings left empty.
fn entry(item: &Queued, outcome: Outcome) -> Entry {
    Entry::new(
        item.arrival_wall,
        item.parsed.key.as_ref(),
        item.packet.len(),
        outcome,
    )
}

/// A duration in milliseconds, as a float.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A duration in whole microseconds, for log lines.
fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
