//! READs waiting for a packet, from both transports, in the order they asked.
//!
//! A channel client's READ waits from the moment its line is read. A READ on the FIFOs
//! waits once its client has opened the answer FIFO (until then it could take a packet
//! nobody reads), but it keeps its place: it counts as asked when its line was read. The
//! queue gives packets to the READ that asked first, whichever transport it came by, and
//! names the READs whose time is up.

use std::collections::VecDeque;
use std::fmt;
use std::time::Instant;

use crate::ipc::channel::ConnId;

/// Where a command came from, and where its answer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Caller {
    /// The shared FIFOs: one command at a time.
    Fifo,
    /// A connection to the private channel.
    Conn(ConnId),
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Caller::Fifo => f.write_str("fifo"),
            Caller::Conn(conn) => write!(f, "conn {conn}"),
        }
    }
}

/// A READ waiting for a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reader {
    /// Who asked.
    pub caller: Caller,
    /// When its READ line was read: its place in the queue.
    pub asked: Instant,
    /// When it gets TIMEOUT.
    pub deadline: Instant,
}

/// READs waiting for a packet, oldest first.
#[derive(Debug, Default)]
pub struct Readers {
    waiting: VecDeque<Reader>,
}

impl Readers {
    /// No READ waiting.
    pub fn new() -> Readers {
        Readers::default()
    }

    /// Adds a READ in its place by the time it asked; among equal times, after those there.
    pub fn ask(&mut self, reader: Reader) {
        let at = self.waiting.partition_point(|r| r.asked <= reader.asked);
        self.waiting.insert(at, reader);
    }

    /// Removes the READ of `caller`, as when its client went away; whether there was one.
    pub fn withdraw(&mut self, caller: Caller) -> bool {
        match self.waiting.iter().position(|r| r.caller == caller) {
            Some(i) => self.waiting.remove(i).is_some(),
            None => false,
        }
    }

    /// Takes the READ that asked first.
    pub fn pop(&mut self) -> Option<Reader> {
        self.waiting.pop_front()
    }

    /// Takes a READ whose deadline has come at `now`, the one that asked first.
    pub fn expired(&mut self, now: Instant) -> Option<Reader> {
        let i = self.waiting.iter().position(|r| r.deadline <= now)?;
        self.waiting.remove(i)
    }

    /// The soonest deadline of a waiting READ.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.waiting.iter().map(|r| r.deadline).min()
    }

    /// Takes every waiting READ, oldest first, as at shutdown.
    pub fn drain(&mut self) -> Vec<Reader> {
        self.waiting.drain(..).collect()
    }

    /// How many READs wait.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether no READ waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use std::time::Duration;

    fn reader(caller: Caller, asked: Instant, wait_ms: u64) -> Reader {
        Reader {
            caller,
            asked,
            deadline: asked + Duration::from_millis(wait_ms),
        }
    }

    fn conn(n: u64) -> Caller {
        Caller::Conn(ConnId::from_raw(n))
    }

    #[test]
    fn a_fifo_read_joining_late_keeps_its_place() {
        let t0 = Instant::now();
        let mut readers = Readers::new();
        readers.ask(reader(conn(1), t0, 1000));
        readers.ask(reader(conn(2), t0 + Duration::from_millis(20), 1000));
        // The FIFO READ's line came at 10 ms; its client opened the answer FIFO later.
        readers.ask(reader(Caller::Fifo, t0 + Duration::from_millis(10), 1000));
        let order: Vec<Caller> = std::iter::from_fn(|| readers.pop())
            .map(|r| r.caller)
            .collect();
        assert_eq!(order, [conn(1), Caller::Fifo, conn(2)]);
    }

    #[test]
    fn equal_times_keep_the_order_they_came_in() {
        let t0 = Instant::now();
        let mut readers = Readers::new();
        for n in 0..3 {
            readers.ask(reader(conn(n), t0, 1000));
        }
        let order: Vec<Caller> = readers.drain().into_iter().map(|r| r.caller).collect();
        assert_eq!(order, [conn(0), conn(1), conn(2)]);
    }

    #[test]
    fn deadlines_and_withdrawals() {
        let t0 = Instant::now();
        let mut readers = Readers::new();
        readers.ask(reader(conn(1), t0, 3000));
        readers.ask(reader(conn(2), t0 + Duration::from_millis(1), 1000));
        readers.ask(reader(Caller::Fifo, t0 + Duration::from_millis(2), 2000));
        assert_eq!(
            readers.next_deadline(),
            Some(t0 + Duration::from_millis(1001))
        );
        assert_eq!(readers.expired(t0 + Duration::from_millis(1000)), None);
        let late = readers.expired(t0 + Duration::from_millis(2500)).unwrap();
        assert_eq!(late.caller, conn(2), "the one that asked first");
        assert!(readers.withdraw(Caller::Fifo));
        assert!(!readers.withdraw(Caller::Fifo), "only once");
        assert_eq!(readers.len(), 1);
        assert_eq!(readers.pop().map(|r| r.caller), Some(conn(1)));
        assert!(readers.is_empty());
    }
}
