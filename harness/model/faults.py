"""`errors`: the API fails some attempts, as a busy API does, at a given rate, seeded.

Each Messages request is one attempt (Claude Code retries with the same body; the server
cannot tell a retry from a new turn, and does not need to). With probability `rate` an
attempt fails in one of `kinds`, drawn from a generator seeded with `seed`, so the same run
of requests fails the same way every time; `burst=N` fails the next N-1 attempts the same
way too (three 529s in a row: "answered after 2 retries of a 529" needs `burst=3`, with
the client's retries to spare). `at=N,M` fails exactly the N-th and M-th attempts (each the
start of a burst) and nothing else, for tests that want one story. The kinds, with the API's own words (docs: api/errors.md,
build-with-claude/streaming.md "Error events"):

- `429`: `rate_limit_error`, `retry-after` (seconds, `retry-after=`) and the
  `anthropic-ratelimit-requests-*` headers;
- `529`: `overloaded_error`; `500`: `api_error`;
- `cut`: the stream stops mid-message and the connection closes (`cut-at=start`: inside the
  first block, the default; `mid-tool`: inside the tool call's input, or the first block of a
  turn without one; or after a number of events);
- `sse-error`: an `error` event (`overloaded_error`) after the same events, then the end.

A non-streaming request (Claude Code's fallback after a cut) cannot be cut: a `cut` or
`sse-error` drawn for one is answered normally, and the log says so.
"""

import threading
import time

from harness.model.spec import Behaviour, Reply, number, words

KINDS = ("429", "529", "500", "cut", "sse-error")
STATUS = {
    "429": ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit; "
            "see the response headers for current usage. Please try again later."),
    "529": ("overloaded_error", "Overloaded"),
    "500": ("api_error", "Internal server error"),
}


def attempts(text):
    numbers = [number(1, kind=int)(n) for n in str(text).split(",") if n]
    if not numbers:
        raise ValueError("takes a comma list of attempt numbers")
    return set(numbers)


def cut_at(text):
    if text in ("start", "mid-tool"):
        return text
    return number(1, kind=int)(text)


class Errors(Behaviour):
    """API errors at a rate: HTTP statuses, cut streams, SSE error events."""

    name = "errors"
    about = "API errors at a rate: 429 with retry-after, 529, 500, a cut stream, an SSE error event"
    order = 25
    SHORT = "rate"
    PARAMS = {
        "rate": (number(0, 1), 0.1, "share of attempts that fail"),
        "kinds": (words(*KINDS), list(KINDS), "which failures, a comma list: " + ",".join(KINDS)),
        "seed": (int, 1, "the generator's seed: the same seed, the same failures"),
        "retry-after": (number(0, kind=int), 1, "seconds a 429 asks the client to wait"),
        "burst": (number(1, kind=int), 1, "attempts in a row that fail the same way"),
        "at": (attempts, None, "fail exactly these attempts (a comma list of numbers from 1), not at a rate"),
        "cut-at": (cut_at, "start", "where a cut or an SSE error comes: start, mid-tool, or after N events"),
    }

    def __init__(self, params):
        super().__init__(params)
        self.lock = threading.Lock()
        self.left, self.kind, self.attempt = 0, None, 0

    def draw(self):
        """The failure for the next attempt, or None."""
        with self.lock:
            self.attempt += 1
            if self.left:
                self.left -= 1
                return self.kind
            fails = self.attempt in self.p["at"] if self.p["at"] else self.rng.random() < self.p["rate"]
            if not fails:
                return None
            self.kind = self.rng.choice(self.p["kinds"])
            self.left = self.p["burst"] - 1
            return self.kind

    def respond(self, x, turn):
        if turn.get("kind") in ("count_tokens", "probe"):
            return None
        kind = self.draw()
        if kind is None:
            return None
        if kind in STATUS:
            x.notes["fault"] = kind
            kind_name, message = STATUS[kind]
            headers = {"request-id": f"req_dry{x.n:08d}", "x-should-retry": "true"}
            if kind == "429":
                wait = self.p["retry-after"]
                reset = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(x.now + wait))
                headers.update({"retry-after": str(wait), "anthropic-ratelimit-requests-limit": "50",
                                "anthropic-ratelimit-requests-remaining": "0",
                                "anthropic-ratelimit-requests-reset": reset})
            return Reply(int(kind), {"type": "error", "error": {"type": kind_name, "message": message}}, headers)
        if not x.stream:
            x.notes["fault"] = f"{kind} (not streaming: answered)"
            return None
        x.notes["fault"] = kind
        x.state["fault"] = kind
        x.state["content"] = turn["content"]
        return None

    def events(self, x, events):
        kind = x.state.get("fault")
        if kind is None:
            yield from events
            return
        where = self.p["cut-at"]
        if where == "mid-tool" and not any(b["type"] == "tool_use" for b in x.state.get("content", [])):
            where = "start"        # a turn without a tool call is cut in its first block
        since_tool = None          # events since the tool call's block started
        for n, (event, data) in enumerate(events):
            if since_tool is not None:
                since_tool += 1
            if event == "content_block_start" and data["content_block"]["type"] == "tool_use":
                since_tool = 0
            if (where == "start" and n == 3) or where == n or (where == "mid-tool" and since_tool == 2):
                break
            yield event, data
        if kind == "sse-error":
            yield "error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
