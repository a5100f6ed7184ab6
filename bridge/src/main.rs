//! `tunbridge`: parse the command line, start tracing, run one subcommand.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use tunbridge::cli::{Cli, Cmd};
use tunbridge::daemon::logsink::LogSink;
use tunbridge::daemon::server;
use tunbridge::instrument::{report, timeline};
use tunbridge::ipc::client::{Client, Unfinished};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Serve(args) => serve(&args),
        Cmd::Read(args) => answer(args.client().exchange("READ")),
        Cmd::Write { hex, next, client } => {
            let write = format!("WRITE {}", hex.join(" "));
            match next {
                false => answer(client.client().exchange(&write)),
                true => answers(client.client().exchange_all(&[&write, "READ"])),
            }
        }
        Cmd::Mcp(args) => mcp(args.client()),
        Cmd::Report { files, format } => match report::run(&files, format) {
            Ok(table) => {
                print!("{table}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
        Cmd::Timeline { input, out } => match timeline::run(&input, &out) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
    }
}

/// How long a bridge that stops on an error waits for stderr to take the lines it dropped.
const EXIT_GRACE: Duration = Duration::from_secs(1);

fn serve(args: &tunbridge::cli::ServeArgs) -> ExitCode {
    let sink = Arc::new(LogSink::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        // Never blocks the one thread: a line stderr does not take at once is dropped and
        // counted (stderr a full pipe whose reader is not reading, or one whose reader left).
        .with_writer(Arc::clone(&sink))
        .with_ansi(std::io::stderr().is_terminal())
        .log_internal_errors(false)
        .init();
    let config = match args.config() {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let stop = Arc::new(AtomicBool::new(false));
    // SIGHUP: the terminal running the bridge was closed; stop cleanly as for SIGTERM.
    let signals = [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ];
    for signal in signals {
        if let Err(e) = signal_hook::flag::register(signal, Arc::clone(&stop)) {
            return fail(&e);
        }
    }
    match server::run(config, stop) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "bridge stopped");
            sink.finish(&format!("bridge stopped: {e}"), EXIT_GRACE);
            ExitCode::FAILURE
        }
    }
}

/// Prints the bridge's answer line; `ERR` answers exit 1.
fn answer(result: Result<String, tunbridge::ipc::client::ClientError>) -> ExitCode {
    match result {
        Ok(line) => {
            println!("{line}");
            if line.starts_with("ERR") {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => fail(&e),
    }
}

/// Prints each answer line of `write --next`. Exit status: 3 when an answer came and then
/// no more (the bridge stopped or the connection dropped), 2 when none came, 1 when the
/// bridge answered ERR, else 0.
fn answers(result: Result<Vec<String>, Unfinished>) -> ExitCode {
    let (lines, error) = match result {
        Ok(lines) => (lines, None),
        Err(Unfinished { answers, error }) => (answers, Some(error)),
    };
    let mut out = std::io::stdout().lock();
    for line in &lines {
        let _ = writeln!(out, "{line}");
    }
    let _ = out.flush();
    match error {
        Some(e) if lines.is_empty() => fail(&e),
        Some(e) => {
            let _ = writeln!(std::io::stderr(), "tunbridge: no next packet: {e}");
            ExitCode::from(3)
        }
        None if lines.iter().any(|l| l.starts_with("ERR")) => ExitCode::from(1),
        None => ExitCode::SUCCESS,
    }
}

/// `tunbridge mcp`: log lines go to stderr, for stdout carries only the protocol.
fn mcp(client: Client) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    match tunbridge::ipc::mcp::run(&client) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    // Not `eprintln!`: it panics when stderr is a broken pipe.
    let _ = writeln!(std::io::stderr(), "tunbridge: {e}");
    ExitCode::from(2)
}
