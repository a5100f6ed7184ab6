#!/usr/bin/env python3
"""A reference IP stack that answers one packet the way prompts/ip-stack.md says.

`answer(packet)` returns `(reply, report)`: the reply packet as bytes, or None when the packet
is owed silence, and a one-line report of what was read and decided. It follows the prompt
step by step, shortcuts included, so a dry run through the real Claude Code client checks
the prompt's arithmetic against the bridge's verdicts and the kernel's checksums:

- A. ICMPv4 echo: addresses swapped, TTL 64, type 0, IPv4 checksum recomputed, ICMP checksum
  = request's + 0x0800 (RFC 1624).
- B. ICMPv6 echo: type 129, checksum = request's - 0x0100 (the pseudo-header's sum is unchanged).
- C. UDP echo to port 7: ports swapped, the request's checksum kept.
- D. UDP to another port: port unreachable quoting the packet (576 / 1280-byte limits); the
  IPv4 checksum by the prompt's shortcut `P + 0xfcfc` when it applies.
- E. TCP without RST: a reset (RFC 9293 §3.10.7.1).

Anything else is silence, with the reason. The bytes and sums come from harness/wire.py;
the dialogue (harness/model/dialogue.py) calls `answer`, and it runs by hand:
`python3 -m harness.model.stack HEX`.
"""

import sys

from harness.wire import addr_name as name, be16, checksum, fold, ones_add, pseudo_sum, verifies

TTL = 64
V4_QUOTE = 576 - 28
V6_QUOTE = 1280 - 48


class Silence(Exception):
    """The packet is owed no reply; the message says why."""


class Ip:
    """The IP layer of a request: family, addresses, transport protocol and message."""

    def __init__(self, packet: bytes):
        if not packet:
            raise Silence("empty packet")
        version = packet[0] >> 4
        if version == 4:
            self.parse_v4(packet)
        elif version == 6:
            self.parse_v6(packet)
        else:
            raise Silence(f"IP version {version}, neither 4 nor 6")
        self.packet = packet

    def parse_v4(self, p: bytes) -> None:
        if len(p) < 20:
            raise Silence(f"too short for an IPv4 header ({len(p)} bytes)")
        ihl = p[0] & 0x0F
        h = ihl * 4
        if ihl < 5 or h > len(p):
            raise Silence(f"bad IHL {ihl}")
        if be16(p, 2) != len(p):
            raise Silence(f"total length {be16(p, 2)} but {len(p)} bytes read")
        if be16(p, 6) & 0x3FFF:
            raise Silence("a fragment")
        if not verifies(p[:h]):
            raise Silence("IPv4 header checksum does not verify")
        src = p[12:16]
        if src in (b"\x00" * 4, b"\xff" * 4) or 0xE0 <= src[0] <= 0xEF:
            raise Silence(f"source {name(src)} is not unicast")
        self.family, self.proto, self.src, self.dst = 4, p[9], src, p[16:20]
        self.msg = p[h:]

    def parse_v6(self, p: bytes) -> None:
        if len(p) < 40:
            raise Silence(f"too short for an IPv6 header ({len(p)} bytes)")
        if be16(p, 4) != len(p) - 40:
            raise Silence(f"payload length {be16(p, 4)} but {len(p) - 40} bytes follow the header")
        src = p[8:24]
        if src == b"\x00" * 16 or src[0] == 0xFF:
            raise Silence(f"source {name(src)} is not unicast")
        self.family, self.proto, self.src, self.dst = 6, p[6], src, p[24:40]
        self.msg = p[40:]

    def pseudo(self, proto: int, length: int) -> int:
        return pseudo_sum(self.src, self.dst, proto, length)

    def reply(self, proto: int, message: bytes) -> bytes:
        """The reply's IP header (new for IPv4, the request's swapped for IPv6) and `message`."""
        if self.family == 4:
            header = bytearray(b"\x45\x00" + (20 + len(message)).to_bytes(2, "big")
                               + b"\x00\x00\x00\x00" + bytes([TTL, proto]) + b"\x00\x00"
                               + self.dst + self.src)
            header[10:12] = checksum(bytes(header)).to_bytes(2, "big")
            return bytes(header) + message
        header = bytearray(self.packet[:40])
        header[4:6] = len(message).to_bytes(2, "big")
        header[6], header[7] = proto, TTL
        header[8:24], header[24:40] = self.dst, self.src
        return bytes(header) + message


def answer(packet: bytes):
    """The reply `packet` is owed (None for silence) and a one-line report."""
    try:
        ip = Ip(packet)
        handler = {(4, 1): icmp_echo, (6, 58): icmpv6_echo, (4, 17): udp, (6, 17): udp,
                   (4, 6): tcp, (6, 6): tcp}.get((ip.family, ip.proto))
        if ip.family == 6 and ip.proto == 44:
            raise Silence("a fragment (IPv6 fragment header)")
        if handler is None:
            raise Silence(f"IPv{ip.family} protocol {ip.proto} is not answered")
        return handler(ip)
    except Silence as why:
        return None, f"Read a {len(packet)}-byte packet owed silence: {why}. Nothing was written."


def echo_request(ip: Ip, label: str, request_type: int, pseudo: int = 0) -> bytes:
    """The ICMP or ICMPv6 (`label`) message of `ip`, checked to be an echo request of
    `request_type` code 0 whose checksum verifies (with `pseudo`, the pseudo-header's sum)."""
    m = ip.msg
    if len(m) < 8:
        raise Silence(f"{label} message too short ({len(m)} bytes)")
    if not verifies(m, pseudo):
        raise Silence(f"{label} checksum does not verify")
    if m[0] != request_type or m[1] != 0:
        raise Silence(f"{label} type {m[0]} code {m[1]} is not an echo request")
    return m


def echo_text(ip: Ip, m: bytes) -> str:
    """What the report says of an echo request: addresses, identifier, sequence, data."""
    return (f"echo request {name(ip.src)} -> {name(ip.dst)}, id 0x{be16(m, 4):04x}, "
            f"seq {be16(m, 6)}, {len(m) - 8} data bytes")


def icmp_echo(ip: Ip):
    """A. The ICMPv4 echo reply."""
    m = echo_request(ip, "ICMP", 8)
    h = len(ip.packet) - len(m)
    out = bytearray(ip.packet)
    out[12:16], out[16:20] = ip.dst, ip.src
    out[8] = TTL
    out[10:12] = b"\x00\x00"
    out[10:12] = checksum(bytes(out[:h])).to_bytes(2, "big")
    out[h] = 0
    ic = ones_add(be16(m, 2), 0x0800)
    out[h + 2:h + 4] = (0 if ic == 0xFFFF else ic).to_bytes(2, "big")
    return bytes(out), (f"A. ICMP {echo_text(ip, m)}; ICMP checksum "
                        f"0x{be16(m, 2):04x} -> 0x{be16(out, h + 2):04x}.")


def icmpv6_echo(ip: Ip):
    """B. The ICMPv6 echo reply."""
    m = echo_request(ip, "ICMPv6", 128, ip.pseudo(58, len(ip.msg)))
    msg = bytearray(m)
    msg[0] = 129
    old = be16(m, 2)
    msg[2:4] = ones_add(old, 0xFFFF - 0x0100).to_bytes(2, "big")
    return ip.reply(58, bytes(msg)), (
        f"B. ICMPv6 {echo_text(ip, m)}; checksum 0x{old:04x} -> 0x{be16(msg, 2):04x}.")


def udp(ip: Ip):
    """C. UDP echo from port 7; D. port unreachable from any other."""
    m = ip.msg
    if len(m) < 8 or be16(m, 4) != len(m):
        raise Silence(f"UDP length field {be16(m, 4) if len(m) >= 6 else '-'} but {len(m)} bytes")
    csum = be16(m, 6)
    if csum == 0 and ip.family == 6:
        raise Silence("UDP checksum 0000 over IPv6")
    if csum != 0 and not verifies(m, ip.pseudo(17, len(m))):
        raise Silence("UDP checksum does not verify")
    sport, dport = be16(m, 0), be16(m, 2)
    flow = f"UDP {name(ip.src)}:{sport} -> {name(ip.dst)}:{dport}"
    if dport == 7:
        msg = m[2:4] + m[0:2] + m[4:]
        return ip.reply(17, msg), f"C. {flow}, {len(m) - 8} data bytes: echoed, checksum 0x{csum:04x} kept."
    return port_unreachable(ip, csum, flow)


def port_unreachable(ip: Ip, udp_checksum: int, flow: str):
    """D. Port unreachable (v4 3/3, v6 1/4) quoting as much of the request as fits."""
    limit = V4_QUOTE if ip.family == 4 else V6_QUOTE
    quote = ip.packet[:limit]
    if ip.family == 4:
        msg = bytearray(b"\x03\x03\x00\x00\x00\x00\x00\x00" + quote)
        if len(quote) == len(ip.packet) and udp_checksum != 0:
            ic = ones_add(fold(ip.pseudo(17, len(ip.msg))), 0xFCFC)  # the prompt's shortcut
        else:
            ic = checksum(bytes(msg))
        msg[2:4] = ic.to_bytes(2, "big")
        proto = 1
    else:
        msg = bytearray(b"\x01\x04\x00\x00\x00\x00\x00\x00" + quote)
        msg[2:4] = checksum(bytes(msg), pseudo_sum(ip.dst, ip.src, 58, len(msg))).to_bytes(2, "big")
        proto = 58
    return ip.reply(proto, bytes(msg)), (
        f"D. {flow}: closed port; port unreachable quoting {len(quote)} bytes, "
        f"checksum 0x{be16(msg, 2):04x}.")


def tcp(ip: Ip):
    """E. A reset from a closed port (RFC 9293 §3.10.7.1); silence for a reset."""
    m = ip.msg
    if len(m) < 20:
        raise Silence(f"TCP segment too short ({len(m)} bytes)")
    d = (m[12] >> 4) * 4
    if d < 20 or d > len(m):
        raise Silence(f"bad TCP data offset {m[12] >> 4}")
    if not verifies(m, ip.pseudo(6, len(m))):
        raise Silence("TCP checksum does not verify")
    flags = m[13]
    sport, dport = be16(m, 0), be16(m, 2)
    flow = f"TCP {name(ip.src)}:{sport} -> {name(ip.dst)}:{dport} flags 0x{flags:02x}"
    if flags & 0x04:
        raise Silence(f"{flow} has RST: never answered")
    seq, ack = int.from_bytes(m[4:8], "big"), int.from_bytes(m[8:12], "big")
    if flags & 0x10:
        rseq, rack, rflags = ack, 0, 0x04
    else:
        seg_len = len(m) - d + (1 if flags & 0x02 else 0) + (1 if flags & 0x01 else 0)
        rseq, rack, rflags = 0, (seq + seg_len) % (1 << 32), 0x14
    seg = bytearray(m[2:4] + m[0:2] + rseq.to_bytes(4, "big") + rack.to_bytes(4, "big")
                    + bytes([0x50, rflags]) + b"\x00" * 6)
    seg[16:18] = checksum(bytes(seg), pseudo_sum(ip.dst, ip.src, 6, 20)).to_bytes(2, "big")
    return ip.reply(6, bytes(seg)), (
        f"E. {flow}: closed port; reset seq {rseq} ack {rack}, checksum 0x{be16(seg, 16):04x}.")


if __name__ == "__main__":
    reply, report = answer(bytes.fromhex("".join(sys.argv[1:])))
    print(report)
    if reply is not None:
        print(reply.hex())
