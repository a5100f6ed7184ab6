//! What ICMP for IPv4 (RFC 792) and ICMPv6 (RFC 4443 §2.1) share: an 8-byte header of
//! type, code, checksum and a four-byte word that, for echo and echo reply, holds the
//! identifier and sequence number (RFC 792 "Echo or Echo Reply Message", RFC 4443 §4),
//! then data.
//!
//! `Packet<T, V>` is the view; `icmpv4::Packet` and `icmpv6::Packet` name it for their
//! family `V` and add what differs: how the checksum is taken (over the message alone,
//! or with the IPv6 pseudo-header), the types and the errors of their own.

use std::marker::PhantomData;

use super::ip::{be16, put16};
use super::Error;

/// The length of the header: type, code, checksum, and four bytes that depend on the type.
pub const HEADER_LEN: usize = 8;

pub(super) mod field {
    pub type Field = std::ops::Range<usize>;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const ECHO_IDENT: Field = 4..6;
    pub const ECHO_SEQNO: Field = 6..8;
    pub const DATA: std::ops::RangeFrom<usize> = 8..;
}

/// The family of an ICMP message, as far as the shared view needs it.
pub trait Version {
    /// The error for a message of `got` bytes, fewer than the header's.
    fn too_short(got: usize) -> Error;
}

/// A read/write view of an ICMP message of family `V`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>, V> {
    pub(super) buffer: T,
    version: PhantomData<V>,
}

impl<T: AsRef<[u8]>, V: Version> Packet<T, V> {
    /// Wraps a buffer without checking it; accessors may panic on a bad one.
    pub const fn new_unchecked(buffer: T) -> Packet<T, V> {
        Packet {
            buffer,
            version: PhantomData,
        }
    }

    /// Wraps a buffer after `check_len` has accepted it.
    pub fn new_checked(buffer: T) -> Result<Packet<T, V>, Error> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Checks that the buffer holds at least the 8-byte header.
    pub fn check_len(&self) -> Result<(), Error> {
        let got = self.buffer.as_ref().len();
        if got < HEADER_LEN {
            return Err(V::too_short(got));
        }
        Ok(())
    }

    /// Returns the message type.
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// Returns the message code (0 for echo and echo reply).
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Returns the checksum field.
    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// Returns the identifier of an echo or echo reply.
    pub fn echo_ident(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::ECHO_IDENT])
    }

    /// Returns the sequence number of an echo or echo reply.
    pub fn echo_seq_no(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::ECHO_SEQNO])
    }

    /// Returns the data: every byte after the 8-byte header (the echo data, or the
    /// invoking packet an error message quotes).
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>, V: Version> Packet<T, V> {
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

    /// Sets the identifier of an echo or echo reply.
    pub fn set_echo_ident(&mut self, value: u16) {
        put16(&mut self.buffer.as_mut()[field::ECHO_IDENT], value);
    }

    /// Sets the sequence number of an echo or echo reply.
    pub fn set_echo_seq_no(&mut self, value: u16) {
        put16(&mut self.buffer.as_mut()[field::ECHO_SEQNO], value);
    }

    /// Returns the data for writing: every byte after the 8-byte header.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA]
    }
}
