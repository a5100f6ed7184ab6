"""The scripted model's side of the prompts' tool loop: the next assistant turn for a request.

`decide(body, cfg)` reads the conversation in a Messages API request and returns the turn a
model following the prompt would give: ask for the prompt's read command as a Bash
tool_use, build the reply from the hex that comes back (ping-respond.md by full
recomputation, RFC 791/792/1071; ping-respond-fast.md by RFC 1624 incremental update, as
lwIP/uIP do; ip-stack.md through the reference stack, harness/model/stack.py), ask for the
write command, and end with a short text report; under /ping-serve, go back to the read
until N packets are served. Every other request (titles, summaries, quota checks) gets a
short text. Each decision is taken from the conversation in the request alone, so the
model keeps no state between requests. A turn is a dict: `content` (the blocks),
`stop_reason`, and `kind`, the outcome the request log names.
"""

import random
import string

from harness.model import flaws, onecall, stack
from harness.wire import checksum, incremental

READ_CMD = "tunbridge read"
WRITE_CMD = "tunbridge write {hex}"
# The prompt is recognised by its heading in the opening user turn (opening_text,
# onecall.prompts); the fast
# prompt (prompts/ping-respond-fast.md) by the second, and then followed step by step.
PROMPT_MARKER = "ping-respond"
FAST_MARKER = "ping-respond-fast"
# prompts/ip-stack.md: every kind of request, answered by harness/model/stack.py.
STACK_MARKER = "ip-stack"
# prompts/ping-serve.md: the same procedure in a loop, for "Packets to serve: N" packets
# (no number: until a read returns TIMEOUT; the line is read as the one-call prompts' is,
# onecall.SERVE_COUNT).
SERVE_MARKER = "ping-serve"


# ---------------------------------------------------------------- the ping-respond procedures

class NotAnswerable(Exception):
    """The packet is not an IPv4 ICMP echo request that we may answer."""


def check_request(packet: bytes, verify_icmp: bool) -> int:
    """Check that `packet` is an echo request we may answer; return its header length."""
    if len(packet) < 20:
        raise NotAnswerable(f"too short for an IPv4 header ({len(packet)} bytes)")
    version, ihl = packet[0] >> 4, packet[0] & 0x0F
    if version != 4:
        raise NotAnswerable(f"IP version {version}, not 4")
    hlen = ihl * 4
    total = int.from_bytes(packet[2:4], "big")
    if ihl < 5 or hlen > len(packet):
        raise NotAnswerable(f"bad IHL {ihl}")
    if total != len(packet):
        raise NotAnswerable(f"total length {total} but {len(packet)} bytes read")
    if checksum(packet[:hlen]) != 0:
        raise NotAnswerable("IPv4 header checksum does not verify")
    if int.from_bytes(packet[6:8], "big") & 0x3FFF:
        raise NotAnswerable("fragmented packet")
    if packet[9] != 1:
        raise NotAnswerable(f"protocol {packet[9]}, not ICMP (1)")
    icmp = packet[hlen:]
    if len(icmp) < 8:
        raise NotAnswerable(f"ICMP message too short ({len(icmp)} bytes)")
    if verify_icmp and checksum(icmp) != 0:
        raise NotAnswerable("ICMP checksum does not verify")
    if icmp[0] != 8 or icmp[1] != 0:
        raise NotAnswerable(f"ICMP type {icmp[0]} code {icmp[1]}, not an echo request")
    return hlen


def echo_reply(packet: bytes) -> tuple[bytes, dict]:
    """Build the IPv4 ICMP echo reply to `packet` by full recomputation (ping-respond.md)."""
    hlen = check_request(packet, verify_icmp=True)
    icmp = packet[hlen:]
    ip = bytearray(packet[:hlen])
    ip[12:16], ip[16:20] = packet[16:20], packet[12:16]
    ip[8] = 64
    ip[10:12] = b"\x00\x00"
    ip[10:12] = checksum(bytes(ip)).to_bytes(2, "big")
    reply = bytearray(icmp)
    reply[0] = 0
    reply[2:4] = b"\x00\x00"
    reply[2:4] = checksum(bytes(reply)).to_bytes(2, "big")
    return bytes(ip) + bytes(reply), reply_summary(packet, bytes(ip) + bytes(reply))


def echo_reply_fast(packet: bytes) -> tuple[bytes, dict]:
    """Build the echo reply the way ping-respond-fast.md says (and lwIP/uIP do).

    The addresses swap (the header's sum is unchanged), the TTL word goes to 0x4001
    (the IPv4 checksum is patched only when the TTL was not already 64), and the ICMP
    type word goes from 0x0800 to 0x0000 (the ICMP checksum is patched). Neither
    checksum is recomputed; the ICMP message is never summed, as in uIP.
    """
    hlen = check_request(packet, verify_icmp=False)
    out = bytearray(packet)
    out[12:16], out[16:20] = packet[16:20], packet[12:16]
    hc = int.from_bytes(packet[10:12], "big")
    old_ttl_word = int.from_bytes(packet[8:10], "big")
    out[8] = 64
    if packet[8] != 64:
        hc = incremental(hc, old_ttl_word, int.from_bytes(out[8:10], "big"))
    out[10:12] = hc.to_bytes(2, "big")
    ic = int.from_bytes(packet[hlen + 2:hlen + 4], "big")
    out[hlen] = 0
    out[hlen + 2:hlen + 4] = incremental(ic, 0x0800, 0x0000).to_bytes(2, "big")
    return bytes(out), reply_summary(packet, bytes(out))


def reply_summary(packet: bytes, reply: bytes) -> dict:
    """The fields the report names, from a request and the reply built to it."""
    hlen = (packet[0] & 0x0F) * 4
    icmp, ip = packet[hlen:], reply[:hlen]
    fields = {
        "src": ".".join(str(b) for b in packet[12:16]),
        "dst": ".".join(str(b) for b in packet[16:20]),
        "id": int.from_bytes(icmp[4:6], "big"),
        "seq": int.from_bytes(icmp[6:8], "big"),
        "data_len": len(icmp) - 8,
        "ip_checksum": int.from_bytes(ip[10:12], "big"),
        "icmp_checksum": int.from_bytes(reply[hlen + 2:hlen + 4], "big"),
    }
    return fields


# ---------------------------------------------------------------- the scripted dialogue

def block_text(content) -> str:
    """The text of a message's or a tool_result's content (string or list of blocks)."""
    if isinstance(content, str):
        return content
    parts = []
    for block in content or []:
        if block.get("type") == "text":
            parts.append(block.get("text", ""))
        elif block.get("type") == "tool_result":
            parts.append(block_text(block.get("content")))
    return "\n".join(parts)


def tool_id() -> str:
    return "toolu_01" + "".join(random.choices(string.ascii_letters + string.digits, k=22))


def text_turn(text: str, kind: str) -> dict:
    """A final text answer; `kind` names the outcome in the request log."""
    return {"content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "kind": kind}


def bash_turn(say: str, command: str, description: str, kind: str) -> dict:
    return {
        "content": [
            {"type": "text", "text": say},
            {"type": "tool_use", "id": tool_id(), "name": "Bash",
             "input": {"command": command, "description": description}},
        ],
        "stop_reason": "tool_use",
        "kind": kind,
    }


def tool_calls(messages) -> list:
    """Every (tool_use id, command, tool_result block) of the conversation, in order; the
    command is None for a result whose tool_use the conversation no longer holds."""
    def command(use):
        return None if use is None else (use.get("input") or {}).get("command", "")
    return [(result.get("tool_use_id"), command(use), result) for use, result in onecall.exchanges(messages)]


def tool_exchanges(messages):
    """Every (command, tool_result) pair of the conversation, in order."""
    return [(command or "", result) for _, command, result in tool_calls(messages)]


def last_tool_exchange(messages):
    """The last Bash command we asked for and the tool_result that answered it."""
    pairs = tool_exchanges(messages)
    return pairs[-1] if pairs else (None, None)


def opening_text(body: dict) -> str:
    """The user's opening turn: the text of every user message before the first assistant
    message. A prompt's `@file` include comes in a message of its own: Claude Code 2.1.318
    and later send it as a user message before the command's, 2.1.197 with the role
    `system` after it; so the procedure and the command's arguments may be in different
    messages."""
    parts = []
    for m in body.get("messages", []):
        if m.get("role") == "assistant":
            break
        parts.append(block_text(m.get("content")))
    return "\n".join(parts)


def procedure(body: dict, read_cmd: str):
    """Which prompt runs the main loop: "stack", "fast", "full", or None when this is no
    main-loop request (Bash must be offered and the prompt must be in the opening turn)."""
    if not any(t.get("name") == "Bash" for t in body.get("tools") or []):
        return None
    first = opening_text(body)
    named = onecall.prompts(first)
    if read_cmd in first and STACK_MARKER in named:
        return "stack"
    if not named & {PROMPT_MARKER, FAST_MARKER} or read_cmd not in first:
        return None
    return "fast" if FAST_MARKER in named else "full"


def after_read(output: str, write_cmd: str, how: str) -> dict:
    line = output.strip().splitlines()[-1].strip() if output.strip() else ""
    if line == "TIMEOUT":
        return text_turn("No packet arrived: the read returned TIMEOUT. Nothing was written.", "timeout")
    try:
        packet = bytes.fromhex(line) if line else None
    except ValueError:
        packet = None
    if packet is None:
        return text_turn(f"The read did not return hex or TIMEOUT: {line[:120]!r}. "
                         "Nothing was written.", "bad_read")
    if how == "stack":
        reply, report = stack.answer(packet)
        if reply is None:
            return text_turn(report, "not_answered")
        return bash_turn(report, write_cmd.format(hex=reply.hex()), "Write the reply to the TUN bridge", "write")
    reply, say = answer_echo(packet, echo_reply_fast if how == "fast" else echo_reply)
    if reply is None:
        return text_turn(say, "not_answered")
    return bash_turn(say, write_cmd.format(hex=reply.hex()), "Write the echo reply to the TUN bridge", "write")


def answer_echo(packet: bytes, build=echo_reply) -> tuple:
    """The echo reply to `packet` and one line on it; (None, why) when it is not answered."""
    try:
        reply, f = build(packet)
    except NotAnswerable as why:
        return None, f"Read a {len(packet)}-byte packet that I will not answer: {why}."
    return reply, (f"Echo request {f['src']} -> {f['dst']}, id 0x{f['id']:04x}, seq {f['seq']}, "
                   f"{f['data_len']} data bytes. Reply: IPv4 checksum 0x{f['ip_checksum']:04x}, "
                   f"ICMP checksum 0x{f['icmp_checksum']:04x}.")


def after_write(output: str, command: str, write_cmd: str, how: str) -> dict:
    status = output.strip().splitlines()[-1].strip() if output.strip() else "(no output)"
    if how == "stack":
        kind = "replied" if status == "OK" else "write_failed"
        return text_turn(f"Wrote the reply; the write returned {status!r}.", kind)
    hexpart = command[len(write_cmd.split("{")[0]):]
    f = reply_fields("".join(c for c in hexpart if c in string.hexdigits))
    if status == "OK" and f:
        return text_turn(f"Replied to the echo request from {f['dst']} (id 0x{f['id']:04x}, "
                         f"seq {f['seq']}): write returned OK.", "replied")
    return text_turn(f"The write returned {status!r}; the reply was not accepted.", "write_failed")


def reply_fields(hexstr: str):
    """Destination, identifier and sequence of a reply we built, or None."""
    try:
        reply = bytes.fromhex(hexstr)
        hlen = (reply[0] & 0x0F) * 4
        return {"dst": ".".join(str(b) for b in reply[16:20]),
                "id": int.from_bytes(reply[hlen + 4:hlen + 6], "big"),
                "seq": int.from_bytes(reply[hlen + 6:hlen + 8], "big")}
    except (ValueError, IndexError):
        return None


def serve_limit(body: dict):
    """For ping-serve: (True, N or None) from the opening turn; (False, None) otherwise."""
    first = opening_text(body)
    match = onecall.SERVE_COUNT.search(first)
    if SERVE_MARKER not in onecall.prompts(first) or match is None:
        return False, None
    return True, int(match.group(1)) if match.group(1) else None


def served(messages, cfg) -> list:
    """ping-serve's one line per packet so far, from the reads that returned a packet."""
    lines = []
    for command, result in tool_exchanges(messages):
        output = block_text(result.get("content")).strip()
        if command == cfg.read_cmd and output and all(c in string.hexdigits for c in output):
            data = len(output) // 2 - (int(output[1], 16) * 4 if len(output) > 1 else 0) - 8
            lines.append(f"#{len(lines) + 1} {data} B read")
        elif command.startswith(cfg.write_cmd.split("{")[0]) and lines:
            f = reply_fields("".join(c for c in command.split()[-1] if c in string.hexdigits)) or {}
            lines[-1] = (f"#{len(lines)} id 0x{f.get('id', 0):04x} seq {f.get('seq', 0)}, "
                         f"{lines[-1].split()[1]} B: {output.splitlines()[-1] if output else '?'}")
    return lines


def serve_next(turn: dict, body: dict, cfg) -> dict:
    """ping-serve: after a packet is done, read the next one unless the count is reached;
    after TIMEOUT or a failed read, end with the one-line-per-packet report."""
    serving, limit = serve_limit(body)
    if not serving or turn["kind"] not in ("replied", "not_answered", "timeout", "bad_read"):
        return turn
    lines = served(body.get("messages", []), cfg)
    if turn["kind"] in ("replied", "not_answered") and (limit is None or len(lines) < limit):
        said = turn["content"][0]["text"] if turn["kind"] == "not_answered" else lines[-1]
        return bash_turn(said, cfg.read_cmd, "Read the next packet", "read")
    why = {"timeout": "a read returned TIMEOUT", "bad_read": "a read failed"}.get(
        turn["kind"], f"{limit} packets served")
    return text_turn("\n".join(lines + [f"Stopped: {why}."]), "served")


def decide(body: dict, cfg) -> dict:
    """The next assistant turn for this request."""
    # The one-call prompts (one tool call per packet, Bash --next or MCP) have their own.
    turn = onecall.decide(body, opening_text(body), answer_echo)
    if turn is not None:
        return turn
    how = procedure(body, cfg.read_cmd)
    if how is None:
        return text_turn("OK.", "side")
    command, result = last_tool_exchange(body.get("messages", []))
    if result is None:
        return bash_turn("Step 1: reading one packet from the bridge.", cfg.read_cmd,
                         "Read one packet from the TUN bridge", "read")
    output = block_text(result.get("content"))
    if result.get("is_error"):
        return text_turn(f"The command `{command}` was not run: {output.strip()[:300]}", "refused")
    if command == cfg.read_cmd:
        turn = after_read(output, cfg.write_cmd, how)
        turn = dict(flaws.distort(cfg.flaw, turn, output, cfg.write_cmd, bash_turn), procedure=how)
        return serve_next(turn, body, cfg)
    if command.startswith(cfg.write_cmd.split("{")[0]):
        return serve_next(after_write(output, command, cfg.write_cmd, how), body, cfg)
    return text_turn(f"Unexpected tool result for `{command}`; stopping.", "unexpected")
