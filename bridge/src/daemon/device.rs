//! The packet device the server talks to: the [`Device`] trait, the TUN device
//! ([`Tun`]) that implements it, and an in-memory pair ([`memory`]) for tests that
//! run without root.
//!
//! The TUN device is created, given the host side's addresses (IPv6 kept quiet: no
//! DAD, no router solicitations, no link-local address; or off with `--no-ipv6`), and
//! brought up.
//! Optionally inside an existing network namespace, so the host's networking is
//! left untouched. It is read without blocking: the server polls its descriptor
//! beside the command FIFO's.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::wire::cidr::{Ipv4Cidr, Ipv6Cidr};

pub mod memory;

/// What one read from a device found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recv {
    /// A packet of this many bytes is in the buffer.
    Packet(usize),
    /// No packet is waiting.
    Empty,
    /// The device is gone (a TUN device deleted with `ip link del`, a memory pair's
    /// network side dropped); no packet will ever come again.
    Gone,
}

/// A packet device the server can poll, read without blocking, and write.
pub trait Device: Send {
    /// The interface name, for logs.
    fn name(&self) -> &str;
    /// The largest packet the device takes, in bytes.
    fn mtu(&self) -> usize;
    /// The descriptor that polls readable when a packet is waiting.
    fn fd(&self) -> BorrowedFd<'_>;
    /// Reads one packet into `buf` without waiting.
    fn recv(&self, buf: &mut [u8]) -> io::Result<Recv>;
    /// Writes one whole packet.
    fn send(&self, packet: &[u8]) -> io::Result<()>;
}

/// Why the device could not be set up or used.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The network namespace does not exist or cannot be entered.
    #[error(
        "cannot enter network namespace {name:?}: {source} (create it with `ip netns add {name}`)"
    )]
    EnterNetns { name: String, source: io::Error },
    /// The TUN device could not be created or configured.
    #[error(
        "cannot create TUN device {name}: {source} (run as root; check that /dev/net/tun exists)"
    )]
    OpenTun { name: String, source: io::Error },
    /// The device was created but could not be brought up or made non-blocking.
    #[error("cannot configure TUN device {name}: {source}")]
    Configure { name: String, source: io::Error },
    /// IPv6 could not be set up on the device.
    #[error("cannot set up IPv6 on {name}: {reason} (needs `ip` from iproute2; or use --no-ipv6)")]
    Ipv6 { name: String, reason: String },
    /// No `--netns`, and this is the machine's own network namespace.
    #[error(
        "refusing to make {name} in this machine's own network namespace, where its addresses \
         would change the host's networking: give --netns NAME (made with `ip netns add NAME`; \
         scripts/bridge.sh does both), or --host-namespace if that is what you want"
    )]
    HostNamespace { name: String },
    /// An address the device would get overlaps one already in the namespace.
    #[error(
        "{ours} overlaps {theirs} on {iface} in this network namespace: choose other \
         addresses (--address, --peer, --address6, --peer6) or another --netns"
    )]
    AddressInUse {
        ours: String,
        theirs: String,
        iface: String,
    },
    /// The namespace's addresses could not be listed.
    #[error("cannot list the addresses in this network namespace: {0}")]
    ListAddresses(io::Error),
}

/// Whether this process may be in the machine's own network namespace: the one PID 1 is
/// in, or, where PID 1's cannot be looked at (a non-dumpable init), any namespace that is
/// not one of `ip netns`'s (`/run/netns/*`). When nothing can be told, it counts as yes.
pub fn in_init_netns() -> bool {
    use std::os::unix::fs::MetadataExt;
    let id = |path: &Path| std::fs::metadata(path).map(|m| (m.dev(), m.ino()));
    let Ok(ours) = id(Path::new("/proc/self/ns/net")) else {
        return true;
    };
    if let Ok(init) = id(Path::new("/proc/1/ns/net")) {
        return ours == init;
    }
    let named = std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten();
    !named
        .into_iter()
        .any(|entry| id(&entry.path()).is_ok_and(|ns| ns == ours))
}

/// An address with its prefix length, on an interface (or one the device would get).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assigned {
    /// The interface that holds it.
    pub iface: String,
    /// The address.
    pub addr: IpAddr,
    /// Its prefix length.
    pub prefix: u8,
}

impl std::fmt::Display for Assigned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Whether two prefixes share an address: the shorter one holds the other's address.
fn overlaps(a: &Assigned, b: &Assigned) -> bool {
    let prefix = a.prefix.min(b.prefix);
    match (a.addr, b.addr) {
        (IpAddr::V4(addr), IpAddr::V4(other)) => Ipv4Cidr {
            addr,
            prefix: prefix.min(32),
        }
        .contains(other),
        (IpAddr::V6(addr), IpAddr::V6(other)) => Ipv6Cidr { addr, prefix }.contains(other),
        _ => false,
    }
}

/// The first of `ours` that overlaps an address in `present` on an interface other than
/// `tun`, with the address it overlaps.
pub fn clash<'a>(
    ours: &'a [Assigned],
    present: &'a [Assigned],
    tun: &str,
) -> Option<(&'a Assigned, &'a Assigned)> {
    ours.iter().find_map(|mine| {
        present
            .iter()
            .find(|there| there.iface != tun && overlaps(mine, there))
            .map(|there| (mine, there))
    })
}

/// Every IPv4 and IPv6 address on the interfaces of this network namespace.
fn present_addresses() -> io::Result<Vec<Assigned>> {
    let prefix = |mask: Option<IpAddr>| match mask {
        Some(IpAddr::V4(m)) => u32::from(m).count_ones() as u8,
        Some(IpAddr::V6(m)) => u128::from(m).count_ones() as u8,
        None => 0,
    };
    let ip = |sa: Option<&nix::sys::socket::SockaddrStorage>| -> Option<IpAddr> {
        let sa = sa?;
        if let Some(v4) = sa.as_sockaddr_in() {
            return Some(IpAddr::V4(v4.ip()));
        }
        sa.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
    };
    let list = nix::ifaddrs::getifaddrs().map_err(io::Error::from)?;
    Ok(list
        .filter_map(|entry| {
            let addr = ip(entry.address.as_ref())?;
            Some(Assigned {
                iface: entry.interface_name.clone(),
                addr,
                prefix: prefix(ip(entry.netmask.as_ref())),
            })
        })
        .collect())
}

/// Fails when an address the device `tun` would get (the host side's prefixes, the
/// agent's addresses) overlaps one already on another interface in this namespace: the
/// device would take over routes that are not ours.
fn ensure_addresses_free(tun: &str, ours: &[Assigned]) -> Result<(), DeviceError> {
    let present = present_addresses().map_err(DeviceError::ListAddresses)?;
    match clash(ours, &present, tun) {
        None => Ok(()),
        Some((mine, there)) => Err(DeviceError::AddressInUse {
            ours: mine.to_string(),
            theirs: there.to_string(),
            iface: there.iface.clone(),
        }),
    }
}

/// Puts this thread where the device `tun` is to be made: into `netns` when one is named;
/// else it stays where it is, which is refused when that may be the machine's own namespace
/// ([`in_init_netns`]) unless `host_namespace`. Then the addresses the device takes
/// (`ours`) must overlap none already there.
pub fn enter_namespace(
    netns: Option<&str>,
    host_namespace: bool,
    tun: &str,
    ours: &[Assigned],
) -> Result<(), DeviceError> {
    match netns {
        Some(name) => enter_netns(name)?,
        None if !host_namespace && in_init_netns() => {
            return Err(DeviceError::HostNamespace { name: tun.into() })
        }
        None => {}
    }
    ensure_addresses_free(tun, ours)
}

/// Moves this thread, and the threads it starts later, into a named network namespace.
pub fn enter_netns(name: &str) -> Result<(), DeviceError> {
    let err = |source| DeviceError::EnterNetns {
        name: name.into(),
        source,
    };
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Err(err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a namespace name",
        )));
    }
    let path = PathBuf::from("/run/netns").join(name);
    let file = std::fs::File::open(&path).map_err(err)?;
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| err(e.into()))
}

/// The open TUN device.
pub struct Tun {
    inner: tun_rs::SyncDevice,
    name: String,
    mtu: usize,
}

impl Tun {
    /// Creates the device `name` with `address` and, when given, `address6` (else IPv6
    /// off), and brings it up.
    pub fn open(
        name: &str,
        address: Ipv4Cidr,
        address6: Option<Ipv6Cidr>,
        mtu: u16,
    ) -> Result<Tun, DeviceError> {
        let err = |source| DeviceError::OpenTun {
            name: name.into(),
            source,
        };
        // tun-rs, run as root, would create a missing clone device with mknod: a change to
        // the host the user did not ask for. Say it is missing instead.
        require_clone_device(Path::new(CLONE_DEVICE)).map_err(err)?;
        // Left down until IPv6 is quieted: the kernel makes a link-local address and
        // solicits routers the moment the device comes up.
        let inner = tun_rs::DeviceBuilder::new()
            .name(name)
            .ipv4(address.addr, address.prefix, None)
            .mtu(mtu)
            .enable(false)
            .build_sync()
            .map_err(err)?;
        let name = inner.name().unwrap_or_else(|_| name.to_string());
        match address6 {
            Some(_) => quiet_ipv6(&name)?,
            None => disable_ipv6(&name),
        }
        let configure = |source| DeviceError::Configure {
            name: name.clone(),
            source,
        };
        inner.enabled(true).map_err(configure)?;
        if let Some(address6) = address6 {
            add_ipv6_address(&name, address6)?;
        }
        inner.set_nonblocking(true).map_err(configure)?;
        Ok(Tun {
            inner,
            name,
            mtu: usize::from(mtu),
        })
    }
}

impl Device for Tun {
    fn name(&self) -> &str {
        &self.name
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }

    fn recv(&self, buf: &mut [u8]) -> io::Result<Recv> {
        match self.inner.recv(buf) {
            Ok(n) => Ok(Recv::Packet(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Recv::Empty),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Recv::Empty),
            // A deleted TUN device detaches from its descriptor: reads fail with EBADFD.
            Err(e) if e.raw_os_error() == Some(Errno::EBADFD as i32) => Ok(Recv::Gone),
            Err(e) => Err(e),
        }
    }

    fn send(&self, packet: &[u8]) -> io::Result<()> {
        let n = self.inner.send(packet)?;
        whole(n, packet.len())
    }
}

/// Checks that a write took the whole packet.
fn whole(n: usize, len: usize) -> io::Result<()> {
    if n != len {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("short write: {n} of {len}"),
        ));
    }
    Ok(())
}

/// The TUN clone device every TUN device is made through.
const CLONE_DEVICE: &str = "/dev/net/tun";

/// Fails with `NotFound` when the clone device at `path` is not there.
fn require_clone_device(path: &Path) -> io::Result<()> {
    match path.try_exists() {
        Ok(true) => Ok(()),
        Ok(false) => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} does not exist", path.display()),
        )),
        Err(e) => Err(e),
    }
}

/// Keeps the kernel from speaking on the device by itself over IPv6: no duplicate address
/// detection, no router solicitations, no link-local address (so no MLD report from
/// one), no router advertisements taken. What it still sends is filtered before READ.
fn quiet_ipv6(name: &str) -> Result<(), DeviceError> {
    let settings = [
        ("disable_ipv6", "0"),
        ("accept_dad", "0"),
        ("dad_transmits", "0"),
        ("router_solicitations", "0"),
        ("accept_ra", "0"),
        ("addr_gen_mode", "1"),
    ];
    for (key, value) in settings {
        let path = format!("/proc/sys/net/ipv6/conf/{name}/{key}");
        std::fs::write(&path, value).map_err(|e| DeviceError::Ipv6 {
            name: name.into(),
            reason: format!("writing {value} to {path}: {e}"),
        })?;
    }
    Ok(())
}

/// Gives the device its IPv6 address, without duplicate address detection (`nodad`).
fn add_ipv6_address(name: &str, address: Ipv6Cidr) -> Result<(), DeviceError> {
    let err = |reason: String| DeviceError::Ipv6 {
        name: name.into(),
        reason,
    };
    let out = std::process::Command::new("ip")
        .args([
            "-6",
            "addr",
            "add",
            &address.to_string(),
            "dev",
            name,
            "nodad",
        ])
        .output()
        .map_err(|e| err(format!("running ip: {e}")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(err(format!("ip -6 addr add: {}", stderr.trim())));
    }
    Ok(())
}

/// Switches IPv6 off on the interface; absent IPv6 support is fine.
fn disable_ipv6(name: &str) {
    let path = format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6");
    if let Err(e) = std::fs::write(&path, b"1") {
        tracing::debug!(path, error = %e, "could not disable IPv6; non-IPv4 packets are filtered anyway");
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn at(iface: &str, addr: &str, prefix: u8) -> Assigned {
        Assigned {
            iface: iface.into(),
            addr: addr.parse().unwrap(),
            prefix,
        }
    }

    #[test]
    fn an_address_in_a_prefix_already_here_clashes() {
        let ours = [
            at("tun0", "192.0.2.1", 24),
            at("tun0", "192.0.2.2", 32),
            at("tun0", "2001:db8::1", 64),
            at("tun0", "2001:db8::2", 128),
        ];
        // The machine this was written on: eth0 in TEST-NET-1 as well.
        let host = [
            at("lo", "127.0.0.1", 8),
            at("eth0", "192.0.2.2", 24),
            at("eth0", "fe80::fc:ff:fe00:1", 64),
        ];
        let (mine, there) = clash(&ours, &host, "tun0").expect("a clash");
        assert_eq!(
            (mine.to_string(), there.to_string()),
            ("192.0.2.1/24".into(), "192.0.2.2/24".into())
        );
        assert_eq!(there.iface, "eth0");
        // A wider prefix there holds ours; ours holds a narrower one there.
        assert!(clash(&ours, &[at("eth0", "192.0.0.0", 16)], "tun0").is_some());
        assert!(clash(&ours, &[at("eth0", "192.0.2.200", 32)], "tun0").is_some());
        assert!(clash(&ours, &[at("eth1", "2001:db8::7", 64)], "tun0").is_some());
        assert!(clash(&ours, &[at("eth1", "2001:db8:1::7", 64)], "tun0").is_none());
    }

    #[test]
    fn a_fresh_namespace_and_the_device_itself_do_not_clash() {
        let ours = [at("tun0", "192.0.2.1", 24), at("tun0", "192.0.2.2", 32)];
        let fresh = [at("lo", "127.0.0.1", 8), at("lo", "::1", 128)];
        assert_eq!(clash(&ours, &fresh, "tun0"), None);
        let itself = [at("tun0", "192.0.2.1", 24)];
        assert_eq!(clash(&ours, &itself, "tun0"), None);
        assert_eq!(
            clash(&ours, &[at("eth0", "198.51.100.1", 24)], "tun0"),
            None
        );
        // A default route's 0.0.0.0/0 is not an address; an address of prefix 0 would hold all.
        assert!(clash(&ours, &[at("odd", "10.0.0.1", 0)], "tun0").is_some());
    }

    #[test]
    fn refusals_name_the_way_out() {
        let host = DeviceError::HostNamespace {
            name: "tun0".into(),
        }
        .to_string();
        assert!(
            host.contains("own network namespace") && host.contains("--netns NAME"),
            "{host}"
        );
        assert!(
            host.contains("--host-namespace") && !host.contains('\n'),
            "{host}"
        );
        let used = DeviceError::AddressInUse {
            ours: "192.0.2.1/24".into(),
            theirs: "192.0.2.2/24".into(),
            iface: "eth0".into(),
        }
        .to_string();
        assert_eq!(
            used,
            "192.0.2.1/24 overlaps 192.0.2.2/24 on eth0 in this network namespace: choose other \
             addresses (--address, --peer, --address6, --peer6) or another --netns"
        );
    }

    #[test]
    fn errors_read_as_one_line_and_keep_their_cause() {
        use std::error::Error;
        let busy = DeviceError::OpenTun {
            name: "tun0".into(),
            source: io::Error::from_raw_os_error(Errno::EBUSY as i32),
        };
        assert_eq!(
            busy.to_string(),
            "cannot create TUN device tun0: Device or resource busy (os error 16) \
             (run as root; check that /dev/net/tun exists)"
        );
        let cause = busy.source().expect("the io::Error is the cause");
        assert_eq!(cause.to_string(), "Device or resource busy (os error 16)");
        let missing = enter_netns("no/such").unwrap_err();
        assert!(missing.source().is_some());
        assert!(!missing.to_string().contains('\n'));
    }

    #[test]
    fn a_missing_clone_device_is_named_not_made() {
        let dir = crate::testdir::TestDir::new("clone-device");
        let missing = dir.join("tun");
        let err = require_clone_device(&missing).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let open = DeviceError::OpenTun {
            name: "tun0".into(),
            source: err,
        };
        assert!(open.to_string().contains("/tun does not exist"), "{open}");
        assert!(!missing.exists(), "created");
        std::fs::write(&missing, b"").unwrap();
        assert!(require_clone_device(&missing).is_ok());
    }
}
