#!/usr/bin/env python3
"""One Claude Code run's event stream: timestamped while it runs, read back afterwards.

Claude Code prints its events with `--output-format stream-json --verbose
--include-partial-messages`, one JSON object a line, without times. While it runs,

    claude ... | session.py stamp --out claude-N.jsonl --result claude-N.json --status FILE

writes each line to --out as `<unix time>\\t<json>` (text and thinking deltas left out),
the final `result` object to --result (the same JSON `--output-format json` prints), and
one status line to --status after every event, `<seq>\\t<since>\\t<phase>`: the ICMP
sequence number of the packet the agent holds (`-` before the first), when it got it, and
what the client is doing ("model turn 2", "waiting in READ", "tool: tunbridge write").

Afterwards `load(path)` gives the run as model requests (start, first byte, end, tokens)
and tool calls (start, end, command, output, and for a read or write of a packet its flow
key), which experiment_table.py turns into the table and the timeline. `session.py
packets FILE` prints how many reads returned a packet. Stdlib only.
"""

import argparse
import json
import os
import sys
import time

READ = "tunbridge read"
WRITE = "tunbridge write "


def flow_key(packet_hex: str):
    """The flow key ("echo", identifier, sequence) of an IPv4 ICMP echo packet as hex, or None."""
    try:
        p = bytes.fromhex(packet_hex.strip())
    except ValueError:
        return None
    if len(p) < 20 or p[0] >> 4 != 4 or p[9] != 1:
        return None
    h = (p[0] & 0x0F) * 4
    if len(p) < h + 8 or p[h] not in (0, 8):
        return None
    return ("echo", int.from_bytes(p[h + 4:h + 6], "big"), int.from_bytes(p[h + 6:h + 8], "big"))


def tool_output(block) -> str:
    content = block.get("content")
    if isinstance(content, list):
        return "\n".join(c.get("text", "") for c in content if c.get("type") == "text")
    return content or ""


def is_packet(output: str) -> bool:
    text = output.strip()
    return bool(text) and len(text) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in text)


class Tracker:
    """Follows the events of one run: model requests, tool calls, and the phase now."""

    def __init__(self):
        self.start = None        # when the client said it started (system/init)
        self.requests = []       # {start, first_byte, end, usage, output_tokens, tools}
        self.tools = {}          # tool_use id -> {start, end, command, output, is_error, key}
        self.order = []          # tool_use ids in call order
        self.result = None
        self.seq, self.since, self.turn, self.phase = "-", None, 0, "client starting"

    def feed(self, t: float, ev: dict) -> None:
        kind, sub = ev.get("type"), ev.get("subtype")
        if kind == "system" and sub == "init":
            self.start = t
            self.since = self.since or t
            self.phase = "client started"
        elif kind == "system" and ev.get("status") == "requesting":
            self.turn += 1
            self.requests.append({"start": t, "first_byte": None, "end": None, "usage": {},
                                  "output_tokens": None, "tools": []})
            self.phase = f"model turn {self.turn}"
        elif kind == "stream_event":
            self.stream_event(t, ev.get("event") or {})
        elif kind == "assistant":
            for block in (ev.get("message") or {}).get("content") or []:
                if block.get("type") == "tool_use":
                    self.tool_use(t, block)
        elif kind == "user":
            content = (ev.get("message") or {}).get("content")
            for block in content if isinstance(content, list) else []:
                if block.get("type") == "tool_result":
                    self.tool_result(t, block)
        elif kind == "result":
            self.result = ev
            self.phase = "done"

    def stream_event(self, t: float, e: dict) -> None:
        if not self.requests:
            return
        req = self.requests[-1]
        if e.get("type") == "message_start":
            req["first_byte"] = t
            req["usage"] = (e.get("message") or {}).get("usage") or {}
        elif e.get("type") == "message_delta":
            req["output_tokens"] = (e.get("usage") or {}).get("output_tokens")
        elif e.get("type") == "message_stop":
            req["end"] = t

    def tool_use(self, t: float, block: dict) -> None:
        command = (block.get("input") or {}).get("command", block.get("name", "?"))
        key = flow_key(command[len(WRITE):]) if command.startswith(WRITE) else None
        self.tools[block.get("id")] = {"start": t, "end": None, "command": command,
                                       "output": None, "is_error": False, "key": key}
        self.order.append(block.get("id"))
        if self.requests:
            self.requests[-1]["tools"].append(block.get("id"))
        self.phase = "waiting in READ" if command == READ else f"tool: {command[:24]}"

    def tool_result(self, t: float, block: dict) -> None:
        call = self.tools.get(block.get("tool_use_id"))
        if call is None:
            return
        output = tool_output(block)
        call.update(end=t, output=output, is_error=bool(block.get("is_error")))
        if call["command"] == READ and is_packet(output):
            call["key"] = flow_key(output)
            self.seq = str(call["key"][2]) if call["key"] else "?"
            self.since, self.turn = t, 0
            self.phase = "packet read"

    def calls(self) -> list:
        return [self.tools[i] for i in self.order]

    def packets(self) -> list:
        """The reads that returned a packet, in order."""
        return [c for c in self.calls() if c["command"] == READ and c["output"] and is_packet(c["output"])]


def load(path: str) -> Tracker:
    """Reads a stamped stream file back into a Tracker (empty when there is no file)."""
    tracker = Tracker()
    if not os.path.exists(path):
        return tracker
    with open(path) as f:
        for line in f:
            stamp, _, text = line.partition("\t")
            try:
                tracker.feed(float(stamp), json.loads(text))
            except ValueError:
                continue
    return tracker


def write_atomic(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def stamp(args) -> None:
    tracker = Tracker()
    with open(args.out, "w") as out:
        for line in sys.stdin:
            t = time.time()
            try:
                ev = json.loads(line)
            except ValueError:
                out.write(f"{t:.6f}\t{json.dumps({'type': 'unparsed', 'text': line.rstrip()})}\n")
                continue
            inner = ev.get("event") or {}
            if ev.get("type") == "stream_event" and inner.get("type") == "content_block_delta":
                continue
            out.write(f"{t:.6f}\t{line.rstrip()}\n")
            out.flush()
            tracker.feed(t, ev)
            if tracker.result is not None and args.result:
                write_atomic(args.result, json.dumps(tracker.result) + "\n")
            if args.status:
                since = tracker.since or t
                write_atomic(args.status, f"{tracker.seq}\t{since:.3f}\t{tracker.phase}\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("stamp", help="timestamp a live stream-json run")
    s.add_argument("--out", required=True)
    s.add_argument("--result")
    s.add_argument("--status")
    p = sub.add_parser("packets", help="how many reads returned a packet")
    p.add_argument("file")
    args = ap.parse_args()
    if args.cmd == "stamp":
        stamp(args)
    else:
        print(len(load(args.file).packets()))


if __name__ == "__main__":
    main()
