"""One Claude Code run's event stream: timestamped while it runs, read back afterwards.

Claude Code prints its events with `--output-format stream-json --verbose
--include-partial-messages`, one JSON object a line, without times. While it runs, a
`Stamp` takes each line as it arrives and writes it to claude-N.jsonl as
`<unix time>\t<json>` (text and thinking deltas left out), the final `result` object to
claude-N.json (the same JSON `--output-format json` prints), and keeps a `Tracker` whose
`phase` the progress line shows ("model turn 2", "waiting in READ", "tool: tunbridge
write") and whose `seq` names the packet the agent holds.

Afterwards `load(path)` gives the run as model requests (start, first byte, end, tokens,
the model as the API named it) and tool calls (start, end, command, output, and for a read
or write of a packet its flow key), which harness/bundle.py turns into the table and the
timeline.
"""

import json
import os
import time

from harness.wire import echo_key, is_hex_packet

READ = "tunbridge read"
WRITE = "tunbridge write "


def tool_output(block) -> str:
    content = block.get("content")
    if isinstance(content, list):
        return "\n".join(c.get("text", "") for c in content if c.get("type") == "text")
    return content or ""


class Tracker:
    """Follows the events of one run: model requests, tool calls, and the phase now."""

    def __init__(self):
        self.start = None        # when the client said it started (system/init)
        self.requests = []       # {start, first_byte, end, usage, output_tokens, tools}
        self.tools = {}          # tool_use id -> {start, end, command, output, is_error, key}
        self.order = []          # tool_use ids in call order
        self.result = None
        self.seq, self.since, self.turn, self.phase = "-", None, 0, "client starting"
        self.models = []         # the model of each answer, as the API named it

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
            model = (e.get("message") or {}).get("model")
            if model and model not in self.models:
                self.models.append(model)
        elif e.get("type") == "message_delta":
            req["output_tokens"] = (e.get("usage") or {}).get("output_tokens")
        elif e.get("type") == "message_stop":
            req["end"] = t

    def tool_use(self, t: float, block: dict) -> None:
        command = (block.get("input") or {}).get("command", block.get("name", "?"))
        key = echo_key(command[len(WRITE):]) if command.startswith(WRITE) else None
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
        if call["command"] == READ and is_hex_packet(output):
            call["key"] = echo_key(output)
            self.seq = str(call["key"][2]) if call["key"] else "?"
            self.since, self.turn = t, 0
            self.phase = "packet read"

    def calls(self) -> list:
        return [self.tools[i] for i in self.order]

    def packets(self) -> list:
        """The reads that returned a packet, in order."""
        return [c for c in self.calls() if c["command"] == READ and c["output"] and is_hex_packet(c["output"])]


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


class Stamp:
    """Timestamps a live stream-json run into `out` (and its result into `result`)."""

    def __init__(self, out: str, result: str = None):
        self.tracker = Tracker()
        self.result = result
        self.file = open(out, "w")

    def line(self, line: str, t: float = None) -> None:
        """Takes one line of the client's stdout."""
        t = time.time() if t is None else t
        try:
            ev = json.loads(line)
        except ValueError:
            if line.strip():
                self.file.write(f"{t:.6f}\t{json.dumps({'type': 'unparsed', 'text': line.rstrip()})}\n")
            return
        if not isinstance(ev, dict):
            return
        inner = ev.get("event") or {}
        if ev.get("type") == "stream_event" and inner.get("type") == "content_block_delta":
            return
        self.file.write(f"{t:.6f}\t{line.rstrip()}\n")
        self.file.flush()
        self.tracker.feed(t, ev)
        if ev.get("type") == "result" and self.result:
            write_atomic(self.result, json.dumps(ev) + "\n")

    def close(self) -> None:
        self.file.close()
