//! End-to-end tests of the verdicts, the record, the capture and the report.
//!
//! These need root: each creates its own network namespace, starts the daemon
//! inside it with `--record` (and `--pcap`), answers real pings correctly or
//! with one field spoiled, and checks what ping, the agent, the record and the
//! report each saw.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// Reads the record file as JSON values.
fn record(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// Waits until the record has `n` lines.
fn record_lines(path: &std::path::Path, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let lines = record(path);
        if lines.len() >= n {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("record has fewer than {n} lines: {:?}", record(path));
}

/// Fixes up the ICMP checksum after a change, so only the intended field is wrong.
fn fix_icmp(reply: &mut [u8]) {
    reply[22..24].fill(0);
    let c = tunbridge::wire::checksum::checksum(&reply[20..]);
    reply[22..24].copy_from_slice(&c.to_be_bytes());
}

/// Fixes up the IPv4 header checksum after a change.
fn fix_ip(reply: &mut [u8]) {
    reply[10..12].fill(0);
    let c = tunbridge::wire::checksum::checksum(&reply[..20]);
    reply[10..12].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn default_mode_writes_and_judges_every_reply() {
    if !root_or_skip("default_mode_writes_and_judges_every_reply") {
        return;
    }
    let ns = Netns::new("judge");
    let dir = TempDir::new("judge");
    let rec = dir.join("rec.jsonl");
    let pcap = dir.join("cap.pcap");
    let bridge = Bridge::start(
        &ns,
        &dir,
        &[
            "--record",
            rec.to_str().unwrap(),
            "--pcap",
            pcap.to_str().unwrap(),
        ],
    );

    // 1: a correct reply; ping sees it.
    let ping = ns.spawn_ping(56, 1, 10);
    assert_eq!(answer_one(&bridge, |_| {}), "OK");
    assert_received(&ping.wait_with_output().unwrap(), 1);
    // 2: a wrong ICMP checksum is written and judged. Linux delivers TUN-injected
    // ICMP without checking its checksum, so ping may even count it: only the verdict tells.
    let ping = ns.spawn_ping(56, 1, 2);
    assert_eq!(answer_one(&bridge, |r| r[23] ^= 0x01), "OK");
    drop(ping.wait_with_output());
    // 3: a wrong IPv4 header checksum is written; the kernel drops it.
    let ping = ns.spawn_ping(56, 1, 2);
    assert_eq!(answer_one(&bridge, |r| r[11] ^= 0x01), "OK");
    assert_received(&ping.wait_with_output().unwrap(), 0);
    // 4: another TTL with correct checksums is still a valid reply.
    let ping = ns.spawn_ping(57, 1, 10);
    assert_eq!(
        answer_one(&bridge, |r| {
            r[8] = 255;
            fix_ip(r)
        }),
        "OK"
    );
    assert_received(&ping.wait_with_output().unwrap(), 1);
    // 5: a spoiled payload with checksums made to match is named by its byte.
    let ping = ns.spawn_ping(56, 1, 2);
    assert_eq!(
        answer_one(&bridge, |r| {
            r[40] ^= 0xff;
            fix_icmp(r)
        }),
        "OK"
    );
    drop(ping.wait_with_output());

    let lines = record_lines(&rec, 5);
    let verdicts: Vec<&str> = lines
        .iter()
        .map(|l| l["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(verdicts[0], "valid");
    assert!(
        verdicts[1].starts_with("bad ICMP checksum: got 0x"),
        "{}",
        verdicts[1]
    );
    assert!(verdicts[1].contains(", want 0x"));
    assert!(
        verdicts[2].starts_with("bad IPv4 header checksum: got 0x"),
        "{}",
        verdicts[2]
    );
    assert_eq!(verdicts[3], "valid");
    assert!(
        verdicts[4].starts_with("payload differs at byte 12"),
        "{}",
        verdicts[4]
    );
    let classes: Vec<&str> = lines.iter().map(|l| l["class"].as_str().unwrap()).collect();
    assert_eq!(
        classes,
        ["valid", "icmp_checksum", "ip_checksum", "valid", "payload"]
    );
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["outcome"], "answered");
        assert_eq!(l["written"], true);
        assert_eq!(l["seq"].as_u64(), Some(1), "line {i}");
        assert!(l["id"].is_u64() && l["arrival"].as_str().unwrap().ends_with('Z'));
        let (agent, rtt) = (
            l["agent_ms"].as_f64().unwrap(),
            l["rtt_ms"].as_f64().unwrap(),
        );
        assert!(
            agent >= 0.0 && rtt >= agent,
            "line {i}: agent {agent} rtt {rtt}"
        );
    }
    assert_eq!(lines[3]["len"], 85);

    // The capture holds every request and every reply: tcpdump reads 10 packets.
    let out = Command::new("tcpdump")
        .args(["-nr", pcap.to_str().unwrap()])
        .output()
        .expect("tcpdump");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().filter(|l| l.contains("ICMP echo")).count(),
        10,
        "{text}"
    );

    // The report counts them.
    let out = Command::new(BIN)
        .args(["report", "--format", "json", rec.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let col = &report[0];
    assert_eq!(
        (
            col["pings"].as_u64(),
            col["answered"].as_u64(),
            col["valid"].as_u64()
        ),
        (Some(5), Some(5), Some(2))
    );
    let text = String::from_utf8(
        Command::new(BIN)
            .args(["report", rec.to_str().unwrap()])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    for class in ["icmp_checksum", "ip_checksum", "payload"] {
        let row = format!("invalid: {class}");
        assert!(text.lines().any(|l| l.starts_with(&row)), "{text}");
    }
}

#[test]
fn strict_mode_refuses_invalid_replies() {
    if !root_or_skip("strict_mode_refuses_invalid_replies") {
        return;
    }
    let ns = Netns::new("strict");
    let dir = TempDir::new("strict");
    let rec = dir.join("rec.jsonl");
    let bridge = Bridge::start(&ns, &dir, &["--strict", "--record", rec.to_str().unwrap()]);
    let ping = ns.spawn_ping(56, 1, 10);
    let line = bridge.exchange("READ");
    let request = hex::decode(&line).unwrap();
    let good = reference_reply(&request);
    let mut bad = good.clone();
    bad[23] ^= 0x01;
    let answer = bridge.exchange(&format!("WRITE {}", hex::encode(&bad)));
    assert!(
        answer.starts_with("ERR bad ICMP checksum: got 0x"),
        "{answer}"
    );
    let mut bad_ip = good.clone();
    bad_ip[11] ^= 0x01;
    let answer = bridge.exchange(&format!("WRITE {}", hex::encode(&bad_ip)));
    assert!(
        answer.starts_with("ERR bad IPv4 header checksum"),
        "{answer}"
    );
    assert_eq!(
        bridge.count_log("reply written"),
        0,
        "strict mode wrote an invalid reply"
    );
    // The agent may try again; the correct reply goes through and ping sees it.
    assert_eq!(
        bridge.exchange(&format!("WRITE {}", hex::encode(&good))),
        "OK"
    );
    assert_received(&ping.wait_with_output().unwrap(), 1);
    let lines = record_lines(&rec, 1);
    assert_eq!(lines[0]["verdict"], "valid");
    // A reply to nothing is refused in strict mode.
    let answer = bridge.exchange(&format!("WRITE {}", hex::encode(&good)));
    assert_eq!(answer, "ERR no matching request");
}

#[test]
fn spoofed_or_foreign_packets_are_refused_in_every_mode() {
    if !root_or_skip("spoofed_or_foreign_packets_are_refused_in_every_mode") {
        return;
    }
    for mode in [&[][..], &["--strict"][..]] {
        let ns = Netns::new("spoof");
        let dir = TempDir::new("spoof");
        let bridge = Bridge::start(&ns, &dir, mode);
        let ping = ns.spawn_ping(56, 1, 10);
        let request = hex::decode(bridge.exchange("READ")).unwrap();
        let good = reference_reply(&request);
        let mut spoofed = good.clone();
        spoofed[12..16].copy_from_slice(&[192, 0, 2, 99]);
        fix_ip(&mut spoofed);
        let answer = bridge.exchange(&format!("WRITE {}", hex::encode(&spoofed)));
        assert_eq!(
            answer, "ERR source 192.0.2.99 is not the agent's address 192.0.2.2",
            "{mode:?}"
        );
        let mut foreign = good.clone();
        foreign[16..20].copy_from_slice(&[198, 51, 100, 7]);
        fix_ip(&mut foreign);
        let answer = bridge.exchange(&format!("WRITE {}", hex::encode(&foreign)));
        assert_eq!(
            answer, "ERR destination 198.51.100.7 is not the host side 192.0.2.1",
            "{mode:?}"
        );
        assert_eq!(bridge.count_log("reply written"), 0);
        assert_eq!(
            bridge.exchange(&format!("WRITE {}", hex::encode(&good))),
            "OK"
        );
        assert_received(&ping.wait_with_output().unwrap(), 1);
    }
}

#[test]
fn dropped_and_unanswered_requests_get_a_line() {
    if !root_or_skip("dropped_and_unanswered_requests_get_a_line") {
        return;
    }
    let ns = Netns::new("drops");
    let dir = TempDir::new("drops");
    let rec = dir.join("rec.jsonl");
    let mut bridge = Bridge::start(
        &ns,
        &dir,
        &[
            "--max-age",
            "1",
            "--queue-size",
            "2",
            "--record",
            rec.to_str().unwrap(),
        ],
    );
    // Three pings a tenth of a second apart into a queue of two: one overflows.
    let out = ns.exec(&["ping", "-n", "-c", "3", "-i", "0.1", "-W", "1", PEER]);
    assert_received(&out, 0);
    // The other two go stale after a second.
    bridge.wait_log("outcome=\"stale\"", Duration::from_secs(5));
    // One more is read and never answered before the bridge stops.
    let ping = ns.spawn_ping(56, 1, 1);
    assert!(!bridge.exchange("READ").is_empty());
    drop(ping.wait_with_output());
    bridge.stop_with(nix::sys::signal::Signal::SIGTERM);
    let outcomes: Vec<String> = record(&rec)
        .iter()
        .map(|l| l["outcome"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        outcomes,
        ["overflow", "stale", "stale", "unanswered"],
        "{outcomes:?}"
    );
}
