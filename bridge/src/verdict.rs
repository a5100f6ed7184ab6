//! Verdicts: whether an agent's packet is a correct echo reply to the request it answers.
//!
//! The bridge builds its own reference reply (`wire::echo_reply`) and compares the
//! agent's reply with it, never trusting what the reply claims about itself. A reply is
//! valid when it equals the reference byte for byte, or differs only where RFC 791,
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

use std::fmt;

use crate::exchange::{FreeField, Kind, Owed, Request, Response, Silence};
use crate::wire::{self, icmpv4, ipv4};

/// The judgement on one reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A correct echo reply.
    Valid,
    /// Not a correct echo reply; the reason is one line naming the field, with got and want.
    Invalid(String),
}

impl Verdict {
    /// Returns whether the verdict is `Valid`.
    pub fn is_valid(&self) -> bool {
        matches!(self, Verdict::Valid)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Valid => f.write_str("valid"),
            Verdict::Invalid(reason) => f.write_str(reason),
        }
    }
}

/// Judges an agent's packet as the answer to a request.
pub fn judge(request: &Request, reply: &Response) -> Verdict {
    match (&request.owed, request.kind) {
        (Owed::Reply(reference), Some(kind)) => judge_against(kind, reference, reply.bytes()),
        (Owed::Silence(why), _) => owes_nothing(why),
        (Owed::Reply(_), None) => Verdict::Invalid("the request has no known kind".into()),
    }
}

/// Judges raw bytes: `request` as read from the device, `reply` as an agent would write it.
pub fn judge_packets(request: &[u8], reply: &[u8]) -> Verdict {
    let request = Request::parse(request);
    match (&request.owed, Response::parse(reply.to_vec())) {
        (Owed::Silence(why), _) => owes_nothing(why),
        (_, Ok(reply)) => judge(&request, &reply),
        (_, Err(error)) => Verdict::Invalid(malformed(error)),
    }
}

/// The verdict on any reply to a request that is owed none.
fn owes_nothing(why: &Silence) -> Verdict {
    Verdict::Invalid(format!("the request has no echo reply: {why}"))
}

/// Judges `reply` against a reference reply of this kind, built by [`Kind::reference`].
pub fn judge_against(kind: Kind, reference: &[u8], reply: &[u8]) -> Verdict {
    let checked = match kind {
        Kind::Icmpv4Echo => check(reference, reply),
    };
    match checked.and_then(|()| check_rest(kind, reply, reference)) {
        Ok(()) => Verdict::Valid,
        Err(reason) => Verdict::Invalid(reason),
    }
}

/// Runs every check in the documented order; the error is the first reason found.
fn check(reference: &[u8], reply: &[u8]) -> Result<(), String> {
    let bad_reference = |e: wire::Error| format!("bad reference reply: {e}");
    let want = ipv4::Packet::new_checked(reference).map_err(bad_reference)?;
    let want_icmp = icmpv4::Packet::new_checked(want.payload()).map_err(bad_reference)?;

    let got = ipv4::Packet::new_checked(reply).map_err(malformed)?;
    if got.is_fragment() {
        let (more_frags, offset) = (got.more_frags(), got.frag_offset());
        return Err(malformed(wire::Error::Fragmented { more_frags, offset }));
    }
    check_addresses(&got, &want)?;
    if got.protocol() != ipv4::PROTO_ICMP {
        return Err(format!("not an ICMP packet (protocol {})", got.protocol()));
    }
    let got_icmp = icmpv4::Packet::new_checked(got.payload()).map_err(malformed)?;
    check_icmp_header(&got_icmp, &want_icmp)?;
    check_ip_header(&got, &want)?;
    check_data(got_icmp.data(), want_icmp.data())?;
    check_checksums(&got, &got_icmp)
}

/// Formats a structural error.
fn malformed(error: wire::Error) -> String {
    format!("malformed: {error}")
}

/// Checks the source, then the destination address.
fn check_addresses(got: &ipv4::Packet<&[u8]>, want: &ipv4::Packet<&[u8]>) -> Result<(), String> {
    if got.src_addr() != want.src_addr() {
        return Err(format!(
            "wrong source {}, want {}",
            got.src_addr(),
            want.src_addr()
        ));
    }
    if got.dst_addr() != want.dst_addr() {
        return Err(format!(
            "wrong destination {}, want {}",
            got.dst_addr(),
            want.dst_addr()
        ));
    }
    Ok(())
}

/// Checks the ICMP type, code, identifier and sequence number.
fn check_icmp_header(
    got: &icmpv4::Packet<&[u8]>,
    want: &icmpv4::Packet<&[u8]>,
) -> Result<(), String> {
    if got.msg_type() != want.msg_type() {
        return Err(format!(
            "wrong ICMP type {}, want {}",
            got.msg_type(),
            want.msg_type()
        ));
    }
    if got.code() != want.code() {
        return Err(format!(
            "wrong ICMP code {}, want {}",
            got.code(),
            want.code()
        ));
    }
    if got.echo_ident() != want.echo_ident() {
        let (got, want) = (got.echo_ident(), want.echo_ident());
        return Err(format!("wrong ICMP id {got:#06x}, want {want:#06x}"));
    }
    if got.echo_seq_no() != want.echo_seq_no() {
        let (got, want) = (got.echo_seq_no(), want.echo_seq_no());
        return Err(format!("wrong ICMP sequence {got}, want {want}"));
    }
    Ok(())
}

/// Checks the header length, total length, options, flags and TTL.
fn check_ip_header(got: &ipv4::Packet<&[u8]>, want: &ipv4::Packet<&[u8]>) -> Result<(), String> {
    if got.header_len() != want.header_len() {
        let (got, want) = (got.header_len(), want.header_len());
        return Err(format!(
            "wrong IPv4 header length {got}, want {want} (the request's options are echoed)"
        ));
    }
    if got.total_len() != want.total_len() {
        return Err(format!(
            "wrong length {}, want {}",
            got.total_len(),
            want.total_len()
        ));
    }
    if let Some((at, g, w)) = first_difference(got.options(), want.options()) {
        return Err(format!(
            "IPv4 options differ at byte {at}: got {g:#04x}, want {w:#04x}"
        ));
    }
    let (got_flags, want_flags) = (
        got.flags_frag() & !ipv4::FLAG_DF,
        want.flags_frag() & !ipv4::FLAG_DF,
    );
    if got_flags != want_flags {
        return Err(format!(
            "wrong IPv4 flags {got_flags:#06x}, want {want_flags:#06x} (only DF may differ)"
        ));
    }
    if got.ttl() == 0 {
        return Err("TTL 0, want 1..255".to_string());
    }
    Ok(())
}

/// Checks the ICMP data byte for byte; the lengths are already known to agree.
fn check_data(got: &[u8], want: &[u8]) -> Result<(), String> {
    match first_difference(got, want) {
        Some((at, g, w)) => Err(format!(
            "payload differs at byte {at}: got {g:#04x}, want {w:#04x}"
        )),
        None => Ok(()),
    }
}

/// Checks the IPv4 header checksum, then the ICMP checksum, over the bytes sent.
fn check_checksums(got: &ipv4::Packet<&[u8]>, icmp: &icmpv4::Packet<&[u8]>) -> Result<(), String> {
    if !got.verify_checksum() {
        let error = wire::Error::BadIpChecksum {
            got: got.checksum(),
            want: got.compute_checksum(),
        };
        return Err(error.to_string());
    }
    if !icmp.verify_checksum() {
        let error = wire::Error::BadIcmpChecksum {
            got: icmp.checksum(),
            want: icmp.compute_checksum(),
        };
        return Err(error.to_string());
    }
    Ok(())
}

/// Compares the reply with the reference once the kind's free fields are copied over: a
/// guard against a difference the named checks do not cover. Runs after them, so the
/// reply is known to have the reference's structure.
fn check_rest(kind: Kind, reply: &[u8], reference: &[u8]) -> Result<(), String> {
    let mut bytes = reply.to_vec();
    for &field in kind.free_fields() {
        copy_free(field, &mut bytes, reference);
    }
    match first_difference(&bytes, reference) {
        Some((at, g, w)) => Err(format!(
            "differs from the reference reply at byte {at}: got {g:#04x}, want {w:#04x}"
        )),
        None => Ok(()),
    }
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
    }
}

/// Returns the first offset where two slices differ, with both bytes; `None` if they are equal
/// up to the shorter length.
fn first_difference(got: &[u8], want: &[u8]) -> Option<(usize, u8, u8)> {
    got.iter()
        .zip(want)
        .enumerate()
        .find(|(_, (g, w))| g != w)
        .map(|(at, (g, w))| (at, *g, *w))
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

    fn reference(request: &[u8]) -> Result<Vec<u8>, wire::Error> {
        Kind::Icmpv4Echo.reference(request)
    }

    fn reason(request: &[u8], reply: &[u8]) -> String {
        match judge(request, reply) {
            Verdict::Valid => panic!("expected an invalid verdict"),
            Verdict::Invalid(reason) => reason,
        }
    }

    #[test]
    fn kernel_replies_are_valid() {
        let pairs: [(&[u8], &[u8]); 6] = [
            (&REQUEST_56, &REPLY_56),
            (&REQUEST_0, &REPLY_0),
            (&REQUEST_1, &REPLY_1),
            (&REQUEST_57, &REPLY_57),
            (&REQUEST_9, &REPLY_9),
            (&LO_REQUEST_TOS, &LO_REPLY_TOS),
        ];
        for (request, reply) in pairs {
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
        reply[0] = 0x65;
        assert_eq!(
            reason(&REQUEST_56, &reply),
            "malformed: not IPv4: version 6"
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
            "the request has no echo reply: not an echo request: ICMP type 0 code 0, want type 8 code 0"
        );
    }

    #[test]
    fn bad_reference() {
        assert_eq!(
            judge_against(Kind::Icmpv4Echo, &REPLY_56[..10], &REPLY_56),
            Verdict::Invalid(
                "bad reference reply: packet too short: 10 bytes, an IPv4 header needs at least 20"
                    .to_string()
            )
        );
    }

    #[test]
    fn display() {
        assert_eq!(Verdict::Valid.to_string(), "valid");
        assert_eq!(
            Verdict::Invalid("TTL 0, want 1..255".into()).to_string(),
            "TTL 0, want 1..255"
        );
        assert!(Verdict::Valid.is_valid());
        assert!(!Verdict::Invalid(String::new()).is_valid());
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
