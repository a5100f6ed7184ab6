//! Wire formats: checked views over IPv4 and IPv6 packets, ICMP, ICMPv6, UDP and TCP, in
//! the smoltcp style.
//!
//! Bytes from outside (a TUN read, an agent's hex) enter only through `new_checked`,
//! which refuses them with an `Error` whose text is one line saying what is wrong.
//! `echo_reply` builds the echo reply a host owes an ICMPv4 echo request (the reference
//! stack uses it for that kind).

pub mod checksum;
pub mod cidr;
pub mod icmp;
pub mod icmpv4;
pub mod icmpv6;
pub mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;

#[cfg(test)]
pub(crate) mod fixtures;

#[cfg(test)]
/// The fixture `REQUEST_56` with `edit` applied and, where it is still an IPv4 packet, the header
/// checksum fixed: a request wrong in one field only.
pub(crate) fn edited(edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut bytes = fixtures::REQUEST_56.to_vec();
    edit(&mut bytes);
    if let Ok(mut ip) = ipv4::Packet::new_checked(&mut bytes[..]) {
        ip.fill_checksum();
    }
    bytes
}

/// The TTL of a reference echo reply: the Linux default (`net.ipv4.ip_default_ttl`).
pub const REPLY_TTL: u8 = 64;

/// Why bytes are not a packet the bridge can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Fewer bytes than an IPv4 header without options.
    #[error("packet too short: {got} bytes, an IPv4 header needs at least {want}")]
    TooShort { got: usize, want: usize },
    /// The version field is not 4.
    #[error("not IPv4: version {version}")]
    NotIpv4 { version: u8 },
    /// The header length field is below 5 words.
    #[error("bad IHL {ihl}: the header length must be 5..15 words")]
    BadIhl { ihl: u8 },
    /// The header length runs past the end of the packet.
    #[error("header length {header_len} exceeds the packet's {got} bytes")]
    HeaderTooLong { header_len: usize, got: usize },
    /// The total length field is smaller than the header.
    #[error("total length field says {total_len}, less than the {header_len}-byte header")]
    TotalLenTooSmall { total_len: usize, header_len: usize },
    /// The total length field disagrees with the number of bytes.
    #[error("total length field says {total_len} but the packet has {got} bytes")]
    TotalLenMismatch { total_len: usize, got: usize },
    /// Fewer bytes than an ICMP header after the IPv4 header.
    #[error("ICMP message too short: {got} bytes, an ICMP header needs {want}")]
    IcmpTooShort { got: usize, want: usize },
    /// The packet is a fragment (MF set or a non-zero offset).
    #[error(
        "fragment (more-fragments flag {}, offset {offset}): only whole packets are handled",
        if *.more_frags { "set" } else { "clear" }
    )]
    Fragmented { more_frags: bool, offset: u16 },
    /// The IPv4 payload is not ICMP.
    #[error("not an ICMP packet (protocol {protocol})")]
    NotIcmp { protocol: u8 },
    /// The ICMP message is not an echo request (type 8 code 0).
    #[error("not an echo request: ICMP type {msg_type} code {code}, want type 8 code 0")]
    NotEchoRequest { msg_type: u8, code: u8 },
    /// The IPv4 header checksum is wrong.
    #[error("bad IPv4 header checksum: got {got:#06x}, want {want:#06x}")]
    BadIpChecksum { got: u16, want: u16 },
    /// The ICMP checksum is wrong.
    #[error("bad ICMP checksum: got {got:#06x}, want {want:#06x}")]
    BadIcmpChecksum { got: u16, want: u16 },
    /// Fewer bytes than the named header needs (IPv6, ICMPv6, UDP, TCP).
    #[error("{header} header too short: {got} bytes, it needs {want}")]
    HeaderTooShort {
        header: &'static str,
        got: usize,
        want: usize,
    },
    /// The version field is not 6.
    #[error("not IPv6: version {version}")]
    NotIpv6 { version: u8 },
    /// The IPv6 payload length field disagrees with the bytes after the header.
    #[error("payload length field says {payload_len} but {got} bytes follow the IPv6 header")]
    PayloadLenMismatch { payload_len: usize, got: usize },
    /// The UDP length field disagrees with the bytes of the datagram.
    #[error("UDP length field says {len} but the datagram has {got} bytes")]
    UdpLenMismatch { len: usize, got: usize },
    /// The TCP data offset is below 5 words.
    #[error("bad TCP data offset {offset}: the header length must be 5..15 words")]
    BadDataOffset { offset: u8 },
    /// The checksum of the named header is wrong (UDP, TCP, ICMPv6).
    #[error("bad {header} checksum: got {got:#06x}, want {want:#06x}")]
    BadChecksum {
        header: &'static str,
        got: u16,
        want: u16,
    },
}

/// Builds the reference echo reply to an IPv4 ICMP echo request (RFC 792; RFC 1122 §3.2.2.6).
///
/// The reply is the request with source and destination swapped, TTL `REPLY_TTL`,
/// ICMP type 0 code 0, and both checksums recomputed. Everything else is kept as it
/// was: the IP identification, DSCP/ECN, the DF flag, the ICMP identifier, sequence
/// number and data, and the IPv4 options byte for byte. (RFC 1122 §3.2.2.6 would have
/// a host update record-route and timestamp options and reverse a source route; the
/// bridge keeps them as they are, which is simple and predictable.)
///
/// Refuses a malformed packet, a fragment, a non-ICMP packet, an ICMP message other
/// than echo request, and a request with a wrong checksum (which a host would drop).
pub fn echo_reply(request: &[u8]) -> Result<Vec<u8>, Error> {
    check_echo_request(request)?;
    let mut bytes = request.to_vec();
    let mut ip = ipv4::Packet::new_unchecked(&mut bytes[..]);
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    ip.set_src_addr(dst);
    ip.set_dst_addr(src);
    ip.set_ttl(REPLY_TTL);
    ip.fill_checksum();
    let mut icmp = icmpv4::Packet::new_unchecked(ip.payload_mut());
    icmp.set_msg_type(icmpv4::ECHO_REPLY);
    icmp.set_code(0);
    icmp.fill_checksum();
    Ok(bytes)
}

/// Checks that `packet` is a whole, well-formed IPv4 ICMP echo request with correct checksums.
pub fn check_echo_request(packet: &[u8]) -> Result<(), Error> {
    let ip = ipv4::Packet::new_checked(packet)?;
    if ip.is_fragment() {
        return Err(Error::Fragmented {
            more_frags: ip.more_frags(),
            offset: ip.frag_offset(),
        });
    }
    if ip.protocol() != ipv4::PROTO_ICMP {
        return Err(Error::NotIcmp {
            protocol: ip.protocol(),
        });
    }
    let icmp = icmpv4::Packet::new_checked(ip.payload())?;
    if icmp.msg_type() != icmpv4::ECHO_REQUEST || icmp.code() != 0 {
        return Err(Error::NotEchoRequest {
            msg_type: icmp.msg_type(),
            code: icmp.code(),
        });
    }
    ip.check_checksum()?;
    icmp.check_checksum()
}

/// Returns whether `packet` is one whole, well-formed IPv4 packet (it passes `new_checked`).
pub fn is_ipv4(packet: &[u8]) -> bool {
    ipv4::Packet::new_checked(packet).is_ok()
}

#[cfg(test)]
mod test {
    use super::fixtures::*;
    use super::*;

    /// Copies the fields the kernel chose differently (IP identification, DF) from
    /// `kernel` into `ours` and fixes the header checksum.
    fn with_kernel_ident_and_flags(ours: &[u8], kernel: &[u8]) -> Vec<u8> {
        let kernel = ipv4::Packet::new_checked(kernel).unwrap();
        let mut bytes = ours.to_vec();
        let mut ip = ipv4::Packet::new_checked(&mut bytes[..]).unwrap();
        ip.set_ident(kernel.ident());
        ip.set_flags_frag(kernel.flags_frag());
        ip.fill_checksum();
        bytes
    }

    #[test]
    fn echo_reply_matches_kernel() {
        for (request, kernel) in ECHO_PAIRS {
            let ours = echo_reply(request).unwrap();
            crate::oracle::assert_echo_reply(request, &ours);
            assert_eq!(ours.len(), kernel.len());
            // Only the IP identification, DF and the header checksum differ.
            assert_eq!(ours[..4], kernel[..4]);
            assert_eq!(ours[8..10], kernel[8..10]);
            assert_eq!(ours[12..], kernel[12..]);
            assert_eq!(with_kernel_ident_and_flags(&ours, kernel), kernel);
        }
    }

    #[test]
    fn echo_reply_keeps_request_fields() {
        let ours = echo_reply(&REQUEST_56).unwrap();
        let ip = ipv4::Packet::new_checked(&ours[..]).unwrap();
        assert_eq!(ip.ident(), 0x95ac);
        assert!(ip.dont_frag());
        assert_eq!(ip.ttl(), REPLY_TTL);
        assert!(ip.verify_checksum());
        let icmp = icmpv4::Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum());
        assert_eq!(icmp.checksum(), 0x83db);
    }

    #[test]
    fn the_oracle_refuses_what_is_not_the_reference() {
        use crate::oracle::check_echo_reply;
        let ours = echo_reply(&REQUEST_56).unwrap();
        let spoiled = |at: usize| {
            let mut bytes = ours.clone();
            bytes[at] ^= 1;
            check_echo_reply(&REQUEST_56, &bytes).unwrap_err()
        };
        assert!(
            spoiled(11).starts_with("IPv4 header checksum"),
            "{}",
            spoiled(11)
        );
        assert!(spoiled(23).starts_with("ICMP checksum"), "{}", spoiled(23));
        // The kernel's reply has its own IP identification, which the reference keeps.
        let kernel = check_echo_reply(&REQUEST_56, &REPLY_56).unwrap_err();
        assert!(kernel.starts_with("identification"), "{kernel}");
        let edited = |edit: &dyn Fn(&mut ipv4::Packet<&mut [u8]>)| {
            let mut bytes = ours.clone();
            let mut ip = ipv4::Packet::new_checked(&mut bytes[..]).unwrap();
            edit(&mut ip);
            ip.fill_checksum();
            check_echo_reply(&REQUEST_56, &bytes).unwrap_err()
        };
        assert!(edited(&|ip| ip.set_ttl(63)).starts_with("TTL"));
        assert!(edited(&|ip| ip.set_dscp_ecn(1)).starts_with("ECN"));
        assert!(edited(&|ip| ip.set_src_addr([192, 0, 2, 9].into())).starts_with("source"));
    }

    #[test]
    fn echo_reply_keeps_options() {
        let ours = echo_reply(&REQUEST_RR).unwrap();
        crate::oracle::assert_echo_reply(&REQUEST_RR, &ours);
        let ip = ipv4::Packet::new_checked(&ours[..]).unwrap();
        assert_eq!(ip.header_len(), 60);
        assert_eq!(ip.options(), &REQUEST_RR[20..60]);
        assert!(ip.verify_checksum());
        // The ICMP part matches the kernel's, which did update the record route.
        assert_eq!(ip.payload(), &REPLY_RR[60..]);
        assert_ne!(ip.options(), &REPLY_RR[20..60]);
    }

    #[test]
    fn echo_reply_to_ttl_1() {
        let mut request = REQUEST_56.to_vec();
        let mut ip = ipv4::Packet::new_checked(&mut request[..]).unwrap();
        ip.set_ttl(1);
        ip.fill_checksum();
        let ours = echo_reply(&request).unwrap();
        crate::oracle::assert_echo_reply(&request, &ours);
        assert_eq!(ours, echo_reply(&REQUEST_56).unwrap());
    }

    #[test]
    fn echo_reply_refuses() {
        let cases: Vec<(Vec<u8>, Error)> = vec![
            (
                REQUEST_56[..19].to_vec(),
                Error::TooShort { got: 19, want: 20 },
            ),
            (
                REQUEST_56[..83].to_vec(),
                Error::TotalLenMismatch {
                    total_len: 84,
                    got: 83,
                },
            ),
            (
                REQUEST_56[..20].to_vec(),
                Error::TotalLenMismatch {
                    total_len: 84,
                    got: 20,
                },
            ),
            (
                REPLY_56.to_vec(),
                Error::NotEchoRequest {
                    msg_type: 0,
                    code: 0,
                },
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(echo_reply(&bytes).unwrap_err(), want);
        }
    }

    #[test]
    fn echo_reply_refuses_fragments() {
        let mf = edited(|b| b[6] |= 0x20);
        assert_eq!(
            echo_reply(&mf).unwrap_err(),
            Error::Fragmented {
                more_frags: true,
                offset: 0
            }
        );
        let offset = edited(|b| b[7] = 0x03);
        assert_eq!(
            echo_reply(&offset).unwrap_err(),
            Error::Fragmented {
                more_frags: false,
                offset: 24
            }
        );
    }

    #[test]
    fn echo_reply_refuses_other_protocols() {
        let udp = edited(|b| b[9] = 17);
        assert_eq!(
            echo_reply(&udp).unwrap_err(),
            Error::NotIcmp { protocol: 17 }
        );
    }

    #[test]
    fn echo_reply_refuses_other_icmp() {
        let code = edited(|b| b[21] = 1);
        assert_eq!(
            echo_reply(&code).unwrap_err(),
            Error::NotEchoRequest {
                msg_type: 8,
                code: 1
            }
        );
        let unreachable = edited(|b| b[20] = 3);
        assert_eq!(
            echo_reply(&unreachable).unwrap_err(),
            Error::NotEchoRequest {
                msg_type: 3,
                code: 0
            }
        );
    }

    #[test]
    fn echo_reply_refuses_short_icmp() {
        // A 24-byte packet: IPv4 header, then four bytes of ICMP.
        let short = edited(|b| {
            b.truncate(24);
            b[2..4].copy_from_slice(&24u16.to_be_bytes());
        });
        assert_eq!(
            echo_reply(&short).unwrap_err(),
            Error::IcmpTooShort { got: 4, want: 8 }
        );
    }

    #[test]
    fn echo_reply_refuses_bad_checksums() {
        let mut ip_bad = REQUEST_56.to_vec();
        ip_bad[10] ^= 0x01;
        assert_eq!(
            echo_reply(&ip_bad).unwrap_err(),
            Error::BadIpChecksum {
                got: 0x21f9,
                want: 0x20f9
            }
        );
        let mut icmp_bad = REQUEST_56.to_vec();
        icmp_bad[83] ^= 0x01; // 0x37 -> 0x36: the sum drops by one, the checksum rises by one
        assert_eq!(
            echo_reply(&icmp_bad).unwrap_err(),
            Error::BadIcmpChecksum {
                got: 0x7bdb,
                want: 0x7bdc
            }
        );
    }

    #[test]
    fn ipv4_or_not() {
        assert!(is_ipv4(&REQUEST_56));
        assert!(is_ipv4(&REQUEST_RR));
        assert!(!is_ipv4(&REQUEST_56[..83]));
        assert!(!is_ipv4(&[0x60, 0, 0, 0]));
        assert!(!is_ipv4(&[]));
    }

    #[test]
    fn errors_are_one_line() {
        let errors = [
            Error::TooShort { got: 12, want: 20 },
            Error::NotIpv4 { version: 6 },
            Error::BadIhl { ihl: 3 },
            Error::HeaderTooLong {
                header_len: 24,
                got: 20,
            },
            Error::TotalLenTooSmall {
                total_len: 16,
                header_len: 20,
            },
            Error::TotalLenMismatch {
                total_len: 84,
                got: 80,
            },
            Error::IcmpTooShort { got: 4, want: 8 },
            Error::Fragmented {
                more_frags: true,
                offset: 0,
            },
            Error::NotIcmp { protocol: 6 },
            Error::NotEchoRequest {
                msg_type: 0,
                code: 0,
            },
            Error::BadIpChecksum {
                got: 0x1c2a,
                want: 0x1c2b,
            },
            Error::BadIcmpChecksum {
                got: 0x1c2a,
                want: 0x1c2b,
            },
            Error::HeaderTooShort {
                header: "UDP",
                got: 4,
                want: 8,
            },
            Error::NotIpv6 { version: 4 },
            Error::PayloadLenMismatch {
                payload_len: 64,
                got: 60,
            },
            Error::UdpLenMismatch { len: 27, got: 20 },
            Error::BadDataOffset { offset: 4 },
            Error::BadChecksum {
                header: "TCP",
                got: 0x1c2a,
                want: 0x1c2b,
            },
        ];
        for error in errors {
            let text = error.to_string();
            assert!(!text.is_empty() && !text.contains('\n'), "{text:?}");
        }
        assert_eq!(
            Error::BadChecksum {
                header: "UDP",
                got: 0x1c2a,
                want: 0x1c2b
            }
            .to_string(),
            "bad UDP checksum: got 0x1c2a, want 0x1c2b"
        );
        assert_eq!(
            Error::TooShort { got: 12, want: 20 }.to_string(),
            "packet too short: 12 bytes, an IPv4 header needs at least 20"
        );
        assert_eq!(
            Error::NotIpv4 { version: 6 }.to_string(),
            "not IPv4: version 6"
        );
        assert_eq!(
            Error::BadIhl { ihl: 3 }.to_string(),
            "bad IHL 3: the header length must be 5..15 words"
        );
        assert_eq!(
            Error::HeaderTooLong {
                header_len: 24,
                got: 20
            }
            .to_string(),
            "header length 24 exceeds the packet's 20 bytes"
        );
        assert_eq!(
            Error::TotalLenMismatch {
                total_len: 84,
                got: 80
            }
            .to_string(),
            "total length field says 84 but the packet has 80 bytes"
        );
        assert_eq!(
            Error::BadIcmpChecksum {
                got: 0x1c2a,
                want: 0x1c2b
            }
            .to_string(),
            "bad ICMP checksum: got 0x1c2a, want 0x1c2b"
        );
    }
}
