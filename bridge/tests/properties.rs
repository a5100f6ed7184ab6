//! Property tests: nothing an agent can write makes the parser, the packet checks,
//! the reference reply or the verdict panic, and every answer stays one line.
//!
//! Inputs are both arbitrary bytes and well-formed echo requests with one thing
//! spoiled, so that the checks past the length tests are reached too. No root needed.

#[path = "common/oracle.rs"]
mod oracle;

use proptest::prelude::*;
use tunbridge::ipc::protocol::{check_packet, decode_hex, Answer, Command, MAX_LINE};
use tunbridge::judge::exchange::{Request, Response};
use tunbridge::judge::verdict::{self, Verdict};
use tunbridge::wire::{self, checksum, icmpv4, ipv4};

/// A well-formed ICMP echo request 192.0.2.1 -> 192.0.2.2 with these fields, checksums filled.
fn echo_request(tos: u8, ident: u16, seq: u16, ttl: u8, options: &[u8], data: &[u8]) -> Vec<u8> {
    let header_len = 20 + options.len();
    let total = header_len + 8 + data.len();
    let mut p = vec![0x40 | (header_len / 4) as u8, tos];
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&[
        0x12, 0x34, 0x40, 0x00, ttl, 1, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2,
    ]);
    p.extend_from_slice(options);
    p.extend_from_slice(&[8, 0, 0, 0]);
    p.extend_from_slice(&ident.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(data);
    let c = checksum::checksum(&p[..header_len]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    let c = checksum::checksum(&p[header_len..]);
    p[header_len + 2..header_len + 4].copy_from_slice(&c.to_be_bytes());
    p
}

/// Well-formed echo requests of every size up to a 1500-byte MTU, with or without options.
fn requests() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<u8>(),
        any::<u16>(),
        any::<u16>(),
        1u8..=255,
        (0usize..=10).prop_map(|words| vec![1u8; words * 4]),
        prop::collection::vec(any::<u8>(), 0..=1432),
    )
        .prop_map(|(tos, ident, seq, ttl, options, data)| {
            echo_request(tos, ident, seq, ttl, &options, &data)
        })
}

/// A request with one byte changed, or cut short, or grown: reaches every check in turn.
fn spoiled() -> impl Strategy<Value = Vec<u8>> {
    (
        requests(),
        any::<prop::sample::Index>(),
        any::<u8>(),
        0u8..3,
    )
        .prop_map(|(mut p, at, value, how)| {
            let i = at.index(p.len());
            match how {
                0 => p[i] = value,
                1 => p.truncate(i),
                _ => p.insert(i, value),
            }
            p
        })
}

/// Any bytes, spoiled requests and good requests, in about equal measure.
fn packets() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..=100),
        spoiled(),
        requests(),
    ]
}

/// Calls every IPv4 and ICMP accessor; none may panic once `new_checked` has passed.
fn touch_every_field(bytes: &[u8]) {
    let Ok(ip) = ipv4::Packet::new_checked(bytes) else {
        return;
    };
    let _ = (
        ip.version(),
        ip.ihl(),
        ip.header_len(),
        ip.dscp_ecn(),
        ip.total_len(),
    );
    let _ = (ip.ident(), ip.flags_frag(), ip.dont_frag(), ip.more_frags());
    let _ = (
        ip.frag_offset(),
        ip.is_fragment(),
        ip.ttl(),
        ip.protocol(),
        ip.checksum(),
    );
    let _ = (
        ip.src_addr(),
        ip.dst_addr(),
        ip.header(),
        ip.options(),
        ip.payload(),
    );
    let _ = (ip.verify_checksum(), ip.compute_checksum());
    assert_eq!(ip.header().len() + ip.payload().len(), bytes.len());
    if let Ok(icmp) = icmpv4::Packet::new_checked(ip.payload()) {
        let _ = (icmp.msg_type(), icmp.code(), icmp.checksum());
        let _ = (icmp.echo_ident(), icmp.echo_seq_no(), icmp.data());
        let _ = (icmp.verify_checksum(), icmp.compute_checksum());
    }
    let mut owned = bytes.to_vec();
    let mut ip = ipv4::Packet::new_checked(&mut owned[..]).expect("checked once already");
    ip.set_ttl(1);
    ip.set_dscp_ecn(0);
    ip.set_ident(0);
    ip.set_flags_frag(0);
    ip.fill_checksum();
    assert!(ip.verify_checksum());
    if let Ok(mut icmp) = icmpv4::Packet::new_checked(ip.payload_mut()) {
        icmp.set_msg_type(0);
        icmp.fill_checksum();
        assert!(icmp.verify_checksum());
    }
}

/// `hex` split into groups of whole bytes at the given cut points, in random case.
fn regroup(hex: &str, cuts: &[prop::sample::Index], upper: bool, sep: &str) -> String {
    let bytes = hex.len() / 2;
    let mut at: Vec<usize> = cuts.iter().map(|c| c.index(bytes.max(1)) * 2).collect();
    at.sort_unstable();
    at.dedup();
    let mut out = String::new();
    let mut prev = 0;
    for cut in at.into_iter().chain([hex.len()]) {
        if cut > prev {
            if !out.is_empty() {
                out.push_str(sep);
            }
            out.push_str(&hex[prev..cut]);
            prev = cut;
        }
    }
    if upper {
        out.to_uppercase()
    } else {
        out
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn parse_never_panics_and_errors_are_one_line(line in prop::collection::vec(any::<u8>(), 0..300), mtu in 0usize..70_000) {
        if let Err(e) = Command::parse(&line, mtu) {
            let answer = Answer::Err(e.to_string()).to_string();
            prop_assert!(!answer.contains('\n') && answer.starts_with("ERR "), "{answer:?}");
        }
    }

    #[test]
    fn parse_of_text_commands_never_panics(verb in "(?i)(read|write|rea|writ|)[ \t\r\u{a0}\u{2028}]*", rest in "\\PC{0,80}") {
        let line = format!("{verb}{rest}");
        let _ = Command::parse(line.as_bytes(), 1500);
    }

    #[test]
    fn write_of_any_packet_never_panics(packet in packets(), mtu in 20usize..2000) {
        let line = format!("WRITE {}", hex::encode(&packet));
        match Command::parse(line.as_bytes(), mtu) {
            Ok(Command::Write(p)) => prop_assert_eq!(p.bytes(), &packet[..]),
            Ok(Command::Read) => prop_assert!(false, "WRITE parsed as READ"),
            Err(e) => prop_assert!(!e.to_string().contains('\n')),
        }
    }

    #[test]
    fn decode_hex_never_panics(text in "\\PC{0,200}") {
        let _ = decode_hex(&text);
    }

    #[test]
    fn decode_hex_of_hexish_text_never_panics(text in "[0-9a-fA-FxX \t\u{a0}g]{0,64}") {
        if let Ok(bytes) = decode_hex(&text) {
            prop_assert_eq!(bytes.len() * 2, text.chars().filter(char::is_ascii_hexdigit).count());
        }
    }

    #[test]
    fn check_packet_never_panics(packet in packets(), mtu in 0usize..2000) {
        match check_packet(packet.clone(), mtu) {
            Ok(p) => prop_assert!(p.bytes().len() <= mtu && wire::is_ipv4(p.bytes())),
            Err(e) => prop_assert!(!e.to_string().contains('\n')),
        }
    }

    #[test]
    fn wire_views_never_panic(packet in packets()) {
        touch_every_field(&packet);
        let _ = Request::parse(&packet);
        let _ = Response::parse(packet.clone());
        let _ = wire::is_ipv4(&packet);
        let _ = wire::check_echo_request(&packet);
    }

    #[test]
    fn echo_reply_never_panics_and_is_judged_valid(packet in packets()) {
        if let Ok(reply) = wire::echo_reply(&packet) {
            prop_assert_eq!(reply.len(), packet.len());
            prop_assert_eq!(oracle::check_echo_reply(&packet, &reply), Ok(()));
            prop_assert_eq!(verdict::judge_packets(&packet, &reply), Verdict::Valid);
            let reply_key = Response::parse(reply).expect("a whole packet").key().copied();
            prop_assert_eq!(reply_key, Request::parse(&packet).key);
        }
    }

    #[test]
    fn every_reply_the_reference_stack_owes_agrees_with_the_oracle(packet in packets()) {
        if let Ok(owed) = tunbridge::judge::stack::owed(&packet) {
            prop_assert_eq!(oracle::check_reply(&packet, &owed), Ok(()));
        }
    }

    #[test]
    fn every_good_request_has_a_valid_reply(request in requests()) {
        let reply = wire::echo_reply(&request).expect("a good request");
        prop_assert_eq!(oracle::check_echo_reply(&request, &reply), Ok(()));
        prop_assert_eq!(verdict::judge_packets(&request, &reply), Verdict::Valid);
    }

    #[test]
    fn judge_never_panics(request in packets(), reply in packets()) {
        let v = verdict::judge_packets(&request, &reply);
        prop_assert!(!v.to_string().contains('\n'));
    }

    #[test]
    fn judge_of_a_spoiled_reply_never_panics(request in requests(), at in any::<prop::sample::Index>(), value in any::<u8>()) {
        let mut reply = wire::echo_reply(&request).expect("a good request");
        let i = at.index(reply.len());
        reply[i] = value;
        let v = verdict::judge_packets(&request, &reply);
        prop_assert!(!v.to_string().contains('\n'));
    }

    #[test]
    fn valid_hex_round_trips(
        request in requests(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
        upper in any::<bool>(),
        sep in "[ \t]{1,3}",
        verb in "(?i)write",
    ) {
        let hex = regroup(&hex::encode(&request), &cuts, upper, &sep);
        let line = format!("{verb} {hex}\r");
        let want = Response::parse(request.clone()).expect("a whole packet");
        prop_assert_eq!(Command::parse(line.as_bytes(), 1500), Ok(Command::Write(want)));
        prop_assert_eq!(decode_hex(&hex), Ok(request));
    }

    #[test]
    fn reply_display_is_one_line(packet in prop::collection::vec(any::<u8>(), 0..200), reason in "\\PC*|[\r\n\u{2028}a-z ]{0,40}") {
        for reply in [Answer::Packet(packet.clone()), Answer::Err(reason.clone()), Answer::Ok, Answer::Timeout] {
            let line = reply.to_string();
            prop_assert!(!line.contains('\n') && !line.contains('\r'), "{line:?}");
        }
        prop_assert_eq!(Answer::Packet(packet.clone()).to_string(), hex::encode(&packet));
    }
}

#[test]
fn over_long_lines_are_refused_without_looking_inside() {
    let mut line = b"WRITE ".to_vec();
    line.resize(MAX_LINE + 1, b'z');
    assert!(matches!(
        Command::parse(&line, 1500),
        Err(tunbridge::ipc::protocol::ProtocolError::TooLong(_))
    ));
}
