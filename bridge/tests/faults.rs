//! Faults that need the real TUN device: a flood against the queue bound and age
//! limit, and the device deleted under the daemon.
//!
//! Needs root: each test makes its own network namespace, starts the daemon inside it
//! and pings only the agent's address there (see `common`). `kill -9` and restart, and
//! SIGINT/SIGTERM, are in `bridge.rs`; clients that vanish or stall and FIFOs that
//! disappear or are replaced run without root on the in-memory device, in `server.rs`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use tunbridge::ipc::client::Client;
use tunbridge::wire;

/// Waits for the daemon to exit on its own; panics after `limit`.
fn wait_exit(bridge: &mut Bridge, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = bridge.child().try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the daemon is still running");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[ignore = "needs root"]
fn a_deleted_tun_device_stops_the_daemon_with_a_clear_error() {
    let (ns, _dir, mut bridge) = root_bridge("linkdel", &[]);
    assert!(ns.has_link("tun0"));
    let out = ns.exec(&["ip", "link", "del", "tun0"]);
    assert!(out.status.success(), "{out:?}");
    let status = wait_exit(&mut bridge, Duration::from_secs(5));
    assert_eq!(status.code(), Some(1), "exit status {status}");
    bridge.wait_log("the device tun0 is gone", Duration::from_secs(1));
    assert_eq!(bridge.count_log("reading the TUN device failed"), 0);
    assert!(
        !bridge.cmd.exists() && !bridge.resp.exists(),
        "FIFOs removed"
    );
}

/// The agent as a thread on the library: READ, reference reply, WRITE, until told to stop.
struct Agent {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl Agent {
    fn start(client: Client) -> Agent {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicU64::new(0));
        let (s, a) = (Arc::clone(&stop), Arc::clone(&answered));
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let line = client.exchange("READ").expect("READ");
                let Ok(request) = hex::decode(&line) else {
                    continue;
                };
                let Ok(reply) = wire::echo_reply(&request) else {
                    continue;
                };
                let _ = client.exchange(&format!("WRITE {}", hex::encode(reply)));
                a.fetch_add(1, Ordering::Relaxed);
            }
        });
        Agent {
            stop,
            answered,
            thread,
        }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("agent thread");
        self.answered.load(Ordering::Relaxed)
    }
}

/// Checks that no packet was handed to the agent after waiting longer than `max_age`
/// (a little slack for the time between taking it from the queue and the log line).
fn assert_no_old_handover(log: &[String], max_age: Duration) {
    let limit = max_age.as_secs_f64() * 1000.0 + 100.0;
    for line in log.iter().filter(|l| l.contains("request handed")) {
        let ms: f64 = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("queue_ms="))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no queue_ms in {line:?}"));
        assert!(ms <= limit, "handed over after {ms} ms: {line}");
    }
}

/// How many packets the log shows dropped with this outcome.
fn dropped_as(bridge: &Bridge, outcome: &str) -> usize {
    let log = bridge.log.lock().unwrap();
    let tag = |l: &&String| {
        l.contains(&format!("outcome={outcome}")) || l.contains(&format!("outcome=\"{outcome}\""))
    };
    log.iter()
        .filter(|l| l.contains("request dropped"))
        .filter(tag)
        .count()
}

/// Resident memory of a process in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Checks, line by line in log order, that arrivals minus drops and hand-overs never
/// exceeded `bound`, give or take the two packets whose log line comes before or after
/// the queue change (an arrival is logged before its push, a hand-over after its pop).
fn assert_queue_bounded(log: &[String], bound: usize) {
    let mut held: i64 = 0;
    for line in log {
        if line.contains("request queued") {
            held += 1;
        } else if line.contains("request dropped") || line.contains("request handed") {
            held -= 1;
        }
        assert!(
            held <= bound as i64 + 2,
            "more than {bound} packets held: {held}"
        );
    }
}

#[test]
#[ignore = "needs root"]
fn a_flood_keeps_memory_flat_and_the_queue_bounded() {
    require_root();
    const QUEUE: usize = 16;
    let ns = Netns::new("flood");
    let dir = TempDir::new("flood");
    let mut bridge = Bridge::start(
        &ns,
        &dir,
        &[
            "--queue-size",
            "16",
            "--max-age",
            "1",
            "--read-timeout",
            "1",
        ],
    );
    let pid = bridge.child().id();
    let agent = Agent::start(bridge.client());
    // Warm up, so allocations that are made once are made, then flood: first one ping
    // at a time as fast as answers come, then 32 at a time, more than the queue holds.
    let warm = ns.exec(&["ping", "-n", "-q", "-f", "-c", "300", "-W", "1", PEER]);
    assert!(String::from_utf8_lossy(&warm.stdout).contains("300 packets transmitted"));
    let before = rss_kib(pid);
    let started = Instant::now();
    let mut summary = String::new();
    for preload in ["1", "32"] {
        let out = ns.exec(&[
            "ping", "-n", "-q", "-f", "-l", preload, "-c", "3000", "-W", "1", PEER,
        ]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(text.contains("3000 packets transmitted"), "{text}");
        summary += &text;
    }
    let took = started.elapsed();
    let after = rss_kib(pid);
    let answered = agent.stop();
    eprintln!("flood: {took:?}, agent answered {answered}, rss {before} -> {after} KiB\n{summary}");
    assert!(bridge.alive(), "the daemon died in the flood");
    assert!(
        bridge.count_log("request dropped") > 0,
        "the preloaded flood overflowed the queue"
    );
    assert!(
        after <= before + 1024,
        "memory grew from {before} to {after} KiB"
    );
    assert_no_old_handover(&bridge.log.lock().unwrap(), Duration::from_secs(1));

    // Without an agent: everything queued is dropped, by overflow or by age, and counted.
    // First let what the flood left in the queue age out.
    std::thread::sleep(Duration::from_millis(1700));
    let queued0 = bridge.count_log("request queued");
    let dropped0 = bridge.count_log("request dropped");
    let (overflow0, stale0) = (
        dropped_as(&bridge, "overflow"),
        dropped_as(&bridge, "stale"),
    );
    let out = ns.exec(&[
        "ping", "-n", "-q", "-i", "0.005", "-c", "200", "-W", "1", PEER,
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("200 packets transmitted"));
    std::thread::sleep(Duration::from_millis(1800));
    let queued = bridge.count_log("request queued") - queued0;
    let dropped = bridge.count_log("request dropped") - dropped0;
    let overflow = dropped_as(&bridge, "overflow") - overflow0;
    let stale = dropped_as(&bridge, "stale") - stale0;
    eprintln!("unread: queued {queued}, dropped {dropped} ({overflow} overflow, {stale} stale)");
    assert_eq!(queued, 200);
    assert_eq!(dropped, queued, "every unread packet is dropped and logged");
    assert_eq!(overflow + stale, dropped);
    assert!(stale >= QUEUE, "the last {QUEUE} go by age: {stale}");
    assert!(overflow >= 1, "the queue overflowed");
    assert_queue_bounded(&bridge.log.lock().unwrap(), QUEUE);
    // Nothing old is handed out any more.
    assert_eq!(bridge.exchange("READ"), "TIMEOUT");
    assert!(bridge.alive());
    assert_eq!(
        bridge.stop_with(nix::sys::signal::Signal::SIGTERM).code(),
        Some(0)
    );
}
