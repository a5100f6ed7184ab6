//! The agent's fast tools: `tunbridge write <hex> --next`, against the server on an
//! in-memory device, and against fake bridges that misbehave (a socket that answers the
//! write and then hangs up, or goes quiet, or refuses). No root needed.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;

/// The reply to a READ answer, as hex.
fn reply_hex(line: &str) -> String {
    hex::encode(reference_reply(&hex::decode(line).expect("a packet")))
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

// ------------------------------------------------------------ write --next, real bridge

#[test]
fn write_next_prints_the_answer_and_the_next_packet() {
    let dir = TempDir::new("n-ok");
    let (bridge, net) = Bridge::memory(&dir, &["--read-timeout", "1"]);
    let first = ping_memory(&net, 1, 56);
    let second = ping_memory(&net, 2, 56);
    let line = bridge.exchange("READ");
    assert_eq!(hex::decode(&line).unwrap(), first);
    let out = bridge.cli(&["write", &reply_hex(&line), "--next"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text:?}");
    assert_eq!(lines[0], "OK");
    assert_eq!(hex::decode(lines[1]).unwrap(), second);
    assert_replied(&net, &first);
    // --next before the hex is the same command.
    let out = bridge.cli(&["write", "--next", &reply_hex(lines[1])]);
    assert_eq!(stdout(&out), "OK\nTIMEOUT\n");
    assert_replied(&net, &second);
}

#[test]
fn write_next_says_timeout_when_no_packet_comes() {
    let dir = TempDir::new("n-timeout");
    let (bridge, net) = Bridge::memory(&dir, &["--read-timeout", "1"]);
    let request = ping_memory(&net, 1, 0);
    let line = bridge.exchange("READ");
    let out = bridge.cli(&["write", &reply_hex(&line), "--next"]);
    assert_eq!(stdout(&out), "OK\nTIMEOUT\n");
    assert_eq!(out.status.code(), Some(0));
    assert_replied(&net, &request);
}

#[test]
fn a_refused_write_still_reads_the_next_packet_and_exits_1() {
    let dir = TempDir::new("n-err");
    let (bridge, net) = Bridge::memory(&dir, &[]);
    let request = ping_memory(&net, 1, 56);
    // Newlines in the hex cannot smuggle in a command of their own.
    let out = bridge.cli(&["write", "zz\nREAD", "--next"]);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(lines[0].starts_with("ERR bad hex"), "{text}");
    assert_eq!(hex::decode(lines[1]).unwrap(), request);
    assert_eq!(lines.len(), 2);
}

#[test]
fn write_next_without_a_bridge_prints_nothing_and_exits_2() {
    let dir = TempDir::new("n-none");
    let out = Command::new(BIN)
        .args(["write", "4500", "--next", "--cmd-fifo"])
        .arg(dir.join("cmd"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains("is `tunbridge serve` running?"),
        "{}",
        stderr(&out)
    );
}

// ------------------------------------------------------------ write --next, fake bridges

/// What a fake bridge does after its first answer.
#[derive(Clone, Copy)]
enum Then {
    /// Closes the connection: the bridge stopped, or was killed.
    HangUp,
    /// Keeps it open and says nothing until the client leaves (at most 20 s).
    Stall,
}

/// A fake bridge on `<dir>/cmd.sock` that greets, answers the first command line with
/// `first` (if any), and then does `then` to the connection. Returns its thread.
fn fake_bridge(
    dir: &TempDir,
    greeting: &'static str,
    first: Option<&'static str>,
    then: Then,
) -> std::thread::JoinHandle<()> {
    let listener = UnixListener::bind(dir.join("cmd.sock")).unwrap();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut out = stream;
        out.write_all(greeting.as_bytes()).unwrap();
        if let Some(answer) = first {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            out.write_all(answer.as_bytes()).unwrap();
        }
        if let Then::Stall = then {
            out.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        }
    })
}

const HELLO: &str = "HELLO read_timeout_ms=30000\n";

/// `tunbridge write 4500 --next [--timeout T]` against a fake bridge; its output.
fn write_next_against(
    tag: &str,
    greeting: &'static str,
    first: Option<&'static str>,
    then: Then,
    timeout: Option<&str>,
) -> Output {
    let dir = TempDir::new(tag);
    let fake = fake_bridge(&dir, greeting, first, then);
    let mut command = Command::new(BIN);
    command.args(["write", "4500", "--next", "--cmd-fifo"]);
    command.arg(dir.join("cmd"));
    if let Some(t) = timeout {
        command.args(["--timeout", t]);
    }
    let out = command.output().unwrap();
    fake.join().unwrap();
    out
}

#[test]
fn a_bridge_that_hangs_up_after_the_write_gives_exit_3() {
    let out = write_next_against("n-hangup", HELLO, Some("OK\n"), Then::HangUp, None);
    assert_eq!(stdout(&out), "OK\n");
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(
        err.contains("no next packet: the bridge closed the connection"),
        "{err}"
    );
}

#[test]
fn a_bridge_that_goes_quiet_after_the_write_gives_exit_3() {
    let start = Instant::now();
    let out = write_next_against("n-quiet", HELLO, Some("OK\n"), Then::Stall, Some("1"));
    // The fake waits for the client to leave: it left at its timeout, not the fake's.
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "it waited past its timeout"
    );
    assert_eq!(stdout(&out), "OK\n");
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(
        err.contains("no answer from the bridge within 1 s"),
        "{err}"
    );
}

#[test]
fn a_refused_connection_is_one_err_line_and_exit_1() {
    let refusal = "ERR too many clients connected\n";
    let out = write_next_against("n-full", refusal, None, Then::HangUp, None);
    assert_eq!(stdout(&out), refusal);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn something_that_is_no_bridge_gives_exit_2() {
    let out = write_next_against(
        "n-notbridge",
        "SSH-2.0-OpenSSH_9.2\n",
        None,
        Then::HangUp,
        None,
    );
    assert_eq!(stdout(&out), "");
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("not a bridge's greeting"), "{err}");
}
