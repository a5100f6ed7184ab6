//! Drop summaries: packets that leave the queue before an agent reads them (overflow,
//! stale, still queued at shutdown) are counted per outcome and reported once per
//! interval, as one log line and one record line per outcome, so that a flood cannot
//! fill a disk with a line per dropped packet. Every request that reached an agent still
//! gets its own record line; that is the server's business, not this module's.

use std::time::{Duration, Instant, SystemTime};

use crate::instrument::record::{rfc3339, Entry, Outcome};

/// How long drops are counted before they are reported.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// The drops of one outcome in one interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Tally {
    /// How the packets left the queue.
    pub outcome: Outcome,
    /// How many.
    pub count: u64,
    /// When the first of them arrived on the device.
    pub first: SystemTime,
    /// When the last of them arrived on the device.
    pub last: SystemTime,
}

impl Tally {
    /// The record line for these drops: `arrival` is the first one's, `count` how many.
    pub fn entry(&self) -> Entry {
        let mut e = Entry::new(self.first, None, 0, self.outcome);
        e.count = Some(self.count);
        e.note = Some(format!(
            "{} requests dropped, arrived {} to {}",
            self.count,
            rfc3339(self.first),
            rfc3339(self.last)
        ));
        e
    }
}

/// Drops counted since the last report, in the order their outcomes first came.
#[derive(Debug)]
pub struct Drops {
    tallies: Vec<Tally>,
    since: Option<Instant>,
    interval: Duration,
}

impl Drops {
    /// No drops yet; reports once `interval` has passed since the first drop counted.
    pub fn new(interval: Duration) -> Drops {
        Drops {
            tallies: Vec::new(),
            since: None,
            interval,
        }
    }

    /// Counts one packet that arrived at `arrival` and left the queue unread at `now`.
    pub fn add(&mut self, outcome: Outcome, arrival: SystemTime, now: Instant) {
        self.since.get_or_insert(now);
        match self.tallies.iter_mut().find(|t| t.outcome == outcome) {
            Some(t) => {
                t.count += 1;
                t.first = t.first.min(arrival);
                t.last = t.last.max(arrival);
            }
            None => self.tallies.push(Tally {
                outcome,
                count: 1,
                first: arrival,
                last: arrival,
            }),
        }
    }

    /// The tallies to report at `now`: all of them once the interval is over, else none.
    pub fn due(&mut self, now: Instant) -> Vec<Tally> {
        match self.since {
            Some(since) if now.saturating_duration_since(since) >= self.interval => self.take(),
            _ => Vec::new(),
        }
    }

    /// All tallies, whatever the time, as at shutdown.
    pub fn take(&mut self) -> Vec<Tally> {
        self.since = None;
        std::mem::take(&mut self.tallies)
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn counts_per_outcome_and_reports_once_per_interval() {
        let start = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut d = Drops::new(Duration::from_secs(1));
        assert!(d.due(start).is_empty());
        for i in 0..1000 {
            d.add(Outcome::Overflow, wall + Duration::from_millis(i), start);
        }
        d.add(Outcome::Stale, wall, start + Duration::from_millis(10));
        assert!(d.due(start + Duration::from_millis(999)).is_empty());
        let due = d.due(start + Duration::from_secs(1));
        assert_eq!(
            due.iter().map(|t| (t.outcome, t.count)).collect::<Vec<_>>(),
            [(Outcome::Overflow, 1000), (Outcome::Stale, 1)]
        );
        assert_eq!(due[0].first, wall);
        assert_eq!(due[0].last, wall + Duration::from_millis(999));
        assert!(
            d.due(start + Duration::from_secs(5)).is_empty(),
            "reported once"
        );
        let e = due[0].entry();
        assert_eq!(
            (e.outcome, e.count, e.id, e.len),
            (Outcome::Overflow, Some(1000), None, 0)
        );
        assert!(e.note.unwrap().starts_with("1000 requests dropped"));
    }

    #[test]
    fn take_reports_what_is_counted_at_once() {
        let mut d = Drops::new(Duration::from_secs(60));
        d.add(Outcome::Unanswered, SystemTime::now(), Instant::now());
        assert_eq!(d.take().len(), 1);
        assert!(d.take().is_empty());
    }
}
