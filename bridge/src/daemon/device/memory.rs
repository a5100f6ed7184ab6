//! An in-memory packet device: a connected pair of Unix sequenced-packet sockets.
//!
//! [`MemoryDevice`] is the server's side and implements [`Device`]; [`Network`] is
//! the other side, where a test plays the kernel: it sends requests as the network
//! would and receives what the bridge writes. Packet boundaries are kept, the device
//! side polls and reads without blocking like a TUN device, and nothing needs root.
//! Dropping the [`Network`] makes the device [`Recv::Gone`], as deleting a TUN device does.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

use super::{whole, Device, Recv};

/// The bridge's side of an in-memory device.
#[derive(Debug)]
pub struct MemoryDevice {
    socket: UnixStream,
    name: String,
    mtu: usize,
}

/// The network's side of an in-memory device, for tests.
#[derive(Debug)]
pub struct Network {
    socket: UnixStream,
}

/// A connected device and network pair named `name` with this MTU.
pub fn pair(name: &str, mtu: usize) -> io::Result<(MemoryDevice, Network)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    let device = UnixStream::from(a);
    device.set_nonblocking(true)?;
    let device = MemoryDevice {
        socket: device,
        name: name.into(),
        mtu,
    };
    Ok((device, Network { socket: b.into() }))
}

impl Device for MemoryDevice {
    fn name(&self) -> &str {
        &self.name
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }

    fn recv(&self, buf: &mut [u8]) -> io::Result<Recv> {
        match (&self.socket).read(buf) {
            // A sequenced-packet socket reads 0 only once its peer has closed.
            Ok(0) => Ok(Recv::Gone),
            Ok(n) => Ok(Recv::Packet(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Recv::Empty),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Recv::Empty),
            Err(e) => Err(e),
        }
    }

    fn send(&self, packet: &[u8]) -> io::Result<()> {
        let n = (&self.socket).write(packet)?;
        whole(n, packet.len())
    }
}

impl Network {
    /// Sends one packet towards the bridge, as the kernel would route it to the device.
    pub fn send(&self, packet: &[u8]) -> io::Result<()> {
        let n = (&self.socket).write(packet)?;
        whole(n, packet.len())
    }

    /// The next packet the bridge wrote, waiting at most `timeout`; `None` when none came.
    pub fn recv(&self, timeout: Duration) -> io::Result<Option<Vec<u8>>> {
        self.socket
            .set_read_timeout(Some(timeout.max(Duration::from_micros(1))))?;
        let mut buf = vec![0u8; 65536];
        match (&self.socket).read(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                Ok(Some(buf))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn packets_cross_whole_both_ways_and_a_dropped_network_is_gone() {
        let (device, network) = pair("mem0", 1500).unwrap();
        let mut buf = [0u8; 2048];
        assert_eq!(device.recv(&mut buf).unwrap(), Recv::Empty);
        network.send(&[1, 2, 3]).unwrap();
        network.send(&[4; 1400]).unwrap();
        assert_eq!(device.recv(&mut buf).unwrap(), Recv::Packet(3));
        assert_eq!(&buf[..3], [1, 2, 3]);
        assert_eq!(device.recv(&mut buf).unwrap(), Recv::Packet(1400));
        device.send(&[9, 8]).unwrap();
        let got = network.recv(Duration::from_secs(1)).unwrap();
        assert_eq!(got.as_deref(), Some(&[9u8, 8][..]));
        assert_eq!(network.recv(Duration::from_millis(10)).unwrap(), None);
        drop(network);
        assert_eq!(device.recv(&mut buf).unwrap(), Recv::Gone);
    }
}
