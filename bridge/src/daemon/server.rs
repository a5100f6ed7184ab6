//! The loop: one thread that waits for readiness and dispatches, nothing more.
//!
//! It sleeps in `poll(2)` on the device, the private channel ([`Channel`]) and the FIFO
//! endpoint ([`FifoEndpoint`]); reads what the device holds into the [`Ledger`] without
//! blocking; gives every command, from either transport, to one dispatch, which parses it
//! and acts on it; and hands the waiting READs what the ledger has for them, in the order
//! they asked. Every decision about a request (which READ gets which packet, what becomes
//! of a packet nobody read, the verdict, the record) is the ledger's; how a line reaches
//! its client is the transport's.
//!
//! [`run`] opens the TUN device; [`serve`] takes any [`Device`], so tests run the whole
//! server on an in-memory device without root.

use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::{sched_setaffinity, CpuSet};
use nix::unistd::Pid;
use tracing::{error, info, warn};

use crate::daemon::config::Config;
use crate::daemon::counts::{Count, Counts};
use crate::daemon::device::{self, Device, Recv, Tun};
use crate::daemon::endpoint::{FifoEndpoint, FifoEvent};
use crate::daemon::error::ServeError;
use crate::daemon::ledger::{Handout, Ledger, Terms};
use crate::daemon::privilege;
use crate::daemon::readers::{Caller, Reader};
use crate::instrument::journal::Journal;
use crate::ipc::channel::{self, Channel, Ending};
use crate::ipc::fifo::{Fifo, PathState};
use crate::ipc::lines::Incoming;
use crate::ipc::protocol::{Answer, Command, ProtocolError};
use crate::judge::exchange::Response;

/// The longest the loop sleeps, so it sees a stop signal soon.
const TICK: Duration = Duration::from_millis(100);
/// How often the paths are checked and old packets and requests expired.
const HOUSEKEEPING: Duration = Duration::from_millis(500);
/// Most packets read from the device in one go, before commands get their turn.
const DRAIN_BATCH: usize = 64;
/// The device read buffer: the largest IPv4 packet.
const RECV_BUFFER: usize = 65536;

/// Runs the daemon on the TUN device until SIGINT or SIGTERM.
pub fn run(config: Config, stop: Arc<AtomicBool>) -> Result<(), ServeError> {
    device::enter_namespace(
        config.netns.as_deref(),
        config.host_namespace,
        &config.tun,
        &config.assigned(),
    )
    .map_err(ServeError::Device)?;
    // A second bridge on these FIFOs refuses before it touches anything. The FIFOs are made
    // after the device: scripts take their existence as the sign that the device is up.
    Fifo::ensure_unclaimed(&config.cmd_fifo).map_err(ServeError::Fifo)?;
    let socket = channel::socket_path(&config.cmd_fifo);
    channel::ensure_free(&socket, config.owner).map_err(ServeError::Channel)?;
    let device = Tun::open(&config.tun, config.address, config.address6, config.mtu)
        .map_err(ServeError::Device)?;
    if let Some(cpu) = config.cpu {
        pin_to_cpu(cpu)?;
        info!(cpu, "pinned to CPU");
    }
    serve(config, Box::new(device), stop, Arc::default())
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

/// Serves the FIFO protocol for `device` until `stop` is set or the device goes away,
/// keeping its running totals in `counts`. `config.tun`, `config.netns` and `config.cpu`
/// are not used here: the caller opened the device. Tests start it on an in-memory device
/// ([`device::memory`]) in a thread, without root.
pub fn serve(
    config: Config,
    device: Box<dyn Device>,
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
) -> Result<(), ServeError> {
    let fifo = FifoEndpoint::open(
        &config.cmd_fifo,
        &config.resp_fifo,
        config.owner,
        config.reply_grace,
        Arc::clone(&counts),
    )?;
    let socket = channel::socket_path(&config.cmd_fifo);
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
    let terms = Terms {
        ends: config.ends(),
        queue_size: config.queue_size,
        max_age: config.max_age,
        strict: config.strict,
    };
    let mut server = Server {
        ledger: Ledger::new(terms, journal, Arc::clone(&counts)),
        counts,
        read_timeout: config.read_timeout,
        device,
        fifo,
        channel,
        stop,
        packet: vec![0u8; RECV_BUFFER],
    };
    let result = server.serve();
    server.finish();
    result
}

/// What woke the loop, from one `poll(2)`.
#[derive(Debug, Clone, Copy)]
struct Woken {
    /// The device has a packet, or has gone.
    device: bool,
    /// The channel has clients, bytes or hang-ups to see to.
    channel: bool,
    /// What poll said of the FIFO endpoint's descriptor.
    fifo: PollFlags,
}

/// The descriptors the loop waits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Device,
    Channel,
    Fifo,
}

/// The loop's state: the device, the two transports and the ledger; one thread owns all of it.
struct Server {
    device: Box<dyn Device>,
    fifo: FifoEndpoint,
    channel: Channel,
    ledger: Ledger,
    /// The running totals, the ledger's and the channel's.
    counts: Arc<Counts>,
    read_timeout: Duration,
    stop: Arc<AtomicBool>,
    /// The device read buffer.
    packet: Vec<u8>,
}

impl Server {
    /// Waits for the device and both transports and acts on what is ready, until told to
    /// stop or the device goes away.
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
                self.check_paths()?;
                self.ledger.housekeeping(Instant::now());
                last_check = Instant::now();
            }
        }
        info!("stopping");
        Ok(())
    }

    /// What to wait on: the device, the channel, and the FIFO endpoint's descriptor.
    fn interests(&self) -> Vec<(Source, BorrowedFd<'_>, PollFlags)> {
        let mut set = vec![
            (Source::Device, self.device.fd(), PollFlags::POLLIN),
            (Source::Channel, self.channel.fd(), PollFlags::POLLIN),
        ];
        if let Some((fd, events)) = self.fifo.interest() {
            set.push((Source::Fifo, fd, events));
        }
        set
    }

    /// How long the loop may sleep: until the next deadline of a READ or of the FIFO's
    /// turn, at most a [`TICK`].
    fn timeout(&self) -> Duration {
        if self.channel.has_pending() {
            return Duration::ZERO;
        }
        let now = Instant::now();
        let reader = self
            .ledger
            .next_deadline()
            .map(|d| d.saturating_duration_since(now));
        [self.fifo.wake_within(now), reader]
            .into_iter()
            .flatten()
            .fold(TICK, Duration::min)
    }

    /// Sleeps in `poll(2)` until a descriptor is ready or the timeout passes.
    fn wait(&self) -> Result<Woken, ServeError> {
        let interests = self.interests();
        let mut fds: Vec<PollFd> = interests
            .iter()
            .map(|(_, fd, events)| PollFd::new(*fd, *events))
            .collect();
        let timeout = PollTimeout::try_from(self.timeout()).unwrap_or(PollTimeout::MAX);
        let mut woken = Woken {
            device: false,
            channel: false,
            fifo: PollFlags::empty(),
        };
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
                Source::Channel => woken.channel = true,
                Source::Fifo => woken.fifo = revents,
            }
        }
        Ok(woken)
    }

    /// Reads what the device holds into the ledger, without waiting; at most
    /// [`DRAIN_BATCH`] packets, so a flood cannot starve the commands.
    fn drain(&mut self) -> Result<(), ServeError> {
        for _ in 0..DRAIN_BATCH {
            match self.device.recv(&mut self.packet) {
                Ok(Recv::Packet(n)) => {
                    let packet = self.packet[..n].to_vec();
                    self.ledger
                        .arrive(packet, Instant::now(), SystemTime::now());
                    // A READ waits: hand this one over first; the next poll finds the rest.
                    if self.ledger.has_readers() {
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

    /// Takes what both transports have, then gives the waiting READs their packets. A
    /// reply written to the device is judged and recorded once its OK is on its way (or
    /// waits for its reader), before the next command.
    fn advance(&mut self, woken: Woken) {
        if woken.channel || self.channel.has_pending() {
            self.serve_channel();
        }
        self.fifo.woken(woken.fifo);
        loop {
            while let Some(event) = self.fifo.next_event() {
                self.fifo_event(event);
            }
            self.ledger.settle(SystemTime::now());
            if !self.hand_out() {
                break;
            }
        }
    }

    /// Takes what the channel has: commands, and clients that went away or were closed.
    fn serve_channel(&mut self) {
        for event in self.channel.service(Instant::now()) {
            match event {
                channel::Event::Command {
                    conn,
                    incoming,
                    received,
                } => {
                    // Its next command: the client has read what it was sent.
                    self.ledger.confirm(conn);
                    self.dispatch(Caller::Conn(conn), incoming, received);
                }
                channel::Event::Gone {
                    conn,
                    unread,
                    ending,
                } => {
                    match ending {
                        Ending::Left => {}
                        Ending::Silent => self.counts.add(Count::ClientSilent),
                        Ending::MadeRoom => self.counts.add(Count::ClientMadeRoom),
                        Ending::Stalled => self.counts.add(Count::ClientStalled),
                    }
                    self.ledger.client_gone(conn, unread, Instant::now())
                }
            }
        }
        // Packets for the READs that just came, then the greetings still unsent.
        self.hand_out();
        self.channel.flush();
    }

    /// Acts on what the FIFO endpoint reports.
    fn fifo_event(&mut self, event: FifoEvent) {
        match event {
            FifoEvent::Command { incoming, received } => {
                self.ledger.settle(SystemTime::now());
                self.dispatch(Caller::Fifo, incoming, received);
            }
            FifoEvent::Reading { asked, opened } => self.ledger.ask(Reader {
                caller: Caller::Fifo,
                asked,
                deadline: opened + self.read_timeout,
            }),
            FifoEvent::Abandoned => {
                self.ledger.withdraw(Caller::Fifo);
            }
            FifoEvent::Delivered { at } => self.ledger.delivered(Caller::Fifo, at),
            FifoEvent::Undelivered => self.ledger.undelivered(Caller::Fifo, Instant::now()),
            FifoEvent::Unread { handover } => {
                self.ledger
                    .take_back(handover, Caller::Fifo, Instant::now())
            }
        }
    }

    /// Acts on one command, from either transport, read at `received`: a READ waits for a
    /// packet, anything else is answered at once.
    fn dispatch(&mut self, caller: Caller, incoming: Incoming, received: Instant) {
        let answer = match incoming {
            Incoming::Line(line) => match Command::parse(&line, self.device.mtu()) {
                Ok(Command::Read) => return self.read(caller, received),
                Ok(Command::Write(packet)) => self.write(packet, received),
                Err(e) => {
                    warn!(reason = %e, len = line.len(), from = %caller, "command refused");
                    Answer::Err(e.to_string())
                }
            },
            Incoming::TooLong(n) => {
                warn!(len = n, from = %caller, "command line too long");
                Answer::Err(ProtocolError::TooLong(n).to_string())
            }
            // The transports drop an idle half line themselves: never given out.
            Incoming::Dropped(_) => return,
        };
        self.answer(caller, &answer);
    }

    /// A READ: on the channel it waits for a packet at once; on the FIFOs once its client
    /// has opened the answer FIFO, in the place it asked.
    fn read(&mut self, caller: Caller, received: Instant) {
        match caller {
            Caller::Fifo => self.fifo.read(),
            Caller::Conn(_) => self.ledger.ask(Reader {
                caller,
                asked: received,
                deadline: received + self.read_timeout,
            }),
        }
    }

    /// Sends `answer` to the caller.
    fn answer(&mut self, caller: Caller, answer: &Answer) {
        match caller {
            Caller::Fifo => self.fifo.answer(answer),
            Caller::Conn(conn) => {
                if self
                    .channel
                    .answer(conn, answer.to_string().as_bytes())
                    .is_err()
                {
                    warn!(answer = answer.label(), conn = %conn, "answer not delivered: its client went away");
                }
                // As for the FIFO: judged and recorded once the OK is on its way.
                self.ledger.settle(SystemTime::now());
            }
        }
    }

    /// WRITE: checks the agent's packet and writes it to the device; the ledger judges and
    /// records it afterwards, except in strict mode, where an invalid reply is refused.
    fn write(&mut self, packet: Response, received: Instant) -> Answer {
        if let Err(reason) = self.ledger.admit(&packet) {
            return Answer::Err(reason);
        }
        if let Err(e) = self.device.send(packet.bytes()) {
            error!(error = %e, "writing to the device failed");
            return Answer::Err(format!("the TUN device refused the packet: {e}"));
        }
        self.ledger
            .written(packet, received, Instant::now(), SystemTime::now());
        Answer::Ok
    }

    /// Gives the waiting READs what the ledger has for them: packets in the order they
    /// asked, TIMEOUT when their time is up. Whether the FIFO got a line to send.
    fn hand_out(&mut self) -> bool {
        let mut fifo = false;
        loop {
            let now = Instant::now();
            let Some(handout) = self.ledger.next_handout(now) else {
                return fifo;
            };
            match handout {
                Handout::Packet {
                    to: Caller::Fifo,
                    packet,
                } => {
                    if self.fifo.hand(packet) {
                        fifo = true;
                    } else {
                        self.ledger.undelivered(Caller::Fifo, now);
                    }
                }
                Handout::Packet {
                    to: Caller::Conn(conn),
                    packet,
                } => {
                    let line = hex::encode(packet);
                    if self.channel.answer(conn, line.as_bytes()).is_ok() {
                        self.ledger.delivered(Caller::Conn(conn), Instant::now());
                    } else {
                        warn!(conn = %conn, "packet not delivered: its client went away; back to the head of the queue");
                        self.ledger.undelivered(Caller::Conn(conn), now);
                    }
                }
                Handout::Timeout { to: Caller::Fifo } => {
                    info!("READ timed out");
                    self.fifo.time_out();
                    fifo = true;
                }
                Handout::Timeout {
                    to: Caller::Conn(conn),
                } => {
                    info!(conn = %conn, "READ timed out");
                    let _ = self.channel.answer(conn, b"TIMEOUT");
                }
            }
        }
    }

    /// Recreates a deleted FIFO or socket; fails when one was replaced by something else.
    fn check_paths(&mut self) -> Result<(), ServeError> {
        self.fifo.check_paths()?;
        match self.channel.state() {
            PathState::Ours => Ok(()),
            PathState::Replaced => Err(ServeError::FifoReplaced(self.channel.path().into())),
            PathState::Missing => {
                warn!(path = %self.channel.path().display(), "socket was deleted; recreating it");
                self.channel.relisten().map_err(ServeError::Channel)
            }
        }
    }

    /// Ends what is under way and records what is left at shutdown.
    fn finish(&mut self) {
        // Best effort: the READs waiting learn at once that no packet is coming, and that
        // this is no quiet network.
        let stopping = Answer::stopping().to_string();
        for reader in self.ledger.take_readers() {
            if let Caller::Conn(conn) = reader.caller {
                let _ = self.channel.answer(conn, stopping.as_bytes());
            }
        }
        self.fifo.finish();
        self.ledger.finish(Instant::now(), SystemTime::now());
    }
}
