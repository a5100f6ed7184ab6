"""`thinking`: the scripted model thinks before it answers, as the API streams it.

When the request asks for thinking (`thinking.type` is `enabled` or `adaptive`; nothing when
it is `disabled` or absent, as with `--thinking off`), every turn opens with a thinking
block: `content_block_start` with empty `thinking` and `signature`, `thinking_delta`s, one
`signature_delta`, `content_block_stop` (docs: build-with-claude/streaming.md, "Thinking
delta"). With `display: "omitted"` in the request (or `display=omitted`) the deltas are left
out and only the signature comes, as the API does. The thinking is the turn's own working:
before a write, the RFC 1071 sums of both checksums, word by word; `tokens=N` pads or cuts it
to N tokens (within `budget_tokens` when the request sets one); `redacted=SHARE` sends that
share of the blocks as `redacted_thinking`.

The signature is an HMAC of the thinking, and every thinking block the client sends back is
checked: a changed or made-up one gets the API's 400 `invalid_request_error` ("Invalid
`signature` in `thinking` block", as quoted in anthropics/claude-code#10627), which Claude
Code answers by stripping its thinking blocks and asking again.
"""

import base64
import hashlib
import hmac

from harness.model.spec import Behaviour, Reply, choice, number
from harness.model.timing import tokens_of
from harness.wire import fold

THINKS = ("enabled", "adaptive")


def sum_lines(name: str, data: bytes, at: int) -> list:
    """The running RFC 1071 sum of `data` with its checksum (at byte `at`) zeroed, as a
    model following the prompt writes it down."""
    zeroed = bytearray(data)
    zeroed[at:at + 2] = b"\x00\x00"
    if len(zeroed) % 2:
        zeroed.append(0)
    total, lines = 0, [f"{name}: sum the {len(zeroed) // 2} words with the checksum field 0000."]
    for k in range(0, len(zeroed), 2):
        word = int.from_bytes(zeroed[k:k + 2], "big")
        total += word
        lines.append(f"+ {word:04x} = {total:x}")
    folded = fold(total)
    lines.append(f"fold {total:x} -> {folded:04x}; checksum ffff - {folded:04x} = {0xFFFF - folded:04x}.")
    return lines


def working(turn: dict, write_prefix: str) -> str:
    """The reasoning behind a turn: the checksums of the reply it writes, or what comes next."""
    for block in turn["content"]:
        command = (block.get("input") or {}).get("command", "") if block["type"] == "tool_use" else ""
        if command.startswith(write_prefix):
            try:
                reply = bytes.fromhex(command[len(write_prefix):])
            except ValueError:
                break
            if len(reply) >= 28 and reply[0] >> 4 == 4:
                hlen = (reply[0] & 0x0F) * 4
                return "\n".join(["Build the echo reply: swap the addresses, TTL 40, type 00."]
                                 + sum_lines("IPv4 header", reply[:hlen], 10)
                                 + sum_lines("ICMP message", reply[hlen:], 2))
            return "Write the reply the stack built."
        if command:
            return f"Next step of the procedure: run `{command}`."
    return "The procedure is done; report what happened in a few lines."


def sized(text: str, tokens) -> str:
    """`text` padded (by checking the sums again) or cut to about `tokens` tokens."""
    if tokens is None:
        return text
    want = max(int(tokens) * 4, 1)
    out = text
    while len(out) < want:
        out += "\nCheck again: " + text
    return out[:want]


class Signer:
    """Signatures for thinking blocks: the text's hash and an HMAC of it, base64."""

    def __init__(self, seed):
        self.key = hashlib.sha256(f"tunbridge-thinking:{seed}".encode()).digest()

    def sign(self, text: str, kind: bytes = b"tbs1") -> str:
        digest = hashlib.sha256(text.encode()).digest()
        mac = hmac.new(self.key, kind + digest, hashlib.sha256).digest()[:16]
        return base64.b64encode(kind + digest + mac).decode()

    def verifies(self, signature: str, text: str = "", kind: bytes = b"tbs1") -> bool:
        """Whether `signature` is ours; with `text`, also that it signs that text (a block
        whose thinking was omitted comes back with empty text and is checked by its mark)."""
        try:
            raw = base64.b64decode(signature or "", validate=True)
        except ValueError:
            return False
        if len(raw) != 4 + 32 + 16 or raw[:4] != kind:
            return False
        digest, mac = raw[4:36], raw[36:]
        if not hmac.compare_digest(mac, hmac.new(self.key, kind + digest, hashlib.sha256).digest()[:16]):
            return False
        return not text or hmac.compare_digest(digest, hashlib.sha256(text.encode()).digest())


def wants_thinking(body: dict):
    """(True, budget or None) when the request asks for thinking."""
    t = body.get("thinking") or {}
    if not isinstance(t, dict) or t.get("type") not in THINKS:
        return False, None
    return True, t.get("budget_tokens")


class Thinking(Behaviour):
    """Thinking blocks streamed as the API streams them, signed and checked."""

    name = "thinking"
    about = "a signed thinking block before every answer, when the request asks for thinking"
    order = 20
    SHORT = "tokens"
    PARAMS = {
        "tokens": (number(1, kind=int), None, "thinking tokens per turn (default: the turn's own working)"),
        "display": (choice("request", "summarized", "omitted"), "request",
                    "stream the thinking text, or only the signature (default: as the request says)"),
        "redacted": (number(0, 1), 0.0, "share of blocks sent as redacted_thinking"),
        "seed": (int, 1, "for the redacted share"),
    }

    def __init__(self, params):
        super().__init__(params)
        self.signer = Signer(self.p["seed"])

    def respond(self, x, turn):
        for i, msg in enumerate(x.body.get("messages") or []):
            content = msg.get("content")
            if msg.get("role") != "assistant" or not isinstance(content, list):
                continue
            for j, block in enumerate(content):
                kind = block.get("type")
                ok = (kind != "thinking" or self.signer.verifies(block.get("signature"), block.get("thinking", ""))) \
                    and (kind != "redacted_thinking" or self.signer.verifies(block.get("data"), kind=b"tbr1"))
                if not ok:
                    x.notes["thinking"] = "bad signature: 400"
                    field = "signature" if kind == "thinking" else "data"
                    return Reply(400, {"type": "error", "error": {
                        "type": "invalid_request_error",
                        "message": f"messages.{i}.content.{j}: Invalid `{field}` in `{kind}` block"}})
        return None

    def turn(self, x, turn):
        wanted, budget = wants_thinking(x.body)
        if not wanted or turn.get("kind") in ("count_tokens", "probe"):
            return turn
        tokens = self.p["tokens"]
        if budget:
            tokens = min(tokens or budget, budget)
        text = sized(working(turn, x.cfg.write_cmd.split("{")[0]), tokens)
        display = self.p["display"]
        if display == "request":
            display = (x.body.get("thinking") or {}).get("display") or "summarized"
        if self.p["redacted"] and self.rng.random() < self.p["redacted"]:
            block = {"type": "redacted_thinking", "data": self.signer.sign(text, b"tbr1")}
        else:
            block = {"type": "thinking", "thinking": text, "signature": self.signer.sign(text)}
        x.notes["thinking"] = {"tokens": tokens_of(text), "display": display, "type": block["type"]}
        return dict(turn, content=[block] + turn["content"], thinking_display=display,
                    thinking_tokens=tokens_of(text))
