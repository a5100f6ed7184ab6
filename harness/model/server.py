"""The scripted model: a stand-in for the Anthropic Messages API, for dry runs.

Claude Code talks to it through ANTHROPIC_BASE_URL. Each POST to /v1/messages gets the
turn harness/model/dialogue.py decides, streamed as server-sent events (message_start,
content blocks with text and input_json deltas, message_delta with the usage,
message_stop) or as one JSON message; it answers under whatever model name the request
gives and reports that name back. Usage is estimated (input: bytes/4). `count_tokens` is
answered, HEAD gets 200, a bug answers 500 `api_error` rather than hang. Behaviours
(harness/model/behaviour.py) change how an answer goes out; flaws (flaws.py) what it says.

    python3 -m harness.model --port 0 --log /tmp/model.jsonl [--flaw NAME] [--behaviour pace=2]

With --port 0 it picks a free port and prints `listening on http://127.0.0.1:PORT`.
"""

import argparse
import http.server
import itertools
import json
import os
import random
import string
import sys
import threading
import time

from harness.model import flaws
from harness.model.behaviour import Behaviours
from harness.model.dialogue import READ_CMD, WRITE_CMD, decide


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
        self.server.behaviours.before_turn(turn)
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
        for event, data in self.server.behaviours.events(sse_events(msg, turn)):
            self.wfile.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
        self.wfile.flush()
        self.close_connection = True


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr, cfg):
        super().__init__(addr, Handler)
        self.cfg = cfg
        self.behaviours = Behaviours.parse(cfg.behaviour)
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
                # Tools the client defers (`defer_loading`, 2.1.3xx) are not in the model's prompt.
                "deferred_tools": sum(1 for t in body.get("tools") or [] if t.get("defer_loading")),
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


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python3 -m harness.model", description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback only)")
    ap.add_argument("--port", type=int, default=0, help="port to listen on; 0 picks a free one")
    ap.add_argument("--log", help="append one JSON line per request to this file; `answer` is what we "
                    "answered: read, write, replied, timeout, not_answered, bad_read, refused, "
                    "write_failed, unexpected, served (ping-serve's final report), side, probe, "
                    "count_tokens")
    ap.add_argument("--dump-dir", help="write each request body to DIR/NNN.json")
    ap.add_argument("--read-cmd", default=READ_CMD, help="the prompt's read command, exactly")
    ap.add_argument("--write-cmd", default=WRITE_CMD, help="the prompt's write command; {hex} is the reply")
    ap.add_argument("--flaw", choices=sorted(flaws.FLAWS),
                    help="be wrong on purpose, to prove the judge: " + "; ".join(
                        f"{k}: {v}" for k, v in flaws.FLAWS.items()))
    ap.add_argument("--behaviour", action="append", default=[], metavar="NAME[=VALUE]",
                    help="behave like a real model in one more way (harness/model/behaviour.py): "
                    "pace=SECONDS waits that long before each main-loop turn")
    ap.add_argument("-v", "--verbose", action="store_true", help="print each log line to stderr too")
    cfg = ap.parse_args(argv)
    if cfg.dump_dir:
        os.makedirs(cfg.dump_dir, exist_ok=True)
    try:
        server = Server((cfg.host, cfg.port), cfg)
    except ValueError as e:
        ap.error(str(e))
    print(f"listening on http://{cfg.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
