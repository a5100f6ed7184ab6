//! The in-process responder: the floor for any stack that answers through a TUN device.
//!
//! One thread, one loop: read a packet from the device, build the echo reply with
//! the project's wire code, write it back. No FIFOs, no hex, no second process:
//! what is left of a ping's round trip is the kernel's TUN path and one wake-up.
//! Used by `scripts/bench.sh` as the lower bound for tunbridge.
//!
//! Usage (as root): `inproc_responder [--netns NAME] [--tun NAME] [--address CIDR] [--count N]`

use std::process::ExitCode;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use tunbridge::daemon::device::{self, Device, Recv, Tun};
use tunbridge::wire;
use tunbridge::wire::cidr::Ipv4Cidr;

/// How the responder was asked to run.
struct Options {
    netns: Option<String>,
    tun: String,
    address: Ipv4Cidr,
    count: Option<u64>,
}

fn options() -> Result<Options, String> {
    let mut opts = Options {
        netns: None,
        tun: "tunin".into(),
        address: Ipv4Cidr {
            addr: [192, 0, 2, 1].into(),
            prefix: 24,
        },
        count: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--netns" => opts.netns = Some(value()?),
            "--tun" => opts.tun = value()?,
            "--address" => opts.address = value()?.parse()?,
            "--count" => opts.count = Some(value()?.parse().map_err(|_| "--count needs a number")?),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(opts)
}

/// Opens the device, in the namespace when one is named (never in the machine's own,
/// nor over addresses already in use: the same rules as `tunbridge serve`).
fn open(opts: &Options) -> Result<Tun, device::DeviceError> {
    let ours = [device::Assigned {
        iface: opts.tun.clone(),
        addr: opts.address.addr.into(),
        prefix: opts.address.prefix,
    }];
    device::enter_namespace(opts.netns.as_deref(), false, &opts.tun, &ours)?;
    Tun::open(&opts.tun, opts.address, None, 1500)
}

fn main() -> ExitCode {
    let opts = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("inproc_responder: {e}");
            return ExitCode::from(2);
        }
    };
    let dev = match open(&opts) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("inproc_responder: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("inproc_responder ready on {}", dev.name());
    let mut buf = vec![0u8; 65536];
    let mut answered = 0u64;
    while !matches!(opts.count, Some(n) if answered >= n) {
        let mut fds = [PollFd::new(dev.fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, PollTimeout::from(1000u16));
        let n = match dev.recv(&mut buf) {
            Ok(Recv::Packet(n)) => n,
            Ok(Recv::Empty) => continue,
            Ok(Recv::Gone) => {
                eprintln!("inproc_responder: the device is gone");
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("inproc_responder: reading the device failed: {e}");
                return ExitCode::FAILURE;
            }
        };
        // Anything but a well-formed echo request (an IPv6 solicitation, say) is ignored.
        let Ok(reply) = wire::echo_reply(&buf[..n]) else {
            continue;
        };
        if let Err(e) = dev.send(&reply) {
            eprintln!("inproc_responder: writing the device failed: {e}");
            return ExitCode::FAILURE;
        }
        answered += 1;
    }
    ExitCode::SUCCESS
}
