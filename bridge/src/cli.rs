//! The command line: subcommands, typed flags with their defaults, and how they
//! become the plain config structs the modules take.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::daemon::config::Config;
use crate::daemon::privilege::{PrivilegeError, User};
use crate::instrument::report::Format;
use crate::ipc::client::Client;
use crate::ipc::fifo::Owner;
use crate::wire::cidr::{Ipv4Cidr, Ipv6Cidr};

/// A Linux TUN device exposed through two named FIFOs: read one IP packet as hex, write a reply.
#[derive(Debug, Parser)]
#[command(name = "tunbridge", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run the bridge daemon (as root): create the TUN device and serve the FIFO protocol.
    Serve(ServeArgs),
    /// Ask a running bridge for one packet; prints its hex or TIMEOUT.
    Read(ClientArgs),
    /// Hand a running bridge one packet to write; prints OK or ERR <reason>.
    ///
    /// With --next it then asks for the next packet on the same connection and prints a
    /// second line: its hex, TIMEOUT, or ERR <reason> (ERR bridge stopping when the bridge
    /// shuts down; it asks even when the write was refused). Exit status: 0 when no line is
    /// ERR; 1 when the bridge answered ERR; 2 when nothing was answered (no bridge); 3
    /// (--next) when the write was answered but the next packet's answer never came (the
    /// connection dropped, or no answer in time).
    Write {
        /// The packet as hex; spaces between bytes are fine (quote them).
        #[arg(required = true, num_args = 1.., value_name = "HEX")]
        hex: Vec<String>,
        /// Then wait for the next packet and print it (or TIMEOUT) on a second line.
        #[arg(long)]
        next: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Serve a running bridge to an MCP client (an agent) over stdio: tools to read a
    /// packet, write one, and write one and read the next. Runs as the user, never root.
    Mcp(ClientArgs),
    /// Summarise record files as a table, one column per file.
    Report {
        /// JSONL record files written by `serve --record`.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Draw where each ping's time went (JSON from harness/bundle.py) as SVG.
    Timeline {
        /// The timeline JSON: a title and one row of phase spans per ping.
        input: PathBuf,
        /// The SVG file to write.
        #[arg(long, short, default_value = "timeline.svg")]
        out: PathBuf,
    },
}

/// Where the FIFOs are; shared by the daemon and the client.
#[derive(Debug, Clone, Args)]
pub struct FifoArgs {
    /// Command FIFO: the agent writes `READ` or `WRITE <hex>` here.
    #[arg(long, env = "TUNBRIDGE_CMD_FIFO", default_value = "/tmp/tun_cmd")]
    pub cmd_fifo: PathBuf,
    /// Answer FIFO: one line per command comes back here.
    #[arg(long, env = "TUNBRIDGE_RESP_FIFO", default_value = "/tmp/tun_resp")]
    pub resp_fifo: PathBuf,
}

/// Flags of the client subcommands.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    #[command(flatten)]
    pub fifos: FifoArgs,
    /// Seconds to wait for the answer (default: the bridge's read timeout, which it names
    /// when the client connects, plus 5).
    #[arg(long)]
    pub timeout: Option<u64>,
}

impl ClientArgs {
    /// The client these flags describe.
    pub fn client(&self) -> Client {
        Client {
            cmd_fifo: self.fifos.cmd_fifo.clone(),
            resp_fifo: self.fifos.resp_fifo.clone(),
            timeout: self.timeout.map(Duration::from_secs),
        }
    }
}

/// Flags of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// TUN device name.
    #[arg(long, default_value = "tun0")]
    pub tun: String,
    /// The host side's address and prefix on the device.
    #[arg(long, default_value = "192.0.2.1/24")]
    pub address: Ipv4Cidr,
    /// The agent's address: the one you ping.
    #[arg(long, default_value = "192.0.2.2")]
    pub peer: Ipv4Addr,
    /// The host side's IPv6 address and prefix on the device (RFC 3849 documentation prefix).
    #[arg(long, default_value = "2001:db8::1/64")]
    pub address6: Ipv6Cidr,
    /// The agent's IPv6 address: the one you `ping -6`.
    #[arg(long, default_value = "2001:db8::2")]
    pub peer6: Ipv6Addr,
    /// Switch IPv6 off on the device: only IPv4 reaches the agent (also off below MTU 1280).
    #[arg(long)]
    pub no_ipv6: bool,
    /// Device MTU in bytes.
    #[arg(long, default_value_t = 1500, value_parser = clap::value_parser!(u16).range(68..))]
    pub mtu: u16,
    #[command(flatten)]
    pub fifos: FifoArgs,
    /// Seconds READ waits for a packet before answering TIMEOUT.
    #[arg(long, default_value_t = 30)]
    pub read_timeout: u64,
    /// Milliseconds an answer waits for its reader before it is discarded.
    #[arg(long, default_value_t = 1000)]
    pub reply_grace: u64,
    /// Most packets held for the agent; the oldest goes first.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub queue_size: u64,
    /// Seconds a packet may wait for a READ before it is dropped as stale; one the agent,
    /// at the pace of its answers so far, could not answer within them goes sooner.
    #[arg(long, default_value_t = 20)]
    pub max_age: u64,
    /// Enter this network namespace (from `ip netns add`) before creating the device.
    #[arg(long, env = "TUNBRIDGE_NETNS")]
    pub netns: Option<String>,
    /// Without --netns, make the device in this machine's own network namespace all the
    /// same (refused by default: its addresses and routes would change the host's networking).
    #[arg(long, conflicts_with = "netns")]
    pub host_namespace: bool,
    /// Run as this user once set up, and give it the FIFOs (default: the sudo user).
    #[arg(long)]
    pub user: Option<String>,
    /// Stay root (the FIFOs still go to --user or the sudo user).
    #[arg(long)]
    pub keep_root: bool,
    /// Let this group use the FIFOs too (mode 0660).
    #[arg(long)]
    pub group: Option<u32>,
    /// Append one JSON line per request to this file.
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// Capture every packet in and out to this pcap file.
    #[arg(long)]
    pub pcap: Option<PathBuf>,
    /// Refuse invalid replies with `ERR <verdict>` instead of writing them.
    #[arg(long)]
    pub strict: bool,
    /// Pin the daemon to this CPU (0-based, as in /proc/cpuinfo); not pinned by default.
    /// Its measured effect on round trips is in docs/BENCHMARKS.md.
    #[arg(long, value_name = "N")]
    pub cpu: Option<usize>,
}

/// The smallest MTU IPv6 runs on (RFC 8200 §5); below it the kernel gives the device no IPv6.
const IPV6_MIN_MTU: u16 = 1280;

impl ServeArgs {
    /// Whether IPv6 is on: not `--no-ipv6`, and an MTU IPv6 can use (else off, with a warning).
    fn ipv6(&self) -> bool {
        if !self.no_ipv6 && self.mtu < IPV6_MIN_MTU {
            tracing::warn!(
                mtu = self.mtu,
                "IPv6 needs an MTU of at least 1280; IPv6 is off"
            );
        }
        !self.no_ipv6 && self.mtu >= IPV6_MIN_MTU
    }

    /// The daemon config these flags describe.
    pub fn config(&self) -> Result<Config, PrivilegeError> {
        let user = match &self.user {
            Some(name) => Some(User::lookup(name)?),
            None => User::from_sudo(),
        };
        let (uid, gid) = user.as_ref().map_or_else(
            || {
                (
                    nix::unistd::geteuid().as_raw(),
                    nix::unistd::getegid().as_raw(),
                )
            },
            |u| (u.uid, u.gid),
        );
        let owner = match self.group {
            Some(g) => Owner {
                uid,
                gid: g,
                mode: 0o660,
            },
            None => Owner {
                uid,
                gid,
                mode: 0o600,
            },
        };
        let ipv6 = self.ipv6();
        Ok(Config {
            tun: self.tun.clone(),
            address: self.address,
            peer: self.peer,
            address6: ipv6.then_some(self.address6),
            peer6: ipv6.then_some(self.peer6),
            mtu: self.mtu,
            cmd_fifo: self.fifos.cmd_fifo.clone(),
            resp_fifo: self.fifos.resp_fifo.clone(),
            read_timeout: Duration::from_secs(self.read_timeout),
            reply_grace: Duration::from_millis(self.reply_grace),
            queue_size: self.queue_size as usize,
            max_age: Duration::from_secs(self.max_age),
            netns: self.netns.clone(),
            host_namespace: self.host_namespace,
            owner,
            user: if self.keep_root { None } else { user },
            record: self.record.clone(),
            pcap: self.pcap.clone(),
            strict: self.strict,
            cpu: self.cpu,
        })
    }
}
