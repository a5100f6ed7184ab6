//! TCP segments (RFC 9293 §3.1): a checked view over the bytes after the IP header.
//!
//! The bridge never holds a connection; it only needs to read a segment's ports,
//! sequence numbers, flags and length, and to build the reset a closed port sends
//! (RFC 9293 §3.10.7.1). The checksum covers the pseudo-header of either family.

use super::ip::packet_view;
use super::ip::{bad_checksum, be16, be32, check_sum, put16, put32, PseudoHeader, PROTO_TCP};
use super::Error;

/// The length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;
/// FIN: no more data from the sender.
pub const FLAG_FIN: u8 = 0x01;
/// SYN: synchronize sequence numbers.
pub const FLAG_SYN: u8 = 0x02;
/// RST: reset the connection.
pub const FLAG_RST: u8 = 0x04;
/// PSH: push function.
pub const FLAG_PSH: u8 = 0x08;
/// ACK: the acknowledgment field is significant.
pub const FLAG_ACK: u8 = 0x10;

mod field {
    pub type Field = std::ops::Range<usize>;

    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ_NUM: Field = 4..8;
    pub const ACK_NUM: Field = 8..12;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;
    pub const URGENT: Field = 18..20;
}

packet_view!("A read/write view of a TCP segment.");

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks that the buffer holds the header, options included, as the data offset says.
    pub fn check_len(&self) -> Result<(), Error> {
        let got = self.buffer.as_ref().len();
        if got < MIN_HEADER_LEN {
            return Err(Error::HeaderTooShort {
                header: "TCP",
                got,
                want: MIN_HEADER_LEN,
            });
        }
        if self.data_offset() < 5 {
            return Err(Error::BadDataOffset {
                offset: self.data_offset(),
            });
        }
        if self.header_len() > got {
            return Err(Error::HeaderTooLong {
                header_len: self.header_len(),
                got,
            });
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

    /// Returns the sequence number.
    pub fn seq_number(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::SEQ_NUM])
    }

    /// Returns the acknowledgment number.
    pub fn ack_number(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::ACK_NUM])
    }

    /// Returns the data offset: the header length in 32-bit words.
    pub fn data_offset(&self) -> u8 {
        self.buffer.as_ref()[field::DATA_OFF] >> 4
    }

    /// Returns the header length in bytes, options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.data_offset()) * 4
    }

    /// Returns the flag byte (CWR ECE URG ACK PSH RST SYN FIN).
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// Returns whether every bit of `flag` is set.
    pub fn has(&self, flag: u8) -> bool {
        self.flags() & flag == flag
    }

    /// Returns the window field.
    pub fn window(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::WINDOW])
    }

    /// Returns the checksum field.
    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// Returns the urgent pointer.
    pub fn urgent(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::URGENT])
    }

    /// Returns the options: the header bytes after the first 20.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }

    /// Returns the data after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// Returns SEG.LEN: the data length, plus one for SYN and one for FIN (RFC 9293 §3.4).
    pub fn segment_len(&self) -> u32 {
        let controls = u32::from(self.has(FLAG_SYN)) + u32::from(self.has(FLAG_FIN));
        self.payload().len() as u32 + controls
    }

    /// Returns whether the checksum verifies under `pseudo`.
    pub fn verify_checksum(&self, pseudo: &PseudoHeader) -> bool {
        pseudo.verifies(PROTO_TCP, self.buffer.as_ref())
    }

    /// Fails with `Error::BadChecksum` unless the checksum verifies under `pseudo`.
    pub fn check_checksum(&self, pseudo: &PseudoHeader) -> Result<(), Error> {
        let bad = bad_checksum("TCP");
        let want = || self.compute_checksum(pseudo);
        check_sum(self.verify_checksum(pseudo), self.checksum(), want, bad)
    }

    /// Returns the checksum the segment should carry under `pseudo`.
    pub fn compute_checksum(&self, pseudo: &PseudoHeader) -> u16 {
        pseudo.checksum(PROTO_TCP, self.buffer.as_ref(), field::CHECKSUM)
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

    /// Sets the sequence number.
    pub fn set_seq_number(&mut self, value: u32) {
        put32(&mut self.buffer.as_mut()[field::SEQ_NUM], value);
    }

    /// Sets the acknowledgment number.
    pub fn set_ack_number(&mut self, value: u32) {
        put32(&mut self.buffer.as_mut()[field::ACK_NUM], value);
    }

    /// Sets the data offset in 32-bit words; the reserved bits become zero.
    pub fn set_data_offset(&mut self, words: u8) {
        self.buffer.as_mut()[field::DATA_OFF] = words << 4;
    }

    /// Sets the flag byte.
    pub fn set_flags(&mut self, value: u8) {
        self.buffer.as_mut()[field::FLAGS] = value;
    }

    /// Sets the window field.
    pub fn set_window(&mut self, value: u16) {
        put16(&mut self.buffer.as_mut()[field::WINDOW], value);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        put16(&mut self.buffer.as_mut()[field::CHECKSUM], value);
    }

    /// Sets the urgent pointer.
    pub fn set_urgent(&mut self, value: u16) {
        put16(&mut self.buffer.as_mut()[field::URGENT], value);
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
    use crate::wire::fixtures::{TCP4_RST, TCP4_SYN, TCP6_RST, TCP6_SYN};
    use crate::wire::{ipv4, ipv6};

    fn pseudo4(packet: &[u8]) -> PseudoHeader {
        let ip = ipv4::Packet::new_checked(packet).unwrap();
        PseudoHeader::V4 {
            src: ip.src_addr(),
            dst: ip.dst_addr(),
        }
    }

    fn pseudo6(packet: &[u8]) -> PseudoHeader {
        let ip = ipv6::Packet::new_checked(packet).unwrap();
        PseudoHeader::V6 {
            src: ip.src_addr(),
            dst: ip.dst_addr(),
        }
    }

    #[test]
    fn deconstruct_syn() {
        let packet = Packet::new_checked(&TCP4_SYN[20..]).unwrap();
        assert_eq!(packet.src_port(), 0xcba0);
        assert_eq!(packet.dst_port(), 9);
        assert_eq!(packet.seq_number(), 0x7758_0235);
        assert_eq!(packet.ack_number(), 0);
        assert_eq!(packet.data_offset(), 10);
        assert_eq!(packet.header_len(), 40);
        assert_eq!(packet.flags(), FLAG_SYN);
        assert!(packet.has(FLAG_SYN) && !packet.has(FLAG_ACK));
        assert_eq!(packet.window(), 0xfaf0);
        assert_eq!(packet.checksum(), 0x7efe);
        assert_eq!(packet.urgent(), 0);
        assert_eq!(&packet.options()[..4], &[0x02, 0x04, 0x05, 0xb4]); // MSS 1460
        assert_eq!(packet.payload(), &[] as &[u8]);
        assert_eq!(packet.segment_len(), 1);
        assert!(packet.verify_checksum(&pseudo4(&TCP4_SYN)));
        assert_eq!(packet.compute_checksum(&pseudo4(&TCP4_SYN)), 0x7efe);
    }

    #[test]
    fn deconstruct_rst() {
        for (syn, rst, pseudo) in [
            (&TCP4_SYN[20..], &TCP4_RST[20..], pseudo4(&TCP4_RST)),
            (&TCP6_SYN[40..], &TCP6_RST[40..], pseudo6(&TCP6_RST)),
        ] {
            let syn = Packet::new_checked(syn).unwrap();
            let rst = Packet::new_checked(rst).unwrap();
            assert_eq!(rst.flags(), FLAG_RST | FLAG_ACK);
            assert_eq!(rst.seq_number(), 0);
            assert_eq!(rst.ack_number(), syn.seq_number().wrapping_add(1));
            assert_eq!(rst.window(), 0);
            assert_eq!(rst.header_len(), 20);
            assert_eq!(
                (rst.src_port(), rst.dst_port()),
                (syn.dst_port(), syn.src_port())
            );
            assert!(rst.verify_checksum(&pseudo));
        }
    }

    #[test]
    fn construct_rst() {
        let pseudo = pseudo4(&TCP4_SYN).swapped();
        let mut bytes = [0u8; 20];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_src_port(9);
        packet.set_dst_port(0xcba0);
        packet.set_seq_number(0);
        packet.set_ack_number(0x7758_0236);
        packet.set_data_offset(5);
        packet.set_flags(FLAG_RST | FLAG_ACK);
        packet.set_window(0);
        packet.set_urgent(0);
        packet.fill_checksum(&pseudo);
        assert_eq!(&bytes[..], &TCP4_RST[20..]);
    }

    #[test]
    fn segment_len_counts_syn_fin_and_data() {
        let mut bytes = TCP4_SYN[20..].to_vec();
        bytes.extend_from_slice(b"data");
        let mut packet = Packet::new_checked(&mut bytes[..]).unwrap();
        assert_eq!(packet.segment_len(), 5);
        packet.set_flags(FLAG_SYN | FLAG_FIN);
        assert_eq!(packet.segment_len(), 6);
        packet.set_flags(FLAG_ACK | FLAG_PSH);
        assert_eq!(packet.segment_len(), 4);
    }

    #[test]
    fn truncated() {
        assert_eq!(
            Packet::new_checked(&TCP4_SYN[20..39]).unwrap_err(),
            Error::HeaderTooShort {
                header: "TCP",
                got: 19,
                want: 20
            }
        );
        // Data offset 10 (40 bytes) in a 30-byte segment.
        assert_eq!(
            Packet::new_checked(&TCP4_SYN[20..50]).unwrap_err(),
            Error::HeaderTooLong {
                header_len: 40,
                got: 30
            }
        );
        let mut bytes = TCP4_SYN[20..].to_vec();
        bytes[12] = 0x40;
        assert_eq!(
            Packet::new_checked(&bytes[..]).unwrap_err(),
            Error::BadDataOffset { offset: 4 }
        );
    }

    #[test]
    fn bad_checksum() {
        let mut bytes = TCP6_SYN[40..].to_vec();
        bytes[4] ^= 0x80;
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert!(!packet.verify_checksum(&pseudo6(&TCP6_SYN)));
    }
}
