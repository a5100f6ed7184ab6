//! The agent's fast tools: `tunbridge write <hex> --next` and the MCP server `tunbridge mcp`,
//! against the server on an in-memory device, and against fake bridges that misbehave (a
//! socket that answers the write and then hangs up, or goes quiet, or refuses).
//!
//! No root needed. `tunbridge mcp` refuses to run as root, so when the tests run as root
//! the bridge gives its channel to `nobody` and the MCP server runs as `nobody`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

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
fn a_bridge_stopping_while_the_next_read_waits_is_err_and_exit_1() {
    let dir = TempDir::new("n-stop");
    let (mut bridge, net) = Bridge::memory(&dir, &[]);
    let request = ping_memory(&net, 1, 56);
    let line = bridge.exchange("READ");
    let asked = bridge.counts.get(Count::Asked);
    let client = bridge.spawn_cli(&["write", &reply_hex(&line), "--next"]);
    assert_replied(&net, &request);
    // The write is answered; the READ behind it waits (no packet) until the bridge stops.
    bridge.wait_total(Count::Asked, asked + 1, Duration::from_secs(5));
    bridge.stop().expect("a clean stop");
    let out = client.wait_with_output().unwrap();
    assert_eq!(stdout(&out), "OK\nERR bridge stopping\n");
    assert_eq!(out.status.code(), Some(1));
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
    let path = dir.join("cmd.sock");
    let listener = UnixListener::bind(&path).unwrap();
    // Open to all, so that an MCP server running as nobody reaches it too.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
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

// ------------------------------------------------------------ a session (one connection kept)

#[test]
fn a_session_keeps_one_connection_for_many_exchanges() {
    let dir = TempDir::new("n-session");
    let (bridge, net) = Bridge::memory(&dir, &["--read-timeout", "1"]);
    let requests = [ping_memory(&net, 1, 56), ping_memory(&net, 2, 0)];
    let mut session = bridge.client().session().expect("a session");
    for request in &requests {
        let line = session.exchange("READ").unwrap();
        assert_eq!(hex::decode(&line).unwrap(), *request);
        let answer = session
            .exchange(&format!("WRITE {}", reply_hex(&line)))
            .unwrap();
        assert_eq!(answer, "OK");
        assert_replied(&net, request);
    }
    assert_eq!(session.exchange("READ").unwrap(), "TIMEOUT");
}

#[test]
fn a_session_whose_bridge_hangs_up_fails_at_once() {
    let dir = TempDir::new("n-sessiongone");
    let fake = fake_bridge(&dir, HELLO, None, Then::HangUp);
    let client = tunbridge::ipc::client::Client::new(dir.join("cmd"), dir.join("resp"));
    let start = Instant::now();
    let mut session = client.session().expect("greeted");
    fake.join().unwrap();
    // Closed before the command: the session reconnects, and nobody listens any more.
    let err = session.exchange("READ").unwrap_err();
    assert!(err.to_string().contains("no bridge is serving"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "it waited instead of failing"
    );
}

// ------------------------------------------------------------ tunbridge mcp

/// `tunbridge mcp` as a child speaking raw JSON lines.
struct Mcp {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Mcp {
    /// Starts the server for the bridge whose command FIFO is `cmd`, as `user` when given.
    fn start(cmd: &Path, user: Option<(u32, u32)>) -> Mcp {
        let mut command = Command::new(BIN);
        command.arg("mcp").arg("--cmd-fifo").arg(cmd);
        if let Some((uid, gid)) = user {
            command.uid(uid).gid(gid);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tunbridge mcp");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Mcp {
            child,
            stdin,
            lines,
        }
    }

    /// Sends one raw line.
    fn send_raw(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    fn send(&mut self, message: Value) {
        self.send_raw(&message.to_string());
    }

    /// The next line from the server, as JSON; panics after `limit`.
    fn recv_within(&self, limit: Duration) -> Value {
        let line = self
            .lines
            .recv_timeout(limit)
            .expect("no message from tunbridge mcp");
        assert!(!line.contains('\r'), "{line}");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    fn recv(&self) -> Value {
        self.recv_within(Duration::from_secs(10))
    }

    /// Nothing comes within `wait`.
    fn assert_silent(&self, wait: Duration) {
        if let Ok(line) = self.lines.recv_timeout(wait) {
            panic!("unexpected message: {line}");
        }
    }

    /// The handshake as Claude Code 2.1.197 sends it (its exact lines).
    fn initialize(&mut self) -> Value {
        self.send_raw(r#"{"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"roots":{},"elicitation":{}},"clientInfo":{"name":"claude-code","title":"Claude Code","version":"2.1.197","description":"Anthropic's agentic coding tool","websiteUrl":"https://claude.com/claude-code"}},"jsonrpc":"2.0","id":0}"#);
        let answer = self.recv();
        self.send_raw(r#"{"method":"notifications/initialized","jsonrpc":"2.0"}"#);
        answer
    }

    /// Calls tool `name`; returns the result's text and whether it is an error.
    fn call(&mut self, id: Value, name: &str, arguments: Value) -> (String, bool) {
        self.send(
            json!({"jsonrpc": "2.0", "id": id.clone(), "method": "tools/call",
                         "params": {"name": name, "arguments": arguments}}),
        );
        let answer = self.recv();
        assert_eq!(answer["id"], id, "{answer}");
        text_of(&answer)
    }

    /// Closes stdin and waits for the exit status.
    fn close(&mut self, limit: Duration) -> std::process::ExitStatus {
        self.stdin = None;
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "tunbridge mcp did not exit at end of stdin"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Mcp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text_of(answer: &Value) -> (String, bool) {
    let result = &answer["result"];
    let text = result["content"][0]["text"]
        .as_str()
        .expect("a text result");
    (
        text.to_string(),
        result["isError"].as_bool().expect("isError"),
    )
}

/// The user the MCP server runs as: none to change to, or `nobody` when the tests run as
/// root (the bridge then gives its channel to nobody, as it gives it to the sudo user).
fn agent_user() -> Option<(u32, u32)> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("user nobody");
    Some((nobody.uid.as_raw(), nobody.gid.as_raw()))
}

/// An in-memory bridge with `extra` flags whose channel belongs to the agent's user, and
/// `tunbridge mcp` for it, started as that user.
fn mcp_bridge_raw(dir: &TempDir, extra: &[&str]) -> (Bridge, Network, Mcp) {
    let user = agent_user();
    let mut flags = extra.to_vec();
    if user.is_some() {
        flags.extend(["--user", "nobody"]);
    }
    let (bridge, net) = Bridge::memory(dir, &flags);
    let mcp = Mcp::start(&bridge.cmd, user);
    (bridge, net, mcp)
}

/// [`mcp_bridge_raw`], past the handshake.
fn mcp_bridge(dir: &TempDir, extra: &[&str]) -> (Bridge, Network, Mcp) {
    let (bridge, net, mut mcp) = mcp_bridge_raw(dir, extra);
    let hello = mcp.initialize();
    assert_eq!(hello["result"]["protocolVersion"], "2025-11-25");
    (bridge, net, mcp)
}

#[test]
fn mcp_serves_packets_read_write_and_write_read() {
    let dir = TempDir::new("m-mcp");
    let (_bridge, net, mut mcp) = mcp_bridge(&dir, &[]);
    mcp.send(json!({"jsonrpc": "2.0", "id": "list", "method": "tools/list"}));
    let list = mcp.recv();
    assert_eq!(list["result"]["tools"].as_array().unwrap().len(), 3);
    let first = ping_memory(&net, 1, 56);
    let second = ping_memory(&net, 2, 57);
    let (packet, err) = mcp.call(json!(1), "read_packet", json!({}));
    assert!(!err);
    assert_eq!(hex::decode(&packet).unwrap(), first);
    let (text, err) = mcp.call(
        json!("two"),
        "write_and_read_next",
        json!({"hex": reply_hex(&packet)}),
    );
    assert!(!err, "{text}");
    let (ok, next) = text.split_once('\n').expect("two lines");
    assert_eq!(ok, "OK");
    assert_eq!(hex::decode(next).unwrap(), second);
    assert_replied(&net, &first);
    let (text, err) = mcp.call(json!(3), "write_packet", json!({"hex": reply_hex(next)}));
    assert_eq!((text.as_str(), err), ("OK", false));
    assert_replied(&net, &second);
    assert_eq!(mcp.close(Duration::from_secs(5)).code(), Some(0));
}

#[test]
fn mcp_errors_are_tool_errors_or_protocol_errors_never_a_crash() {
    let dir = TempDir::new("m-mcperr");
    let (_bridge, net, mut mcp) = mcp_bridge(&dir, &["--read-timeout", "1"]);
    // The bridge refuses the hex: a tool error with its one-line reason.
    let (text, err) = mcp.call(json!(1), "write_packet", json!({"hex": "45zz"}));
    assert!(err && text.starts_with("ERR bad hex"), "{text}");
    // A refused write still reads the next packet.
    let request = ping_memory(&net, 1, 56);
    let (text, err) = mcp.call(json!(2), "write_and_read_next", json!({"hex": "00"}));
    let lines: Vec<&str> = text.lines().collect();
    assert!(err && lines[0].starts_with("ERR"), "{text}");
    assert_eq!(hex::decode(lines[1]).unwrap(), request);
    // No packet: TIMEOUT, which is an answer, not an error.
    assert_eq!(
        mcp.call(json!(3), "read_packet", json!({})),
        ("TIMEOUT".into(), false)
    );
    // Wrong arguments: a tool error; nothing is sent.
    let (text, err) = mcp.call(json!(4), "write_packet", json!({"hex": 17}));
    assert!(err && text.contains("hex"), "{text}");
    // Protocol errors.
    mcp.send(json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "format_disk"}}));
    assert_eq!(mcp.recv()["error"]["code"], -32602);
    mcp.send_raw("{not json");
    let e = mcp.recv();
    assert_eq!(
        (e["id"].clone(), e["error"]["code"].clone()),
        (Value::Null, json!(-32700))
    );
    mcp.send(json!({"jsonrpc": "2.0", "id": 6, "method": "resources/list"}));
    assert_eq!(mcp.recv()["error"]["code"], -32601);
    mcp.send(json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": 3}));
    assert_eq!(mcp.recv()["error"]["code"], -32600);
    // A batch is not part of 2025-11-25.
    mcp.send(json!([{"jsonrpc": "2.0", "id": 8, "method": "ping"}]));
    assert_eq!(mcp.recv()["error"]["code"], -32600);
    // Notifications, known or not, get nothing; the server still answers afterwards.
    mcp.send(json!({"jsonrpc": "2.0", "method": "notifications/whatever"}));
    mcp.send(json!({"jsonrpc": "2.0", "id": 9, "method": "ping"}));
    assert_eq!(mcp.recv(), json!({"jsonrpc": "2.0", "id": 9, "result": {}}));
    // An over-long line is refused and the next one is served.
    mcp.send_raw(&"x".repeat(tunbridge::ipc::mcp::MAX_MESSAGE + 10));
    assert_eq!(mcp.recv()["error"]["code"], -32700);
    mcp.send(json!({"jsonrpc": "2.0", "id": 10, "method": "ping"}));
    assert_eq!(mcp.recv()["id"], 10);
}

#[test]
fn mcp_answers_a_ping_while_a_read_waits_and_a_cancelled_read_takes_no_packet() {
    let dir = TempDir::new("m-mcpwait");
    let (_bridge, net, mut mcp) = mcp_bridge(&dir, &[]);
    mcp.send(json!({"jsonrpc": "2.0", "id": "r1", "method": "tools/call",
                    "params": {"name": "read_packet", "arguments": {}}}));
    // The READ waits in the bridge; the server still answers at once.
    mcp.send(json!({"jsonrpc": "2.0", "id": "p", "method": "ping"}));
    assert_eq!(mcp.recv_within(Duration::from_secs(2))["id"], "p");
    // A second call queues behind the first.
    mcp.send(json!({"jsonrpc": "2.0", "id": "r2", "method": "tools/call",
                    "params": {"name": "read_packet", "arguments": {}}}));
    mcp.send(
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                    "params": {"requestId": "r1", "reason": "the user pressed Esc"}}),
    );
    // r1 gets no answer; r2 is now the READ that waits, and gets the packet.
    mcp.assert_silent(Duration::from_millis(300));
    let request = ping_memory(&net, 1, 56);
    let answer = mcp.recv();
    assert_eq!(answer["id"], "r2");
    assert_eq!(hex::decode(text_of(&answer).0).unwrap(), request);
}

#[test]
fn mcp_exits_at_end_of_input_and_a_waiting_read_takes_no_packet() {
    let dir = TempDir::new("m-mcpeof");
    let (bridge, net, mut mcp) = mcp_bridge(&dir, &[]);
    mcp.send(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                    "params": {"name": "read_packet", "arguments": {}}}));
    mcp.assert_silent(Duration::from_millis(300));
    assert_eq!(mcp.close(Duration::from_secs(5)).code(), Some(0));
    let request = ping_memory(&net, 1, 56);
    assert_eq!(hex::decode(bridge.exchange("READ")).unwrap(), request);
}

#[test]
fn mcp_a_bridge_stopping_while_the_next_read_waits_is_a_tool_error_that_says_so() {
    let dir = TempDir::new("m-mcpstop");
    let (mut bridge, net, mut mcp) = mcp_bridge(&dir, &[]);
    let request = ping_memory(&net, 1, 56);
    let (packet, _) = mcp.call(json!(1), "read_packet", json!({}));
    let asked = bridge.counts.get(Count::Asked);
    mcp.send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                    "params": {"name": "write_and_read_next", "arguments": {"hex": reply_hex(&packet)}}}));
    assert_replied(&net, &request);
    bridge.wait_total(Count::Asked, asked + 1, Duration::from_secs(5));
    bridge.stop().expect("a clean stop");
    let (text, err) = text_of(&mcp.recv());
    assert_eq!((text.as_str(), err), ("OK\nERR bridge stopping", true));
}

#[test]
fn mcp_batches_in_2025_03_26() {
    let dir = TempDir::new("m-mcpbatch");
    let (_bridge, net, mut mcp) = mcp_bridge_raw(&dir, &[]);
    mcp.send(json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                    "params": {"protocolVersion": "2025-03-26", "capabilities": {},
                               "clientInfo": {"name": "t", "version": "0"}}}));
    assert_eq!(mcp.recv()["result"]["protocolVersion"], "2025-03-26");
    let request = ping_memory(&net, 1, 56);
    mcp.send(json!([
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": "a", "method": "tools/call", "params": {"name": "read_packet"}},
        {"jsonrpc": "2.0", "id": 2, "method": "ping"},
        {"jsonrpc": "2.0", "id": 3, "method": "nope"},
    ]));
    let batch = mcp.recv();
    let items = batch.as_array().expect("one array for the batch");
    assert_eq!(items.len(), 3, "{batch}");
    let by_id = |id: Value| items.iter().find(|i| i["id"] == id).expect("a response");
    assert_eq!(hex::decode(text_of(by_id(json!("a"))).0).unwrap(), request);
    assert_eq!(by_id(json!(2))["result"], json!({}));
    assert_eq!(by_id(json!(3))["error"]["code"], -32601);
    // Notifications alone get nothing back.
    mcp.send(json!([{"jsonrpc": "2.0", "method": "notifications/initialized"}]));
    mcp.send(json!({"jsonrpc": "2.0", "id": 4, "method": "ping"}));
    assert_eq!(mcp.recv()["id"], 4);
}

#[test]
fn mcp_reports_a_bridge_that_is_not_there_or_hangs_up() {
    let dir = TempDir::new("m-mcpnone");
    let mut mcp = Mcp::start(&dir.join("cmd"), agent_user());
    mcp.initialize();
    let (text, err) = mcp.call(json!(1), "read_packet", json!({}));
    assert!(
        err && text.contains("is `tunbridge serve` running?"),
        "{text}"
    );
    let fake = fake_bridge(&dir, HELLO, Some("OK\n"), Then::HangUp);
    let (text, err) = mcp.call(json!(2), "write_and_read_next", json!({"hex": "4500"}));
    fake.join().unwrap();
    assert!(err, "{text}");
    assert!(
        text.starts_with("OK\ntunbridge: the bridge closed the connection"),
        "{text}"
    );
}

#[test]
fn mcp_bounds_the_calls_that_wait() {
    let dir = TempDir::new("m-mcpmany");
    let (_bridge, _net, mut mcp) = mcp_bridge(&dir, &[]);
    let extra = 3;
    let calls: Vec<String> = (0..1 + tunbridge::ipc::mcp::MAX_WAITING + extra)
        .map(|i| {
            json!({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                   "params": {"name": "read_packet"}})
            .to_string()
        })
        .collect();
    // All in one write: one call under way, MAX_WAITING waiting, the rest refused at once.
    mcp.send_raw(&calls.join("\n"));
    for _ in 0..extra {
        let answer = mcp.recv_within(Duration::from_secs(5));
        let (text, err) = text_of(&answer);
        assert!(
            err && text.contains("too many tool calls waiting"),
            "{text}"
        );
    }
    mcp.assert_silent(Duration::from_millis(200));
    assert_eq!(mcp.close(Duration::from_secs(5)).code(), Some(0));
}
