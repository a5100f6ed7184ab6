//! The protocol, on the FIFOs and the channel alike: one command line in, exactly one
//! answer line out.
//!
//! Parsing a line into a [`Command`] is kept apart from acting on it. A line that
//! is not a valid command becomes a [`ProtocolError`], whose text is the reason in
//! the `ERR <reason>` answer. Nothing here panics on input.

use std::fmt;

use crate::judge::exchange::Response;
use crate::wire;

/// Longest command line accepted, in bytes; longer lines are refused whole.
pub const MAX_LINE: usize = 256 * 1024;

/// A parsed command from the command FIFO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Hand the oldest queued packet to the agent.
    Read,
    /// Write this packet (already checked as a whole IP packet, parsed once) to the TUN device.
    Write(Response),
}

/// Why a command line was refused; its `Display` is the reason after `ERR`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The line was empty or blank.
    #[error("empty command: expected READ or WRITE <hex>")]
    Empty,
    /// The line is not valid UTF-8.
    #[error("command is not valid UTF-8 text")]
    NotUtf8,
    /// The line holds a NUL byte.
    #[error("command contains a NUL byte")]
    Nul,
    /// The line exceeds [`MAX_LINE`].
    #[error("command line too long: {0} bytes, limit {MAX_LINE}")]
    TooLong(usize),
    /// The first word is not a known verb.
    #[error("unknown command {:?}: expected READ or WRITE <hex>", clip(.0))]
    UnknownVerb(String),
    /// READ was given arguments.
    #[error("READ takes no argument")]
    ReadArgument,
    /// WRITE was given no packet.
    #[error("WRITE needs the packet as hex: WRITE <hex>")]
    WriteMissingHex,
    /// The packet hex starts with `0x`.
    #[error("bad hex: remove the 0x prefix, send bare hex digits")]
    HexPrefix,
    /// A character that is not a hex digit.
    #[error("bad hex: {ch:?} at position {pos} is not a hex digit")]
    BadHexChar { ch: char, pos: usize },
    /// A group of hex digits of odd length (a byte split across a space).
    #[error(
        "bad hex: group {group} has {len} digits; each byte needs two, spaces only between bytes"
    )]
    OddHex { group: usize, len: usize },
    /// The packet is larger than the device MTU.
    #[error("packet of {len} bytes is larger than the MTU of {mtu}")]
    TooLarge { len: usize, mtu: usize },
    /// The packet is not a whole, well-formed IP packet; the wire error is the cause.
    #[error("{0}")]
    Packet(#[source] wire::Error),
}

/// Shortens an echoed verb so an error line stays readable.
fn clip(s: &str) -> String {
    s.chars().take(24).collect()
}

impl Command {
    /// Parses one line (without its newline) into a command, checking WRITE packets against `mtu`.
    pub fn parse(line: &[u8], mtu: usize) -> Result<Command, ProtocolError> {
        if line.len() > MAX_LINE {
            return Err(ProtocolError::TooLong(line.len()));
        }
        if line.contains(&0) {
            return Err(ProtocolError::Nul);
        }
        let text = std::str::from_utf8(line).map_err(|_| ProtocolError::NotUtf8)?;
        let text = text.trim();
        let (verb, rest) = match text.find(char::is_whitespace) {
            Some(i) => (&text[..i], text[i..].trim_start()),
            None => (text, ""),
        };
        match verb.to_ascii_uppercase().as_str() {
            "" => Err(ProtocolError::Empty),
            "READ" if rest.is_empty() => Ok(Command::Read),
            "READ" => Err(ProtocolError::ReadArgument),
            "WRITE" if rest.is_empty() => Err(ProtocolError::WriteMissingHex),
            "WRITE" => {
                let packet = decode_hex(rest)?;
                Ok(Command::Write(check_packet(packet, mtu)?))
            }
            _ => Err(ProtocolError::UnknownVerb(verb.to_string())),
        }
    }
}

/// Decodes hex, any case, with whitespace allowed between bytes.
pub fn decode_hex(text: &str) -> Result<Vec<u8>, ProtocolError> {
    let mut out = Vec::with_capacity(text.len() / 2);
    let mut pos = 0;
    for (group, word) in text.split_whitespace().enumerate() {
        if word.starts_with("0x") || word.starts_with("0X") {
            return Err(ProtocolError::HexPrefix);
        }
        let start = text[pos..].find(word).map_or(pos, |i| pos + i);
        if let Some((i, ch)) = word.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
            return Err(ProtocolError::BadHexChar { ch, pos: start + i });
        }
        if word.len() % 2 != 0 {
            return Err(ProtocolError::OddHex {
                group: group + 1,
                len: word.len(),
            });
        }
        // All digits are ASCII hex and the length is even, so decoding cannot fail.
        out.extend(hex::decode(word).map_err(|_| ProtocolError::HexPrefix)?);
        pos = start + word.len();
    }
    Ok(out)
}

/// Checks that bytes are one whole IP packet no larger than `mtu`, and parses it.
pub fn check_packet(packet: Vec<u8>, mtu: usize) -> Result<Response, ProtocolError> {
    if packet.len() > mtu {
        return Err(ProtocolError::TooLarge {
            len: packet.len(),
            mtu,
        });
    }
    Response::parse(packet).map_err(ProtocolError::Packet)
}

/// One answer line, without its newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A packet handed to the agent, shown as lowercase hex.
    Packet(Vec<u8>),
    /// No packet arrived within the read timeout.
    Timeout,
    /// The packet was written.
    Ok,
    /// The command was refused, with the reason.
    Err(String),
}

impl Answer {
    /// The answer to a READ still waiting when the bridge stops (`ERR bridge stopping`):
    /// not `TIMEOUT`, so an agent does not take a shutdown for a quiet network and read on.
    pub fn stopping() -> Answer {
        Answer::Err("bridge stopping".into())
    }

    /// What kind of answer this is, without payload hex, for log lines: `packet` (a READ's
    /// packet, whose hex is not logged), `TIMEOUT`, `OK` or `ERR`.
    pub fn label(&self) -> &'static str {
        match self {
            Answer::Packet(_) => "packet",
            Answer::Timeout => "TIMEOUT",
            Answer::Ok => "OK",
            Answer::Err(_) => "ERR",
        }
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Packet(p) => f.write_str(&hex::encode(p)),
            Answer::Timeout => f.write_str("TIMEOUT"),
            Answer::Ok => f.write_str("OK"),
            // A reason never spans lines: the protocol is one line per answer.
            Answer::Err(reason) => write!(f, "ERR {}", reason.replace(['\n', '\r'], " ")),
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    /// An ICMP echo request 192.0.2.1 -> 192.0.2.2 with no data, checksums filled.
    fn ping_hex() -> String {
        let mut p = vec![
            0x45, 0x00, 0x00, 0x1c, 0x12, 0x34, 0x40, 0x00, 0x40, 0x01, 0x00, 0x00, 192, 0, 2, 1,
            192, 0, 2, 2, 0x08, 0x00, 0x00, 0x00, 0x00, 0x07, 0x00, 0x01,
        ];
        let c = crate::wire::checksum::checksum(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        let c = crate::wire::checksum::checksum(&p[20..]);
        p[22..24].copy_from_slice(&c.to_be_bytes());
        hex::encode(p)
    }

    #[test]
    fn read_any_case_and_padding() {
        assert_eq!(Command::parse(b"READ", 1500), Ok(Command::Read));
        assert_eq!(Command::parse(b"  read \r", 1500), Ok(Command::Read));
        assert_eq!(
            Command::parse(b"READ now", 1500),
            Err(ProtocolError::ReadArgument)
        );
    }

    #[test]
    fn write_accepts_grouped_and_upper_hex() {
        let h = ping_hex();
        let want = hex::decode(&h).unwrap();
        let grouped: Vec<String> = h
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        let want = Command::Write(Response::parse(want).unwrap());
        let line = format!("WRITE {}", grouped.join(" ").to_uppercase());
        assert_eq!(Command::parse(line.as_bytes(), 1500), Ok(want.clone()));
        let line = format!("write\t{h}");
        assert_eq!(Command::parse(line.as_bytes(), 1500), Ok(want));
    }

    #[test]
    fn refusals_name_the_problem() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "empty command"),
            (b"   ", "empty command"),
            (b"PING", "unknown command \"PING\""),
            (b"WRITE", "WRITE needs the packet"),
            (b"WRITE 0x4500", "0x prefix"),
            (b"WRITE 45g0", "'g' at position 2"),
            (b"WRITE 450", "group 1 has 3 digits"),
            (b"WRITE 45 0 0", "group 2 has 1 digits"),
            (b"WRITE 4500", "too short"),
            (b"READ\0", "NUL"),
            (b"READ \xff", "UTF-8"),
        ];
        for (line, want) in cases {
            let err = Command::parse(line, 1500).unwrap_err().to_string();
            assert!(
                err.contains(want),
                "{:?}: {err:?} lacks {want:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn a_bad_packet_keeps_the_wire_error_as_its_cause() {
        let err = Command::parse(b"WRITE 4500", 1500).unwrap_err();
        let cause = std::error::Error::source(&err).expect("a cause");
        let wire = cause.downcast_ref::<wire::Error>().expect("a wire error");
        assert_eq!(*wire, wire::Error::TooShort { got: 2, want: 20 });
        assert_eq!(err.to_string(), wire.to_string());
    }

    #[test]
    fn larger_than_mtu_is_refused() {
        let line = format!("WRITE {}", ping_hex());
        let err = Command::parse(line.as_bytes(), 20).unwrap_err();
        assert_eq!(err, ProtocolError::TooLarge { len: 28, mtu: 20 });
        let long = vec![b'a'; MAX_LINE + 1];
        assert_eq!(
            Command::parse(&long, 1500),
            Err(ProtocolError::TooLong(MAX_LINE + 1))
        );
    }

    #[test]
    fn replies_are_one_line() {
        assert_eq!(Answer::Packet(vec![0x45, 0xAB]).to_string(), "45ab");
        assert_eq!(Answer::Timeout.to_string(), "TIMEOUT");
        assert_eq!(Answer::Ok.to_string(), "OK");
        assert_eq!(Answer::Err("a\nb".into()).to_string(), "ERR a b");
        assert_eq!(Answer::Packet(vec![0x45]).label(), "packet");
        assert_eq!(Answer::Err("x".into()).label(), "ERR");
    }
}
