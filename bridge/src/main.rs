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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Serve(args) => serve(&args),
        Cmd::Read(args) => answer(args.client().exchange("READ")),
        Cmd::Write { hex, client } => answer(
            client
                .client()
                .exchange(&format!("WRITE {}", hex.join(" "))),
        ),
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

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    // Not `eprintln!`: it panics when stderr is a broken pipe.
    let _ = writeln!(std::io::stderr(), "tunbridge: {e}");
    ExitCode::from(2)
}
