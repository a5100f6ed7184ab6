//! IPv6 packets (RFC 8200 §3): a checked view over the bytes of one whole packet.
//!
//! As for IPv4, `Packet::new_checked` demands that the payload length field account
//! for every byte after the 40-byte header, because a TUN read or write carries
//! exactly one packet. Extension headers are not walked: `next_header` names the
//! first one, and the reference stack answers only packets whose first next header
//! is ICMPv6, UDP or TCP.

use std::net::Ipv6Addr;

use super::ip::packet_view;
use super::ip::{be16, put16, put32};
use super::Error;

/// The length of the fixed header, in bytes.
pub const HEADER_LEN: usize = 40;
/// The minimum link MTU of IPv6 (RFC 8200 §5): an ICMPv6 error fits in it (RFC 4443 §2.4 (c)).
pub const MIN_MTU: usize = 1280;

mod field {
    pub type Field = std::ops::Range<usize>;

    pub const VER_TC_FLOW: Field = 0..4;
    pub const PAYLOAD_LEN: Field = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Field = 8..24;
    pub const DST_ADDR: Field = 24..40;
}

/// Reads an address from a sixteen-byte field.
fn addr(bytes: &[u8]) -> Ipv6Addr {
    let mut octets = [0u8; 16];
    octets.copy_from_slice(bytes);
    Ipv6Addr::from(octets)
}

packet_view!("A read/write view of an IPv6 packet.");

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks the length, the version and the payload length against the buffer.
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::HeaderTooShort {
                header: "IPv6",
                got: len,
                want: HEADER_LEN,
            });
        }
        if self.version() != 6 {
            return Err(Error::NotIpv6 {
                version: self.version(),
            });
        }
        let payload_len = usize::from(self.payload_len());
        if HEADER_LEN + payload_len != len {
            return Err(Error::PayloadLenMismatch {
                payload_len,
                got: len - HEADER_LEN,
            });
        }
        Ok(())
    }

    /// Returns the first word: version, traffic class and flow label.
    fn first_word(&self) -> u32 {
        super::ip::be32(&self.buffer.as_ref()[field::VER_TC_FLOW])
    }

    /// Returns the version field (6 for IPv6).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    /// Returns the traffic class: DSCP (6 bits) and ECN (2 bits) (RFC 8200 §7).
    pub fn traffic_class(&self) -> u8 {
        (self.first_word() >> 20) as u8
    }

    /// Returns the 20-bit flow label (RFC 6437).
    pub fn flow_label(&self) -> u32 {
        self.first_word() & 0x000f_ffff
    }

    /// Returns the payload length field: every byte after the fixed header.
    pub fn payload_len(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::PAYLOAD_LEN])
    }

    /// Returns the next header field (58 ICMPv6, 17 UDP, 6 TCP, or an extension header).
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }

    /// Returns the hop limit field.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Returns the source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        addr(&self.buffer.as_ref()[field::SRC_ADDR])
    }

    /// Returns the destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        addr(&self.buffer.as_ref()[field::DST_ADDR])
    }

    /// Returns the payload: every byte after the fixed header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the first word: version, traffic class and flow label.
    fn set_first_word(&mut self, value: u32) {
        put32(&mut self.buffer.as_mut()[field::VER_TC_FLOW], value);
    }

    /// Sets the version field to 6.
    pub fn set_version(&mut self) {
        let word = self.first_word() & 0x0fff_ffff;
        self.set_first_word(word | 0x6000_0000);
    }

    /// Sets the traffic class.
    pub fn set_traffic_class(&mut self, value: u8) {
        let word = self.first_word() & 0xf00f_ffff;
        self.set_first_word(word | u32::from(value) << 20);
    }

    /// Sets the flow label; bits above the low 20 are ignored.
    pub fn set_flow_label(&mut self, value: u32) {
        let word = self.first_word() & 0xfff0_0000;
        self.set_first_word(word | (value & 0x000f_ffff));
    }

    /// Sets the payload length field.
    pub fn set_payload_len(&mut self, value: u16) {
        put16(&mut self.buffer.as_mut()[field::PAYLOAD_LEN], value);
    }

    /// Sets the next header field.
    pub fn set_next_header(&mut self, value: u8) {
        self.buffer.as_mut()[field::NEXT_HEADER] = value;
    }

    /// Sets the hop limit field.
    pub fn set_hop_limit(&mut self, value: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = value;
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, value: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&value.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, value: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&value.octets());
    }

    /// Returns the payload for writing: every byte after the fixed header.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::wire::fixtures::{
        ICMPV6_REPLY_56, ICMPV6_REQUEST_0, ICMPV6_REQUEST_56, IPV6_FRAGMENT, IPV6_MLD_REPORT,
        REQUEST_56,
    };
    use crate::wire::ip::{PROTO_ICMPV6, PROTO_IPV6_FRAG};

    #[test]
    fn deconstruct() {
        let packet = Packet::new_checked(&ICMPV6_REQUEST_56[..]).unwrap();
        assert_eq!(packet.version(), 6);
        assert_eq!(packet.traffic_class(), 0);
        assert_eq!(packet.flow_label(), 0x9_3e55);
        assert_eq!(packet.payload_len(), 64);
        assert_eq!(packet.next_header(), PROTO_ICMPV6);
        assert_eq!(packet.hop_limit(), 64);
        assert_eq!(
            packet.src_addr(),
            "2001:db8::1".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            packet.dst_addr(),
            "2001:db8::2".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(packet.payload(), &ICMPV6_REQUEST_56[40..]);
    }

    #[test]
    fn deconstruct_extension_headers() {
        let mld = Packet::new_checked(&IPV6_MLD_REPORT[..]).unwrap();
        assert_eq!(mld.next_header(), 0); // hop-by-hop options
        assert_eq!(mld.hop_limit(), 1);
        assert_eq!(mld.dst_addr(), "ff02::16".parse::<Ipv6Addr>().unwrap());
        let frag = Packet::new_checked(&IPV6_FRAGMENT[..]).unwrap();
        assert_eq!(frag.next_header(), PROTO_IPV6_FRAG);
    }

    #[test]
    fn construct() {
        // Rebuild the kernel's reply header on top of the request.
        let mut bytes = ICMPV6_REQUEST_56.to_vec();
        let mut packet = Packet::new_checked(&mut bytes[..]).unwrap();
        packet.set_src_addr("2001:db8::2".parse().unwrap());
        packet.set_dst_addr("2001:db8::1".parse().unwrap());
        packet.set_flow_label(0xd_bf6c);
        packet.set_traffic_class(0xb8);
        assert_eq!(packet.traffic_class(), 0xb8);
        assert_eq!(packet.flow_label(), 0xd_bf6c);
        packet.set_traffic_class(0);
        packet.set_version();
        packet.set_hop_limit(64);
        packet.set_next_header(PROTO_ICMPV6);
        packet.set_payload_len(64);
        packet.payload_mut().copy_from_slice(&ICMPV6_REPLY_56[40..]);
        assert_eq!(&bytes[..], &ICMPV6_REPLY_56[..]);
    }

    #[test]
    fn truncated() {
        assert_eq!(
            Packet::new_checked(&ICMPV6_REQUEST_0[..39]).unwrap_err(),
            Error::HeaderTooShort {
                header: "IPv6",
                got: 39,
                want: 40
            }
        );
        assert_eq!(
            Packet::new_checked(&ICMPV6_REQUEST_0[..47]).unwrap_err(),
            Error::PayloadLenMismatch {
                payload_len: 8,
                got: 7
            }
        );
    }

    #[test]
    fn overlong() {
        let mut bytes = ICMPV6_REQUEST_0.to_vec();
        bytes.push(0);
        assert_eq!(
            Packet::new_checked(&bytes[..]).unwrap_err(),
            Error::PayloadLenMismatch {
                payload_len: 8,
                got: 9
            }
        );
    }

    #[test]
    fn not_ipv6() {
        let mut padded = REQUEST_56.to_vec();
        padded.truncate(40);
        assert_eq!(
            Packet::new_checked(&padded[..]).unwrap_err(),
            Error::NotIpv6 { version: 4 }
        );
    }
}
