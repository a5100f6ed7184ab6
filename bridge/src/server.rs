//! The daemon: owns the TUN device and serves the FIFO protocol.
//!
//! One thread drains the device into the bounded [`Queue`] all the time; the main
//! thread reads command lines and answers each with one line. Every request the
//! agent reads is tracked until its reply, which is judged against the reference
//! reply; what happened goes to the log and, when asked, to the record and capture.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use tracing::{debug, error, info, trace, warn};

use crate::device::{self, Device, DeviceError, Ipv4Cidr};
use crate::exchange::{Family, FlowKey, Response, ShowKey};
use crate::fifo::{Answer, CommandReader, Fifo, FifoError, Incoming, Owner, PathState};
use crate::inflight::{self, Awaiting, InFlight};
use crate::journal::Journal;
use crate::peer::{Ends, Ipv6Cidr};
use crate::privilege::{self, PrivilegeError, User};
use crate::protocol::{Command, ProtocolError, Reply};
use crate::queue::{Queue, Queued};
use crate::record::{Entry, Outcome};
use crate::verdict::{self, Verdict};

/// How long a handed-over request waits for its reply before it counts as unanswered.
const ANSWER_LIMIT: Duration = Duration::from_secs(300);
/// How often the main loop looks at signals, FIFO paths and ages when idle.
const TICK: Duration = Duration::from_millis(100);
/// How often the main loop checks the FIFO paths and expires old requests.
const HOUSEKEEPING: Duration = Duration::from_millis(500);

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
    /// The record or capture file could not be opened.
    OpenJournal(std::io::Error),
    /// Dropping root failed.
    Privilege(PrivilegeError),
    /// A FIFO path now holds something that is not ours.
    FifoReplaced(PathBuf),
    /// Reading the command FIFO failed.
    ReadCommand(std::io::Error),
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Device(e) => write!(f, "{e}"),
            Self::Fifo(e) => write!(f, "{e}"),
            Self::OpenJournal(e) => write!(f, "cannot open the record or capture file: {e}"),
            Self::Privilege(e) => write!(f, "{e}"),
            Self::FifoReplaced(p) => {
                write!(
                    f,
                    "{} was replaced by something that is not our FIFO; stopping",
                    p.display()
                )
            }
            Self::ReadCommand(e) => write!(f, "cannot read the command FIFO: {e}"),
        }
    }
}

impl std::error::Error for ServeError {}

/// State shared with the device reader thread.
struct Shared {
    state: Mutex<State>,
    ready: Condvar,
    stop: Arc<AtomicBool>,
    journal: Journal,
    /// The host side's and the agent's addresses.
    ends: Ends,
    /// Packets off the device that were not addressed to the agent.
    not_for_agent: AtomicU64,
}

/// What both threads change, under one lock.
struct State {
    /// Packets waiting for a READ.
    queue: Queue,
    /// The answer of a READ waiting on the empty queue, for the device reader thread to
    /// answer at once, without waking the main thread first.
    reader: Option<Answer>,
    /// A packet the device reader thread gave that READ, and when, for the main thread's books.
    handed: Option<(Queued, Instant)>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records packets that left the queue unread.
    fn dropped(&self, items: Vec<Queued>, outcome: Outcome) {
        for item in items {
            warn!(
                flow = %ShowKey(item.parsed.key.as_ref()),
                len = item.packet.len(),
                age_us = us(item.arrival.elapsed()),
                outcome = outcome.as_str(),
                "request dropped before the agent read it"
            );
            self.journal.entry(&entry(&item, outcome));
        }
    }
}

/// Runs the daemon until SIGINT or SIGTERM.
pub fn run(config: Config, stop: Arc<AtomicBool>) -> Result<(), ServeError> {
    if let Some(name) = &config.netns {
        device::enter_netns(name).map_err(ServeError::Device)?;
    }
    // A second bridge on these FIFOs refuses before it touches anything. The FIFOs are made
    // after the device: scripts take their existence as the sign that the device is up.
    Fifo::ensure_unclaimed(&config.cmd_fifo).map_err(ServeError::Fifo)?;
    let device = Arc::new(
        Device::open(&config.tun, config.address, config.address6, config.mtu)
            .map_err(ServeError::Device)?,
    );
    let cmd = Fifo::create_command(&config.cmd_fifo, config.owner).map_err(ServeError::Fifo)?;
    let resp = Fifo::create(&config.resp_fifo, config.owner).map_err(ServeError::Fifo)?;
    let reader = CommandReader::open(&config.cmd_fifo).map_err(|source| {
        ServeError::Fifo(FifoError::Open {
            path: config.cmd_fifo.clone(),
            source,
        })
    })?;
    let journal = Journal::open(config.record.as_deref(), config.pcap.as_deref())
        .map_err(ServeError::OpenJournal)?;
    if let Some(user) = &config.user {
        privilege::drop_to(user).map_err(ServeError::Privilege)?;
        info!(user = %user.name, uid = user.uid, gid = user.gid, "dropped root");
    }
    info!(tun = device.name(), address = %config.address, peer = %config.peer, netns = ?config.netns,
          cmd = %config.cmd_fifo.display(), resp = %config.resp_fifo.display(), "bridge ready");
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: Queue::new(config.queue_size, config.max_age),
            reader: None,
            handed: None,
        }),
        ready: Condvar::new(),
        stop,
        journal,
        ends: config.ends(),
        not_for_agent: AtomicU64::new(0),
    });
    let drain = spawn_drain(Arc::clone(&device), Arc::clone(&shared));
    let mut bridge = Bridge {
        config,
        device,
        shared,
        reader,
        cmd,
        resp,
        inflight: InFlight::new(inflight::CAPACITY, ANSWER_LIMIT),
    };
    let result = bridge.serve();
    bridge.shared.stop.store(true, Ordering::SeqCst);
    if drain.join().is_err() {
        error!("device reader thread panicked");
    }
    bridge.finish();
    result
}

/// Starts the thread that drains the device into the queue.
fn spawn_drain(device: Arc<Device>, shared: Arc<Shared>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while !shared.stop.load(Ordering::Relaxed) {
            match device.recv(&mut buf, TICK) {
                Ok(Some(n)) => arrive(&shared, Queued::now(buf[..n].to_vec())),
                Ok(None) => {}
                Err(e) => {
                    error!(error = %e, "reading the TUN device failed");
                    thread::sleep(TICK);
                }
            }
        }
    })
}

/// Queues one packet read from the device; only the served families reach the agent.
fn arrive(shared: &Shared, item: Queued) {
    shared.journal.packet(item.arrival_wall, &item.packet);
    if !item.parsed.family.is_some_and(Family::is_served) {
        debug!(
            len = item.packet.len(),
            "packet of an unserved family ignored"
        );
        return;
    }
    if !shared.ends.is_for_agent(&item.packet) {
        shared.not_for_agent.fetch_add(1, Ordering::Relaxed);
        debug!(len = item.packet.len(), "packet not for the agent");
        shared.journal.entry(&entry(&item, Outcome::NotForAgent));
        return;
    }
    let (key, len) = (item.parsed.key, item.packet.len());
    trace!(hex = %hex::encode(&item.packet), "request bytes");
    let mut s = shared.state();
    let stale = s.queue.expire(item.arrival);
    let evicted = match s.reader.take() {
        Some(answer) => {
            drop(s);
            deliver(shared, answer, item)
        }
        None => {
            let evicted = s.queue.push(item);
            drop(s);
            evicted
        }
    };
    // Wake the main thread before logging: the log line is not on the packet's way.
    shared.ready.notify_all();
    debug!(flow = %ShowKey(key.as_ref()), len, "request queued");
    shared.dropped(stale, Outcome::Stale);
    shared.dropped(evicted.into_iter().collect(), Outcome::Overflow);
}

/// Answers the READ waiting on the empty queue with `item`. When the pipe cannot take
/// the line at once, the packet is queued and the answer put back, for the main thread
/// to send as usual. Returns a packet evicted to make room.
fn deliver(shared: &Shared, answer: Answer, item: Queued) -> Option<Queued> {
    match answer.offer(&Reply::Packet(item.packet.clone()).to_string()) {
        Ok(()) => {
            shared.state().handed = Some((item, Instant::now()));
            None
        }
        Err(answer) => {
            let mut s = shared.state();
            s.reader = Some(answer);
            s.queue.push(item)
        }
    }
}

/// How a READ's wait for a packet ended.
enum Waited {
    /// A packet to send on the answer.
    Packet(Answer, Queued),
    /// The device reader thread already handed this packet over, at this time.
    Handed(Queued, Instant),
    /// No packet: the timeout passed, the reader left, or the bridge is stopping.
    Nothing(Answer),
}

/// The main thread's state.
struct Bridge {
    config: Config,
    device: Arc<Device>,
    shared: Arc<Shared>,
    reader: CommandReader,
    cmd: Fifo,
    resp: Fifo,
    inflight: InFlight,
}

impl Bridge {
    /// Reads and answers commands until told to stop.
    fn serve(&mut self) -> Result<(), ServeError> {
        let mut last_check = Instant::now();
        while !self.shared.stop.load(Ordering::Relaxed) {
            if last_check.elapsed() >= HOUSEKEEPING {
                self.check_fifos()?;
                self.expire();
                last_check = Instant::now();
            }
            match self.reader.next(TICK).map_err(ServeError::ReadCommand)? {
                Some(Incoming::Line(line)) => self.command(&line, self.reader.received()),
                Some(Incoming::TooLong(n)) => {
                    warn!(len = n, "command line too long");
                    let reply = Reply::Err(ProtocolError::TooLong(n).to_string());
                    self.answer(&reply, self.reader.received());
                }
                Some(Incoming::Dropped(n)) => {
                    warn!(len = n, "unfinished command line dropped after idling")
                }
                None => {}
            }
        }
        info!("stopping");
        Ok(())
    }

    /// Parses one line, read from the FIFO at `received`, and acts on it.
    fn command(&mut self, line: &[u8], received: Instant) {
        match Command::parse(line, self.device.mtu()) {
            Ok(Command::Read) => self.read(received),
            Ok(Command::Write(packet)) => {
                let reply = self.write(packet);
                self.answer(&reply, received);
            }
            Err(e) => {
                warn!(reason = %e, len = line.len(), "command refused");
                self.answer(&Reply::Err(e.to_string()), received);
            }
        }
    }

    /// What is left of the grace period of a command read at `received`. An answer waits
    /// for its reader at most the grace period after its command arrived, so a burst of
    /// unread commands is given up on within one period, not one period per command.
    fn grace_left(&self, received: Instant) -> Duration {
        self.config.reply_grace.saturating_sub(received.elapsed())
    }

    /// Delivers an answer if its reader turns up within the grace period.
    fn answer(&self, reply: &Reply, received: Instant) {
        match Answer::wait_for_reader(&self.config.resp_fifo, self.grace_left(received)) {
            Ok(Some(a)) => {
                if let Err(e) = a.send(&reply.to_string(), self.config.reply_grace) {
                    warn!(error = %e, "answer not delivered");
                }
            }
            Ok(None) => warn!(answer = reply.label(), "nobody read the answer; discarded"),
            Err(e) => warn!(error = %e, "cannot open the answer FIFO"),
        }
    }

    /// READ: wait for a reader, then for a packet; hand it over or say TIMEOUT.
    fn read(&mut self, received: Instant) {
        let answer =
            match Answer::wait_for_reader(&self.config.resp_fifo, self.grace_left(received)) {
                Ok(Some(a)) => a,
                Ok(None) => return warn!("READ abandoned: nobody is reading the answer FIFO"),
                Err(e) => return warn!(error = %e, "cannot open the answer FIFO"),
            };
        // The client has sent its line and closed: reopen now, not after the hand-over.
        if let Err(e) = self.reader.reopen_if_ended() {
            warn!(error = %e, "cannot reopen the command FIFO");
        }
        let (answer, item) = match self.wait_packet(answer) {
            Waited::Packet(answer, item) => (answer, item),
            Waited::Handed(item, handover) => return self.handed(item, handover),
            Waited::Nothing(answer) => return self.no_packet(answer),
        };
        let line = Reply::Packet(item.packet.clone()).to_string();
        if let Err(e) = answer.send(&line, self.config.reply_grace) {
            warn!(error = %e, "packet not delivered; back to the head of the queue");
            let evicted = self.shared.state().queue.push_front(item);
            self.shared.ready.notify_all();
            self.shared
                .dropped(evicted.into_iter().collect(), Outcome::Overflow);
            return;
        }
        self.handed(item, Instant::now());
    }

    /// Ends a READ that got no packet: TIMEOUT, or nothing if its reader left.
    fn no_packet(&self, answer: Answer) {
        if answer.reader_gone() {
            return info!("READ abandoned: its reader went away");
        }
        if let Err(e) = answer.send(&Reply::Timeout.to_string(), self.config.reply_grace) {
            warn!(error = %e, "TIMEOUT not delivered");
        }
        info!("READ timed out");
    }

    /// Waits for a fresh packet while the reader is there and the timeout lasts. While
    /// the queue is empty the answer waits in the shared state, where the device reader
    /// thread answers it with the next packet; while that thread holds it, neither the
    /// answer nor the hand-over is there, and it puts one of them back before it lets go.
    fn wait_packet(&self, answer: Answer) -> Waited {
        let deadline = Instant::now() + self.config.read_timeout;
        let mut s = self.shared.state();
        s.reader = Some(answer);
        loop {
            if let Some((item, handover)) = s.handed.take() {
                return Waited::Handed(item, handover);
            }
            let stale = s.queue.expire(Instant::now());
            if !stale.is_empty() {
                drop(s);
                self.shared.dropped(stale, Outcome::Stale);
                s = self.shared.state();
                continue;
            }
            if let Some(answer) = s.reader.take() {
                if let Some(item) = s.queue.pop() {
                    return Waited::Packet(answer, item);
                }
                let stop = self.shared.stop.load(Ordering::Relaxed);
                if Instant::now() >= deadline || stop || answer.reader_gone() {
                    return Waited::Nothing(answer);
                }
                s.reader = Some(answer);
            }
            let slice = deadline
                .saturating_duration_since(Instant::now())
                .clamp(Duration::from_millis(1), Duration::from_millis(50));
            s = self
                .shared
                .ready
                .wait_timeout(s, slice)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Notes a request delivered at `handover` as waiting for its reply.
    fn handed(&mut self, item: Queued, handover: Instant) {
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

    /// WRITE: check, judge, and write the agent's packet.
    fn write(&mut self, packet: Response) -> Reply {
        let received = Instant::now();
        if let Err(reason) = self.egress(&packet) {
            warn!(reason, "WRITE refused");
            return Reply::Err(reason);
        }
        let key = packet.key().copied();
        let verdict = match key.and_then(|k| self.inflight.find_mut(&k)) {
            Some(a) => verdict::judge(&a.request.parsed, &packet),
            None => Verdict::NoMatchingRequest,
        };
        if self.config.strict && verdict != Verdict::Valid {
            warn!(flow = %ShowKey(key.as_ref()), verdict = %verdict, "reply refused (strict)");
            if let Some(a) = key.and_then(|k| self.inflight.find_mut(&k)) {
                a.refused = Some(verdict.clone());
            }
            return Reply::Err(verdict.to_string());
        }
        let packet = packet.bytes();
        if let Err(e) = self.device.send(packet) {
            error!(error = %e, "writing to the TUN device failed");
            return Reply::Err(format!("the TUN device refused the packet: {e}"));
        }
        let written = Instant::now();
        self.shared.journal.packet(SystemTime::now(), packet);
        trace!(hex = %hex::encode(packet), "reply bytes");
        self.settle(key, verdict, received, written);
        Reply::Ok
    }

    /// Refuses packets that would let the agent speak as anyone but the peer, or to anyone but the host side.
    fn egress(&self, packet: &Response) -> Result<(), String> {
        self.shared.ends.egress(packet)
    }

    /// Logs and records a written reply against its request.
    fn settle(
        &mut self,
        key: Option<FlowKey>,
        verdict: Verdict,
        received: Instant,
        written: Instant,
    ) {
        let write_us = (written - received).as_secs_f64() * 1e6;
        let Some(h) = key.and_then(|k| self.inflight.take(&k)) else {
            warn!(flow = %ShowKey(key.as_ref()), verdict = %verdict, "reply written, no matching request");
            let mut e = Entry::new(SystemTime::now(), key.as_ref(), 0, Outcome::Unmatched);
            e.write_us = Some(write_us);
            e.judged(&verdict);
            e.written = true;
            return self.shared.journal.entry(&e);
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
        self.shared.journal.entry(&e);
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
        self.shared.journal.entry(&e);
    }

    /// Drops stale queued packets and forgets long-unanswered requests.
    fn expire(&mut self) {
        let stale = self.shared.state().queue.expire(Instant::now());
        self.shared.dropped(stale, Outcome::Stale);
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
        Ok(())
    }

    /// Records what is left at shutdown.
    fn finish(&mut self) {
        let not_for_agent = self.shared.not_for_agent.load(Ordering::Relaxed);
        info!(
            not_for_agent,
            "packets off the device not addressed to the agent"
        );
        for h in self.inflight.drain() {
            self.unanswered(h, "bridge stopped");
        }
        let left: Vec<Queued> = std::iter::from_fn(|| self.shared.state().queue.pop()).collect();
        if !left.is_empty() {
            info!(count = left.len(), "packets still queued at shutdown");
        }
        self.shared.dropped(left, Outcome::Unanswered);
    }
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
