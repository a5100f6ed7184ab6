//! The exchange model: what a request off the TUN device is, and what the agent owes for it.
//!
//! A packet read from the device is parsed once into a [`Request`]: its address
//! [`Family`], its [`Kind`] (the kinds of request the bridge knows an answer to), the
//! [`FlowKey`] a reply is matched by, and what the agent owes ([`Owed`]): the reference
//! stack's reply, or silence with the reason ([`stack::owed`]). A WRITE's bytes are parsed
//! once into a [`Response`], which names the flow key it answers. The in-flight table, the
//! egress policy, the verdict and the record speak in these types, never in byte offsets.
//!
//! Adding a kind of request means adding a [`Kind`] variant and recognising it in the
//! `impl Kind` below (`request_key` and `reply_key`), then building its reply in the
//! reference stack, with the fields a stack may choose ([`stack::Choices`]). The verdict
//! needs nothing new: every kind is judged the same way.

use std::fmt;
use std::net::IpAddr;

use crate::judge::stack::{self, Silence};
use crate::wire::ip::{be16, Family, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP};
use crate::wire::{self, icmpv4, icmpv6, ipv4, ipv6, udp};

/// The families whose packets reach the agent.
pub const SERVED: &[Family] = &[Family::Ipv4, Family::Ipv6];

/// Whether requests of `family` are handed to the agent; others are ignored on arrival.
pub fn is_served(family: Family) -> bool {
    SERVED.contains(&family)
}

/// The transport protocol of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// ICMP for IPv4 (RFC 792).
    Icmpv4,
    /// ICMP for IPv6 (RFC 4443).
    Icmpv6,
    /// UDP (RFC 768).
    Udp,
    /// TCP (RFC 9293).
    Tcp,
}

impl Protocol {
    /// The lowercase name used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Icmpv4 => "icmp",
            Protocol::Icmpv6 => "icmpv6",
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
        }
    }
}

/// What identifies a flow within its protocol and addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flow {
    /// An ICMP echo: identifier and sequence number (the same in request and reply).
    Echo { ident: u16, seq: u16 },
    /// A UDP or TCP flow: the host side's port and the agent's port.
    Ports { host: u16, peer: u16 },
}

/// The key a reply is matched to its request by, always seen from the request's side:
/// `host` is the request's source (the host side), `peer` its destination (the agent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// The transport protocol.
    pub protocol: Protocol,
    /// The host side's address: the request's source, the reply's destination.
    pub host: IpAddr,
    /// The agent's address: the request's destination, the reply's source.
    pub peer: IpAddr,
    /// Identifier and sequence, or ports.
    pub flow: Flow,
}

impl FlowKey {
    /// ICMP echo identifier and sequence number, when the flow is an echo.
    pub fn echo(&self) -> Option<(u16, u16)> {
        match self.flow {
            Flow::Echo { ident, seq } => Some((ident, seq)),
            Flow::Ports { .. } => None,
        }
    }

    /// The host side's and the agent's ports, when the flow has ports.
    pub fn ports(&self) -> Option<(u16, u16)> {
        match self.flow {
            Flow::Ports { host, peer } => Some((host, peer)),
            Flow::Echo { .. } => None,
        }
    }

    /// Whether two keys name the same flow apart from the addresses: a reply from the
    /// wrong address still answers its request, and is judged for the address.
    pub fn same_flow(&self, other: &FlowKey) -> bool {
        self.protocol == other.protocol && self.flow == other.flow
    }
}

impl fmt::Display for FlowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (proto, host, peer) = (self.protocol.as_str(), self.host, self.peer);
        match self.flow {
            Flow::Echo { ident, seq } => {
                write!(f, "{proto} {host} > {peer} id {ident:#06x} seq {seq}")
            }
            Flow::Ports { host: hp, peer: pp } => write!(f, "{proto} {host}:{hp} > {peer}:{pp}"),
        }
    }
}

/// Shows an optional flow key in a log line: the key, or `-`.
pub struct ShowKey<'a>(pub Option<&'a FlowKey>);

impl fmt::Display for ShowKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(key) => key.fmt(f),
            None => f.write_str("-"),
        }
    }
}

/// The kinds of request the bridge knows the answer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// An ICMPv4 echo request, answered by an echo reply (RFC 792).
    Icmpv4Echo,
    /// An ICMPv6 echo request, answered by an echo reply (RFC 4443 §4).
    Icmpv6Echo,
    /// UDP to the echo port 7, either family, answered with the same data (RFC 862).
    UdpEcho,
    /// UDP to any other port, answered with port unreachable (RFC 792, RFC 4443 §3.1).
    UdpClosed,
    /// A TCP segment, answered with a reset from a closed port unless it is one (RFC 9293 §3.10.7.1).
    TcpReset,
}

impl Kind {
    /// Every kind, in the order a request is tried against them.
    pub const ALL: &'static [Kind] = &[
        Kind::Icmpv4Echo,
        Kind::Icmpv6Echo,
        Kind::UdpEcho,
        Kind::UdpClosed,
        Kind::TcpReset,
    ];

    /// The snake_case name used in the record, e.g. `icmpv4_echo`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Icmpv4Echo => "icmpv4_echo",
            Kind::Icmpv6Echo => "icmpv6_echo",
            Kind::UdpEcho => "udp_echo",
            Kind::UdpClosed => "udp_closed",
            Kind::TcpReset => "tcp_reset",
        }
    }

    /// The family of this kind's packets, when it has only one.
    pub fn family(self) -> Option<Family> {
        match self {
            Kind::Icmpv4Echo => Some(Family::Ipv4),
            Kind::Icmpv6Echo => Some(Family::Ipv6),
            Kind::UdpEcho | Kind::UdpClosed | Kind::TcpReset => None,
        }
    }

    /// The key of a request of this kind; `None` when `packet` is not one. Checksums are
    /// not looked at: a request with a bad checksum still has a key, and is owed silence.
    fn request_key(self, packet: &[u8]) -> Option<FlowKey> {
        match self {
            Kind::Icmpv4Echo => icmpv4_echo_key(packet, false),
            Kind::Icmpv6Echo => icmpv6_echo_key(packet, false),
            Kind::UdpEcho => ports_key(packet, PROTO_UDP, false).filter(is_echo),
            Kind::UdpClosed => ports_key(packet, PROTO_UDP, false).filter(|k| !is_echo(k)),
            Kind::TcpReset => ports_key(packet, PROTO_TCP, false),
        }
    }

    /// The key of the request a reply of this kind answers; `None` when `packet` is not one.
    fn reply_key(self, packet: &[u8]) -> Option<FlowKey> {
        match self {
            Kind::Icmpv4Echo => icmpv4_echo_key(packet, true),
            Kind::Icmpv6Echo => icmpv6_echo_key(packet, true),
            Kind::UdpEcho => ports_key(packet, PROTO_UDP, true).filter(is_echo),
            Kind::UdpClosed => quoted_key(packet),
            Kind::TcpReset => ports_key(packet, PROTO_TCP, true),
        }
    }
}

/// The key of an ICMPv4 echo request or echo reply, seen from the request's side; a
/// reply's addresses are swapped back. Either type gives a key either way, so a request
/// sent back unchanged is matched, and judged.
fn icmpv4_echo_key(packet: &[u8], is_reply: bool) -> Option<FlowKey> {
    let ip = ipv4::Packet::new_checked(packet).ok()?;
    if ip.is_fragment() || ip.protocol() != ipv4::PROTO_ICMP {
        return None;
    }
    let icmp = icmpv4::Packet::new_checked(ip.payload()).ok()?;
    if !matches!(icmp.msg_type(), icmpv4::ECHO_REQUEST | icmpv4::ECHO_REPLY) {
        return None;
    }
    let (src, dst) = (IpAddr::V4(ip.src_addr()), IpAddr::V4(ip.dst_addr()));
    let (host, peer) = if is_reply { (dst, src) } else { (src, dst) };
    Some(FlowKey {
        protocol: Protocol::Icmpv4,
        host,
        peer,
        flow: Flow::Echo {
            ident: icmp.echo_ident(),
            seq: icmp.echo_seq_no(),
        },
    })
}

/// The source, destination, protocol and transport message of a whole IP packet that is
/// not a fragment; IPv6 extension headers are not walked.
fn ip_parts(packet: &[u8]) -> Option<(IpAddr, IpAddr, u8, &[u8])> {
    match Family::of(packet)? {
        Family::Ipv4 => {
            let ip = ipv4::Packet::new_checked(packet).ok()?;
            if ip.is_fragment() {
                return None;
            }
            let at = ip.header_len();
            let (src, dst) = (ip.src_addr().into(), ip.dst_addr().into());
            Some((src, dst, ip.protocol(), &packet[at..]))
        }
        Family::Ipv6 => {
            let ip = ipv6::Packet::new_checked(packet).ok()?;
            let (src, dst) = (ip.src_addr().into(), ip.dst_addr().into());
            Some((src, dst, ip.next_header(), &packet[ipv6::HEADER_LEN..]))
        }
    }
}

/// A key seen from the request's side: a reply's addresses (and ports) are swapped back.
fn key(protocol: Protocol, (src, dst): (IpAddr, IpAddr), flow: Flow, is_reply: bool) -> FlowKey {
    let (host, peer, flow) = match (is_reply, flow) {
        (false, flow) => (src, dst, flow),
        (true, Flow::Ports { host, peer }) => (
            dst,
            src,
            Flow::Ports {
                host: peer,
                peer: host,
            },
        ),
        (true, flow) => (dst, src, flow),
    };
    FlowKey {
        protocol,
        host,
        peer,
        flow,
    }
}

/// The key of an ICMPv6 echo request or reply.
fn icmpv6_echo_key(packet: &[u8], is_reply: bool) -> Option<FlowKey> {
    let (src, dst, protocol, message) = ip_parts(packet)?;
    if !src.is_ipv6() || protocol != PROTO_ICMPV6 {
        return None;
    }
    let icmp = icmpv6::Packet::new_checked(message).ok()?;
    if !matches!(icmp.msg_type(), icmpv6::ECHO_REQUEST | icmpv6::ECHO_REPLY) {
        return None;
    }
    let (ident, seq) = (icmp.echo_ident(), icmp.echo_seq_no());
    let flow = Flow::Echo { ident, seq };
    Some(key(Protocol::Icmpv6, (src, dst), flow, is_reply))
}

/// The key of a UDP datagram or TCP segment of either family, by its ports.
fn ports_key(packet: &[u8], protocol: u8, is_reply: bool) -> Option<FlowKey> {
    let (src, dst, got, message) = ip_parts(packet)?;
    if got != protocol || message.len() < 4 {
        return None;
    }
    let flow = Flow::Ports {
        host: be16(&message[0..2]),
        peer: be16(&message[2..4]),
    };
    let protocol = if protocol == PROTO_UDP {
        Protocol::Udp
    } else {
        Protocol::Tcp
    };
    Some(key(protocol, (src, dst), flow, is_reply))
}

/// Whether a UDP key's agent port is the echo port.
fn is_echo(key: &FlowKey) -> bool {
    key.ports().is_some_and(|(_, peer)| peer == udp::ECHO_PORT)
}

/// The key of the UDP request an ICMP or ICMPv6 destination unreachable quotes: the
/// quoted header's addresses and the quoted datagram's ports (a quote may be cut short).
fn quoted_key(packet: &[u8]) -> Option<FlowKey> {
    let (_, _, protocol, message) = ip_parts(packet)?;
    let unreachable = match protocol {
        PROTO_ICMP => icmpv4::DST_UNREACHABLE,
        PROTO_ICMPV6 => icmpv6::DST_UNREACHABLE,
        _ => return None,
    };
    if message.len() < icmpv4::HEADER_LEN || message[0] != unreachable {
        return None;
    }
    let quote = &message[icmpv4::HEADER_LEN..];
    let (src, dst, at, next) = match (protocol, quote.first()? >> 4) {
        (PROTO_ICMP, 4) if quote.len() >= ipv4::MIN_HEADER_LEN => {
            let ip = ipv4::Packet::new_unchecked(quote);
            let (src, dst) = (ip.src_addr().into(), ip.dst_addr().into());
            (src, dst, ip.header_len(), ip.protocol())
        }
        (PROTO_ICMPV6, 6) if quote.len() >= ipv6::HEADER_LEN => {
            let ip = ipv6::Packet::new_unchecked(quote);
            let (src, dst) = (ip.src_addr().into(), ip.dst_addr().into());
            (src, dst, ipv6::HEADER_LEN, ip.next_header())
        }
        _ => return None,
    };
    let ports = quote.get(at..at + 4).filter(|_| next == PROTO_UDP)?;
    let flow = Flow::Ports {
        host: be16(&ports[0..2]),
        peer: be16(&ports[2..4]),
    };
    Some(key(Protocol::Udp, (src, dst), flow, false))
}

/// What the agent owes for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owed {
    /// This reply, or one that differs from it only in a stack's free choices.
    Reply(Vec<u8>),
    /// Nothing, for this reason.
    Silence(Silence),
}

/// A request off the TUN device, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The IP version, when the version nibble names one.
    pub family: Option<Family>,
    /// The kind of request, when the bridge knows it.
    pub kind: Option<Kind>,
    /// The key its reply is matched by, when it has one.
    pub key: Option<FlowKey>,
    /// The reference reply, or silence.
    pub owed: Owed,
}

impl Request {
    /// Parses a packet read from the device; any bytes give a request (owed silence at worst).
    /// The reference stack says what is owed; the kind and key say which reply answers it.
    pub fn parse(packet: &[u8]) -> Request {
        let known = Kind::ALL
            .iter()
            .find_map(|&kind| Some((kind, kind.request_key(packet)?)));
        let owed = match stack::owed(packet) {
            Ok(reply) => Owed::Reply(reply),
            Err(why) => Owed::Silence(why),
        };
        Request {
            family: Family::of(packet),
            kind: known.map(|(kind, _)| kind),
            key: known.map(|(_, key)| key),
            owed,
        }
    }

    /// The reference reply, when a reply is owed.
    pub fn reference(&self) -> Option<&[u8]> {
        match &self.owed {
            Owed::Reply(reply) => Some(reply),
            Owed::Silence(_) => None,
        }
    }
}

/// An agent's packet from a WRITE, parsed once: a whole IP packet, and the request it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    bytes: Vec<u8>,
    family: Family,
    src: IpAddr,
    dst: IpAddr,
    kind: Option<Kind>,
    key: Option<FlowKey>,
}

impl Response {
    /// Checks that `bytes` are one whole IPv4 or IPv6 packet and finds the flow key it answers.
    pub fn parse(bytes: Vec<u8>) -> Result<Response, wire::Error> {
        let (family, src, dst) = addresses(&bytes)?;
        let known = Kind::ALL
            .iter()
            .find_map(|&kind| Some((kind, kind.reply_key(&bytes)?)));
        Ok(Response {
            family,
            src,
            dst,
            kind: known.map(|(kind, _)| kind),
            key: known.map(|(_, key)| key),
            bytes,
        })
    }

    /// The packet as written.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The packet's IP version.
    pub fn family(&self) -> Family {
        self.family
    }

    /// The source address.
    pub fn src(&self) -> IpAddr {
        self.src
    }

    /// The destination address.
    pub fn dst(&self) -> IpAddr {
        self.dst
    }

    /// The kind of reply it looks like, when it looks like one.
    pub fn kind(&self) -> Option<Kind> {
        self.kind
    }

    /// The key of the request it answers, when it looks like a reply.
    pub fn key(&self) -> Option<&FlowKey> {
        self.key.as_ref()
    }
}

/// The destination address of a whole IP packet of either family; `None` for anything else.
pub fn destination(packet: &[u8]) -> Option<IpAddr> {
    addresses(packet).ok().map(|(_, _, dst)| dst)
}

/// Checks the IP header of a whole packet of either family and returns its family and addresses.
fn addresses(bytes: &[u8]) -> Result<(Family, IpAddr, IpAddr), wire::Error> {
    if Family::of(bytes) == Some(Family::Ipv6) {
        let ip = ipv6::Packet::new_checked(bytes)?;
        let (src, dst) = (ip.src_addr().into(), ip.dst_addr().into());
        return Ok((Family::Ipv6, src, dst));
    }
    let ip = ipv4::Packet::new_checked(bytes)?;
    let (src, dst) = (ip.src_addr().into(), ip.dst_addr().into());
    Ok((Family::Ipv4, src, dst))
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::wire::edited;
    use crate::wire::fixtures::*;
    use std::net::Ipv4Addr;

    fn v4(d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, d))
    }

    #[test]
    fn echo_request_and_its_reply_share_a_key() {
        let request = Request::parse(&REQUEST_56);
        let want = FlowKey {
            protocol: Protocol::Icmpv4,
            host: v4(1),
            peer: v4(2),
            flow: Flow::Echo {
                ident: 0x11aa,
                seq: 1,
            },
        };
        assert_eq!(request.family, Some(Family::Ipv4));
        assert_eq!(request.kind, Some(Kind::Icmpv4Echo));
        assert_eq!(request.key, Some(want));
        let reference = request.reference().unwrap();
        assert_eq!(reference, &wire::echo_reply(&REQUEST_56).unwrap()[..]);
        crate::oracle::assert_echo_reply(&REQUEST_56, reference);
        let response = Response::parse(REPLY_56.to_vec()).unwrap();
        assert_eq!(response.key(), Some(&want));
        assert_eq!((response.src(), response.dst()), (v4(2), v4(1)));
        assert_eq!(want.echo(), Some((0x11aa, 1)));
        assert_eq!(want.ports(), None);
        assert_eq!(
            want.to_string(),
            "icmp 192.0.2.1 > 192.0.2.2 id 0x11aa seq 1"
        );
    }

    #[test]
    fn echo_keys_of_requests_and_not_of_others() {
        let echo = |bytes: &[u8]| Request::parse(bytes).key.and_then(|k| k.echo());
        assert_eq!(echo(&REQUEST_56_SEQ2), Some((0x11aa, 2)));
        assert_eq!(echo(&REQUEST_0), Some((0x11ac, 1)));
        assert_eq!(echo(&REPLY_56), Some((0x11aa, 1)));
        assert_eq!(echo(&edited(|b| b[9] = 6)), None);
        assert_eq!(echo(&edited(|b| b[20] = 3)), None);
        assert_eq!(echo(&edited(|b| b[6] |= 0x20)), None);
        let response = |bytes: Vec<u8>| Response::parse(bytes).unwrap().key().copied();
        assert_eq!(response(edited(|b| b[9] = 47)), None);
    }

    #[test]
    fn a_bad_checksum_is_owed_silence_but_keeps_its_key() {
        let mut bytes = REQUEST_56.to_vec();
        bytes[83] ^= 1;
        let request = Request::parse(&bytes);
        assert!(request.key.is_some());
        assert!(matches!(
            request.owed,
            Owed::Silence(Silence::BadChecksum(wire::Error::BadIcmpChecksum { .. }))
        ));
    }

    #[test]
    fn unknown_packets_have_no_key() {
        for bytes in [&REQUEST_56[..40], &[0x60, 0, 0, 0][..], &[]] {
            let request = Request::parse(bytes);
            assert_eq!((request.kind, request.key), (None, None));
            assert!(request.reference().is_none());
        }
        assert_eq!(Request::parse(&[0x60]).family, Some(Family::Ipv6));
        assert!(is_served(Family::Ipv6) && is_served(Family::Ipv4));
    }

    #[test]
    fn responses_must_be_whole_ipv4_packets() {
        assert_eq!(
            Response::parse(REPLY_56[..83].to_vec()).unwrap_err(),
            wire::Error::TotalLenMismatch {
                total_len: 84,
                got: 83
            }
        );
        let request_back = Response::parse(REQUEST_56.to_vec()).unwrap();
        let key = request_back.key().unwrap();
        assert!(key.same_flow(&Request::parse(&REQUEST_56).key.unwrap()));
        assert_eq!((key.host, key.peer), (v4(2), v4(1)));
    }

    #[test]
    fn ports_keys_show_both_ends() {
        let key = FlowKey {
            protocol: Protocol::Udp,
            host: v4(1),
            peer: v4(2),
            flow: Flow::Ports {
                host: 40000,
                peer: 7,
            },
        };
        assert_eq!(key.to_string(), "udp 192.0.2.1:40000 > 192.0.2.2:7");
        assert_eq!(key.ports(), Some((40000, 7)));
        assert_eq!(ShowKey(None).to_string(), "-");
    }

    #[test]
    fn stack_kinds_share_keys_with_their_replies() {
        // A quote cut short (within the bounds) still carries the key.
        use Kind::*;
        // The kind the bridge must take each kernel pair's request for, in their order.
        let kinds = [
            Icmpv6Echo, Icmpv6Echo, Icmpv6Echo, UdpEcho, UdpEcho, UdpEcho, UdpEcho, UdpClosed,
            UdpClosed, TcpReset, TcpReset,
        ];
        let short: (&[u8], &[u8]) = (&UDP6_CLOSED, &UDP6_PORT_UNREACHABLE[..40 + 8 + 44]);
        let pairs = KERNEL_PAIRS.into_iter().chain([short]);
        for ((request, reply), kind) in pairs.zip(kinds.into_iter().chain([UdpClosed])) {
            let protocol = match kind {
                Kind::Icmpv4Echo => Protocol::Icmpv4,
                Kind::Icmpv6Echo => Protocol::Icmpv6,
                Kind::UdpEcho | Kind::UdpClosed => Protocol::Udp,
                Kind::TcpReset => Protocol::Tcp,
            };
            let request = Request::parse(request);
            assert_eq!(request.kind, Some(kind));
            let key = request.key.unwrap();
            assert_eq!(key.protocol, protocol);
            let mut reply = reply.to_vec();
            if reply.len() == 40 + 8 + 44 {
                reply[4..6].copy_from_slice(&52u16.to_be_bytes());
            }
            let response = Response::parse(reply).unwrap();
            assert_eq!(response.key(), Some(&key), "{kind:?}");
            assert_eq!(response.family(), Family::of(response.bytes()).unwrap());
        }
        let tcp = Request::parse(&TCP4_SYN).key.unwrap();
        assert_eq!(tcp.ports(), Some((0xcba0, 9)));
        assert_eq!(tcp.to_string(), "tcp 192.0.2.1:52128 > 192.0.2.2:9");
    }

    #[test]
    fn a_reset_is_owed_silence() {
        let request = Request::parse(&TCP4_RST);
        assert_eq!(request.kind, Some(Kind::TcpReset));
        assert_eq!(request.owed, Owed::Silence(Silence::Reset));
    }
}
