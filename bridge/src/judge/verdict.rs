//! Verdicts: whether an agent's packet is a correct reply to the request it answers.
//!
//! The bridge builds its own reference reply ([`stack::owed`]) and compares the agent's
//! reply with it, never trusting what the reply claims about itself. Every kind of request
//! is judged the same way: the reference is rebuilt with the reply's own choices for the
//! fields a stack may choose ([`stack::adopt`] with [`stack::Choices::of`]: the TTL or hop
//! limit (not 0), the IPv4 identification, DSCP/ECN and DF, the IPv6 traffic class and
//! flow label, how much an error quotes, a reset's window, no UDP checksum over IPv4, and
//! `0xffff` for a checksum that comes out `0x0000`), so what is left to differ is what a
//! stack may not choose. IPv4 options must be the request's, as the reference keeps them.
//!
//! The checks run in this order, and the first failure is the verdict: structure (a whole
//! packet of the request's family, not a fragment, with a whole transport header),
//! addresses (source, then destination), protocol, the transport header (ICMP type and
//! code, identifier and sequence number; ports, the UDP length; the TCP sequence and
//! acknowledgment numbers and flags), the IP header (header length, length, options,
//! flags, TTL), the data (an echo's payload, an error's quote), then the checksums: the
//! IPv4 header's, then the transport's. Checksums come last so that a reply with a wrong
//! field is told about the field, not about the checksum the field broke.
//!
//! A [`Verdict`] is typed: its [`Verdict::class`] is a stable snake_case word for
//! grouping (`payload`, `icmp_checksum`, ...), its `Display` the one-line reason with
//! got and want.

use std::fmt;
use std::net::IpAddr;
use std::ops::Range;

use crate::judge::exchange::{Owed, Request, Response};
use crate::judge::stack::{self, Silence};
use crate::wire::ip::{be16, be32, Family, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP};
use crate::wire::{self, icmpv4, icmpv6, ipv4, ipv6, tcp, udp};

/// The first byte where a reply differs from what it should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Difference {
    /// Offset within the compared part (options, payload or the whole packet).
    pub at: usize,
    /// The reply's byte.
    pub got: u8,
    /// The reference's byte.
    pub want: u8,
}

/// Which address of a reply is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The source address.
    Source,
    /// The destination address.
    Destination,
}

/// The judgement on one reply: valid, or the first thing wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A correct reply.
    Valid,
    /// The reply answers no request in flight.
    NoMatchingRequest,
    /// The request it answers is owed no reply.
    NoReplyOwed(Silence),
    /// The reply is not a well-formed packet of its kind.
    Malformed(wire::Error),
    /// A wrong source or destination address.
    Address {
        side: Side,
        got: IpAddr,
        want: IpAddr,
    },
    /// The IP payload is of another protocol.
    Protocol { got: u8, want: u8 },
    /// A wrong ICMP type.
    IcmpType { got: u8, want: u8 },
    /// A wrong ICMP code.
    IcmpCode { got: u8, want: u8 },
    /// A wrong ICMP echo identifier.
    IcmpId { got: u16, want: u16 },
    /// A wrong ICMP echo sequence number.
    IcmpSeq { got: u16, want: u16 },
    /// The IPv4 header length differs (the request's options are echoed).
    HeaderLength { got: usize, want: usize },
    /// The total length differs.
    Length { got: u16, want: u16 },
    /// The IPv4 options differ from the request's.
    Options(Difference),
    /// IPv4 flags or fragment offset other than DF differ.
    Flags { got: u16, want: u16 },
    /// TTL 0.
    Ttl,
    /// The data differs.
    Payload(Difference),
    /// The IPv4 header checksum is wrong for the bytes sent.
    IpChecksum { got: u16, want: u16 },
    /// The ICMP checksum is wrong for the bytes sent.
    IcmpChecksum { got: u16, want: u16 },
    /// Wrong ports: (source, destination).
    Ports { got: (u16, u16), want: (u16, u16) },
    /// A wrong TCP sequence number.
    TcpSeq { got: u32, want: u32 },
    /// A wrong TCP acknowledgment number.
    TcpAck { got: u32, want: u32 },
    /// Wrong TCP flags.
    TcpFlags { got: u8, want: u8 },
    /// An ICMP error's quote of the invoking packet differs.
    Quote(Difference),
    /// The ICMPv6 checksum is wrong for the bytes sent.
    Icmpv6Checksum { got: u16, want: u16 },
    /// The UDP checksum is wrong for the bytes sent.
    UdpChecksum { got: u16, want: u16 },
    /// The TCP checksum is wrong for the bytes sent.
    TcpChecksum { got: u16, want: u16 },
    /// A difference from the reference that no named check covers.
    Reference(Difference),
    /// The reference reply itself is not a packet (a bug in the bridge).
    BadReference(wire::Error),
}

impl Verdict {
    /// Returns whether the verdict is `Valid`.
    pub fn is_valid(&self) -> bool {
        matches!(self, Verdict::Valid)
    }

    /// The stable snake_case class, for the record and for grouping in the report.
    pub fn class(&self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::NoMatchingRequest => "no_matching_request",
            Verdict::NoReplyOwed(_) => "no_reply_owed",
            Verdict::Malformed(_) => "malformed",
            Verdict::Address { .. } => "address",
            Verdict::Protocol { .. } => "protocol",
            Verdict::IcmpType { .. } => "icmp_type",
            Verdict::IcmpCode { .. } => "icmp_code",
            Verdict::IcmpId { .. } => "icmp_id",
            Verdict::IcmpSeq { .. } => "icmp_seq",
            Verdict::HeaderLength { .. } => "header_length",
            Verdict::Length { .. } => "length",
            Verdict::Options(_) => "options",
            Verdict::Flags { .. } => "flags",
            Verdict::Ttl => "ttl",
            Verdict::Payload(_) => "payload",
            Verdict::IpChecksum { .. } => "ip_checksum",
            Verdict::IcmpChecksum { .. } => "icmp_checksum",
            Verdict::Ports { .. } => "ports",
            Verdict::TcpSeq { .. } => "tcp_seq",
            Verdict::TcpAck { .. } => "tcp_ack",
            Verdict::TcpFlags { .. } => "tcp_flags",
            Verdict::Quote(_) => "quote",
            Verdict::Icmpv6Checksum { .. } => "icmpv6_checksum",
            Verdict::UdpChecksum { .. } => "udp_checksum",
            Verdict::TcpChecksum { .. } => "tcp_checksum",
            Verdict::Reference(_) => "reference",
            Verdict::BadReference(_) => "bad_reference",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Valid => f.write_str("valid"),
            Verdict::NoMatchingRequest => f.write_str("no matching request"),
            Verdict::NoReplyOwed(why) => write!(f, "the request is owed no reply: {why}"),
            Verdict::Malformed(e) => write!(f, "malformed: {e}"),
            Verdict::Address { side, got, want } => {
                let side = match side {
                    Side::Source => "source",
                    Side::Destination => "destination",
                };
                write!(f, "wrong {side} {got}, want {want}")
            }
            Verdict::Protocol { got, want: 1 } => {
                write!(f, "not an ICMP packet (protocol {got})")
            }
            Verdict::Protocol { got, want } => write!(f, "wrong protocol {got}, want {want}"),
            Verdict::IcmpType { got, want } => write!(f, "wrong ICMP type {got}, want {want}"),
            Verdict::IcmpCode { got, want } => write!(f, "wrong ICMP code {got}, want {want}"),
            Verdict::IcmpId { got, want } => {
                write!(f, "wrong ICMP id {got:#06x}, want {want:#06x}")
            }
            Verdict::IcmpSeq { got, want } => write!(f, "wrong ICMP sequence {got}, want {want}"),
            Verdict::HeaderLength { got, want } => write!(
                f,
                "wrong IPv4 header length {got}, want {want} (the request's options are echoed)"
            ),
            Verdict::Length { got, want } => write!(f, "wrong length {got}, want {want}"),
            Verdict::Options(d) => write!(f, "IPv4 options differ at {d}"),
            Verdict::Flags { got, want } => write!(
                f,
                "wrong IPv4 flags {got:#06x}, want {want:#06x} (only DF may differ)"
            ),
            Verdict::Ttl => f.write_str("TTL 0, want 1..255"),
            Verdict::Payload(d) => write!(f, "payload differs at {d}"),
            &Verdict::IpChecksum { got, want } => wire::Error::BadIpChecksum { got, want }.fmt(f),
            &Verdict::IcmpChecksum { got, want } => {
                wire::Error::BadIcmpChecksum { got, want }.fmt(f)
            }
            Verdict::Ports { got, want } => write!(
                f,
                "wrong ports {} > {}, want {} > {}",
                got.0, got.1, want.0, want.1
            ),
            Verdict::TcpSeq { got, want } => write!(f, "wrong TCP sequence {got}, want {want}"),
            Verdict::TcpAck { got, want } => {
                write!(f, "wrong TCP acknowledgment {got}, want {want}")
            }
            Verdict::TcpFlags { got, want } => {
                write!(f, "wrong TCP flags {got:#04x}, want {want:#04x}")
            }
            Verdict::Quote(d) => write!(f, "the quoted packet differs at {d}"),
            &Verdict::Icmpv6Checksum { got, want } => checksum_text(f, "ICMPv6", got, want),
            &Verdict::UdpChecksum { got, want } => checksum_text(f, "UDP", got, want),
            &Verdict::TcpChecksum { got, want } => checksum_text(f, "TCP", got, want),
            Verdict::Reference(d) => write!(f, "differs from the reference reply at {d}"),
            Verdict::BadReference(e) => write!(f, "bad reference reply: {e}"),
        }
    }
}

/// Writes a wrong checksum the way `wire::Error::BadChecksum` does.
fn checksum_text(
    f: &mut fmt::Formatter<'_>,
    header: &'static str,
    got: u16,
    want: u16,
) -> fmt::Result {
    fmt::Display::fmt(&wire::Error::BadChecksum { header, got, want }, f)
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Difference { at, got, want } = self;
        write!(f, "byte {at}: got {got:#04x}, want {want:#04x}")
    }
}

/// A check's outcome: `Err` carries the invalid verdict.
type Checked = Result<(), Verdict>;

/// Judges an agent's packet as the answer to a request.
pub fn judge(request: &Request, reply: &Response) -> Verdict {
    match &request.owed {
        Owed::Reply(reference) => judge_against(reference, reply.bytes()),
        Owed::Silence(why) => Verdict::NoReplyOwed(why.clone()),
    }
}

/// Judges raw bytes: `request` as read from the device, `reply` as an agent would write it.
pub fn judge_packets(request: &[u8], reply: &[u8]) -> Verdict {
    let request = Request::parse(request);
    match (&request.owed, Response::parse(reply.to_vec())) {
        (Owed::Silence(why), _) => Verdict::NoReplyOwed(why.clone()),
        (_, Ok(reply)) => judge(&request, &reply),
        (_, Err(error)) => Verdict::Malformed(error),
    }
}

/// Judges `reply` against a reference reply built by [`stack::owed`].
pub fn judge_against(reference: &[u8], reply: &[u8]) -> Verdict {
    match check(reference, reply) {
        Ok(()) => Verdict::Valid,
        Err(verdict) => verdict,
    }
}

/// Fails with `verdict(got, want)` when the two differ.
fn same<T: PartialEq>(got: T, want: T, verdict: impl FnOnce(T, T) -> Verdict) -> Checked {
    if got == want {
        Ok(())
    } else {
        Err(verdict(got, want))
    }
}

/// The IP layer of a reply or a reference.
struct Parts {
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    ttl: u8,
    /// Where the transport message starts: the IP header's length.
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

/// Checks that `message` holds the whole transport header of `protocol`.
fn check_transport_len(protocol: u8, message: &[u8]) -> Result<(), wire::Error> {
    let (header, want) = match protocol {
        PROTO_ICMP => return icmpv4::Packet::new_checked(message).map(drop),
        PROTO_ICMPV6 => return icmpv6::Packet::new_checked(message).map(drop),
        PROTO_UDP => ("UDP", udp::HEADER_LEN),
        PROTO_TCP => ("TCP", tcp::MIN_HEADER_LEN),
        _ => return Ok(()),
    };
    if message.len() < want {
        let got = message.len();
        return Err(wire::Error::HeaderTooShort { header, got, want });
    }
    Ok(())
}

/// Runs every check in the documented order; the error is the first found.
fn check(reference: &[u8], reply: &[u8]) -> Checked {
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
    check_transport_len(got.protocol, &reply[got.at..]).map_err(Verdict::Malformed)?;
    let adopted = stack::adopt(reference, &stack::Choices::of(reply));
    let fields = Fields {
        family,
        protocol: want.protocol,
        is_error: is_error(want.protocol, adopted.get(want.at).copied()),
    };
    let (got_message, want_message) = (&reply[got.at..], &adopted[want.at..]);
    fields.check_header(got_message, want_message)?;
    check_ip_header(family, (reply, got.at), (&adopted, want.at))?;
    if got.ttl == 0 {
        return Err(Verdict::Ttl);
    }
    fields.check_data(got_message, want_message)?;
    // A guard for what the named checks do not cover; checksums aside, the two now
    // have the same length and layout.
    let checksums = fields.checksums(want.at);
    let masked = |bytes: &[u8]| {
        let mut bytes = bytes.to_vec();
        for (range, _) in &checksums {
            bytes[range.clone()].fill(0);
        }
        bytes
    };
    if let Some(d) = first_difference(&masked(reply), &masked(&adopted)) {
        return Err(Verdict::Reference(d));
    }
    for (range, verdict) in checksums {
        let (got, want) = (be16(&reply[range.clone()]), be16(&adopted[range]));
        same(got, want, verdict)?;
    }
    Ok(())
}

/// Checks the IP header of `got` against `want` (each with its header length): for IPv4
/// the header length, then the length, the options and the flags other than DF.
fn check_ip_header(family: Family, got: (&[u8], usize), want: (&[u8], usize)) -> Checked {
    same(got.1, want.1, |got, want| Verdict::HeaderLength {
        got,
        want,
    })?;
    same(got.0.len(), want.0.len(), |got, want| Verdict::Length {
        got: got as u16,
        want: want as u16,
    })?;
    if family == Family::Ipv6 {
        return Ok(());
    }
    let options = (
        &got.0[ipv4::MIN_HEADER_LEN..got.1],
        &want.0[ipv4::MIN_HEADER_LEN..want.1],
    );
    if let Some(d) = first_difference(options.0, options.1) {
        return Err(Verdict::Options(d));
    }
    let not_df = |(bytes, _): (&[u8], usize)| be16(&bytes[6..8]) & !ipv4::FLAG_DF;
    same(not_df(got), not_df(want), |got, want| Verdict::Flags {
        got,
        want,
    })
}

/// Whether a reference's ICMP or ICMPv6 message (type at hand) is an error with a quote.
fn is_error(protocol: u8, msg_type: Option<u8>) -> bool {
    match (protocol, msg_type) {
        (PROTO_ICMP, Some(t)) => t != icmpv4::ECHO_REPLY,
        (PROTO_ICMPV6, Some(t)) => t < 128,
        _ => false,
    }
}

/// A checksum verdict from got and want.
type ChecksumVerdict = fn(u16, u16) -> Verdict;

/// Where the fields of a transport message are, for naming the one that differs.
struct Fields {
    family: Family,
    protocol: u8,
    is_error: bool,
}

impl Fields {
    /// The transport header's length; the data follows it.
    fn header_len(&self) -> usize {
        match self.protocol {
            PROTO_ICMP | PROTO_ICMPV6 => icmpv4::HEADER_LEN,
            PROTO_UDP => udp::HEADER_LEN,
            PROTO_TCP => tcp::MIN_HEADER_LEN,
            _ => 0,
        }
    }

    /// Where the transport checksum is within the message.
    fn checksum_at(&self) -> Option<(usize, ChecksumVerdict)> {
        let found: (usize, ChecksumVerdict) = match self.protocol {
            PROTO_ICMP => (2, |got, want| Verdict::IcmpChecksum { got, want }),
            PROTO_ICMPV6 => (2, |got, want| Verdict::Icmpv6Checksum { got, want }),
            PROTO_UDP => (6, |got, want| Verdict::UdpChecksum { got, want }),
            PROTO_TCP => (16, |got, want| Verdict::TcpChecksum { got, want }),
            _ => return None,
        };
        Some(found)
    }

    /// The checksum fields of a packet whose transport message starts at `at`, IPv4
    /// header first, with the verdict each one's error gives.
    fn checksums(&self, at: usize) -> Vec<(Range<usize>, ChecksumVerdict)> {
        let mut list: Vec<(Range<usize>, ChecksumVerdict)> = Vec::new();
        if self.family == Family::Ipv4 {
            list.push((10..12, |got, want| Verdict::IpChecksum { got, want }));
        }
        if let Some((offset, verdict)) = self.checksum_at() {
            list.push((at + offset..at + offset + 2, verdict));
        }
        list
    }

    /// Compares the transport headers, checksum aside, and names the first field that differs.
    fn check_header(&self, got: &[u8], want: &[u8]) -> Checked {
        let len = self.header_len().min(want.len());
        let header = |bytes: &[u8]| {
            let mut header = bytes[..len].to_vec();
            if let Some((at, _)) = self.checksum_at().filter(|(at, _)| at + 2 <= len) {
                header[at..at + 2].fill(0);
            }
            header
        };
        match first_difference(&header(got), &header(want)) {
            Some(d) => Err(self.header_verdict(d, got, want)),
            None => Ok(()),
        }
    }

    /// Compares the data after the transport headers: an echo's payload, an error's quote.
    fn check_data(&self, got: &[u8], want: &[u8]) -> Checked {
        let len = self.header_len().min(got.len()).min(want.len());
        match first_difference(&got[len..], &want[len..]) {
            Some(d) if self.is_error => Err(Verdict::Quote(d)),
            Some(d) if self.protocol == PROTO_TCP => Err(Verdict::Reference(d)),
            Some(d) => Err(Verdict::Payload(d)),
            None => Ok(()),
        }
    }

    /// Names the header field where `got` first differs from `want` (at `d.at`).
    fn header_verdict(&self, d: Difference, got: &[u8], want: &[u8]) -> Verdict {
        let word = |r: Range<usize>| (be16(&got[r.clone()]), be16(&want[r]));
        match (self.protocol, d.at) {
            (PROTO_ICMP | PROTO_ICMPV6, 0) => Verdict::IcmpType {
                got: got[0],
                want: want[0],
            },
            (PROTO_ICMP | PROTO_ICMPV6, 1) => Verdict::IcmpCode {
                got: got[1],
                want: want[1],
            },
            (PROTO_ICMP | PROTO_ICMPV6, 4..=5) if !self.is_error => {
                let (got, want) = word(4..6);
                Verdict::IcmpId { got, want }
            }
            (PROTO_ICMP | PROTO_ICMPV6, 6..=7) if !self.is_error => {
                let (got, want) = word(6..8);
                Verdict::IcmpSeq { got, want }
            }
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

/// Returns the first offset where two slices differ, with both bytes; `None` if they are equal
/// up to the shorter length.
fn first_difference(got: &[u8], want: &[u8]) -> Option<Difference> {
    got.iter()
        .zip(want)
        .position(|(g, w)| g != w)
        .map(|at| Difference {
            at,
            got: got[at],
            want: want[at],
        })
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::wire::fixtures::*;
    use std::net::Ipv4Addr;

    /// The kernel's REPLY_56 with `edit` applied to it, then both checksums fixed.
    fn reply_with(edit: impl FnOnce(&mut ipv4::Packet<&mut [u8]>)) -> Vec<u8> {
        let mut bytes = REPLY_56.to_vec();
        let mut ip = ipv4::Packet::new_checked(&mut bytes[..]).unwrap();
        edit(&mut ip);
        icmpv4::Packet::new_unchecked(ip.payload_mut()).fill_checksum();
        ip.fill_checksum();
        bytes
    }

    /// Like `reply_with`, for an edit of the ICMP message.
    fn reply_with_icmp(edit: impl FnOnce(&mut icmpv4::Packet<&mut [u8]>)) -> Vec<u8> {
        reply_with(|ip| edit(&mut icmpv4::Packet::new_checked(ip.payload_mut()).unwrap()))
    }

    fn judge(request: &[u8], reply: &[u8]) -> Verdict {
        judge_packets(request, reply)
    }

    /// The reference reply, checked by the etherparse oracle before any test uses it.
    fn reference(request: &[u8]) -> Result<Vec<u8>, Silence> {
        let reply = stack::owed(request)?;
        crate::oracle::assert_echo_reply(request, &reply);
        Ok(reply)
    }

    fn reason(request: &[u8], reply: &[u8]) -> String {
        let verdict = judge(request, reply);
        assert!(!verdict.is_valid(), "expected an invalid verdict");
        verdict.to_string()
    }

    #[test]
    fn kernel_replies_are_valid() {
        for (request, reply) in ECHO_PAIRS {
            assert_eq!(judge(request, reply), Verdict::Valid);
        }
    }

    #[test]
    fn reference_is_valid() {
        for request in [&REQUEST_56[..], &REQUEST_1, &REQUEST_RR] {
            let want = reference(request).unwrap();
            assert_eq!(judge(request, &want), Verdict::Valid);
            assert_eq!(judge_against(&want, &want), Verdict::Valid);
        }
    }

    #[test]
    fn valid_other_ttl() {
        let reply = reply_with(|ip| ip.set_ttl(1));
        assert_eq!(judge(&REQUEST_56, &reply), Verdict::Valid);
        let reply = reply_with(|ip| ip.set_ttl(255));
        assert_eq!(judge(&REQUEST_56, &reply), Verdict::Valid);
    }

    #[test]
    fn valid_other_ident_dscp_df() {
        let reply = reply_with(|ip| ip.set_ident(0));
        assert_eq!(judge(&REQUEST_56, &reply), Verdict::Valid);
        let reply = reply_with(|ip| ip.set_dscp_ecn(0xb8 | 0x01));
        assert_eq!(judge(&REQUEST_56, &reply), Verdict::Valid);
        let reply = reply_with(|ip| ip.set_flags_frag(ipv4::FLAG_DF));
        assert_eq!(judge(&REQUEST_56, &reply), Verdict::Valid);
    }

    #[test]
    fn valid_negative_zero_checksum() {
        // REQUEST_0 with two data bytes chosen so that its reply (type 0, id 0x11ac,
        // seq 1) sums to 0xffff: 0x11ac + 0x0001 + 0xee52. The reference's checksum is
        // then 0x0000; 0xffff, the other zero of one's complement, verifies as well.
        let mut request = REQUEST_0.to_vec();
        request.extend_from_slice(&[0xee, 0x52]);
        request[2..4].copy_from_slice(&30u16.to_be_bytes());
        let mut ip = ipv4::Packet::new_checked(&mut request[..]).unwrap();
        ip.fill_checksum();
        icmpv4::Packet::new_checked(ip.payload_mut())
            .unwrap()
            .fill_checksum();

        let want = reference(&request).unwrap();
        assert_eq!(&want[22..24], &[0x00, 0x00]);
        assert_eq!(judge(&request, &want), Verdict::Valid);
        let mut reply = want.clone();
        reply[22..24].copy_from_slice(&[0xff, 0xff]);
        assert_eq!(judge(&request, &reply), Verdict::Valid);
    }

    #[test]
    fn bad_icmp_checksum() {
        let mut reply = REPLY_56.to_vec();
        reply[23] = 0xdc;
        assert_eq!(
            reason(&REQUEST_56, &reply),
            "bad ICMP checksum: got 0x83dc, want 0x83db"
        );
    }

    #[test]
    fn bad_ip_checksum() {
        let mut reply = REPLY_56.to_vec();
        reply[10..12].copy_from_slice(&[0x00, 0x00]);
        assert_eq!(
            reason(&REQUEST_56, &reply),
            "bad IPv4 header checksum: got 0x0000, want 0xe4b0"
        );
    }

    #[test]
    fn bad_ip_checksum_after_ttl_change() {
        // The want is the checksum over what was sent: TTL 63, not the reference's TTL 64.
        let mut reply = REPLY_56.to_vec();
        reply[8] = 63;
        assert_eq!(
            reason(&REQUEST_56, &reply),
            "bad IPv4 header checksum: got 0xe4b0, want 0xe5b0"
        );
    }

    #[test]
    fn wrong_type() {
        let reply = reply_with_icmp(|icmp| icmp.set_msg_type(icmpv4::ECHO_REQUEST));
        assert_eq!(reason(&REQUEST_56, &reply), "wrong ICMP type 8, want 0");
    }

    #[test]
    fn wrong_code() {
        let reply = reply_with_icmp(|icmp| icmp.set_code(3));
        assert_eq!(reason(&REQUEST_56, &reply), "wrong ICMP code 3, want 0");
    }

    #[test]
    fn wrong_source() {
        let reply = reply_with(|ip| ip.set_src_addr(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(
            reason(&REQUEST_56, &reply),
            "wrong source 192.0.2.1, want 192.0.2.2"
        );
    }

    #[test]
    fn wrong_destination() {
        let reply = reply_with(|ip| ip.set_dst_addr(Ipv4Addr::new(192, 0, 2, 3)));
        assert_eq!(
            reason(&REQUEST_56, &reply),
            "wrong destination 192.0.2.3, want 192.0.2.1"
        );
    }

    #[test]
    fn request_sent_back_unchanged() {
        // The addresses are checked before the type: the source is named first.
        assert_eq!(
            reason(&REQUEST_56, &REQUEST_56),
            "wrong source 192.0.2.1, want 192.0.2.2"
        );
    }

    #[test]
    fn wrong_id() {
        let reply = reply_with_icmp(|icmp| icmp.set_echo_ident(0x11ab));
        assert_eq!(
            reason(&REQUEST_56, &reply),
            "wrong ICMP id 0x11ab, want 0x11aa"
        );
    }

    #[test]
    fn wrong_seq() {
        // The kernel's reply to seq 1, offered for seq 2.
        assert_eq!(
            reason(&REQUEST_56_SEQ2, &REPLY_56),
            "wrong ICMP sequence 1, want 2"
        );
    }

    #[test]
    fn payload_differs() {
        let reply = reply_with_icmp(|icmp| icmp.data_mut()[12] = 0x41);
        assert_eq!(
            reason(&REQUEST_56, &reply),
            "payload differs at byte 12: got 0x41, want 0x00"
        );
    }

    #[test]
    fn wrong_length() {
        // A well-formed reply that lost its last four data bytes.
        let mut reply = REPLY_56[..80].to_vec();
        reply[2..4].copy_from_slice(&80u16.to_be_bytes());
        let mut ip = ipv4::Packet::new_checked(&mut reply[..]).unwrap();
        ip.fill_checksum();
        icmpv4::Packet::new_checked(ip.payload_mut())
            .unwrap()
            .fill_checksum();
        assert_eq!(reason(&REQUEST_56, &reply), "wrong length 80, want 84");
    }

    #[test]
    fn reply_to_another_request_size() {
        assert_eq!(
            reason(&REQUEST_57, &REPLY_56),
            "wrong ICMP id 0x11aa, want 0x11b0"
        );
    }

    #[test]
    fn not_icmp() {
        let reply = reply_with(|ip| ip.set_protocol(6));
        assert_eq!(
            reason(&REQUEST_56, &reply),
            "not an ICMP packet (protocol 6)"
        );
    }

    #[test]
    fn malformed_truncated() {
        assert_eq!(
            reason(&REQUEST_56, &REPLY_56[..80]),
            "malformed: total length field says 84 but the packet has 80 bytes"
        );
        assert_eq!(
            reason(&REQUEST_56, &REPLY_56[..12]),
            "malformed: packet too short: 12 bytes, an IPv4 header needs at least 20"
        );
    }

    #[test]
    fn malformed_version() {
        let mut reply = REPLY_56.to_vec();
        reply[0] = 0x75;
        assert_eq!(
            reason(&REQUEST_56, &reply),
            "malformed: not IPv4: version 7"
        );
    }

    #[test]
    fn malformed_short_icmp() {
        let mut reply = REPLY_56[..24].to_vec();
        reply[2..4].copy_from_slice(&24u16.to_be_bytes());
        assert_eq!(
            reason(&REQUEST_56, &reply),
            "malformed: ICMP message too short: 4 bytes, an ICMP header needs 8"
        );
    }

    #[test]
    fn malformed_fragment() {
        let reply = reply_with(|ip| ip.set_flags_frag(ipv4::FLAG_MF));
        assert!(
            reason(&REQUEST_56, &reply).starts_with("malformed: fragment (more-fragments flag set")
        );
    }

    #[test]
    fn reserved_flag() {
        let reply = reply_with(|ip| ip.set_flags_frag(0x8000));
        assert_eq!(
            reason(&REQUEST_56, &reply),
            "wrong IPv4 flags 0x8000, want 0x0000 (only DF may differ)"
        );
    }

    #[test]
    fn ttl_zero() {
        let reply = reply_with(|ip| ip.set_ttl(0));
        assert_eq!(reason(&REQUEST_56, &reply), "TTL 0, want 1..255");
    }

    #[test]
    fn options_must_be_echoed() {
        // The kernel fills in the record route; the bridge wants the request's options.
        assert_eq!(
            reason(&REQUEST_RR, &REPLY_RR),
            "IPv4 options differ at byte 0: got 0x07, want 0x01"
        );
        // A reply that drops the options altogether.
        let want = reference(&REQUEST_RR).unwrap();
        let mut reply = [&want[..20], &want[60..]].concat();
        reply[0] = 0x45;
        reply[2..4].copy_from_slice(&40u16.to_be_bytes());
        ipv4::Packet::new_checked(&mut reply[..])
            .unwrap()
            .fill_checksum();
        assert_eq!(
            reason(&REQUEST_RR, &reply),
            "wrong IPv4 header length 20, want 60 (the request's options are echoed)"
        );
    }

    #[test]
    fn field_named_before_checksum() {
        // A wrong code with the checksum left as the kernel had it: the code is named.
        let mut reply = REPLY_56.to_vec();
        reply[21] = 3;
        assert_eq!(reason(&REQUEST_56, &reply), "wrong ICMP code 3, want 0");
    }

    #[test]
    fn request_without_reply() {
        assert_eq!(
            reason(&REPLY_56, &REQUEST_56),
            "the request is owed no reply: ICMP type 0 code 0 is not an echo request"
        );
    }

    #[test]
    fn bad_reference() {
        assert_eq!(
            judge_against(&REPLY_56[..10], &REPLY_56).to_string(),
            "bad reference reply: packet too short: 10 bytes, an IPv4 header needs at least 20"
        );
    }

    #[test]
    fn display_and_class() {
        assert_eq!(Verdict::Valid.to_string(), "valid");
        assert_eq!(Verdict::Valid.class(), "valid");
        assert_eq!(Verdict::Ttl.to_string(), "TTL 0, want 1..255");
        assert_eq!(
            Verdict::NoMatchingRequest.to_string(),
            "no matching request"
        );
        assert_eq!(Verdict::NoMatchingRequest.class(), "no_matching_request");
        assert!(Verdict::Valid.is_valid());
        assert!(!Verdict::Ttl.is_valid());
    }

    #[test]
    fn classes_group_details() {
        let at = |at| reply_with_icmp(|icmp| icmp.data_mut()[at] = 0x41);
        let (a, b) = (judge(&REQUEST_56, &at(12)), judge(&REQUEST_56, &at(13)));
        assert_ne!(a, b);
        assert_eq!((a.class(), b.class()), ("payload", "payload"));
        let src = reply_with(|ip| ip.set_src_addr(Ipv4Addr::new(192, 0, 2, 1)));
        let dst = reply_with(|ip| ip.set_dst_addr(Ipv4Addr::new(192, 0, 2, 3)));
        let classes = [&src, &dst].map(|r| judge(&REQUEST_56, r).class());
        assert_eq!(classes, ["address", "address"]);
        let cases: [(Vec<u8>, &str); 6] = [
            (REPLY_56.to_vec(), "valid"),
            (reply_with(|ip| ip.set_ttl(0)), "ttl"),
            (reply_with(|ip| ip.set_protocol(6)), "protocol"),
            (reply_with_icmp(|icmp| icmp.set_code(3)), "icmp_code"),
            (REPLY_56[..80].to_vec(), "malformed"),
            (REQUEST_56.to_vec(), "address"),
        ];
        for (reply, class) in cases {
            assert_eq!(judge(&REQUEST_56, &reply).class(), class);
        }
        assert_eq!(judge(&REPLY_56, &REQUEST_56).class(), "no_reply_owed");
        let mut ip_bad = REPLY_56.to_vec();
        ip_bad[10] ^= 1;
        assert_eq!(judge(&REQUEST_56, &ip_bad).class(), "ip_checksum");
        let mut icmp_bad = REPLY_56.to_vec();
        icmp_bad[23] ^= 1;
        assert_eq!(judge(&REQUEST_56, &icmp_bad).class(), "icmp_checksum");
    }

    #[test]
    fn no_panic_on_any_truncation_or_byte_flip() {
        for len in 0..=REPLY_56.len() + 1 {
            let mut reply = REPLY_56.to_vec();
            reply.resize(len, 0);
            let _ = judge(&REQUEST_56, &reply);
        }
        for at in 0..REPLY_56.len() {
            for bit in 0..8 {
                let mut reply = REPLY_56.to_vec();
                reply[at] ^= 1 << bit;
                // A flip in a free field still breaks the header checksum.
                let verdict = judge(&REQUEST_56, &reply);
                assert!(!verdict.is_valid(), "byte {at} bit {bit} passed");
            }
        }
    }

    #[test]
    fn kernel_replies_of_the_stack_kinds_are_valid() {
        for (request, reply) in KERNEL_PAIRS {
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
        let reply = stack::owed_with(
            &TCP4_SYN,
            &stack::Choices {
                window: Some(512),
                ttl: Some(3),
                ..Default::default()
            },
        )
        .unwrap();
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
    fn stack_kinds_never_panic_on_any_truncation_or_byte_flip() {
        // Of the reply (judged) and of the request (parsed, owed a reply or silence).
        for (request, reply) in KERNEL_PAIRS {
            for len in 0..=reply.len() + 1 {
                let mut bytes = reply.to_vec();
                bytes.resize(len, 0);
                let _ = judge_packets(request, &bytes);
                let mut bytes = request.to_vec();
                bytes.resize(len.min(request.len() + 1), 0);
                let _ = stack::owed(&bytes);
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
