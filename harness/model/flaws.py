"""Flaws for the scripted model (`--flaw NAME`), to prove the judge.

Each flaw makes the scripted model wrong in one way a real model can be. The scenario
suite (harness/scenarios.py) knows which scenarios each flaw must fail; every other
scenario must still pass. The flaw is applied to the model's turn after the read, so the
model's own reply builders stay as they are:

- `checksum`: the transport checksum of every reply (ICMP, ICMPv6, UDP, TCP) is off by one;
- `data`: one data byte of every reply that carries data is changed, and the checksum is
  patched to match (RFC 1624), so only a comparison of the data can catch it;
- `answer-all`: it answers every packet it reads, also those a stack must drop (bad
  checksums, fragments, ICMP types it does not serve, RSTs): addresses swapped, an ICMP
  request turned into its reply, checksums filled in.
"""

from harness.wire import CHECKSUM_AT, ICMP, ICMPV6, TCP, UDP, fill_checksums, incremental, layout

FLAWS = {
    "checksum": "every reply's ICMP/UDP/TCP checksum is off by one",
    "data": "one data byte of every reply with data is changed (checksum patched to match)",
    "answer-all": "answers every packet it reads, also those a stack must drop",
}


def wrong_checksum(reply: bytes) -> bytes:
    where = layout(reply)
    if where is None or where[1] not in CHECKSUM_AT:
        return reply
    at = where[0] + CHECKSUM_AT[where[1]]
    out = bytearray(reply)
    if at + 2 <= len(out):
        old = int.from_bytes(out[at:at + 2], "big")
        out[at:at + 2] = (old + 1 if old < 0xFFFE else 1).to_bytes(2, "big")
    return bytes(out)


def changed_data(reply: bytes) -> bytes:
    """The last data byte flipped, the checksum patched by RFC 1624 eqn. 3."""
    where = layout(reply)
    if where is None or where[1] not in CHECKSUM_AT or where[2] >= len(reply):
        return reply
    start, proto, _ = where
    out = bytearray(reply)
    last = len(out) - 1
    word = last - (last - start) % 2  # the 16-bit word holding it, aligned to the header
    old = int.from_bytes(out[word:word + 2].ljust(2, b"\x00"), "big")
    out[last] ^= 0x5A
    new = int.from_bytes(out[word:word + 2].ljust(2, b"\x00"), "big")
    at = start + CHECKSUM_AT[proto]
    hc = int.from_bytes(out[at:at + 2], "big")
    out[at:at + 2] = incremental(hc, old, new).to_bytes(2, "big")
    return bytes(out)


def blind_reply(packet: bytes) -> bytes:
    """An answer to anything: addresses swapped (and ports, for UDP/TCP), an ICMP request
    turned into its reply type, IPv4 header and transport checksums filled in."""
    where = layout(packet)
    if where is None:
        return packet
    start, proto, _ = where
    out = bytearray(packet)
    if packet[0] >> 4 == 4:
        out[12:16], out[16:20] = packet[16:20], packet[12:16]
        out[8] = 64
    else:
        out[8:24], out[24:40] = packet[24:40], packet[8:24]
    if proto in (TCP, UDP) and len(out) >= start + 4:
        out[start:start + 2], out[start + 2:start + 4] = packet[start + 2:start + 4], packet[start:start + 2]
    elif proto == ICMP and len(out) > start:
        out[start] = 0 if packet[start] == 8 else packet[start] + 1
    elif proto == ICMPV6 and len(out) > start:
        out[start] = 129 if packet[start] == 128 else packet[start]
    fill_checksums(out, start, proto)
    return bytes(out)


def read_packet(output: str):
    """The packet a read command printed (its last line as hex), or None."""
    lines = output.strip().splitlines()
    try:
        return bytes.fromhex(lines[-1].strip()) if lines else None
    except ValueError:
        return None


def distort(flaw, turn: dict, read_output: str, write_cmd: str, bash_turn) -> dict:
    """The model's turn after a read, with `flaw` applied (the turn itself when no flaw)."""
    if not flaw:
        return turn
    prefix = write_cmd.split("{")[0]
    if turn.get("kind") == "not_answered" and flaw == "answer-all":
        packet = read_packet(read_output)
        if packet is not None:
            reply = blind_reply(packet)
            return bash_turn("Answering it anyway.", write_cmd.format(hex=reply.hex()),
                             "Write a reply to the TUN bridge", "write")
    if turn.get("kind") != "write" or flaw not in ("checksum", "data"):
        return turn
    spoil = wrong_checksum if flaw == "checksum" else changed_data
    content = []
    for block in turn["content"]:
        command = block.get("input", {}).get("command", "") if block["type"] == "tool_use" else ""
        if command.startswith(prefix):
            reply = spoil(bytes.fromhex(command[len(prefix):]))
            block = dict(block, input=dict(block["input"], command=write_cmd.format(hex=reply.hex())))
        content.append(block)
    return dict(turn, content=content)
