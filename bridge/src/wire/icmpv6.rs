//! ICMPv6 messages (RFC 4443 §2.1): the 8-byte header the view in `icmp` reads, then
//! data.
//!
//! Unlike ICMP for IPv4, the checksum covers the IPv6 pseudo-header (RFC 4443 §2.3,
//! RFC 8200 §8.1), so computing or verifying it takes the packet's addresses.

use std::net::Ipv6Addr;

use super::icmp::{self, field};
use super::ip::{bad_checksum, check_sum, PseudoHeader, PROTO_ICMPV6};
use super::Error;

pub use super::icmp::HEADER_LEN;

/// Destination unreachable (RFC 4443 §3.1).
pub const DST_UNREACHABLE: u8 = 1;
/// The destination-unreachable code for an unreachable port (RFC 4443 §3.1).
pub const CODE_PORT_UNREACHABLE: u8 = 4;
/// Echo request (RFC 4443 §4.1).
pub const ECHO_REQUEST: u8 = 128;
/// Echo reply (RFC 4443 §4.2).
pub const ECHO_REPLY: u8 = 129;

/// The body word of an error message (RFC 4443 §2.1), where echo has identifier and sequence.
const UNUSED: std::ops::Range<usize> = 4..8;

/// ICMPv6: the checksum covers the IPv6 pseudo-header too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V6 {}

impl icmp::Version for V6 {
    fn too_short(got: usize) -> Error {
        Error::HeaderTooShort {
            header: "ICMPv6",
            got,
            want: HEADER_LEN,
        }
    }
}

/// A read/write view of an ICMPv6 message.
pub type Packet<T> = icmp::Packet<T, V6>;

impl<T: AsRef<[u8]>> Packet<T> {
    /// Returns whether this is an error message: types 0..127 (RFC 4443 §2.1).
    pub fn is_error(&self) -> bool {
        self.msg_type() < 128
    }

    /// Returns the body word of an error message (unused for destination unreachable: zero).
    pub fn unused(&self) -> &[u8] {
        &self.buffer.as_ref()[UNUSED]
    }

    /// Returns whether the checksum verifies with the pseudo-header of `src` and `dst`.
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        PseudoHeader::V6 { src, dst }.verifies(PROTO_ICMPV6, self.buffer.as_ref())
    }

    /// Fails with `Error::BadChecksum` unless the checksum from `src` to `dst` verifies.
    pub fn check_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> Result<(), Error> {
        let want = || self.compute_checksum(src, dst);
        let bad = bad_checksum("ICMPv6");
        check_sum(self.verify_checksum(src, dst), self.checksum(), want, bad)
    }

    /// Returns the checksum the message should carry from `src` to `dst`.
    pub fn compute_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> u16 {
        PseudoHeader::V6 { src, dst }.checksum(PROTO_ICMPV6, self.buffer.as_ref(), field::CHECKSUM)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Computes the checksum from `src` to `dst` and writes it into the checksum field.
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        let value = self.compute_checksum(src, dst);
        self.set_checksum(value);
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::wire::fixtures::{
        ICMPV6_REPLY_56, ICMPV6_REQUEST_0, ICMPV6_REQUEST_56, ICMPV6_REQUEST_57,
        ICMPV6_ROUTER_SOLICIT, UDP6_CLOSED, UDP6_PORT_UNREACHABLE,
    };
    use crate::wire::ip::be16;
    use crate::wire::ipv6;

    fn addrs(packet: &[u8]) -> (Ipv6Addr, Ipv6Addr) {
        let ip = ipv6::Packet::new_checked(packet).unwrap();
        (ip.src_addr(), ip.dst_addr())
    }

    #[test]
    fn deconstruct_request() {
        let (src, dst) = addrs(&ICMPV6_REQUEST_56);
        let packet = Packet::new_checked(&ICMPV6_REQUEST_56[40..]).unwrap();
        assert_eq!(packet.msg_type(), ECHO_REQUEST);
        assert_eq!(packet.code(), 0);
        assert!(!packet.is_error());
        assert_eq!(packet.checksum(), 0xaf70);
        assert_eq!(packet.echo_ident(), 0x21ea);
        assert_eq!(packet.echo_seq_no(), 1);
        assert_eq!(packet.data().len(), 56);
        assert!(packet.verify_checksum(src, dst));
        assert_eq!(packet.compute_checksum(src, dst), 0xaf70);
        // The pseudo-header counts: the same bytes do not verify between other addresses.
        assert!(!packet.verify_checksum(src, "2001:db8::3".parse().unwrap()));
    }

    #[test]
    fn deconstruct_port_unreachable() {
        let (src, dst) = addrs(&UDP6_PORT_UNREACHABLE);
        let packet = Packet::new_checked(&UDP6_PORT_UNREACHABLE[40..]).unwrap();
        assert_eq!(packet.msg_type(), DST_UNREACHABLE);
        assert_eq!(packet.code(), CODE_PORT_UNREACHABLE);
        assert!(packet.is_error());
        assert_eq!(packet.unused(), &[0, 0, 0, 0]);
        assert_eq!(packet.data(), &UDP6_CLOSED[..]);
        assert!(packet.verify_checksum(src, dst));
    }

    #[test]
    fn odd_length_and_empty() {
        for bytes in [
            &ICMPV6_REQUEST_57[..],
            &ICMPV6_REQUEST_0,
            &ICMPV6_ROUTER_SOLICIT,
        ] {
            let (src, dst) = addrs(bytes);
            let packet = Packet::new_checked(&bytes[40..]).unwrap();
            assert!(packet.verify_checksum(src, dst));
        }
    }

    #[test]
    fn construct() {
        // Turn the request into the kernel's reply: type 129, addresses swapped.
        let (src, dst) = addrs(&ICMPV6_REQUEST_56);
        let mut bytes = ICMPV6_REQUEST_56[40..].to_vec();
        let mut packet = Packet::new_checked(&mut bytes[..]).unwrap();
        packet.set_msg_type(ECHO_REPLY);
        packet.set_code(0);
        packet.set_echo_ident(0x21ea);
        packet.set_echo_seq_no(1);
        assert!(!packet.verify_checksum(dst, src));
        packet.fill_checksum(dst, src);
        assert!(packet.verify_checksum(dst, src));
        assert_eq!(&bytes[..], &ICMPV6_REPLY_56[40..]);
        // Only the type changed, by 0x0100 in the first word: the checksum drops by 0x0100.
        assert_eq!(be16(&ICMPV6_REPLY_56[42..44]), 0xaf70 - 0x0100);
    }

    #[test]
    fn truncated() {
        assert_eq!(
            Packet::new_checked(&ICMPV6_REQUEST_0[40..47]).unwrap_err(),
            Error::HeaderTooShort {
                header: "ICMPv6",
                got: 7,
                want: 8
            }
        );
    }

    #[test]
    fn bad_checksum() {
        let (src, dst) = addrs(&ICMPV6_REQUEST_56);
        let mut bytes = ICMPV6_REQUEST_56[40..].to_vec();
        bytes[63] ^= 0x01;
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert!(!packet.verify_checksum(src, dst));
        assert_eq!(packet.compute_checksum(src, dst), 0xaf70 + 1);
    }
}
