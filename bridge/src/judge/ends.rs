//! The two ends of the device, per family: the host side's address and the agent's.
//!
//! Only packets addressed to one of the agent's addresses reach a READ; anything else
//! the kernel sends on the device (router solicitations, MLD reports, traffic to other
//! addresses of the prefix) is counted and recorded as not for the agent. The egress
//! policy holds for both families: a WRITE's source is the agent's address of its family
//! and its destination the host side's.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::judge::exchange::{self, Response};

/// The host side's and the agent's addresses; IPv6 is `None` when it is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ends {
    /// The host side's IPv4 address and the agent's.
    pub v4: (Ipv4Addr, Ipv4Addr),
    /// The host side's IPv6 address and the agent's, when IPv6 is on.
    pub v6: Option<(Ipv6Addr, Ipv6Addr)>,
}

impl Ends {
    /// Whether `packet` is addressed to one of the agent's addresses.
    pub fn is_for_agent(&self, packet: &[u8]) -> bool {
        match exchange::destination(packet) {
            Some(IpAddr::V4(dst)) => dst == self.v4.1,
            Some(IpAddr::V6(dst)) => self.v6.is_some_and(|(_, peer)| dst == peer),
            None => false,
        }
    }

    /// Refuses a packet that would let the agent speak as anyone but itself, or to
    /// anyone but the host side, in either family.
    pub fn egress(&self, packet: &Response) -> Result<(), String> {
        let (host, peer): (IpAddr, IpAddr) = match packet.src() {
            IpAddr::V4(_) => (self.v4.0.into(), self.v4.1.into()),
            IpAddr::V6(_) => match self.v6 {
                Some((host, peer)) => (host.into(), peer.into()),
                None => return Err("IPv6 is off on this bridge (--no-ipv6)".to_string()),
            },
        };
        if packet.src() != peer {
            let src = packet.src();
            return Err(format!("source {src} is not the agent's address {peer}"));
        }
        if packet.dst() != host {
            let dst = packet.dst();
            return Err(format!("destination {dst} is not the host side {host}"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::wire::fixtures::*;

    fn ends(v6: bool) -> Ends {
        Ends {
            v4: (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2)),
            v6: v6.then(|| {
                (
                    "2001:db8::1".parse().unwrap(),
                    "2001:db8::2".parse().unwrap(),
                )
            }),
        }
    }

    #[test]
    fn only_packets_to_the_agent() {
        let both = ends(true);
        for packet in [&REQUEST_56[..], &ICMPV6_REQUEST_56, &UDP6_CLOSED, &TCP4_SYN] {
            assert!(both.is_for_agent(packet));
        }
        // Sent by the kernel on its own, or the other way: not for the agent.
        for packet in [
            &ICMPV6_ROUTER_SOLICIT[..],
            &IPV6_MLD_REPORT,
            &ICMPV6_NEIGHBOR_SOLICIT,
            &REPLY_56,
            &TCP6_RST,
            &[0x45, 0, 0],
        ] {
            assert!(!both.is_for_agent(packet));
        }
        assert!(!ends(false).is_for_agent(&ICMPV6_REQUEST_56));
    }

    #[test]
    fn egress_both_families() {
        let parse = |b: &[u8]| Response::parse(b.to_vec()).unwrap();
        assert_eq!(ends(true).egress(&parse(&REPLY_56)), Ok(()));
        assert_eq!(ends(true).egress(&parse(&ICMPV6_REPLY_56)), Ok(()));
        assert_eq!(
            ends(true).egress(&parse(&ICMPV6_REQUEST_56)).unwrap_err(),
            "source 2001:db8::1 is not the agent's address 2001:db8::2"
        );
        assert_eq!(
            ends(false).egress(&parse(&ICMPV6_REPLY_56)).unwrap_err(),
            "IPv6 is off on this bridge (--no-ipv6)"
        );
        assert!(ends(true).egress(&parse(&REQUEST_56)).is_err());
    }
}
