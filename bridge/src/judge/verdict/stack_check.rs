//! Judging the replies of the reference stack's kinds: ICMPv6 echo, UDP echo, port
//! unreachable and TCP reset, in either family.
//!
//! The reply is compared with the reference rebuilt with the reply's own choices for the
//! free fields ([`stack::adopt`] with [`stack::Choices::of`]), so what is left to differ
//! is what a stack may not choose. The checks run in this order: structure (a whole
//! packet of the request's family, not a fragment), addresses, protocol, TTL or hop limit
//! (not 0), length, then the first byte that differs outside the checksum fields, named by
//! its field (ports, TCP sequence, acknowledgment and flags, ICMP type, code, identifier,
//! sequence, data, the quote), and last the checksums: the IPv4 header's, then the
//! transport's (`icmp_checksum`, `icmpv6_checksum`, `udp_checksum`, `tcp_checksum`).

use std::net::IpAddr;
use std::ops::Range;

use super::{first_difference, same, Checked, Difference, Side, Verdict};
use crate::judge::exchange::Family;
use crate::judge::stack;
use crate::wire::ip::{be16, be32, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP};
use crate::wire::{self, ipv4, ipv6};

/// The IP layer of a reply or a reference.
struct Parts {
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    ttl: u8,
    /// Where the transport message starts.
    at: usize,
}

/// Reads the IP layer of a whole packet of `family` that is not a fragment.
fn parts(bytes: &[u8], family: Family) -> Result<Parts, wire::Error> {
    match family {
        Family::Ipv4 => {
            let ip = ipv4::Packet::new_checked(bytes)?;
            if ip.is_fragment() {
                let (more_frags, offset) = (ip.more_frags(), ip.frag_offset());
                return Err(wire::Error::Fragmented { more_frags, offset });
            }
            Ok(Parts {
                src: ip.src_addr().into(),
                dst: ip.dst_addr().into(),
                protocol: ip.protocol(),
                ttl: ip.ttl(),
                at: ip.header_len(),
            })
        }
        Family::Ipv6 => {
            let ip = ipv6::Packet::new_checked(bytes)?;
            Ok(Parts {
                src: ip.src_addr().into(),
                dst: ip.dst_addr().into(),
                protocol: ip.next_header(),
                ttl: ip.hop_limit(),
                at: ipv6::HEADER_LEN,
            })
        }
    }
}

/// Runs every check in the documented order; the error is the first found.
pub(super) fn check(reference: &[u8], reply: &[u8]) -> Checked {
    let family = Family::of(reference).ok_or(Verdict::BadReference(wire::Error::NotIpv6 {
        version: reference.first().map_or(0, |b| b >> 4),
    }))?;
    let want = parts(reference, family).map_err(Verdict::BadReference)?;
    let got = parts(reply, family).map_err(Verdict::Malformed)?;
    let address = |side| move |got, want| Verdict::Address { side, got, want };
    same(got.src, want.src, address(Side::Source))?;
    same(got.dst, want.dst, address(Side::Destination))?;
    same(got.protocol, want.protocol, |got, want| Verdict::Protocol {
        got,
        want,
    })?;
    if got.ttl == 0 {
        return Err(Verdict::Ttl);
    }
    let adopted = stack::adopt(reference, &stack::Choices::of(reply));
    same(reply.len(), adopted.len(), |got, want| Verdict::Length {
        got: got as u16,
        want: want as u16,
    })?;
    let fields = Fields {
        family,
        protocol: want.protocol,
        at: want.at,
        is_error: is_error(want.protocol, adopted.get(want.at).copied()),
    };
    let checksums = fields.checksums();
    let masked = |bytes: &[u8]| {
        let mut bytes = bytes.to_vec();
        for (range, _) in &checksums {
            bytes[range.clone()].fill(0);
        }
        bytes
    };
    if let Some(d) = first_difference(&masked(reply), &masked(&adopted)) {
        return Err(fields.verdict(d, reply, &adopted));
    }
    for (range, verdict) in checksums {
        let (got, want) = (be16(&reply[range.clone()]), be16(&adopted[range]));
        same(got, want, verdict)?;
    }
    Ok(())
}

/// Whether a reference's ICMP or ICMPv6 message (type at hand) is an error with a quote.
fn is_error(protocol: u8, msg_type: Option<u8>) -> bool {
    match (protocol, msg_type) {
        (PROTO_ICMP, Some(t)) => t != 0,
        (PROTO_ICMPV6, Some(t)) => t < 128,
        _ => false,
    }
}

/// A checksum verdict from got and want.
type ChecksumVerdict = fn(u16, u16) -> Verdict;

/// Where the fields of a reply are, for naming the one that differs.
struct Fields {
    family: Family,
    protocol: u8,
    at: usize,
    is_error: bool,
}

impl Fields {
    /// The checksum fields, IPv4 header first, with the verdict each one's error gives.
    fn checksums(&self) -> Vec<(Range<usize>, ChecksumVerdict)> {
        let mut list: Vec<(Range<usize>, ChecksumVerdict)> = Vec::new();
        if self.family == Family::Ipv4 {
            list.push((10..12, |got, want| Verdict::IpChecksum { got, want }));
        }
        let (offset, verdict): (usize, ChecksumVerdict) = match self.protocol {
            PROTO_ICMP => (2, |got, want| Verdict::IcmpChecksum { got, want }),
            PROTO_ICMPV6 => (2, |got, want| Verdict::Icmpv6Checksum { got, want }),
            PROTO_UDP => (6, |got, want| Verdict::UdpChecksum { got, want }),
            PROTO_TCP => (16, |got, want| Verdict::TcpChecksum { got, want }),
            _ => return list,
        };
        list.push((self.at + offset..self.at + offset + 2, verdict));
        list
    }

    /// Names the field where `got` first differs from `want` (at `d.at`).
    fn verdict(&self, d: Difference, got: &[u8], want: &[u8]) -> Verdict {
        if d.at < self.at {
            return match (self.family, d.at) {
                (Family::Ipv4, 6..=7) => Verdict::Flags {
                    got: be16(&got[6..8]),
                    want: be16(&want[6..8]),
                },
                _ => Verdict::Reference(d),
            };
        }
        let (t, got, want) = (d.at - self.at, &got[self.at..], &want[self.at..]);
        let word = |r: Range<usize>| (be16(&got[r.clone()]), be16(&want[r]));
        let data = |from: usize| Difference { at: t - from, ..d };
        match (self.protocol, t) {
            (PROTO_ICMP | PROTO_ICMPV6, 0) => Verdict::IcmpType {
                got: got[0],
                want: want[0],
            },
            (PROTO_ICMP | PROTO_ICMPV6, 1) => Verdict::IcmpCode {
                got: got[1],
                want: want[1],
            },
            (PROTO_ICMP | PROTO_ICMPV6, 8..) if self.is_error => Verdict::Quote(data(8)),
            (PROTO_ICMP | PROTO_ICMPV6, 4..=5) if !self.is_error => {
                let (got, want) = word(4..6);
                Verdict::IcmpId { got, want }
            }
            (PROTO_ICMP | PROTO_ICMPV6, 6..=7) if !self.is_error => {
                let (got, want) = word(6..8);
                Verdict::IcmpSeq { got, want }
            }
            (PROTO_ICMP | PROTO_ICMPV6, 8..) => Verdict::Payload(data(8)),
            (PROTO_UDP | PROTO_TCP, 0..=3) => {
                let ((got_src, want_src), (got_dst, want_dst)) = (word(0..2), word(2..4));
                Verdict::Ports {
                    got: (got_src, got_dst),
                    want: (want_src, want_dst),
                }
            }
            (PROTO_UDP, 4..=5) => {
                let (got, want) = word(4..6);
                Verdict::Length { got, want }
            }
            (PROTO_UDP, 8..) => Verdict::Payload(data(8)),
            (PROTO_TCP, 4..=7) => Verdict::TcpSeq {
                got: be32(&got[4..8]),
                want: be32(&want[4..8]),
            },
            (PROTO_TCP, 8..=11) => Verdict::TcpAck {
                got: be32(&got[8..12]),
                want: be32(&want[8..12]),
            },
            (PROTO_TCP, 13) => Verdict::TcpFlags {
                got: got[13],
                want: want[13],
            },
            _ => Verdict::Reference(d),
        }
    }
}

#[cfg(test)]
mod test {
    use crate::judge::verdict::{judge_packets, Verdict};
    use crate::wire::fixtures::*;

    #[test]
    fn kernel_replies_are_valid() {
        for (request, reply, _) in KERNEL_PAIRS {
            assert_eq!(judge_packets(request, reply), Verdict::Valid);
        }
    }

    /// The class of the verdict on `reply` with byte `at` changed by `xor`.
    fn class(request: &[u8], reply: &[u8], at: usize, xor: u8) -> String {
        let mut bytes = reply.to_vec();
        bytes[at] ^= xor;
        judge_packets(request, &bytes).class().to_string()
    }

    #[test]
    fn each_field_is_named() {
        type Case = (&'static [u8], &'static [u8], usize, u8, &'static str);
        let cases: [Case; 17] = [
            (
                &UDP4_ECHO_REQUEST,
                &UDP4_ECHO_REPLY,
                27,
                0x01,
                "udp_checksum",
            ),
            (&UDP4_ECHO_REQUEST, &UDP4_ECHO_REPLY, 30, 0x01, "payload"),
            (&UDP4_ECHO_REQUEST, &UDP4_ECHO_REPLY, 21, 0x01, "ports"),
            (
                &UDP4_ECHO_REQUEST,
                &UDP4_ECHO_REPLY,
                11,
                0x01,
                "ip_checksum",
            ),
            (&UDP4_ECHO_REQUEST, &UDP4_ECHO_REPLY, 15, 0x01, "address"),
            (&UDP4_ECHO_REQUEST, &UDP4_ECHO_REPLY, 9, 0x02, "protocol"),
            (
                &UDP6_ECHO_REQUEST,
                &UDP6_ECHO_REPLY,
                47,
                0x01,
                "udp_checksum",
            ),
            (&UDP6_ECHO_REQUEST, &UDP6_ECHO_REPLY, 39, 0x01, "address"),
            (
                &ICMPV6_REQUEST_56,
                &ICMPV6_REPLY_56,
                43,
                0x01,
                "icmpv6_checksum",
            ),
            (&ICMPV6_REQUEST_56, &ICMPV6_REPLY_56, 40, 0x01, "icmp_type"),
            (&ICMPV6_REQUEST_56, &ICMPV6_REPLY_56, 47, 0x01, "icmp_seq"),
            (&ICMPV6_REQUEST_56, &ICMPV6_REPLY_56, 7, 0x40, "ttl"),
            (&UDP4_CLOSED, &UDP4_PORT_UNREACHABLE, 40, 0x01, "quote"),
            (&UDP6_CLOSED, &UDP6_PORT_UNREACHABLE, 41, 0x01, "icmp_code"),
            (&TCP4_SYN, &TCP4_RST, 31, 0x01, "tcp_ack"),
            (&TCP4_SYN, &TCP4_RST, 33, 0x02, "tcp_flags"),
            (&TCP6_SYN, &TCP6_RST, 57, 0x01, "tcp_checksum"),
        ];
        for (request, reply, at, xor, want) in cases {
            assert_eq!(class(request, reply, at, xor), want, "byte {at}");
        }
    }

    #[test]
    fn free_fields_are_free() {
        // A shorter quote within the bounds, a window, another hop limit: still valid.
        let mut short = UDP6_PORT_UNREACHABLE[..40 + 8 + 48].to_vec();
        short[4..6].copy_from_slice(&56u16.to_be_bytes());
        let (src, dst) = (
            "2001:db8::2".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
        );
        crate::wire::icmpv6::Packet::new_unchecked(&mut short[40..]).fill_checksum(src, dst);
        assert_eq!(judge_packets(&UDP6_CLOSED, &short), Verdict::Valid);
        let too_short = &short[..short.len() - 1];
        assert!(!judge_packets(&UDP6_CLOSED, too_short).is_valid());
        let reply = crate::judge::stack::owed_with(
            &TCP4_SYN,
            &crate::judge::stack::Choices {
                window: Some(512),
                ttl: Some(3),
                ..Default::default()
            },
        )
        .unwrap()
        .bytes;
        assert_eq!(judge_packets(&TCP4_SYN, &reply), Verdict::Valid);
    }

    #[test]
    fn wrong_family_and_silence() {
        assert_eq!(
            judge_packets(&UDP6_ECHO_REQUEST, &UDP4_ECHO_REPLY).class(),
            "malformed"
        );
        let silence = judge_packets(&TCP4_RST, &TCP4_SYN);
        assert_eq!(silence.class(), "no_reply_owed");
        assert_eq!(
            silence.to_string(),
            "the request is owed no reply: a TCP reset is never answered"
        );
    }

    #[test]
    fn no_panic_on_any_truncation_or_byte_flip() {
        // Of the reply (judged) and of the request (parsed, owed a reply or silence).
        for (request, reply, _) in KERNEL_PAIRS {
            for len in 0..=reply.len() + 1 {
                let mut bytes = reply.to_vec();
                bytes.resize(len, 0);
                let _ = judge_packets(request, &bytes);
                let mut bytes = request.to_vec();
                bytes.resize(len.min(request.len() + 1), 0);
                let _ = crate::judge::stack::owed(&bytes);
            }
            for at in 0..reply.len().max(request.len()) {
                for bit in 0..8 {
                    let mut bytes = reply.to_vec();
                    if let Some(b) = bytes.get_mut(at) {
                        *b ^= 1 << bit;
                        let _ = judge_packets(request, &bytes);
                    }
                    let mut bytes = request.to_vec();
                    if let Some(b) = bytes.get_mut(at) {
                        *b ^= 1 << bit;
                        let _ = judge_packets(&bytes, reply);
                    }
                }
            }
        }
    }
}
