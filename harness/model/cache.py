"""`caching`: prompt caching accounted as the Messages API documents it, so the cost Claude
Code reports for a dry run is what a real run with those tokens would cost.

The rules (docs: build-with-claude/prompt-caching.md, archive of 2026-08-21):
- the prompt is `tools`, `system`, `messages` in that order; a block with `cache_control`
  is a breakpoint (at most 4; a `ttl: "1h"` one may not follow a `5m` one: 400 otherwise);
- a request reads the longest prefix an earlier request wrote that is still alive, looking
  back at most 20 blocks from each breakpoint (the breakpoint included);
- it writes an entry at each breakpoint beyond that hit, if the prefix up to it reaches the
  model's minimum cacheable length (below it nothing is cached and nothing is said);
- an entry lives 5 minutes (or 1 hour), counted from the start of the request that wrote or
  last read it; it can be read once the response that wrote it has begun;
- usage: `cache_read_input_tokens` up to the hit, `cache_creation` 1 h tokens up to the last
  1 h write and 5 m tokens from there to the last write (their sum is
  `cache_creation_input_tokens`), `input_tokens` the rest, after the last breakpoint;
- changing `thinking`, effort or `tool_choice` invalidates the messages' part of the cache.

A block's tokens are a quarter of its JSON's bytes (the dry run's estimate everywhere), and
a string `content` counts as the one text block it stands for. The store is the server's:
one-shot pings (a client process each) read what the earlier ones wrote, as on the API.
"""

import hashlib
import json
import math
import threading

from harness.model.spec import Behaviour, Reply, number

# Minimum cacheable prompt length in tokens, by model name prefix (prompt-caching.md, "Cache
# limitations"); the longest matching prefix wins. Names not listed: 1,024.
MIN_CACHEABLE = {
    "claude-opus-5": 512, "claude-fable-5": 512, "claude-mythos-5": 512,
    "claude-mythos-preview": 2048, "claude-opus-4-7": 2048, "claude-3-5-haiku": 2048,
    "claude-opus-4-6": 4096, "claude-opus-4-5": 4096, "claude-haiku-4-5": 4096,
    "claude-opus-4-8": 1024, "claude-sonnet-5": 1024, "claude-sonnet-4-6": 1024, "claude-sonnet-4-5": 1024,
    "claude-opus-4-1": 1024, "claude-opus-4": 1024, "claude-sonnet-4": 1024,
}
DEFAULT_MIN = 1024
TTL = {"5m": 300.0, "1h": 3600.0}
LOOKBACK = 20
MAX_BREAKPOINTS = 4


class CacheError(ValueError):
    """A request the API refuses with 400 invalid_request_error."""


def min_cacheable(model: str) -> int:
    best = max((p for p in MIN_CACHEABLE if (model or "").startswith(p)), key=len, default=None)
    return MIN_CACHEABLE[best] if best else DEFAULT_MIN


def canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def tokens(block) -> int:
    return max(1, math.ceil(len(canonical(block).encode()) / 4))


def strip(block):
    return {k: v for k, v in block.items() if k != "cache_control"} if isinstance(block, dict) else block


def blocks(body: dict):
    """(what is hashed, what is counted, cache_control) per block, in the prompt's order."""
    for tool in body.get("tools") or []:
        yield strip(tool), strip(tool), tool.get("cache_control")
    system = body.get("system")
    if isinstance(system, str):
        system = [{"type": "text", "text": system}]
    for block in system or []:
        yield strip(block), strip(block), block.get("cache_control") if isinstance(block, dict) else None
    for m in body.get("messages") or []:
        content = m.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        for j, block in enumerate(content or []):
            if not isinstance(block, dict):
                continue
            yield {"role": m.get("role"), "turn": j == 0, **strip(block)}, strip(block), block.get("cache_control")


class Prompt:
    """A request rendered for the cache: the running hash and token total at each block,
    and its breakpoints."""

    def __init__(self, body: dict):
        self.model = body.get("model") or ""
        h = hashlib.sha256(canonical({"model": self.model}).encode())
        salt = canonical({"thinking": body.get("thinking"), "tool_choice": body.get("tool_choice"),
                          "effort": (body.get("output_config") or {}).get("effort")})
        self.total, self.hashes, self.breakpoints = [0], [None], []
        in_messages = False
        for hashed, counted, cc in blocks(body):
            if "role" in hashed and not in_messages:
                in_messages = True
                h.update(salt.encode())
            h.update(canonical(hashed).encode())
            self.total.append(self.total[-1] + tokens(counted))
            self.hashes.append(h.hexdigest())
            if cc:
                ttl = cc.get("ttl", "5m") if isinstance(cc, dict) else "5m"
                self.breakpoints.append((len(self.total) - 1, ttl))
        self.check()

    def check(self) -> None:
        if len(self.breakpoints) > MAX_BREAKPOINTS:
            raise CacheError(f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
                             f"Found {len(self.breakpoints)}.")
        seen_5m = False
        for _, ttl in self.breakpoints:
            if ttl not in TTL:
                raise CacheError("cache_control.ttl: Input should be '5m' or '1h'")
            if ttl == "1h" and seen_5m:
                raise CacheError("A cache_control block with ttl='1h' must not come after one with ttl='5m'.")
            seen_5m |= ttl == "5m"


class PromptCache:
    """The entries earlier requests wrote: prefix hash -> (expires at, ttl seconds)."""

    def __init__(self, minimum=None):
        self.entries = {}
        self.minimum = minimum
        self.lock = threading.Lock()

    def account(self, body: dict, now: float):
        """(usage, writes) for a request that started at `now`; `writes` become readable
        once `commit` is called (when the response begins). CacheError for a bad request."""
        p = Prompt(body)
        floor = self.minimum if self.minimum is not None else min_cacheable(p.model)
        with self.lock:
            hit = 0
            for pos, _ in p.breakpoints:
                for k in range(pos, max(0, pos - LOOKBACK), -1):
                    entry = self.entries.get(p.hashes[k])
                    if entry and entry[0] > now:
                        hit = max(hit, k)
                        break
            if hit:
                ttl = self.entries[p.hashes[hit]][1]
                self.entries[p.hashes[hit]] = (now + ttl, ttl)    # refreshed on use
        writes = [(pos, ttl) for pos, ttl in p.breakpoints if pos > hit and p.total[pos] >= floor]
        last_1h = max((pos for pos, ttl in writes if ttl == "1h"), default=hit)
        last = max((pos for pos, _ in writes), default=hit)
        w1h, w5m = p.total[last_1h] - p.total[hit], p.total[last] - p.total[last_1h]
        usage = {"input_tokens": p.total[-1] - p.total[last], "cache_read_input_tokens": p.total[hit],
                 "cache_creation_input_tokens": w1h + w5m,
                 "cache_creation": {"ephemeral_5m_input_tokens": w5m, "ephemeral_1h_input_tokens": w1h}}
        return usage, [(p.hashes[pos], now + TTL[ttl], TTL[ttl]) for pos, ttl in writes]

    def commit(self, writes, now: float = None) -> None:
        with self.lock:
            for h, expires, ttl in writes:
                self.entries[h] = (expires, ttl)
            if now is not None and len(self.entries) > 4096:
                self.entries = {h: e for h, e in self.entries.items() if e[0] > now}


class Caching(Behaviour):
    """Usage with prompt caching, from the request's own breakpoints."""

    name = "caching"
    about = "prompt caching as the API accounts it: breakpoints, minimum length, 5 min lifetime"
    order = 30
    SHORT = "min"
    PARAMS = {"min": (number(0, kind=int), None, "minimum cacheable tokens (default: the model's, per the docs)")}

    def __init__(self, params):
        super().__init__(params)
        self.cache = PromptCache(self.p["min"])

    def respond(self, x, turn):
        try:
            x.state["cache"] = self.cache.account(x.body, x.now)
        except CacheError as e:
            x.notes["cache"] = f"400: {e}"
            return Reply(400, {"type": "error", "error": {"type": "invalid_request_error", "message": str(e)}})
        return None

    def usage(self, x, usage):
        counted, writes = x.state.get("cache") or self.cache.account(x.body, x.now)
        x.state["cache_writes"] = writes
        x.notes["cache"] = {k: counted[k] for k in ("input_tokens", "cache_read_input_tokens",
                                                     "cache_creation_input_tokens")}
        return dict(usage, **counted)

    def before_turn(self, x, turn):
        if not x.stream:
            self.cache.commit(x.state.get("cache_writes", []), x.now)

    def events(self, x, events):
        for event, data in events:
            if event == "message_start":
                self.cache.commit(x.state.get("cache_writes", []), x.now)
            yield event, data
