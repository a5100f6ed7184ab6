"""The scripted model: a stand-in for the Anthropic Messages API, for dry runs.

Claude Code talks to it through ANTHROPIC_BASE_URL. Each POST to /v1/messages gets the
turn harness/model/dialogue.py decides, streamed as server-sent events (message_start,
content blocks with text, thinking and input_json deltas, message_delta with the usage,
message_stop), each event flushed as it goes, or as one JSON message; it answers under
whatever model name the request gives and reports that name back. Usage is estimated
(input: bytes/4, no cache unless the `caching` behaviour accounts it). `count_tokens` is
answered, HEAD gets 200, a bug answers 500 `api_error` rather than hang. Behaviours
(harness/model/behaviour.py: latency, thinking, caching, errors, deviations) change what
it says and how it goes out, each request's decisions in the log's `behaviour`; flaws
(flaws.py) make it wrong.

    python3 -m harness.model --port 0 --log /tmp/model.jsonl [--flaw NAME] [--behaviour SPEC]

With --port 0 it picks a free port and prints `listening on http://127.0.0.1:PORT`.
"""

import http.server
import itertools
import json
import os
import random
import string
import sys
import threading
import time

from harness import ArgumentParser
from harness.model import flaws
from harness.model.behaviour import Behaviours, describe
from harness.model.spec import Exchange
from harness.model.dialogue import READ_CMD, WRITE_CMD, decide
from harness.model.serving import Serving


def billing_block(body: dict) -> bool:
    """Whether the system prompt opens with Claude Code's attribution (billing) header."""
    system = body.get("system")
    first = system[0].get("text", "") if isinstance(system, list) and system else system or ""
    return isinstance(first, str) and first.startswith("x-anthropic-billing-header")


def usage_for(body_len: int, turn: dict) -> dict:
    """The usage of an answer without caching: input a quarter of the request's bytes,
    output a quarter of the answer's plus its thinking tokens (billed, redacted or not)."""
    said = [b for b in turn["content"] if b["type"] not in ("thinking", "redacted_thinking")]
    out = max(1, len(json.dumps(said)) // 4 + turn.get("thinking_tokens", 0))
    return {"input_tokens": max(1, body_len // 4), "output_tokens": out,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}


def chunks(text: str, size: int = 64):
    return [text[k:k + size] for k in range(0, len(text), size)] or [""]


def block_events(i: int, block: dict, display: str):
    """The events of one content block, as the API streams each type."""
    kind = block["type"]
    delta = lambda d: ("content_block_delta", {"type": "content_block_delta", "index": i, "delta": d})
    if kind == "text":
        yield "content_block_start", {"type": "content_block_start", "index": i,
                                      "content_block": {"type": "text", "text": ""}}
        for piece in chunks(block["text"]):
            yield delta({"type": "text_delta", "text": piece})
    elif kind == "thinking":
        yield "content_block_start", {"type": "content_block_start", "index": i,
                                      "content_block": {"type": "thinking", "thinking": "", "signature": ""}}
        if display != "omitted":
            for piece in chunks(block["thinking"]):
                yield delta({"type": "thinking_delta", "thinking": piece})
        yield delta({"type": "signature_delta", "signature": block["signature"]})
    elif kind == "redacted_thinking":
        yield "content_block_start", {"type": "content_block_start", "index": i, "content_block": block}
    else:
        head = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
        yield "content_block_start", {"type": "content_block_start", "index": i, "content_block": head}
        for piece in chunks(json.dumps(block["input"])):
            yield delta({"type": "input_json_delta", "partial_json": piece})
    yield "content_block_stop", {"type": "content_block_stop", "index": i}


def sse_events(msg: dict, turn: dict):
    """The streaming events for one assistant message, as (event, data) pairs. The usage
    of `message_delta` is cumulative and repeats the input side, as the API's does."""
    start = dict(msg, content=[], stop_reason=None, stop_sequence=None,
                 usage=dict(msg["usage"], output_tokens=1))
    yield "message_start", {"type": "message_start", "message": start}
    yield "ping", {"type": "ping"}
    for i, block in enumerate(turn["content"]):
        yield from block_events(i, block, turn.get("thinking_display", "summarized"))
    yield "message_delta", {"type": "message_delta",
                            "delta": {"stop_reason": turn["stop_reason"], "stop_sequence": None},
                            "usage": msg["usage"]}
    yield "message_stop", {"type": "message_stop"}


def as_sent(turn: dict) -> list:
    """The content of a non-streaming answer: omitted thinking has empty text."""
    if turn.get("thinking_display") != "omitted":
        return turn["content"]
    return [dict(b, thinking="") if b["type"] == "thinking" else b for b in turn["content"]]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "dry-run-model/1"

    def log_message(self, fmt, *args):
        pass

    def send_json(self, status: int, obj, headers=None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_HEAD(self):
        self.server.record(self, b"", {}, "probe")
        self.send_json(200, {})

    def do_GET(self):
        served = self.server.serving.get(self.path) if self.server.serving else None
        self.server.record(self, b"", {}, "backend" if served else "unknown")
        if served:
            return self.send_json(*served)
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
        served = self.server.serving.post(path, body) if self.server.serving else None
        if served:
            self.server.record(self, raw, body, "backend")
            return self.send_json(*served)
        if path.endswith("/count_tokens"):
            self.server.record(self, raw, body, "count_tokens")
            return self.send_json(200, {"input_tokens": max(1, len(raw) // 4)})
        if not path.endswith("/v1/messages"):
            self.server.record(self, raw, body, "unknown")
            return self.send_json(404, {"type": "error", "error": {"type": "not_found_error", "message": path}})
        if self.server.serving:
            self.server.serving.messages(body)
        cfg = self.server.cfg
        x = Exchange(body=body, raw=raw, now=time.time(), n=self.server.number(), stream=bool(body.get("stream")),
                     cfg=cfg, decide=lambda b: decide(b, cfg))
        behaviours = self.server.behaviours
        turn = behaviours.turn(x, decide(body, cfg))
        reply = behaviours.respond(x, turn)
        if reply is not None:
            self.server.record(self, raw, body, turn["kind"], turn, x)
            return self.send_json(reply.status, reply.body, reply.headers)
        usage = behaviours.usage(x, usage_for(len(raw), turn))
        self.server.record(self, raw, body, turn["kind"], turn, x)
        behaviours.before_turn(x, turn)
        msg = {"id": "msg_dry" + "".join(random.choices(string.digits, k=16)), "type": "message",
               "role": "assistant", "model": body.get("model", "dry-run"),
               "content": as_sent(turn), "stop_reason": turn["stop_reason"],
               "stop_sequence": None, "usage": usage}
        if not x.stream:
            return self.send_json(200, msg)
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True
        for event, data in behaviours.events(x, sse_events(msg, turn)):
            self.wfile.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
            self.wfile.flush()


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr, cfg):
        super().__init__(addr, Handler)
        self.cfg = cfg
        self.behaviours = Behaviours.parse(cfg.behaviour)
        kind = getattr(cfg, "serve_as", None)   # a test's namespace may not name it
        self.serving = Serving(kind, cfg.context, cfg.served_model) if kind else None
        self.counter = itertools.count(1)
        self.lock = threading.Lock()

    def number(self) -> int:
        with self.lock:
            return next(self.counter)

    def record(self, handler, raw: bytes, body: dict, kind: str, turn=None, x=None) -> None:
        """One JSON line per request to --log (with what the behaviours decided for it); the
        full body to --dump-dir."""
        n = x.n if x is not None else self.number()
        with self.lock:
            entry = {
                "n": n, "time": round(x.now if x is not None else time.time(), 3), "method": handler.command,
                "path": handler.path,
                "bytes": len(raw), "model": body.get("model"), "stream": body.get("stream"),
                "tools": len(body.get("tools") or []), "messages": len(body.get("messages") or []),
                # Tools the client defers (`defer_loading`, 2.1.3xx) are not in the model's prompt.
                "deferred_tools": sum(1 for t in body.get("tools") or [] if t.get("defer_loading")),
                "answer": kind, "thinking": body.get("thinking"),
                # What a backend preset changes: the credential header, the output limit,
                # and the attribution block that would lead the system prompt.
                "auth": {h: handler.headers[h] for h in ("x-api-key", "authorization") if handler.headers.get(h)},
                "max_tokens": body.get("max_tokens"),
                "attribution": billing_block(body),
            }
            if turn is not None and "procedure" in turn:
                entry["procedure"] = turn["procedure"]
            if turn is not None:
                entry["tool_use"] = [b["input"].get("command", b["name"]) for b in turn["content"]
                                     if b["type"] == "tool_use"]
            if x is not None and x.notes:
                entry["behaviour"] = x.notes
            if self.cfg.log:
                with open(self.cfg.log, "a") as f:
                    f.write(json.dumps(entry) + "\n")
            if self.cfg.dump_dir and raw:
                with open(os.path.join(self.cfg.dump_dir, f"{n:03d}.json"), "wb") as f:
                    f.write(raw)
            if self.cfg.verbose:
                print(json.dumps(entry), file=sys.stderr, flush=True)


def main(argv=None) -> None:
    ap = ArgumentParser(prog="python3 -m harness.model", description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback only)")
    ap.add_argument("--port", type=int, default=0, help="port to listen on; 0 picks a free one")
    ap.add_argument("--log", help="append one JSON line per request to this file; `answer` is what we "
                    "answered: read, write, replied, timeout, not_answered, bad_read, refused, "
                    "write_failed, unexpected, served (ping-serve's final report), python and no_write "
                    "(deviations), side, probe, count_tokens; `behaviour`: what the behaviours decided")
    ap.add_argument("--dump-dir", help="write each request body to DIR/NNN.json")
    ap.add_argument("--read-cmd", default=READ_CMD, help="the prompt's read command, exactly")
    ap.add_argument("--write-cmd", default=WRITE_CMD, help="the prompt's write command; {hex} is the reply")
    ap.add_argument("--flaw", choices=sorted(flaws.FLAWS),
                    help="be wrong on purpose, to prove the judge: " + "; ".join(
                        f"{k}: {v}" for k, v in flaws.FLAWS.items()))
    ap.add_argument("--behaviour", action="append", default=[], metavar="NAME[:KEY=VALUE;...][,NAME...]",
                    help="behave like a real model (harness/model/behaviour.py; repeatable): " + describe())
    ap.add_argument("--serve-as", choices=Serving.KINDS, help="answer that server's own endpoints too "
                    "(harness/model/serving.py): ollama, llama-server, vllm, litellm")
    ap.add_argument("--context", type=int, default=131072, help="with --serve-as: the context it says it serves")
    ap.add_argument("--served-model", help="with --serve-as: the one model it serves (default: any name)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print each log line to stderr too")
    cfg = ap.parse_args(argv)
    if cfg.dump_dir:
        os.makedirs(cfg.dump_dir, exist_ok=True)
    try:
        server = Server((cfg.host, cfg.port), cfg)
    except ValueError as e:      # a bad behaviour spec (BehaviourError) or --serve-as
        ap.error(str(e))
    print(f"listening on http://{cfg.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
