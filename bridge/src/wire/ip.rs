//! What IPv4 and IPv6 share: protocol numbers, big-endian field reads, and the
//! pseudo-header that UDP, TCP and ICMPv6 checksums cover (RFC 768, RFC 9293 §3.1,
//! RFC 8200 §8.1).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use super::checksum;
use super::Error;

/// The IP version of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4 (RFC 791).
    Ipv4,
    /// IPv6 (RFC 8200).
    Ipv6,
}

impl Family {
    /// The family a packet's version nibble names; `None` for any other version or no bytes.
    pub fn of(packet: &[u8]) -> Option<Family> {
        match packet.first().map(|b| b >> 4) {
            Some(4) => Some(Family::Ipv4),
            Some(6) => Some(Family::Ipv6),
            _ => None,
        }
    }
}

/// The protocol number (IPv4) or next header (IPv6) of ICMP for IPv4 (RFC 790).
pub const PROTO_ICMP: u8 = 1;
/// The protocol number of TCP (RFC 790).
pub const PROTO_TCP: u8 = 6;
/// The protocol number of UDP (RFC 790).
pub const PROTO_UDP: u8 = 17;
/// The next header of an IPv6 fragment header (RFC 8200 §4.5).
pub const PROTO_IPV6_FRAG: u8 = 44;
/// The next header of ICMPv6 (RFC 4443 §1).
pub const PROTO_ICMPV6: u8 = 58;

/// Defines `Packet<T>`, a view over a buffer, with `new_unchecked`, `new_checked` (which
/// calls the `check_len` the module writes) and `into_inner`, as smoltcp's views have.
macro_rules! packet_view {
    ($doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct Packet<T: AsRef<[u8]>> {
            buffer: T,
        }

        impl<T: AsRef<[u8]>> Packet<T> {
            /// Wraps a buffer without checking it; accessors may panic on a bad one.
            pub const fn new_unchecked(buffer: T) -> Packet<T> {
                Packet { buffer }
            }

            /// Wraps a buffer after `check_len` has accepted it.
            pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
                let packet = Self::new_unchecked(buffer);
                packet.check_len()?;
                Ok(packet)
            }

            /// Returns the underlying buffer.
            pub fn into_inner(self) -> T {
                self.buffer
            }
        }
    };
}
pub(crate) use packet_view;

/// Writes a big-endian u16 into a two-byte field.
pub(crate) fn put16(bytes: &mut [u8], value: u16) {
    bytes.copy_from_slice(&value.to_be_bytes());
}

/// Writes a big-endian u32 into a four-byte field.
pub(crate) fn put32(bytes: &mut [u8], value: u32) {
    bytes.copy_from_slice(&value.to_be_bytes());
}

/// Reads a big-endian u16 from a two-byte field.
pub(crate) fn be16(bytes: &[u8]) -> u16 {
    u16::from_be_bytes([bytes[0], bytes[1]])
}

/// Reads a big-endian u32 from a four-byte field.
pub(crate) fn be32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// Passes when a checksum `verifies`; otherwise fails with `bad(got, want)`, the field
/// as it is and as it should be.
pub(crate) fn check_sum(
    verifies: bool,
    got: u16,
    want: impl FnOnce() -> u16,
    bad: impl FnOnce(u16, u16) -> Error,
) -> Result<(), Error> {
    if verifies {
        Ok(())
    } else {
        Err(bad(got, want()))
    }
}

/// The error for a wrong checksum of the named header (UDP, TCP, ICMPv6), for [`check_sum`].
pub(crate) fn bad_checksum(header: &'static str) -> impl FnOnce(u16, u16) -> Error {
    move |got, want| Error::BadChecksum { header, got, want }
}

/// The addresses a transport checksum covers, in the family of the packet that carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PseudoHeader {
    /// RFC 768 / RFC 9293 §3.1: source, destination, zero, protocol, length (12 bytes).
    V4 { src: Ipv4Addr, dst: Ipv4Addr },
    /// RFC 8200 §8.1: source, destination, 32-bit length, 3 zero bytes, next header (40 bytes).
    V6 { src: Ipv6Addr, dst: Ipv6Addr },
}

impl PseudoHeader {
    /// Returns the one's complement sum of the pseudo-header for `protocol` and an
    /// upper-layer message of `len` bytes (not folded; add it to the message's sum).
    pub fn sum(&self, protocol: u8, len: usize) -> u32 {
        let addrs = match self {
            PseudoHeader::V4 { src, dst } => {
                checksum::sum(&src.octets()) + checksum::sum(&dst.octets())
            }
            PseudoHeader::V6 { src, dst } => {
                checksum::sum(&src.octets()) + checksum::sum(&dst.octets())
            }
        };
        // IPv6's length is 32 bits, two words; IPv4's fits in the low one.
        let len = len as u32;
        addrs + (len >> 16) + (len & 0xffff) + u32::from(protocol)
    }

    /// Returns the same pseudo-header with source and destination swapped (its sum is unchanged).
    pub fn swapped(&self) -> PseudoHeader {
        match *self {
            PseudoHeader::V4 { src, dst } => PseudoHeader::V4 { src: dst, dst: src },
            PseudoHeader::V6 { src, dst } => PseudoHeader::V6 { src: dst, dst: src },
        }
    }

    /// Returns the checksum `message` should carry in `field` under this pseudo-header:
    /// the complement of the folded sum, the field taken as zero.
    pub fn checksum(&self, protocol: u8, message: &[u8], field: Range<usize>) -> u16 {
        let sum = checksum::sum_without(message, field);
        !checksum::fold(self.sum(protocol, message.len()) + sum)
    }

    /// Returns whether `message`, its checksum in place, sums to 0xffff with this pseudo-header.
    pub fn verifies(&self, protocol: u8, message: &[u8]) -> bool {
        checksum::fold(self.sum(protocol, message.len()) + checksum::sum(message)) == 0xffff
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn v4_pseudo_header_sum() {
        // 192.0.2.1 -> 192.0.2.2, UDP, 27 bytes: c000 + 0201 + c000 + 0202 + 0011 + 001b.
        let ph = PseudoHeader::V4 {
            src: Ipv4Addr::new(192, 0, 2, 1),
            dst: Ipv4Addr::new(192, 0, 2, 2),
        };
        assert_eq!(
            ph.sum(PROTO_UDP, 27),
            0xc000 + 0x0201 + 0xc000 + 0x0202 + 0x11 + 27
        );
        assert_eq!(ph.swapped().sum(PROTO_UDP, 27), ph.sum(PROTO_UDP, 27));
    }

    #[test]
    fn v6_pseudo_header_sum() {
        let ph = PseudoHeader::V6 {
            src: "2001:db8::1".parse().unwrap(),
            dst: "2001:db8::2".parse().unwrap(),
        };
        let addrs = 2 * (0x2001 + 0x0db8) + 1 + 2;
        assert_eq!(ph.sum(PROTO_ICMPV6, 8), addrs + 8 + 58);
        // A length over 16 bits (a jumbogram's) takes both words of the 32-bit field.
        assert_eq!(ph.sum(PROTO_ICMPV6, 0x1_0004), addrs + 0x0001 + 0x0004 + 58);
    }
}
