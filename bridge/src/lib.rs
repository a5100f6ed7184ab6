//! tunbridge: a Linux TUN device exposed through two named FIFOs.
//!
//! An agent that can only run shell commands reads one IP packet (IPv4 or IPv6) as a hex line
//! (`READ`) and writes a reply packet back (`WRITE <hex>`). The daemon (`serve`)
//! owns the device; the client (`read`, `write`) does one exchange; `report`
//! summarises the records the daemon keeps; `timeline` draws where each ping's time went.
//!
//! The crate is built in layers, each a folder; a layer uses only the ones above it:
//!
//! - [`wire`]: packet views over bytes (IPv4, IPv6, ICMP, ICMPv6, UDP, TCP), checksums.
//! - [`judge`]: what a request is and what it is owed (the exchange model, the reference
//!   stack), the verdict on a reply, and the two ends' addresses. No I/O.
//! - [`ipc`]: the protocol the agent speaks: command lines, the FIFOs, the private
//!   channel, the client of `tunbridge read`/`write`, and `tunbridge mcp`.
//! - [`instrument`]: what is kept of a run and read back: the record, the capture,
//!   `report` and `timeline`.
//! - [`daemon`]: `tunbridge serve`: the device, the loop, the bookkeeping of requests.
//!
//! [`cli`] turns the command line into the daemon's configuration or a client.
#![forbid(unsafe_code)]
pub mod cli;
pub mod daemon;
pub mod instrument;
pub mod ipc;
pub mod judge;
/// The etherparse oracle the tests check reference replies with.
#[cfg(test)]
#[path = "../tests/common/oracle.rs"]
pub(crate) mod oracle;
#[cfg(test)]
mod testdir;
pub mod wire;
