//! Why the daemon stopped: one error for the whole of `serve`, each variant named after the
//! step that failed.

use std::fmt;
use std::path::PathBuf;

use crate::daemon::device::DeviceError;
use crate::daemon::privilege::PrivilegeError;
use crate::ipc::channel::ChannelError;
use crate::ipc::fifo::FifoError;

/// Why the daemon stopped with an error.
#[derive(Debug)]
pub enum ServeError {
    /// Entering the namespace or opening the device failed.
    Device(DeviceError),
    /// A FIFO could not be set up.
    Fifo(FifoError),
    /// The private channel's socket could not be set up.
    Channel(ChannelError),
    /// The record or capture file could not be opened.
    OpenJournal(std::io::Error),
    /// Dropping root failed.
    Privilege(PrivilegeError),
    /// A FIFO path now holds something that is not ours.
    FifoReplaced(PathBuf),
    /// Reading the command FIFO failed.
    ReadCommand(std::io::Error),
    /// The device went away (a TUN device deleted with `ip link del`).
    DeviceGone(String),
    /// Reading the device failed.
    ReadDevice(std::io::Error),
    /// Waiting in `poll(2)` failed.
    Poll(std::io::Error),
    /// Pinning to the CPU asked for failed.
    PinCpu { cpu: usize, source: std::io::Error },
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Device(e) => write!(f, "{e}"),
            Self::Fifo(e) => write!(f, "{e}"),
            Self::Channel(e) => write!(f, "{e}"),
            Self::OpenJournal(e) => write!(f, "cannot open the record or capture file: {e}"),
            Self::Privilege(e) => write!(f, "{e}"),
            Self::FifoReplaced(p) => {
                write!(
                    f,
                    "{} was replaced by something that is not our FIFO or socket; stopping",
                    p.display()
                )
            }
            Self::ReadCommand(e) => write!(f, "cannot read the command FIFO: {e}"),
            Self::DeviceGone(name) => write!(
                f,
                "the device {name} is gone (deleted?); stopping, restart the bridge to recreate it"
            ),
            Self::ReadDevice(e) => write!(f, "cannot read the device: {e}"),
            Self::Poll(e) => write!(f, "cannot wait for the device and the FIFOs: {e}"),
            Self::PinCpu { cpu, source } => write!(f, "cannot pin to CPU {cpu}: {source}"),
        }
    }
}

impl std::error::Error for ServeError {}
