//! The agent as a small IP stack, against real traffic from the kernel: `ping -6`, UDP
//! echo and UDP to a closed port on both families (`harness/traffic.py`), and a TCP
//! connect that must be refused at once. The agent here answers with the reference stack
//! (`stack::owed`) through the real bridge; the kernel checks every ICMPv6, UDP and TCP
//! checksum of the replies, so a wrong reference fails these tests.
//!
//! These need root: each creates its own network namespace and starts the daemon inside
//! it (see `common`); traffic goes only to the agent's addresses there.

mod common;

use std::process::{Child, Command, Output, Stdio};

use common::*;
use tunbridge::judge::stack;

/// The agent's IPv6 address inside the test namespace.
const PEER6: &str = "2001:db8::2";

/// Starts `python3 -m harness.traffic KIND` in the namespace.
fn traffic(ns: &Netns, kind: &str, wait: &str) -> Child {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            "python3",
            "-m",
            "harness.traffic",
            kind,
            "--wait",
            wait,
        ])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn traffic.py")
}

/// Answers one request with the reference stack's reply, changed by `spoil`; returns the WRITE answer.
fn answer(bridge: &Bridge, spoil: impl Fn(&mut Vec<u8>)) -> String {
    let line = bridge.exchange("READ");
    assert_ne!(line, "TIMEOUT", "no request reached the agent");
    let request = hex::decode(&line).unwrap_or_else(|_| panic!("READ answer is not hex: {line:?}"));
    let mut reply = stack::owed(&request).unwrap_or_else(|why| panic!("owed silence: {why}"));
    spoil(&mut reply);
    bridge.exchange(&format!("WRITE {}", hex::encode(&reply)))
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[ignore = "needs root"]
fn ping6_of_every_size() {
    let (ns, dir, bridge) = recorded_root_bridge("ping6", &[]);
    for size in ["0", "56", "57", "1232"] {
        let ping = Command::new("ip")
            .args([
                "netns", "exec", &ns.name, "ping", "-6", "-n", "-c", "1", "-W", "10",
            ])
            .args(["-s", size, PEER6])
            .stdout(Stdio::piped())
            .spawn()
            .expect("ping -6");
        assert_eq!(answer(&bridge, |_| {}), "OK", "size {size}");
        let out = ping.wait_with_output().unwrap();
        assert_received(&out, 1);
    }
    let lines = records_once(&dir.record(), 4, answered);
    let judged: Vec<_> = lines.iter().filter(|r| answered(r)).collect();
    assert_eq!(judged.len(), 4, "{lines:#?}");
    assert!(
        judged.iter().all(|r| r["verdict"] == "valid"),
        "{judged:#?}"
    );
}

#[test]
#[ignore = "needs root"]
fn udp_and_tcp_on_both_families() {
    let (ns, dir, bridge) = recorded_root_bridge("l4", &[]);
    let kinds = [
        "udp-echo",
        "udp-echo6",
        "udp-closed",
        "udp-closed6",
        "tcp-syn",
        "tcp-syn6",
    ];
    for kind in kinds {
        let client = traffic(&ns, kind, "10");
        assert_eq!(answer(&bridge, |_| {}), "OK", "{kind}");
        let out = client.wait_with_output().unwrap();
        let text = stdout(&out);
        assert!(
            out.status.success() && text.starts_with("ok"),
            "{kind}: {text}"
        );
    }
    // The TCP connects were refused at once: the first SYN's reset, no retransmission.
    let lines = records_once(&dir.record(), kinds.len(), answered);
    let judged: Vec<_> = lines.iter().filter(|r| answered(r)).collect();
    assert_eq!(judged.len(), kinds.len(), "{lines:#?}");
    assert!(judged.iter().all(|r| r["class"] == "valid"), "{judged:#?}");
}

#[test]
#[ignore = "needs root"]
fn the_kernel_drops_a_wrong_checksum_and_the_verdict_names_it() {
    let (ns, dir, bridge) = recorded_root_bridge("badsum", &["--read-timeout", "3"]);
    // UDP checksum at 40 + 6 over IPv6, ICMPv6 at 40 + 2, TCP at 20 + 16 over IPv4.
    for (n, (kind, at, class)) in [
        ("udp-echo6", 47, "udp_checksum"),
        ("udp-closed6", 43, "icmpv6_checksum"),
        ("tcp-syn", 37, "tcp_checksum"),
    ]
    .into_iter()
    .enumerate()
    {
        let client = traffic(&ns, kind, "2");
        assert_eq!(answer(&bridge, |r| r[at] ^= 0x01), "OK", "{kind}");
        let out = client.wait_with_output().unwrap();
        let text = stdout(&out);
        assert!(
            !out.status.success() && text.starts_with("FAIL"),
            "{kind}: {text}"
        );
        let lines = records_once(&dir.record(), n + 1, answered);
        let last = lines.iter().rev().find(|r| answered(r)).unwrap();
        assert_eq!(last["class"], class, "{last}");
        // A TCP client retransmits its SYN; take it off the queue unanswered.
        while bridge.exchange("READ") != "TIMEOUT" {}
    }
}

#[test]
#[ignore = "needs root"]
fn only_packets_for_the_agent_reach_a_read() {
    let (ns, dir, bridge) = recorded_root_bridge("only", &["--read-timeout", "2"]);
    // Router solicitations or MLD reports would come within the first seconds after link
    // up; a ping to another address of the prefix goes out on the device too.
    let other = Command::new("ip")
        .args([
            "netns", "exec", &ns.name, "ping", "-6", "-n", "-c", "1", "-W", "1",
        ])
        .arg("2001:db8::3")
        .output()
        .unwrap();
    assert!(!other.status.success());
    assert_eq!(bridge.exchange("READ"), "TIMEOUT");
    let lines = records(&dir.record());
    assert!(
        lines.iter().any(|r| r["outcome"] == "not_for_agent"),
        "{lines:#?}"
    );
    let ping = ns.spawn_ping(56, 1, 10);
    let line = bridge.exchange("READ");
    assert!(line.starts_with('4'), "not IPv4: {line:.20}");
    drop(ping);
}

#[test]
#[ignore = "needs root"]
fn no_ipv6_keeps_ipv6_off() {
    let (ns, _dir, bridge) = root_bridge("noip6", &["--read-timeout", "2", "--no-ipv6"]);
    let ping6 = ns.exec(&["ping", "-6", "-n", "-c", "1", "-W", "1", PEER6]);
    assert!(!ping6.status.success());
    assert_eq!(bridge.exchange("READ"), "TIMEOUT");
    // A WRITE of IPv6 is refused with the reason.
    let reply = stack::owed(&hex::decode(ICMPV6_REQUEST).unwrap()).unwrap();
    let answer = bridge.exchange(&format!("WRITE {}", hex::encode(reply)));
    assert_eq!(answer, "ERR IPv6 is off on this bridge (--no-ipv6)");
}

/// An ICMPv6 echo request 2001:db8::1 -> 2001:db8::2 with no data (from `ping -6 -s 0`).
const ICMPV6_REQUEST: &str =
    "60093e5500083a4020010db800000000000000000000000120010db8000000000000000000000002800002572\
1f00001";
