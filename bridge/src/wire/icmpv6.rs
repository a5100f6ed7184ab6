//! ICMPv6 messages (RFC 4443 §2.1): a checked view over the bytes after the IPv6 header.
//!
//! Unlike ICMP for IPv4, the checksum covers the IPv6 pseudo-header (RFC 4443 §2.3,
//! RFC 8200 §8.1), so computing or verifying it takes the packet's addresses.

use std::net::Ipv6Addr;

use super::ip::packet_view;
use super::ip::{be16, put16, PseudoHeader, PROTO_ICMPV6};
use super::Error;

/// The length of the ICMPv6 header: type, code, checksum and the four-byte body word.
pub const HEADER_LEN: usize = 8;
/// Destination unreachable (RFC 4443 §3.1).
pub const DST_UNREACHABLE: u8 = 1;
/// The destination-unreachable code for an unreachable port (RFC 4443 §3.1).
pub const CODE_PORT_UNREACHABLE: u8 = 4;
/// Echo request (RFC 4443 §4.1).
pub const ECHO_REQUEST: u8 = 128;
/// Echo reply (RFC 4443 §4.2).
pub const ECHO_REPLY: u8 = 129;

mod field {
    pub type Field = std::ops::Range<usize>;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const ECHO_IDENT: Field = 4..6;
    pub const ECHO_SEQNO: Field = 6..8;
    pub const UNUSED: Field = 4..8;
    pub const DATA: std::ops::RangeFrom<usize> = 8..;
}

packet_view!("A read/write view of an ICMPv6 message.");

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks that the buffer holds at least the 8-byte header.
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::HeaderTooShort {
                header: "ICMPv6",
                got: len,
                want: HEADER_LEN,
            });
        }
        Ok(())
    }

    /// Returns the message type (1 destination unreachable, 128 echo request, 129 echo reply).
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// Returns the message code.
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Returns whether this is an error message: types 0..127 (RFC 4443 §2.1).
    pub fn is_error(&self) -> bool {
        self.msg_type() < 128
    }

    /// Returns the checksum field.
    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// Returns the identifier of an echo request or reply.
    pub fn echo_ident(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::ECHO_IDENT])
    }

    /// Returns the sequence number of an echo request or reply.
    pub fn echo_seq_no(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::ECHO_SEQNO])
    }

    /// Returns the body word of an error message (unused for destination unreachable: zero).
    pub fn unused(&self) -> &[u8] {
        &self.buffer.as_ref()[field::UNUSED]
    }

    /// Returns the data: the echo data, or the invoking packet an error message quotes.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA]
    }

    /// Returns whether the checksum verifies with the pseudo-header of `src` and `dst`.
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        PseudoHeader::V6 { src, dst }.verifies(PROTO_ICMPV6, self.buffer.as_ref())
    }

    /// Returns the checksum the message should carry from `src` to `dst`.
    pub fn compute_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> u16 {
        PseudoHeader::V6 { src, dst }.checksum(PROTO_ICMPV6, self.buffer.as_ref(), field::CHECKSUM)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the message type.
    pub fn set_msg_type(&mut self, value: u8) {
        self.buffer.as_mut()[field::TYPE] = value;
    }

    /// Sets the message code.
    pub fn set_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value;
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        put16(&mut self.buffer.as_mut()[field::CHECKSUM], value);
    }

    /// Sets the identifier of an echo request or reply.
    pub fn set_echo_ident(&mut self, value: u16) {
        put16(&mut self.buffer.as_mut()[field::ECHO_IDENT], value);
    }

    /// Sets the sequence number of an echo request or reply.
    pub fn set_echo_seq_no(&mut self, value: u16) {
        put16(&mut self.buffer.as_mut()[field::ECHO_SEQNO], value);
    }

    /// Returns the data for writing.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA]
    }

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
