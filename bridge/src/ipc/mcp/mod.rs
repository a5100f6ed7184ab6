//! `tunbridge mcp`: a running bridge as MCP tools, for any agent that takes tools over MCP.
//!
//! The server speaks MCP's stdio transport (one JSON-RPC 2.0 message per line on stdin and
//! stdout, log lines on stderr), revisions 2025-11-25 back to 2024-11-05, with three tools:
//! `read_packet`, `write_packet` and `write_and_read_next` ([`tools`]). Each tool call is
//! one exchange with the bridge on its private channel, on a connection of its own, the
//! same exchange `tunbridge read` and `tunbridge write [--next]` make: nothing is held
//! between calls, so a bridge restarted between two calls is no matter, and a connection is
//! only ever open while it carries a command. It runs as the user (the bridge's channel
//! belongs to that user) and refuses to run as root.
//!
//! One thread, in `poll(2)` on stdin and on the call under way. While a call waits for the
//! bridge (a READ may wait its whole read timeout) `ping`, `tools/list` and the like are
//! answered at once, further tool calls queue, and a `notifications/cancelled` for the call
//! under way closes its connection: the bridge sees that at once, so a READ that was not
//! yet answered takes no packet, and a packet it had handed over unread goes back to the
//! head of its queue. End of file on stdin ends the server the same way.
//!
//! Why no MCP library: the official Rust SDK, `rmcp` (3.11), is built on tokio. Built into
//! this crate for the same three tools it added 46 crates to the 66 the release binary
//! compiles, took the build's CPU time from 123 s to 237 s and the stripped binary from
//! 2.7 MB to 5.1 MB (measured, docs/HARNESS.md, "Why no MCP library"), and would bring an
//! async runtime into a crate that is one thread and blocking by design. What this server
//! needs of MCP is small and fixed: the lifecycle and version negotiation, `ping`, two tool
//! methods, cancellation, and batches in the one revision that had them. That is about 650
//! lines over serde_json, which the crate already uses, each rule with its test ([`jsonrpc`],
//! [`handler`], `tests/tools.rs`), and the whole checked against Claude Code 2.1.197 and
//! 2.1.332.

pub mod handler;
pub mod jsonrpc;
pub mod tools;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::time::Instant;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde_json::Value;
use tracing::{debug, info};

use crate::ipc::client::{Call, Client, Unfinished};
use handler::{Action, Handler};
use jsonrpc::{code, Message, Received};

/// The longest message line taken from the client: room for any packet's hex and more.
pub const MAX_MESSAGE: usize = 1 << 20;

/// Most tool calls waiting behind the one under way; one more is answered with a tool error.
pub const MAX_WAITING: usize = 64;

/// Why the server stopped with an error.
#[derive(Debug)]
pub enum McpError {
    /// Started as root.
    Root,
    /// Reading stdin failed.
    Stdin(io::Error),
    /// Writing stdout failed (other than the client going away).
    Stdout(io::Error),
    /// Waiting in poll(2) failed.
    Poll(io::Error),
}

impl fmt::Display for McpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Root => write!(
                f,
                "`mcp` runs as the agent's user, never as root (the bridge gives its \
                 channel to that user and drops root itself): run it as that user"
            ),
            Self::Stdin(e) => write!(f, "cannot read from the MCP client: {e}"),
            Self::Stdout(e) => write!(f, "cannot write to the MCP client: {e}"),
            Self::Poll(e) => write!(f, "cannot wait for the MCP client and the bridge: {e}"),
        }
    }
}

impl std::error::Error for McpError {}

/// Serves MCP on stdin and stdout for the bridge `client` reaches, until stdin ends.
pub fn run(client: &Client) -> Result<(), McpError> {
    if nix::unistd::geteuid().is_root() {
        return Err(McpError::Root);
    }
    // Read unbuffered, so poll(2) on the descriptor sees every byte not yet taken.
    let stdin = io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map_err(McpError::Stdin)?;
    let mut stdio = Stdio::new(client, File::from(stdin), io::stdout());
    match stdio.serve() {
        Err(McpError::Stdout(e)) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// A tool call waiting for its turn, or under way; `batch`: the batch it belongs to.
#[derive(Debug)]
struct Job {
    id: Value,
    batch: Option<u64>,
}

/// A batch's responses so far, sent as one array once none is missing.
#[derive(Debug, Default)]
struct Batch {
    responses: Vec<Value>,
    /// Members still without a response (plus one while the batch is being read).
    open: usize,
}

/// The server's state: the MCP session, the tool calls, and the two streams.
struct Stdio<'a, W: Write> {
    client: &'a Client,
    handler: Handler,
    input: File,
    output: W,
    /// Bytes of an unfinished message line; `None` while skipping an over-long one.
    line: Option<Vec<u8>>,
    /// Tool calls waiting, in the order they came, with their commands.
    queue: VecDeque<(Job, Vec<String>)>,
    /// The tool call under way and its exchange with the bridge.
    running: Option<(Job, Call)>,
    batches: BTreeMap<u64, Batch>,
    next_batch: u64,
}

impl<'a, W: Write> Stdio<'a, W> {
    fn new(client: &'a Client, input: File, output: W) -> Self {
        Stdio {
            client,
            handler: Handler::new(),
            input,
            output,
            line: Some(Vec::new()),
            queue: VecDeque::new(),
            running: None,
            batches: BTreeMap::new(),
            next_batch: 0,
        }
    }

    /// Until stdin ends: reads messages, starts calls, and answers them.
    fn serve(&mut self) -> Result<(), McpError> {
        loop {
            self.start_next()?;
            let (input, call) = self.wait()?;
            if input && !self.read_input()? {
                // The client has gone: a call under way is dropped with its connection.
                debug!("stdin closed; stopping");
                return Ok(());
            }
            if call {
                self.progress()?;
            }
        }
    }

    /// Sleeps until stdin or the call under way has something, or the call is overdue.
    fn wait(&self) -> Result<(bool, bool), McpError> {
        let mut fds = vec![PollFd::new(self.input.as_fd(), PollFlags::POLLIN)];
        let mut timeout = PollTimeout::NONE;
        if let Some((_, call)) = &self.running {
            fds.push(PollFd::new(call.fd(), PollFlags::POLLIN));
            let left = call.deadline().saturating_duration_since(Instant::now());
            timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
        }
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(Errno::EINTR) => return Ok((false, false)),
            Err(e) => return Err(McpError::Poll(e.into())),
        }
        let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
        let call = match fds.get(1) {
            Some(fd) => ready(fd) || Instant::now() >= self.call_deadline(),
            None => false,
        };
        Ok((ready(&fds[0]), call))
    }

    fn call_deadline(&self) -> Instant {
        self.running
            .as_ref()
            .map_or_else(Instant::now, |(_, call)| call.deadline())
    }

    /// Reads what stdin has and acts on each whole line; false at end of file.
    fn read_input(&mut self) -> Result<bool, McpError> {
        let mut chunk = [0u8; 65536];
        let n = match self.input.read(&mut chunk) {
            Ok(0) => return Ok(false),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(true),
            Err(e) => return Err(McpError::Stdin(e)),
        };
        let mut rest = &chunk[..n];
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            let (head, tail) = (&rest[..i], &rest[i + 1..]);
            rest = tail;
            match self.line.take() {
                Some(mut line) => {
                    line.extend_from_slice(head);
                    self.message(&line)?;
                }
                None => self.emit(too_long(), None)?,
            }
            self.line = Some(Vec::new());
        }
        if let Some(line) = &mut self.line {
            line.extend_from_slice(rest);
            if line.len() > MAX_MESSAGE {
                self.line = None;
            }
        }
        Ok(true)
    }

    /// Acts on one message line.
    fn message(&mut self, line: &[u8]) -> Result<(), McpError> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        match jsonrpc::parse(line) {
            Received::One(Ok(message)) => self.act(message, None),
            Received::One(Err(error)) => self.emit(error, None),
            Received::Batch(_) if !self.handler.batches_allowed() => {
                let version = self.handler.version().unwrap_or("before initialize");
                let why = format!("JSON-RPC batches are not part of MCP {version}");
                self.emit(
                    jsonrpc::error(&Value::Null, code::INVALID_REQUEST, &why),
                    None,
                )
            }
            Received::Batch(items) => {
                let batch = self.next_batch;
                self.next_batch += 1;
                let open = Batch {
                    responses: Vec::new(),
                    open: 1,
                };
                self.batches.insert(batch, open);
                for item in items {
                    match item {
                        Ok(message) => self.act(message, Some(batch))?,
                        Err(error) => self.emit(error, Some(batch))?,
                    }
                }
                self.settle(batch)
            }
        }
    }

    fn act(&mut self, message: Message, batch: Option<u64>) -> Result<(), McpError> {
        match self.handler.handle(message) {
            Action::Respond(response) => self.emit(response, batch),
            // The first call queued while none is under way is about to start: not waiting.
            Action::Call { id, .. }
                if self.queue.len() >= MAX_WAITING + usize::from(self.running.is_none()) =>
            {
                let why = format!("too many tool calls waiting (at most {MAX_WAITING}): try again");
                self.emit(jsonrpc::result(&id, tools::failed(&why)), batch)
            }
            Action::Call { id, commands } => {
                if let Some(b) = batch.and_then(|b| self.batches.get_mut(&b)) {
                    b.open += 1;
                }
                self.queue.push_back((Job { id, batch }, commands));
                Ok(())
            }
            Action::Cancel(id) => self.cancel(&id),
            Action::Nothing => Ok(()),
        }
    }

    /// Drops the call for request `id`, under way or queued; it gets no response.
    fn cancel(&mut self, id: &Value) -> Result<(), McpError> {
        let job = if self.running.as_ref().is_some_and(|(job, _)| job.id == *id) {
            self.running.take().map(|(job, _call)| job)
        } else {
            let at = self.queue.iter().position(|(job, _)| job.id == *id);
            at.and_then(|i| self.queue.remove(i)).map(|(job, _)| job)
        };
        match job {
            Some(job) => {
                info!(id = %job.id, "tool call cancelled");
                job.batch.map_or(Ok(()), |b| self.settle(b))
            }
            None => Ok(()),
        }
    }

    /// Starts the next queued call when none is under way; a call that cannot even
    /// connect is answered at once.
    fn start_next(&mut self) -> Result<(), McpError> {
        while self.running.is_none() {
            let Some((job, commands)) = self.queue.pop_front() else {
                return Ok(());
            };
            let lines: Vec<&str> = commands.iter().map(String::as_str).collect();
            debug!(id = %job.id, commands = lines.len(), "tool call");
            match self.client.call(&lines) {
                Ok(call) => self.running = Some((job, call)),
                Err(error) => self.finish(job, Err(Unfinished::from(error)))?,
            }
        }
        Ok(())
    }

    /// Reads what the bridge has sent for the call under way; answers it once complete.
    fn progress(&mut self) -> Result<(), McpError> {
        let Some((job, mut call)) = self.running.take() else {
            return Ok(());
        };
        match call.read_ready() {
            Ok(false) => {
                self.running = Some((job, call));
                Ok(())
            }
            Ok(true) => self.finish(job, Ok(call.answers().to_vec())),
            Err(error) => {
                let answers = call.answers().to_vec();
                self.finish(job, Err(Unfinished { answers, error }))
            }
        }
    }

    fn finish(
        &mut self,
        job: Job,
        answers: Result<Vec<String>, Unfinished>,
    ) -> Result<(), McpError> {
        let result = tools::outcome(answers);
        info!(id = %job.id, error = result["isError"].as_bool(), "tool call answered");
        self.emit(jsonrpc::result(&job.id, result), job.batch)?;
        job.batch.map_or(Ok(()), |b| self.settle(b))
    }

    /// Sends a response, or keeps it for its batch.
    fn emit(&mut self, response: Value, batch: Option<u64>) -> Result<(), McpError> {
        match batch.and_then(|b| self.batches.get_mut(&b)) {
            Some(b) => {
                b.responses.push(response);
                Ok(())
            }
            None => self.send(&response),
        }
    }

    /// One member of `batch` is done; the whole batch goes out once none is open.
    fn settle(&mut self, batch: u64) -> Result<(), McpError> {
        let Some(b) = self.batches.get_mut(&batch) else {
            return Ok(());
        };
        b.open = b.open.saturating_sub(1);
        if b.open > 0 {
            return Ok(());
        }
        let responses = self.batches.remove(&batch).map(|b| b.responses);
        match responses {
            // A batch of notifications alone gets nothing back.
            Some(r) if !r.is_empty() => self.send(&Value::Array(r)),
            _ => Ok(()),
        }
    }

    fn send(&mut self, message: &Value) -> Result<(), McpError> {
        let mut line = serde_json::to_vec(message).map_err(|e| McpError::Stdout(e.into()))?;
        line.push(b'\n');
        self.output.write_all(&line).map_err(McpError::Stdout)?;
        self.output.flush().map_err(McpError::Stdout)
    }
}

/// The answer to a message line longer than [`MAX_MESSAGE`].
fn too_long() -> Value {
    let why = format!("message longer than {MAX_MESSAGE} bytes");
    jsonrpc::error(&Value::Null, code::PARSE_ERROR, &why)
}
