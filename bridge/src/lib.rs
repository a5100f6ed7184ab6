//! tunbridge: a Linux TUN device exposed through two named FIFOs.
//!
//! An agent that can only run shell commands reads one IP packet (IPv4 or IPv6) as a hex line
//! (`READ`) and writes a reply packet back (`WRITE <hex>`). The daemon (`serve`)
//! owns the device; the client (`read`, `write`) does one exchange; `report`
//! summarises the records the daemon keeps; `timeline` draws where each ping's time went.
#![forbid(unsafe_code)]
pub mod channel;
pub mod cli;
pub mod client;
pub mod device;
pub mod drops;
pub mod exchange;
pub mod fifo;
pub mod inflight;
pub mod journal;
pub mod lines;
pub mod logsink;
pub mod mcp;
/// The etherparse oracle the tests check reference replies with.
#[cfg(test)]
#[path = "../tests/common/oracle.rs"]
pub(crate) mod oracle;
#[cfg(test)]
mod oracle_check;
pub mod pcap;
pub mod peer;
pub mod privilege;
pub mod protocol;
pub mod queue;
pub mod record;
pub mod report;
pub mod server;
pub mod stack;
#[cfg(test)]
mod testdir;
pub mod timeline;
pub mod verdict;
pub mod wire;
