//! An independent oracle for reference replies: etherparse, not the bridge's own wire code,
//! says whether a reply is the echo reply its request is owed (RFC 792; RFC 1122 §3.2.2.6),
//! so that a bug in the wire code cannot hide behind itself.
//!
//! Shared by the unit tests (through a `#[path]` module in `lib.rs`) and the integration
//! tests (through `common`).

use etherparse::{Icmpv4Slice, Icmpv4Type, IpNumber, Ipv4HeaderSlice};

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
