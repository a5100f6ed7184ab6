"""Packet bytes and checksums: the one place the harness reads or builds an IP packet.

The Internet checksum (RFC 1071) and its incremental update (RFC 1624), the pseudo-header
sums (RFC 768, RFC 9293 §3.1, RFC 8200 §8.1), builders for the packets the harness sends
(IPv4, ICMP, UDP, TCP, from the host side 192.0.2.1 to the agent 192.0.2.2), and the flow
key of an echo packet. The scripted model, its reference stack, its flaws, the injector and
the session reader all take their bytes from here. The bridge has its own wire code
(bridge/src/wire); this is the harness's, and it judges nothing: the verdicts are the
bridge's.
"""

import ipaddress
import struct

HOST = "192.0.2.1"
PEER = "192.0.2.2"
ICMP, TCP, UDP, ICMPV6 = 1, 6, 17, 58
IP_MF = 0x2000


# ---------------------------------------------------------------- checksums

def fold(total: int) -> int:
    """End-around carry: add what stands above the low 16 bits until nothing does."""
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def words(data: bytes) -> int:
    """The sum of `data` as big-endian 16-bit words, an odd last byte padded with zero."""
    if len(data) % 2:
        data += b"\x00"
    return sum((data[i] << 8) | data[i + 1] for i in range(0, len(data), 2))


def checksum(data: bytes, pseudo: int = 0) -> int:
    """RFC 1071: the complement of the folded sum of `pseudo` and `data`."""
    return 0xFFFF - fold(pseudo + words(data))


def verifies(data: bytes, pseudo: int = 0) -> bool:
    """Whether `data` (with the pseudo-header's sum `pseudo`) carries a correct checksum."""
    return fold(pseudo + words(data)) == 0xFFFF


def ones_add(a: int, b: int) -> int:
    """One's-complement addition of two 16-bit values."""
    return fold(a + b)


def incremental(hc: int, old: int, new: int) -> int:
    """RFC 1624 eqn. 3: the checksum after one 16-bit word changes from `old` to `new`."""
    return 0xFFFF - fold((0xFFFF - hc) + (0xFFFF - old) + new)


def pseudo_sum(src: bytes, dst: bytes, proto: int, length: int) -> int:
    """The pseudo-header's sum (RFC 768 / RFC 8200 §8.1): the same words for both families."""
    return words(src) + words(dst) + (length >> 16) + (length & 0xFFFF) + proto


def spoil(packet: bytes, offset: int) -> bytes:
    """The packet with the 16-bit checksum at `offset` off by one (still wrong after the fold)."""
    out = bytearray(packet)
    old = be16(out, offset)
    out[offset:offset + 2] = (old + 1 if old < 0xFFFE else 1).to_bytes(2, "big")
    return bytes(out)


# ---------------------------------------------------------------- reading

def be16(b: bytes, at: int) -> int:
    """The big-endian 16-bit word at `at`."""
    return int.from_bytes(b[at:at + 2], "big")


def addr_name(addr: bytes) -> str:
    """An IPv4 or IPv6 address as text."""
    return str(ipaddress.ip_address(bytes(addr)))


def from_hex(text: str):
    """The bytes of a hex line (spaces allowed), or None when it is not hex."""
    try:
        return bytes.fromhex(text.strip())
    except ValueError:
        return None


def is_hex_packet(text: str) -> bool:
    """Whether a READ answer is a packet (even-length hex), not TIMEOUT or an error."""
    text = text.strip()
    return bool(text) and len(text) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in text)


def echo_key(packet_hex: str):
    """The flow key ("echo", identifier, sequence) of an IPv4 ICMP echo packet as hex, or None."""
    p = from_hex(packet_hex)
    if p is None or len(p) < 20 or p[0] >> 4 != 4 or p[9] != ICMP:
        return None
    h = (p[0] & 0x0F) * 4
    if len(p) < h + 8 or p[h] not in (0, 8):
        return None
    return ("echo", be16(p, h + 4), be16(p, h + 6))


# ---------------------------------------------------------------- building (host -> agent)

def _aton(addr: str) -> bytes:
    return ipaddress.ip_address(addr).packed


def ipv4(payload: bytes, proto: int, *, ttl=64, tos=0, ident=0x4242, flags_frag=0x4000,
         options=b"", src=HOST, dst=PEER, length=None) -> bytes:
    """An IPv4 header (RFC 791) with a correct checksum, followed by `payload`.

    `length` overrides the total length field (for a fragment, the payload is what is sent).
    """
    if len(options) % 4:
        raise ValueError("IPv4 options must fill whole 32-bit words")
    ihl = 5 + len(options) // 4
    total = length if length is not None else ihl * 4 + len(payload)
    head = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, tos, total, ident, flags_frag, ttl, proto, 0,
                       _aton(src), _aton(dst)) + options
    head = head[:10] + checksum(head).to_bytes(2, "big") + head[12:]
    return head + payload


def icmp(kind: int, code: int, rest: bytes) -> bytes:
    """An ICMP message (RFC 792): type, code, checksum, then `rest`, checksum filled in."""
    body = struct.pack("!BBH", kind, code, 0) + rest
    return body[:2] + checksum(body).to_bytes(2, "big") + body[4:]


def echo_data(size: int) -> bytes:
    """Echo data like ping's pattern after its timestamp: 0x00, 0x01, ... (mod 256)."""
    return bytes(i % 256 for i in range(size))


def echo_request(ident: int, seq: int, size: int = 56, **ip) -> bytes:
    """An ICMPv4 echo request with `size` data bytes, both checksums correct."""
    return ipv4(icmp(8, 0, struct.pack("!HH", ident, seq) + echo_data(size)), ICMP, **ip)


def pseudo_header(proto: int, length: int, src=HOST, dst=PEER) -> bytes:
    """The IPv4 pseudo-header of RFC 768 / RFC 9293 3.1, as bytes."""
    return _aton(src) + _aton(dst) + struct.pack("!BBH", 0, proto, length)


def udp(sport: int, dport: int, data: bytes) -> bytes:
    """A UDP datagram (RFC 768) in IPv4, checksum over the pseudo-header filled in."""
    seg = struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data
    seg = seg[:6] + (checksum(pseudo_header(UDP, len(seg)) + seg) or 0xFFFF).to_bytes(2, "big") + seg[8:]
    return ipv4(seg, UDP)


def tcp(sport: int, dport: int, seq: int, ack: int, flags: int) -> bytes:
    """A TCP segment (RFC 9293) without options or data in IPv4, checksum filled in."""
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 0, 0, 0)
    seg = seg[:16] + checksum(pseudo_header(TCP, len(seg)) + seg).to_bytes(2, "big") + seg[18:]
    return ipv4(seg, TCP)


# ---------------------------------------------------------------- where the checksums are

# Offset of the checksum within each transport header.
CHECKSUM_AT = {ICMP: 2, TCP: 16, UDP: 6, ICMPV6: 2}


def layout(packet: bytes):
    """(transport header offset, protocol, data offset) of an IPv4 or IPv6 packet (IPv6
    without extension headers); the data offset is where the payload after the transport
    header starts. None for anything else."""
    if len(packet) >= 20 and packet[0] >> 4 == 4:
        start, proto = (packet[0] & 0x0F) * 4, packet[9]
    elif len(packet) >= 40 and packet[0] >> 4 == 6:
        start, proto = 40, packet[6]
    else:
        return None
    if proto == TCP:
        data = start + (packet[start + 12] >> 4) * 4 if len(packet) > start + 12 else len(packet)
    else:
        data = start + 8
    return start, proto, data


def fill_checksums(out: bytearray, start: int, proto: int) -> None:
    """Recomputes the IPv4 header checksum (for IPv4) and the transport checksum in place."""
    if out[0] >> 4 == 4:
        out[10:12] = b"\x00\x00"
        out[10:12] = checksum(bytes(out[:start])).to_bytes(2, "big")
    at = start + CHECKSUM_AT.get(proto, len(out))
    if at + 2 > len(out):
        return
    out[at:at + 2] = b"\x00\x00"
    segment = bytes(out[start:])
    if proto != ICMP:  # the pseudo-header (RFC 768, RFC 9293, RFC 8200 8.1)
        if out[0] >> 4 == 4:
            pseudo = bytes(out[12:20]) + bytes([0, proto]) + len(segment).to_bytes(2, "big")
        else:
            pseudo = bytes(out[8:40]) + len(segment).to_bytes(4, "big") + bytes([0, 0, 0, proto])
        segment = pseudo + segment
    out[at:at + 2] = checksum(segment).to_bytes(2, "big")
