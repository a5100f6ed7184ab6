//! The native agent: the non-LLM baseline, a client like `tunbridge read`/`write`.
//!
//! It loops READ → build the reply with the project's reference stack (`stack::owed`)
//! → WRITE, as a persistent process, speaking the protocol directly (no subprocess per
//! exchange). It answers ICMP and ICMPv6 echo requests, UDP (echo on port 7, port
//! unreachable elsewhere) and TCP (a reset), and reports anything owed silence. Used by
//! the integration tests and the benchmarks. It speaks the bridge's private channel, or
//! the shared FIFOs when the bridge has none (the Python helper in the benchmarks).
//!
//! Usage: `cargo run --example native_agent -- [--count N] [--cmd-fifo P] [--resp-fifo P] [--fifo] [--corrupt icmp|ip|src]`
//! (`--fifo`: use the shared FIFOs even when the bridge has its channel, as the
//! published helper's clients do; the benchmarks compare bridges on that protocol)
//! (the FIFO paths also come from `TUNBRIDGE_CMD_FIFO` / `TUNBRIDGE_RESP_FIFO`, as for `tunbridge`).

use std::path::PathBuf;
use std::process::ExitCode;

use tunbridge::ipc::client::{Client, ClientError, Session};
use tunbridge::judge::stack;

/// How the agent was asked to run.
struct Options {
    client: Client,
    count: Option<u64>,
    corrupt: Option<String>,
    fifo_only: bool,
}

fn options() -> Result<Options, String> {
    let env_or = |key: &str, default: &str| {
        PathBuf::from(std::env::var(key).unwrap_or_else(|_| default.into()))
    };
    let mut client = Client::new(
        env_or("TUNBRIDGE_CMD_FIFO", "/tmp/tun_cmd"),
        env_or("TUNBRIDGE_RESP_FIFO", "/tmp/tun_resp"),
    );
    let (mut count, mut corrupt, mut fifo_only) = (None, None, false);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--cmd-fifo" => client.cmd_fifo = value()?.into(),
            "--resp-fifo" => client.resp_fifo = value()?.into(),
            "--count" => count = Some(value()?.parse().map_err(|_| "--count needs a number")?),
            "--corrupt" => corrupt = Some(value()?),
            "--fifo" => fifo_only = true,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(Options {
        client,
        count,
        corrupt,
        fifo_only,
    })
}

/// Spoils a correct reply the way a confused agent might, for tests of the verdicts.
fn spoil(reply: &mut [u8], how: &str) {
    match how {
        "icmp" if reply.len() > 23 => reply[23] ^= 0x01,
        "ip" => reply[11] ^= 0x01,
        "src" => reply[15] ^= 0x07,
        _ => {}
    }
}

/// How the agent reaches the bridge: one connection to its channel, kept, or the FIFOs
/// for a bridge without the channel.
struct Link {
    client: Client,
    session: Option<Session>,
    fifo_only: bool,
}

impl Link {
    fn exchange(&mut self, command: &str) -> Result<String, ClientError> {
        if self.fifo_only || !self.client.has_channel() {
            self.session = None;
            return self.client.exchange_fifo(command);
        }
        let session = match &mut self.session {
            Some(s) => s,
            None => self.session.insert(self.client.session()?),
        };
        let answer = session.exchange(command);
        if answer.is_err() {
            // A restarted bridge: the next exchange connects afresh.
            self.session = None;
        }
        answer
    }
}

fn main() -> ExitCode {
    let opts = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("native_agent: {e}");
            return ExitCode::from(2);
        }
    };
    let mut link = Link {
        client: opts.client.clone(),
        session: None,
        fifo_only: opts.fifo_only,
    };
    let mut answered = 0u64;
    while !matches!(opts.count, Some(n) if answered >= n) {
        let line = match link.exchange("READ") {
            Ok(line) => line,
            Err(e) => {
                eprintln!("native_agent: {e}");
                return ExitCode::FAILURE;
            }
        };
        if line == "TIMEOUT" {
            continue;
        }
        let request = match hex::decode(&line) {
            Ok(p) => p,
            Err(_) => {
                eprintln!("native_agent: unexpected answer {line:?}");
                continue;
            }
        };
        let mut reply = match stack::owed(&request) {
            Ok(reply) => reply,
            Err(e) => {
                eprintln!("native_agent: not answered: {e}");
                continue;
            }
        };
        if let Some(how) = &opts.corrupt {
            spoil(&mut reply, how);
        }
        match link.exchange(&format!("WRITE {}", hex::encode(&reply))) {
            Ok(answer) => println!("{answer}"),
            Err(e) => eprintln!("native_agent: {e}"),
        }
        answered += 1;
    }
    ExitCode::SUCCESS
}
