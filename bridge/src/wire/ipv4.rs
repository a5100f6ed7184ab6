//! IPv4 packets (RFC 791 §3.1): a checked view over the bytes of one whole packet.
//!
//! `Packet::new_checked` is the only way bytes from outside should enter: it refuses
//! anything whose lengths disagree, and after it no accessor can panic. The bridge
//! demands that the total length field equal the buffer length, because a TUN read
//! or write carries exactly one packet.

use std::net::Ipv4Addr;

use super::checksum;
use super::ip::{be16, check_sum, packet_view, put16};
use super::Error;

/// The IP protocol number of ICMP (RFC 790).
pub const PROTO_ICMP: u8 = 1;
/// The length of a header without options, in bytes.
pub const MIN_HEADER_LEN: usize = 20;
/// The don't-fragment flag in the flags/fragment-offset word (RFC 791 §3.1).
pub const FLAG_DF: u16 = 0x4000;
/// The more-fragments flag in the flags/fragment-offset word (RFC 791 §3.1).
pub const FLAG_MF: u16 = 0x2000;
/// The fragment offset bits of the flags/fragment-offset word, in units of 8 bytes.
pub const FRAG_OFFSET_MASK: u16 = 0x1fff;

mod field {
    pub type Field = std::ops::Range<usize>;

    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

/// Reads an address from a four-byte field.
fn addr(bytes: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])
}

packet_view!("A read/write view of an IPv4 packet.");

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks the version, header length and total length against the buffer.
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < MIN_HEADER_LEN {
            return Err(Error::TooShort {
                got: len,
                want: MIN_HEADER_LEN,
            });
        }
        if self.version() != 4 {
            return Err(Error::NotIpv4 {
                version: self.version(),
            });
        }
        if self.ihl() < 5 {
            return Err(Error::BadIhl { ihl: self.ihl() });
        }
        if self.header_len() > len {
            return Err(Error::HeaderTooLong {
                header_len: self.header_len(),
                got: len,
            });
        }
        let total_len = usize::from(self.total_len());
        if total_len < self.header_len() {
            return Err(Error::TotalLenTooSmall {
                total_len,
                header_len: self.header_len(),
            });
        }
        if total_len != len {
            return Err(Error::TotalLenMismatch {
                total_len,
                got: len,
            });
        }
        Ok(())
    }

    /// Returns the version field (4 for IPv4).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Returns the internet header length field, in 32-bit words.
    pub fn ihl(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] & 0x0f
    }

    /// Returns the header length in bytes (IHL × 4), options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.ihl()) * 4
    }

    /// Returns the type-of-service byte: DSCP (6 bits) and ECN (2 bits) (RFC 2474, RFC 3168).
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// Returns the total length field: header and payload, in bytes.
    pub fn total_len(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::LENGTH])
    }

    /// Returns the identification field.
    pub fn ident(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::IDENT])
    }

    /// Returns the flags and fragment offset word as it is on the wire.
    pub fn flags_frag(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::FLG_OFF])
    }

    /// Returns whether the don't-fragment flag is set.
    pub fn dont_frag(&self) -> bool {
        self.flags_frag() & FLAG_DF != 0
    }

    /// Returns whether the more-fragments flag is set.
    pub fn more_frags(&self) -> bool {
        self.flags_frag() & FLAG_MF != 0
    }

    /// Returns the fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (self.flags_frag() & FRAG_OFFSET_MASK) * 8
    }

    /// Returns whether this packet is a fragment (MF set or a non-zero offset).
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    /// Returns the time-to-live field.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Returns the protocol field (1 for ICMP).
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// Returns the header checksum field.
    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// Returns the source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        addr(&self.buffer.as_ref()[field::SRC_ADDR])
    }

    /// Returns the destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        addr(&self.buffer.as_ref()[field::DST_ADDR])
    }

    /// Returns the header, options included.
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.header_len()]
    }

    /// Returns the options: the header bytes after the first 20.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }

    /// Returns the payload: the bytes from the end of the header to the total length.
    pub fn payload(&self) -> &[u8] {
        let range = self.header_len()..usize::from(self.total_len());
        &self.buffer.as_ref()[range]
    }

    /// Returns whether the header checksum is correct (RFC 791 §3.1, RFC 1071 §1 (3)).
    pub fn verify_checksum(&self) -> bool {
        checksum::verifies(self.header())
    }

    /// Fails with `Error::BadIpChecksum` unless the header checksum verifies.
    pub fn check_checksum(&self) -> Result<(), Error> {
        let bad = |got, want| Error::BadIpChecksum { got, want };
        let want = || self.compute_checksum();
        check_sum(self.verify_checksum(), self.checksum(), want, bad)
    }

    /// Returns the header checksum the packet should carry: over the header, this field as zero.
    pub fn compute_checksum(&self) -> u16 {
        !checksum::fold(checksum::sum_without(self.header(), field::CHECKSUM))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the version to 4 and the header length to `header_len` bytes (a multiple of 4).
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | ((header_len / 4) as u8 & 0x0f);
    }

    /// Sets the total length field.
    pub fn set_total_len(&mut self, value: u16) {
        put16(&mut self.buffer.as_mut()[field::LENGTH], value);
    }

    /// Sets the type-of-service byte (DSCP and ECN).
    pub fn set_dscp_ecn(&mut self, value: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = value;
    }

    /// Sets the identification field.
    pub fn set_ident(&mut self, value: u16) {
        put16(&mut self.buffer.as_mut()[field::IDENT], value);
    }

    /// Sets the flags and fragment offset word.
    pub fn set_flags_frag(&mut self, value: u16) {
        put16(&mut self.buffer.as_mut()[field::FLG_OFF], value);
    }

    /// Sets the time-to-live field.
    pub fn set_ttl(&mut self, value: u8) {
        self.buffer.as_mut()[field::TTL] = value;
    }

    /// Sets the protocol field.
    pub fn set_protocol(&mut self, value: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = value;
    }

    /// Sets the header checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        put16(&mut self.buffer.as_mut()[field::CHECKSUM], value);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&value.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&value.octets());
    }

    /// Computes the header checksum and writes it into the checksum field.
    pub fn fill_checksum(&mut self) {
        let value = self.compute_checksum();
        self.set_checksum(value);
    }

    /// Returns the payload for writing: the bytes from the end of the header to the total length.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.header_len()..usize::from(self.total_len());
        &mut self.buffer.as_mut()[range]
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::wire::fixtures::{LO_REQUEST_TOS, REPLY_56, REQUEST_0, REQUEST_56, REQUEST_RR};

    #[test]
    fn deconstruct() {
        let packet = Packet::new_checked(&REQUEST_56[..]).unwrap();
        assert_eq!(packet.version(), 4);
        assert_eq!(packet.ihl(), 5);
        assert_eq!(packet.header_len(), 20);
        assert_eq!(packet.dscp_ecn(), 0);
        assert_eq!(packet.total_len(), 84);
        assert_eq!(packet.ident(), 0x95ac);
        assert_eq!(packet.flags_frag(), 0x4000);
        assert!(packet.dont_frag());
        assert!(!packet.more_frags());
        assert_eq!(packet.frag_offset(), 0);
        assert!(!packet.is_fragment());
        assert_eq!(packet.ttl(), 64);
        assert_eq!(packet.protocol(), PROTO_ICMP);
        assert_eq!(packet.checksum(), 0x20f9);
        assert_eq!(packet.src_addr(), Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(packet.dst_addr(), Ipv4Addr::new(192, 0, 2, 2));
        assert_eq!(packet.header(), &REQUEST_56[..20]);
        assert_eq!(packet.options(), &[] as &[u8]);
        assert_eq!(packet.payload(), &REQUEST_56[20..]);
        assert!(packet.verify_checksum());
        assert_eq!(packet.compute_checksum(), 0x20f9);
    }

    #[test]
    fn deconstruct_reply() {
        let packet = Packet::new_checked(&REPLY_56[..]).unwrap();
        assert_eq!(packet.ident(), 0x11f5);
        assert_eq!(packet.flags_frag(), 0);
        assert_eq!(packet.src_addr(), Ipv4Addr::new(192, 0, 2, 2));
        assert_eq!(packet.dst_addr(), Ipv4Addr::new(192, 0, 2, 1));
        assert!(packet.verify_checksum());
    }

    #[test]
    fn deconstruct_tos() {
        let packet = Packet::new_checked(&LO_REQUEST_TOS[..]).unwrap();
        assert_eq!(packet.dscp_ecn(), 0x10);
        assert_eq!(packet.src_addr(), Ipv4Addr::LOCALHOST);
        assert!(packet.verify_checksum());
    }

    #[test]
    fn deconstruct_options() {
        let packet = Packet::new_checked(&REQUEST_RR[..]).unwrap();
        assert_eq!(packet.ihl(), 15);
        assert_eq!(packet.header_len(), 60);
        // NOP, then record route: type 7, length 39, pointer 8, first slot 192.0.2.1.
        assert_eq!(
            &packet.options()[..8],
            &[0x01, 0x07, 0x27, 0x08, 0xc0, 0x00, 0x02, 0x01]
        );
        assert_eq!(packet.payload().len(), 20);
        assert_eq!(packet.payload()[0], 8);
        assert!(packet.verify_checksum());
        assert_eq!(packet.compute_checksum(), packet.checksum());
    }

    #[test]
    fn construct() {
        // Rebuild REPLY_56's header field by field on top of REQUEST_56.
        let mut bytes = REQUEST_56.to_vec();
        let mut packet = Packet::new_checked(&mut bytes[..]).unwrap();
        packet.set_src_addr(Ipv4Addr::new(192, 0, 2, 2));
        packet.set_dst_addr(Ipv4Addr::new(192, 0, 2, 1));
        packet.set_ident(0x11f5);
        packet.set_flags_frag(0);
        packet.set_ttl(64);
        packet.set_protocol(PROTO_ICMP);
        packet.set_dscp_ecn(0);
        packet.set_checksum(0xdead);
        assert!(!packet.verify_checksum());
        packet.fill_checksum();
        assert!(packet.verify_checksum());
        packet.payload_mut().copy_from_slice(&REPLY_56[20..]);
        assert_eq!(&bytes[..], &REPLY_56[..]);
    }

    #[test]
    fn truncated() {
        assert_eq!(
            Packet::new_checked(&REQUEST_56[..12]).unwrap_err(),
            Error::TooShort { got: 12, want: 20 }
        );
        assert_eq!(
            Packet::new_checked(&[][..]).unwrap_err(),
            Error::TooShort { got: 0, want: 20 }
        );
        // A whole header with part of the payload cut off.
        assert_eq!(
            Packet::new_checked(&REQUEST_56[..80]).unwrap_err(),
            Error::TotalLenMismatch {
                total_len: 84,
                got: 80
            }
        );
    }

    #[test]
    fn overlong() {
        let mut bytes = REQUEST_56.to_vec();
        bytes.push(0);
        assert_eq!(
            Packet::new_checked(&bytes[..]).unwrap_err(),
            Error::TotalLenMismatch {
                total_len: 84,
                got: 85
            }
        );
    }

    #[test]
    fn bad_version() {
        let mut bytes = REQUEST_56.to_vec();
        bytes[0] = 0x65;
        assert_eq!(
            Packet::new_checked(&bytes[..]).unwrap_err(),
            Error::NotIpv4 { version: 6 }
        );
    }

    #[test]
    fn bad_ihl() {
        let mut bytes = REQUEST_56.to_vec();
        bytes[0] = 0x43;
        assert_eq!(
            Packet::new_checked(&bytes[..]).unwrap_err(),
            Error::BadIhl { ihl: 3 }
        );
    }

    #[test]
    fn header_longer_than_packet() {
        // IHL 6 on a 20-byte packet: the header would run past the end.
        let mut bytes = REQUEST_0[..20].to_vec();
        bytes[0] = 0x46;
        assert_eq!(
            Packet::new_checked(&bytes[..]).unwrap_err(),
            Error::HeaderTooLong {
                header_len: 24,
                got: 20
            }
        );
    }

    #[test]
    fn total_len_below_header() {
        let mut bytes = REQUEST_56.to_vec();
        bytes[2..4].copy_from_slice(&16u16.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&bytes[..]).unwrap_err(),
            Error::TotalLenTooSmall {
                total_len: 16,
                header_len: 20
            }
        );
    }

    #[test]
    fn total_len_mismatch() {
        let mut bytes = REQUEST_56.to_vec();
        bytes[2..4].copy_from_slice(&80u16.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&bytes[..]).unwrap_err(),
            Error::TotalLenMismatch {
                total_len: 80,
                got: 84
            }
        );
    }

    #[test]
    fn bad_checksum() {
        let mut bytes = REQUEST_56.to_vec();
        bytes[8] = 63; // TTL 63, checksum left as captured
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert!(!packet.verify_checksum());
        assert_eq!(packet.checksum(), 0x20f9);
        assert_eq!(packet.compute_checksum(), 0x21f9);
    }

    #[test]
    fn fragment_flags() {
        let mut bytes = REQUEST_56.to_vec();
        let mut packet = Packet::new_checked(&mut bytes[..]).unwrap();
        packet.set_flags_frag(FLAG_MF);
        assert!(packet.more_frags() && packet.is_fragment());
        packet.set_flags_frag(FLAG_DF | 3);
        assert!(packet.dont_frag() && !packet.more_frags());
        assert_eq!(packet.frag_offset(), 24);
        assert!(packet.is_fragment());
    }

    #[test]
    fn checked_accessors_do_not_panic() {
        // Every header length and total length a 64-byte buffer can claim.
        let mut bytes = [0u8; 64];
        for ver_ihl in 0..=0xffu8 {
            for total_len in 0..=70u16 {
                for len in [0, 19, 20, 24, 40, 60, 64] {
                    bytes[0] = ver_ihl;
                    bytes[2..4].copy_from_slice(&total_len.to_be_bytes());
                    if let Ok(packet) = Packet::new_checked(&bytes[..len]) {
                        let _ = (packet.header(), packet.options(), packet.payload());
                        let _ = (packet.verify_checksum(), packet.compute_checksum());
                        let _ = (packet.src_addr(), packet.dst_addr(), packet.frag_offset());
                    }
                }
            }
        }
    }
}
