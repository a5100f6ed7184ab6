//! End-to-end tests of the verdicts, the record, the capture and the report.
//!
//! These need root: each creates its own network namespace, starts the daemon
//! inside it with `--record` (and `--pcap`), answers real pings correctly or
//! with one field spoiled, and checks what ping, the agent, the record and the
//! report each saw. Strict mode, spoofed sources and the drop records are tested
//! without root on the in-memory device, in `server.rs`.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

#[test]
#[ignore = "needs root"]
fn default_mode_writes_and_judges_every_reply() {
    let (ns, dir) = root_netns("judge");
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
    ping_answered(&ns, &bridge);
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

    let lines = records_once(&rec, 5, |_| true);
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
