"""Puts exact bytes on the wire from the host side of the namespace, for the packets the
kernel will not send: a bad IPv4 header checksum, a bad ICMP or UDP checksum, an ICMP
timestamp request, a first fragment, a TCP RST out of nowhere.

An AF_PACKET socket bound to the TUN interface hands the bytes to the device unchanged,
so the bridge reads them as they are. (A raw IPv4 socket with IP_HDRINCL would fill in
the header checksum and so could not send a bad one.) Run it inside the namespace, as
root:

    ip netns exec NS python3 -m harness.inject --dev tun0 4500001c...
    ip netns exec NS python3 -m harness.inject --dev tun0 --build bad-ip-checksum

The builders below make well-formed packets from the host side (192.0.2.1) to the agent
(192.0.2.2) with harness/wire.py and then spoil exactly one thing.
"""

import socket
import struct
import sys
import time

from harness import ArgumentParser
from harness.wire import IP_MF, echo_data, echo_request, icmp, ipv4, spoil, tcp, udp

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD


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


def main(argv=None) -> int:
    ap = ArgumentParser(prog="python3 -m harness.inject", description=__doc__.splitlines()[0])
    ap.add_argument("--dev", default="tun0", help="the TUN interface, inside this namespace")
    ap.add_argument("--build", choices=sorted(BUILDERS), help="build this packet instead of taking hex")
    ap.add_argument("--ident", type=lambda s: int(s, 0), default=0x5a17, help="ICMP identifier")
    ap.add_argument("--seq", type=int, default=1, help="ICMP sequence number")
    ap.add_argument("hex", nargs="?", help="the packet as hex (spaces allowed)")
    a = ap.parse_args(argv)
    if bool(a.build) == bool(a.hex):
        ap.error("give either --build NAME or the packet's hex")
    try:
        packet = BUILDERS[a.build](a.ident, a.seq) if a.build else bytes.fromhex(a.hex)
    except ValueError as e:
        print(f"harness.inject: not hex: {e}", file=sys.stderr)
        return 2
    try:
        send(a.dev, packet)
    except OSError as e:
        print(f"harness.inject: cannot send on {a.dev}: {e}", file=sys.stderr)
        return 1
    print(f"injected {len(packet)} bytes on {a.dev}: {packet.hex()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
