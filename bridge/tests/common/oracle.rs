//! An independent oracle for reference replies: etherparse, not the bridge's own wire code,
//! says whether a reply is the one its request is owed, so that a bug in the wire code
//! cannot hide behind itself. `check_echo_reply` holds an ICMPv4 echo reply to the exact
//! reference (RFC 792; RFC 1122 §3.2.2.6); `check_reply` holds a reply of any kind the
//! reference stack answers (ICMPv4/ICMPv6 echo, UDP echo, port unreachable, TCP reset) to
//! the rules of its RFCs, leaving the fields a stack may choose alone.
//!
//! Shared by the unit tests (through a `#[path]` module in `lib.rs`) and the integration
//! tests (through `common`); not every user calls every check.
#![allow(dead_code)]

use etherparse::icmpv4::DestUnreachableHeader;
use etherparse::icmpv6::DestUnreachableCode;
use etherparse::{
    Icmpv4Slice, Icmpv4Type, Icmpv6Type, IpNumber, Ipv4HeaderSlice, NetSlice, SlicedPacket,
    TcpSlice, TransportSlice,
};

/// The TTL of the bridge's reference replies.
const REPLY_TTL: u8 = 64;

/// An IPv4 packet split by etherparse into its header and its ICMP message.
fn icmp_packet(packet: &[u8]) -> Result<(Ipv4HeaderSlice<'_>, Icmpv4Slice<'_>), String> {
    let ip = Ipv4HeaderSlice::from_slice(packet).map_err(|e| format!("IPv4 header: {e}"))?;
    let end = usize::from(ip.total_len());
    let payload = packet
        .get(ip.slice().len()..end)
        .ok_or_else(|| format!("total length {end} outside the {} bytes", packet.len()))?;
    let icmp = Icmpv4Slice::from_slice(payload).map_err(|e| format!("ICMP: {e}"))?;
    Ok((ip, icmp))
}

/// Fails with `what` and both values unless they are equal.
fn same<T: PartialEq + std::fmt::Debug>(what: &str, got: T, want: T) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, want {want:?}"))
    }
}

/// Checks that `reply` is the reference echo reply to `request`: both checksums right
/// for its bytes, addresses swapped, TTL 64, protocol ICMP, type echo reply with the
/// request's identifier, sequence number and data, and every other IPv4 field (length,
/// identification, DSCP/ECN, flags, options) as the request had it.
pub fn check_echo_reply(request: &[u8], reply: &[u8]) -> Result<(), String> {
    let (want_ip, want_icmp) = icmp_packet(request).map_err(|e| format!("request: {e}"))?;
    let (ip, icmp) = icmp_packet(reply).map_err(|e| format!("reply: {e}"))?;
    same("length in bytes", reply.len(), request.len())?;
    let header = ip.to_header();
    same(
        "IPv4 header checksum",
        ip.header_checksum(),
        header.calc_header_checksum(),
    )?;
    let icmp_sum = icmp.icmp_type().calc_checksum(icmp.payload());
    same("ICMP checksum", icmp.checksum(), icmp_sum)?;
    same("source", ip.source_addr(), want_ip.destination_addr())?;
    same("destination", ip.destination_addr(), want_ip.source_addr())?;
    same("TTL", ip.ttl(), REPLY_TTL)?;
    same("protocol", ip.protocol(), IpNumber::ICMP)?;
    same("total length", ip.total_len(), want_ip.total_len())?;
    same(
        "identification",
        ip.identification(),
        want_ip.identification(),
    )?;
    same("DSCP", ip.dcp(), want_ip.dcp())?;
    same("ECN", ip.ecn(), want_ip.ecn())?;
    same("DF", ip.dont_fragment(), want_ip.dont_fragment())?;
    same("MF", ip.more_fragments(), false)?;
    same("fragment offset", ip.fragments_offset().value(), 0)?;
    same("options", ip.options(), want_ip.options())?;
    match (want_icmp.icmp_type(), icmp.icmp_type()) {
        (Icmpv4Type::EchoRequest(asked), Icmpv4Type::EchoReply(answered)) => {
            same("echo identifier and sequence", answered, asked)?
        }
        (asked, answered) => return Err(format!("ICMP {answered:?} in answer to {asked:?}")),
    }
    same("ICMP code", icmp.code_u8(), 0)?;
    same("data", icmp.payload(), want_icmp.payload())
}

/// Panics with what is wrong unless `reply` is the reference echo reply to `request`.
pub fn assert_echo_reply(request: &[u8], reply: &[u8]) {
    if let Err(wrong) = check_echo_reply(request, reply) {
        panic!("the oracle disagrees: {wrong}");
    }
}

/// The largest IPv4 packet an ICMPv4 error may be (RFC 1812 §4.3.2.3).
const IPV4_ERROR_LIMIT: usize = 576;
/// The largest IPv6 packet an ICMPv6 error may be (RFC 4443 §2.4 (c)).
const IPV6_ERROR_LIMIT: usize = 1280;
/// The bytes past the invoking packet's IP header an ICMPv4 error quotes at least (RFC 792).
const MIN_QUOTED_DATA: usize = 8;
/// The UDP echo port (RFC 862).
const ECHO_PORT: u16 = 7;

/// A packet's addresses as bytes, its IP header length, and whether a TTL or hop limit of
/// 0 makes it invalid; the IPv4 header checksum is checked on the way.
struct Ip {
    src: Vec<u8>,
    dst: Vec<u8>,
    header_len: usize,
    ttl: u8,
}

/// Splits a packet with etherparse; checks the IPv4 header checksum.
fn sliced(packet: &[u8]) -> Result<(Ip, TransportSlice<'_>), String> {
    let sliced = SlicedPacket::from_ip(packet).map_err(|e| e.to_string())?;
    let ip = match &sliced.net {
        Some(NetSlice::Ipv4(v4)) => {
            let h = v4.header();
            same(
                "IPv4 header checksum",
                h.header_checksum(),
                h.to_header().calc_header_checksum(),
            )?;
            let (src, dst) = (h.source().to_vec(), h.destination().to_vec());
            Ip {
                src,
                dst,
                header_len: h.slice().len(),
                ttl: h.ttl(),
            }
        }
        Some(NetSlice::Ipv6(v6)) => {
            let h = v6.header();
            let (src, dst) = (h.source().to_vec(), h.destination().to_vec());
            Ip {
                src,
                dst,
                header_len: h.slice().len(),
                ttl: h.hop_limit(),
            }
        }
        _ => return Err("not an IP packet".into()),
    };
    let transport = sliced
        .transport
        .ok_or("no transport header etherparse knows")?;
    Ok((ip, transport))
}

/// Checks that `reply` is a correct reply to `request` by the rules of issue 12, derived
/// here from the RFCs and etherparse alone: ICMPv4 and ICMPv6 echo answered by an echo
/// reply with the request's identifier, sequence and data; UDP to port 7 echoed with the
/// ports swapped; UDP to another port answered with port unreachable quoting the request
/// within the RFC bounds; a TCP segment without RST answered with a reset (RFC 9293
/// §3.10.7.1). Every checksum must verify and the addresses be swapped; fields a stack
/// chooses freely (TTL but 0, identification, flow label, window, quote length) are not
/// compared.
pub fn check_reply(request: &[u8], reply: &[u8]) -> Result<(), String> {
    let (want_ip, asked) = sliced(request).map_err(|e| format!("request: {e}"))?;
    let (ip, answer) = sliced(reply).map_err(|e| format!("reply: {e}"))?;
    same("source", &ip.src, &want_ip.dst)?;
    same("destination", &ip.dst, &want_ip.src)?;
    if ip.ttl == 0 {
        return Err("TTL or hop limit 0".into());
    }
    check_transport_checksum(&ip, &answer)?;
    match (&asked, &answer) {
        (TransportSlice::Icmpv4(q), TransportSlice::Icmpv4(a)) => {
            same("ICMP type", a.icmp_type(), echo_reply_v4(q.icmp_type())?)?;
            same("data", a.payload(), q.payload())
        }
        (TransportSlice::Icmpv6(q), TransportSlice::Icmpv6(a)) => {
            let Icmpv6Type::EchoRequest(echo) = q.icmp_type() else {
                return Err(format!("{:?} is owed no reply", q.icmp_type()));
            };
            same("ICMPv6 type", a.icmp_type(), Icmpv6Type::EchoReply(echo))?;
            same("data", a.payload(), q.payload())
        }
        (TransportSlice::Udp(q), TransportSlice::Udp(a)) if q.destination_port() == ECHO_PORT => {
            same(
                "ports",
                (a.source_port(), a.destination_port()),
                (ECHO_PORT, q.source_port()),
            )?;
            same("data", a.payload(), q.payload())
        }
        (TransportSlice::Udp(q), TransportSlice::Icmpv4(a))
            if q.destination_port() != ECHO_PORT =>
        {
            let port = Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port);
            same("ICMP type", a.icmp_type(), port)?;
            check_quote(request, a.payload(), want_ip.header_len + MIN_QUOTED_DATA)?;
            check_at_most("reply length", reply.len(), IPV4_ERROR_LIMIT)
        }
        (TransportSlice::Udp(q), TransportSlice::Icmpv6(a))
            if q.destination_port() != ECHO_PORT =>
        {
            let port = Icmpv6Type::DestinationUnreachable(DestUnreachableCode::Port);
            same("ICMPv6 type", a.icmp_type(), port)?;
            // As much as fits (RFC 4443 §2.4 (c)): all of it, or up to the limit.
            let want = request.len().min(IPV6_ERROR_LIMIT - ip.header_len - 8);
            check_quote(request, a.payload(), want)?;
            check_at_most("reply length", reply.len(), IPV6_ERROR_LIMIT)
        }
        (TransportSlice::Tcp(q), TransportSlice::Tcp(a)) if !q.rst() => check_reset(q, a),
        (asked, answer) => Err(format!("{answer:?} does not answer {asked:?}")),
    }
}

/// The echo reply an ICMPv4 message is owed, if it is an echo request.
fn echo_reply_v4(asked: Icmpv4Type) -> Result<Icmpv4Type, String> {
    match asked {
        Icmpv4Type::EchoRequest(echo) => Ok(Icmpv4Type::EchoReply(echo)),
        other => Err(format!("{other:?} is owed no reply")),
    }
}

/// Checks that an error quotes the start of the request, at least `min` bytes of it.
fn check_quote(request: &[u8], quote: &[u8], min: usize) -> Result<(), String> {
    if !request.starts_with(quote) {
        return Err("the quote is not the start of the request".into());
    }
    if quote.len() < min {
        return Err(format!(
            "quote of {} bytes, want at least {min}",
            quote.len()
        ));
    }
    Ok(())
}

/// Fails unless `got` is at most `limit`.
fn check_at_most(what: &str, got: usize, limit: usize) -> Result<(), String> {
    if got > limit {
        return Err(format!("{what} {got}, want at most {limit}"));
    }
    Ok(())
}

/// Checks a reset from a closed port (RFC 9293 §3.10.7.1): to a segment with ACK, SEQ is
/// its ACK and no ACK is set; otherwise SEQ 0 and ACK = SEG.SEQ + SEG.LEN (SYN and FIN
/// count one each). No data, ports swapped.
fn check_reset(q: &TcpSlice<'_>, a: &TcpSlice<'_>) -> Result<(), String> {
    same(
        "ports",
        (a.source_port(), a.destination_port()),
        (q.destination_port(), q.source_port()),
    )?;
    same("RST", a.rst(), true)?;
    same("SYN, FIN", (a.syn(), a.fin()), (false, false))?;
    same("data", a.payload(), &[][..])?;
    if q.ack() {
        same("SEQ", a.sequence_number(), q.acknowledgment_number())?;
        return same("ACK flag", a.ack(), false);
    }
    let len = q.payload().len() as u32 + u32::from(q.syn()) + u32::from(q.fin());
    same("SEQ", a.sequence_number(), 0)?;
    same("ACK flag", a.ack(), true)?;
    same(
        "ACK",
        a.acknowledgment_number(),
        q.sequence_number().wrapping_add(len),
    )
}

/// Checks the ICMP, ICMPv6, UDP or TCP checksum of a reply with etherparse's own sums.
fn check_transport_checksum(ip: &Ip, answer: &TransportSlice<'_>) -> Result<(), String> {
    let v4 = |a: &[u8]| <[u8; 4]>::try_from(a).map_err(|_| "an IPv4 header".to_string());
    let v6 = |a: &[u8]| <[u8; 16]>::try_from(a).map_err(|_| "an IPv6 header".to_string());
    let too_big = |e: etherparse::err::ValueTooBigError<usize>| e.to_string();
    let (got, want) = match answer {
        TransportSlice::Icmpv4(a) => (a.checksum(), a.icmp_type().calc_checksum(a.payload())),
        TransportSlice::Icmpv6(a) => {
            let sum = a
                .icmp_type()
                .calc_checksum(v6(&ip.src)?, v6(&ip.dst)?, a.payload());
            (a.checksum(), sum.map_err(too_big)?)
        }
        TransportSlice::Udp(a) if ip.src.len() == 4 => {
            let sum = a
                .to_header()
                .calc_checksum_ipv4_raw(v4(&ip.src)?, v4(&ip.dst)?, a.payload());
            (a.checksum(), sum.map_err(too_big)?)
        }
        TransportSlice::Udp(a) => {
            let sum = a
                .to_header()
                .calc_checksum_ipv6_raw(v6(&ip.src)?, v6(&ip.dst)?, a.payload());
            (a.checksum(), sum.map_err(too_big)?)
        }
        TransportSlice::Tcp(a) if ip.src.len() == 4 => (
            a.checksum(),
            a.calc_checksum_ipv4(v4(&ip.src)?, v4(&ip.dst)?)
                .map_err(too_big)?,
        ),
        TransportSlice::Tcp(a) => (
            a.checksum(),
            a.calc_checksum_ipv6(v6(&ip.src)?, v6(&ip.dst)?)
                .map_err(too_big)?,
        ),
    };
    same("transport checksum", got, want)
}

/// Panics with what is wrong unless `reply` is a correct reply to `request` (see [`check_reply`]).
pub fn assert_reply(request: &[u8], reply: &[u8]) {
    if let Err(wrong) = check_reply(request, reply) {
        panic!("the oracle disagrees: {wrong}");
    }
}
