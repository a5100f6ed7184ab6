//! The reference stack: what a small IP stack owes each request, built from the request
//! alone, and how a stack's own choices for the free fields change it.
//!
//! | request | owed |
//! |---|---|
//! | ICMPv4 echo request | echo reply (RFC 792; `wire::echo_reply`) |
//! | ICMPv6 echo request (128) | echo reply (129), checksum over the pseudo-header (RFC 4443 §4.2) |
//! | UDP to port 7, either family | UDP echo (RFC 862): ports swapped, the same data |
//! | UDP to any other port | port unreachable quoting the invoking packet (RFC 792, RFC 1812 §4.3.2.3; RFC 4443 §3.1, §2.4 (c)) |
//! | TCP segment without RST | a reset from a closed port (RFC 9293 §3.10.7.1) |
//! | anything else | silence, with the reason |
//!
//! [`owed`] builds the reference with the reference's own choices: TTL and hop limit 64;
//! a new IPv4 header has identification 0, DF clear and DSCP/ECN 0 (an ICMPv4 echo reply
//! keeps the request's); an IPv6 reply keeps the request's traffic class and flow label; an
//! error quotes as much as fits; a reset's window is 0. [`adopt`] gives the same reply with
//! a stack's choices for the fields RFC 791, 792, 1122, 4443, 6437 and 9293 leave free
//! ([`Choices`], read from its answer by [`Choices::of`]), so the judge compares an answer
//! byte for byte with the one reply that made the same choices, whatever its kind.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;

use crate::wire::ip::{self, Family, PseudoHeader};
use crate::wire::{self, icmpv4, icmpv6, ipv4, ipv6, tcp, udp};

/// The TTL and hop limit of every reference reply: Linux's default.
pub const REPLY_TTL: u8 = wire::REPLY_TTL;
/// The most an ICMPv4 error may take, IP header included (RFC 1812 §4.3.2.3).
pub const IPV4_ERROR_LIMIT: usize = 576;
/// The most an ICMPv6 error may take, IPv6 header included (RFC 4443 §2.4 (c)).
pub const IPV6_ERROR_LIMIT: usize = ipv6::MIN_MTU;
/// The bytes of the invoking datagram after its IP header an error quotes at least (RFC 792).
pub const MIN_QUOTED_DATA: usize = 8;
/// The length of an ICMP or ICMPv6 error's header before the quote.
const ERROR_HEADER_LEN: usize = icmpv4::HEADER_LEN;

/// Returns how many bytes of `invoking` an ICMP error of `family` may quote: at least
/// its IP header and 8 bytes (RFC 792), at most what keeps the error within 576 bytes
/// (RFC 1812 §4.3.2.3) or 1280 bytes (RFC 4443 §2.4 (c)); never more than it has.
pub fn quote_bounds(family: Family, invoking: &[u8]) -> RangeInclusive<usize> {
    let most = invoking.len().min(quote_limit(family));
    least_quote(family, invoking, most)..=most
}

/// The most an error of `family` quotes of a long packet.
fn quote_limit(family: Family) -> usize {
    match family {
        Family::Ipv4 => IPV4_ERROR_LIMIT - ipv4::MIN_HEADER_LEN - ERROR_HEADER_LEN,
        Family::Ipv6 => IPV6_ERROR_LIMIT - ipv6::HEADER_LEN - ERROR_HEADER_LEN,
    }
}

/// The least an error quotes of `quote` (at most `most` bytes): the IP header and 8 bytes.
fn least_quote(family: Family, quote: &[u8], most: usize) -> usize {
    let header_len = match family {
        Family::Ipv4 => quote
            .first()
            .map_or(ipv4::MIN_HEADER_LEN, |b| usize::from(b & 0x0f) * 4),
        Family::Ipv6 => ipv6::HEADER_LEN,
    };
    most.min(header_len + MIN_QUOTED_DATA)
}

/// Why a request is owed no reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Silence {
    /// Not one whole well-formed packet, or a header too short.
    Malformed(wire::Error),
    /// The version field is neither 4 nor 6.
    NotIp { version: u8 },
    /// A fragment: the stack reassembles nothing.
    Fragment,
    /// A checksum is wrong: a host drops the packet.
    BadChecksum(wire::Error),
    /// ICMP or ICMPv6 other than an echo request.
    OtherIcmp {
        family: Family,
        msg_type: u8,
        code: u8,
    },
    /// A TCP segment with RST: never answered (RFC 9293 §3.10.7.1).
    Reset,
    /// Another protocol, or an IPv6 extension header before the transport header.
    OtherProtocol { protocol: u8 },
    /// The source is unspecified, multicast or broadcast: no reply may go there.
    BadSource,
}

impl Silence {
    /// Returns the stable snake_case name of the reason.
    pub fn class(&self) -> &'static str {
        match self {
            Silence::Malformed(_) => "malformed",
            Silence::NotIp { .. } => "not_ip",
            Silence::Fragment => "fragment",
            Silence::BadChecksum(_) => "bad_checksum",
            Silence::OtherIcmp { .. } => "other_icmp",
            Silence::Reset => "tcp_rst",
            Silence::OtherProtocol { .. } => "other_protocol",
            Silence::BadSource => "bad_source",
        }
    }
}

impl fmt::Display for Silence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Silence::Malformed(e) => write!(f, "malformed: {e}"),
            Silence::NotIp { version } => write!(f, "not IP: version {version}"),
            Silence::Fragment => f.write_str("a fragment: only whole packets are answered"),
            Silence::BadChecksum(e) => write!(f, "{e}: a host drops it"),
            Silence::OtherIcmp {
                family,
                msg_type,
                code,
            } => {
                let name = if *family == Family::Ipv4 {
                    "ICMP"
                } else {
                    "ICMPv6"
                };
                write!(
                    f,
                    "{name} type {msg_type} code {code} is not an echo request"
                )
            }
            Silence::Reset => f.write_str("a TCP reset is never answered"),
            Silence::OtherProtocol { protocol } => {
                write!(f, "protocol {protocol} is not answered")
            }
            Silence::BadSource => f.write_str("the source is not a unicast address"),
        }
    }
}

impl std::error::Error for Silence {}

/// A stack's choices for the free fields; `None` or `false` keeps the reference's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Choices {
    /// IPv4 TTL or IPv6 hop limit (never 0).
    pub ttl: Option<u8>,
    /// IPv4 identification.
    pub ident: Option<u16>,
    /// IPv4 don't-fragment flag.
    pub dont_frag: Option<bool>,
    /// IPv4 DSCP/ECN or IPv6 traffic class.
    pub dscp_ecn: Option<u8>,
    /// IPv6 flow label.
    pub flow_label: Option<u32>,
    /// Bytes an ICMP error quotes (used when within the bounds).
    pub quote_len: Option<usize>,
    /// A reset's window.
    pub window: Option<u16>,
    /// A UDP checksum of 0 (none) over IPv4.
    pub udp_no_checksum: bool,
    /// 0xffff for an IPv4 header checksum of 0.
    pub ip_negative_zero: bool,
    /// 0xffff for an ICMP, ICMPv6 or TCP checksum of 0.
    pub negative_zero: bool,
}

impl Choices {
    /// Reads a stack's choices from its answer; fields it cannot read keep the reference's.
    /// A TTL of 0 is not a choice (the judge names it).
    pub fn of(answer: &[u8]) -> Choices {
        let mut c = Choices::default();
        if let Ok(ip) = ipv4::Packet::new_checked(answer) {
            c.ttl = Some(ip.ttl()).filter(|t| *t != 0);
            c.ident = Some(ip.ident());
            c.dont_frag = Some(ip.dont_frag());
            c.dscp_ecn = Some(ip.dscp_ecn());
            c.ip_negative_zero = ip.checksum() == 0xffff;
            c.read_transport(ip.protocol(), ip.payload());
        } else if let Ok(ip) = ipv6::Packet::new_checked(answer) {
            c.ttl = Some(ip.hop_limit()).filter(|t| *t != 0);
            c.dscp_ecn = Some(ip.traffic_class());
            c.flow_label = Some(ip.flow_label());
            c.read_transport(ip.next_header(), ip.payload());
        }
        c
    }

    /// Reads the transport header's free fields.
    fn read_transport(&mut self, protocol: u8, message: &[u8]) {
        match protocol {
            ip::PROTO_ICMP | ip::PROTO_ICMPV6 if message.len() >= ERROR_HEADER_LEN => {
                self.negative_zero = message[2..4] == [0xff, 0xff];
                if is_icmp_error(protocol, message[0]) {
                    self.quote_len = Some(message.len() - ERROR_HEADER_LEN);
                }
            }
            ip::PROTO_UDP if message.len() >= udp::HEADER_LEN => {
                self.udp_no_checksum = message[6..8] == [0, 0];
            }
            ip::PROTO_TCP => {
                if let Ok(seg) = tcp::Packet::new_checked(message) {
                    self.window = Some(seg.window());
                    self.negative_zero = seg.checksum() == 0xffff;
                }
            }
            _ => {}
        }
    }
}

/// Whether an ICMP (v4 type 3 and the like) or ICMPv6 (types below 128) message is an error.
fn is_icmp_error(protocol: u8, msg_type: u8) -> bool {
    match protocol {
        ip::PROTO_ICMPV6 => msg_type < 128,
        _ => matches!(msg_type, 3 | 4 | 5 | 11 | 12),
    }
}

/// Returns the reference reply `request` is owed, or why it is owed silence.
pub fn owed(request: &[u8]) -> Result<Vec<u8>, Silence> {
    match request.first().map(|b| b >> 4) {
        Some(4) => owed_v4(request),
        Some(6) => owed_v6(request),
        Some(version) => Err(Silence::NotIp { version }),
        None => Err(Silence::Malformed(wire::Error::TooShort {
            got: 0,
            want: ipv4::MIN_HEADER_LEN,
        })),
    }
}

/// Returns the reply `request` is owed with `choices` for the free fields.
pub fn owed_with(request: &[u8], choices: &Choices) -> Result<Vec<u8>, Silence> {
    Ok(adopt(&owed(request)?, choices))
}

/// The IP layer of the invoking packet (the request), as the transport builders need it.
struct Invoking<'a> {
    family: Family,
    /// The whole request packet.
    bytes: &'a [u8],
    /// The request's IP header (IPv6: the fixed header).
    header: &'a [u8],
    /// The bytes after the IP header.
    payload: &'a [u8],
    /// The request's pseudo-header; the reply's is the same swapped.
    pseudo: PseudoHeader,
}

fn owed_v4(request: &[u8]) -> Result<Vec<u8>, Silence> {
    let ip = ipv4::Packet::new_checked(request).map_err(Silence::Malformed)?;
    if ip.is_fragment() {
        return Err(Silence::Fragment);
    }
    ip.check_checksum().map_err(Silence::BadChecksum)?;
    let src = ip.src_addr();
    if src.is_unspecified() || src.is_multicast() || src == Ipv4Addr::BROADCAST {
        return Err(Silence::BadSource);
    }
    let req = Invoking {
        family: Family::Ipv4,
        bytes: request,
        header: ip.header(),
        payload: ip.payload(),
        pseudo: PseudoHeader::V4 {
            src,
            dst: ip.dst_addr(),
        },
    };
    match ip.protocol() {
        ip::PROTO_ICMP => icmp_echo(request),
        ip::PROTO_UDP => udp_reply(&req),
        ip::PROTO_TCP => tcp_reset(&req),
        protocol => Err(Silence::OtherProtocol { protocol }),
    }
}

fn owed_v6(request: &[u8]) -> Result<Vec<u8>, Silence> {
    let ip = ipv6::Packet::new_checked(request).map_err(Silence::Malformed)?;
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    if src.is_unspecified() || src.is_multicast() {
        return Err(Silence::BadSource);
    }
    let req = Invoking {
        family: Family::Ipv6,
        bytes: request,
        header: &request[..ipv6::HEADER_LEN],
        payload: ip.payload(),
        pseudo: PseudoHeader::V6 { src, dst },
    };
    match ip.next_header() {
        ip::PROTO_ICMPV6 => icmpv6_echo(&req, (src, dst)),
        ip::PROTO_UDP => udp_reply(&req),
        ip::PROTO_TCP => tcp_reset(&req),
        ip::PROTO_IPV6_FRAG => Err(Silence::Fragment),
        protocol => Err(Silence::OtherProtocol { protocol }),
    }
}

/// The ICMPv4 echo reply: `wire::echo_reply`.
fn icmp_echo(request: &[u8]) -> Result<Vec<u8>, Silence> {
    let bytes = wire::echo_reply(request).map_err(|e| match e {
        wire::Error::NotEchoRequest { msg_type, code } => Silence::OtherIcmp {
            family: Family::Ipv4,
            msg_type,
            code,
        },
        wire::Error::BadIcmpChecksum { .. } => Silence::BadChecksum(e),
        e => Silence::Malformed(e),
    })?;
    Ok(bytes)
}

/// The ICMPv6 echo reply: type 129, the rest of the message as it came.
fn icmpv6_echo(req: &Invoking, (src, dst): (Ipv6Addr, Ipv6Addr)) -> Result<Vec<u8>, Silence> {
    let icmp = icmpv6::Packet::new_checked(req.payload).map_err(Silence::Malformed)?;
    icmp.check_checksum(src, dst)
        .map_err(Silence::BadChecksum)?;
    if icmp.msg_type() != icmpv6::ECHO_REQUEST || icmp.code() != 0 {
        let (msg_type, code) = (icmp.msg_type(), icmp.code());
        return Err(Silence::OtherIcmp {
            family: Family::Ipv6,
            msg_type,
            code,
        });
    }
    let mut message = req.payload.to_vec();
    let mut echo = icmpv6::Packet::new_unchecked(&mut message[..]);
    echo.set_msg_type(icmpv6::ECHO_REPLY);
    echo.fill_checksum(dst, src);
    Ok(datagram(req, ip::PROTO_ICMPV6, &message))
}

/// UDP: an echo from port 7, port unreachable from any other.
fn udp_reply(req: &Invoking) -> Result<Vec<u8>, Silence> {
    let dgram = udp::Packet::new_checked(req.payload).map_err(Silence::Malformed)?;
    dgram
        .check_checksum(&req.pseudo)
        .map_err(Silence::BadChecksum)?;
    if dgram.dst_port() != udp::ECHO_PORT {
        return Ok(port_unreachable(req));
    }
    let mut message = req.payload.to_vec();
    let mut echo = udp::Packet::new_unchecked(&mut message[..]);
    echo.set_src_port(dgram.dst_port());
    echo.set_dst_port(dgram.src_port());
    echo.fill_checksum(&req.pseudo.swapped());
    Ok(datagram(req, ip::PROTO_UDP, &message))
}

/// Port unreachable (v4 type 3 code 3, v6 type 1 code 4) quoting as much of the request as fits.
fn port_unreachable(req: &Invoking) -> Vec<u8> {
    let quote = &req.bytes[..*quote_bounds(req.family, req.bytes).end()];
    let mut message = vec![0u8; ERROR_HEADER_LEN];
    message.extend_from_slice(quote);
    let (msg_type, code, protocol) = match req.family {
        Family::Ipv4 => (
            icmpv4::DST_UNREACHABLE,
            icmpv4::CODE_PORT_UNREACHABLE,
            ip::PROTO_ICMP,
        ),
        Family::Ipv6 => (
            icmpv6::DST_UNREACHABLE,
            icmpv6::CODE_PORT_UNREACHABLE,
            ip::PROTO_ICMPV6,
        ),
    };
    message[0] = msg_type;
    message[1] = code;
    fill_icmp_checksum(&req.pseudo.swapped(), protocol, &mut message);
    datagram(req, protocol, &message)
}

/// Fills the checksum of an ICMP message (no pseudo-header) or an ICMPv6 one (with it).
fn fill_icmp_checksum(pseudo: &PseudoHeader, protocol: u8, message: &mut [u8]) {
    match *pseudo {
        PseudoHeader::V6 { src, dst } if protocol == ip::PROTO_ICMPV6 => {
            icmpv6::Packet::new_unchecked(message).fill_checksum(src, dst)
        }
        _ => icmpv4::Packet::new_unchecked(message).fill_checksum(),
    }
}

/// The reset a closed port sends (RFC 9293 §3.10.7.1): to a segment with ACK,
/// `<SEQ=SEG.ACK><CTL=RST>`; to one without, `<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>`.
fn tcp_reset(req: &Invoking) -> Result<Vec<u8>, Silence> {
    let seg = tcp::Packet::new_checked(req.payload).map_err(Silence::Malformed)?;
    seg.check_checksum(&req.pseudo)
        .map_err(Silence::BadChecksum)?;
    if seg.has(tcp::FLAG_RST) {
        return Err(Silence::Reset);
    }
    let mut message = vec![0u8; tcp::MIN_HEADER_LEN];
    let mut rst = tcp::Packet::new_unchecked(&mut message[..]);
    rst.set_src_port(seg.dst_port());
    rst.set_dst_port(seg.src_port());
    rst.set_data_offset(5);
    if seg.has(tcp::FLAG_ACK) {
        rst.set_seq_number(seg.ack_number());
        rst.set_flags(tcp::FLAG_RST);
    } else {
        let ack = seg.seq_number().wrapping_add(seg.segment_len());
        rst.set_ack_number(ack);
        rst.set_flags(tcp::FLAG_RST | tcp::FLAG_ACK);
    }
    rst.fill_checksum(&req.pseudo.swapped());
    Ok(datagram(req, ip::PROTO_TCP, &message))
}

/// Wraps `message` in the reply's IP header: for IPv4 a new 20-byte header (ident 0,
/// DF clear, DSCP/ECN 0); for IPv6 the request's header with the addresses swapped.
/// TTL or hop limit 64.
fn datagram(req: &Invoking, protocol: u8, message: &[u8]) -> Vec<u8> {
    match req.pseudo {
        PseudoHeader::V4 { src, dst } => {
            let mut bytes = vec![0u8; ipv4::MIN_HEADER_LEN + message.len()];
            bytes[ipv4::MIN_HEADER_LEN..].copy_from_slice(message);
            let mut ip = ipv4::Packet::new_unchecked(&mut bytes[..]);
            ip.set_version_and_header_len(ipv4::MIN_HEADER_LEN);
            ip.set_total_len((ipv4::MIN_HEADER_LEN + message.len()) as u16);
            ip.set_ttl(REPLY_TTL);
            ip.set_protocol(protocol);
            ip.set_src_addr(dst);
            ip.set_dst_addr(src);
            ip.fill_checksum();
            bytes
        }
        PseudoHeader::V6 { src, dst } => {
            let mut bytes = req.header.to_vec();
            bytes.extend_from_slice(message);
            let mut ip = ipv6::Packet::new_unchecked(&mut bytes[..]);
            ip.set_payload_len(message.len() as u16);
            ip.set_next_header(protocol);
            ip.set_hop_limit(REPLY_TTL);
            ip.set_src_addr(dst);
            ip.set_dst_addr(src);
            bytes
        }
    }
}

/// Returns `reference` with `c`'s choices for the free fields, every length and
/// checksum made right again. A reference that is not a whole packet comes back as it is.
pub fn adopt(reference: &[u8], c: &Choices) -> Vec<u8> {
    let mut bytes = reference.to_vec();
    if let Ok(ip) = ipv4::Packet::new_checked(reference) {
        let pseudo = PseudoHeader::V4 {
            src: ip.src_addr(),
            dst: ip.dst_addr(),
        };
        let at = ip.header_len();
        adopt_transport(&mut bytes, at, ip.protocol(), &pseudo, Family::Ipv4, c);
        let total_len = bytes.len() as u16;
        let mut ip = ipv4::Packet::new_unchecked(&mut bytes[..]);
        ip.set_total_len(total_len);
        ip.set_ttl(c.ttl.unwrap_or(ip.ttl()));
        ip.set_ident(c.ident.unwrap_or(ip.ident()));
        if let Some(df) = c.dont_frag {
            let flags = ip.flags_frag() & !ipv4::FLAG_DF;
            ip.set_flags_frag(if df { flags | ipv4::FLAG_DF } else { flags });
        }
        ip.set_dscp_ecn(c.dscp_ecn.unwrap_or(ip.dscp_ecn()));
        ip.fill_checksum();
        if c.ip_negative_zero && ip.checksum() == 0 {
            ip.set_checksum(0xffff);
        }
    } else if let Ok(ip) = ipv6::Packet::new_checked(reference) {
        let pseudo = PseudoHeader::V6 {
            src: ip.src_addr(),
            dst: ip.dst_addr(),
        };
        let next_header = ip.next_header();
        adopt_transport(
            &mut bytes,
            ipv6::HEADER_LEN,
            next_header,
            &pseudo,
            Family::Ipv6,
            c,
        );
        let payload_len = (bytes.len() - ipv6::HEADER_LEN) as u16;
        let mut ip = ipv6::Packet::new_unchecked(&mut bytes[..]);
        ip.set_payload_len(payload_len);
        ip.set_hop_limit(c.ttl.unwrap_or(ip.hop_limit()));
        ip.set_traffic_class(c.dscp_ecn.unwrap_or(ip.traffic_class()));
        ip.set_flow_label(c.flow_label.unwrap_or(ip.flow_label()));
    }
    bytes
}

/// Applies the transport choices to the message at `at`: the quote's length, the window,
/// no UDP checksum, and the form of a zero checksum.
fn adopt_transport(
    bytes: &mut Vec<u8>,
    at: usize,
    protocol: u8,
    pseudo: &PseudoHeader,
    family: Family,
    c: &Choices,
) {
    let message_len = bytes.len() - at;
    let checksum_at = match protocol {
        ip::PROTO_ICMP | ip::PROTO_ICMPV6 if message_len >= ERROR_HEADER_LEN => {
            if is_icmp_error(protocol, bytes[at]) {
                let quote = &bytes[at + ERROR_HEADER_LEN..];
                let bounds = least_quote(family, quote, quote.len())..=quote.len();
                if let Some(len) = c.quote_len.filter(|len| bounds.contains(len)) {
                    bytes.truncate(at + ERROR_HEADER_LEN + len);
                    fill_icmp_checksum(pseudo, protocol, &mut bytes[at..]);
                }
            }
            2
        }
        ip::PROTO_UDP if message_len >= udp::HEADER_LEN => {
            if c.udp_no_checksum && family == Family::Ipv4 {
                bytes[at + 6..at + 8].copy_from_slice(&[0, 0]);
            }
            return;
        }
        ip::PROTO_TCP if message_len >= tcp::MIN_HEADER_LEN => {
            if let Some(window) = c.window {
                let mut seg = tcp::Packet::new_unchecked(&mut bytes[at..]);
                seg.set_window(window);
                seg.fill_checksum(pseudo);
            }
            16
        }
        _ => return,
    };
    let field = at + checksum_at..at + checksum_at + 2;
    if c.negative_zero && bytes[field.clone()] == [0, 0] {
        bytes[field].copy_from_slice(&[0xff, 0xff]);
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::wire::fixtures::*;

    /// Every pair of a request and the kernel's (or a Linux socket's) reply to it, with
    /// the family of both.
    fn kernel_pairs() -> impl Iterator<Item = (&'static [u8], &'static [u8], Family)> {
        let pairs = ECHO_PAIRS.into_iter().chain(KERNEL_PAIRS);
        pairs.map(|(request, reply)| (request, reply, Family::of(request).unwrap()))
    }

    /// The request of every kernel pair, and two to closed ports too big to quote whole.
    fn requests() -> Vec<Vec<u8>> {
        let mut requests: Vec<Vec<u8>> = kernel_pairs()
            .map(|(request, _, _)| request.to_vec())
            .collect();
        requests.push(big_closed(Family::Ipv4, 1000));
        requests.push(big_closed(Family::Ipv6, 1300));
        requests
    }

    #[test]
    fn matches_kernel_with_its_choices() {
        // With the kernel's own choices for the free fields, the reference is its reply
        // byte for byte: every other field is what Linux sends.
        for (request, kernel, family) in kernel_pairs() {
            let ours = owed_with(request, &Choices::of(kernel)).unwrap();
            assert_eq!(ours, kernel, "{family:?} {}", hex::encode(request));
        }
    }

    #[test]
    fn reference_differs_from_kernel_only_in_free_fields() {
        for (request, kernel, family) in kernel_pairs() {
            let ours = owed(request).unwrap();
            assert_eq!(
                ours.len(),
                kernel.len(),
                "{family:?} {}",
                hex::encode(request)
            );
            // The reference's own choices rebuild the reference.
            assert_eq!(owed_with(request, &Choices::of(&ours)).unwrap(), ours);
        }
    }

    #[test]
    fn transport_checksums_carry_over() {
        // Swapping addresses and ports leaves the sum unchanged: a UDP echo keeps the
        // request's checksum, and an ICMPv6 echo reply's is the request's plus 0x0100.
        for request in [&UDP4_ECHO_REQUEST[..], &UDP4_ECHO_REQUEST_3] {
            let ours = owed(request).unwrap();
            assert_eq!(ours[26..28], request[26..28]);
        }
        for request in [&UDP6_ECHO_REQUEST[..], &UDP6_ECHO_REQUEST_3] {
            let ours = owed(request).unwrap();
            assert_eq!(ours[46..48], request[46..48]);
        }
        let ours = owed(&ICMPV6_REQUEST_56).unwrap();
        let (old, new) = (
            ip::be16(&ICMPV6_REQUEST_56[42..44]),
            ip::be16(&ours[42..44]),
        );
        assert_eq!(new, old - 0x0100);
    }

    #[test]
    fn reset_to_a_segment_with_ack() {
        // An ACK to a closed port: <SEQ=SEG.ACK><CTL=RST>, no ACK flag.
        let mut request = TCP4_SYN.to_vec();
        request[33] = tcp::FLAG_ACK;
        request[28..32].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        refill_tcp4(&mut request);
        let ours = owed(&request).unwrap();
        let rst = tcp::Packet::new_checked(&ours[20..]).unwrap();
        assert_eq!(rst.flags(), tcp::FLAG_RST);
        assert_eq!(rst.seq_number(), 0x1234_5678);
        assert_eq!(rst.ack_number(), 0);
        // A SYN with data and FIN: ACK = SEG.SEQ + data + 2.
        let mut request = TCP4_SYN.to_vec();
        request.extend_from_slice(b"abc");
        request[33] = tcp::FLAG_SYN | tcp::FLAG_FIN;
        request[2..4].copy_from_slice(&63u16.to_be_bytes());
        refill_tcp4(&mut request);
        let ours = owed(&request).unwrap();
        let rst = tcp::Packet::new_checked(&ours[20..]).unwrap();
        assert_eq!(rst.ack_number(), 0x7758_0235 + 5);
    }

    fn refill_tcp4(request: &mut [u8]) {
        let mut ip = ipv4::Packet::new_checked(&mut request[..]).unwrap();
        ip.fill_checksum();
        let pseudo = PseudoHeader::V4 {
            src: ip.src_addr(),
            dst: ip.dst_addr(),
        };
        tcp::Packet::new_checked(ip.payload_mut())
            .unwrap()
            .fill_checksum(&pseudo);
    }

    /// A UDP datagram to closed port 9 with `data_len` data bytes, both checksums right.
    fn big_closed(family: Family, data_len: usize) -> Vec<u8> {
        let (template, at) = match family {
            Family::Ipv4 => (&UDP4_CLOSED[..], 20),
            Family::Ipv6 => (&UDP6_CLOSED[..], 40),
        };
        let mut bytes = template[..at + 8].to_vec();
        bytes.extend((0..data_len).map(|i| i as u8));
        let udp_len = (8 + data_len) as u16;
        bytes[at + 4..at + 6].copy_from_slice(&udp_len.to_be_bytes());
        let pseudo = match family {
            Family::Ipv4 => {
                let total = bytes.len() as u16;
                let mut ip = ipv4::Packet::new_unchecked(&mut bytes[..]);
                ip.set_total_len(total);
                ip.fill_checksum();
                PseudoHeader::V4 {
                    src: ip.src_addr(),
                    dst: ip.dst_addr(),
                }
            }
            Family::Ipv6 => {
                let mut ip = ipv6::Packet::new_unchecked(&mut bytes[..]);
                ip.set_payload_len(udp_len);
                PseudoHeader::V6 {
                    src: ip.src_addr(),
                    dst: ip.dst_addr(),
                }
            }
        };
        udp::Packet::new_checked(&mut bytes[at..])
            .unwrap()
            .fill_checksum(&pseudo);
        bytes
    }

    #[test]
    fn quotes_within_the_rfc_bounds() {
        // IPv4: the error stays within 576 bytes (548 quoted); IPv6: within 1280 (1232).
        let v4 = big_closed(Family::Ipv4, 1000);
        assert_eq!(quote_bounds(Family::Ipv4, &v4), 28..=548);
        let ours = owed(&v4).unwrap();
        assert_eq!(ours.len(), 576);
        assert_eq!(&ours[28..], &v4[..548]);
        let v6 = big_closed(Family::Ipv6, 1300);
        assert_eq!(quote_bounds(Family::Ipv6, &v6), 48..=1232);
        let ours = owed(&v6).unwrap();
        assert_eq!(ours.len(), 1280);
        assert_eq!(&ours[48..], &v6[..1232]);
        // A shorter quote within the bounds is a choice; outside them it is not.
        let short = Choices {
            quote_len: Some(48),
            ..Choices::default()
        };
        assert_eq!(owed_with(&v6, &short).unwrap().len(), 48 + 48);
        let too_short = Choices {
            quote_len: Some(47),
            ..Choices::default()
        };
        assert_eq!(owed_with(&v6, &too_short).unwrap().len(), 1280);
        // A packet shorter than header + 8 is quoted whole.
        assert_eq!(quote_bounds(Family::Ipv4, &[0x45; 24]), 24..=24);
    }

    #[test]
    fn replies_verify() {
        for (request, _, _) in kernel_pairs() {
            let ours = owed(request).unwrap();
            assert_checksums(&ours);
        }
        assert_checksums(&owed(&big_closed(Family::Ipv4, 1000)).unwrap());
        assert_checksums(&owed(&big_closed(Family::Ipv6, 1300)).unwrap());
    }

    fn assert_checksums(reply: &[u8]) {
        if let Ok(ip) = ipv4::Packet::new_checked(reply) {
            assert!(ip.verify_checksum());
            let pseudo = PseudoHeader::V4 {
                src: ip.src_addr(),
                dst: ip.dst_addr(),
            };
            match ip.protocol() {
                ip::PROTO_ICMP => assert_eq!(crate::wire::checksum::checksum(ip.payload()), 0),
                protocol => assert!(pseudo.verifies(protocol, ip.payload())),
            }
        } else {
            let ip = ipv6::Packet::new_checked(reply).unwrap();
            let pseudo = PseudoHeader::V6 {
                src: ip.src_addr(),
                dst: ip.dst_addr(),
            };
            assert!(pseudo.verifies(ip.next_header(), ip.payload()));
        }
    }

    #[test]
    fn silence() {
        let mut bad_udp = UDP4_ECHO_REQUEST.to_vec();
        bad_udp[30] ^= 1;
        let mut bad_icmpv6 = ICMPV6_REQUEST_56.to_vec();
        bad_icmpv6[60] ^= 1;
        let mut bad_tcp = TCP6_SYN.to_vec();
        bad_tcp[50] ^= 1;
        let mut gre = REQUEST_56.to_vec();
        gre[9] = 47;
        ipv4::Packet::new_unchecked(&mut gre[..]).fill_checksum();
        let mut zero_udp6 = UDP6_ECHO_REQUEST.to_vec();
        zero_udp6[46..48].copy_from_slice(&[0, 0]);
        let cases: Vec<(&[u8], &str)> = vec![
            (&TCP4_RST, "tcp_rst"),
            (&TCP6_RST, "tcp_rst"),
            (&REPLY_56, "other_icmp"),
            (&ICMPV6_REPLY_56, "other_icmp"),
            (&UDP4_PORT_UNREACHABLE, "other_icmp"),
            (&UDP6_PORT_UNREACHABLE, "other_icmp"),
            (&ICMPV6_ROUTER_SOLICIT, "other_icmp"),
            (&ICMPV6_NEIGHBOR_SOLICIT, "bad_source"),
            (&IPV6_MLD_REPORT, "bad_source"),
            (&gre, "other_protocol"),
            (&UDP4_FRAGMENT, "fragment"),
            (&IPV6_FRAGMENT, "fragment"),
            (&bad_udp, "bad_checksum"),
            (&bad_icmpv6, "bad_checksum"),
            (&bad_tcp, "bad_checksum"),
            (&zero_udp6, "bad_checksum"),
            (&UDP4_CLOSED[..30], "malformed"),
            (&ICMPV6_REQUEST_56[..50], "malformed"),
            (&[], "malformed"),
            (&[0x20; 40], "not_ip"),
        ];
        for (request, class) in cases {
            let silence = owed(request).unwrap_err();
            assert_eq!(silence.class(), class, "{silence}");
            assert!(!silence.to_string().contains('\n'));
        }
    }

    #[test]
    fn udp_checksum_none_over_ipv4() {
        // A request without a checksum is answered; the reply may carry none either.
        let mut request = UDP4_ECHO_REQUEST.to_vec();
        request[26..28].copy_from_slice(&[0, 0]);
        let ours = owed(&request).unwrap();
        assert_eq!(ours[26..28], UDP4_ECHO_REQUEST[26..28]);
        let mut none = ours.clone();
        none[26..28].copy_from_slice(&[0, 0]);
        assert!(Choices::of(&none).udp_no_checksum);
        assert_eq!(owed_with(&request, &Choices::of(&none)).unwrap(), none);
    }

    #[test]
    fn choices_of_garbage_are_the_reference() {
        for bytes in [&[][..], &[0x45], &[0x60; 39], &REQUEST_56[..50]] {
            assert_eq!(Choices::of(bytes), Choices::default());
        }
        let mut ttl0 = REPLY_56.to_vec();
        ttl0[8] = 0;
        assert_eq!(Choices::of(&ttl0).ttl, None);
    }

    #[test]
    fn python_dry_run_stack_agrees() {
        // harness/model/stack.py builds replies the way prompts/ip-stack.md says,
        // shortcuts included; with no choices of its own it must build the reference.
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        for request in requests() {
            let out = std::process::Command::new("python3")
                .args(["-m", "harness.model.stack"])
                .current_dir(root)
                .arg(hex::encode(&request))
                .output()
                .expect("python3");
            let stdout = String::from_utf8(out.stdout).unwrap();
            let reply = stdout.lines().nth(1).expect(&stdout);
            assert_eq!(reply, hex::encode(owed(&request).unwrap()), "{stdout}");
        }
        for silent in [
            &TCP4_RST[..],
            &ICMPV6_ROUTER_SOLICIT,
            &IPV6_FRAGMENT,
            &UDP4_FRAGMENT,
        ] {
            let out = std::process::Command::new("python3")
                .args(["-m", "harness.model.stack"])
                .current_dir(root)
                .arg(hex::encode(silent))
                .output()
                .expect("python3");
            let stdout = String::from_utf8(out.stdout).unwrap();
            assert_eq!(stdout.lines().count(), 1, "{stdout}");
            assert!(stdout.contains("silence"), "{stdout}");
        }
    }

    /// Checks a reply's checksums with etherparse: an oracle that shares no code with ours.
    fn etherparse_checks(reply: &[u8]) {
        use etherparse::{Icmpv4Header, NetSlice, SlicedPacket, TransportSlice};
        let packet = SlicedPacket::from_ip(reply).expect("etherparse parses the reply");
        let (src, dst): (Vec<u8>, Vec<u8>) = match &packet.net {
            Some(NetSlice::Ipv4(ip)) => {
                let header = ip.header();
                assert_eq!(
                    header.to_header().calc_header_checksum(),
                    header.header_checksum()
                );
                (header.source().to_vec(), header.destination().to_vec())
            }
            Some(NetSlice::Ipv6(ip)) => {
                let header = ip.header();
                (header.source().to_vec(), header.destination().to_vec())
            }
            _ => panic!("not IP"),
        };
        let v4 = |a: &[u8]| <[u8; 4]>::try_from(a).unwrap();
        let v6 = |a: &[u8]| <[u8; 16]>::try_from(a).unwrap();
        match packet.transport.expect("a transport header") {
            TransportSlice::Icmpv4(icmp) => {
                let want = Icmpv4Header::with_checksum(icmp.icmp_type(), icmp.payload());
                assert_eq!(want.checksum, icmp.checksum());
            }
            TransportSlice::Icmpv6(icmp) => {
                assert!(icmp.is_checksum_valid(v6(&src), v6(&dst)));
            }
            TransportSlice::Udp(udp) => {
                let header = udp.to_header();
                let want = match src.len() {
                    4 => header.calc_checksum_ipv4_raw(v4(&src), v4(&dst), udp.payload()),
                    _ => header.calc_checksum_ipv6_raw(v6(&src), v6(&dst), udp.payload()),
                };
                assert_eq!(want.unwrap(), udp.checksum());
            }
            TransportSlice::Tcp(tcp) => {
                let want = match src.len() {
                    4 => tcp.calc_checksum_ipv4(v4(&src), v4(&dst)),
                    _ => tcp.calc_checksum_ipv6(v6(&src), v6(&dst)),
                };
                assert_eq!(want.unwrap(), tcp.checksum());
                assert!(tcp.rst());
            }
        }
    }

    #[test]
    fn etherparse_agrees() {
        for request in requests() {
            etherparse_checks(&owed(&request).unwrap());
        }
    }
}
