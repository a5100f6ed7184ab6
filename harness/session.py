"""One Claude Code run's event stream: timestamped while it runs, read back afterwards.

Claude Code prints its events with `--output-format stream-json --verbose
--include-partial-messages`, one JSON object a line, without times. While it runs, a
`Stamp` takes each line as it arrives and writes it to claude-N.jsonl as
`<unix time>\t<json>` (text and thinking deltas left out), the final `result` object to
claude-N.json (the same JSON `--output-format json` prints), and keeps a `Tracker` whose
`phase` the progress line shows ("model turn 2", "waiting in READ", "tool: tunbridge
write") and whose `seq` names the packet the agent holds.

Afterwards `load(path)` gives the run as model requests (start, first byte, end, tokens,
the model as the API named it, and whether its stream was cut) and tool calls (start, end,
command, output, whether the permissions refused it, and for a read or write of a packet its
flow key), which harness/bundle.py turns into the table and the timeline; and what the client
said of its own troubles: its retries (`system`/`api_retry`: attempt, HTTP status, error),
a switch to the fallback model (`system`/`model_fallback`), its refusals (`permission_denied`
events of 2.1.332, and the result's `permission_denials`), which harness/fates.py reads.
"""

import json
import os
import time

from harness.wire import echo_key, is_hex_packet

READ = "tunbridge read"
WRITE = "tunbridge write "
# How Claude Code words a refusal in the tool result (default permission mode; auto mode's
# classifier; a hook or a rule): "This command requires approval", "... The following parts
# require approval: ...", "Permission for this action was denied ...".
REFUSED = ("requires approval", "require approval", "Permission for this action was denied",
           "permission to use", "was blocked")


def is_read(command: str) -> bool:
    """`tunbridge read`, or the README's raw FIFO form (`echo "READ" > ... && ... cat ...`)."""
    return command == READ or ("READ" in command and " cat " in f" {command}" and "echo" in command)


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
        self.retries = []        # {t, attempt, status, error, delay_ms} per api_retry event
        self.fallbacks = []      # {t, model, trigger} per model_fallback event
        self.denied = set()      # tool_use ids the permissions refused

    def feed(self, t: float, ev: dict) -> None:
        kind, sub = ev.get("type"), ev.get("subtype")
        if kind == "system" and sub == "init":
            self.start = t
            self.since = self.since or t
            self.phase = "client started"
        elif kind == "system" and ev.get("status") == "requesting":
            self.close_request()
            self.turn += 1
            self.requests.append({"start": t, "first_byte": None, "end": None, "usage": {},
                                  "output_tokens": None, "tools": [], "attempts": 0, "model": None,
                                  "delta": False, "cut": False, "last": t})
            self.phase = f"model turn {self.turn}"
        elif kind == "system" and sub == "api_retry":
            self.retries.append({"t": t, "attempt": ev.get("attempt"), "status": ev.get("error_status"),
                                 "error": ev.get("error"), "delay_ms": ev.get("retry_delay_ms")})
            self.phase = f"retrying ({ev.get('error_status') or ev.get('error')})"
        elif kind == "system" and sub == "model_fallback":
            self.fallbacks.append({"t": t, "model": ev.get("fallback_model"), "trigger": ev.get("trigger")})
        elif kind == "system" and sub == "permission_denied":
            self.denied.add(ev.get("tool_use_id"))
        elif kind == "stream_event":
            self.stream_event(t, ev.get("event") or {})
        elif kind == "assistant":
            message = ev.get("message") or {}
            if self.requests and not self.requests[-1]["delta"] and message.get("usage"):
                # Until message_delta comes, the answer's own usage (all of it, when the client
                # fell back to a non-streaming request and no delta ever comes).
                req = self.requests[-1]
                req["usage"] = {k: v for k, v in message["usage"].items() if k != "output_tokens"}
                req["output_tokens"] = message["usage"].get("output_tokens")
                req["last"] = t
            for block in message.get("content") or []:
                if block.get("type") == "tool_use":
                    self.tool_use(t, block)
        elif kind == "user":
            content = (ev.get("message") or {}).get("content")
            for block in content if isinstance(content, list) else []:
                if block.get("type") == "tool_result":
                    self.tool_result(t, block)
        elif kind == "result":
            self.close_request()
            self.result = ev
            self.denied |= {d.get("tool_use_id") for d in ev.get("permission_denials") or []}
            for call in self.tools.values():
                call["refused"] = call["refused"] or self.is_denied(call)
            self.phase = "done"

    def close_request(self) -> None:
        """The request under way is over: one whose stream started but never reached its
        message_delta was cut, and the client fell back to a non-streaming request without a
        word (2.1.197; its stream's last events come late, after the next request began)."""
        if self.requests:
            req = self.requests[-1]
            if req["first_byte"] is not None and not req["delta"]:
                req["cut"] = True
                req["end"] = req["end"] or req["last"]

    def stream_event(self, t: float, e: dict) -> None:
        if not self.requests:
            return
        req = self.requests[-1]
        if req["first_byte"] is None and e.get("type") != "message_start":
            return      # the late end of the previous request's cut stream
        req["last"] = t
        if e.get("type") == "message_start":
            # A second start in one request is the client's retry of a cut stream (2.1.332).
            req["first_byte"] = req["first_byte"] or t
            req["attempts"] += 1
            req["end"] = None
            req["usage"] = dict((e.get("message") or {}).get("usage") or {})
            model = (e.get("message") or {}).get("model")
            req["model"] = model
            if model and model not in self.models:
                self.models.append(model)
        elif e.get("type") == "message_delta":
            usage = e.get("usage") or {}
            # The delta's usage is cumulative and wins over the start's, as the client counts it.
            req["usage"].update({k: v for k, v in usage.items() if k != "output_tokens" and v is not None})
            req["output_tokens"] = usage.get("output_tokens")
            req["delta"] = True
        elif e.get("type") == "message_stop":
            req["end"] = t

    def tool_use(self, t: float, block: dict) -> None:
        command = (block.get("input") or {}).get("command", block.get("name", "?"))
        key = echo_key(command[len(WRITE):]) if command.startswith(WRITE) else None
        self.tools[block.get("id")] = {"id": block.get("id"), "start": t, "end": None, "command": command,
                                       "output": None, "is_error": False, "refused": False, "key": key}
        self.order.append(block.get("id"))
        if self.requests:
            self.requests[-1]["tools"].append(block.get("id"))
        self.phase = "waiting in READ" if is_read(command) else f"tool: {command[:24]}"

    def tool_result(self, t: float, block: dict) -> None:
        call = self.tools.get(block.get("tool_use_id"))
        if call is None:
            return
        output = tool_output(block)
        call.update(end=t, output=output, is_error=bool(block.get("is_error")))
        call["refused"] = self.is_denied(call)
        if is_read(call["command"]) and is_hex_packet(output):
            call["key"] = echo_key(output)
            self.seq = str(call["key"][2]) if call["key"] else "?"
            self.since, self.turn = t, 0
            self.phase = "packet read"

    def is_denied(self, call) -> bool:
        """Whether the permissions refused this tool call (not run), by the client's word."""
        if call["id"] in self.denied:
            return True
        return bool(call["is_error"]) and any(w in (call["output"] or "") for w in REFUSED)

    def cut_streams(self) -> list:
        """Requests whose stream was cut (or ended in an SSE error event) and that the client
        answered by a non-streaming request, which no api_retry event reports (2.1.197)."""
        return [r for r in self.requests if r["cut"]]

    def calls(self) -> list:
        return [self.tools[i] for i in self.order]

    def packets(self) -> list:
        """The reads that returned a packet, in order."""
        return [c for c in self.calls() if is_read(c["command"]) and c["output"] and is_hex_packet(c["output"])]


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
