//! The packet queue: packets read from the TUN device wait here for a READ.
//!
//! It is bounded in length and in age. On overflow the oldest packet goes, so the
//! live ping is the one kept; a packet older than the age limit is never handed
//! out, so a ping that gave up long ago cannot take the place of the current one; and
//! the ledger skips packets too old to be answered in time while a younger one waits
//! ([`Queue::skip_late`], decided by [`crate::daemon::pace`]).

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use crate::judge::exchange::Request;

/// A packet waiting for the agent, with the times it arrived.
#[derive(Debug, Clone)]
pub struct Queued {
    /// The raw packet.
    pub packet: Vec<u8>,
    /// The packet parsed: its flow key and what the agent owes for it.
    pub parsed: Request,
    /// Monotonic arrival time, for ages and durations.
    pub arrival: Instant,
    /// Wall-clock arrival time, for the record.
    pub arrival_wall: SystemTime,
}

impl Queued {
    /// Wraps a packet that arrived at `arrival` (`arrival_wall` on the wall clock), parsing it once.
    pub fn new(packet: Vec<u8>, arrival: Instant, arrival_wall: SystemTime) -> Self {
        Queued {
            parsed: Request::parse(&packet),
            packet,
            arrival,
            arrival_wall,
        }
    }
}

/// Appends `item` to a FIFO of at most `capacity` items; returns the oldest if it had
/// to go to make room. The queue and the in-flight table both keep the newest.
pub(crate) fn push_evicting<T>(items: &mut VecDeque<T>, capacity: usize, item: T) -> Option<T> {
    let evicted = if items.len() >= capacity {
        items.pop_front()
    } else {
        None
    };
    items.push_back(item);
    evicted
}

/// A bounded FIFO of packets with a maximum age.
#[derive(Debug)]
pub struct Queue {
    items: VecDeque<Queued>,
    capacity: usize,
    max_age: Duration,
}

impl Queue {
    /// An empty queue holding at most `capacity` packets of at most `max_age`.
    pub fn new(capacity: usize, max_age: Duration) -> Self {
        Queue {
            items: VecDeque::new(),
            capacity: capacity.max(1),
            max_age,
        }
    }

    /// Adds a packet at the tail; returns the oldest packet if it had to go to make room.
    pub fn push(&mut self, item: Queued) -> Option<Queued> {
        push_evicting(&mut self.items, self.capacity, item)
    }

    /// Puts a packet back at the head, as when its READ answer found no reader;
    /// when the queue is full it is the oldest, so it is returned instead.
    pub fn push_front(&mut self, item: Queued) -> Option<Queued> {
        if self.items.len() >= self.capacity {
            return Some(item);
        }
        self.items.push_front(item);
        None
    }

    /// Removes and returns the packets older than the age limit at `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<Queued> {
        let mut stale = Vec::new();
        while let Some(head) = self.items.front() {
            if now.saturating_duration_since(head.arrival) <= self.max_age {
                break;
            }
            stale.extend(self.items.pop_front());
        }
        stale
    }

    /// Removes and returns the oldest packets whose age at `now` is `late`. When even a
    /// packet that just came would be late (the agent is too slow for any), the newest stays:
    /// the freshest is the least late.
    pub fn skip_late(&mut self, now: Instant, late: impl Fn(Duration) -> bool) -> Vec<Queued> {
        let mut skipped = Vec::new();
        let hopeless = late(Duration::ZERO);
        while let Some(head) = self.items.front() {
            if !late(now.saturating_duration_since(head.arrival))
                || (hopeless && self.items.len() == 1)
            {
                break;
            }
            skipped.extend(self.items.pop_front());
        }
        skipped
    }

    /// The age limit.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// Takes the oldest packet; call [`Queue::expire`] first to skip stale ones.
    pub fn pop(&mut self) -> Option<Queued> {
        self.items.pop_front()
    }

    /// Number of packets waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no packet is waiting.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn item(tag: u8, age_ms: u64, now: Instant) -> Queued {
        Queued::new(
            vec![tag],
            now - Duration::from_millis(age_ms),
            SystemTime::now(),
        )
    }

    #[test]
    fn fifo_order() {
        let now = Instant::now();
        let mut q = Queue::new(4, Duration::from_secs(10));
        q.push(item(1, 0, now));
        q.push(item(2, 0, now));
        assert_eq!(q.pop().unwrap().packet, [1]);
        assert_eq!(q.pop().unwrap().packet, [2]);
        assert!(q.pop().is_none());
    }

    #[test]
    fn skip_late_stops_at_the_first_packet_in_time() {
        let now = Instant::now();
        let mut q = Queue::new(8, Duration::from_secs(30));
        for (tag, age) in [
            (1, 25_000),
            (2, 20_000),
            (3, 10_000),
            (4, 22_000),
            (5, 1_000),
        ] {
            q.push(item(tag, age, now));
        }
        let late = |age: Duration| age > Duration::from_secs(15);
        let skipped: Vec<u8> = q.skip_late(now, late).iter().map(|s| s.packet[0]).collect();
        assert_eq!(skipped, [1, 2], "in arrival order: 3 is the first in time");
        assert_eq!(q.pop().unwrap().packet, [3]);
    }

    #[test]
    fn skip_late_keeps_the_newest_only_when_nothing_could_be_in_time() {
        let now = Instant::now();
        let mut q = Queue::new(8, Duration::from_secs(30));
        q.push(item(8, 29_000, now));
        q.push(item(9, 20_000, now));
        let late = |age: Duration| age > Duration::from_secs(15);
        assert_eq!(
            q.skip_late(now, late).len(),
            2,
            "a fresh packet would be in time"
        );
        q.push(item(8, 29_000, now));
        q.push(item(9, 20_000, now));
        let skipped = q.skip_late(now, |_| true);
        assert_eq!(skipped.len(), 1, "too slow for any: the freshest stays");
        assert_eq!(q.pop().unwrap().packet, [9]);
    }

    #[test]
    fn overflow_drops_the_oldest() {
        let now = Instant::now();
        let mut q = Queue::new(2, Duration::from_secs(10));
        assert!(q.push(item(1, 0, now)).is_none());
        assert!(q.push(item(2, 0, now)).is_none());
        assert_eq!(q.push(item(3, 0, now)).unwrap().packet, [1]);
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop().unwrap().packet, [2]);
    }

    #[test]
    fn stale_packets_expire_and_live_one_stays() {
        let now = Instant::now();
        let mut q = Queue::new(8, Duration::from_secs(5));
        q.push(item(1, 9_000, now));
        q.push(item(2, 6_000, now));
        q.push(item(3, 100, now));
        let stale: Vec<u8> = q.expire(now).iter().map(|s| s.packet[0]).collect();
        assert_eq!(stale, [1, 2]);
        assert_eq!(q.pop().unwrap().packet, [3]);
    }

    #[test]
    fn returned_packet_goes_to_the_head() {
        let now = Instant::now();
        let mut q = Queue::new(2, Duration::from_secs(10));
        q.push(item(2, 0, now));
        assert!(q.push_front(item(1, 0, now)).is_none());
        assert_eq!(q.push_front(item(0, 0, now)).unwrap().packet, [0]);
        assert_eq!(q.pop().unwrap().packet, [1]);
        assert_eq!(q.pop().unwrap().packet, [2]);
    }
}
