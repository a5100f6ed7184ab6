//! The ledger: every request from its arrival on the device until it is settled.
//!
//! It owns the bookkeeping of the daemon and nothing that waits: the queue of packets
//! waiting for a READ, the READs waiting for a packet ([`Readers`], both transports in the
//! order they asked), the packets on their way to a READ, the in-flight table of requests
//! the agent has read, the drop summaries and the journal. A reply is checked before it is
//! written (the egress policy; the verdict in strict mode), and judged and recorded after.
//!
//! The time is passed in, as to smoltcp's `Interface::poll(timestamp, ..)`: the ledger
//! never reads a clock, so its tests run without threads, sleeps, FIFOs or devices. The
//! loop (`server.rs`) does the I/O and tells the ledger what happened when.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tracing::{debug, info, trace, warn};

use crate::daemon::counts::{Count, Counts};
use crate::daemon::drops::{self, Drops};
use crate::daemon::inflight::{self, Awaiting, InFlight};
use crate::daemon::pace::Pace;
use crate::daemon::queue::{Queue, Queued};
use crate::daemon::readers::{Caller, Reader, Readers};
use crate::instrument::journal::Journal;
use crate::instrument::record::{Entry, Outcome};
use crate::ipc::channel::ConnId;
use crate::judge::ends::Ends;
use crate::judge::exchange::{self, FlowKey, Response, ShowKey};
use crate::judge::verdict::{self, Verdict};

/// How long a request the agent has read waits for its reply before it counts as unanswered.
pub const ANSWER_LIMIT: Duration = Duration::from_secs(300);

/// What the ledger is set up with.
#[derive(Debug, Clone)]
pub struct Terms {
    /// The host side's and the agent's addresses.
    pub ends: Ends,
    /// Most packets queued.
    pub queue_size: usize,
    /// Oldest packet handed out.
    pub max_age: Duration,
    /// Refuse invalid replies instead of writing them.
    pub strict: bool,
}

/// What the ledger has for a waiting READ.
#[derive(Debug, PartialEq, Eq)]
pub enum Handout<'a> {
    /// This packet, for the READ of `to`; say how its delivery went with
    /// [`Ledger::delivered`] or [`Ledger::undelivered`].
    Packet { to: Caller, packet: &'a [u8] },
    /// TIMEOUT, for the READ of `to`: its time is up.
    Timeout { to: Caller },
}

/// A reply written to the device and not yet judged and recorded.
#[derive(Debug)]
struct Unsettled {
    reply: Response,
    received: Instant,
    written: Instant,
    written_wall: SystemTime,
}

/// Every request from arrival to settlement.
#[derive(Debug)]
pub struct Ledger {
    ends: Ends,
    strict: bool,
    /// Packets waiting for a READ, oldest first.
    queue: Queue,
    /// READs waiting for a packet, in the order they asked.
    readers: Readers,
    /// Packets given to a READ whose answer is still on its way.
    delivering: Vec<(Caller, Queued)>,
    /// Requests the agent has read and not yet answered.
    inflight: InFlight,
    /// When a packet went to a channel client that has not yet shown it read it (by its
    /// next command or a clean hang-up): if it leaves it unread, the packet goes back.
    unconfirmed: HashMap<ConnId, Instant>,
    /// The reply written last, until it is judged and recorded.
    unsettled: Option<Unsettled>,
    /// Packets dropped unread since the last summary.
    drops: Drops,
    /// How long the agent takes from hand-over to WRITE, from the answers so far.
    pace: Pace,
    journal: Journal,
    counts: Arc<Counts>,
}

impl Ledger {
    /// An empty ledger on `terms`, keeping its journal in `journal` and its totals in `counts`.
    pub fn new(terms: Terms, journal: Journal, counts: Arc<Counts>) -> Ledger {
        Ledger {
            ends: terms.ends,
            strict: terms.strict,
            queue: Queue::new(terms.queue_size, terms.max_age),
            readers: Readers::new(),
            delivering: Vec::new(),
            inflight: InFlight::new(inflight::CAPACITY, ANSWER_LIMIT),
            unconfirmed: HashMap::new(),
            unsettled: None,
            drops: Drops::new(drops::INTERVAL),
            pace: Pace::new(),
            journal,
            counts,
        }
    }

    /// A packet read from the device at `now` (`wall` on the wall clock): captured, and
    /// queued when it is a request for the agent; only the served families reach it.
    pub fn arrive(&mut self, packet: Vec<u8>, now: Instant, wall: SystemTime) {
        let item = Queued::new(packet, now, wall);
        self.journal.packet(item.arrival_wall, &item.packet);
        if !item.parsed.family.is_some_and(exchange::is_served) {
            debug!(
                len = item.packet.len(),
                "packet of an unserved family ignored"
            );
            return;
        }
        if !self.ends.is_for_agent(&item.packet) {
            self.counts.add(Count::NotForAgent);
            debug!(len = item.packet.len(), "packet not for the agent");
            self.journal.entry(&entry(&item, Outcome::NotForAgent));
            return;
        }
        let (key, len) = (item.parsed.key, item.packet.len());
        trace!(hex = %hex::encode(&item.packet), "request bytes");
        let stale = self.queue.expire(now);
        let evicted = self.queue.push(item);
        self.counts.add(Count::Queued);
        debug!(flow = %ShowKey(key.as_ref()), len, "request queued");
        self.dropped(stale, Outcome::Stale, now);
        self.dropped(evicted.into_iter().collect(), Outcome::Overflow, now);
    }

    /// A READ asks for a packet.
    pub fn ask(&mut self, reader: Reader) {
        self.counts.add(Count::Asked);
        self.readers.ask(reader);
    }

    /// The READ of `caller` waits no longer (its client went away); whether one waited.
    pub fn withdraw(&mut self, caller: Caller) -> bool {
        self.readers.withdraw(caller)
    }

    /// Whether a READ is waiting for a packet.
    pub fn has_readers(&self) -> bool {
        !self.readers.is_empty()
    }

    /// The soonest instant a waiting READ times out.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.readers.next_deadline()
    }

    /// What the waiting READs get at `now`, one at a time: the oldest fresh packet for the
    /// READ that asked first, or TIMEOUT for one whose time is up. `None`: nothing to do.
    /// Fresh: not older than `--max-age`, and young enough for the agent to answer within it
    /// at its pace; when it is too slow for any, the newest ([`crate::daemon::pace`]).
    pub fn next_handout(&mut self, now: Instant) -> Option<Handout<'_>> {
        if !self.readers.is_empty() {
            let stale = self.queue.expire(now);
            self.dropped(stale, Outcome::Stale, now);
            let (pace, max_age) = (self.pace, self.queue.max_age());
            let late = self.queue.skip_late(now, |age| pace.too_late(age, max_age));
            if !late.is_empty() {
                debug!(count = late.len(), agent_ms = ?pace.estimate().map(ms),
                       "requests dropped: the agent could not answer them within --max-age");
            }
            self.dropped(late, Outcome::Stale, now);
            if !self.queue.is_empty() {
                let (reader, item) = self.readers.pop().zip(self.queue.pop())?;
                self.delivering.push((reader.caller, item));
                let (_, item) = self.delivering.last()?;
                return Some(Handout::Packet {
                    to: reader.caller,
                    packet: &item.packet,
                });
            }
        }
        let reader = self.readers.expired(now)?;
        Some(Handout::Timeout { to: reader.caller })
    }

    /// The packet for `to` reached its reader at `at`: the request now waits for its reply.
    pub fn delivered(&mut self, to: Caller, at: Instant) {
        let Some(item) = self.take_delivering(to) else {
            return;
        };
        if let Caller::Conn(conn) = to {
            self.unconfirmed.insert(conn, at);
        }
        self.counts.add(Count::Handed);
        debug!(
            flow = %ShowKey(item.parsed.key.as_ref()),
            len = item.packet.len(),
            queue_ms = ms(at - item.arrival),
            "request handed to the agent"
        );
        let evicted = self.inflight.insert(Awaiting {
            request: item,
            handover: at,
            refused: None,
        });
        if let Some(old) = evicted {
            self.unanswered(old, "in-flight table full");
        }
    }

    /// The packet for `to` did not reach its reader: back to the head of the queue.
    pub fn undelivered(&mut self, to: Caller, now: Instant) {
        if let Some(item) = self.take_delivering(to) {
            self.put_back(item, Outcome::Overflow, now);
        }
    }

    fn take_delivering(&mut self, to: Caller) -> Option<Queued> {
        let i = self.delivering.iter().position(|(c, _)| *c == to)?;
        Some(self.delivering.swap_remove(i).1)
    }

    /// Puts a packet back at the head of the queue; one that no longer fits is dropped as `outcome`.
    fn put_back(&mut self, item: Queued, outcome: Outcome, now: Instant) {
        let evicted = self.queue.push_front(item);
        self.dropped(evicted.into_iter().collect(), outcome, now);
    }

    /// A channel client sent its next command: it has read what it was sent.
    pub fn confirm(&mut self, conn: ConnId) {
        self.unconfirmed.remove(&conn);
    }

    /// A channel client went away: its READ stops waiting, and a packet it left unread
    /// (`unread`) goes back to the head of the queue.
    pub fn client_gone(&mut self, conn: ConnId, unread: bool, now: Instant) {
        if self.readers.withdraw(Caller::Conn(conn)) {
            self.counts.add(Count::Abandoned);
            info!(conn = %conn, "READ abandoned: its client went away");
        }
        let Some(handover) = self.unconfirmed.remove(&conn) else {
            return;
        };
        if unread {
            self.take_back(handover, Caller::Conn(conn), now);
        }
    }

    /// The packet handed over at `handover` to the READ of `from` was never read (a channel
    /// client left it unread; on the FIFOs, it was still in the pipe after the grace
    /// period): it goes back to the head of the queue, for the next READ.
    pub fn take_back(&mut self, handover: Instant, from: Caller, now: Instant) {
        if let Some(a) = self.inflight.take_handed(handover) {
            warn!(flow = %ShowKey(a.key()), from = %from,
                  "packet never read by its client; back to the head of the queue");
            self.put_back(a.request, Outcome::Overflow, now);
        }
    }

    /// Checks a WRITE's packet before it is written: the egress policy, and in strict mode
    /// the verdict (an invalid reply is refused, and its request notes why).
    pub fn admit(&mut self, reply: &Response) -> Result<(), String> {
        if let Err(reason) = self.ends.egress(reply) {
            warn!(reason, "WRITE refused");
            return Err(reason);
        }
        if !self.strict {
            return Ok(());
        }
        let verdict = self.judge(reply);
        if verdict.is_valid() {
            return Ok(());
        }
        warn!(flow = %ShowKey(reply.key()), verdict = %verdict, "reply refused (strict)");
        if let Some(a) = reply.key().and_then(|k| self.inflight.find_mut(k)) {
            a.refused = Some(verdict.clone());
        }
        Err(verdict.to_string())
    }

    /// A reply was written to the device at `written` (`wall`), its WRITE received at
    /// `received`. It is judged and recorded by [`Ledger::settle`], once its OK is on its
    /// way; one written before is settled first, so none is ever lost.
    pub fn written(
        &mut self,
        reply: Response,
        received: Instant,
        written: Instant,
        wall: SystemTime,
    ) {
        self.settle(wall);
        self.unsettled = Some(Unsettled {
            reply,
            received,
            written,
            written_wall: wall,
        });
    }

    /// Judges, logs and records the reply written last, if that is not done yet; `wall`
    /// dates the line of a reply that answers no request.
    pub fn settle(&mut self, wall: SystemTime) {
        let Some(w) = self.unsettled.take() else {
            return;
        };
        self.counts.add(Count::Settled);
        self.journal.packet(w.written_wall, w.reply.bytes());
        trace!(hex = %hex::encode(w.reply.bytes()), "reply bytes");
        let verdict = self.judge(&w.reply);
        let key: Option<FlowKey> = w.reply.key().copied();
        let (received, written) = (w.received, w.written);
        let write_us = (written - received).as_secs_f64() * 1e6;
        let Some(h) = key.and_then(|k| self.inflight.take(&k)) else {
            warn!(flow = %ShowKey(key.as_ref()), verdict = %verdict, "reply written, no matching request");
            let mut e = Entry::new(wall, key.as_ref(), 0, Outcome::Unmatched);
            e.write_us = Some(write_us);
            e.judged(&verdict);
            e.written = true;
            return self.journal.entry(&e);
        };
        info!(flow = %ShowKey(key.as_ref()), len = h.request.packet.len(),
              queue_us = us(h.handover - h.request.arrival), agent_us = us(received - h.handover),
              rtt_us = us(written - h.request.arrival), write_us = us(written - received),
              verdict = %verdict, "reply written");
        self.pace.observe(received - h.handover);
        let mut e = entry(&h.request, Outcome::Answered);
        e.queue_ms = Some(ms(h.handover - h.request.arrival));
        e.agent_ms = Some(ms(received - h.handover));
        e.rtt_ms = Some(ms(written - h.request.arrival));
        e.write_us = Some(write_us);
        e.judged(&verdict);
        e.written = true;
        self.journal.entry(&e);
    }

    /// The verdict on a reply against the request it answers.
    fn judge(&mut self, reply: &Response) -> Verdict {
        match reply.key().and_then(|k| self.inflight.find_mut(k)) {
            Some(a) => verdict::judge(&a.request.parsed, reply),
            None => Verdict::NoMatchingRequest,
        }
    }

    /// At `now`: drops stale queued packets, gives up on long-unanswered requests, and
    /// logs and records the drops of an interval that is over.
    pub fn housekeeping(&mut self, now: Instant) {
        let stale = self.queue.expire(now);
        self.dropped(stale, Outcome::Stale, now);
        for h in self.inflight.expire(now) {
            self.unanswered(h, "no reply within the answer limit");
        }
        let due = self.drops.due(now);
        self.summarise(due);
    }

    /// Takes every waiting READ, as at shutdown: the caller tells each that no packet comes.
    pub fn take_readers(&mut self) -> Vec<Reader> {
        self.readers.drain()
    }

    /// Records what is left at shutdown (`now`, `wall`): the reply written last, the
    /// requests read and never answered, the packets still queued or on their way.
    pub fn finish(&mut self, now: Instant, wall: SystemTime) {
        info!(
            not_for_agent = self.counts.get(Count::NotForAgent),
            "packets off the device not addressed to the agent"
        );
        for (_, item) in std::mem::take(&mut self.delivering) {
            self.put_back(item, Outcome::Unanswered, now);
        }
        self.settle(wall);
        for h in self.inflight.drain() {
            self.unanswered(h, "bridge stopped");
        }
        let left: Vec<Queued> = std::iter::from_fn(|| self.queue.pop()).collect();
        if !left.is_empty() {
            info!(count = left.len(), "packets still queued at shutdown");
        }
        self.dropped(left, Outcome::Unanswered, now);
        let all = self.drops.take();
        self.summarise(all);
    }

    /// Counts packets that left the queue unread at `now`, for the next drop summary.
    fn dropped(&mut self, items: Vec<Queued>, outcome: Outcome, now: Instant) {
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

    /// Logs and records drop tallies: one line per outcome, with the count.
    fn summarise(&mut self, tallies: Vec<drops::Tally>) {
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
    fn unanswered(&mut self, h: Awaiting, why: &str) {
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

#[cfg(test)]
mod test {
    use super::*;
    use crate::testdir::TestDir;
    use crate::wire::fixtures::*;

    const MAX_AGE: Duration = Duration::from_secs(20);

    fn ends() -> Ends {
        Ends {
            v4: ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap()),
            v6: Some((
                "2001:db8::1".parse().unwrap(),
                "2001:db8::2".parse().unwrap(),
            )),
        }
    }

    /// A ledger keeping its record in a fresh directory, with the clocks it starts at.
    struct Book {
        ledger: Ledger,
        dir: TestDir,
        t0: Instant,
        wall: SystemTime,
    }

    impl Book {
        fn new(tag: &str, queue_size: usize, strict: bool) -> Book {
            let dir = TestDir::new(&format!("ledger-{tag}"));
            let journal = Journal::open(Some(&dir.join("record.jsonl")), None).unwrap();
            let terms = Terms {
                ends: ends(),
                queue_size,
                max_age: MAX_AGE,
                strict,
            };
            Book {
                ledger: Ledger::new(terms, journal, Arc::default()),
                dir,
                t0: Instant::now(),
                wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            }
        }

        /// The monotonic and wall clock `ms` milliseconds after the start.
        fn at(&self, ms: u64) -> (Instant, SystemTime) {
            let d = Duration::from_millis(ms);
            (self.t0 + d, self.wall + d)
        }

        fn arrive(&mut self, packet: &[u8], ms: u64) {
            let (now, wall) = self.at(ms);
            self.ledger.arrive(packet.to_vec(), now, wall);
        }

        /// A READ of `caller` asked at `ms`, waiting `wait_ms`.
        fn ask(&mut self, caller: Caller, ms: u64, wait_ms: u64) {
            let asked = self.at(ms).0;
            let deadline = asked + Duration::from_millis(wait_ms);
            self.ledger.ask(Reader {
                caller,
                asked,
                deadline,
            });
        }

        /// The hand-outs at `ms`, as (caller, packet) or (caller, None) for TIMEOUT.
        fn handouts(&mut self, ms: u64) -> Vec<(Caller, Option<Vec<u8>>)> {
            let now = self.at(ms).0;
            std::iter::from_fn(|| {
                self.ledger.next_handout(now).map(|h| match h {
                    Handout::Packet { to, packet } => (to, Some(packet.to_vec())),
                    Handout::Timeout { to } => (to, None),
                })
            })
            .collect()
        }

        /// Hands out at `ms` and tells the ledger every packet reached its reader then.
        fn deliver(&mut self, ms: u64) -> Vec<(Caller, Option<Vec<u8>>)> {
            let got = self.handouts(ms);
            for (to, packet) in &got {
                if packet.is_some() {
                    self.ledger.delivered(*to, self.at(ms).0);
                }
            }
            got
        }

        /// The agent's WRITE of `reply`, received at `ms` and written 50 µs later; the
        /// WRITE's answer, as the loop would give it (the device takes everything).
        fn write(&mut self, reply: &[u8], ms: u64) -> Result<(), String> {
            let reply = Response::parse(reply.to_vec()).unwrap();
            self.ledger.admit(&reply)?;
            let (received, wall) = self.at(ms);
            let written = received + Duration::from_micros(50);
            self.ledger.written(reply, received, written, wall);
            Ok(())
        }

        fn settle(&mut self, ms: u64) {
            let wall = self.at(ms).1;
            self.ledger.settle(wall);
        }

        /// The record so far, one JSON value per line.
        fn record(&self) -> Vec<serde_json::Value> {
            let text = std::fs::read_to_string(self.dir.join("record.jsonl")).unwrap();
            text.lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        }

        /// The record's (outcome, seq, count) per line.
        fn outcomes(&self) -> Vec<(String, Option<u64>, Option<u64>)> {
            self.record()
                .iter()
                .map(|l| {
                    let outcome = l["outcome"].as_str().unwrap().to_string();
                    (outcome, l["seq"].as_u64(), l["count"].as_u64())
                })
                .collect()
        }
    }

    fn conn(n: u64) -> Caller {
        Caller::Conn(ConnId::from_raw(n))
    }

    fn conn_id(n: u64) -> ConnId {
        ConnId::from_raw(n)
    }

    #[test]
    fn only_requests_for_the_agent_are_queued() {
        let mut b = Book::new("arrive", 8, false);
        b.arrive(&REQUEST_56, 0);
        b.arrive(&ICMPV6_ROUTER_SOLICIT, 1);
        b.arrive(&[0x20; 28], 2);
        b.arrive(&REPLY_56, 3);
        assert_eq!(b.ledger.counts.get(Count::Queued), 1);
        assert_eq!(b.ledger.counts.get(Count::NotForAgent), 2);
        // Not for the agent: one line each, never handed over; another family: nothing.
        let lines = b.outcomes();
        assert_eq!(
            lines,
            [
                ("not_for_agent".into(), None, None),
                ("not_for_agent".into(), Some(1), None),
            ]
        );
        b.ask(Caller::Fifo, 4, 1000);
        assert_eq!(b.handouts(4), [(Caller::Fifo, Some(REQUEST_56.to_vec()))]);
    }

    #[test]
    fn reads_get_packets_in_the_order_they_asked_whatever_their_transport() {
        let mut b = Book::new("order", 8, false);
        b.ask(conn(1), 10, 30_000);
        b.ask(conn(2), 30, 30_000);
        // The FIFO READ's line came at 20 ms; its client opened the answer FIFO at 40.
        b.ask(Caller::Fifo, 20, 30_000);
        b.arrive(&REQUEST_56, 50);
        b.arrive(&REQUEST_56_SEQ2, 51);
        assert_eq!(
            b.handouts(52),
            [
                (conn(1), Some(REQUEST_56.to_vec())),
                (Caller::Fifo, Some(REQUEST_56_SEQ2.to_vec())),
            ]
        );
        b.arrive(&REQUEST_0, 60);
        assert_eq!(b.handouts(61), [(conn(2), Some(REQUEST_0.to_vec()))]);
        assert!(b.handouts(62).is_empty(), "nothing waits");
    }

    #[test]
    fn a_read_times_out_and_a_withdrawn_one_takes_nothing() {
        let mut b = Book::new("timeout", 8, false);
        b.ask(conn(1), 0, 1000);
        b.ask(Caller::Fifo, 1, 5000);
        assert_eq!(b.ledger.next_deadline(), Some(b.at(1000).0));
        assert!(b.handouts(999).is_empty());
        assert_eq!(b.handouts(1000), [(conn(1), None)]);
        assert!(b.ledger.withdraw(Caller::Fifo));
        b.arrive(&REQUEST_56, 2000);
        assert!(b.handouts(2001).is_empty(), "the packet waits for a READ");
        assert_eq!(b.ledger.counts.get(Count::Queued), 1);
    }

    #[test]
    fn a_stale_packet_is_never_handed_out_and_drops_are_summarised_once_a_second() {
        let mut b = Book::new("stale", 2, false);
        // Three into a queue of two: the oldest goes, so the live ping is the one kept.
        b.arrive(&REQUEST_56, 0);
        b.arrive(&REQUEST_56_SEQ2, 1);
        b.arrive(&REQUEST_0, 2);
        // Asked just after the second is older than the age limit: the third is handed out.
        let max_age = u64::try_from(MAX_AGE.as_millis()).unwrap();
        b.ask(Caller::Fifo, 2 + max_age, 1000);
        let got = b.handouts(2 + max_age);
        assert_eq!(got, [(Caller::Fifo, Some(REQUEST_0.to_vec()))]);
        b.ledger.housekeeping(b.at(2 + 999).0);
        assert!(
            b.outcomes().is_empty(),
            "summarised once the interval is over"
        );
        b.ledger.housekeeping(b.at(2 + 1000).0);
        assert_eq!(
            b.outcomes(),
            [
                ("overflow".into(), None, Some(1)),
                ("stale".into(), None, Some(1)),
            ]
        );
    }

    /// An echo request with sequence number `seq` (REQUEST_56 otherwise) and its reply.
    fn echo(seq: u16) -> (Vec<u8>, Vec<u8>) {
        let mut request = REQUEST_56.to_vec();
        request[26..28].copy_from_slice(&seq.to_be_bytes());
        crate::wire::icmpv4::Packet::new_unchecked(&mut request[20..]).fill_checksum();
        let reply = crate::wire::echo_reply(&request).unwrap();
        (request, reply)
    }

    /// Pings every second (`count` of them) and an agent that writes its reply `agent_ms`
    /// after a hand-over and asks for the next packet `cycle_ms` after it: the (seq, age at
    /// hand-over in ms) of every packet it was handed.
    fn serve(b: &mut Book, count: u16, agent_ms: u64, cycle_ms: u64) -> Vec<(u16, u64)> {
        let arrival = |seq: u16| u64::from(seq - 1) * 1000;
        let (mut sent, mut read_at, mut handed) = (0u16, 0u64, Vec::new());
        loop {
            while sent < count && arrival(sent + 1) <= read_at {
                sent += 1;
                b.arrive(&echo(sent).0, arrival(sent));
            }
            b.ask(Caller::Fifo, read_at, 30_000);
            let mut got = b.deliver(read_at);
            let mut at = read_at;
            while got.is_empty() && sent < count {
                sent += 1;
                at = arrival(sent);
                b.arrive(&echo(sent).0, at);
                got = b.deliver(at);
            }
            let Some((_, Some(packet))) = got.pop() else {
                return handed;
            };
            let seq = u16::from_be_bytes([packet[26], packet[27]]);
            handed.push((seq, at - arrival(seq)));
            b.write(&echo(seq).1, at + agent_ms).unwrap();
            b.settle(at + agent_ms);
            read_at = at + cycle_ms;
        }
    }

    #[test]
    fn a_slow_agent_is_handed_only_packets_it_can_still_answer_in_time() {
        // 60 pings a second apart; the agent writes 8 s after a hand-over and reads again
        // 15 s after it; pings give up after 20 s (--max-age).
        let mut b = Book::new("slow", 64, false);
        let handed = serve(&mut b, 60, 8_000, 15_000);
        let max_age = u64::try_from(MAX_AGE.as_millis()).unwrap();
        assert_eq!(handed[0], (1, 0), "no estimate yet: the oldest, as always");
        for &(seq, age) in &handed {
            assert!(
                age + 8_000 <= max_age,
                "ping {seq} handed over at age {age} ms: {handed:?}"
            );
        }
        assert!(handed.len() >= 4, "{handed:?}");
        let answered = b
            .outcomes()
            .iter()
            .filter(|(o, ..)| o == "answered")
            .count();
        assert_eq!(answered, handed.len());
        b.ledger.finish(b.at(200_000).0, b.at(200_000).1);
        let dropped: u64 = b
            .outcomes()
            .iter()
            .filter(|(o, ..)| o == "stale")
            .filter_map(|l| l.2)
            .sum();
        assert_eq!(dropped as usize + handed.len(), 60, "{:?}", b.outcomes());
    }

    #[test]
    fn an_agent_slower_than_the_age_limit_gets_the_newest_packet() {
        // 25 s a packet against 20 s: nothing can be answered in time, so rather than the
        // oldest (answered 45 s late) the agent gets the newest (answered 25 s after it came).
        let mut b = Book::new("slower", 64, false);
        let handed = serve(&mut b, 60, 25_000, 26_000);
        assert!(handed.len() >= 3, "{handed:?}");
        for &(seq, age) in &handed {
            let at = u64::from(seq - 1) * 1000 + age;
            let newest = (at / 1000 + 1).min(60);
            assert_eq!(u64::from(seq), newest, "handed over at {at} ms: {handed:?}");
        }
    }

    #[test]
    fn a_single_packet_is_never_dropped_for_the_agents_pace() {
        let mut b = Book::new("single", 64, false);
        serve(&mut b, 1, 15_000, 16_000); // one answer: the agent takes 15 s (45 s estimated)
        let (request, _) = echo(7);
        b.arrive(&request, 100_000);
        b.ask(Caller::Fifo, 105_000, 30_000);
        assert_eq!(b.handouts(105_000), [(Caller::Fifo, Some(request))]);
    }

    #[test]
    fn an_answer_is_recorded_with_its_times_after_it_is_settled() {
        let mut b = Book::new("answer", 8, false);
        b.arrive(&REQUEST_56, 0);
        b.ask(conn(1), 2, 30_000);
        b.deliver(5);
        assert_eq!(b.ledger.counts.get(Count::Handed), 1);
        assert_eq!(b.write(&REPLY_56, 105), Ok(()));
        assert!(b.record().is_empty(), "judged once the OK is on its way");
        b.settle(106);
        let line = &b.record()[0];
        assert_eq!(line["outcome"], "answered");
        assert_eq!(line["verdict"], "valid");
        assert_eq!(line["written"], true);
        assert_eq!(line["queue_ms"], 5.0);
        assert_eq!(line["agent_ms"], 100.0);
        assert_eq!(line["rtt_ms"], 105.05);
        assert_eq!(line["write_us"], 50.0);
        assert_eq!(line["arrival"], "2027-01-15T08:00:00.000Z");
        // Settled once: a second settle records nothing more.
        b.settle(107);
        assert_eq!(b.record().len(), 1);
    }

    #[test]
    fn a_reply_written_before_the_last_was_settled_keeps_its_line() {
        let mut b = Book::new("two", 8, false);
        b.arrive(&REQUEST_56, 0);
        b.arrive(&REQUEST_56_SEQ2, 1);
        b.ask(Caller::Fifo, 2, 30_000);
        b.ask(conn(1), 3, 30_000);
        b.deliver(4);
        // The FIFO's OK waits for its reader; meanwhile a channel client writes too.
        let mut second = REPLY_56.to_vec();
        second[27] = 2;
        assert_eq!(b.write(&REPLY_56, 10), Ok(()));
        assert_eq!(b.write(&second, 11), Ok(()));
        b.settle(12);
        let seqs: Vec<_> = b.outcomes().into_iter().map(|(o, s, _)| (o, s)).collect();
        assert_eq!(
            seqs,
            [("answered".into(), Some(1)), ("answered".into(), Some(2))]
        );
    }

    #[test]
    fn a_packet_that_does_not_reach_its_reader_goes_back_to_the_head() {
        let mut b = Book::new("back", 8, false);
        b.arrive(&REQUEST_56, 0);
        b.arrive(&REQUEST_56_SEQ2, 1);
        b.ask(Caller::Fifo, 2, 30_000);
        assert_eq!(b.handouts(3).len(), 1);
        b.ledger.undelivered(Caller::Fifo, b.at(4).0);
        b.ask(conn(1), 5, 30_000);
        assert_eq!(b.handouts(6), [(conn(1), Some(REQUEST_56.to_vec()))]);
        assert_eq!(b.ledger.counts.get(Count::Handed), 0);
    }

    #[test]
    fn a_channel_client_gone_with_its_packet_unread_gives_it_back() {
        let mut b = Book::new("unread", 8, false);
        b.arrive(&REQUEST_56, 0);
        b.arrive(&REQUEST_56_SEQ2, 1);
        b.ask(conn(1), 2, 30_000);
        b.ask(conn(2), 3, 30_000);
        b.deliver(4);
        // Client 1 sent another command (it read its packet), then left; client 2 left
        // with its packet unread; client 3 left while its READ waited.
        b.ledger.confirm(conn_id(1));
        b.ledger.client_gone(conn_id(1), true, b.at(5).0);
        b.ledger.client_gone(conn_id(2), true, b.at(5).0);
        b.ask(conn(3), 6, 30_000);
        b.ledger.client_gone(conn_id(3), false, b.at(7).0);
        assert_eq!(b.ledger.counts.get(Count::Abandoned), 1);
        b.ask(Caller::Fifo, 8, 30_000);
        assert_eq!(
            b.handouts(8),
            [(Caller::Fifo, Some(REQUEST_56_SEQ2.to_vec()))]
        );
        // Client 1's request is still in flight: its reply is matched.
        assert_eq!(b.write(&REPLY_56, 9), Ok(()));
        b.settle(10);
        assert_eq!(b.outcomes()[0], ("answered".into(), Some(1), None));
    }

    #[test]
    fn a_packet_left_in_the_answer_fifo_is_taken_back_for_the_next_read() {
        let mut b = Book::new("takeback", 8, false);
        b.arrive(&REQUEST_56, 0);
        b.arrive(&REQUEST_56_SEQ2, 1);
        b.ask(Caller::Fifo, 2, 30_000);
        b.deliver(3);
        // A grace period later the endpoint finds that line still in the pipe.
        b.ledger.take_back(b.at(3).0, Caller::Fifo, b.at(1003).0);
        b.ask(conn(1), 1004, 30_000);
        assert_eq!(b.handouts(1004), [(conn(1), Some(REQUEST_56.to_vec()))]);
        // Taken back once: a second look finds nothing in flight for that hand-over.
        b.ledger.take_back(b.at(3).0, Caller::Fifo, b.at(1005).0);
        b.ask(conn(2), 1006, 30_000);
        assert_eq!(
            b.handouts(1006),
            [(conn(2), Some(REQUEST_56_SEQ2.to_vec()))]
        );
    }

    #[test]
    fn spoofed_replies_are_refused_and_unmatched_ones_recorded() {
        let mut b = Book::new("egress", 8, false);
        let err = b.write(&REQUEST_56, 0).unwrap_err();
        assert_eq!(err, "source 192.0.2.1 is not the agent's address 192.0.2.2");
        assert_eq!(b.write(&REPLY_56, 1), Ok(()), "written in default mode");
        b.settle(2);
        let line = &b.record()[0];
        assert_eq!(line["outcome"], "unmatched");
        assert_eq!(line["class"], "no_matching_request");
        assert_eq!(line["arrival"], "2027-01-15T08:00:00.002Z");
    }

    #[test]
    fn strict_mode_refuses_an_invalid_reply_and_records_why_at_the_end() {
        let mut b = Book::new("strict", 8, true);
        b.arrive(&REQUEST_56, 0);
        b.ask(Caller::Fifo, 1, 30_000);
        b.deliver(2);
        let mut bad = REPLY_56.to_vec();
        bad[23] ^= 1;
        let err = b.write(&bad, 3).unwrap_err();
        assert!(err.starts_with("bad ICMP checksum"), "{err}");
        let spoofed = b.write(&REQUEST_56_SEQ2, 4).unwrap_err();
        assert!(spoofed.starts_with("source 192.0.2.1"), "{spoofed}");
        let (now, wall) = b.at(5);
        b.ledger.finish(now, wall);
        let line = &b.record()[0];
        assert_eq!(line["outcome"], "refused");
        assert_eq!(line["class"], "icmp_checksum");
        assert_eq!(line["note"], "bridge stopped");
    }

    #[test]
    fn a_request_unanswered_past_the_limit_gets_its_line() {
        let mut b = Book::new("limit", 8, false);
        b.arrive(&REQUEST_56, 0);
        b.ask(Caller::Fifo, 1, 30_000);
        b.deliver(2);
        let limit = u64::try_from(ANSWER_LIMIT.as_millis()).unwrap();
        b.ledger.housekeeping(b.at(2 + limit).0);
        assert!(b.record().is_empty(), "not before the limit");
        b.ledger.housekeeping(b.at(3 + limit).0);
        let line = &b.record()[0];
        assert_eq!(line["outcome"], "unanswered");
        assert_eq!(line["note"], "no reply within the answer limit");
        assert_eq!(line["queue_ms"], 2.0);
    }

    #[test]
    fn at_the_end_everything_left_is_recorded_once() {
        let mut b = Book::new("finish", 8, false);
        b.arrive(&REQUEST_56, 0);
        b.arrive(&REQUEST_56_SEQ2, 1);
        b.arrive(&REQUEST_0, 2);
        // One read and never answered, one on its way to the FIFO, one still queued.
        b.ask(conn(1), 10, 30_000);
        b.deliver(11);
        b.ask(Caller::Fifo, 12, 30_000);
        assert_eq!(b.handouts(13).len(), 1);
        b.ask(conn(2), 14, 30_000);
        b.ask(conn(3), 15, 30_000);
        // Client 2 takes the last packet; client 3 is left waiting, for the loop to answer.
        assert_eq!(b.handouts(16), [(conn(2), Some(REQUEST_0.to_vec()))]);
        b.ledger.undelivered(conn(2), b.at(17).0);
        let left: Vec<Caller> = b.ledger.take_readers().iter().map(|r| r.caller).collect();
        assert_eq!(left, [conn(3)]);
        let (now, wall) = b.at(20);
        b.ledger.finish(now, wall);
        // The one read first, then the two never read (one back from the FIFO), summarised.
        assert_eq!(
            b.outcomes(),
            [
                ("unanswered".into(), Some(1), None),
                ("unanswered".into(), None, Some(2)),
            ]
        );
        assert_eq!(b.record()[0]["note"], "bridge stopped");
    }
}
