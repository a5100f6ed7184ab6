//! The daemon, `tunbridge serve`: one thread that owns the packet device and serves the
//! protocol on the FIFOs and the private channel.
//!
//! - [`server`]: set-up and the loop: readiness and dispatch only.
//! - [`endpoint`]: the FIFO endpoint, one command at a time, its turn a state machine.
//! - [`ledger`]: every request from arrival to settlement, the time passed in: the
//!   [`queue`], the [`readers`] waiting, the [`inflight`] table, the [`drops`] summaries,
//!   the agent's [`pace`] (which packets can still be answered in time).
//! - [`device`]: the [`device::Device`] trait, the TUN device and an in-memory one.
//! - [`config`], [`error`], [`counts`]: what `serve` is given, why it stops, what it did.
//! - [`privilege`]: dropping root; [`logsink`]: log lines that never block the thread.
pub mod config;
pub mod counts;
pub mod device;
pub mod drops;
pub mod endpoint;
pub mod error;
pub mod inflight;
pub mod ledger;
pub mod logsink;
pub mod pace;
pub mod privilege;
pub mod queue;
pub mod readers;
pub mod server;
