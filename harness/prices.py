"""What model requests cost, with the prompt cache and without it.

List prices per million tokens, by the model as the API named it (the longest matching
prefix wins), from Anthropic's pricing and prompt-caching pages (the docs archive of
2026-08-21, docs/en/about-claude/pricing.md and build-with-claude/prompt-caching.md): cache
reads cost 0.1 times the input price, 5-minute cache writes 1.25 times, 1-hour writes 2 times.
The 5.5 models are not in that archive: their figures are Claude Code 2.1.332's own table,
measured by running it (input 4 / output 20 for Opus 5.5 and 2 / 10 for Sonnet 5.5, reads at
0.05 times), and say so. `cost` prices one request's usage both ways; a model not listed
gets None (a local model, a made-up dry-run name), and the caller falls back on what Claude
Code reported.
"""

from dataclasses import dataclass

DOCS = "Anthropic's pricing page (docs archive 2026-08-21)"
CLIENT_332 = "Claude Code 2.1.332's own table (measured; not in Anthropic's docs archive)"


@dataclass(frozen=True)
class Price:
    input: float        # USD per million input tokens
    output: float       # USD per million output tokens
    read: float = 0.1   # a cache read, times the input price
    write_5m: float = 1.25
    write_1h: float = 2.0
    source: str = DOCS


PRICES = {
    "claude-fable-5": Price(10, 50), "claude-mythos-5": Price(10, 50),
    "claude-opus-5-5": Price(4, 20, read=0.05, source=CLIENT_332),
    "claude-sonnet-5-5": Price(2, 10, read=0.05, source=CLIENT_332),
    "claude-opus-5": Price(5, 25), "claude-opus-4-8": Price(5, 25), "claude-opus-4-7": Price(5, 25),
    "claude-opus-4-6": Price(5, 25), "claude-opus-4-5": Price(5, 25),
    "claude-opus-4-1": Price(15, 75), "claude-opus-4": Price(15, 75),
    "claude-sonnet-5": Price(2, 10),
    "claude-sonnet-4-6": Price(3, 15), "claude-sonnet-4-5": Price(3, 15), "claude-sonnet-4": Price(3, 15),
    "claude-haiku-4-5": Price(1, 5), "claude-3-5-haiku": Price(0.8, 4),
}
# Relative weights for a model not listed: input 1, output 5 (every listed model's ratio).
GENERIC = Price(1, 5, source="relative weights (input 1, output 5): the model is not in the price table")


def price_of(model: str):
    """The Price of a model named like `claude-haiku-4-5-20251001`, or None."""
    name = (model or "").split("[")[0]
    best = max((p for p in PRICES if name.startswith(p)), key=len, default=None)
    return PRICES[best] if best else None


def split(usage: dict) -> dict:
    """A usage's input tokens by how they are billed: uncached, read, written for 5 min and
    for 1 h. Without the `cache_creation` object every write counts as 5 min (as Claude Code
    counts it)."""
    usage = usage or {}
    creation = usage.get("cache_creation") or {}
    written = usage.get("cache_creation_input_tokens") or 0
    w1h = creation.get("ephemeral_1h_input_tokens") or 0
    w5m = creation.get("ephemeral_5m_input_tokens") if creation else written
    return {"input": usage.get("input_tokens") or 0, "read": usage.get("cache_read_input_tokens") or 0,
            "write_5m": w5m or 0, "write_1h": w1h}


def cost(price: Price, usage: dict, output: int):
    """(with the cache, without it) in USD for one request; without it, every input token
    is billed at the input price."""
    t = split(usage)
    per = price.input / 1e6
    out = (output or 0) * price.output / 1e6
    cached = per * (t["input"] + price.read * t["read"] + price.write_5m * t["write_5m"]
                    + price.write_1h * t["write_1h"]) + out
    plain = per * (t["input"] + t["read"] + t["write_5m"] + t["write_1h"]) + out
    return cached, plain
