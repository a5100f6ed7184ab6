//! The in-flight table: requests handed to the agent and not yet answered.
//!
//! A WRITE is matched to its request by flow key (see [`FlowKey`]): the exact key
//! first, else the same flow from other addresses, so that a reply from a wrong
//! address is still judged against its request. A request stays here until it is
//! answered, until it has waited longer than the limit, or until the table is full,
//! when the oldest goes.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::daemon::queue::{push_evicting, Queued};
use crate::judge::exchange::FlowKey;
use crate::judge::verdict::Verdict;

/// The most requests awaiting a reply at once; past it the oldest is given up on.
pub const CAPACITY: usize = 1024;

/// A request the agent has read, awaiting its reply.
#[derive(Debug)]
pub struct Awaiting {
    /// The request as it arrived, parsed.
    pub request: Queued,
    /// When the READ answer carrying it was delivered.
    pub handover: Instant,
    /// The last verdict that made strict mode refuse a reply to it.
    pub refused: Option<Verdict>,
}

impl Awaiting {
    /// The key its reply is matched by, when it has one.
    pub fn key(&self) -> Option<&FlowKey> {
        self.request.parsed.key.as_ref()
    }
}

/// Requests awaiting their reply, oldest first.
#[derive(Debug)]
pub struct InFlight {
    items: VecDeque<Awaiting>,
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
    pub fn insert(&mut self, awaiting: Awaiting) -> Option<Awaiting> {
        push_evicting(&mut self.items, self.capacity, awaiting)
    }

    /// The position of the newest request a reply with this key answers.
    fn position(&self, key: &FlowKey) -> Option<usize> {
        let exact = self.items.iter().rposition(|a| a.key() == Some(key));
        exact.or_else(|| {
            self.items
                .iter()
                .rposition(|a| a.key().is_some_and(|k| k.same_flow(key)))
        })
    }

    /// Finds the request a reply with this key answers.
    pub fn find_mut(&mut self, key: &FlowKey) -> Option<&mut Awaiting> {
        let i = self.position(key)?;
        self.items.get_mut(i)
    }

    /// Removes and returns the request a reply with this key answers.
    pub fn take(&mut self, key: &FlowKey) -> Option<Awaiting> {
        let i = self.position(key)?;
        self.items.remove(i)
    }

    /// Removes and returns the request handed over at exactly `handover`, as when the
    /// client it went to left without reading it.
    pub fn take_handed(&mut self, handover: Instant) -> Option<Awaiting> {
        let i = self.items.iter().rposition(|a| a.handover == handover)?;
        self.items.remove(i)
    }

    /// Removes and returns requests handed over longer than the limit ago.
    pub fn expire(&mut self, now: Instant) -> Vec<Awaiting> {
        let limit = self.limit;
        let (old, keep): (Vec<_>, Vec<_>) = self
            .items
            .drain(..)
            .partition(|a| now.saturating_duration_since(a.handover) > limit);
        self.items = keep.into();
        old
    }

    /// Removes and returns everything, as at shutdown.
    pub fn drain(&mut self) -> Vec<Awaiting> {
        self.items.drain(..).collect()
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::judge::exchange::{Flow, Protocol};
    use std::net::{IpAddr, Ipv4Addr};

    fn key(seq: u16, peer: u8) -> FlowKey {
        FlowKey {
            protocol: Protocol::Icmpv4,
            host: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            peer: IpAddr::V4(Ipv4Addr::new(192, 0, 2, peer)),
            flow: Flow::Echo { ident: 7, seq },
        }
    }

    fn awaiting(key: Option<FlowKey>, ago_ms: u64, now: Instant) -> Awaiting {
        let mut request = Queued::new(vec![0x45], now, std::time::SystemTime::now());
        request.parsed.key = key;
        Awaiting {
            request,
            handover: now - Duration::from_millis(ago_ms),
            refused: None,
        }
    }

    fn seq(a: &Awaiting) -> Option<u16> {
        a.key().and_then(|k| k.echo()).map(|(_, seq)| seq)
    }

    #[test]
    fn matches_by_key() {
        let now = Instant::now();
        let mut t = InFlight::new(4, Duration::from_secs(60));
        t.insert(awaiting(Some(key(1, 2)), 0, now));
        t.insert(awaiting(Some(key(2, 2)), 0, now));
        assert!(t.take(&key(3, 2)).is_none());
        assert_eq!(t.take(&key(2, 2)).as_ref().and_then(seq), Some(2));
        assert!(t.take(&key(2, 2)).is_none());
        assert!(t.find_mut(&key(1, 2)).is_some());
    }

    #[test]
    fn exact_key_first_then_same_flow_from_other_addresses() {
        let now = Instant::now();
        let mut t = InFlight::new(4, Duration::from_secs(60));
        t.insert(awaiting(Some(key(1, 2)), 0, now));
        t.insert(awaiting(Some(key(1, 3)), 0, now));
        assert_eq!(t.take(&key(1, 2)).unwrap().key(), Some(&key(1, 2)));
        assert_eq!(t.take(&key(1, 9)).unwrap().key(), Some(&key(1, 3)));
    }

    #[test]
    fn takes_back_the_one_handed_over_at_an_instant() {
        let now = Instant::now();
        let mut t = InFlight::new(4, Duration::from_secs(60));
        t.insert(awaiting(Some(key(1, 2)), 5, now));
        t.insert(awaiting(None, 3, now));
        let keyless = t.take_handed(now - Duration::from_millis(3)).unwrap();
        assert_eq!(keyless.key(), None);
        assert!(t.take_handed(now).is_none());
        assert!(t.find_mut(&key(1, 2)).is_some());
    }

    #[test]
    fn full_table_drops_the_oldest_and_old_ones_expire() {
        let now = Instant::now();
        let mut t = InFlight::new(2, Duration::from_secs(5));
        t.insert(awaiting(Some(key(1, 2)), 9_000, now));
        t.insert(awaiting(Some(key(2, 2)), 0, now));
        assert_eq!(seq(&t.insert(awaiting(None, 0, now)).unwrap()), Some(1));
        t.insert(awaiting(Some(key(4, 2)), 6_000, now));
        let old: Vec<_> = t.expire(now).iter().map(seq).collect();
        assert_eq!(old, [Some(4)]);
        assert_eq!(t.drain().len(), 1);
    }
}
