//! A packet capture of the TUN traffic in the classic pcap format.
//!
//! [`PcapWriter`] writes the 24-byte global header (magic 0xa1b2c3d4, microsecond
//! timestamps, version 2.4, snaplen 65535, LINKTYPE_RAW = 101, so each record is a
//! bare IPv4 or IPv6 packet as read from or written to the device) and then one
//! record per packet, each in a single write, so a crash leaves a file that
//! tcpdump and Wireshark still read up to the last whole packet. Hand-written:
//! the format is a handful of little-endian integers, not worth a dependency.
//! Format: <https://www.tcpdump.org/manpages/pcap-savefile.5.html>.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// The pcap magic number for microsecond timestamps.
pub const MAGIC: u32 = 0xa1b2_c3d4;
/// The largest packet length kept in a record; longer packets are cut.
pub const SNAPLEN: u32 = 65_535;
/// LINKTYPE_RAW: each record starts with an IPv4 or IPv6 header.
pub const LINKTYPE_RAW: u32 = 101;

/// Writes packets to a classic pcap file, flushing each one.
#[derive(Debug)]
pub struct PcapWriter {
    file: File,
}

impl PcapWriter {
    /// Creates (or truncates) `path` and writes the pcap global header; a symlink is refused.
    pub fn create(path: impl AsRef<Path>) -> io::Result<Self> {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(path)?;
        file.write_all(&global_header())?;
        file.flush()?;
        Ok(PcapWriter { file })
    }

    /// Appends one packet captured at `ts` as one record, and flushes it.
    pub fn write(&mut self, ts: SystemTime, packet: &[u8]) -> io::Result<()> {
        let kept = &packet[..packet.len().min(SNAPLEN as usize)];
        let mut record = Vec::with_capacity(16 + kept.len());
        let (sec, usec) = timestamp(ts);
        record.extend_from_slice(&sec.to_le_bytes());
        record.extend_from_slice(&usec.to_le_bytes());
        record.extend_from_slice(&(kept.len() as u32).to_le_bytes());
        let orig_len = u32::try_from(packet.len()).unwrap_or(u32::MAX);
        record.extend_from_slice(&orig_len.to_le_bytes());
        record.extend_from_slice(kept);
        self.file.write_all(&record)?;
        self.file.flush()
    }
}

/// The 24-byte global header, little-endian (readers detect the order from the magic).
fn global_header() -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes()); // version major
    h[6..8].copy_from_slice(&4u16.to_le_bytes()); // version minor
                                                  // 8..12 thiszone = 0 (UTC), 12..16 sigfigs = 0.
    h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
    h[20..24].copy_from_slice(&LINKTYPE_RAW.to_le_bytes());
    h
}

/// Seconds and microseconds since the epoch; clamped to 0 before it and to u32::MAX after 2106.
fn timestamp(ts: SystemTime) -> (u32, u32) {
    let d = ts.duration_since(UNIX_EPOCH).unwrap_or_default();
    let sec = u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
    (sec, d.subsec_micros())
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::testdir::TestDir;
    use std::path::PathBuf;
    use std::process::Command;
    use std::time::Duration;

    /// IPv4 ICMP echo request 10.0.0.1 -> 10.0.0.2, id 0x1234, seq 1, payload "ping".
    static REQUEST: [u8; 32] = [
        0x45, 0x00, 0x00, 0x20, 0x00, 0x01, 0x40, 0x00, 0x40, 0x01, 0x26, 0xda, 0x0a, 0x00, 0x00,
        0x01, 0x0a, 0x00, 0x00, 0x02, 0x08, 0x00, 0x06, 0xfa, 0x12, 0x34, 0x00, 0x01, 0x70, 0x69,
        0x6e, 0x67,
    ];
    /// The matching echo reply 10.0.0.2 -> 10.0.0.1.
    static REPLY: [u8; 32] = [
        0x45, 0x00, 0x00, 0x20, 0x00, 0x01, 0x40, 0x00, 0x40, 0x01, 0x26, 0xda, 0x0a, 0x00, 0x00,
        0x02, 0x0a, 0x00, 0x00, 0x01, 0x00, 0x00, 0x0e, 0xfa, 0x12, 0x34, 0x00, 0x01, 0x70, 0x69,
        0x6e, 0x67,
    ];

    fn two_packet_file(name: &str) -> (TestDir, PathBuf) {
        let dir = TestDir::new("pcap");
        let path = dir.join(name);
        let t = UNIX_EPOCH + Duration::from_micros(1_714_564_800_123_456);
        let mut w = PcapWriter::create(&path).unwrap();
        w.write(t, &REQUEST).unwrap();
        w.write(t + Duration::from_millis(2), &REPLY).unwrap();
        (dir, path)
    }

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn header_and_two_records() {
        let (_dir, path) = two_packet_file("bytes.pcap");
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(bytes.len(), 24 + 2 * (16 + 32));
        assert_eq!(
            bytes[..24],
            [
                0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 101,
                0, 0, 0
            ]
        );
        let first = &bytes[24..];
        assert_eq!(u32_at(first, 0), 1_714_564_800);
        assert_eq!(u32_at(first, 4), 123_456);
        assert_eq!((u32_at(first, 8), u32_at(first, 12)), (32, 32));
        assert_eq!(first[16..48], REQUEST);
        let second = &bytes[24 + 48..];
        assert_eq!(u32_at(second, 4), 125_456);
        assert_eq!(second[16..], REPLY);
    }

    #[test]
    fn overlong_packet_is_cut_to_snaplen() {
        let dir = TestDir::new("pcap");
        let path = dir.join("long.pcap");
        let mut w = PcapWriter::create(&path).unwrap();
        w.write(UNIX_EPOCH, &vec![0u8; 70_000]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!((u32_at(&bytes, 32), u32_at(&bytes, 36)), (SNAPLEN, 70_000));
        assert_eq!(bytes.len(), 24 + 16 + SNAPLEN as usize);
    }

    #[test]
    fn timestamp_clamps() {
        assert_eq!(timestamp(UNIX_EPOCH - Duration::from_secs(5)), (0, 0));
        let far = UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX) + 10);
        assert_eq!(timestamp(far).0, u32::MAX);
    }

    /// Reads the file back with tcpdump; says "skipped" on stderr when tcpdump is absent.
    #[test]
    fn tcpdump_reads_two_packets() {
        let (_dir, path) = two_packet_file("tcpdump.pcap");
        let out = match Command::new("tcpdump").arg("-nr").arg(&path).output() {
            Ok(out) => out,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Straight to stderr, past the test harness's capture, so the skip shows.
                let _ = writeln!(
                    io::stderr(),
                    "pcap::test::tcpdump_reads_two_packets: skipped, tcpdump is not installed"
                );
                return;
            }
            Err(e) => panic!("running tcpdump: {e}"),
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "tcpdump failed: {stderr}");
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 2, "{stdout}");
        assert!(
            lines[0].contains("10.0.0.1 > 10.0.0.2: ICMP echo request"),
            "{stdout}"
        );
        assert!(
            lines[1].contains("10.0.0.2 > 10.0.0.1: ICMP echo reply"),
            "{stdout}"
        );
        assert!(stderr.contains("RAW"), "{stderr}");
    }
}
