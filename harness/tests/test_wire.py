"""harness/wire.py: the Internet checksum, its incremental update, the builders, flow keys."""

import unittest

from harness import wire

# A real echo request (ping -s 56, id 0x41ae seq 1) as the kernel sent it to 192.0.2.2.
REQUEST = bytes.fromhex(
    "45000054184840004001 9e5d c0000201c0000202".replace(" ", "")
    + "0800" + "0000" + "41ae0001" + "".join(f"{i:02x}" for i in range(56)))


def fixed(packet: bytes) -> bytes:
    out = bytearray(packet)
    wire.fill_checksums(out, 20, wire.ICMP)
    return bytes(out)


class Checksum(unittest.TestCase):
    def test_rfc1071_example(self):
        # RFC 1071 section 3: 0001 f203 f4f5 f6f7 sums to ddf2 (complement 220d).
        self.assertEqual(wire.checksum(bytes.fromhex("0001f203f4f5f6f7")), 0x220D)

    def test_odd_length_pads_a_zero_byte(self):
        self.assertEqual(wire.checksum(b"\x01"), wire.checksum(b"\x01\x00"))

    def test_a_filled_packet_verifies_and_a_spoiled_one_does_not(self):
        packet = fixed(REQUEST)
        self.assertTrue(wire.verifies(packet[:20]))
        self.assertTrue(wire.verifies(packet[20:]))
        self.assertFalse(wire.verifies(wire.spoil(packet, 22)[20:]))
        self.assertFalse(wire.verifies(wire.spoil(packet, 10)[:20]))

    def test_spoil_never_lands_on_an_equivalent_value(self):
        for old in (0xFFFE, 0xFFFF, 0x0000, 0x1234):
            packet = old.to_bytes(2, "big")
            self.assertNotIn(wire.be16(wire.spoil(packet, 0), 0), (old, 0xFFFF if old == 0 else old))

    def test_incremental_matches_a_full_recomputation(self):
        packet = fixed(REQUEST)
        for old_word, new_word in ((0x0800, 0x0000), (0x4001, 0x0501), (0xFFFF, 0x0000)):
            body = bytearray(packet[20:])
            body[0:2] = old_word.to_bytes(2, "big")
            body[2:4] = b"\x00\x00"
            before = wire.checksum(bytes(body))
            body[0:2] = new_word.to_bytes(2, "big")
            after = wire.checksum(bytes(body))
            self.assertEqual(wire.ones_add(wire.incremental(before, old_word, new_word), 0) % 0xFFFF,
                             after % 0xFFFF, (old_word, new_word))

    def test_carry_cases_of_the_fast_prompt(self):
        for ic, want in ((0x1C2A, 0x242A), (0xFA12, 0x0213), (0xF800, 0x0001), (0xFFFE, 0x07FF)):
            self.assertEqual(wire.incremental(ic, 0x0800, 0), want, hex(ic))


class Builders(unittest.TestCase):
    def test_echo_request_has_both_checksums_right(self):
        p = wire.echo_request(0x1234, 7, size=57)
        self.assertEqual(len(p), 20 + 8 + 57)
        self.assertTrue(wire.verifies(p[:20]))
        self.assertTrue(wire.verifies(p[20:]))
        self.assertEqual(wire.echo_key(p.hex()), ("echo", 0x1234, 7))

    def test_udp_and_tcp_checksums_cover_the_pseudo_header(self):
        for packet, proto in ((wire.udp(40000, 7, b"hello"), wire.UDP), (wire.tcp(40000, 9, 1, 0, 0x02), wire.TCP)):
            seg = packet[20:]
            pseudo = wire.pseudo_sum(packet[12:16], packet[16:20], proto, len(seg))
            self.assertTrue(wire.verifies(seg, pseudo))

    def test_options_must_fill_words(self):
        with self.assertRaises(ValueError):
            wire.ipv4(b"", wire.ICMP, options=b"\x01")

    def test_layout(self):
        self.assertEqual(wire.layout(wire.tcp(1, 2, 3, 4, 0x10)), (20, wire.TCP, 40))
        self.assertIsNone(wire.layout(b"\x45\x00"))


class Reading(unittest.TestCase):
    def test_echo_key_of_what_is_not_an_echo(self):
        self.assertIsNone(wire.echo_key("TIMEOUT"))
        self.assertIsNone(wire.echo_key(wire.udp(1, 7, b"x").hex()))
        self.assertIsNone(wire.echo_key("4500"))

    def test_is_hex_packet(self):
        self.assertTrue(wire.is_hex_packet("4500abcd\n"))
        self.assertFalse(wire.is_hex_packet("TIMEOUT"))
        self.assertFalse(wire.is_hex_packet("450"))
        self.assertFalse(wire.is_hex_packet(""))


if __name__ == "__main__":
    unittest.main()
