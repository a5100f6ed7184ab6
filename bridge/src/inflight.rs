//! The in-flight table: requests handed to the agent and not yet answered.
//!
//! A WRITE is matched to its request by ICMP identifier and sequence number. A
//! request stays here until it is answered, until it has waited longer than the
//! limit, or until the table is full, when the oldest goes.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::queue::Queued;

/// A request the agent has read.
#[derive(Debug)]
pub struct Handed {
    /// The request as it arrived.
    pub request: Queued,
    /// ICMP echo identifier and sequence, when it is an echo request.
    pub echo: Option<(u16, u16)>,
    /// When the READ answer carrying it was delivered.
    pub handover: Instant,
    /// The last verdict that made strict mode refuse a reply to it.
    pub refused: Option<String>,
}

/// Requests awaiting their reply, oldest first.
#[derive(Debug)]
pub struct InFlight {
    items: VecDeque<Handed>,
    capacity: usize,
    limit: Duration,
}

impl InFlight {
    /// An empty table of at most `capacity` requests kept at most `limit` after hand-over.
    pub fn new(capacity: usize, limit: Duration) -> Self {
        InFlight {
            items: VecDeque::new(),
            capacity: capacity.max(1),
            limit,
        }
    }

    /// Adds a handed-over request; returns the oldest if it had to go.
    pub fn insert(&mut self, handed: Handed) -> Option<Handed> {
        let evicted = if self.items.len() >= self.capacity {
            self.items.pop_front()
        } else {
            None
        };
        self.items.push_back(handed);
        evicted
    }

    /// Finds the request an echo reply with this identifier and sequence answers.
    pub fn find_mut(&mut self, echo: (u16, u16)) -> Option<&mut Handed> {
        self.items.iter_mut().rev().find(|h| h.echo == Some(echo))
    }

    /// Removes and returns the request with this identifier and sequence.
    pub fn take(&mut self, echo: (u16, u16)) -> Option<Handed> {
        let i = self.items.iter().rposition(|h| h.echo == Some(echo))?;
        self.items.remove(i)
    }

    /// Removes and returns requests handed over longer than the limit ago.
    pub fn expire(&mut self, now: Instant) -> Vec<Handed> {
        let limit = self.limit;
        let (old, keep): (Vec<_>, Vec<_>) = self
            .items
            .drain(..)
            .partition(|h| now.saturating_duration_since(h.handover) > limit);
        self.items = keep.into();
        old
    }

    /// Removes and returns everything, as at shutdown.
    pub fn drain(&mut self) -> Vec<Handed> {
        self.items.drain(..).collect()
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn handed(echo: Option<(u16, u16)>, ago_ms: u64, now: Instant) -> Handed {
        Handed {
            request: Queued::now(vec![0x45]),
            echo,
            handover: now - Duration::from_millis(ago_ms),
            refused: None,
        }
    }

    #[test]
    fn matches_by_id_and_seq() {
        let now = Instant::now();
        let mut t = InFlight::new(4, Duration::from_secs(60));
        t.insert(handed(Some((7, 1)), 0, now));
        t.insert(handed(Some((7, 2)), 0, now));
        assert!(t.take((7, 3)).is_none());
        assert_eq!(t.take((7, 2)).unwrap().echo, Some((7, 2)));
        assert!(t.take((7, 2)).is_none());
        assert!(t.find_mut((7, 1)).is_some());
    }

    #[test]
    fn full_table_drops_the_oldest_and_old_ones_expire() {
        let now = Instant::now();
        let mut t = InFlight::new(2, Duration::from_secs(5));
        t.insert(handed(Some((1, 1)), 9_000, now));
        t.insert(handed(Some((1, 2)), 0, now));
        assert_eq!(t.insert(handed(None, 0, now)).unwrap().echo, Some((1, 1)));
        t.insert(handed(Some((1, 4)), 6_000, now));
        let old: Vec<_> = t.expire(now).into_iter().map(|h| h.echo).collect();
        assert_eq!(old, [Some((1, 4))]);
        assert_eq!(t.drain().len(), 1);
    }
}
