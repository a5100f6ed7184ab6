//! The daemon, `tunbridge serve`: one thread that owns the packet device and serves the
//! protocol on the FIFOs and the private channel.
//!
//! - [`server`]: set-up, the loop and its bookkeeping.
//! - [`queue`], [`inflight`], [`drops`]: packets waiting for a READ, requests waiting for
//!   their reply, drops counted for their summary.
//! - [`device`]: the [`device::Device`] trait, the TUN device and an in-memory one.
//! - [`privilege`]: dropping root; [`logsink`]: log lines that never block the thread.
pub mod device;
pub mod drops;
pub mod inflight;
pub mod logsink;
pub mod privilege;
pub mod queue;
pub mod server;
