//! ICMP messages (RFC 792), as far as echo, echo reply and destination unreachable
//! need: the 8-byte header the view in `icmp` reads, then data.
//!
//! Every ICMP message starts with type, code and checksum; for echo and echo reply
//! the next four bytes are the identifier and sequence number (RFC 792, "Echo or
//! Echo Reply Message"). The checksum covers the whole message, an odd last byte
//! padded with zero.

use super::checksum;
use super::icmp::{self, field};
use super::ip::check_sum;
use super::Error;

pub use super::icmp::HEADER_LEN;

/// The message type of an echo reply (RFC 792).
pub const ECHO_REPLY: u8 = 0;
/// The message type of an echo request (RFC 792).
pub const ECHO_REQUEST: u8 = 8;
/// The message type of destination unreachable (RFC 792).
pub const DST_UNREACHABLE: u8 = 3;
/// The destination-unreachable code for an unreachable port (RFC 792).
pub const CODE_PORT_UNREACHABLE: u8 = 3;

/// ICMP for IPv4: the checksum covers the message alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V4 {}

impl icmp::Version for V4 {
    fn too_short(got: usize) -> Error {
        Error::IcmpTooShort {
            got,
            want: HEADER_LEN,
        }
    }
}

/// A read/write view of an ICMP message.
pub type Packet<T> = icmp::Packet<T, V4>;

impl<T: AsRef<[u8]>> Packet<T> {
    /// Returns whether the checksum over the whole message is correct (RFC 792, RFC 1071 §1 (3)).
    pub fn verify_checksum(&self) -> bool {
        checksum::verifies(self.buffer.as_ref())
    }

    /// Fails with `Error::BadIcmpChecksum` unless the checksum verifies.
    pub fn check_checksum(&self) -> Result<(), Error> {
        let bad = |got, want| Error::BadIcmpChecksum { got, want };
        let want = || self.compute_checksum();
        check_sum(self.verify_checksum(), self.checksum(), want, bad)
    }

    /// Returns the checksum the message should carry: over the message, this field as zero.
    pub fn compute_checksum(&self) -> u16 {
        !checksum::fold(checksum::sum_without(self.buffer.as_ref(), field::CHECKSUM))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Computes the checksum and writes it into the checksum field.
    pub fn fill_checksum(&mut self) {
        let value = self.compute_checksum();
        self.set_checksum(value);
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::wire::fixtures::{REPLY_1, REPLY_56, REQUEST_0, REQUEST_1, REQUEST_56, REQUEST_57};

    #[test]
    fn deconstruct_request() {
        let packet = Packet::new_checked(&REQUEST_56[20..]).unwrap();
        assert_eq!(packet.msg_type(), ECHO_REQUEST);
        assert_eq!(packet.code(), 0);
        assert_eq!(packet.checksum(), 0x7bdb);
        assert_eq!(packet.echo_ident(), 0x11aa);
        assert_eq!(packet.echo_seq_no(), 1);
        assert_eq!(packet.data().len(), 56);
        assert_eq!(packet.data(), &REQUEST_56[28..]);
        assert!(packet.verify_checksum());
        assert_eq!(packet.compute_checksum(), 0x7bdb);
    }

    #[test]
    fn deconstruct_reply() {
        let packet = Packet::new_checked(&REPLY_56[20..]).unwrap();
        assert_eq!(packet.msg_type(), ECHO_REPLY);
        assert_eq!(packet.code(), 0);
        assert_eq!(packet.checksum(), 0x83db);
        assert_eq!(packet.echo_ident(), 0x11aa);
        assert_eq!(packet.echo_seq_no(), 1);
        assert!(packet.verify_checksum());
    }

    #[test]
    fn deconstruct_empty_data() {
        let packet = Packet::new_checked(&REQUEST_0[20..]).unwrap();
        assert_eq!(packet.data(), &[] as &[u8]);
        assert!(packet.verify_checksum());
    }

    #[test]
    fn construct() {
        // Turn the captured request into the captured reply.
        let mut bytes = REQUEST_56[20..].to_vec();
        let mut packet = Packet::new_checked(&mut bytes[..]).unwrap();
        packet.set_msg_type(ECHO_REPLY);
        packet.set_code(0);
        assert!(!packet.verify_checksum());
        packet.fill_checksum();
        assert!(packet.verify_checksum());
        assert_eq!(&bytes[..], &REPLY_56[20..]);
    }

    #[test]
    fn construct_echo_fields() {
        let mut bytes = [0u8; 8];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_msg_type(ECHO_REQUEST);
        packet.set_echo_ident(0x11aa);
        packet.set_echo_seq_no(1);
        packet.fill_checksum();
        assert_eq!(bytes, [0x08, 0x00, 0xe6, 0x54, 0x11, 0xaa, 0x00, 0x01]);
    }

    #[test]
    fn odd_length_checksum() {
        // One data byte (ping -s 1) and 57 (ping -s 57): the last byte is padded.
        for bytes in [&REQUEST_1[20..], &REPLY_1[20..], &REQUEST_57[20..]] {
            let packet = Packet::new_checked(bytes).unwrap();
            assert_eq!(bytes.len() % 2, 1);
            assert!(packet.verify_checksum());
            assert_eq!(packet.compute_checksum(), packet.checksum());
        }
        let mut bytes = REQUEST_1[20..].to_vec();
        let mut packet = Packet::new_checked(&mut bytes[..]).unwrap();
        packet.data_mut()[0] = 0x01; // the padded byte counts as the high half of a word
        assert!(!packet.verify_checksum());
        assert_eq!(
            packet.compute_checksum(),
            packet.checksum().wrapping_sub(0x0100)
        );
    }

    #[test]
    fn checksum_carry() {
        // Choose two data bytes so that the message sums to 0xffff with the checksum
        // field zeroed: the complement is then 0x0000, and the field written as 0xffff
        // (negative zero) verifies too.
        let mut bytes = REQUEST_0[20..].to_vec();
        bytes.extend_from_slice(&[0, 0]);
        bytes[2..4].copy_from_slice(&[0, 0]);
        let partial = checksum::fold(checksum::sum(&bytes));
        let mut packet = Packet::new_checked(&mut bytes[..]).unwrap();
        packet
            .data_mut()
            .copy_from_slice(&(0xffff - partial).to_be_bytes());
        assert_eq!(packet.compute_checksum(), 0x0000);
        packet.fill_checksum();
        assert!(packet.verify_checksum());
        packet.set_checksum(0xffff);
        assert!(packet.verify_checksum());
    }

    #[test]
    fn truncated() {
        assert_eq!(
            Packet::new_checked(&REQUEST_56[20..27]).unwrap_err(),
            Error::IcmpTooShort { got: 7, want: 8 }
        );
        assert_eq!(
            Packet::new_checked(&[][..]).unwrap_err(),
            Error::IcmpTooShort { got: 0, want: 8 }
        );
        assert!(Packet::new_checked(&REQUEST_56[20..28]).is_ok());
    }

    #[test]
    fn bad_checksum() {
        let mut bytes = REQUEST_56[20..].to_vec();
        bytes[8 + 55] ^= 0xff; // last data byte
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert!(!packet.verify_checksum());
        assert_eq!(packet.checksum(), 0x7bdb);
        assert_ne!(packet.compute_checksum(), 0x7bdb);
    }
}
