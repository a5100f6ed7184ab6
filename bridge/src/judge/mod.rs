//! The judge: what a request off the device is, what the agent owes for it, and whether
//! what it wrote pays that debt. Pure functions over bytes; no I/O.
//!
//! - [`exchange`]: a request and a WRITE parsed once: family, kind, flow key, what is owed.
//! - [`stack`]: the reference stack: the reply (or silence) each request is owed, and a
//!   stack's free choices.
//! - [`verdict`]: the judgement of a reply against the reference.
//! - [`ends`]: the host side's and the agent's addresses: which packets are for the agent,
//!   which WRITEs may leave.
pub mod ends;
pub mod exchange;
#[cfg(test)]
mod oracle_check;
pub mod stack;
pub mod verdict;
