//! Verdicts: whether an agent's packet is a correct reply to the request it answers.
//!
//! The bridge builds its own reference reply (see [`Kind::reference`]) and compares the
//! agent's reply with it, never trusting what the reply claims about itself. A reply is
//! valid when it equals the reference byte for byte, or differs only in the fields the
//! request's kind leaves free ([`Kind::free_fields`]); for an ICMPv4 echo, where RFC 791,
//! 792 and 1122 leave the sender free: the TTL (any but 0), the IP identification,
//! DSCP/ECN, the DF flag, and the form of a checksum (0x0000 or 0xffff for a zero sum);
//! both checksums must be right for the bytes actually sent. IPv4 options must be the
//! request's, as the reference keeps them.
//!
//! The checks run in this order, and the first failure is the verdict: structure
//! (a whole IPv4 packet, not a fragment), addresses (source, then destination),
//! protocol, ICMP structure, ICMP type and code, identifier and sequence number,
//! header length, total length, options, flags, TTL, ICMP data, then the IPv4 header
//! checksum and the ICMP checksum. Checksums come last so that a reply with a wrong
//! field is told about the field, not about the checksum the field broke.
//!
//! A [`Verdict`] is typed: its [`Verdict::class`] is a stable snake_case word for
//! grouping (`payload`, `icmp_checksum`, ...), its `Display` the one-line reason with
//! got and want.

use std::fmt;
use std::net::IpAddr;

use crate::judge::exchange::{FreeField, Kind, Owed, Request, Response, Silence};
use crate::wire::{self, icmpv4, ipv4};

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
    match (&request.owed, request.kind) {
        (Owed::Reply(reference), Some(kind)) => judge_against(kind, reference, reply.bytes()),
        (Owed::Silence(why), _) => Verdict::NoReplyOwed(why.clone()),
        (Owed::Reply(_), None) => Verdict::NoReplyOwed(Silence::Unknown),
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

/// Judges `reply` against a reference reply of this kind, built by [`Kind::reference`].
pub fn judge_against(kind: Kind, reference: &[u8], reply: &[u8]) -> Verdict {
    let checked = match kind {
        Kind::Icmpv4Echo => {
            check(reference, reply).and_then(|()| check_rest(kind, reply, reference))
        }
        _ => stack_check::check(reference, reply),
    };
    match checked {
        Ok(()) => Verdict::Valid,
        Err(verdict) => verdict,
    }
}

/// Runs every check of an ICMPv4 echo reply in the documented order; the error is the first found.
fn check(reference: &[u8], reply: &[u8]) -> Checked {
    let want = ipv4::Packet::new_checked(reference).map_err(Verdict::BadReference)?;
    let want_icmp = icmpv4::Packet::new_checked(want.payload()).map_err(Verdict::BadReference)?;

    let got = ipv4::Packet::new_checked(reply).map_err(Verdict::Malformed)?;
    if got.is_fragment() {
        let (more_frags, offset) = (got.more_frags(), got.frag_offset());
        return Err(Verdict::Malformed(wire::Error::Fragmented {
            more_frags,
            offset,
        }));
    }
    check_addresses(&got, &want)?;
    if got.protocol() != ipv4::PROTO_ICMP {
        return Err(Verdict::Protocol {
            want: ipv4::PROTO_ICMP,
            got: got.protocol(),
        });
    }
    let got_icmp = icmpv4::Packet::new_checked(got.payload()).map_err(Verdict::Malformed)?;
    check_icmp_header(&got_icmp, &want_icmp)?;
    check_ip_header(&got, &want)?;
    check_data(got_icmp.data(), want_icmp.data())?;
    check_checksums(&got, &got_icmp)
}

/// Fails with `verdict(got, want)` when the two differ.
fn same<T: PartialEq>(got: T, want: T, verdict: impl FnOnce(T, T) -> Verdict) -> Checked {
    if got == want {
        Ok(())
    } else {
        Err(verdict(got, want))
    }
}

/// Checks the source, then the destination address.
fn check_addresses(got: &ipv4::Packet<&[u8]>, want: &ipv4::Packet<&[u8]>) -> Checked {
    let address = |side| {
        move |got: std::net::Ipv4Addr, want: std::net::Ipv4Addr| Verdict::Address {
            side,
            got: got.into(),
            want: want.into(),
        }
    };
    same(got.src_addr(), want.src_addr(), address(Side::Source))?;
    same(got.dst_addr(), want.dst_addr(), address(Side::Destination))
}

/// Checks the ICMP type, code, identifier and sequence number.
fn check_icmp_header(got: &icmpv4::Packet<&[u8]>, want: &icmpv4::Packet<&[u8]>) -> Checked {
    same(got.msg_type(), want.msg_type(), |got, want| {
        Verdict::IcmpType { got, want }
    })?;
    same(got.code(), want.code(), |got, want| Verdict::IcmpCode {
        got,
        want,
    })?;
    same(got.echo_ident(), want.echo_ident(), |got, want| {
        Verdict::IcmpId { got, want }
    })?;
    same(got.echo_seq_no(), want.echo_seq_no(), |got, want| {
        Verdict::IcmpSeq { got, want }
    })
}

/// Checks the header length, total length, options, flags and TTL.
fn check_ip_header(got: &ipv4::Packet<&[u8]>, want: &ipv4::Packet<&[u8]>) -> Checked {
    same(got.header_len(), want.header_len(), |got, want| {
        Verdict::HeaderLength { got, want }
    })?;
    same(got.total_len(), want.total_len(), |got, want| {
        Verdict::Length { got, want }
    })?;
    if let Some(d) = first_difference(got.options(), want.options()) {
        return Err(Verdict::Options(d));
    }
    let not_df = |p: &ipv4::Packet<&[u8]>| p.flags_frag() & !ipv4::FLAG_DF;
    same(not_df(got), not_df(want), |got, want| Verdict::Flags {
        got,
        want,
    })?;
    if got.ttl() == 0 {
        return Err(Verdict::Ttl);
    }
    Ok(())
}

/// Checks the ICMP data byte for byte; the lengths are already known to agree.
fn check_data(got: &[u8], want: &[u8]) -> Checked {
    first_difference(got, want).map_or(Ok(()), |d| Err(Verdict::Payload(d)))
}

/// Checks the IPv4 header checksum, then the ICMP checksum, over the bytes sent.
fn check_checksums(got: &ipv4::Packet<&[u8]>, icmp: &icmpv4::Packet<&[u8]>) -> Checked {
    let verdict = |error| match error {
        wire::Error::BadIpChecksum { got, want } => Verdict::IpChecksum { got, want },
        wire::Error::BadIcmpChecksum { got, want } => Verdict::IcmpChecksum { got, want },
        other => Verdict::Malformed(other),
    };
    got.check_checksum().map_err(verdict)?;
    icmp.check_checksum().map_err(verdict)
}

/// Compares the reply with the reference once the kind's free fields are copied over: a
/// guard against a difference the named checks do not cover. Runs after them, so the
/// reply is known to have the reference's structure.
fn check_rest(kind: Kind, reply: &[u8], reference: &[u8]) -> Checked {
    let mut bytes = reply.to_vec();
    for field in kind.free_fields() {
        copy_free(field, &mut bytes, reference);
    }
    first_difference(&bytes, reference).map_or(Ok(()), |d| Err(Verdict::Reference(d)))
}

/// Copies one free field from the reference into the reply.
fn copy_free(field: FreeField, reply: &mut [u8], reference: &[u8]) {
    let want = ipv4::Packet::new_unchecked(reference);
    let mut got = ipv4::Packet::new_unchecked(reply);
    match field {
        FreeField::Ttl => got.set_ttl(want.ttl()),
        FreeField::IpIdent => got.set_ident(want.ident()),
        FreeField::DscpEcn => got.set_dscp_ecn(want.dscp_ecn()),
        FreeField::DontFrag => {
            let df = want.flags_frag() & ipv4::FLAG_DF;
            got.set_flags_frag(got.flags_frag() & !ipv4::FLAG_DF | df);
        }
        FreeField::IpChecksum => got.set_checksum(want.checksum()),
        FreeField::IcmpChecksum => {
            let sum = icmpv4::Packet::new_unchecked(want.payload()).checksum();
            icmpv4::Packet::new_unchecked(got.payload_mut()).set_checksum(sum);
        }
        // Fields of the other kinds, which `stack_check` judges.
        FreeField::TrafficClass
        | FreeField::FlowLabel
        | FreeField::QuoteLength
        | FreeField::Window
        | FreeField::UdpNoChecksum
        | FreeField::TransportChecksum => {}
    }
}

mod stack_check;

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
        let reply = Kind::Icmpv4Echo.reference(request)?;
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
            assert_eq!(
                judge_against(Kind::Icmpv4Echo, &want, &want),
                Verdict::Valid
            );
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
            "the request is owed no reply: not an echo request: ICMP type 0 code 0, want type 8 code 0"
        );
    }

    #[test]
    fn bad_reference() {
        assert_eq!(
            judge_against(Kind::Icmpv4Echo, &REPLY_56[..10], &REPLY_56).to_string(),
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
}
