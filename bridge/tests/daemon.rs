//! The daemon against its surroundings: a broken or full stderr pipe, SIGHUP, a second bridge on
//! the same FIFO paths, and over-long command lines from raw shell clients.
//!
//! Needs root: each test makes its own network namespace, starts the daemon inside it and
//! pings only the agent's address there (see `common`).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;
use std::os::unix::fs::OpenOptionsExt;

/// Runs a shell script and returns its standard output.
fn sh(script: &str) -> String {
    let out = Command::new("sh").args(["-c", script]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts the bridge in `ns` with debug logging (every packet logs at arrival and at
/// hand-over) into a pipe, and reads its log up to `bridge ready`. Returns the bridge and
/// the log's read end.
fn serve_logging_to_a_pipe(ns: &Netns, dir: &TempDir) -> (Bridge, BufReader<std::fs::File>) {
    let (cmd, resp) = (dir.join("cmd"), dir.join("resp"));
    // Close-on-exec, so that no child (this bridge or another test's) holds the read end.
    let (log_read, log_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let child = Command::new(BIN)
        .args(["serve", "--netns", &ns.name])
        .arg("--cmd-fifo")
        .arg(&cmd)
        .arg("--resp-fifo")
        .arg(&resp)
        .env("RUST_LOG", "debug")
        .stderr(Stdio::from(log_write))
        .spawn()
        .unwrap();
    let mut log = BufReader::new(std::fs::File::from(log_read));
    let mut line = String::new();
    while !line.contains("bridge ready") {
        line.clear();
        assert!(log.read_line(&mut line).unwrap() > 0, "bridge exited early");
    }
    (Bridge::from_child(child, cmd, resp), log)
}

/// Fills the bridge's stderr pipe to the brim with lines of dots, through the bridge's
/// own stderr (so that no other write end keeps the pipe open once the bridge is gone),
/// non-blocking (so that the bridge taking the last room first cannot hang the test).
fn fill_stderr(bridge: &mut Bridge) {
    let filler = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(format!("/proc/{}/fd/2", bridge.child().id()))
        .unwrap();
    let mut page = [b'.'; 4096];
    page[4095] = b'\n';
    while nix::unistd::write(&filler, &page).is_ok() {}
}

/// Every line of the log from now until the bridge closes it, dots left out, read in a thread
/// that starts `after` from now.
fn read_log_later(
    log: BufReader<std::fs::File>,
    after: Duration,
) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        std::thread::sleep(after);
        log.lines()
            .map_while(Result::ok)
            .filter(|l| !l.starts_with("...."))
            .collect()
    })
}

#[test]
#[ignore = "needs root"]
fn a_broken_stderr_pipe_does_not_stop_the_bridge() {
    let (ns, dir) = root_netns("epipe");
    let (mut bridge, log) = serve_logging_to_a_pipe(&ns, &dir);
    // As `scripts/bridge.sh ... 2>&1 | head` after head has exited.
    drop(log);
    for _ in 0..2 {
        ping_answered(&ns, &bridge);
    }
    assert_eq!(bridge.exchange("WRITE zz").split(' ').next(), Some("ERR"));
    assert!(bridge.alive());
    assert_eq!(bridge.stop_with(Signal::SIGTERM).code(), Some(0));
}

#[test]
#[ignore = "needs root"]
fn a_full_stderr_pipe_whose_reader_is_alive_does_not_stall_the_bridge() {
    let (ns, dir) = root_netns("efull");
    let (mut bridge, log) = serve_logging_to_a_pipe(&ns, &dir);
    // As `tunbridge serve 2>&1 | less` with less paused: the reader is there, not reading,
    // and the pipe is full (filled through the bridge's own stderr, so that no other
    // write end keeps the pipe open once the bridge is gone).
    fill_stderr(&mut bridge);
    let count = 20;
    let ping = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            "ping",
            "-n",
            "-c",
            &count.to_string(),
        ])
        .args(["-i", "0.01", "-W", "5", PEER])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..count {
        assert_eq!(answer_one(&bridge, |_| {}), "OK");
    }
    assert_received(&ping.wait_with_output().unwrap(), count);
    assert!(bridge.alive());
    // Read again: the next line the bridge logs is preceded by one saying what it could
    // not write.
    let reader = read_log_later(log, Duration::ZERO);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(bridge.exchange("WRITE zz").split(' ').next(), Some("ERR"));
    assert_eq!(bridge.stop_with(Signal::SIGTERM).code(), Some(0));
    let rest = reader.join().unwrap();
    let dropped = rest
        .iter()
        .find_map(|l| l.strip_prefix("tunbridge: log lines dropped: "))
        .unwrap_or_else(|| panic!("no word of the dropped lines in:\n{}", rest.join("\n")));
    let n: u32 = dropped.split(' ').next().unwrap().parse().unwrap();
    // Every request logs at least its arrival and its hand-over at debug.
    assert!(n >= 2 * count, "only {n} dropped");
    assert!(
        rest.iter().any(|l| l.contains("stopping")),
        "{}",
        rest.join("\n")
    );
}

#[test]
#[ignore = "needs root"]
fn a_bridge_that_stops_on_an_error_with_stderr_full_still_says_why() {
    let (ns, dir) = root_netns("efatal");
    let (mut bridge, log) = serve_logging_to_a_pipe(&ns, &dir);
    fill_stderr(&mut bridge);
    // The reader comes back 300 ms after the device is gone, within the bridge's grace.
    let reader = read_log_later(log, Duration::from_millis(300));
    let out = ns.exec(&["ip", "link", "del", "tun0"]);
    assert!(out.status.success(), "{out:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = bridge.child().try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the bridge did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(1));
    let lines = reader.join().unwrap();
    let last = lines.last().map(String::as_str).unwrap_or_default();
    assert!(
        last.starts_with("tunbridge: bridge stopped: ") && last.contains("is gone"),
        "{lines:#?}"
    );
}

#[test]
#[ignore = "needs root"]
fn sighup_cleans_up_like_sigterm() {
    let (ns, dir, mut bridge) = recorded_root_bridge("hup", &[]);
    let ping = ns.spawn_ping(56, 1, 10);
    let line = bridge.exchange("READ");
    assert_ne!(line, "TIMEOUT");
    // The request is in flight (read, not answered) when the terminal closes.
    assert_stops_cleanly(&mut bridge, &ns, Signal::SIGHUP);
    drop(ping);
    let rows = records(&dir.record());
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["outcome"], "unanswered", "{rows:?}");
    assert_eq!(rows[0]["note"], "bridge stopped", "{rows:?}");
}

#[test]
#[ignore = "needs root"]
fn a_second_bridge_on_the_same_fifos_refuses_and_the_first_keeps_serving() {
    require_root();
    let ns = Netns::new("twice");
    let other = Netns::new("twice2");
    let dir = TempDir::new("twice");
    let mut first = Bridge::start(&ns, &dir, &[]);
    let mut second = Command::new(BIN)
        .args(["serve", "--netns", &other.name])
        .arg("--cmd-fifo")
        .arg(&first.cmd)
        .arg("--resp-fifo")
        .arg(&first.resp)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while second.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = second.kill();
    let second = second.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("another bridge is serving"),
        "unclear refusal: {stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    std::thread::sleep(Duration::from_millis(700));
    assert!(first.alive(), "the first bridge stopped");
    ping_answered(&ns, &first);
    // The published raw form still reaches the first bridge.
    let raw = format!(
        "echo WRITE zz > {} && timeout 5 cat {}",
        first.cmd.display(),
        first.resp.display()
    );
    assert!(sh(&raw).starts_with("ERR "));
}

#[test]
#[ignore = "needs root"]
fn an_over_long_line_from_a_raw_client_gets_its_err() {
    let (ns, dir, bridge) = root_bridge("long", &[]);
    let data = dir.join("long.txt");
    let mut line = b"WRITE ".to_vec();
    line.resize(450 * 1024, b'a');
    line.push(b'\n');
    std::fs::write(&data, &line).unwrap();
    let raw = format!(
        "cat {} > {} && timeout 5 cat {}",
        data.display(),
        bridge.cmd.display(),
        bridge.resp.display()
    );
    let answer = sh(&raw);
    assert!(
        answer.starts_with("ERR command line too long: ") && answer.lines().count() == 1,
        "{answer:?}"
    );
    assert!(
        answer.contains(&format!("{} bytes", line.len() - 1)),
        "{answer:?}"
    );
    // And the next raw client is served as usual.
    ping_answered(&ns, &bridge);
}

#[test]
#[ignore = "needs root"]
fn an_unfinished_over_long_line_does_not_swallow_the_next_read() {
    let (ns, dir, bridge) = root_bridge("longopen", &[]);
    let data = dir.join("long.txt");
    std::fs::write(&data, vec![b'a'; 300 * 1024]).unwrap();
    // Over the limit, no newline, and the write end held open.
    let script = format!(
        "exec 3>'{}'; cat '{}' >&3; exec sleep 60",
        bridge.cmd.display(),
        data.display()
    );
    let mut writer = Command::new("sh").args(["-c", &script]).spawn().unwrap();
    // Past the idle time the rest of that line is no longer skipped: a raw READ on the same
    // pipe session is served.
    bridge.wait_log("unfinished command line dropped", Duration::from_secs(5));
    let ping = ns.spawn_ping(56, 1, 10);
    bridge.wait_log("request queued", Duration::from_secs(5));
    let started = Instant::now();
    let raw = format!(
        "echo READ > {} && timeout 5 cat {}",
        bridge.cmd.display(),
        bridge.resp.display()
    );
    let line = sh(&raw);
    writer.kill().unwrap();
    writer.wait().unwrap();
    assert!(
        line.starts_with("45") && line.lines().count() == 1,
        "READ swallowed: {line:?} after {:?}",
        started.elapsed()
    );
    let reply = tunbridge::wire::echo_reply(&hex::decode(line.trim()).unwrap()).unwrap();
    assert_eq!(
        bridge.exchange(&format!("WRITE {}", hex::encode(reply))),
        "OK"
    );
    assert_received(&ping.wait_with_output().unwrap(), 1);
}
