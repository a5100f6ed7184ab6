//! The agent's pace: how long it takes from the hand-over of a request to its WRITE,
//! estimated as TCP estimates a round trip, and what that says about a queued packet.
//!
//! A model can take 20 s a packet while pings come every second. Every packet it is handed
//! that it cannot answer before its ping gives up (`--max-age`, which the runner sets to the
//! ping's wait) is work thrown away, and the packets behind it wait longer still. So at each
//! hand-over the ledger drops the packets that could no longer be answered in time: their age
//! plus the agent's time over `--max-age`. When the agent is too slow for any packet (its time
//! alone is over `--max-age`), the newest is still handed over: the freshest is the least late,
//! and an agent that slow still answers something.
//!
//! The agent's time is the smoothed hand-over-to-WRITE time plus four times its smoothed
//! deviation, the retransmission timeout of RFC 6298 (section 2: alpha 1/8, beta 1/4, K 4;
//! without its clock granularity and one-second floor): a time the agent's next answer will
//! rarely exceed. Before the first answer there is no estimate and nothing is dropped by it.

use std::time::Duration;

/// The agent's hand-over-to-WRITE time, smoothed.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pace {
    /// Smoothed time and its smoothed deviation, in seconds (RFC 6298's SRTT and RTTVAR).
    smoothed: Option<(f64, f64)>,
}

impl Pace {
    /// No answer seen yet.
    pub fn new() -> Pace {
        Pace::default()
    }

    /// One more answer, `took` from hand-over to WRITE (RFC 6298, section 2.2 and 2.3).
    pub fn observe(&mut self, took: Duration) {
        let r = took.as_secs_f64();
        self.smoothed = Some(match self.smoothed {
            None => (r, r / 2.0),
            Some((srtt, rttvar)) => {
                let rttvar = 0.75 * rttvar + 0.25 * (srtt - r).abs();
                (0.875 * srtt + 0.125 * r, rttvar)
            }
        });
    }

    /// The time the agent's next answer will rarely exceed (SRTT + 4 RTTVAR), if any seen.
    pub fn estimate(&self) -> Option<Duration> {
        self.smoothed
            .map(|(srtt, rttvar)| Duration::from_secs_f64(srtt + 4.0 * rttvar))
    }

    /// Whether a packet of `age` can no longer be answered within `max_age`.
    pub fn too_late(&self, age: Duration, max_age: Duration) -> bool {
        self.estimate()
            .is_some_and(|agent| age.saturating_add(agent) > max_age)
    }
}

#[cfg(test)]
mod test {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn no_estimate_before_the_first_answer() {
        let p = Pace::new();
        assert_eq!(p.estimate(), None);
        assert!(!p.too_late(S(3600), S(1)));
    }

    #[test]
    fn the_first_answer_counts_three_times_then_the_deviation_decays() {
        let mut p = Pace::new();
        p.observe(S(10));
        assert_eq!(p.estimate(), Some(S(30)));
        for _ in 0..20 {
            p.observe(S(10));
        }
        let settled = p.estimate().unwrap();
        assert!(
            settled > S(10) && settled < Duration::from_millis(10_100),
            "{settled:?}"
        );
    }

    #[test]
    fn a_variable_agent_gets_a_wider_margin() {
        let (mut steady, mut erratic) = (Pace::new(), Pace::new());
        for i in 0..20 {
            steady.observe(S(10));
            erratic.observe(S(if i % 2 == 0 { 5 } else { 15 }));
        }
        assert!(erratic.estimate().unwrap() > steady.estimate().unwrap() + S(10));
    }

    #[test]
    fn too_late_is_age_plus_the_agent_over_the_limit() {
        let mut p = Pace::new();
        for _ in 0..40 {
            p.observe(S(12));
        }
        assert!(!p.too_late(S(17), S(30)));
        assert!(p.too_late(S(19), S(30)));
        assert!(
            p.too_late(S(0), S(5)),
            "an agent slower than the limit is late for any packet"
        );
    }
}
