#!/usr/bin/env python3
"""Puts exact bytes on the wire from the host side of the namespace, for the packets the
kernel will not send: a bad IPv4 header checksum, a bad ICMP or UDP checksum, an ICMP
timestamp request, a first fragment, a TCP RST out of nowhere.

An AF_PACKET socket bound to the TUN interface hands the bytes to the device unchanged,
so the bridge reads them as they are. (A raw IPv4 socket with IP_HDRINCL would fill in
the header checksum and so could not send a bad one.) Run it inside the namespace, as
root:

    ip netns exec NS python3 scripts/lib/inject.py --dev tun0 4500001c...
    ip netns exec NS python3 scripts/lib/inject.py --dev tun0 --build bad-ip-checksum

The builders below make well-formed packets from the host side (192.0.2.1) to the agent
(192.0.2.2) and then spoil exactly one thing. Stdlib only.
"""

import argparse
import socket
import struct
import sys
import time

HOST = "192.0.2.1"
PEER = "192.0.2.2"
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
IP_MF = 0x2000


def checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return 0xFFFF - total


def spoil(packet: bytes, offset: int) -> bytes:
    """The packet with the 16-bit checksum at `offset` off by one (still wrong after the fold)."""
    out = bytearray(packet)
    old = int.from_bytes(out[offset:offset + 2], "big")
    out[offset:offset + 2] = (old + 1 if old < 0xFFFE else 1).to_bytes(2, "big")
    return bytes(out)


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
                       socket.inet_aton(src), socket.inet_aton(dst)) + options
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
    return ipv4(icmp(8, 0, struct.pack("!HH", ident, seq) + echo_data(size)), 1, **ip)


def bad_ip_checksum(ident: int, seq: int) -> bytes:
    """An echo request whose IPv4 header checksum is wrong (a stack must drop it)."""
    return spoil(echo_request(ident, seq), 10)


def bad_icmp_checksum(ident: int, seq: int) -> bytes:
    """An echo request whose ICMP checksum is wrong (RFC 1122 3.2.2: silently discarded)."""
    return spoil(echo_request(ident, seq), 20 + 2)


def timestamp_request(ident: int, seq: int) -> bytes:
    """An ICMP timestamp request (type 13), which an echo-only stack does not serve."""
    ms = int(time.time() % 86400 * 1000)
    return ipv4(icmp(13, 0, struct.pack("!HHIII", ident, seq, ms, 0, 0)), 1)


def first_fragment(ident: int, seq: int) -> bytes:
    """The first fragment (MF set, offset 0) of a 128-byte echo request.

    The data the second fragment would carry is all zeros, so the ICMP checksum of the
    whole message also verifies over this fragment alone: a stack that ignores MF sees a
    perfectly good echo request. The total length is this fragment's (RFC 791).
    """
    data = echo_data(48) + bytes(72)
    message = icmp(8, 0, struct.pack("!HH", ident, seq) + data)
    return ipv4(message[:56], 1, flags_frag=IP_MF, ident=ident)


def pseudo_header(proto: int, length: int, src=HOST, dst=PEER) -> bytes:
    """The IPv4 pseudo-header of RFC 768 / RFC 9293 3.1."""
    return socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, proto, length)


def udp(sport: int, dport: int, data: bytes) -> bytes:
    """A UDP datagram (RFC 768) in IPv4, checksum over the pseudo-header filled in."""
    seg = struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data
    seg = seg[:6] + (checksum(pseudo_header(17, len(seg)) + seg) or 0xFFFF).to_bytes(2, "big") + seg[8:]
    return ipv4(seg, 17)


def tcp(sport: int, dport: int, seq: int, ack: int, flags: int) -> bytes:
    """A TCP segment (RFC 9293) without options or data in IPv4, checksum filled in."""
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 0, 0, 0)
    seg = seg[:16] + checksum(pseudo_header(6, len(seg)) + seg).to_bytes(2, "big") + seg[18:]
    return ipv4(seg, 6)


def bad_udp_checksum(ident: int, seq: int) -> bytes:
    """A UDP datagram to the echo port 7 whose checksum is wrong (RFC 1122 4.1.3.4: discarded)."""
    return spoil(udp(32768 + ident % 28000, 7, echo_data(19)), 20 + 6)


def tcp_rst(ident: int, seq: int) -> bytes:
    """A TCP RST to a closed port: RFC 9293 3.10.7.1, an incoming RST is discarded, never answered."""
    return tcp(32768 + ident % 28000, 9, ident << 16 | seq, 0, 0x04)


BUILDERS = {
    "bad-ip-checksum": bad_ip_checksum,
    "bad-icmp-checksum": bad_icmp_checksum,
    "icmp-timestamp": timestamp_request,
    "fragment": first_fragment,
    "bad-udp-checksum": bad_udp_checksum,
    "tcp-rst": tcp_rst,
}


def send(dev: str, packet: bytes) -> None:
    """Hands `packet` to the device `dev` unchanged (AF_PACKET, no link-layer header)."""
    proto = ETH_P_IPV6 if packet[:1] and packet[0] >> 4 == 6 else ETH_P_IP
    with socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(proto)) as s:
        s.sendto(packet, (dev, proto))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dev", default="tun0", help="the TUN interface, inside this namespace")
    ap.add_argument("--build", choices=sorted(BUILDERS), help="build this packet instead of taking hex")
    ap.add_argument("--ident", type=lambda s: int(s, 0), default=0x5a17, help="ICMP identifier")
    ap.add_argument("--seq", type=int, default=1, help="ICMP sequence number")
    ap.add_argument("hex", nargs="?", help="the packet as hex (spaces allowed)")
    a = ap.parse_args()
    if bool(a.build) == bool(a.hex):
        ap.error("give either --build NAME or the packet's hex")
    try:
        packet = BUILDERS[a.build](a.ident, a.seq) if a.build else bytes.fromhex(a.hex)
    except ValueError as e:
        print(f"inject.py: not hex: {e}", file=sys.stderr)
        return 2
    try:
        send(a.dev, packet)
    except OSError as e:
        print(f"inject.py: cannot send on {a.dev}: {e}", file=sys.stderr)
        return 1
    print(f"injected {len(packet)} bytes on {a.dev}: {packet.hex()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
