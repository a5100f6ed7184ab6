//! The fast prompt's arithmetic (`prompts/ping-respond-fast.md`) against the bridge's
//! verdicts: a native agent in this file builds every reply the way the prompt says, by
//! RFC 1624 incremental update from the request (never by recomputing a checksum), and
//! the bridge judges each one against its own reference. Covers ping sizes 0, 1, 56, 57
//! and 1400, request TTLs other than 64, and the ICMP checksums where adding 0x0800
//! carries. Each test makes its own network namespace; needs root.

mod common;

use std::process::{Command, Stdio};

use tunbridge::wire::checksum::fold;

/// RFC 1624 eqn. 3: the checksum after one 16-bit word changes from `old` to `new`.
fn incremental(checksum: u16, old: u16, new: u16) -> u16 {
    !fold(u32::from(!checksum) + u32::from(!old) + u32::from(new))
}

fn be16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

/// The echo reply by the fast procedure: swap the addresses (the header sum stays), TTL 64
/// (patch the IPv4 checksum unless it was 64), type 8 -> 0 (patch the ICMP checksum).
fn fast_reply(request: &[u8]) -> Vec<u8> {
    let h = usize::from(request[0] & 0x0f) * 4;
    let mut reply = request.to_vec();
    reply[12..16].copy_from_slice(&request[16..20]);
    reply[16..20].copy_from_slice(&request[12..16]);
    let mut ip_sum = be16(request, 10);
    reply[8] = 64;
    if request[8] != 64 {
        ip_sum = incremental(ip_sum, be16(request, 8), be16(&reply, 8));
    }
    reply[10..12].copy_from_slice(&ip_sum.to_be_bytes());
    reply[h] = 0;
    let icmp_sum = incremental(be16(request, h + 2), 0x0800, 0x0000);
    reply[h + 2..h + 4].copy_from_slice(&icmp_sum.to_be_bytes());
    reply
}

#[test]
fn incremental_update_examples_from_the_prompt() {
    // Step 5's examples: no carry, carry, smallest and largest carry, the f7ff case.
    for (ic, want) in [
        (0x1c2a, 0x242a),
        (0xfa12, 0x0213),
        (0xf800, 0x0001),
        (0xfffe, 0x07ff),
        (0xf7ff, 0x0000),
    ] {
        assert_eq!(incremental(ic, 0x0800, 0), want, "IC {ic:#06x}");
    }
    // Step 4.3's example: TTL 5 -> 64, HC d995 -> 9e95.
    assert_eq!(incremental(0xd995, 0x0501, 0x4001), 0x9e95);
}

/// One ping case: ping options, how many pings, and the request ICMP checksum it is
/// built to have (the carry cases; see `tests/lean.rs` for how the patterns are found).
struct Case {
    opts: &'static str,
    count: u32,
    icmp_checksum: Option<u16>,
}

const fn case(opts: &'static str, count: u32, icmp_checksum: Option<u16>) -> Case {
    Case {
        opts,
        count,
        icmp_checksum,
    }
}

const CASES: &[Case] = &[
    case("-s 0", 2, None),
    case("-s 1", 2, None),
    case("-s 56", 3, None),
    case("-s 57", 3, None),
    case("-s 1400", 2, None),
    case("-s 56 -t 5", 2, None),
    case("-s 57 -t 200", 2, None),
    case("-s 1400 -t 255", 1, None),
    case("-s 0 -t 1", 1, None),
    case("-s 2 -e 4660 -p edcb", 1, Some(0xf7fe)),
    case("-s 2 -e 4660 -p edca", 1, Some(0xf7ff)),
    case("-s 2 -e 4660 -p edc9", 1, Some(0xf800)),
    case("-s 2 -e 4660 -p ebb7", 1, Some(0xfa12)),
    case("-s 2 -e 4660 -p e5cb", 1, Some(0xfffe)),
    case("-s 2 -e 4660 -p e5cb -t 7", 1, Some(0xfffe)),
    // Size 0 with a chosen identifier: 0x0800 + 0xfdeb + 0x0001 folds to 0x05ed.
    case("-s 0 -e 65003", 1, Some(0xfa12)),
];

#[test]
#[ignore = "needs root"]
fn fast_procedure_replies_are_valid_for_every_size_ttl_and_carry_case() {
    common::require_root();
    let ns = common::Netns::new("fast");
    let dir = common::TempDir::new("fast");
    let record = dir.join("records.jsonl");
    let mut bridge = common::Bridge::start(&ns, &dir, &["--record", record.to_str().unwrap()]);
    let mut total = 0;
    for case in CASES {
        let mut args = vec![
            "netns", "exec", &ns.name, "ping", "-n", "-i", "0.2", "-W", "5",
        ];
        let count = case.count.to_string();
        args.extend(["-c", &count]);
        args.extend(case.opts.split(' '));
        args.push(common::PEER);
        let ping = Command::new("ip")
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ping");
        for _ in 0..case.count {
            let line = bridge.exchange("READ");
            let request =
                hex::decode(&line).unwrap_or_else(|_| panic!("{}: READ gave {line:?}", case.opts));
            let h = usize::from(request[0] & 0x0f) * 4;
            if let Some(want) = case.icmp_checksum {
                assert_eq!(
                    be16(&request, h + 2),
                    want,
                    "{}: the request's ICMP checksum",
                    case.opts
                );
            }
            let answer = bridge.exchange(&format!("WRITE {}", hex::encode(fast_reply(&request))));
            assert_eq!(answer, "OK", "{}", case.opts);
        }
        let out = ping.wait_with_output().unwrap();
        common::assert_received(&out, case.count);
        total += case.count as usize;
    }
    bridge.stop_with(nix::sys::signal::Signal::SIGTERM);
    let records = common::records(&record);
    assert_eq!(records.len(), total, "{records:#?}");
    for r in &records {
        assert_eq!(r["verdict"], "valid", "{r}");
    }
}
