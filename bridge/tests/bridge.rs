//! End-to-end tests of `tunbridge serve` against real `ping` (iputils).
//!
//! These need root: each creates its own network namespace, starts the daemon
//! inside it, and pings only the agent's address there (see `common`). The FIFO
//! protocol itself is tested without root on the in-memory device, in `server.rs`.

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt};

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

#[test]
fn cpu_pins_the_daemon_and_a_bad_cpu_is_refused() {
    if !root_or_skip("cpu_pins_the_daemon_and_a_bad_cpu_is_refused") {
        return;
    }
    let ns = Netns::new("cpu");
    let dir = TempDir::new("cpu");
    let mut bridge = Bridge::start(&ns, &dir, &["--cpu", "0"]);
    bridge.wait_log("pinned to CPU", std::time::Duration::from_secs(1));
    let status = std::fs::read_to_string(format!("/proc/{}/status", bridge.child().id())).unwrap();
    let allowed = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap();
    assert_eq!(allowed.trim(), "0");
    let ping = ns.spawn_ping(56, 1, 10);
    assert_eq!(answer_one(&bridge, |_| {}), "OK");
    assert_received(&ping.wait_with_output().unwrap(), 1);
    drop(bridge);
    let out = std::process::Command::new(BIN)
        .args([
            "serve",
            "--netns",
            &ns.name,
            "--keep-root",
            "--cpu",
            "100000",
        ])
        .arg("--cmd-fifo")
        .arg(dir.join("cmd2"))
        .arg("--resp-fifo")
        .arg(dir.join("resp2"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot pin to CPU 100000"), "{err}");
}
