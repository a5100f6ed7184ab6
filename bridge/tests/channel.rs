//! The private channel (`<cmd-fifo>.sock`) against hostile and careless clients: raw socket
//! clients that leave half lines, half-close, pipeline without reading, stay silent, wait
//! while the bridge stops, or plant a symbolic link at the socket's path; and the raw FIFO
//! form's hand-over into a pipe that nobody reads. Each test speaks raw bytes to a running
//! bridge, beside the `tunbridge` clients.
//!
//! No root needed: each test starts the server in a thread on an in-memory device
//! (`Bridge::memory`), as `server.rs` does.

mod common;

use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use common::*;
use tunbridge::cli::{Cli, Cmd};
use tunbridge::ipc::channel::{socket_path, MAX_CLIENTS};

/// How long a connection may stay without sending a whole command (docs/SECURITY.md).
const SILENCE: Duration = Duration::from_secs(10);

/// What came next on a raw connection.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// A line, without its newline.
    Line(String),
    /// The bridge closed the connection (end of file, or a reset after it).
    End,
    /// Nothing within the time given.
    Nothing,
}

/// A raw client of the channel: bytes in, lines out, as `nc -U` would.
struct Raw {
    stream: UnixStream,
    buf: Vec<u8>,
}

impl Raw {
    /// Connects to the bridge's channel; the greeting is left unread.
    fn connect(bridge: &Bridge) -> Raw {
        let stream = UnixStream::connect(socket_path(&bridge.cmd)).expect("connect");
        Raw {
            stream,
            buf: Vec::new(),
        }
    }

    /// Connects and reads the greeting.
    fn greeted(bridge: &Bridge) -> Raw {
        let mut raw = Raw::connect(bridge);
        let hello = raw.next(Duration::from_secs(5));
        assert!(
            matches!(&hello, Next::Line(l) if l.starts_with("HELLO")),
            "{hello:?}"
        );
        raw
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Shuts the sending side, as `nc -N` or `socat` do at the end of their input.
    fn half_close(&self) {
        self.stream.shutdown(std::net::Shutdown::Write).unwrap();
    }

    /// The next line, the end of the connection, or nothing within `within`.
    fn next(&mut self, within: Duration) -> Next {
        let deadline = Instant::now() + within;
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Next::Line(String::from_utf8_lossy(&line[..i]).into_owned());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Next::Nothing;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut chunk) {
                Ok(0) => return Next::End,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Next::End,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("reading the channel: {e}"),
            }
        }
    }

    /// The next line, which must come within `within`.
    fn line(&mut self, within: Duration) -> String {
        match self.next(within) {
            Next::Line(l) => l,
            other => panic!("no answer within {within:?}: {other:?}"),
        }
    }
}

/// `tunbridge serve` flags parsed into the config the in-memory bridge gets.
fn memory_config(dir: &TempDir) -> tunbridge::daemon::config::Config {
    let argv = [
        "tunbridge".to_string(),
        "serve".into(),
        "--keep-root".into(),
        "--cmd-fifo".into(),
        dir.join("cmd").display().to_string(),
        "--resp-fifo".into(),
        dir.join("resp").display().to_string(),
    ];
    let Cmd::Serve(args) = Cli::try_parse_from(argv).expect("serve flags").command else {
        unreachable!("parsed as serve")
    };
    let mut config = args.config().expect("serve config");
    config.user = None;
    config
}

// Fault 1: a partial line dropped for idling left the line behind it unserved.
#[test]
fn a_command_after_a_dropped_partial_line_is_answered() {
    let dir = TempDir::new("ch-partial");
    let (bridge, _net) = Bridge::memory(&dir, &[]);
    let mut client = Raw::greeted(&bridge);
    client.send(b"JUNK");
    // Past the idle limit of a half line (1 s), then a whole command; no other client comes.
    std::thread::sleep(Duration::from_millis(1500));
    client.send(b"WRITE 00\n");
    let answer = client.line(Duration::from_secs(3));
    assert!(answer.starts_with("ERR "), "{answer}");
}

// Fault 2: a client that shut its sending side got its answer, never the close.
#[test]
fn a_half_closed_client_gets_its_answers_and_then_end_of_file() {
    let dir = TempDir::new("ch-halfclose");
    let (bridge, net) = Bridge::memory(&dir, &["--read-timeout", "1"]);
    // An unterminated last line, as `printf 'WRITE 00' | nc -N -U` sends it.
    let mut client = Raw::greeted(&bridge);
    client.send(b"WRITE 00");
    client.half_close();
    let answer = client.line(Duration::from_secs(3));
    assert!(answer.starts_with("ERR "), "{answer}");
    assert_eq!(client.next(Duration::from_secs(3)), Next::End);
    // Several lines, the last one unterminated: one answer each, in order, then the close.
    let mut client = Raw::greeted(&bridge);
    client.send(b"WRITE zz\nREAD\nWRITE 01");
    client.half_close();
    let answers: Vec<String> = (0..3)
        .map(|_| client.line(Duration::from_secs(3)))
        .collect();
    assert!(answers[0].starts_with("ERR bad hex"), "{answers:?}");
    assert_eq!(answers[1], "TIMEOUT", "{answers:?}");
    assert!(answers[2].starts_with("ERR "), "{answers:?}");
    assert_eq!(client.next(Duration::from_secs(3)), Next::End);
    // A READ that gets a packet: the packet, then the close; it counts as read.
    let request = ping_memory(&net, 1, 56);
    let mut client = Raw::greeted(&bridge);
    client.send(b"READ\n");
    client.half_close();
    assert_eq!(
        hex::decode(client.line(Duration::from_secs(3))).unwrap(),
        request
    );
    assert_eq!(client.next(Duration::from_secs(3)), Next::End);
    // Read, so not put back: the next READ finds nothing.
    assert_eq!(bridge.exchange("READ"), "TIMEOUT");
}

// Fault 3: a client that pipelines commands and never reads its answers grew the bridge
// without bound (its commands read, their answers kept) and burned a CPU.
#[test]
fn a_client_that_pipelines_and_never_reads_is_bounded_then_dropped() {
    const BOUND: usize = 4 << 20;
    const GIVE_UP: usize = 16 << 20;
    let dir = TempDir::new("ch-pipeline");
    let (bridge, _net) = Bridge::memory(&dir, &[]);
    let mut flood = Raw::connect(&bridge);
    flood
        .stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let chunk = b"WRITE zz\n".repeat(455);
    let started = Instant::now();
    let mut sent = 0usize;
    // The bridge stops taking commands once their answers pile up unread: the writes block.
    while sent < GIVE_UP && started.elapsed() < Duration::from_secs(60) {
        match flood.stream.write(&chunk) {
            Ok(n) => sent += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break
            }
            Err(e) => panic!("after {sent} bytes: {e}"),
        }
    }
    assert!(
        sent < BOUND,
        "the bridge took {sent} bytes of commands whose answers were never read \
         (in {:?})",
        started.elapsed()
    );
    // Meanwhile other clients are served.
    assert!(bridge.exchange("WRITE zz").starts_with("ERR bad hex"));
    // Past the limit the client is dropped, with a log line saying why.
    bridge.wait_total(Count::ClientStalled, 1, Duration::from_secs(30));
    let mut answers = 0;
    loop {
        match flood.next(Duration::from_secs(5)) {
            Next::Line(l) if l.starts_with("HELLO") => {}
            Next::Line(l) => {
                assert!(l.starts_with("ERR "), "{l}");
                answers += 1;
            }
            Next::End => break,
            Next::Nothing => panic!("the dropped client's connection stays open"),
        }
    }
    assert!(answers > 0 && answers * 9 <= sent, "{answers} answers");
}

// Fault 4: connections that say nothing held every slot, so real clients were refused.
#[test]
fn silent_connections_do_not_lock_real_clients_out() {
    let dir = TempDir::new("ch-silent");
    let (bridge, net) = Bridge::memory(&dir, &[]);
    // Accepted in the order they came, before any client after them.
    let mut silent: Vec<Raw> = (0..MAX_CLIENTS).map(|_| Raw::connect(&bridge)).collect();
    // A real client gets in at once, and so does `tunbridge read`.
    let answer = bridge.exchange("WRITE zz");
    assert!(answer.starts_with("ERR bad hex"), "{answer}");
    let request = ping_memory(&net, 1, 56);
    let read = bridge.cli(&["read"]);
    assert!(read.status.success(), "{read:?}");
    let line = String::from_utf8(read.stdout).unwrap();
    assert_eq!(hex::decode(line.trim()).unwrap(), request);
    // The oldest silent connections made room: each was told why, then closed.
    let oldest = &mut silent[0];
    assert!(matches!(oldest.next(Duration::from_secs(2)), Next::Line(l) if l.starts_with("HELLO")));
    let farewell = oldest.line(Duration::from_secs(2));
    assert!(farewell.starts_with("ERR "), "{farewell}");
    assert_eq!(oldest.next(Duration::from_secs(2)), Next::End);
}

#[test]
fn with_every_client_waiting_in_read_a_newcomer_is_refused_in_one_line() {
    let dir = TempDir::new("ch-full");
    let (bridge, _net) = Bridge::memory(&dir, &[]);
    let _waiting: Vec<Raw> = (0..MAX_CLIENTS)
        .map(|_| {
            let mut raw = Raw::connect(&bridge);
            raw.send(b"READ\n");
            raw
        })
        .collect();
    bridge.wait_total(Count::Asked, MAX_CLIENTS as u64, Duration::from_secs(5));
    // No silent or idle connection to make room: `tunbridge read` is told so and exits 1.
    let read = bridge.cli(&["read"]);
    assert_eq!(
        String::from_utf8_lossy(&read.stdout),
        "ERR too many clients connected\n"
    );
    assert_eq!(read.status.code(), Some(1), "{read:?}");
    let refused = bridge.client().session().expect_err("a session at the cap");
    assert!(
        refused
            .to_string()
            .contains("refused the connection: ERR too many clients"),
        "{refused}"
    );
}

#[test]
fn a_connection_that_never_sends_a_command_is_closed_after_the_silence_limit() {
    let dir = TempDir::new("ch-silence");
    let (bridge, _net) = Bridge::memory(&dir, &[]);
    let started = Instant::now();
    let mut silent = Raw::greeted(&bridge);
    // A session opened long before its first command, as an MCP server at start-up.
    let mut session = bridge.client().session().expect("session");
    // Half a command is not a command.
    silent.send(b"REA");
    let farewell = silent.line(SILENCE + Duration::from_secs(5));
    assert!(farewell.starts_with("ERR "), "{farewell}");
    assert!(started.elapsed() >= SILENCE - Duration::from_millis(500));
    assert_eq!(silent.next(Duration::from_secs(2)), Next::End);
    // The session finds its connection closed and sends its first command on a new one.
    bridge.wait_total(Count::ClientSilent, 2, Duration::from_secs(2));
    let answer = session.exchange("WRITE zz").expect("a new connection");
    assert!(answer.starts_with("ERR bad hex"), "{answer}");
}

#[test]
fn a_client_waiting_in_read_or_idle_between_commands_is_never_cut() {
    let dir = TempDir::new("ch-longlived");
    let read_timeout = (SILENCE + Duration::from_secs(2)).as_secs().to_string();
    let (bridge, net) = Bridge::memory(&dir, &["--read-timeout", &read_timeout]);
    // A READ that waits longer than the silence limit gets its TIMEOUT.
    let mut waiting = Raw::greeted(&bridge);
    waiting.send(b"READ\n");
    // A long-lived client (an MCP server between packets): one command, then its model
    // thinks for longer than the silence limit, then the next command on the same connection.
    let mut session = bridge.client().session().expect("session");
    assert!(session
        .exchange("WRITE zz")
        .unwrap()
        .starts_with("ERR bad hex"));
    assert_eq!(
        waiting.line(SILENCE + Duration::from_secs(5)),
        "TIMEOUT",
        "a READ waiting past the silence limit"
    );
    let request = ping_memory(&net, 1, 56);
    let line = session
        .exchange("READ")
        .expect("the same connection, still served");
    assert_eq!(hex::decode(line).unwrap(), request);
}

// Fault 5: a READ pending at shutdown was told TIMEOUT, and `tunbridge read` exited 0.
#[test]
fn a_read_pending_at_shutdown_is_told_the_bridge_is_stopping() {
    let dir = TempDir::new("ch-stopping");
    let (mut bridge, _net) = Bridge::memory(&dir, &[]);
    let read = bridge.spawn_cli(&["read"]);
    bridge.wait_total(Count::Asked, 1, Duration::from_secs(5));
    // The published raw form waiting on the FIFOs too.
    let script = format!(
        "echo READ > '{}' && timeout 10 cat '{}'",
        bridge.cmd.display(),
        bridge.resp.display()
    );
    let raw = Command::new("sh")
        .args(["-c", &script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    bridge.wait_total(Count::Asked, 2, Duration::from_secs(5));
    bridge.stop().unwrap();
    let out = read.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ERR bridge stopping\n"
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = raw.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ERR bridge stopping\n"
    );
}

// Fault 6: a symbolic link at the socket path was followed: the bridge connected to what it
// pointed at, then refused with "another bridge is serving".
#[test]
fn a_symlink_at_the_socket_path_is_refused_by_name_and_never_followed() {
    let dir = TempDir::new("ch-symlink");
    let victim_path = dir.join("victim.sock");
    let victim = UnixListener::bind(&victim_path).unwrap();
    victim.set_nonblocking(true).unwrap();
    let link: PathBuf = socket_path(&dir.join("cmd"));
    std::os::unix::fs::symlink(&victim_path, &link).unwrap();
    let config = memory_config(&dir);
    let (device, _net) = tunbridge::daemon::device::memory::pair("mem0", 1500).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let error = tunbridge::daemon::server::serve(config, Box::new(device), stop, Arc::default())
        .expect_err("a bridge on a linked socket path")
        .to_string();
    assert!(
        error.contains(&link.display().to_string()) && error.contains("symbolic link"),
        "{error}"
    );
    match victim.accept() {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        other => panic!("the link's target saw a connection: {other:?}"),
    }
    let meta = std::fs::symlink_metadata(&link).unwrap();
    assert!(meta.file_type().is_symlink(), "the link is left alone");
}

// The raw FIFO form: a READ whose client died while a stray process holds the answer FIFO
// open put its packet into a pipe nobody reads; the next reader got nothing.
#[test]
fn a_packet_left_unread_in_the_answer_fifo_goes_to_the_next_reader() {
    let dir = TempDir::new("ch-takeback");
    let (bridge, net) = Bridge::memory(&dir, &["--read-timeout", "3"]);
    // Holds the answer FIFO open and never reads, like a `cat` stopped in another terminal.
    let script = format!("exec 3<'{}'; exec sleep 60", bridge.resp.display());
    let mut stray = Command::new("sh").args(["-c", &script]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // A raw client that sends READ and dies before it opens the answer FIFO.
    write_raw(&bridge.cmd, b"READ\n");
    let request = ping_memory(&net, 1, 56);
    bridge.wait_total(Count::Handed, 1, Duration::from_secs(5));
    // Past the grace period the next reader gets that packet, as one line.
    std::thread::sleep(Duration::from_millis(1500));
    let line = bridge.exchange("READ");
    stray.kill().unwrap();
    stray.wait().unwrap();
    assert_ne!(line, "TIMEOUT", "the packet was lost into the pipe");
    assert_eq!(hex::decode(&line).unwrap(), request);
    // Any answer its dead client left in the pipe is taken out: the next raw client reads
    // only its own.
    let mut stray = Command::new("sh").args(["-c", &script]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    write_raw(&bridge.cmd, b"WRITE zz\n");
    std::thread::sleep(Duration::from_millis(1500));
    let next = format!(
        "echo READ > '{}' && timeout 5 cat '{}'",
        bridge.cmd.display(),
        bridge.resp.display()
    );
    let out = Command::new("sh").args(["-c", &next]).output().unwrap();
    stray.kill().unwrap();
    stray.wait().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "TIMEOUT\n");
}

/// The fuzz: clients with random byte streams, split at random points, ending in a
/// half-close, a disconnect (read or not), or staying open, beside a stream of pings.
mod fuzz {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;
    use std::collections::HashSet;
    use std::sync::atomic::Ordering;
    use std::sync::Mutex;
    use tunbridge::ipc::protocol::MAX_LINE;

    /// How a client's connection ends.
    #[derive(Debug, Clone)]
    pub enum End {
        /// Shuts its sending side and reads every answer, then the close.
        HalfClose,
        /// Reads its answers to the whole lines and stays until no more come.
        StayOpen,
        /// Goes away without reading anything.
        Vanish,
        /// Reads this many lines (greeting included), then goes away.
        VanishAfter(usize),
    }

    /// One client's bytes and how they are sent.
    #[derive(Clone)]
    pub struct Script {
        /// Whole lines, without their end; `true`: ended by CRLF.
        lines: Vec<(Vec<u8>, bool)>,
        /// An unterminated last line (may be empty).
        tail: Vec<u8>,
        /// Where the stream is cut into writes (as fractions of its length, in 1/256).
        cuts: Vec<u8>,
        /// Pause before each write, in ms.
        pauses: Vec<u8>,
        end: End,
    }

    /// A line as text a reader can follow: escaped, a long run shown by its length.
    fn show(line: &[u8]) -> String {
        if line.len() > 200 {
            return format!("<{} bytes>", line.len());
        }
        line.escape_ascii().to_string()
    }

    impl std::fmt::Debug for Script {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            let lines: Vec<String> = self
                .lines
                .iter()
                .map(|(l, crlf)| format!("{}{}", show(l), if *crlf { "\\r\\n" } else { "\\n" }))
                .collect();
            f.debug_struct("Script")
                .field("lines", &lines)
                .field("tail", &show(&self.tail))
                .field(
                    "writes",
                    &self.writes().iter().map(Vec::len).collect::<Vec<_>>(),
                )
                .field("pauses", &self.pauses)
                .field("end", &self.end)
                .finish()
        }
    }

    impl Script {
        fn bytes(&self) -> Vec<u8> {
            let mut out = Vec::new();
            for (line, crlf) in &self.lines {
                out.extend_from_slice(line);
                out.extend_from_slice(if *crlf { b"\r\n" } else { b"\n" });
            }
            out.extend_from_slice(&self.tail);
            out
        }

        /// The writes: the stream cut at the script's points.
        fn writes(&self) -> Vec<Vec<u8>> {
            let bytes = self.bytes();
            let mut at: Vec<usize> = self
                .cuts
                .iter()
                .map(|&c| bytes.len() * usize::from(c) / 256)
                .collect();
            at.push(0);
            at.push(bytes.len());
            at.sort_unstable();
            at.dedup();
            at.windows(2).map(|w| bytes[w[0]..w[1]].to_vec()).collect()
        }

        /// Answers owed: one per whole line, and one for the tail when the client
        /// half-closes (the end of its stream ends the line).
        fn owed(&self) -> usize {
            let tail = matches!(self.end, End::HalfClose) && !self.tail.is_empty();
            self.lines.len() + usize::from(tail)
        }
    }

    fn line() -> impl Strategy<Value = Vec<u8>> {
        let no_newline = any::<u8>().prop_filter("no newline", |b| *b != b'\n');
        prop_oneof![
            4 => Just(b"READ".to_vec()),
            4 => Just(b"WRITE zz".to_vec()),
            2 => Just(b"WRITE 4500".to_vec()),
            1 => Just(b"  read ".to_vec()),
            1 => Just(Vec::new()),
            4 => vec(no_newline, 0..80),
            1 => (1usize..4000).prop_map(|extra| vec![b'a'; MAX_LINE + extra]),
        ]
    }

    fn tail() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            2 => Just(Vec::new()),
            1 => Just(b"READ".to_vec()),
            1 => vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 1..40),
        ]
    }

    fn end() -> impl Strategy<Value = End> {
        prop_oneof![
            3 => Just(End::HalfClose),
            2 => Just(End::StayOpen),
            1 => Just(End::Vanish),
            1 => (0usize..6).prop_map(End::VanishAfter),
        ]
    }

    pub fn script() -> impl Strategy<Value = Script> {
        (
            vec((line(), any::<bool>()), 0..24),
            tail(),
            vec(any::<u8>(), 0..12),
            vec(0u8..15, 13),
            end(),
        )
            .prop_map(|(lines, tail, cuts, pauses, end)| Script {
                lines,
                tail,
                cuts,
                pauses,
                end,
            })
    }

    /// Whether a line is one answer: a status word, or a packet as hex.
    fn is_answer(line: &str) -> bool {
        let word = line.split(' ').next().unwrap_or_default();
        matches!(word, "OK" | "TIMEOUT")
            || line.starts_with("ERR ")
            || (!line.is_empty() && hex::decode(line).is_ok())
    }

    /// Runs one client's script; returns the packets it read, or why it failed.
    fn run(bridge: &Bridge, script: &Script) -> Result<Vec<String>, String> {
        let mut raw = Raw::connect(bridge);
        let writer = raw.stream.try_clone().unwrap();
        let writes = script.writes();
        let pauses = script.pauses.clone();
        let sender = std::thread::spawn(move || {
            let mut writer = writer;
            for (i, w) in writes.iter().enumerate() {
                std::thread::sleep(Duration::from_millis(u64::from(pauses[i % pauses.len()])));
                // A bridge that has dropped the client (or a client that vanished) ends it.
                if writer.write_all(w).is_err() {
                    return;
                }
            }
        });
        let owed = script.owed();
        let within = Duration::from_secs(5) + Duration::from_millis(1500) * owed as u32;
        let mut lines = Vec::new();
        let mut outcome = Ok(());
        match script.end {
            End::Vanish => {
                let _ = sender.join();
                return Ok(Vec::new());
            }
            End::VanishAfter(n) => {
                for _ in 0..n.min(owed + 1) {
                    match raw.next(within) {
                        Next::Line(l) => lines.push(l),
                        other => outcome = Err(format!("{other:?} before line {n}")),
                    }
                }
                let _ = sender.join();
            }
            End::HalfClose => {
                let _ = sender.join();
                raw.half_close();
                loop {
                    match raw.next(within) {
                        Next::Line(l) => lines.push(l),
                        Next::End => break,
                        Next::Nothing => {
                            outcome = Err(format!("no end of file after {} lines", lines.len()));
                            break;
                        }
                    }
                }
            }
            End::StayOpen => {
                let _ = sender.join();
                for _ in 0..=owed {
                    match raw.next(within) {
                        Next::Line(l) => lines.push(l),
                        other => {
                            outcome = Err(format!("{other:?} after {} lines", lines.len()));
                            break;
                        }
                    }
                }
                if let Next::Line(extra) = raw.next(Duration::from_millis(300)) {
                    outcome = Err(format!("an answer no command asked for: {extra:.60}"));
                }
            }
        }
        outcome.map_err(|e| format!("{e}; lines: {lines:.200?}"))?;
        let Some((hello, answers)) = lines.split_first() else {
            return match script.end {
                End::VanishAfter(_) => Ok(Vec::new()),
                _ => Err("no greeting".into()),
            };
        };
        if !hello.starts_with("HELLO") {
            return Err(format!("greeting {hello:?}"));
        }
        if let Some(bad) = answers.iter().find(|l| !is_answer(l)) {
            return Err(format!("not an answer line: {bad:.80?}"));
        }
        let complete = matches!(script.end, End::HalfClose | End::StayOpen);
        if complete && answers.len() != owed {
            return Err(format!(
                "{} answers to {owed} commands: {answers:.200?}",
                answers.len()
            ));
        }
        let packets = answers.iter().filter(|l| l.starts_with("4")).cloned();
        Ok(packets.collect())
    }

    /// Runs the clients side by side against one bridge, with a ping every 20 ms.
    pub fn round(scripts: &[Script]) -> Result<(), String> {
        let dir = TempDir::new("ch-fuzz");
        let (bridge, net) = Bridge::memory(&dir, &["--read-timeout", "1"]);
        let bridge = Arc::new(bridge);
        let stop = Arc::new(AtomicBool::new(false));
        let pinger = std::thread::spawn({
            let stop = Arc::clone(&stop);
            move || {
                let mut seq = 0u16;
                while !stop.load(Ordering::Relaxed) {
                    seq = seq.wrapping_add(1);
                    ping_memory(&net, seq, 56);
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        });
        let read: Arc<Mutex<Vec<String>>> = Arc::default();
        let clients: Vec<_> = scripts
            .iter()
            .cloned()
            .map(|script| {
                let (bridge, read) = (Arc::clone(&bridge), Arc::clone(&read));
                std::thread::spawn(move || {
                    let packets = run(&bridge, &script)?;
                    read.lock().unwrap().extend(packets);
                    Ok::<(), String>(())
                })
            })
            .collect();
        let results: Vec<Result<(), String>> = clients
            .into_iter()
            .map(|c| c.join().unwrap_or_else(|_| Err("client panicked".into())))
            .collect();
        // The bridge still serves a new client as usual.
        let after = bridge
            .client()
            .exchange("WRITE zz")
            .map_err(|e| e.to_string());
        stop.store(true, Ordering::Relaxed);
        pinger.join().unwrap();
        for (i, r) in results.into_iter().enumerate() {
            r.map_err(|e| format!("client {i} ({:?}): {e}", scripts[i].end))?;
        }
        match after {
            Ok(l) if l.starts_with("ERR bad hex") => {}
            other => return Err(format!("a client after the round got {other:?}")),
        }
        let read = read.lock().unwrap();
        let unique: HashSet<&String> = read.iter().collect();
        if unique.len() != read.len() {
            return Err("a packet was handed to two clients".into());
        }
        Ok(())
    }
}

proptest::proptest! {
    // Each case starts a bridge and runs up to six clients for a second or two; more cases
    // with PROPTEST_CASES=N (docs/SECURITY.md names the long run).
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(12),
        max_shrink_iters: 64,
        ..proptest::prelude::ProptestConfig::default()
    })]

    #[test]
    fn every_complete_command_gets_exactly_one_answer(
        scripts in proptest::collection::vec(fuzz::script(), 1..6)
    ) {
        if let Err(e) = fuzz::round(&scripts) {
            return Err(proptest::test_runner::TestCaseError::fail(e));
        }
    }
}
