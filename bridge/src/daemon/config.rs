//! The daemon's configuration: everything `serve` needs, filled from the command line
//! (`cli`), or by a test.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use crate::daemon::device::Assigned;
use crate::daemon::privilege::User;
use crate::ipc::fifo::Owner;
use crate::judge::ends::Ends;
use crate::wire::cidr::{Ipv4Cidr, Ipv6Cidr};

/// Everything `serve` needs, filled from the command line.
#[derive(Debug, Clone)]
pub struct Config {
    /// TUN device name.
    pub tun: String,
    /// The host side's address and prefix on the device.
    pub address: Ipv4Cidr,
    /// The agent's address, the one to ping.
    pub peer: Ipv4Addr,
    /// The host side's IPv6 address and prefix; `None` switches IPv6 off.
    pub address6: Option<Ipv6Cidr>,
    /// The agent's IPv6 address, when IPv6 is on.
    pub peer6: Option<Ipv6Addr>,
    /// Device MTU.
    pub mtu: u16,
    /// Command FIFO path.
    pub cmd_fifo: PathBuf,
    /// Answer FIFO path.
    pub resp_fifo: PathBuf,
    /// How long READ waits for a packet.
    pub read_timeout: Duration,
    /// How long an answer waits for its reader.
    pub reply_grace: Duration,
    /// Most packets queued.
    pub queue_size: usize,
    /// Oldest packet handed out.
    pub max_age: Duration,
    /// Network namespace to enter first.
    pub netns: Option<String>,
    /// Without `netns`, make the device in the machine's own namespace all the same.
    pub host_namespace: bool,
    /// Owner and mode of the FIFOs.
    pub owner: Owner,
    /// User to become once set up.
    pub user: Option<User>,
    /// JSONL record file.
    pub record: Option<PathBuf>,
    /// pcap capture file.
    pub pcap: Option<PathBuf>,
    /// Refuse invalid replies instead of writing them.
    pub strict: bool,
    /// The CPU to pin the daemon to.
    pub cpu: Option<usize>,
}

impl Config {
    /// The addresses the device takes: the host side's prefixes and the agent's addresses.
    pub fn assigned(&self) -> Vec<Assigned> {
        let on = |addr: IpAddr, prefix: u8| Assigned {
            iface: self.tun.clone(),
            addr,
            prefix,
        };
        let mut all = vec![
            on(self.address.addr.into(), self.address.prefix),
            on(self.peer.into(), 32),
        ];
        if let Some(address6) = self.address6 {
            all.push(on(address6.addr.into(), address6.prefix));
        }
        if let Some(peer6) = self.peer6 {
            all.push(on(peer6.into(), 128));
        }
        all
    }

    /// The host side's and the agent's addresses, per family.
    pub fn ends(&self) -> Ends {
        Ends {
            v4: (self.address.addr, self.peer),
            v6: self.address6.zip(self.peer6).map(|(a, p)| (a.addr, p)),
        }
    }
}
