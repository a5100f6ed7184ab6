//! How an agent talks to the daemon, for both sides: the one-line protocol, the line
//! splitter, the two named FIFOs, the private channel (a Unix socket), the client of
//! `tunbridge read`/`write`, and `tunbridge mcp`, the same client as MCP tools.
//!
//! - [`protocol`]: a command line parsed into a [`protocol::Command`]; the answer line.
//! - [`lines`]: command lines out of a byte stream, bounded and with an idle limit.
//! - [`fifo`]: the FIFOs made safely; reading commands; writing an answer to a reader
//!   that is there.
//! - [`channel`]: the private channel: one connection, and one answer, per client.
//! - [`client`]: one exchange from the command line, on the channel or the FIFOs; several
//!   commands on one connection (`write --next`).
//! - [`mcp`]: `tunbridge mcp`: an MCP server on stdio whose tools are the client's exchanges.
pub mod channel;
pub mod client;
pub mod fifo;
pub mod lines;
pub mod mcp;
pub mod protocol;
