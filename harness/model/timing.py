"""How long the scripted model takes: `pace` (a fixed wait per turn) and `latency` (time to
first token, then output tokens at a rate, from published figures).

`latency` sends the response headers and `message_start` at once, waits the time to first
token before the first content block, then paces every content delta at the output rate
(text, thinking and tool input alike: a turn lasts as long as its tokens). A non-streaming
answer waits the same in total before it goes out. `scale` shrinks every wait (CI runs at
0.02). Anthropic publishes no such figures; each profile names its third-party source,
and docs/RUNNER.md lists them.
"""

import json
import math
import time

from harness.model.spec import Behaviour, BehaviourError, choice, number

# profile -> (seconds to first token, output tokens per second, where the figures come from)
PROFILES = {
    "haiku-4.5": (0.9, 110.0, "lmspeed.net/compare/model/claude-haiku-4-5-vs-claude-sonnet-4: TTFT 0.90 s; "
                  "112 tok/s in its 15-test provider row"),
    "sonnet-4.6": (1.2, 95.0, "bridgebench.ai/speedbench/claude-sonnet-4-6: median TTFT 1.21 s, 95.3 tok/s"),
    "sonnet-4.5": (1.8, 63.0, "lattice.uptownhr.com/claude-opus-4-5/speed-analysis, citing Artificial "
                   "Analysis: TTFT 1.80 s, 63 tok/s"),
    "opus-4.1": (2.7, 45.0, "lattice.uptownhr.com (as above), citing Artificial Analysis: TTFT 2.67 s, 45 tok/s"),
}


def tokens_of(text: str) -> int:
    """Output tokens for a piece of streamed text: about four characters each."""
    return math.ceil(len(text) / 4)


def streamed_text(block: dict) -> str:
    """What a content block streams: its text, its thinking, or its tool input as JSON."""
    if block["type"] == "tool_use":
        return json.dumps(block.get("input", {}))
    return block.get("text") or block.get("thinking") or ""


def delta_tokens(data: dict) -> int:
    delta = data.get("delta") or {}
    text = delta.get("text") or delta.get("thinking") or delta.get("partial_json") or ""
    return tokens_of(text)


class Pace(Behaviour):
    """Waits `seconds` before answering a main-loop turn (read, write, report): a slow model."""

    name = "pace"
    about = "waits SECONDS before each turn of the tool loop (--model-delay)"
    order = 40
    SHORT = "seconds"
    PARAMS = {"seconds": (number(0), 0.0, "the wait before each main-loop turn")}

    def before_turn(self, x, turn):
        if turn.get("kind") not in ("side", "count_tokens", "probe"):
            (x.sleep or time.sleep)(self.p["seconds"])


class Latency(Behaviour):
    """Time to first token, then output tokens per second."""

    name = "latency"
    about = "time to first token, then output tokens per second (profile=haiku-4.5 by default)"
    order = 40
    SHORT = "profile"
    PARAMS = {
        "profile": (choice(*PROFILES), "haiku-4.5", "published figures: " + ", ".join(PROFILES)),
        "ttft": (number(0), None, "seconds to the first token (overrides the profile)"),
        "tps": (number(0.001), None, "output tokens per second (overrides the profile)"),
        "scale": (number(0), 1.0, "multiplies every wait (0.02 in CI)"),
    }

    def __init__(self, params):
        super().__init__(params)
        ttft, tps, _ = PROFILES[self.p["profile"]]
        self.ttft = self.p["ttft"] if self.p["ttft"] is not None else ttft
        self.tps = self.p["tps"] if self.p["tps"] is not None else tps
        if self.tps <= 0:
            raise BehaviourError("latency: tps must be above 0")

    def wait(self, x, seconds: float) -> None:
        if seconds > 0:
            (x.sleep or time.sleep)(seconds * self.p["scale"])

    def turn_seconds(self, turn: dict) -> float:
        """How long a whole turn takes: its first token, then all its tokens."""
        return self.ttft + sum(tokens_of(streamed_text(b)) for b in turn["content"]) / self.tps

    def before_turn(self, x, turn):
        if not x.stream:
            self.wait(x, self.turn_seconds(turn))

    def events(self, x, events):
        first = True
        for event, data in events:
            if event == "content_block_start" and first:
                first = False
                self.wait(x, self.ttft)
            elif event == "content_block_delta":
                self.wait(x, delta_tokens(data) / self.tps)
            yield event, data
