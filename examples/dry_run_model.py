#!/usr/bin/env python3
"""A scripted stand-in for the Anthropic Messages API, for dry runs of ping-respond.

Claude Code talks to it through ANTHROPIC_BASE_URL. It plays the model's side of the
ping-respond tool loop without any model: it asks for the prompt's read command as a Bash
tool_use, computes the ICMP echo reply itself from the hex that comes back (RFC 792,
RFC 791, checksums per RFC 1071), asks for the write command, and ends with a short text
report. With the fast prompt (prompts/ping-respond-fast.md) it builds the reply the way
that prompt says, by RFC 1624 incremental update of the request's checksums. Every other
request (titles, summaries, quota checks, small-model calls) gets a short text answer. Each decision is taken from the conversation in the request alone, so
the server keeps no state between requests.

Python 3 standard library only. Usage:

    python3 examples/dry_run_model.py --port 0 --log /tmp/model.jsonl

With --port 0 it picks a free port and prints `listening on http://127.0.0.1:PORT`.
"""

import argparse
import http.server
import itertools
import json
import os
import random
import re
import string
import sys
import threading
import time

import dry_run_flaws
import dry_run_next
import dry_run_stack

READ_CMD = "tunbridge read"
WRITE_CMD = "tunbridge write {hex}"
# The prompt is recognised by this marker in the first user turn; the fast prompt
# (prompts/ping-respond-fast.md) by the second, and then followed step by step.
PROMPT_MARKER = "ping-respond"
FAST_MARKER = "ping-respond-fast"
# prompts/ip-stack.md: every kind of request, answered by examples/dry_run_stack.py.
STACK_MARKER = "ip-stack"
# prompts/ping-serve.md: the same procedure in a loop, for "Packets to serve: N" packets
# (no number: until a read returns TIMEOUT).
SERVE_MARKER = "ping-serve"
SERVE_COUNT = re.compile(r"Packets to serve: *(\d*)")


# ---------------------------------------------------------------- wire (RFC 791/792/1071)

# RFC 1071 and RFC 1624: the same sums as the reference stack's.
checksum, incremental = dry_run_stack.checksum, dry_run_stack.incremental


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


def tool_exchanges(messages):
    """Every (command, tool_result) pair of the conversation, in order."""
    uses, pairs = {}, []
    for msg in messages:
        if not isinstance(msg.get("content"), list):
            continue
        for block in msg["content"]:
            if block.get("type") == "tool_use":
                uses[block.get("id")] = block.get("input", {}).get("command", "")
            elif block.get("type") == "tool_result":
                pairs.append((uses.get(block.get("tool_use_id"), ""), block))
    return pairs


def last_tool_exchange(messages):
    """The last Bash command we asked for and the tool_result that answered it."""
    pairs = tool_exchanges(messages)
    return pairs[-1] if pairs else (None, None)


def opening(body: dict) -> str:
    """The text of the user's opening turn: every user message before the first answer.
    Claude Code 2.1.197 sends a slash command as one message; 2.1.332 puts an @-included
    file in a message of its own before the command's."""
    texts = []
    for msg in body.get("messages", []):
        if msg.get("role") == "assistant":
            break
        if msg.get("role") == "user":
            texts.append(block_text(msg.get("content")))
    return "\n".join(texts)


def procedure(body: dict, read_cmd: str):
    """Which prompt runs the main loop: "stack", "fast", "full", or None when this is no
    main-loop request (Bash must be offered and the prompt must be in the first user turn)."""
    if not any(t.get("name") == "Bash" for t in body.get("tools") or []):
        return None
    first = opening(body)
    if read_cmd in first and STACK_MARKER in first:
        return "stack"
    if PROMPT_MARKER not in first or read_cmd not in first:
        return None
    return "fast" if FAST_MARKER in first else "full"


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
        reply, report = dry_run_stack.answer(packet)
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
    """For ping-serve: (True, N or None) from the first user turn; (False, None) otherwise."""
    first = opening(body)
    match = SERVE_COUNT.search(first)
    if SERVE_MARKER not in first or match is None:
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
    turn = dry_run_next.decide(body, opening(body), answer_echo)
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
        turn = dict(dry_run_flaws.distort(cfg.flaw, turn, output, cfg.write_cmd, bash_turn), procedure=how)
        return serve_next(turn, body, cfg)
    if command.startswith(cfg.write_cmd.split("{")[0]):
        return serve_next(after_write(output, command, cfg.write_cmd, how), body, cfg)
    return text_turn(f"Unexpected tool result for `{command}`; stopping.", "unexpected")


# ---------------------------------------------------------------- HTTP and SSE

def usage_for(body_len: int, turn: dict) -> dict:
    out = max(1, len(json.dumps(turn["content"])) // 4)
    return {"input_tokens": max(1, body_len // 4), "output_tokens": out,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}


def sse_events(msg: dict, turn: dict):
    """The streaming events for one assistant message, as (event, data) pairs."""
    start = dict(msg, content=[], stop_reason=None, stop_sequence=None,
                 usage=dict(msg["usage"], output_tokens=1))
    yield "message_start", {"type": "message_start", "message": start}
    for i, block in enumerate(turn["content"]):
        if block["type"] == "text":
            yield "content_block_start", {"type": "content_block_start", "index": i,
                                          "content_block": {"type": "text", "text": ""}}
            yield "content_block_delta", {"type": "content_block_delta", "index": i,
                                          "delta": {"type": "text_delta", "text": block["text"]}}
        else:
            head = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            yield "content_block_start", {"type": "content_block_start", "index": i, "content_block": head}
            raw = json.dumps(block["input"])
            for k in range(0, len(raw), 64):
                yield "content_block_delta", {"type": "content_block_delta", "index": i,
                                              "delta": {"type": "input_json_delta", "partial_json": raw[k:k + 64]}}
        yield "content_block_stop", {"type": "content_block_stop", "index": i}
    yield "message_delta", {"type": "message_delta",
                            "delta": {"stop_reason": turn["stop_reason"], "stop_sequence": None},
                            "usage": {"output_tokens": msg["usage"]["output_tokens"]}}
    yield "message_stop", {"type": "message_stop"}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "dry-run-model/1"

    def log_message(self, fmt, *args):
        pass

    def send_json(self, status: int, obj) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_HEAD(self):
        self.server.record(self, b"", {}, "probe")
        self.send_json(200, {})

    def do_GET(self):
        self.server.record(self, b"", {}, "unknown")
        self.send_json(404, {"type": "error", "error": {"type": "not_found_error", "message": self.path}})

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            self.answer(raw)
        except Exception as err:  # a bug here must not leave the client waiting
            self.server.record(self, raw, {}, f"error: {err!r}")
            self.send_json(500, {"type": "error", "error": {"type": "api_error", "message": repr(err)}})

    def answer(self, raw: bytes) -> None:
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self.server.record(self, raw, {}, "bad_json")
            return self.send_json(400, {"type": "error",
                                        "error": {"type": "invalid_request_error", "message": "bad JSON"}})
        path = self.path.split("?")[0]
        if path.endswith("/count_tokens"):
            self.server.record(self, raw, body, "count_tokens")
            return self.send_json(200, {"input_tokens": max(1, len(raw) // 4)})
        if not path.endswith("/v1/messages"):
            self.server.record(self, raw, body, "unknown")
            return self.send_json(404, {"type": "error", "error": {"type": "not_found_error", "message": path}})
        turn = decide(body, self.server.cfg)
        self.server.record(self, raw, body, turn["kind"], turn)
        msg = {"id": "msg_dry" + "".join(random.choices(string.digits, k=16)), "type": "message",
               "role": "assistant", "model": body.get("model", "dry-run"),
               "content": turn["content"], "stop_reason": turn["stop_reason"],
               "stop_sequence": None, "usage": usage_for(len(raw), turn)}
        if not body.get("stream"):
            return self.send_json(200, msg)
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        for event, data in sse_events(msg, turn):
            self.wfile.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
        self.wfile.flush()
        self.close_connection = True


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr, cfg):
        super().__init__(addr, Handler)
        self.cfg = cfg
        self.counter = itertools.count(1)
        self.lock = threading.Lock()

    def record(self, handler, raw: bytes, body: dict, kind: str, turn=None) -> None:
        """One JSON line per request to --log; the full body to --dump-dir."""
        with self.lock:
            n = next(self.counter)
            entry = {
                "n": n, "time": round(time.time(), 3), "method": handler.command, "path": handler.path,
                "bytes": len(raw), "model": body.get("model"), "stream": body.get("stream"),
                "tools": len(body.get("tools") or []), "messages": len(body.get("messages") or []),
                "answer": kind, "thinking": body.get("thinking"),
            }
            if turn is not None and "procedure" in turn:
                entry["procedure"] = turn["procedure"]
            if turn is not None:
                entry["tool_use"] = [b["input"].get("command", b["name"]) for b in turn["content"]
                                     if b["type"] == "tool_use"]
            if self.cfg.log:
                with open(self.cfg.log, "a") as f:
                    f.write(json.dumps(entry) + "\n")
            if self.cfg.dump_dir and raw:
                with open(os.path.join(self.cfg.dump_dir, f"{n:03d}.json"), "wb") as f:
                    f.write(raw)
            if self.cfg.verbose:
                print(json.dumps(entry), file=sys.stderr, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback only)")
    ap.add_argument("--port", type=int, default=0, help="port to listen on; 0 picks a free one")
    ap.add_argument("--log", help="append one JSON line per request to this file; `answer` is what we "
                    "answered: read, write, replied, timeout, not_answered, bad_read, refused, "
                    "write_failed, unexpected, served (ping-serve's final report), side, probe, "
                    "count_tokens")
    ap.add_argument("--dump-dir", help="write each request body to DIR/NNN.json")
    ap.add_argument("--read-cmd", default=READ_CMD, help="the prompt's read command, exactly")
    ap.add_argument("--write-cmd", default=WRITE_CMD, help="the prompt's write command; {hex} is the reply")
    ap.add_argument("--flaw", choices=sorted(dry_run_flaws.FLAWS),
                    help="be wrong on purpose, to prove the judge: " + "; ".join(
                        f"{k}: {v}" for k, v in dry_run_flaws.FLAWS.items()))
    ap.add_argument("-v", "--verbose", action="store_true", help="print each log line to stderr too")
    cfg = ap.parse_args()
    if cfg.dump_dir:
        os.makedirs(cfg.dump_dir, exist_ok=True)
    server = Server((cfg.host, cfg.port), cfg)
    print(f"listening on http://{cfg.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
