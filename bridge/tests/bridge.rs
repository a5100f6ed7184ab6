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
#[ignore = "needs root"]
fn answers_pings_of_every_size() {
    let (ns, _dir, bridge) = root_bridge("sizes", &[]);
    for size in [0usize, 1, 56, 57, 1400] {
        let ping = ns.spawn_ping(size, 1, 10);
        assert_eq!(answer_one(&bridge, |_| {}), "OK", "size {size}");
        let out = ping.wait_with_output().unwrap();
        assert_received(&out, 1);
        assert!(out.status.success(), "ping -s {size} failed");
    }
}

#[test]
#[ignore = "needs root"]
fn sigterm_and_sigint_clean_up() {
    require_root();
    for signal in [Signal::SIGTERM, Signal::SIGINT] {
        let ns = Netns::new("sig");
        let dir = TempDir::new("sig");
        let mut bridge = Bridge::start(&ns, &dir, &[]);
        assert!(ns.has_link("tun0"));
        let meta = std::fs::symlink_metadata(&bridge.cmd).unwrap();
        assert!(meta.file_type().is_fifo());
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_stops_cleanly(&mut bridge, &ns, signal);
    }
}

#[test]
#[ignore = "needs root"]
fn restart_after_kill_9_on_the_same_paths() {
    let (ns, dir, mut first) = root_bridge("kill9", &[]);
    first.stop_with(Signal::SIGKILL);
    assert!(first.cmd.exists(), "kill -9 leaves the FIFOs behind");
    let second = Bridge::start(&ns, &dir, &[]);
    ping_answered(&ns, &second);
}

#[test]
#[ignore = "needs root"]
fn ipv6_never_reaches_the_agent() {
    let (ns, _dir, bridge) = root_bridge("v6", &["--read-timeout", "2"]);
    // Router solicitations would come within the first seconds after link up.
    assert_eq!(bridge.exchange("READ"), "TIMEOUT");
    let ping = ns.spawn_ping(56, 1, 10);
    let line = bridge.exchange("READ");
    assert!(line.starts_with('4'), "not IPv4: {line:.20}");
    drop(ping);
}

#[test]
#[ignore = "needs root"]
fn cpu_pins_the_daemon_and_a_bad_cpu_is_refused() {
    let (ns, dir, mut bridge) = root_bridge("cpu", &["--cpu", "0"]);
    bridge.wait_log("pinned to CPU", std::time::Duration::from_secs(1));
    let status = std::fs::read_to_string(format!("/proc/{}/status", bridge.child().id())).unwrap();
    let allowed = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap();
    assert_eq!(allowed.trim(), "0");
    ping_answered(&ns, &bridge);
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
