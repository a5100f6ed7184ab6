//! Faults: clients that vanish or stall, FIFOs that disappear or are replaced, clients
//! at once, and a flood against the queue bound and age limit.
//!
//! Needs root: each test makes its own network namespace, starts the daemon inside it
//! and pings only the agent's address there (see `common`). `kill -9` and restart, and
//! SIGINT/SIGTERM, are in `bridge.rs`.

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use tunbridge::client::Client;
use tunbridge::exchange::Request;
use tunbridge::wire;

/// The ICMP sequence number of a READ answer.
fn seq_of(line: &str) -> u16 {
    let packet = hex::decode(line).unwrap_or_else(|_| panic!("not a packet: {line:?}"));
    let key = Request::parse(&packet).key.and_then(|k| k.echo());
    key.expect("an echo request").1
}

/// Writes the reference reply to a READ answer; returns the WRITE answer.
fn reply_to(bridge: &Bridge, line: &str) -> String {
    let reply = reference_reply(&hex::decode(line).unwrap());
    bridge.exchange(&format!("WRITE {}", hex::encode(reply)))
}

/// Waits until `n` log lines contain `text`.
fn wait_count(bridge: &Bridge, text: &str, n: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    while bridge.count_log(text) < n {
        assert!(
            Instant::now() < deadline,
            "fewer than {n} log lines with {text:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for the daemon to exit on its own; panics after `limit`.
fn wait_exit(bridge: &mut Bridge, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = bridge.child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the daemon is still running");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn clients_that_go_away_lose_nothing_and_get_nothing_stale() {
    if !root_or_skip("clients_that_go_away_lose_nothing_and_get_nothing_stale") {
        return;
    }
    let ns = Netns::new("away");
    let dir = TempDir::new("away");
    let bridge = Bridge::start(&ns, &dir, &["--reply-grace", "300"]);
    let ping = ns.spawn_ping(56, 2, 10);
    wait_count(&bridge, "request queued", 2, Duration::from_secs(5));
    // A READ, then a bad WRITE, each from a client that never opens the answer FIFO.
    write_raw(&bridge.cmd, b"READ\n");
    write_raw(&bridge.cmd, b"WRITE zz\n");
    bridge.wait_log("READ abandoned", Duration::from_secs(5));
    bridge.wait_log("nobody read the answer", Duration::from_secs(5));
    // Past the grace period the next clients get the queued packets, in order, not the stale ERR.
    let first = bridge.exchange("READ");
    let second = bridge.exchange("READ");
    assert_eq!((seq_of(&first), seq_of(&second)), (1, 2));
    assert_eq!(reply_to(&bridge, &first), "OK");
    assert_eq!(reply_to(&bridge, &second), "OK");
    assert_received(&ping.wait_with_output().unwrap(), 2);
}

#[test]
fn a_burst_of_unread_commands_is_discarded_within_the_grace_period() {
    if !root_or_skip("a_burst_of_unread_commands_is_discarded_within_the_grace_period") {
        return;
    }
    let ns = Netns::new("burst");
    let dir = TempDir::new("burst");
    let bridge = Bridge::start(&ns, &dir, &["--reply-grace", "300"]);
    let ping = ns.spawn_ping(56, 1, 10);
    bridge.wait_log("request queued", Duration::from_secs(5));
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
    assert_received(&ping.wait_with_output().unwrap(), 1);
    assert_eq!(bridge.count_log("nobody read the answer"), 40);
    assert_eq!(bridge.count_log("READ abandoned"), 20);
}

#[test]
fn a_writer_killed_mid_line_does_not_block_the_next_client() {
    if !root_or_skip("a_writer_killed_mid_line_does_not_block_the_next_client") {
        return;
    }
    let ns = Netns::new("half");
    let dir = TempDir::new("half");
    let bridge = Bridge::start(&ns, &dir, &[]);
    // Half a WRITE, no newline, then silence with the write end held open.
    let script = format!(
        "exec 3>'{}'; printf 'WRITE 4500005400004000' >&3; sleep 60",
        bridge.cmd.display()
    );
    let mut half = Command::new("sh").args(["-c", &script]).spawn().unwrap();
    bridge.wait_log("unfinished command line dropped", Duration::from_secs(5));
    let ping = ns.spawn_ping(56, 1, 10);
    let read = bridge.cli(&["read"]);
    assert!(read.status.success(), "{read:?}");
    let line = String::from_utf8(read.stdout).unwrap();
    assert_eq!(reply_to(&bridge, line.trim()), "OK");
    assert_received(&ping.wait_with_output().unwrap(), 1);
    // The killed writer leaves nothing behind: no answer for its half line, the next READ works.
    half.kill().unwrap();
    half.wait().unwrap();
    let ping = ns.spawn_ping(56, 1, 10);
    assert_eq!(answer_one(&bridge, |_| {}), "OK");
    assert_received(&ping.wait_with_output().unwrap(), 1);
    assert_eq!(bridge.count_log("command refused"), 0);
}

#[test]
fn deleted_fifos_are_recreated() {
    if !root_or_skip("deleted_fifos_are_recreated") {
        return;
    }
    let ns = Netns::new("deleted");
    let dir = TempDir::new("deleted");
    let bridge = Bridge::start(&ns, &dir, &[]);
    std::fs::remove_file(&bridge.cmd).unwrap();
    std::fs::remove_file(&bridge.resp).unwrap();
    wait_count(&bridge, "FIFO was deleted", 2, Duration::from_secs(5));
    for path in [&bridge.cmd, &bridge.resp] {
        let meta = std::fs::symlink_metadata(path).unwrap();
        assert!(meta.file_type().is_fifo(), "{}", path.display());
        assert_eq!(meta.mode() & 0o777, 0o600);
    }
    let ping = ns.spawn_ping(56, 1, 10);
    assert_eq!(answer_one(&bridge, |_| {}), "OK");
    assert_received(&ping.wait_with_output().unwrap(), 1);
}

#[test]
fn a_fifo_replaced_by_a_file_or_link_stops_the_daemon_and_stays() {
    if !root_or_skip("a_fifo_replaced_by_a_file_or_link_stops_the_daemon_and_stays") {
        return;
    }
    for link in [false, true] {
        let ns = Netns::new("replaced");
        let dir = TempDir::new("replaced");
        let mut bridge = Bridge::start(&ns, &dir, &[]);
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
        let status = wait_exit(&mut bridge, Duration::from_secs(5));
        assert!(!status.success(), "exit status {status}");
        bridge.wait_log(
            "was replaced by something that is not our FIFO",
            Duration::from_secs(1),
        );
        let meta = std::fs::symlink_metadata(&bridge.resp).unwrap();
        assert_eq!(meta.file_type().is_symlink(), link);
        assert_eq!(std::fs::read(&bridge.resp).unwrap(), b"keep me\n");
        assert_eq!(std::fs::read(&target).unwrap(), b"keep me\n");
        assert!(!bridge.cmd.exists(), "our own command FIFO is removed");
        assert!(!ns.has_link("tun0"));
    }
}

#[test]
fn concurrent_clients_each_get_their_own_packet_and_answer() {
    if !root_or_skip("concurrent_clients_each_get_their_own_packet_and_answer") {
        return;
    }
    const N: u16 = 4;
    let ns = Netns::new("concurrent");
    let dir = TempDir::new("concurrent");
    let bridge = Bridge::start(&ns, &dir, &[]);
    let ping = ns.exec_spawn(&["ping", "-n", "-c", "4", "-i", "0.2", "-W", "10", PEER]);
    wait_count(&bridge, "request queued", N.into(), Duration::from_secs(5));
    let reads: Vec<Child> = (0..N).map(|_| spawn_cli(&bridge, &["read"])).collect();
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
            spawn_cli(&bridge, &["write", &hex::encode(reply)])
        })
        .collect();
    for w in writes {
        assert_eq!(stdout_line(w.wait_with_output().unwrap()), "OK");
    }
    assert_received(&ping.wait_with_output().unwrap(), N.into());
    assert_eq!(bridge.count_log("verdict=valid"), usize::from(N));
}

/// Starts `tunbridge <args>` on the bridge's FIFOs.
fn spawn_cli(bridge: &Bridge, args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .arg("--cmd-fifo")
        .arg(&bridge.cmd)
        .arg("--resp-fifo")
        .arg(&bridge.resp)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

fn stdout_line(out: Output) -> String {
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "{text:?}");
    text.trim_end().to_string()
}

trait SpawnIn {
    fn exec_spawn(&self, args: &[&str]) -> Child;
}

impl SpawnIn for Netns {
    /// Starts a command inside the namespace with its output captured.
    fn exec_spawn(&self, args: &[&str]) -> Child {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
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
fn a_flood_keeps_memory_flat_and_the_queue_bounded() {
    if !root_or_skip("a_flood_keeps_memory_flat_and_the_queue_bounded") {
        return;
    }
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
    let pid = bridge.child.id();
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
