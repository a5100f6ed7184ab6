//! Shared helpers for the integration tests.
//!
//! Two ways to run the bridge. [`Bridge::memory`] runs the server in a thread of the
//! test on an in-memory device ([`Network`] plays the kernel), with FIFOs in a
//! private directory: no root, so these tests run everywhere. [`Bridge::start`] runs
//! the real `tunbridge serve` on a TUN device in a network namespace of the test's
//! own, and pings only the agent's address inside it; nothing is configured in the
//! machine's own namespace. Those need root and are `#[ignore = "needs root"]`: a plain
//! `cargo test` reports them ignored, `scripts/test.sh` runs them as root with
//! `--include-ignored` ([`require_root`] fails them when root is missing).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clap::Parser;
use tunbridge::cli::{Cli, Cmd};
pub use tunbridge::daemon::counts::{Count, Counts};
pub use tunbridge::daemon::device::memory::Network;
use tunbridge::ipc::client::Client;
use tunbridge::judge::exchange::Request;
use tunbridge::wire::{self, checksum};

pub mod oracle;

/// The daemon binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_tunbridge");
/// The agent's address inside the test namespace.
pub const PEER: &str = "192.0.2.2";

/// Fails unless the test runs as root. Every test that calls it is `#[ignore = "needs root"]`,
/// so a plain `cargo test` reports it ignored; `scripts/test.sh` runs it as root with
/// `--include-ignored`, and then a missing privilege is a failure, never a skip.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (network namespaces, TUN devices): run scripts/test.sh"
    );
}

/// For a test that needs root: a namespace and a directory tagged `tag`.
pub fn root_netns(tag: &str) -> (Netns, TempDir) {
    require_root();
    (Netns::new(tag), TempDir::new(tag))
}

/// For a test that needs root: a namespace and a directory tagged `tag`, and the daemon
/// started in them with `extra` flags. Keep all three until the end of the test, in this
/// order, so that the bridge stops before its directory and namespace go.
pub fn root_bridge(tag: &str, extra: &[&str]) -> (Netns, TempDir, Bridge) {
    root_bridge_with(tag, extra, false)
}

/// [`root_bridge`] with `--record` to the test directory's [`TempDir::record`].
pub fn recorded_root_bridge(tag: &str, extra: &[&str]) -> (Netns, TempDir, Bridge) {
    root_bridge_with(tag, extra, true)
}

fn root_bridge_with(tag: &str, extra: &[&str], record: bool) -> (Netns, TempDir, Bridge) {
    let (ns, dir) = root_netns(tag);
    let path = dir.record().display().to_string();
    let mut args = extra.to_vec();
    if record {
        args.extend(["--record", &path]);
    }
    let bridge = Bridge::start(&ns, &dir, &args);
    (ns, dir, bridge)
}

/// The repository root, for a test of the Claude Code harness: it needs root and the
/// pinned client installed (`npm ci`, which `scripts/test.sh` runs); either missing is a
/// failure.
pub fn repo_with_claude_code() -> &'static Path {
    require_root();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    assert!(
        root.join("node_modules/.bin/claude").exists(),
        "Claude Code is not installed: run npm ci (scripts/test.sh does)"
    );
    root
}

/// Waits until `done` holds, checking every 10 ms; panics after `limit`.
pub fn wait_until(limit: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "not done within {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The Claude Code version `package.json` pins (the newest end of the supported range).
pub fn pinned_client() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let package: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("package.json")).unwrap()).unwrap();
    package["dependencies"]["@anthropic-ai/claude-code"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The oldest Claude Code the harness supports (`harness/clients.py`) and its `claude`,
/// which `scripts/test.sh` installs into `target/clients/VERSION`; missing, a failure.
pub fn oldest_client() -> (String, PathBuf) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = Command::new("python3")
        .args(["-c", "from harness.clients import OLDEST; print(OLDEST)"])
        .current_dir(root)
        .output()
        .expect("python3");
    let version = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(!version.is_empty(), "harness.clients.OLDEST not found");
    let claude = root.join(format!("target/clients/{version}/node_modules/.bin/claude"));
    assert!(
        claude.exists(),
        "Claude Code {version} is not in target/clients: scripts/test.sh installs it"
    );
    (version, claude)
}

/// The scripted model (`python3 -m harness.model ARGS`) on 127.0.0.1; stopped on drop.
pub struct ScriptedModel {
    child: Child,
    /// `http://127.0.0.1:PORT`, as it said it listens.
    pub url: String,
}

impl ScriptedModel {
    /// Starts it with `args` (`--port 0` picks a free port); `None` when it could not
    /// listen (the port given is someone else's).
    pub fn start(args: &[&str]) -> Option<ScriptedModel> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let mut child = Command::new("python3")
            .args(["-m", "harness.model"])
            .args(args)
            .current_dir(root)
            .env("PYTHONPATH", root)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m harness.model");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let Some(url) = line.trim().strip_prefix("listening on ") else {
            let _ = child.wait();
            return None;
        };
        let url = url.to_string();
        Some(ScriptedModel { child, url })
    }
}

impl Drop for ScriptedModel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A network namespace of our own, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates `tbt-<tag>-<pid>` with its loopback up.
    pub fn new(tag: &str) -> Netns {
        let name = format!("tbt-{tag}-{}", std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        run("ip", &["netns", "add", &name]);
        run("ip", &["-n", &name, "link", "set", "lo", "up"]);
        Netns { name }
    }

    /// Runs a command inside the namespace and returns its output.
    pub fn exec(&self, args: &[&str]) -> Output {
        let mut full = vec!["netns", "exec", &self.name];
        full.extend_from_slice(args);
        Command::new("ip")
            .args(&full)
            .output()
            .expect("ip netns exec")
    }

    /// Pings the agent `count` times with `size` data bytes, waiting up to `wait` s per reply.
    pub fn ping(&self, size: usize, count: u32, wait: u32) -> Output {
        let (s, c, w) = (size.to_string(), count.to_string(), wait.to_string());
        self.exec(&["ping", "-n", "-c", &c, "-W", &w, "-s", &s, PEER])
    }

    /// Starts a ping in the background.
    pub fn spawn_ping(&self, size: usize, count: u32, wait: u32) -> Child {
        let (s, c, w) = (size.to_string(), count.to_string(), wait.to_string());
        Command::new("ip")
            .args([
                "netns", "exec", &self.name, "ping", "-n", "-c", &c, "-W", &w, "-s", &s, PEER,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ping")
    }

    /// Whether a link of this name exists in the namespace.
    pub fn has_link(&self, link: &str) -> bool {
        Command::new("ip")
            .args(["-n", &self.name, "link", "show", link])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run(cmd: &str, args: &[&str]) {
    let status = Command::new(cmd).args(args).status().expect(cmd);
    assert!(status.success(), "{cmd} {args:?} failed");
}

/// A private directory for FIFOs and records, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// `tbt-<tag>-<pid>`, new and empty. One of that name that cannot be removed was left
    /// by another process that had this pid (perhaps as another user, so the directory may
    /// not even be ours to use): then `tbt-<tag>-<pid>-<n>`, the first that is free.
    pub fn new(tag: &str) -> TempDir {
        let base = std::env::temp_dir().join(format!("tbt-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        for n in 0.. {
            let dir = match n {
                0 => base.clone(),
                n => PathBuf::from(format!("{}-{n}", base.display())),
            };
            match std::fs::create_dir(&dir) {
                Ok(()) => return TempDir(dir),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => panic!("{}: {e}", dir.display()),
            }
        }
        unreachable!("no free directory name")
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Where a test keeps its record: `record.jsonl` in the directory.
    pub fn record(&self) -> PathBuf {
        self.join("record.jsonl")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running bridge: a `tunbridge serve` process, stopped with SIGTERM on drop, or
/// the server in a thread on an in-memory device, stopped on drop.
pub struct Bridge {
    run: Run,
    pub cmd: PathBuf,
    pub resp: PathBuf,
    pub log: Arc<Mutex<Vec<String>>>,
    /// The running totals of an in-memory server (a process's stay zero).
    pub counts: Arc<Counts>,
}

/// How the bridge runs.
enum Run {
    Process(Child),
    Thread {
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<Result<(), String>>>,
    },
}

/// Collects the in-process server's log lines, as the process's stderr would show them.
#[derive(Clone)]
struct LogSink(Arc<Mutex<Vec<String>>>);

impl Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        for line in text.lines() {
            eprintln!("[bridge] {line}");
            self.0.lock().unwrap().push(line.to_string());
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Bridge {
    /// Starts the daemon in `ns` with FIFOs in `dir` and any extra flags; waits until it is ready.
    pub fn start(ns: &Netns, dir: &TempDir, extra: &[&str]) -> Bridge {
        let (cmd, resp) = (dir.join("cmd"), dir.join("resp"));
        let mut args: Vec<String> = vec!["serve".into(), "--netns".into(), ns.name.clone()];
        args.extend(["--cmd-fifo".into(), cmd.display().to_string()]);
        args.extend(["--resp-fifo".into(), resp.display().to_string()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut child = Command::new(BIN)
            .args(&args)
            // The tests follow packets through the debug lines ("request queued", "request handed").
            .env("RUST_LOG", "info,tunbridge=debug")
            .env_remove("SUDO_UID")
            .env_remove("SUDO_GID")
            .env_remove("SUDO_USER")
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tunbridge");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[bridge] {line}");
                sink.lock().unwrap().push(line);
            }
        });
        let bridge = Bridge {
            run: Run::Process(child),
            cmd,
            resp,
            log,
            counts: Arc::default(),
        };
        bridge.wait_log("bridge ready", Duration::from_secs(10));
        bridge
    }

    /// Wraps a `tunbridge serve` process the test started itself, its log not collected.
    pub fn from_child(child: Child, cmd: PathBuf, resp: PathBuf) -> Bridge {
        Bridge {
            run: Run::Process(child),
            cmd,
            resp,
            log: Default::default(),
            counts: Arc::default(),
        }
    }

    /// Starts the server in a thread on an in-memory device, with FIFOs in `dir` and
    /// any extra `serve` flags; returns it with the device's network side once it is ready.
    /// It never drops privileges (that would change the whole test process).
    pub fn memory(dir: &TempDir, extra: &[&str]) -> (Bridge, Network) {
        let (cmd, resp) = (dir.join("cmd"), dir.join("resp"));
        let mut argv: Vec<String> = ["tunbridge", "serve", "--keep-root"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        argv.extend(["--cmd-fifo".into(), cmd.display().to_string()]);
        argv.extend(["--resp-fifo".into(), resp.display().to_string()]);
        argv.extend(extra.iter().map(|s| s.to_string()));
        let Cmd::Serve(args) = Cli::try_parse_from(&argv).expect("serve flags").command else {
            unreachable!("parsed as serve")
        };
        let mut config = args.config().expect("serve config");
        config.user = None;
        let (device, network) =
            tunbridge::daemon::device::memory::pair("mem0", usize::from(config.mtu)).unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = LogSink(Arc::clone(&log));
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let counts = Arc::new(Counts::default());
        let totals = Arc::clone(&counts);
        let thread = std::thread::spawn(move || {
            let subscriber = tracing_subscriber::fmt()
                .with_env_filter("info,tunbridge=debug")
                .with_ansi(false)
                .with_writer(move || sink.clone())
                .finish();
            tracing::subscriber::with_default(subscriber, || {
                tunbridge::daemon::server::serve(config, Box::new(device), flag, totals)
            })
            .map_err(|e| e.to_string())
        });
        let mut bridge = Bridge {
            run: Run::Thread {
                stop,
                thread: Some(thread),
            },
            cmd,
            resp,
            log,
            counts,
        };
        // A server that fails to start says why, rather than leaving the wait to time out.
        let deadline = Instant::now() + Duration::from_secs(10);
        while bridge.count_log("bridge ready") == 0 {
            if !bridge.alive() {
                panic!("the server ended before it was ready: {:?}", bridge.join());
            }
            assert!(
                Instant::now() < deadline,
                "the server was not ready in 10 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        (bridge, network)
    }

    /// Waits until a log line contains `text`; panics after `limit`.
    pub fn wait_log(&self, text: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(l) = self.log.lock().unwrap().iter().find(|l| l.contains(text)) {
                return l.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {text:?}: {:#?}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `n` log lines contain `text`; panics after `limit`.
    pub fn wait_count(&self, text: &str, n: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.count_log(text) < n {
            assert!(
                Instant::now() < deadline,
                "fewer than {n} log lines with {text:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until the in-memory server's total of `which` is at least `n`; panics after `limit`.
    pub fn wait_total(&self, which: Count, n: u64, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.counts.get(which) < n {
            assert!(
                Instant::now() < deadline,
                "{which:?}: {} of {n} after {limit:?}",
                self.counts.get(which)
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// How many log lines contain `text`.
    pub fn count_log(&self, text: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(text))
            .count()
    }

    /// A client for this bridge's FIFOs.
    pub fn client(&self) -> Client {
        Client::new(&self.cmd, &self.resp)
    }

    /// One exchange, panicking on a client failure.
    pub fn exchange(&self, line: &str) -> String {
        self.client()
            .exchange(line)
            .unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    /// `tunbridge <args>` on this bridge's FIFOs, as an agent runs it.
    fn cli_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command.args(args);
        command.arg("--cmd-fifo").arg(&self.cmd);
        command.arg("--resp-fifo").arg(&self.resp);
        command
    }

    /// Sends a raw command line through the CLI binary, as an agent would.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_command(args).output().expect("tunbridge client")
    }

    /// Starts `tunbridge <args>` on the bridge's FIFOs, its output captured.
    pub fn spawn_cli(&self, args: &[&str]) -> Child {
        self.cli_command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tunbridge client")
    }

    /// Whether the daemon is still running.
    pub fn alive(&mut self) -> bool {
        match &mut self.run {
            Run::Process(child) => child.try_wait().unwrap().is_none(),
            Run::Thread { thread, .. } => thread.as_ref().is_some_and(|t| !t.is_finished()),
        }
    }

    /// The daemon process.
    pub fn child(&mut self) -> &mut Child {
        match &mut self.run {
            Run::Process(child) => child,
            Run::Thread { .. } => panic!("an in-memory bridge has no process"),
        }
    }

    /// Sends a signal and waits for the exit status.
    pub fn stop_with(&mut self, signal: nix::sys::signal::Signal) -> ExitStatus {
        let child = self.child();
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, signal);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "bridge did not exit after {signal}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to `limit` for the in-memory server to end by itself; its result.
    pub fn ended(&mut self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        while self.alive() {
            assert!(Instant::now() < deadline, "the server is still running");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.join()
    }

    /// Stops the in-memory server as SIGTERM would, and returns its result.
    pub fn stop(&mut self) -> Result<(), String> {
        if let Run::Thread { stop, .. } = &self.run {
            stop.store(true, Ordering::SeqCst);
        }
        self.join()
    }

    fn join(&mut self) -> Result<(), String> {
        match &mut self.run {
            Run::Thread { thread, .. } => match thread.take() {
                Some(t) => t.join().expect("the server thread panicked"),
                None => Err("already stopped".into()),
            },
            Run::Process(_) => panic!("not an in-memory bridge"),
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let thread = matches!(self.run, Run::Thread { .. });
        if thread {
            let _ = self.stop();
        } else if self.alive() {
            // No assertion here: a bridge that will not stop while a failed test unwinds
            // must not turn into a second panic, which aborts the whole test binary and
            // leaves every other test's namespace behind.
            let child = self.child();
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Stops the daemon with `signal` and checks that it exited 0 and left neither its
/// FIFOs nor its device behind.
pub fn assert_stops_cleanly(bridge: &mut Bridge, ns: &Netns, signal: nix::sys::signal::Signal) {
    let status = bridge.stop_with(signal);
    assert_eq!(status.code(), Some(0), "{signal}: {status:?}");
    assert!(
        !bridge.cmd.exists() && !bridge.resp.exists(),
        "FIFOs left after {signal}"
    );
    assert!(!ns.has_link("tun0"), "device left after {signal}");
}

/// Answers one request with the reference reply (optionally changed by `spoil`); returns the WRITE answer.
pub fn answer_one(bridge: &Bridge, spoil: impl Fn(&mut Vec<u8>)) -> String {
    let line = bridge.exchange("READ");
    assert_ne!(line, "TIMEOUT", "no request reached the agent");
    let request = hex::decode(&line).unwrap_or_else(|_| panic!("READ answer is not hex: {line:?}"));
    let mut reply = reference_reply(&request);
    spoil(&mut reply);
    bridge.exchange(&format!("WRITE {}", hex::encode(&reply)))
}

/// Pings the agent once from `ns`, answers with the reference reply through `bridge`,
/// and checks that ping got it.
pub fn ping_answered(ns: &Netns, bridge: &Bridge) {
    let ping = ns.spawn_ping(56, 1, 10);
    assert_eq!(answer_one(bridge, |_| {}), "OK");
    assert_received(&ping.wait_with_output().unwrap(), 1);
}

/// The reference echo reply to `request`, checked by the etherparse oracle.
pub fn reference_reply(request: &[u8]) -> Vec<u8> {
    let reply = wire::echo_reply(request).expect("an echo request");
    oracle::assert_echo_reply(request, &reply);
    reply
}

/// An ICMP echo request 192.0.2.1 -> 192.0.2.2 with `size` data bytes, as `ping -s` sends.
pub fn echo_request(ident: u16, seq: u16, size: usize) -> Vec<u8> {
    let total = 28 + size;
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, 1, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2]);
    p.extend_from_slice(&[8, 0, 0, 0]);
    p.extend_from_slice(&ident.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend((0..size).map(|i| i as u8));
    fix_ip(&mut p);
    fix_icmp(&mut p);
    p
}

/// Rewrites the checksum of a 20-byte IPv4 header after a change.
pub fn fix_ip(packet: &mut [u8]) {
    packet[10..12].fill(0);
    let c = checksum::checksum(&packet[..20]);
    packet[10..12].copy_from_slice(&c.to_be_bytes());
}

/// Rewrites the ICMP checksum after a change (behind a 20-byte IPv4 header), so that
/// only the intended field is wrong.
pub fn fix_icmp(packet: &mut [u8]) {
    packet[22..24].fill(0);
    let c = checksum::checksum(&packet[20..]);
    packet[22..24].copy_from_slice(&c.to_be_bytes());
}

/// Sends an echo request into the in-memory device; returns it.
pub fn ping_memory(network: &Network, seq: u16, size: usize) -> Vec<u8> {
    let request = echo_request(0x7b2a, seq, size);
    network.send(&request).expect("send into the memory device");
    request
}

/// Checks that the bridge wrote the reference reply to `request` to the in-memory device.
pub fn assert_replied(network: &Network, request: &[u8]) {
    let got = network
        .recv(Duration::from_secs(5))
        .unwrap()
        .expect("no reply reached the network");
    assert_eq!(got, reference_reply(request), "not the reply");
}

/// Writes raw bytes to a FIFO, as a shell redirection would.
pub fn write_raw(path: &Path, data: &[u8]) {
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all(data).unwrap();
}

/// Checks that ping's output reports `n` replies received.
pub fn assert_received(out: &Output, n: u32) {
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("{n} received")),
        "ping did not get {n} replies:\n{text}"
    );
}

/// The one line a `tunbridge` client printed, checking that it exited 0.
pub fn stdout_line(out: Output) -> String {
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "{text:?}");
    text.trim_end().to_string()
}

/// The ICMP sequence number of a READ answer.
pub fn seq_of(line: &str) -> u16 {
    let packet = hex::decode(line).unwrap_or_else(|_| panic!("not a packet: {line:?}"));
    let key = Request::parse(&packet).key.and_then(|k| k.echo());
    key.expect("an echo request").1
}

/// Reads a record file (JSON lines) as JSON values; a missing file has none.
pub fn records(path: &Path) -> Vec<serde_json::Value> {
    parse_records(&std::fs::read_to_string(path).unwrap_or_default())
}

/// Every line of `text` as a JSON value.
fn parse_records(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// Waits up to 5 s until at least `n` lines of the record pass `which`, and returns the
/// whole record. A reply is judged and recorded just after it is written to the device,
/// so its line may come a moment after the reply reached ping or the client.
pub fn records_once(
    path: &Path,
    n: usize,
    which: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        // A line being written is not read until it is whole.
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines = parse_records(text.rfind('\n').map_or("", |end| &text[..end]));
        if lines.iter().filter(|r| which(r)).count() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "fewer than {n} such lines in the record: {lines:#?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a record line is a judged answer.
pub fn answered(r: &serde_json::Value) -> bool {
    r["outcome"] == "answered"
}
