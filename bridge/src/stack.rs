//! The reference stack: what a small IP stack owes each request, built from the request
//! alone, and which fields of that reply a stack may choose for itself.
//!
//! | request | owed |
//! |---|---|
//! | ICMPv4 echo request | echo reply (RFC 792; `wire::echo_reply`) |
//! | ICMPv6 echo request (128) | echo reply (129), checksum over the pseudo-header (RFC 4443 §4.2) |
//! | UDP to port 7, either family | UDP echo (RFC 862): ports swapped, the same data |
//! | UDP to any other port | port unreachable quoting the invoking packet (RFC 792 / RFC 1812 §4.3.2.3; RFC 4443 §3.1, §2.4 (c)) |
//! | TCP segment without RST | a reset from a closed port (RFC 9293 §3.10.7.1) |
//! | anything else | silence, with the reason |
//!
//! Every reply is judged exactly except for the fields `free_fields` names. `owed_with`
//! builds the reference with a stack's choices for those fields (taken from its answer
//! by `Choices::of`), so a judge compares an answer with the one reply that has the
//! same choices, byte for byte.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;

use crate::wire::ip::{self, PseudoHeader};
use crate::wire::{self, icmpv4, icmpv6, ipv4, ipv6, tcp, udp};

/// The TTL and hop limit of every reference reply: Linux's default.
pub const REPLY_TTL: u8 = wire::REPLY_TTL;
/// The most an ICMPv4 error may take, IP header included (RFC 1812 §4.3.2.3).
pub const IPV4_ERROR_LIMIT: usize = 576;
/// The most an ICMPv6 error may take, IPv6 header included (RFC 4443 §2.4 (c)).
pub const IPV6_ERROR_LIMIT: usize = ipv6::MIN_MTU;
/// The bytes of the invoking datagram after its IP header an error quotes at least (RFC 792).
pub const MIN_QUOTED_DATA: usize = 8;

/// The address family of a request and its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

/// The kind of request a reply answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// ICMPv4 echo request, answered with an echo reply.
    IcmpEcho,
    /// ICMPv6 echo request, answered with an echo reply.
    Icmpv6Echo,
    /// UDP to the echo port, answered with the same data.
    UdpEcho,
    /// UDP to a closed port, answered with port unreachable.
    UdpClosed,
    /// A TCP segment without RST, answered with a reset.
    TcpReset,
}

impl Kind {
    /// Returns the stable snake_case name of the kind.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::IcmpEcho => "icmp_echo",
            Kind::Icmpv6Echo => "icmpv6_echo",
            Kind::UdpEcho => "udp_echo",
            Kind::UdpClosed => "udp_closed",
            Kind::TcpReset => "tcp_reset",
        }
    }
}

/// A field of a reply that a stack may choose for itself; every other field is judged exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreeField {
    /// IPv4 TTL or IPv6 hop limit: any value but 0.
    Ttl,
    /// IPv4 identification.
    Ident,
    /// IPv4 don't-fragment flag.
    DontFrag,
    /// IPv4 DSCP/ECN or IPv6 traffic class.
    DscpEcn,
    /// IPv6 flow label (RFC 6437: the source chooses it).
    FlowLabel,
    /// How much of the invoking packet an ICMP error quotes, within `quote_bounds`.
    QuoteLength,
    /// The window of a reset (RFC 9293 leaves it open; Linux sends 0).
    Window,
    /// A UDP checksum of 0 over IPv4: none computed (RFC 768).
    UdpNoChecksum,
    /// 0xffff for a checksum that computes to 0x0000 (both are zero in one's complement).
    NegativeZero,
}

impl FreeField {
    /// Returns the stable snake_case name of the field.
    pub fn name(&self) -> &'static str {
        match self {
            FreeField::Ttl => "ttl",
            FreeField::Ident => "ident",
            FreeField::DontFrag => "dont_frag",
            FreeField::DscpEcn => "dscp_ecn",
            FreeField::FlowLabel => "flow_label",
            FreeField::QuoteLength => "quote_length",
            FreeField::Window => "window",
            FreeField::UdpNoChecksum => "udp_no_checksum",
            FreeField::NegativeZero => "negative_zero",
        }
    }
}

/// Returns the fields a stack may choose in its reply to a request of `kind` and `family`.
pub fn free_fields(kind: Kind, family: Family) -> Vec<FreeField> {
    use FreeField::*;
    let mut fields = match family {
        Family::V4 => vec![Ttl, Ident, DontFrag, DscpEcn],
        Family::V6 => vec![Ttl, DscpEcn, FlowLabel],
    };
    match (kind, family) {
        (Kind::UdpEcho, Family::V4) => fields.push(UdpNoChecksum),
        (Kind::UdpEcho, Family::V6) => {}
        (Kind::UdpClosed, _) => fields.extend([QuoteLength, NegativeZero]),
        (Kind::TcpReset, _) => fields.extend([Window, NegativeZero]),
        (Kind::IcmpEcho | Kind::Icmpv6Echo, _) => fields.push(NegativeZero),
    }
    fields
}

/// Returns how many bytes of `invoking` an ICMP error of `family` may quote: at least
/// its IP header and 8 bytes (RFC 792), at most what keeps the error within 576 bytes
/// (RFC 1812 §4.3.2.3) or 1280 bytes (RFC 4443 §2.4 (c)); never more than it has.
pub fn quote_bounds(family: Family, invoking: &[u8]) -> RangeInclusive<usize> {
    let (header_len, limit, error_headers) = match family {
        Family::V4 => {
            let ihl = invoking.first().map_or(5, |b| usize::from(b & 0x0f));
            (ihl * 4, IPV4_ERROR_LIMIT, ipv4::MIN_HEADER_LEN)
        }
        Family::V6 => (ipv6::HEADER_LEN, IPV6_ERROR_LIMIT, ipv6::HEADER_LEN),
    };
    let len = invoking.len();
    let most = len.min(limit - error_headers - icmpv4::HEADER_LEN);
    let least = len.min(header_len + MIN_QUOTED_DATA).min(most);
    least..=most
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
                let name = if *family == Family::V4 {
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

/// The reply a request is owed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// What kind of request it answers.
    pub kind: Kind,
    /// The family of request and reply.
    pub family: Family,
    /// The whole reply packet.
    pub bytes: Vec<u8>,
}

/// A stack's choices for the free fields; `None` or `false` takes the reference's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Choices {
    pub ttl: Option<u8>,
    pub ident: Option<u16>,
    pub dont_frag: Option<bool>,
    pub dscp_ecn: Option<u8>,
    pub flow_label: Option<u32>,
    pub quote_len: Option<usize>,
    pub window: Option<u16>,
    pub udp_no_checksum: bool,
    pub ip_negative_zero: bool,
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
            ip::PROTO_ICMP | ip::PROTO_ICMPV6 if message.len() >= icmpv4::HEADER_LEN => {
                self.negative_zero = message[2..4] == [0xff, 0xff];
                if message[0] < 128 {
                    self.quote_len = Some(message.len() - icmpv4::HEADER_LEN);
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

/// Returns the reference reply `request` is owed, or why it is owed silence.
pub fn owed(request: &[u8]) -> Result<Reply, Silence> {
    owed_with(request, &Choices::default())
}

/// Returns the reply `request` is owed with `choices` for the free fields.
pub fn owed_with(request: &[u8], choices: &Choices) -> Result<Reply, Silence> {
    match request.first().map(|b| b >> 4) {
        Some(4) => owed_v4(request, choices),
        Some(6) => owed_v6(request, choices),
        Some(version) => Err(Silence::NotIp { version }),
        None => Err(Silence::Malformed(wire::Error::TooShort {
            got: 0,
            want: ipv4::MIN_HEADER_LEN,
        })),
    }
}

/// The IP layer of a request, as the transport builders need it.
struct Request<'a> {
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

fn owed_v4(request: &[u8], c: &Choices) -> Result<Reply, Silence> {
    let ip = ipv4::Packet::new_checked(request).map_err(Silence::Malformed)?;
    if ip.is_fragment() {
        return Err(Silence::Fragment);
    }
    if !ip.verify_checksum() {
        let (got, want) = (ip.checksum(), ip.compute_checksum());
        return Err(Silence::BadChecksum(wire::Error::BadIpChecksum {
            got,
            want,
        }));
    }
    let src = ip.src_addr();
    if src.is_unspecified() || src.is_multicast() || src == Ipv4Addr::BROADCAST {
        return Err(Silence::BadSource);
    }
    let req = Request {
        family: Family::V4,
        bytes: request,
        header: ip.header(),
        payload: ip.payload(),
        pseudo: PseudoHeader::V4 {
            src,
            dst: ip.dst_addr(),
        },
    };
    match ip.protocol() {
        ip::PROTO_ICMP => icmp_echo(request, c),
        ip::PROTO_UDP => udp_reply(&req, c),
        ip::PROTO_TCP => tcp_reset(&req, c),
        protocol => Err(Silence::OtherProtocol { protocol }),
    }
}

fn owed_v6(request: &[u8], c: &Choices) -> Result<Reply, Silence> {
    let ip = ipv6::Packet::new_checked(request).map_err(Silence::Malformed)?;
    let src = ip.src_addr();
    if src.is_unspecified() || src.is_multicast() {
        return Err(Silence::BadSource);
    }
    let req = Request {
        family: Family::V6,
        bytes: request,
        header: &request[..ipv6::HEADER_LEN],
        payload: ip.payload(),
        pseudo: PseudoHeader::V6 {
            src,
            dst: ip.dst_addr(),
        },
    };
    match ip.next_header() {
        ip::PROTO_ICMPV6 => icmpv6_echo(&req, (src, ip.dst_addr()), c),
        ip::PROTO_UDP => udp_reply(&req, c),
        ip::PROTO_TCP => tcp_reset(&req, c),
        ip::PROTO_IPV6_FRAG => Err(Silence::Fragment),
        protocol => Err(Silence::OtherProtocol { protocol }),
    }
}

/// The ICMPv4 echo reply: `wire::echo_reply` with the choices applied.
fn icmp_echo(request: &[u8], c: &Choices) -> Result<Reply, Silence> {
    let mut bytes = wire::echo_reply(request).map_err(|e| match e {
        wire::Error::NotEchoRequest { msg_type, code } => Silence::OtherIcmp {
            family: Family::V4,
            msg_type,
            code,
        },
        wire::Error::BadIcmpChecksum { .. } => Silence::BadChecksum(e),
        e => Silence::Malformed(e),
    })?;
    let mut ip = ipv4::Packet::new_unchecked(&mut bytes[..]);
    let mut icmp = icmpv4::Packet::new_unchecked(ip.payload_mut());
    if c.negative_zero && icmp.checksum() == 0 {
        icmp.set_checksum(0xffff);
    }
    apply_v4(&mut ip, c);
    Ok(reply(Kind::IcmpEcho, Family::V4, bytes))
}

/// The ICMPv6 echo reply: type 129, the rest of the message as it came.
fn icmpv6_echo(
    req: &Request,
    (src, dst): (Ipv6Addr, Ipv6Addr),
    c: &Choices,
) -> Result<Reply, Silence> {
    let icmp = icmpv6::Packet::new_checked(req.payload).map_err(Silence::Malformed)?;
    if !icmp.verify_checksum(src, dst) {
        return Err(bad_checksum(
            "ICMPv6",
            icmp.checksum(),
            icmp.compute_checksum(src, dst),
        ));
    }
    if icmp.msg_type() != icmpv6::ECHO_REQUEST || icmp.code() != 0 {
        let (msg_type, code) = (icmp.msg_type(), icmp.code());
        return Err(Silence::OtherIcmp {
            family: Family::V6,
            msg_type,
            code,
        });
    }
    let mut message = req.payload.to_vec();
    let mut echo = icmpv6::Packet::new_unchecked(&mut message[..]);
    echo.set_msg_type(icmpv6::ECHO_REPLY);
    echo.fill_checksum(dst, src);
    negative_zero(&mut message, 2, c);
    Ok(reply(
        Kind::Icmpv6Echo,
        Family::V6,
        datagram(req, ip::PROTO_ICMPV6, &message, c),
    ))
}

/// UDP: an echo from port 7, port unreachable from any other.
fn udp_reply(req: &Request, c: &Choices) -> Result<Reply, Silence> {
    let dgram = udp::Packet::new_checked(req.payload).map_err(Silence::Malformed)?;
    if !dgram.verify_checksum(&req.pseudo) {
        return Err(bad_checksum(
            "UDP",
            dgram.checksum(),
            dgram.compute_checksum(&req.pseudo),
        ));
    }
    if dgram.dst_port() != udp::ECHO_PORT {
        return port_unreachable(req, c);
    }
    let mut message = req.payload.to_vec();
    let mut echo = udp::Packet::new_unchecked(&mut message[..]);
    echo.set_src_port(dgram.dst_port());
    echo.set_dst_port(dgram.src_port());
    echo.fill_checksum(&req.pseudo.swapped());
    if c.udp_no_checksum && req.family == Family::V4 {
        echo.set_checksum(0);
    }
    Ok(reply(
        Kind::UdpEcho,
        req.family,
        datagram(req, ip::PROTO_UDP, &message, c),
    ))
}

/// Port unreachable (v4 type 3 code 3, v6 type 1 code 4) quoting the invoking packet.
fn port_unreachable(req: &Request, c: &Choices) -> Result<Reply, Silence> {
    let bounds = quote_bounds(req.family, req.bytes);
    let quote_len = c
        .quote_len
        .filter(|len| bounds.contains(len))
        .unwrap_or(*bounds.end());
    let mut message = vec![0u8; icmpv4::HEADER_LEN + quote_len];
    message[icmpv4::HEADER_LEN..].copy_from_slice(&req.bytes[..quote_len]);
    let protocol = match req.pseudo {
        PseudoHeader::V4 { .. } => {
            let mut icmp = icmpv4::Packet::new_unchecked(&mut message[..]);
            icmp.set_msg_type(icmpv4::DST_UNREACHABLE);
            icmp.set_code(icmpv4::CODE_PORT_UNREACHABLE);
            icmp.fill_checksum();
            ip::PROTO_ICMP
        }
        PseudoHeader::V6 { src, dst } => {
            let mut icmp = icmpv6::Packet::new_unchecked(&mut message[..]);
            icmp.set_msg_type(icmpv6::DST_UNREACHABLE);
            icmp.set_code(icmpv6::CODE_PORT_UNREACHABLE);
            icmp.fill_checksum(dst, src);
            ip::PROTO_ICMPV6
        }
    };
    negative_zero(&mut message, 2, c);
    Ok(reply(
        Kind::UdpClosed,
        req.family,
        datagram(req, protocol, &message, c),
    ))
}

/// The reset a closed port sends (RFC 9293 §3.10.7.1): to a segment with ACK,
/// `<SEQ=SEG.ACK><CTL=RST>`; to one without, `<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>`.
fn tcp_reset(req: &Request, c: &Choices) -> Result<Reply, Silence> {
    let seg = tcp::Packet::new_checked(req.payload).map_err(Silence::Malformed)?;
    if !seg.verify_checksum(&req.pseudo) {
        return Err(bad_checksum(
            "TCP",
            seg.checksum(),
            seg.compute_checksum(&req.pseudo),
        ));
    }
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
    rst.set_window(c.window.unwrap_or(0));
    rst.fill_checksum(&req.pseudo.swapped());
    negative_zero(&mut message, 16, c);
    Ok(reply(
        Kind::TcpReset,
        req.family,
        datagram(req, ip::PROTO_TCP, &message, c),
    ))
}

/// Wraps `message` in the reply's IP header: for IPv4 a new 20-byte header (ident 0,
/// DF clear, DSCP/ECN 0 unless chosen); for IPv6 the request's header with the
/// addresses swapped. TTL or hop limit 64 unless chosen.
fn datagram(req: &Request, protocol: u8, message: &[u8], c: &Choices) -> Vec<u8> {
    match req.pseudo {
        PseudoHeader::V4 { src, dst } => {
            let mut bytes = vec![0u8; ipv4::MIN_HEADER_LEN + message.len()];
            bytes[ipv4::MIN_HEADER_LEN..].copy_from_slice(message);
            let mut ip = ipv4::Packet::new_unchecked(&mut bytes[..]);
            ip.set_version_and_header_len(ipv4::MIN_HEADER_LEN);
            ip.set_total_len((ipv4::MIN_HEADER_LEN + message.len()) as u16);
            ip.set_protocol(protocol);
            ip.set_src_addr(dst);
            ip.set_dst_addr(src);
            apply_v4(&mut ip, c);
            bytes
        }
        PseudoHeader::V6 { src, dst } => {
            let mut bytes = req.header.to_vec();
            bytes.extend_from_slice(message);
            let mut ip = ipv6::Packet::new_unchecked(&mut bytes[..]);
            ip.set_payload_len(message.len() as u16);
            ip.set_next_header(protocol);
            ip.set_hop_limit(c.ttl.unwrap_or(REPLY_TTL));
            ip.set_src_addr(dst);
            ip.set_dst_addr(src);
            if let Some(tc) = c.dscp_ecn {
                ip.set_traffic_class(tc);
            }
            if let Some(label) = c.flow_label {
                ip.set_flow_label(label);
            }
            bytes
        }
    }
}

/// Applies the IPv4 choices (TTL, ident, DF, DSCP/ECN) and refills the header checksum.
fn apply_v4(ip: &mut ipv4::Packet<&mut [u8]>, c: &Choices) {
    ip.set_ttl(c.ttl.unwrap_or(REPLY_TTL));
    if let Some(ident) = c.ident {
        ip.set_ident(ident);
    }
    if let Some(df) = c.dont_frag {
        let flags = ip.flags_frag() & !ipv4::FLAG_DF;
        ip.set_flags_frag(if df { flags | ipv4::FLAG_DF } else { flags });
    }
    if let Some(tos) = c.dscp_ecn {
        ip.set_dscp_ecn(tos);
    }
    ip.fill_checksum();
    if c.ip_negative_zero && ip.checksum() == 0 {
        ip.set_checksum(0xffff);
    }
}

/// Writes 0xffff for a transport checksum of 0x0000 at `at` when the stack chose that form.
fn negative_zero(message: &mut [u8], at: usize, c: &Choices) {
    if c.negative_zero && message[at..at + 2] == [0, 0] {
        message[at..at + 2].copy_from_slice(&[0xff, 0xff]);
    }
}

fn bad_checksum(header: &'static str, got: u16, want: u16) -> Silence {
    Silence::BadChecksum(wire::Error::BadChecksum { header, got, want })
}

fn reply(kind: Kind, family: Family, bytes: Vec<u8>) -> Reply {
    Reply {
        kind,
        family,
        bytes,
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::wire::fixtures::*;

    /// Every pair of a request and the kernel's (or a Linux socket's) reply to it.
    fn kernel_pairs() -> Vec<(&'static [u8], &'static [u8], Kind, Family)> {
        vec![
            (&REQUEST_56, &REPLY_56, Kind::IcmpEcho, Family::V4),
            (&REQUEST_0, &REPLY_0, Kind::IcmpEcho, Family::V4),
            (&REQUEST_57, &REPLY_57, Kind::IcmpEcho, Family::V4),
            (
                &ICMPV6_REQUEST_56,
                &ICMPV6_REPLY_56,
                Kind::Icmpv6Echo,
                Family::V6,
            ),
            (
                &ICMPV6_REQUEST_0,
                &ICMPV6_REPLY_0,
                Kind::Icmpv6Echo,
                Family::V6,
            ),
            (
                &ICMPV6_REQUEST_57,
                &ICMPV6_REPLY_57,
                Kind::Icmpv6Echo,
                Family::V6,
            ),
            (
                &UDP4_ECHO_REQUEST,
                &UDP4_ECHO_REPLY,
                Kind::UdpEcho,
                Family::V4,
            ),
            (
                &UDP4_ECHO_REQUEST_3,
                &UDP4_ECHO_REPLY_3,
                Kind::UdpEcho,
                Family::V4,
            ),
            (
                &UDP6_ECHO_REQUEST,
                &UDP6_ECHO_REPLY,
                Kind::UdpEcho,
                Family::V6,
            ),
            (
                &UDP6_ECHO_REQUEST_3,
                &UDP6_ECHO_REPLY_3,
                Kind::UdpEcho,
                Family::V6,
            ),
            (
                &UDP4_CLOSED,
                &UDP4_PORT_UNREACHABLE,
                Kind::UdpClosed,
                Family::V4,
            ),
            (
                &UDP6_CLOSED,
                &UDP6_PORT_UNREACHABLE,
                Kind::UdpClosed,
                Family::V6,
            ),
            (&TCP4_SYN, &TCP4_RST, Kind::TcpReset, Family::V4),
            (&TCP6_SYN, &TCP6_RST, Kind::TcpReset, Family::V6),
        ]
    }

    #[test]
    fn matches_kernel_with_its_choices() {
        // With the kernel's own choices for the free fields, the reference is its reply
        // byte for byte: every other field is what Linux sends.
        for (request, kernel, kind, family) in kernel_pairs() {
            let ours = owed_with(request, &Choices::of(kernel)).unwrap();
            assert_eq!((ours.kind, ours.family), (kind, family));
            assert_eq!(ours.bytes, kernel, "{kind:?} {family:?}");
        }
    }

    #[test]
    fn reference_differs_from_kernel_only_in_free_fields() {
        for (request, kernel, kind, family) in kernel_pairs() {
            let ours = owed(request).unwrap();
            assert_eq!(ours.bytes.len(), kernel.len(), "{kind:?} {family:?}");
            // The reference's own choices rebuild the reference.
            assert_eq!(owed_with(request, &Choices::of(&ours.bytes)).unwrap(), ours);
        }
    }

    #[test]
    fn transport_checksums_carry_over() {
        // Swapping addresses and ports leaves the sum unchanged: a UDP echo keeps the
        // request's checksum, and an ICMPv6 echo reply's is the request's plus 0x0100.
        for request in [&UDP4_ECHO_REQUEST[..], &UDP4_ECHO_REQUEST_3] {
            let ours = owed(request).unwrap().bytes;
            assert_eq!(ours[26..28], request[26..28]);
        }
        for request in [&UDP6_ECHO_REQUEST[..], &UDP6_ECHO_REQUEST_3] {
            let ours = owed(request).unwrap().bytes;
            assert_eq!(ours[46..48], request[46..48]);
        }
        let ours = owed(&ICMPV6_REQUEST_56).unwrap().bytes;
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
        let ours = owed(&request).unwrap().bytes;
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
        let ours = owed(&request).unwrap().bytes;
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
            Family::V4 => (&UDP4_CLOSED[..], 20),
            Family::V6 => (&UDP6_CLOSED[..], 40),
        };
        let mut bytes = template[..at + 8].to_vec();
        bytes.extend((0..data_len).map(|i| i as u8));
        let udp_len = (8 + data_len) as u16;
        bytes[at + 4..at + 6].copy_from_slice(&udp_len.to_be_bytes());
        let pseudo = match family {
            Family::V4 => {
                let total = bytes.len() as u16;
                let mut ip = ipv4::Packet::new_unchecked(&mut bytes[..]);
                ip.set_total_len(total);
                ip.fill_checksum();
                PseudoHeader::V4 {
                    src: ip.src_addr(),
                    dst: ip.dst_addr(),
                }
            }
            Family::V6 => {
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
        let v4 = big_closed(Family::V4, 1000);
        assert_eq!(quote_bounds(Family::V4, &v4), 28..=548);
        let ours = owed(&v4).unwrap().bytes;
        assert_eq!(ours.len(), 576);
        assert_eq!(&ours[28..], &v4[..548]);
        let v6 = big_closed(Family::V6, 1300);
        assert_eq!(quote_bounds(Family::V6, &v6), 48..=1232);
        let ours = owed(&v6).unwrap().bytes;
        assert_eq!(ours.len(), 1280);
        assert_eq!(&ours[48..], &v6[..1232]);
        // A shorter quote within the bounds is a choice; outside them it is not.
        let short = Choices {
            quote_len: Some(48),
            ..Choices::default()
        };
        assert_eq!(owed_with(&v6, &short).unwrap().bytes.len(), 48 + 48);
        let too_short = Choices {
            quote_len: Some(47),
            ..Choices::default()
        };
        assert_eq!(owed_with(&v6, &too_short).unwrap().bytes.len(), 1280);
        // A packet shorter than header + 8 is quoted whole.
        assert_eq!(quote_bounds(Family::V4, &[0x45; 24]), 24..=24);
    }

    #[test]
    fn replies_verify() {
        for (request, _, _, _) in kernel_pairs() {
            let ours = owed(request).unwrap().bytes;
            assert_checksums(&ours);
        }
        assert_checksums(&owed(&big_closed(Family::V4, 1000)).unwrap().bytes);
        assert_checksums(&owed(&big_closed(Family::V6, 1300)).unwrap().bytes);
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
        let ours = owed(&request).unwrap().bytes;
        assert_eq!(ours[26..28], UDP4_ECHO_REQUEST[26..28]);
        let mut none = ours.clone();
        none[26..28].copy_from_slice(&[0, 0]);
        assert!(Choices::of(&none).udp_no_checksum);
        assert_eq!(
            owed_with(&request, &Choices::of(&none)).unwrap().bytes,
            none
        );
    }

    #[test]
    fn free_field_lists() {
        let names = |kind, family| -> Vec<&str> {
            free_fields(kind, family).iter().map(|f| f.name()).collect()
        };
        assert_eq!(
            names(Kind::TcpReset, Family::V4),
            [
                "ttl",
                "ident",
                "dont_frag",
                "dscp_ecn",
                "window",
                "negative_zero"
            ]
        );
        assert_eq!(
            names(Kind::UdpClosed, Family::V6),
            [
                "ttl",
                "dscp_ecn",
                "flow_label",
                "quote_length",
                "negative_zero"
            ]
        );
        assert_eq!(
            names(Kind::UdpEcho, Family::V6),
            ["ttl", "dscp_ecn", "flow_label"]
        );
        assert!(names(Kind::UdpEcho, Family::V4).contains(&"udp_no_checksum"));
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
        // examples/dry_run_stack.py builds replies the way prompts/ip-stack.md says,
        // shortcuts included; with no choices of its own it must build the reference.
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/dry_run_stack.py");
        let mut requests: Vec<Vec<u8>> = kernel_pairs()
            .into_iter()
            .map(|(request, _, _, _)| request.to_vec())
            .collect();
        requests.push(big_closed(Family::V4, 1000));
        requests.push(big_closed(Family::V6, 1300));
        for request in requests {
            let out = std::process::Command::new("python3")
                .arg(script)
                .arg(hex::encode(&request))
                .output()
                .expect("python3");
            let stdout = String::from_utf8(out.stdout).unwrap();
            let reply = stdout.lines().nth(1).expect(&stdout);
            assert_eq!(
                reply,
                hex::encode(owed(&request).unwrap().bytes),
                "{stdout}"
            );
        }
        for silent in [
            &TCP4_RST[..],
            &ICMPV6_ROUTER_SOLICIT,
            &IPV6_FRAGMENT,
            &UDP4_FRAGMENT,
        ] {
            let out = std::process::Command::new("python3")
                .arg(script)
                .arg(hex::encode(silent))
                .output()
                .expect("python3");
            let stdout = String::from_utf8(out.stdout).unwrap();
            assert_eq!(stdout.lines().count(), 1, "{stdout}");
            assert!(stdout.contains("silence"), "{stdout}");
        }
    }
}
