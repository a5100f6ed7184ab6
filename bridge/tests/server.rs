//! The server on an in-memory device: the FIFO protocol, the queue, the hand-over,
//! clients that misbehave, the FIFOs' life, strict mode and the record.
//!
//! No root needed: each test starts the server in a thread on an in-memory device
//! (`Bridge::memory`), plays the network through its other side, and speaks to the
//! FIFOs as clients do (the library client, the `tunbridge` binary, or a shell).
//! What needs the real TUN device, ping and the kernel stays in `bridge.rs`,
//! `faults.rs` and `verdicts.rs`.

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::*;

/// Sends a WRITE of `packet`; returns the answer.
fn write_packet(bridge: &Bridge, packet: &[u8]) -> String {
    bridge.exchange(&format!("WRITE {}", hex::encode(packet)))
}

/// Writes the reference reply to a READ answer; returns the WRITE answer.
fn reply_to(bridge: &Bridge, line: &str) -> String {
    write_packet(bridge, &reference_reply(&hex::decode(line).unwrap()))
}

/// Checks that no reply was written to the device.
fn assert_nothing_written(bridge: &Bridge, net: &Network) {
    assert_eq!(bridge.counts.get(Count::Settled), 0);
    assert_eq!(net.recv(Duration::from_millis(50)).unwrap(), None);
}

#[test]
fn answers_requests_of_every_size() {
    let dir = TempDir::new("m-sizes");
    let (bridge, net) = Bridge::memory(&dir, &[]);
    for (seq, size) in [0usize, 1, 56, 57, 1472].into_iter().enumerate() {
        let request = ping_memory(&net, seq as u16, size);
        assert_eq!(answer_one(&bridge, |_| {}), "OK", "size {size}");
        assert_replied(&net, &request);
    }
}

#[test]
fn published_step_one_form_works_unchanged() {
    let dir = TempDir::new("m-raw");
    let (bridge, net) = Bridge::memory(&dir, &[]);
    let request = ping_memory(&net, 1, 56);
    let (cmd, resp) = (
        bridge.cmd.display().to_string(),
        bridge.resp.display().to_string(),
    );
    let read = format!("echo \"READ\" > {cmd} && timeout 35 cat {resp}");
    let out = Command::new("sh").args(["-c", &read]).output().unwrap();
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(
        line.ends_with('\n') && line.lines().count() == 1,
        "one line: {line:?}"
    );
    assert_eq!(hex::decode(line.trim()).expect("hex"), request);
    let reply = reference_reply(&request);
    let write = format!(
        "echo \"WRITE {}\" > {cmd} && timeout 5 cat {resp}",
        hex::encode(reply)
    );
    let out = Command::new("sh").args(["-c", &write]).output().unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "OK\n");
    assert_replied(&net, &request);
}

#[test]
fn client_commands_answer_by_hand() {
    let dir = TempDir::new("m-cli");
    let (bridge, net) = Bridge::memory(&dir, &[]);
    let request = ping_memory(&net, 1, 56);
    let out = bridge.cli(&["read"]);
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    let reply = reference_reply(&hex::decode(line.trim()).unwrap());
    // Grouped, upper-case hex as a model might write it.
    let grouped: Vec<String> = reply.chunks(2).map(hex::encode_upper).collect();
    let out = bridge.cli(&["write", &grouped.join(" ")]);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "OK\n");
    assert!(out.status.success());
    assert_replied(&net, &request);
    let out = bridge.cli(&["write", "zz"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .starts_with("ERR bad hex"));
}

#[test]
fn read_times_out() {
    let dir = TempDir::new("m-timeout");
    let (bridge, _net) = Bridge::memory(&dir, &["--read-timeout", "1"]);
    let start = Instant::now();
    assert_eq!(bridge.exchange("READ"), "TIMEOUT");
    assert!(start.elapsed() >= Duration::from_millis(900));
}

#[test]
fn bad_commands_get_one_err_line_and_nothing_is_written() {
    let dir = TempDir::new("m-err");
    let (mut bridge, net) = Bridge::memory(&dir, &["--mtu", "1000"]);
    let good =
        "45000054000040004001b6a5c0000202c000020100007b2a00070001".to_string() + &"00".repeat(56);
    let cases: Vec<(String, &str)> = vec![
        ("HELLO".into(), "ERR unknown command"),
        ("READ 1".into(), "ERR READ takes no argument"),
        ("WRITE".into(), "ERR WRITE needs the packet"),
        ("WRITE xyz1".into(), "ERR bad hex"),
        ("WRITE 450".into(), "ERR bad hex"),
        ("WRITE 4500000000".into(), "ERR packet too short"),
        (format!("WRITE 7{}", &good[1..]), "ERR not IPv4: version 7"),
        (format!("WRITE 43{}", &good[2..]), "ERR bad IHL 3"),
        (format!("WRITE {good}00"), "ERR total length field says 84"),
        (
            format!("WRITE 450003f0{}", "00".repeat(1004)),
            "larger than the MTU",
        ),
    ];
    for (line, want) in &cases {
        let got = bridge.exchange(line);
        assert!(
            got.starts_with("ERR") && got.contains(want),
            "{line:.40}: {got:?} lacks {want:?}"
        );
        assert!(!got.contains('\n'));
    }
    assert!(bridge.alive());
    assert_nothing_written(&bridge, &net);
    // The server still answers a request afterwards.
    let request = ping_memory(&net, 1, 56);
    assert_eq!(answer_one(&bridge, |_| {}), "OK");
    assert_replied(&net, &request);
}

#[test]
fn absent_reader_loses_nothing() {
    let dir = TempDir::new("m-absent");
    let (bridge, net) = Bridge::memory(&dir, &["--reply-grace", "300"]);
    let request = ping_memory(&net, 1, 56);
    bridge.wait_total(Count::Queued, 1, Duration::from_secs(5));
    // A READ whose sender never opens the answer FIFO.
    write_raw(&bridge.cmd, b"READ\n");
    bridge.wait_total(Count::Abandoned, 1, Duration::from_secs(5));
    // A WRITE whose answer nobody reads is discarded, not left for the next client.
    write_raw(&bridge.cmd, b"PING\n");
    bridge.wait_total(Count::Discarded, 1, Duration::from_secs(5));
    assert_eq!(answer_one(&bridge, |_| {}), "OK");
    assert_replied(&net, &request);
}

#[test]
fn reader_that_goes_away_does_not_take_the_packet() {
    let dir = TempDir::new("m-gone");
    let (bridge, net) = Bridge::memory(&dir, &[]);
    // The published form with a reader that gives up before any packet comes.
    let (cmd, resp) = (
        bridge.cmd.display().to_string(),
        bridge.resp.display().to_string(),
    );
    let sh = format!("echo READ > {cmd} && timeout 1 cat {resp}");
    let out = Command::new("sh").args(["-c", &sh]).output().unwrap();
    assert!(out.stdout.is_empty());
    bridge.wait_total(Count::Abandoned, 1, Duration::from_secs(5));
    let request = ping_memory(&net, 1, 56);
    assert_eq!(answer_one(&bridge, |_| {}), "OK");
    assert_replied(&net, &request);
}

#[test]
fn non_ipv4_never_reaches_the_agent() {
    let dir = TempDir::new("m-v6");
    let (bridge, net) = Bridge::memory(&dir, &["--read-timeout", "1"]);
    // An IPv6 router solicitation's first bytes, as the kernel would send on link up.
    net.send(&[0x60, 0, 0, 0, 0, 8, 58, 255, 0, 0, 0, 0])
        .unwrap();
    assert_eq!(bridge.exchange("READ"), "TIMEOUT");
    let request = ping_memory(&net, 1, 56);
    assert_eq!(hex::decode(bridge.exchange("READ")).unwrap(), request);
}

#[test]
fn clients_that_go_away_lose_nothing_and_get_nothing_stale() {
    let dir = TempDir::new("m-away");
    let (bridge, net) = Bridge::memory(&dir, &["--reply-grace", "300"]);
    let requests = [ping_memory(&net, 1, 56), ping_memory(&net, 2, 56)];
    bridge.wait_total(Count::Queued, 2, Duration::from_secs(5));
    // A READ, then a bad WRITE, each from a client that never opens the answer FIFO.
    write_raw(&bridge.cmd, b"READ\n");
    write_raw(&bridge.cmd, b"WRITE zz\n");
    bridge.wait_total(Count::Abandoned, 1, Duration::from_secs(5));
    bridge.wait_total(Count::Discarded, 1, Duration::from_secs(5));
    // Past the grace period the next clients get the queued packets, in order, not the stale ERR.
    let first = bridge.exchange("READ");
    let second = bridge.exchange("READ");
    assert_eq!((seq_of(&first), seq_of(&second)), (1, 2));
    assert_eq!(reply_to(&bridge, &first), "OK");
    assert_eq!(reply_to(&bridge, &second), "OK");
    assert_replied(&net, &requests[0]);
    assert_replied(&net, &requests[1]);
}

#[test]
fn a_burst_of_unread_commands_is_discarded_within_the_grace_period() {
    let dir = TempDir::new("m-burst");
    let (bridge, net) = Bridge::memory(&dir, &["--reply-grace", "300"]);
    let request = ping_memory(&net, 1, 56);
    bridge.wait_total(Count::Queued, 1, Duration::from_secs(5));
    // A confused agent writes a script's worth of commands at once and reads no answer.
    let burst: Vec<u8> = b"HELLO\nREAD\nWRITE zz\n".repeat(20);
    write_raw(&bridge.cmd, &burst);
    // All 60 answers are given up on within the grace period of their arrival, not one after
    // another: the next client, a second later, gets its packet and not a stale ERR.
    std::thread::sleep(Duration::from_secs(1));
    let line = bridge.exchange("READ");
    assert!(
        !line.starts_with("ERR"),
        "a stale answer reached the next client: {line}"
    );
    assert_eq!(reply_to(&bridge, &line), "OK");
    assert_replied(&net, &request);
    assert_eq!(bridge.counts.get(Count::Discarded), 40);
    assert_eq!(bridge.counts.get(Count::Abandoned), 20);
}

#[test]
fn a_writer_killed_mid_line_does_not_block_the_next_client() {
    let dir = TempDir::new("m-half");
    let (bridge, net) = Bridge::memory(&dir, &[]);
    // Half a WRITE, no newline, then silence with the write end held open.
    let script = format!(
        "exec 3>'{}'; printf 'WRITE 4500005400004000' >&3; exec sleep 60",
        bridge.cmd.display()
    );
    let mut half = Command::new("sh").args(["-c", &script]).spawn().unwrap();
    bridge.wait_total(Count::LineDropped, 1, Duration::from_secs(5));
    let request = ping_memory(&net, 1, 56);
    let read = bridge.cli(&["read"]);
    assert!(read.status.success(), "{read:?}");
    let line = String::from_utf8(read.stdout).unwrap();
    assert_eq!(reply_to(&bridge, line.trim()), "OK");
    assert_replied(&net, &request);
    // The killed writer leaves nothing behind: no answer for its half line, the next READ works.
    half.kill().unwrap();
    half.wait().unwrap();
    let request = ping_memory(&net, 2, 56);
    assert_eq!(answer_one(&bridge, |_| {}), "OK");
    assert_replied(&net, &request);
    assert_eq!(bridge.count_log("command refused"), 0);
}

#[test]
fn deleted_fifos_are_recreated() {
    let dir = TempDir::new("m-deleted");
    let (bridge, net) = Bridge::memory(&dir, &[]);
    std::fs::remove_file(&bridge.cmd).unwrap();
    std::fs::remove_file(&bridge.resp).unwrap();
    let is_fifo =
        |p: &std::path::Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_fifo());
    wait_until(Duration::from_secs(5), || {
        is_fifo(&bridge.cmd) && is_fifo(&bridge.resp)
    });
    for path in [&bridge.cmd, &bridge.resp] {
        let meta = std::fs::symlink_metadata(path).unwrap();
        assert!(meta.file_type().is_fifo(), "{}", path.display());
        assert_eq!(meta.mode() & 0o777, 0o600);
    }
    let request = ping_memory(&net, 1, 56);
    assert_eq!(answer_one(&bridge, |_| {}), "OK");
    assert_replied(&net, &request);
}

#[test]
fn a_fifo_replaced_by_a_file_or_link_stops_the_server_and_stays() {
    for link in [false, true] {
        let dir = TempDir::new("m-replaced");
        let (mut bridge, _net) = Bridge::memory(&dir, &[]);
        let target = dir.join("precious");
        std::fs::write(&target, b"keep me\n").unwrap();
        // Swapped in atomically with rename, as an attacker would.
        let staged = dir.join("staged");
        if link {
            std::os::unix::fs::symlink(&target, &staged).unwrap();
        } else {
            std::fs::copy(&target, &staged).unwrap();
        }
        std::fs::rename(&staged, &bridge.resp).unwrap();
        let error = bridge.ended(Duration::from_secs(5)).unwrap_err();
        assert!(
            error.contains("was replaced by something that is not our FIFO"),
            "{error}"
        );
        let meta = std::fs::symlink_metadata(&bridge.resp).unwrap();
        assert_eq!(meta.file_type().is_symlink(), link);
        assert_eq!(std::fs::read(&bridge.resp).unwrap(), b"keep me\n");
        assert_eq!(std::fs::read(&target).unwrap(), b"keep me\n");
        assert!(!bridge.cmd.exists(), "our own command FIFO is removed");
    }
}

#[test]
fn concurrent_clients_each_get_their_own_packet_and_answer() {
    const N: u16 = 4;
    let dir = TempDir::new("m-concurrent");
    let rec = dir.record();
    let (bridge, net) = Bridge::memory(&dir, &["--record", rec.to_str().unwrap()]);
    let requests: Vec<Vec<u8>> = (1..=N).map(|seq| ping_memory(&net, seq, 56)).collect();
    bridge.wait_total(Count::Queued, N.into(), Duration::from_secs(5));
    let reads: Vec<Child> = (0..N).map(|_| bridge.spawn_cli(&["read"])).collect();
    let lines: Vec<String> = reads
        .into_iter()
        .map(|c| stdout_line(c.wait_with_output().unwrap()))
        .collect();
    let mut seqs: Vec<u16> = lines.iter().map(|l| seq_of(l)).collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=N).collect::<Vec<_>>(),
        "each reader gets its own packet"
    );
    let writes: Vec<Child> = lines
        .iter()
        .map(|l| {
            let reply = reference_reply(&hex::decode(l).unwrap());
            bridge.spawn_cli(&["write", &hex::encode(reply)])
        })
        .collect();
    for w in writes {
        assert_eq!(stdout_line(w.wait_with_output().unwrap()), "OK");
    }
    let mut replies: Vec<Vec<u8>> = (0..N)
        .map(|_| net.recv(Duration::from_secs(5)).unwrap().expect("a reply"))
        .collect();
    let mut want: Vec<Vec<u8>> = requests.iter().map(|r| reference_reply(r)).collect();
    replies.sort();
    want.sort();
    assert_eq!(replies, want);
    // Judged and recorded after the write, so the last line may come just after its reply.
    let lines = records_once(&rec, N.into(), answered);
    assert!(lines.iter().all(|l| l["verdict"] == "valid"), "{lines:#?}");
    assert_eq!(lines.len(), usize::from(N));
}

#[test]
fn a_read_gets_the_oldest_fresh_packet_after_a_stale_expiry() {
    let dir = TempDir::new("m-order-stale");
    let rec = dir.record();
    let (bridge, net) = Bridge::memory(
        &dir,
        &[
            "--max-age",
            "1",
            "--queue-size",
            "64",
            "--record",
            rec.to_str().unwrap(),
        ],
    );
    ping_memory(&net, 1, 56);
    bridge.wait_total(Count::Queued, 1, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(1200));
    // A READ waits on a queue whose only packet is stale; twenty fresh ones arrive at once.
    let client = bridge.client();
    let waiting = std::thread::spawn(move || client.exchange("READ").unwrap());
    std::thread::sleep(Duration::from_millis(100));
    for seq in 2..=21 {
        ping_memory(&net, seq, 56);
    }
    let first = waiting.join().unwrap();
    assert_eq!(seq_of(&first), 2, "the oldest fresh packet first");
    for seq in 3..=21 {
        assert_eq!(seq_of(&bridge.exchange("READ")), seq);
    }
    // The stale one is summarised once its second is over: one line, for one request.
    let stale = |l: &serde_json::Value| l["outcome"] == "stale";
    let lines = records_once(&rec, 1, stale);
    let counts: Vec<_> = lines
        .iter()
        .filter(|l| stale(l))
        .map(|l| &l["count"])
        .collect();
    assert_eq!(counts, [1]);
}

#[test]
fn a_read_gets_the_oldest_packet_when_a_large_one_comes_first() {
    let dir = TempDir::new("m-order-large");
    let (bridge, net) = Bridge::memory(&dir, &["--mtu", "9000"]);
    for round in 0..10u16 {
        let client = bridge.client();
        let waiting = std::thread::spawn(move || client.exchange("READ").unwrap());
        std::thread::sleep(Duration::from_millis(20));
        // Over PIPE_BUF as hex: a 3000-byte packet, then a small one right behind it.
        let large = ping_memory(&net, 2 * round + 1, 2972);
        let small = ping_memory(&net, 2 * round + 2, 56);
        assert_eq!(hex::decode(waiting.join().unwrap()).unwrap(), large);
        assert_eq!(hex::decode(bridge.exchange("READ")).unwrap(), small);
    }
}

#[test]
fn strict_mode_refuses_invalid_replies() {
    let dir = TempDir::new("m-strict");
    let rec = dir.join("rec.jsonl");
    let (bridge, net) = Bridge::memory(&dir, &["--strict", "--record", rec.to_str().unwrap()]);
    let request = ping_memory(&net, 1, 56);
    let line = bridge.exchange("READ");
    assert_eq!(hex::decode(&line).unwrap(), request);
    let good = reference_reply(&request);
    let mut bad = good.clone();
    bad[23] ^= 0x01;
    let answer = write_packet(&bridge, &bad);
    assert!(
        answer.starts_with("ERR bad ICMP checksum: got 0x"),
        "{answer}"
    );
    let mut bad_ip = good.clone();
    bad_ip[11] ^= 0x01;
    let answer = write_packet(&bridge, &bad_ip);
    assert!(
        answer.starts_with("ERR bad IPv4 header checksum"),
        "{answer}"
    );
    assert_nothing_written(&bridge, &net);
    // The agent may try again; the correct reply goes through.
    assert_eq!(write_packet(&bridge, &good), "OK");
    assert_replied(&net, &request);
    assert_eq!(records_once(&rec, 1, answered)[0]["verdict"], "valid");
    // A reply to nothing is refused in strict mode.
    let answer = write_packet(&bridge, &good);
    assert_eq!(answer, "ERR no matching request");
}

#[test]
fn default_mode_writes_first_and_judges_after() {
    let dir = TempDir::new("m-judge");
    let rec = dir.join("rec.jsonl");
    let (mut bridge, net) = Bridge::memory(&dir, &["--record", rec.to_str().unwrap()]);
    let request = ping_memory(&net, 1, 56);
    assert_eq!(answer_one(&bridge, |r| r[23] ^= 0x01), "OK");
    let got = net.recv(Duration::from_secs(5)).unwrap().expect("written");
    assert_ne!(got, reference_reply(&request));
    let request = ping_memory(&net, 2, 56);
    assert_eq!(answer_one(&bridge, |_| {}), "OK");
    assert_replied(&net, &request);
    bridge.stop().unwrap();
    let lines = records(&rec);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0]["verdict"]
        .as_str()
        .unwrap()
        .starts_with("bad ICMP checksum"));
    assert_eq!(lines[1]["verdict"], "valid");
    for l in &lines {
        assert_eq!(l["outcome"], "answered");
        assert_eq!(l["written"], true);
        let (agent, rtt) = (
            l["agent_ms"].as_f64().unwrap(),
            l["rtt_ms"].as_f64().unwrap(),
        );
        assert!(agent >= 0.0 && rtt >= agent, "{l}");
    }
}

#[test]
fn spoofed_or_foreign_packets_are_refused_in_every_mode() {
    for mode in [&[][..], &["--strict"][..]] {
        let dir = TempDir::new("m-spoof");
        let (bridge, net) = Bridge::memory(&dir, mode);
        let request = ping_memory(&net, 1, 56);
        assert_eq!(hex::decode(bridge.exchange("READ")).unwrap(), request);
        let good = reference_reply(&request);
        let mut spoofed = good.clone();
        spoofed[12..16].copy_from_slice(&[192, 0, 2, 99]);
        fix_ip(&mut spoofed);
        let answer = write_packet(&bridge, &spoofed);
        assert_eq!(
            answer, "ERR source 192.0.2.99 is not the agent's address 192.0.2.2",
            "{mode:?}"
        );
        let mut foreign = good.clone();
        foreign[16..20].copy_from_slice(&[198, 51, 100, 7]);
        fix_ip(&mut foreign);
        let answer = write_packet(&bridge, &foreign);
        assert_eq!(
            answer, "ERR destination 198.51.100.7 is not the host side 192.0.2.1",
            "{mode:?}"
        );
        assert_nothing_written(&bridge, &net);
        assert_eq!(write_packet(&bridge, &good), "OK");
        assert_replied(&net, &request);
    }
}

#[test]
fn dropped_and_unanswered_requests_get_a_line() {
    let dir = TempDir::new("m-drops");
    let rec = dir.join("rec.jsonl");
    let (mut bridge, net) = Bridge::memory(
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
    // Three requests into a queue of two: one overflows.
    for seq in 1..=3 {
        ping_memory(&net, seq, 56);
    }
    // The other two go stale after a second; the drops of that second are summarised.
    records_once(&rec, 1, |l| l["outcome"] == "stale" && l["count"] == 2);
    // One more is read and never answered before the bridge stops.
    ping_memory(&net, 4, 56);
    assert_eq!(seq_of(&bridge.exchange("READ")), 4);
    bridge.stop().unwrap();
    let lines: Vec<(String, Option<u64>, Option<u64>)> = records(&rec)
        .iter()
        .map(|l| {
            let outcome = l["outcome"].as_str().unwrap().to_string();
            (outcome, l["count"].as_u64(), l["seq"].as_u64())
        })
        .collect();
    assert_eq!(
        lines,
        [
            ("overflow".into(), Some(1), None),
            ("stale".into(), Some(2), None),
            ("unanswered".into(), None, Some(4)),
        ],
        "{lines:?}"
    );
}

#[test]
fn a_flood_of_drops_is_summarised_and_every_request_read_keeps_its_line() {
    let dir = TempDir::new("m-flood");
    let rec = dir.join("rec.jsonl");
    let (mut bridge, net) = Bridge::memory(
        &dir,
        &["--queue-size", "4", "--record", rec.to_str().unwrap()],
    );
    // 3000 requests and nobody reading: all but the last four overflow.
    for seq in 1..=3000 {
        ping_memory(&net, seq, 56);
    }
    bridge.wait_total(Count::Queued, 3000, Duration::from_secs(20));
    // The agent reads and answers two of the four left; two stay queued until the stop.
    for _ in 0..2 {
        assert_eq!(answer_one(&bridge, |_| {}), "OK");
    }
    bridge.stop().unwrap();
    let lines = records(&rec);
    let count = |outcome: &str| -> u64 {
        lines
            .iter()
            .filter(|l| l["outcome"] == outcome)
            .map(|l| l["count"].as_u64().unwrap_or(1))
            .sum()
    };
    assert_eq!(count("overflow"), 2996);
    assert_eq!(count("answered"), 2);
    assert_eq!(count("unanswered"), 2, "still queued at the stop");
    // A handful of summary lines, not one per packet; the answered ones keep theirs.
    assert!(lines.len() <= 8, "{} record lines", lines.len());
    let answered: Vec<u64> = lines
        .iter()
        .filter(|l| l["outcome"] == "answered")
        .map(|l| l["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(answered, [2997, 2998]);
    let summaries = bridge.count_log("requests dropped before the agent read them");
    assert!(
        (1..=6).contains(&summaries),
        "{summaries} summary log lines"
    );
}

#[test]
fn a_device_that_goes_away_stops_the_server_with_a_clear_error() {
    let dir = TempDir::new("m-devgone");
    let (mut bridge, net) = Bridge::memory(&dir, &[]);
    drop(net);
    let error = bridge.ended(Duration::from_secs(5)).unwrap_err();
    assert!(error.contains("the device mem0 is gone"), "{error}");
    assert!(!bridge.cmd.exists() && !bridge.resp.exists());
}

#[test]
fn a_reply_whose_ok_waits_for_its_reader_keeps_its_record_line() {
    // A raw client sends its WRITE and opens the answer FIFO only later; meanwhile a
    // `tunbridge write` answers another request on the channel. Both replies are judged
    // and recorded, each once, whichever OK reaches its client first.
    let dir = TempDir::new("m-late-ok");
    let rec = dir.record();
    let (mut bridge, net) = Bridge::memory(&dir, &["--record", rec.to_str().unwrap()]);
    let requests = [ping_memory(&net, 1, 56), ping_memory(&net, 2, 56)];
    for request in &requests {
        assert_eq!(hex::decode(bridge.exchange("READ")).unwrap(), *request);
    }
    let first = format!("WRITE {}\n", hex::encode(reference_reply(&requests[0])));
    write_raw(&bridge.cmd, first.as_bytes());
    // On the device: the WRITE was acted on, and its OK waits for the raw client.
    assert_replied(&net, &requests[0]);
    assert_eq!(reply_to(&bridge, &hex::encode(&requests[1])), "OK");
    assert_replied(&net, &requests[1]);
    assert_eq!(std::fs::read_to_string(&bridge.resp).unwrap(), "OK\n");
    bridge.stop().unwrap();
    let lines: Vec<_> = records(&rec)
        .iter()
        .map(|l| (l["outcome"].clone(), l["seq"].clone(), l["verdict"].clone()))
        .collect();
    let want = |seq: u16| ("answered".into(), seq.into(), "valid".into());
    assert_eq!(lines, [want(1), want(2)], "{lines:?}");
}
