//! Running totals of what the daemon has done, readable from another thread while it runs
//! (the tests wait on them instead of on log wording). Counting is one relaxed atomic add:
//! nothing waits on it.

use std::sync::atomic::{AtomicU64, Ordering};

/// What the daemon has done so far.
#[derive(Debug, Default)]
pub struct Counts {
    queued: AtomicU64,
    handed: AtomicU64,
    settled: AtomicU64,
    not_for_agent: AtomicU64,
    abandoned: AtomicU64,
    discarded: AtomicU64,
    lines_dropped: AtomicU64,
    asked: AtomicU64,
    clients_silent: AtomicU64,
    clients_made_room: AtomicU64,
    clients_stalled: AtomicU64,
}

/// Which total to add to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// A request queued for the agent.
    Queued,
    /// A request handed to the agent.
    Handed,
    /// A written reply judged and recorded.
    Settled,
    /// A packet off the device not addressed to the agent.
    NotForAgent,
    /// A READ that took no packet: its client went away or never read its answer.
    Abandoned,
    /// An answer line nobody read.
    Discarded,
    /// An unfinished command line dropped after idling.
    LineDropped,
    /// A READ began to wait for a packet.
    Asked,
    /// A channel connection closed for sending no command within the silence limit.
    ClientSilent,
    /// A channel connection closed to make room for a newcomer at the cap.
    ClientMadeRoom,
    /// A channel client dropped for not reading its answers.
    ClientStalled,
}

impl Counts {
    /// Adds one to `which`.
    pub fn add(&self, which: Count) {
        self.cell(which).fetch_add(1, Ordering::Relaxed);
    }

    /// The total of `which` so far.
    pub fn get(&self, which: Count) -> u64 {
        self.cell(which).load(Ordering::Relaxed)
    }

    fn cell(&self, which: Count) -> &AtomicU64 {
        match which {
            Count::Queued => &self.queued,
            Count::Handed => &self.handed,
            Count::Settled => &self.settled,
            Count::NotForAgent => &self.not_for_agent,
            Count::Abandoned => &self.abandoned,
            Count::Discarded => &self.discarded,
            Count::LineDropped => &self.lines_dropped,
            Count::Asked => &self.asked,
            Count::ClientSilent => &self.clients_silent,
            Count::ClientMadeRoom => &self.clients_made_room,
            Count::ClientStalled => &self.clients_stalled,
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn each_total_counts_alone() {
        let counts = Counts::default();
        counts.add(Count::Queued);
        counts.add(Count::Queued);
        counts.add(Count::Discarded);
        assert_eq!(counts.get(Count::Queued), 2);
        assert_eq!(counts.get(Count::Discarded), 1);
        assert_eq!(counts.get(Count::Handed), 0);
    }
}
