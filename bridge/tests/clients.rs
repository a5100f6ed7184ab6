//! `tunbridge read` / `write` among other clients: killed clients, a stray reader of the
//! answer FIFO, raw shell clients beside the agent, clients waiting their turn, and a
//! read timeout above the client's old 40 s. Each `tunbridge` client must get its own
//! answer, and no packet may be lost to a client that went away.
//!
//! Needs root: each test makes its own network namespace, starts the daemon inside it and
//! pings only the agent's address there (see `common`).

mod common;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use tunbridge::exchange::Request;
use tunbridge::wire;

/// Starts `tunbridge <args>` on the bridge's FIFOs, its output captured.
fn spawn_cli(bridge: &Bridge, args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .arg("--cmd-fifo")
        .arg(&bridge.cmd)
        .arg("--resp-fifo")
        .arg(&bridge.resp)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The one line a client printed, checking it exited 0.
fn stdout_line(out: Output) -> String {
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "{text:?}");
    text.trim_end().to_string()
}

/// The ICMP sequence number of a READ answer.
fn seq_of(line: &str) -> u16 {
    let packet = hex::decode(line).unwrap_or_else(|_| panic!("not a packet: {line:?}"));
    let key = Request::parse(&packet).key.and_then(|k| k.echo());
    key.expect("an echo request").1
}

/// The reference reply to a READ answer, as hex.
fn reply_hex(line: &str) -> String {
    hex::encode(wire::echo_reply(&hex::decode(line).unwrap()).unwrap())
}

/// Waits until `n` log lines contain `text`.
fn wait_count(bridge: &Bridge, text: &str, n: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    while bridge.count_log(text) < n {
        assert!(
            Instant::now() < deadline,
            "fewer than {n} log lines with {text:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A valid echo reply, as hex, to a request (id 0x7777) the bridge never handed out.
fn unasked_reply() -> String {
    let mut request = vec![
        0x45, 0, 0, 28, 0x12, 0x34, 0x40, 0, 64, 1, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2, 8, 0, 0, 0,
        0x77, 0x77, 0, 1,
    ];
    let c = wire::checksum::checksum(&request[..20]);
    request[10..12].copy_from_slice(&c.to_be_bytes());
    let c = wire::checksum::checksum(&request[20..]);
    request[22..24].copy_from_slice(&c.to_be_bytes());
    hex::encode(wire::echo_reply(&request).unwrap())
}

/// The published raw form, as a shell runs it.
fn raw(bridge: &Bridge, command: &str, wait: u32) -> String {
    raw_on(&bridge.cmd, &bridge.resp, command, wait)
}

/// The published raw form on these FIFOs.
fn raw_on(cmd: &Path, resp: &Path, command: &str, wait: u32) -> String {
    let script = format!(
        "echo \"{command}\" > {} && timeout {wait} cat {}",
        cmd.display(),
        resp.display()
    );
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_killed_reader_does_not_make_another_client_print_the_wrong_answer() {
    if !root_or_skip("a_killed_reader_does_not_make_another_client_print_the_wrong_answer") {
        return;
    }
    let ns = Netns::new("killed");
    let dir = TempDir::new("killed");
    let bridge = Bridge::start(&ns, &dir, &[]);
    // A waits in READ; B writes a reply to a request nobody made (written, and OK).
    let mut a = spawn_cli(&bridge, &["read"]);
    std::thread::sleep(Duration::from_millis(300));
    let b = spawn_cli(&bridge, &["write", &unasked_reply()]);
    std::thread::sleep(Duration::from_millis(300));
    a.kill().unwrap();
    a.wait().unwrap();
    let ping = ns.spawn_ping(56, 1, 10);
    bridge.wait_log("request queued", Duration::from_secs(5));
    // B gets its own OK, not the ping; the ping waits for the next READ.
    assert_eq!(stdout_line(b.wait_with_output().unwrap()), "OK");
    let line = stdout_line(spawn_cli(&bridge, &["read"]).wait_with_output().unwrap());
    assert_eq!(seq_of(&line), 1);
    let w = spawn_cli(&bridge, &["write", &reply_hex(&line)]);
    assert_eq!(stdout_line(w.wait_with_output().unwrap()), "OK");
    assert_received(&ping.wait_with_output().unwrap(), 1);
}

#[test]
fn a_stray_reader_of_the_answer_fifo_takes_nothing_from_tunbridge_clients() {
    if !root_or_skip("a_stray_reader_of_the_answer_fifo_takes_nothing_from_tunbridge_clients") {
        return;
    }
    let ns = Netns::new("stray");
    let dir = TempDir::new("stray");
    let bridge = Bridge::start(&ns, &dir, &[]);
    // Holds the answer FIFO open and never reads, like a `cat` stopped in another terminal.
    let script = format!("exec 3<'{}'; sleep 60", bridge.resp.display());
    let mut stray = Command::new("sh").args(["-c", &script]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // A client that dies while its READ waits.
    let mut dead = spawn_cli(&bridge, &["read"]);
    std::thread::sleep(Duration::from_millis(300));
    dead.kill().unwrap();
    dead.wait().unwrap();
    let ping = ns.spawn_ping(56, 1, 10);
    bridge.wait_log("request queued", Duration::from_secs(5));
    // The next client gets the ping, one line, and answers it.
    let line = stdout_line(spawn_cli(&bridge, &["read"]).wait_with_output().unwrap());
    assert_eq!(seq_of(&line), 1);
    let w = spawn_cli(&bridge, &["write", &reply_hex(&line)]);
    assert_eq!(stdout_line(w.wait_with_output().unwrap()), "OK");
    assert_received(&ping.wait_with_output().unwrap(), 1);
    stray.kill().unwrap();
    stray.wait().unwrap();
}

#[test]
fn a_packet_its_client_did_not_read_goes_back_to_the_head_of_the_queue() {
    if !root_or_skip("a_packet_its_client_did_not_read_goes_back_to_the_head_of_the_queue") {
        return;
    }
    let ns = Netns::new("unread");
    let dir = TempDir::new("unread");
    let bridge = Bridge::start(&ns, &dir, &[]);
    let socket = tunbridge::channel::socket_path(&bridge.cmd);
    // A client that asks, is handed the packet, and dies before reading it.
    let mut gone = UnixStream::connect(&socket).unwrap();
    gone.write_all(b"READ\n").unwrap();
    let ping = ns.spawn_ping(56, 2, 10);
    bridge.wait_log("request handed to the agent", Duration::from_secs(5));
    drop(gone);
    bridge.wait_log("back to the head of the queue", Duration::from_secs(5));
    wait_count(&bridge, "request queued", 2, Duration::from_secs(5));
    for seq in [1, 2] {
        let line = bridge.exchange("READ");
        assert_eq!(
            seq_of(&line),
            seq,
            "oldest first, the returned one included"
        );
        assert_eq!(
            bridge.exchange(&format!("WRITE {}", reply_hex(&line))),
            "OK"
        );
    }
    assert_received(&ping.wait_with_output().unwrap(), 2);
}

#[test]
fn a_raw_client_loop_beside_the_agent_never_gives_the_agent_a_foreign_answer() {
    if !root_or_skip("a_raw_client_loop_beside_the_agent_never_gives_the_agent_a_foreign_answer") {
        return;
    }
    let ns = Netns::new("mixed");
    let dir = TempDir::new("mixed");
    let bridge = Bridge::start(&ns, &dir, &["--read-timeout", "1"]);
    let stop = Arc::new(AtomicBool::new(false));
    let foreign = Arc::new(Mutex::new(Vec::<String>::new()));
    let client = bridge.client();
    let agent = std::thread::spawn({
        let (stop, foreign) = (Arc::clone(&stop), Arc::clone(&foreign));
        move || {
            let mut answered = 0;
            while !stop.load(Ordering::Relaxed) {
                let line = client.exchange("READ").expect("READ");
                if line == "TIMEOUT" {
                    continue;
                }
                let reply = match hex::decode(&line).map(|p| wire::echo_reply(&p)) {
                    Ok(Ok(reply)) => hex::encode(reply),
                    _ => {
                        foreign.lock().unwrap().push(format!("READ got {line:?}"));
                        continue;
                    }
                };
                let answer = client.exchange(&format!("WRITE {reply}")).expect("WRITE");
                if answer != "OK" {
                    foreign
                        .lock()
                        .unwrap()
                        .push(format!("WRITE got {answer:.40}"));
                }
                answered += 1;
            }
            answered
        }
    });
    // The published form in a loop, as a second user might run it; it never answers.
    let raw_lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let raw_loop = std::thread::spawn({
        let (stop, lines) = (Arc::clone(&stop), Arc::clone(&raw_lines));
        let (cmd, resp) = (bridge.cmd.clone(), bridge.resp.clone());
        move || {
            while !stop.load(Ordering::Relaxed) {
                lines.lock().unwrap().push(raw_on(&cmd, &resp, "READ", 3));
            }
        }
    });
    let out = ns.exec(&["ping", "-n", "-c", "30", "-i", "0.1", "-W", "2", PEER]);
    stop.store(true, Ordering::Relaxed);
    let answered = agent.join().unwrap();
    raw_loop.join().unwrap();
    let foreign = foreign.lock().unwrap();
    assert!(
        foreign.is_empty(),
        "the agent got others' answers: {foreign:?}"
    );
    for l in raw_lines.lock().unwrap().iter().filter(|l| !l.is_empty()) {
        assert_eq!(
            l.lines().count(),
            1,
            "a raw client got more than its line: {l:?}"
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("agent answered {answered}\n{text}");
    assert!(answered > 0, "{text}");
    assert!(text.contains(&format!("{answered} received")), "{text}");
}

#[test]
fn clients_are_served_in_the_order_they_asked_beside_a_busy_agent() {
    if !root_or_skip("clients_are_served_in_the_order_they_asked_beside_a_busy_agent") {
        return;
    }
    let ns = Netns::new("fair");
    let dir = TempDir::new("fair");
    let bridge = Bridge::start(&ns, &dir, &["--read-timeout", "2"]);
    // Two clients asking one after the other get the packets in that order.
    let first = spawn_cli(&bridge, &["read"]);
    std::thread::sleep(Duration::from_millis(200));
    let second = spawn_cli(&bridge, &["read"]);
    std::thread::sleep(Duration::from_millis(200));
    let ping = ns.exec_ping_interval(2, "0.3");
    let (a, b) = (
        stdout_line(first.wait_with_output().unwrap()),
        stdout_line(second.wait_with_output().unwrap()),
    );
    assert_eq!((seq_of(&a), seq_of(&b)), (1, 2));
    drop(ping);
    // An agent answering a ping every half second does not shut a third client out.
    let stop = Arc::new(AtomicBool::new(false));
    let client = bridge.client();
    let agent = std::thread::spawn({
        let stop = Arc::clone(&stop);
        move || {
            while !stop.load(Ordering::Relaxed) {
                let line = client.exchange("READ").expect("READ");
                if let Ok(packet) = hex::decode(&line) {
                    let reply = hex::encode(wire::echo_reply(&packet).unwrap());
                    client.exchange(&format!("WRITE {reply}")).expect("WRITE");
                }
            }
        }
    });
    let pings = ns.exec_ping_interval(20, "0.5");
    for _ in 0..3 {
        let out = spawn_cli(&bridge, &["read", "--timeout", "5"])
            .wait_with_output()
            .unwrap();
        let line = stdout_line(out);
        assert!(line == "TIMEOUT" || seq_of(&line) > 0, "{line}");
        if line != "TIMEOUT" {
            let w = spawn_cli(&bridge, &["write", &reply_hex(&line)]);
            assert_eq!(stdout_line(w.wait_with_output().unwrap()), "OK");
        }
    }
    stop.store(true, Ordering::Relaxed);
    drop(pings);
    agent.join().unwrap();
}

#[test]
fn a_read_timeout_above_40_s_is_waited_for() {
    if !root_or_skip("a_read_timeout_above_40_s_is_waited_for") {
        return;
    }
    let ns = Netns::new("longwait");
    let dir = TempDir::new("longwait");
    let bridge = Bridge::start(&ns, &dir, &["--read-timeout", "42"]);
    let started = Instant::now();
    let out = spawn_cli(&bridge, &["read"]).wait_with_output().unwrap();
    assert_eq!(stdout_line(out), "TIMEOUT");
    assert!(started.elapsed() >= Duration::from_secs(42));
}

#[test]
fn the_published_raw_form_and_tunbridge_clients_share_the_queue_in_order() {
    if !root_or_skip("the_published_raw_form_and_tunbridge_clients_share_the_queue_in_order") {
        return;
    }
    let ns = Netns::new("share");
    let dir = TempDir::new("share");
    let bridge = Bridge::start(&ns, &dir, &[]);
    let ping = ns.exec_ping_interval(2, "0.3");
    wait_count(&bridge, "request queued", 2, Duration::from_secs(5));
    let first = raw(&bridge, "READ", 5);
    let second = bridge.exchange("READ");
    assert_eq!((seq_of(first.trim()), seq_of(&second)), (1, 2));
    assert_eq!(
        raw(&bridge, &format!("WRITE {}", reply_hex(first.trim())), 5),
        "OK\n"
    );
    assert_eq!(
        bridge.exchange(&format!("WRITE {}", reply_hex(&second))),
        "OK"
    );
    let out = ping.wait_with_output().unwrap();
    assert_received(&out, 2);
}

trait PingInterval {
    fn exec_ping_interval(&self, count: u32, interval: &str) -> Child;
}

impl PingInterval for Netns {
    /// Starts `count` pings `interval` seconds apart, in the background.
    fn exec_ping_interval(&self, count: u32, interval: &str) -> Child {
        let count = count.to_string();
        Command::new("ip")
            .args(["netns", "exec", &self.name, "ping", "-n", "-c", &count])
            .args(["-i", interval, "-W", "10", PEER])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}
