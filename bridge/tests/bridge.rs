//! End-to-end tests of `tunbridge serve` against real `ping` (iputils).
//!
//! These need root: each creates its own network namespace, starts the daemon
//! inside it, and pings only the agent's address there (see `common`).

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;

#[test]
fn answers_pings_of_every_size() {
    if !root_or_skip("answers_pings_of_every_size") {
        return;
    }
    let ns = Netns::new("sizes");
    let dir = TempDir::new("sizes");
    let bridge = Bridge::start(&ns, &dir, &[]);
    for size in [0usize, 1, 56, 57, 1400] {
        let ping = ns.spawn_ping(size, 1, 10);
        assert_eq!(answer_one(&bridge, |_| {}), "OK", "size {size}");
        let out = ping.wait_with_output().unwrap();
        assert_received(&out, 1);
        assert!(out.status.success(), "ping -s {size} failed");
    }
}

#[test]
fn published_step_one_form_works_unchanged() {
    if !root_or_skip("published_step_one_form_works_unchanged") {
        return;
    }
    let ns = Netns::new("raw");
    let dir = TempDir::new("raw");
    let bridge = Bridge::start(&ns, &dir, &[]);
    let ping = ns.spawn_ping(56, 1, 10);
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
    let request = hex::decode(line.trim()).expect("hex");
    let reply = reference_reply(&request);
    let write = format!(
        "echo \"WRITE {}\" > {cmd} && timeout 5 cat {resp}",
        hex::encode(reply)
    );
    let out = Command::new("sh").args(["-c", &write]).output().unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "OK\n");
    assert_received(&ping.wait_with_output().unwrap(), 1);
}

#[test]
fn client_commands_answer_by_hand() {
    if !root_or_skip("client_commands_answer_by_hand") {
        return;
    }
    let ns = Netns::new("cli");
    let dir = TempDir::new("cli");
    let bridge = Bridge::start(&ns, &dir, &[]);
    let ping = ns.spawn_ping(56, 1, 10);
    let out = bridge.cli(&["read"]);
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    let reply = reference_reply(&hex::decode(line.trim()).unwrap());
    // Grouped, upper-case hex as a model might write it.
    let grouped: Vec<String> = reply.chunks(2).map(hex::encode_upper).collect();
    let out = bridge.cli(&["write", &grouped.join(" ")]);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "OK\n");
    assert!(out.status.success());
    assert_received(&ping.wait_with_output().unwrap(), 1);
    let out = bridge.cli(&["write", "zz"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .starts_with("ERR bad hex"));
}

#[test]
fn read_times_out() {
    if !root_or_skip("read_times_out") {
        return;
    }
    let ns = Netns::new("timeout");
    let dir = TempDir::new("timeout");
    let bridge = Bridge::start(&ns, &dir, &["--read-timeout", "1"]);
    let start = Instant::now();
    assert_eq!(bridge.exchange("READ"), "TIMEOUT");
    assert!(start.elapsed() >= Duration::from_millis(900));
}

#[test]
fn bad_commands_get_one_err_line_and_nothing_is_written() {
    if !root_or_skip("bad_commands_get_one_err_line_and_nothing_is_written") {
        return;
    }
    let ns = Netns::new("err");
    let dir = TempDir::new("err");
    let mut bridge = Bridge::start(&ns, &dir, &["--mtu", "1000"]);
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
    assert_eq!(bridge.count_log("reply written"), 0);
    // The daemon still answers a real ping afterwards.
    let ping = ns.spawn_ping(56, 1, 10);
    assert_eq!(answer_one(&bridge, |_| {}), "OK");
    assert_received(&ping.wait_with_output().unwrap(), 1);
}

#[test]
fn absent_reader_loses_nothing() {
    if !root_or_skip("absent_reader_loses_nothing") {
        return;
    }
    let ns = Netns::new("absent");
    let dir = TempDir::new("absent");
    let bridge = Bridge::start(&ns, &dir, &["--reply-grace", "300"]);
    let ping = ns.spawn_ping(56, 1, 15);
    bridge.wait_log("request queued", Duration::from_secs(5));
    // A READ whose sender never opens the answer FIFO.
    write_raw(&bridge.cmd, b"READ\n");
    bridge.wait_log("READ abandoned", Duration::from_secs(5));
    // A WRITE whose answer nobody reads is discarded, not left for the next client.
    write_raw(&bridge.cmd, b"PING\n");
    bridge.wait_log("nobody read the answer", Duration::from_secs(5));
    assert_eq!(answer_one(&bridge, |_| {}), "OK");
    assert_received(&ping.wait_with_output().unwrap(), 1);
}

#[test]
fn reader_that_goes_away_does_not_take_the_packet() {
    if !root_or_skip("reader_that_goes_away_does_not_take_the_packet") {
        return;
    }
    let ns = Netns::new("gone");
    let dir = TempDir::new("gone");
    let bridge = Bridge::start(&ns, &dir, &[]);
    // The published form with a reader that gives up before any packet comes.
    let (cmd, resp) = (
        bridge.cmd.display().to_string(),
        bridge.resp.display().to_string(),
    );
    let sh = format!("echo READ > {cmd} && timeout 1 cat {resp}");
    let out = Command::new("sh").args(["-c", &sh]).output().unwrap();
    assert!(out.stdout.is_empty());
    bridge.wait_log("its reader went away", Duration::from_secs(5));
    let ping = ns.spawn_ping(56, 1, 10);
    assert_eq!(answer_one(&bridge, |_| {}), "OK");
    assert_received(&ping.wait_with_output().unwrap(), 1);
}

#[test]
fn sigterm_and_sigint_clean_up() {
    if !root_or_skip("sigterm_and_sigint_clean_up") {
        return;
    }
    for signal in [Signal::SIGTERM, Signal::SIGINT] {
        let ns = Netns::new("sig");
        let dir = TempDir::new("sig");
        let mut bridge = Bridge::start(&ns, &dir, &[]);
        assert!(ns.has_link("tun0"));
        let meta = std::fs::symlink_metadata(&bridge.cmd).unwrap();
        assert!(meta.file_type().is_fifo());
        assert_eq!(meta.mode() & 0o777, 0o600);
        let status = bridge.stop_with(signal);
        assert_eq!(status.code(), Some(0), "{signal}");
        assert!(
            !bridge.cmd.exists() && !bridge.resp.exists(),
            "FIFOs left after {signal}"
        );
        assert!(!ns.has_link("tun0"), "device left after {signal}");
    }
}

#[test]
fn restart_after_kill_9_on_the_same_paths() {
    if !root_or_skip("restart_after_kill_9_on_the_same_paths") {
        return;
    }
    let ns = Netns::new("kill9");
    let dir = TempDir::new("kill9");
    let mut first = Bridge::start(&ns, &dir, &[]);
    first.stop_with(Signal::SIGKILL);
    assert!(first.cmd.exists(), "kill -9 leaves the FIFOs behind");
    let second = Bridge::start(&ns, &dir, &[]);
    let ping = ns.spawn_ping(56, 1, 10);
    assert_eq!(answer_one(&second, |_| {}), "OK");
    assert_received(&ping.wait_with_output().unwrap(), 1);
}

#[test]
fn ipv6_never_reaches_the_agent() {
    if !root_or_skip("ipv6_never_reaches_the_agent") {
        return;
    }
    let ns = Netns::new("v6");
    let dir = TempDir::new("v6");
    let bridge = Bridge::start(&ns, &dir, &["--read-timeout", "2"]);
    // Router solicitations would come within the first seconds after link up.
    assert_eq!(bridge.exchange("READ"), "TIMEOUT");
    let ping = ns.spawn_ping(56, 1, 10);
    let line = bridge.exchange("READ");
    assert!(line.starts_with('4'), "not IPv4: {line:.20}");
    drop(ping);
}
