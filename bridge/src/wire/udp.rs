//! UDP datagrams (RFC 768): a checked view over the bytes after the IP header.
//!
//! The checksum covers the pseudo-header of either family (`ip::PseudoHeader`). Over
//! IPv4 a checksum field of zero means the sender computed none (RFC 768); over IPv6
//! it is not allowed (RFC 8200 §8.1). A computed checksum of zero goes on the wire as
//! 0xffff in both.

use super::ip::packet_view;
use super::ip::{bad_checksum, be16, check_sum, put16, PseudoHeader, PROTO_UDP};
use super::Error;

/// The length of the UDP header.
pub const HEADER_LEN: usize = 8;
/// The echo service's port (RFC 862).
pub const ECHO_PORT: u16 = 7;

mod field {
    pub type Field = std::ops::Range<usize>;

    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
    pub const PAYLOAD: std::ops::RangeFrom<usize> = 8..;
}

packet_view!("A read/write view of an UDP datagram.");

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks that the buffer holds the header and that the length field equals its size.
    pub fn check_len(&self) -> Result<(), Error> {
        let got = self.buffer.as_ref().len();
        if got < HEADER_LEN {
            return Err(Error::HeaderTooShort {
                header: "UDP",
                got,
                want: HEADER_LEN,
            });
        }
        let len = usize::from(self.len());
        if len != got {
            return Err(Error::UdpLenMismatch { len, got });
        }
        Ok(())
    }

    /// Returns the source port.
    pub fn src_port(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::SRC_PORT])
    }

    /// Returns the destination port.
    pub fn dst_port(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::DST_PORT])
    }

    /// Returns the length field: header and data, in bytes.
    pub fn len(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::LENGTH])
    }

    /// Returns whether the datagram carries no data.
    pub fn is_empty(&self) -> bool {
        self.payload().is_empty()
    }

    /// Returns the checksum field.
    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// Returns the data after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }

    /// Returns whether the checksum verifies under `pseudo`; over IPv4 a zero field
    /// (no checksum, RFC 768) counts as verified, over IPv6 it does not.
    pub fn verify_checksum(&self, pseudo: &PseudoHeader) -> bool {
        if self.checksum() == 0 {
            return matches!(pseudo, PseudoHeader::V4 { .. });
        }
        pseudo.verifies(PROTO_UDP, self.buffer.as_ref())
    }

    /// Fails with `Error::BadChecksum` unless the checksum verifies under `pseudo`.
    pub fn check_checksum(&self, pseudo: &PseudoHeader) -> Result<(), Error> {
        let bad = bad_checksum("UDP");
        let want = || self.compute_checksum(pseudo);
        check_sum(self.verify_checksum(pseudo), self.checksum(), want, bad)
    }

    /// Returns the checksum the datagram should carry under `pseudo` (0xffff for a zero result).
    pub fn compute_checksum(&self, pseudo: &PseudoHeader) -> u16 {
        match pseudo.checksum(PROTO_UDP, self.buffer.as_ref(), field::CHECKSUM) {
            0 => 0xffff,
            sum => sum,
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port.
    pub fn set_src_port(&mut self, value: u16) {
        put16(&mut self.buffer.as_mut()[field::SRC_PORT], value);
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, value: u16) {
        put16(&mut self.buffer.as_mut()[field::DST_PORT], value);
    }

    /// Sets the length field.
    pub fn set_len(&mut self, value: u16) {
        put16(&mut self.buffer.as_mut()[field::LENGTH], value);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        put16(&mut self.buffer.as_mut()[field::CHECKSUM], value);
    }

    /// Returns the data for writing.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }

    /// Computes the checksum under `pseudo` and writes it into the checksum field.
    pub fn fill_checksum(&mut self, pseudo: &PseudoHeader) {
        let value = self.compute_checksum(pseudo);
        self.set_checksum(value);
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::wire::fixtures::{
        UDP4_ECHO_REPLY, UDP4_ECHO_REQUEST, UDP4_ECHO_REQUEST_3, UDP6_ECHO_REPLY,
        UDP6_ECHO_REQUEST, UDP6_ECHO_REQUEST_3,
    };
    use crate::wire::{checksum, ipv4, ipv6};

    fn pseudo4(packet: &[u8]) -> (PseudoHeader, &[u8]) {
        let ip = ipv4::Packet::new_checked(packet).unwrap();
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        (PseudoHeader::V4 { src, dst }, &packet[20..])
    }

    fn pseudo6(packet: &[u8]) -> (PseudoHeader, &[u8]) {
        let ip = ipv6::Packet::new_checked(packet).unwrap();
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        (PseudoHeader::V6 { src, dst }, &packet[40..])
    }

    #[test]
    fn deconstruct() {
        let (pseudo, bytes) = pseudo4(&UDP4_ECHO_REQUEST);
        let packet = Packet::new_checked(bytes).unwrap();
        assert_eq!(packet.src_port(), 0xae97);
        assert_eq!(packet.dst_port(), ECHO_PORT);
        assert_eq!(packet.len(), 27);
        assert_eq!(packet.checksum(), 0xf0f4);
        assert_eq!(packet.payload(), b"tunbridge udp echo\n");
        assert!(!packet.is_empty());
        assert!(packet.verify_checksum(&pseudo));
        assert_eq!(packet.compute_checksum(&pseudo), 0xf0f4);
    }

    #[test]
    fn deconstruct_v6() {
        for bytes in [
            &UDP6_ECHO_REQUEST[..],
            &UDP6_ECHO_REPLY,
            &UDP6_ECHO_REQUEST_3,
        ] {
            let (pseudo, udp) = pseudo6(bytes);
            let packet = Packet::new_checked(udp).unwrap();
            assert!(packet.verify_checksum(&pseudo));
            assert_eq!(packet.compute_checksum(&pseudo), packet.checksum());
        }
    }

    #[test]
    fn echo_keeps_checksum() {
        // Swapping both the addresses and the ports leaves every sum as it was: the
        // kernel's echo reply carries the request's checksum, in both families.
        assert_eq!(UDP4_ECHO_REQUEST[26..28], UDP4_ECHO_REPLY[26..28]);
        assert_eq!(UDP6_ECHO_REQUEST[46..48], UDP6_ECHO_REPLY[46..48]);
    }

    #[test]
    fn construct() {
        let (pseudo, bytes) = pseudo4(&UDP4_ECHO_REQUEST);
        let mut bytes = bytes.to_vec();
        let mut packet = Packet::new_checked(&mut bytes[..]).unwrap();
        packet.set_src_port(ECHO_PORT);
        packet.set_dst_port(0xae97);
        packet.set_len(27);
        packet.payload_mut()[0] = b't';
        packet.set_checksum(0);
        packet.fill_checksum(&pseudo.swapped());
        assert_eq!(&bytes[..], &UDP4_ECHO_REPLY[20..]);
    }

    #[test]
    fn odd_length() {
        let (pseudo, bytes) = pseudo4(&UDP4_ECHO_REQUEST_3);
        let packet = Packet::new_checked(bytes).unwrap();
        assert_eq!(packet.payload(), b"odd");
        assert!(packet.verify_checksum(&pseudo));
    }

    #[test]
    fn zero_checksum() {
        let (pseudo, bytes) = pseudo4(&UDP4_ECHO_REQUEST);
        let mut bytes = bytes.to_vec();
        bytes[6..8].copy_from_slice(&[0, 0]);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert!(
            packet.verify_checksum(&pseudo),
            "no checksum is fine over IPv4"
        );
        let (pseudo, bytes) = pseudo6(&UDP6_ECHO_REQUEST);
        let mut bytes = bytes.to_vec();
        bytes[6..8].copy_from_slice(&[0, 0]);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert!(!packet.verify_checksum(&pseudo), "but not over IPv6");
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // Header, "od", and a word chosen so that everything sums to 0xffff: the
        // complement is 0x0000, which goes on the wire as 0xffff (RFC 768).
        let (pseudo, bytes) = pseudo4(&UDP4_ECHO_REQUEST_3);
        let mut bytes = bytes[..10].to_vec();
        bytes.extend_from_slice(&[0, 0]);
        bytes[4..6].copy_from_slice(&12u16.to_be_bytes());
        bytes[6..8].copy_from_slice(&[0, 0]);
        let partial = checksum::fold(pseudo.sum(PROTO_UDP, 12) + checksum::sum(&bytes));
        bytes[10..12].copy_from_slice(&(0xffff - partial).to_be_bytes());
        let mut packet = Packet::new_checked(&mut bytes[..]).unwrap();
        assert_eq!(packet.compute_checksum(&pseudo), 0xffff);
        packet.fill_checksum(&pseudo);
        assert!(packet.verify_checksum(&pseudo));
    }

    #[test]
    fn truncated_and_overlong() {
        let (_, bytes) = pseudo4(&UDP4_ECHO_REQUEST);
        assert_eq!(
            Packet::new_checked(&bytes[..7]).unwrap_err(),
            Error::HeaderTooShort {
                header: "UDP",
                got: 7,
                want: 8
            }
        );
        assert_eq!(
            Packet::new_checked(&bytes[..20]).unwrap_err(),
            Error::UdpLenMismatch { len: 27, got: 20 }
        );
        let mut long = bytes.to_vec();
        long.push(0);
        assert_eq!(
            Packet::new_checked(&long[..]).unwrap_err(),
            Error::UdpLenMismatch { len: 27, got: 28 }
        );
    }

    #[test]
    fn bad_checksum() {
        let (pseudo, bytes) = pseudo4(&UDP4_ECHO_REQUEST);
        let mut bytes = bytes.to_vec();
        bytes[8] ^= 0x01;
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert!(!packet.verify_checksum(&pseudo));
    }
}
