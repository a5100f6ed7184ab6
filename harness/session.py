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
command, output, whether the permissions refused it, what it wrote and the packet it read
with the packet's flow key), which harness/bundle.py turns into the table and the timeline;
and what the client said of its own troubles: its retries (`system`/`api_retry`: attempt,
HTTP status, error), a switch to the fallback model (`system`/`model_fallback`), its
refusals (`permission_denied` events of 2.1.332, and the result's `permission_denials`),
which harness/fates.py reads; and the MCP servers its `system`/`init` event lists.

A packet reaches the agent in one of four ways, each a tool call (`Call`): `tunbridge read`
(or the raw FIFO form), the second line of `tunbridge write <hex> --next` (after Claude Code's
`Exit code N` line when the command failed), and the MCP tools `read_packet` and
`write_and_read_next` (its second line); `tunbridge write <hex>` and `write_packet` only write.
"""

import json
import os
import re
import time

from harness.wire import echo_key, is_hex_packet

READ = "tunbridge read"
WRITE = "tunbridge write "
# The tunbridge MCP server's tools as Claude Code names them (server `tunbridge`).
MCP = "mcp__tunbridge__"
MCP_READ, MCP_WRITE, MCP_NEXT = MCP + "read_packet", MCP + "write_packet", MCP + "write_and_read_next"
# How Claude Code words a refusal in the tool result (default permission mode; auto mode's
# classifier; a hook or a rule): "This command requires approval", "... The following parts
# require approval: ...", "Permission for this action was denied ...", and for a tool no rule
# allows (an MCP tool) "Claude requested permissions to use ..., but you haven't granted it yet".
REFUSED = ("requires approval", "require approval", "Permission for this action was denied",
           "permission to use", "permissions to use", "was blocked")
# Claude Code's first line of a Bash result whose command exited non-zero.
EXIT_LINE = re.compile(r"^Exit code \d+$")


def is_read(command: str) -> bool:
    """`tunbridge read`, or the README's raw FIFO form (`echo "READ" > ... && ... cat ...`)."""
    return command == READ or ("READ" in command and " cat " in f" {command}" and "echo" in command)


def tool_output(block) -> str:
    content = block.get("content")
    if isinstance(content, list):
        return "\n".join(c.get("text", "") for c in content if c.get("type") == "text")
    return content or ""


def result_lines(output: str) -> list:
    """A tool result's lines, blank ones and a leading `Exit code N` left out."""
    lines = [line.strip() for line in (output or "").strip().splitlines() if line.strip()]
    return lines[1:] if lines and EXIT_LINE.match(lines[0]) else lines


def describe(name: str, args: dict) -> dict:
    """What a tool call does with the bridge: `command` (the Bash command, or the MCP tool's
    short name and its hex), `reads` (the line of its result that carries the next packet:
    0, 1, or None when it reads none), `wrote` (the hex it writes, or None)."""
    if name == "Bash" or "command" in args:
        command = str(args.get("command", ""))
        if is_read(command):
            return {"command": command, "reads": 0, "wrote": None}
        if command.startswith(WRITE):
            words = command[len(WRITE):].replace('"', " ").replace("'", " ").split()
            nxt = "--next" in words
            return {"command": command, "reads": 1 if nxt else None,
                    "wrote": "".join(w for w in words if w != "--next")}
        return {"command": command, "reads": None, "wrote": None}
    hexstr = args.get("hex") if isinstance(args.get("hex"), str) else None
    short = name[len(MCP):] if name.startswith(MCP) else name
    command = f"{short} {hexstr}" if hexstr else short
    reads = {MCP_READ: 0, MCP_NEXT: 1}.get(name)
    return {"command": command, "reads": reads, "wrote": hexstr if name in (MCP_WRITE, MCP_NEXT) else None}


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
        self.mcp_servers = None  # {name: status} from system/init (None before it)

    def feed(self, t: float, ev: dict) -> None:
        kind, sub = ev.get("type"), ev.get("subtype")
        if kind == "system" and sub == "init":
            self.start = t
            self.since = self.since or t
            self.phase = "client started"
            self.mcp_servers = {m.get("name"): m.get("status") for m in ev.get("mcp_servers") or []
                                if isinstance(m, dict)}
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
        what = describe(block.get("name", "?"), block.get("input") or {})
        key = echo_key(what["wrote"]) if what["wrote"] else None
        self.tools[block.get("id")] = dict(what, id=block.get("id"), name=block.get("name"), start=t, end=None,
                                           output=None, is_error=False, refused=False, key=key, wrote_key=key,
                                           answer=None, line=None, packet=None)
        self.order.append(block.get("id"))
        if self.requests:
            self.requests[-1]["tools"].append(block.get("id"))
        self.phase = "waiting in READ" if what["reads"] is not None else f"tool: {what['command'][:24]}"

    def tool_result(self, t: float, block: dict) -> None:
        call = self.tools.get(block.get("tool_use_id"))
        if call is None:
            return
        output = tool_output(block)
        call.update(end=t, output=output, is_error=bool(block.get("is_error")))
        call["refused"] = self.is_denied(call)
        lines = [] if call["refused"] else result_lines(output)
        if call["wrote"] is not None:
            call["answer"] = lines[0] if lines else None
        if call["reads"] is not None:
            call["line"] = lines[call["reads"]] if len(lines) > call["reads"] else None
            if call["line"] and is_hex_packet(call["line"]):
                call["packet"] = call["line"]
                call["key"] = echo_key(call["line"])
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
        """The calls that returned a packet (a read, a write with --next, an MCP read), in order."""
        return [c for c in self.calls() if c["packet"]]

    def reading_calls(self) -> list:
        """The calls that asked for a packet, whatever they got, in order."""
        return [c for c in self.calls() if c["reads"] is not None]

    def waiting_read(self):
        """The call that asked for a packet and has no result yet, or None."""
        calls = self.calls()
        last = calls[-1] if calls else None
        return last if last and last["reads"] is not None and last["end"] is None else None

    def mcp_trouble(self, server: str = "tunbridge"):
        """None once the client's init event lists `server` as connected (or before that
        event); else one line that says what it listed."""
        if self.mcp_servers is None or self.mcp_servers.get(server) == "connected":
            return None
        status = self.mcp_servers.get(server)
        listed = f"lists it as {status}" if status else "does not list it"
        why = " (one that failed did not start: `tunbridge mcp` refuses root)" if status == "failed" else ""
        return f"the {server} MCP server is not connected: Claude Code's init event {listed}{why}"


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
