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
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use tunbridge::wire;

/// The reference reply to a READ answer, as hex.
fn reply_hex(line: &str) -> String {
    hex::encode(wire::echo_reply(&hex::decode(line).unwrap()).unwrap())
}

/// Reads the next request with `tunbridge read`, checks its sequence number, and
/// answers it with the reference reply through `tunbridge write`.
fn answer_with_cli(bridge: &Bridge, seq: u16) {
    let line = stdout_line(bridge.spawn_cli(&["read"]).wait_with_output().unwrap());
    assert_eq!(seq_of(&line), seq);
    let w = bridge.spawn_cli(&["write", &reply_hex(&line)]);
    assert_eq!(stdout_line(w.wait_with_output().unwrap()), "OK");
}

/// A valid echo reply, as hex, to a request (id 0x7777) the bridge never handed out.
fn unasked_reply() -> String {
    hex::encode(reference_reply(&echo_request(0x7777, 1, 0)))
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
#[ignore = "needs root"]
fn a_killed_reader_does_not_make_another_client_print_the_wrong_answer() {
    let (ns, _dir, bridge) = root_bridge("killed", &[]);
    // A waits in READ; B writes a reply to a request nobody made (written, and OK).
    let mut a = bridge.spawn_cli(&["read"]);
    std::thread::sleep(Duration::from_millis(300));
    let b = bridge.spawn_cli(&["write", &unasked_reply()]);
    std::thread::sleep(Duration::from_millis(300));
    a.kill().unwrap();
    a.wait().unwrap();
    let ping = ns.spawn_ping(56, 1, 10);
    bridge.wait_log("request queued", Duration::from_secs(5));
    // B gets its own OK, not the ping; the ping waits for the next READ.
    assert_eq!(stdout_line(b.wait_with_output().unwrap()), "OK");
    answer_with_cli(&bridge, 1);
    assert_received(&ping.wait_with_output().unwrap(), 1);
}

#[test]
#[ignore = "needs root"]
fn a_stray_reader_of_the_answer_fifo_takes_nothing_from_tunbridge_clients() {
    let (ns, _dir, bridge) = root_bridge("stray", &[]);
    // Holds the answer FIFO open and never reads, like a `cat` stopped in another terminal.
    let script = format!("exec 3<'{}'; exec sleep 60", bridge.resp.display());
    let mut stray = Command::new("sh").args(["-c", &script]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // A client that dies while its READ waits.
    let mut dead = bridge.spawn_cli(&["read"]);
    std::thread::sleep(Duration::from_millis(300));
    dead.kill().unwrap();
    dead.wait().unwrap();
    let ping = ns.spawn_ping(56, 1, 10);
    bridge.wait_log("request queued", Duration::from_secs(5));
    // The next client gets the ping, one line, and answers it.
    answer_with_cli(&bridge, 1);
    assert_received(&ping.wait_with_output().unwrap(), 1);
    stray.kill().unwrap();
    stray.wait().unwrap();
}

#[test]
#[ignore = "needs root"]
fn a_packet_its_client_did_not_read_goes_back_to_the_head_of_the_queue() {
    let (ns, _dir, bridge) = root_bridge("unread", &[]);
    let socket = tunbridge::ipc::channel::socket_path(&bridge.cmd);
    // A client that asks, is handed the packet, and dies before reading it.
    let mut gone = UnixStream::connect(&socket).unwrap();
    gone.write_all(b"READ\n").unwrap();
    let ping = ns.spawn_ping(56, 2, 10);
    bridge.wait_log("request handed to the agent", Duration::from_secs(5));
    drop(gone);
    bridge.wait_log("back to the head of the queue", Duration::from_secs(5));
    bridge.wait_count("request queued", 2, Duration::from_secs(5));
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
#[ignore = "needs root"]
fn a_raw_client_loop_beside_the_agent_never_gives_the_agent_a_foreign_answer() {
    let (ns, _dir, bridge) = root_bridge("mixed", &["--read-timeout", "1"]);
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
#[ignore = "needs root"]
fn clients_are_served_in_the_order_they_asked_beside_a_busy_agent() {
    let (ns, _dir, bridge) = root_bridge("fair", &["--read-timeout", "2"]);
    // Two clients asking one after the other get the packets in that order.
    let first = bridge.spawn_cli(&["read"]);
    std::thread::sleep(Duration::from_millis(200));
    let second = bridge.spawn_cli(&["read"]);
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
        let out = bridge
            .spawn_cli(&["read", "--timeout", "5"])
            .wait_with_output()
            .unwrap();
        let line = stdout_line(out);
        assert!(line == "TIMEOUT" || seq_of(&line) > 0, "{line}");
        if line != "TIMEOUT" {
            let w = bridge.spawn_cli(&["write", &reply_hex(&line)]);
            assert_eq!(stdout_line(w.wait_with_output().unwrap()), "OK");
        }
    }
    stop.store(true, Ordering::Relaxed);
    drop(pings);
    agent.join().unwrap();
}

#[test]
#[ignore = "needs root"]
fn a_read_timeout_above_40_s_is_waited_for() {
    let (_ns, _dir, bridge) = root_bridge("longwait", &["--read-timeout", "42"]);
    let started = Instant::now();
    let out = bridge.spawn_cli(&["read"]).wait_with_output().unwrap();
    assert_eq!(stdout_line(out), "TIMEOUT");
    assert!(started.elapsed() >= Duration::from_secs(42));
}

#[test]
#[ignore = "needs root"]
fn the_published_raw_form_and_tunbridge_clients_share_the_queue_in_order() {
    let (ns, _dir, bridge) = root_bridge("share", &[]);
    let ping = ns.exec_ping_interval(2, "0.3");
    bridge.wait_count("request queued", 2, Duration::from_secs(5));
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
