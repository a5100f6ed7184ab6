"""Deviations: the scripted model does not do exactly as the prompt says, as real models
sometimes do not. Each changes the turn the dialogue decided (harness/model/dialogue.py):

- `python-first`: before the write, asks to run `python3 -c '...'` to add up the header's
  words; refused (the permissions allow only the two commands), it carries on and writes;
- `raw-fifo`: reads with the README's raw FIFO form (`echo "READ" > "$TUNBRIDGE_CMD_FIFO" &&
  timeout 35 cat "$TUNBRIDGE_RESP_FIFO"`, the run's own FIFOs); refused, it runs `tunbridge
  read`; allowed, it goes on with the packet that came back;
- `malformed-hex`: the first write carries bad hex (`how=nonhex`: a `z` in it, `odd`: a digit
  short, `short`: the first 20 bytes only); after the bridge's `ERR` it writes the right reply;
- `write-twice`: writes the reply, then the same reply again;
- `no-write`: reads, builds the reply, and ends the turn saying it wrote it, without writing.

Each applies to a share `rate` of the packets (default all), drawn from a generator seeded
with `seed`. The model keeps no memory of the conversation: what it did comes from the
request, and the commands it issued are known by their tool_use ids. To carry on after its
own detour it asks the dialogue again with the detour taken out of the conversation (or, for
a raw read that ran, renamed to the read it stands for).
"""

import copy
import hashlib
import json
import threading

from harness.model.dialogue import bash_turn, block_text, text_turn, tool_calls
from harness.model.spec import Behaviour, choice, number

RAW_READ = 'echo "READ" > "$TUNBRIDGE_CMD_FIFO" && timeout 35 cat "$TUNBRIDGE_RESP_FIFO"'


def exchanges(messages) -> list:
    """Every (tool_use id, command, tool_result block) of the conversation whose tool_use it
    still holds, in order."""
    return [call for call in tool_calls(messages) if call[1] is not None]


def rewrite(body: dict, drop=(), rename=None) -> dict:
    """A copy of the request without the exchanges in `drop` (their tool_use and tool_result
    blocks; a message left empty goes too) and with the commands in `rename` replaced."""
    rename = rename or {}
    out = copy.deepcopy(body)
    messages = []
    for msg in out.get("messages") or []:
        content = msg.get("content")
        if isinstance(content, list):
            kept = []
            for block in content:
                if block.get("type") == "tool_use" and block.get("id") in drop:
                    continue
                if block.get("type") == "tool_result" and block.get("tool_use_id") in drop:
                    continue
                if block.get("type") == "tool_use" and block.get("id") in rename:
                    block["input"] = dict(block.get("input") or {}, command=rename[block["id"]])
                kept.append(block)
            if not kept:
                continue
            msg["content"] = kept
        messages.append(msg)
    out["messages"] = messages
    return out


def tool_command(turn: dict):
    """The command a turn asks for, or None."""
    for block in turn["content"]:
        if block["type"] == "tool_use":
            return (block.get("input") or {}).get("command", "")
    return None


class Deviation(Behaviour):
    """What the deviations share: the packets they apply to, the commands they issued."""

    order = 10
    PARAMS = {"rate": (number(0, 1), 1.0, "share of packets it applies to"),
              "seed": (int, 1, "the generator's seed for the share")}

    def __init__(self, params):
        super().__init__(params)
        self.lock = threading.Lock()
        self.chosen = {}        # packet (or conversation) -> applies
        self.issued = set()     # tool_use ids of the commands this deviation asked for

    def applies(self, key: str) -> bool:
        with self.lock:
            if key not in self.chosen:
                self.chosen[key] = self.p["rate"] >= 1 or self.rng.random() < self.p["rate"]
            return self.chosen[key]

    def mine(self, turn: dict, note: str, x) -> dict:
        for block in turn["content"]:
            if block["type"] == "tool_use":
                self.issued.add(block["id"])
        x.notes["deviation"] = note
        return turn

    @staticmethod
    def last(x):
        found = exchanges(x.body.get("messages") or [])
        return found[-1] if found else (None, None, None)

    @staticmethod
    def packet_read(x) -> str:
        """The output of the last read that returned something (the packet now held)."""
        for _, command, result in reversed(exchanges(x.body.get("messages") or [])):
            if command == x.cfg.read_cmd or command == RAW_READ:
                return block_text(result.get("content")).strip()
        return ""


class PythonFirst(Deviation):
    name = "python-first"
    about = "before the write, asks for python3 -c to add up the words; refused, carries on"

    def turn(self, x, turn):
        last_id, _, result = self.last(x)
        if last_id in self.issued:
            how = "refused" if result.get("is_error") else "ran"
            x.notes["deviation"] = f"python-first: python3 {how}, carrying on"
            return x.decide(rewrite(x.body, drop={last_id}))
        if turn.get("kind") != "write" or not self.applies(self.packet_read(x)):
            return turn
        hexpart = tool_command(turn).split()[-1]
        header = bytearray(bytes.fromhex(hexpart)[:20])
        header[10:12] = b"\x00\x00"
        terms = "+".join(f"0x{int.from_bytes(header[k:k + 2], 'big'):04x}" for k in range(0, 20, 2))
        command = f"python3 -c 'print(hex({terms}))'"
        return self.mine(bash_turn("Let me add up the IPv4 header words with Python to be sure.", command,
                                   "Sum the header words", "python"), "python-first: asked for python3", x)


class RawFifo(Deviation):
    name = "raw-fifo"
    about = "reads with the raw FIFO form (echo READ > FIFO && cat); refused, runs tunbridge read"

    def turn(self, x, turn):
        last_id, _, result = self.last(x)
        if last_id in self.issued:
            if result.get("is_error"):
                x.notes["deviation"] = "raw-fifo: refused, reading with tunbridge read"
                return x.decide(rewrite(x.body, drop={last_id}))
            x.notes["deviation"] = "raw-fifo: the raw read ran"
            return x.decide(rewrite(x.body, rename={last_id: x.cfg.read_cmd}))
        if turn.get("kind") != "read":
            return turn
        key = hashlib.sha256(json.dumps(x.body.get("messages"), sort_keys=True).encode()).hexdigest()
        if not self.applies(key):
            return turn
        return self.mine(bash_turn("Reading one packet through the FIFOs directly, as the README shows.",
                                   RAW_READ, "Read one packet from the FIFOs", "read"), "raw-fifo: raw read", x)


def malformed(hexstr: str, how: str) -> str:
    if how == "odd":
        return hexstr[:-1]
    if how == "short":
        return hexstr[:40]
    return "z" + hexstr[1:]


class MalformedHex(Deviation):
    name = "malformed-hex"
    about = "the first write carries bad hex (how=nonhex|odd|short); after the ERR, the right reply"
    PARAMS = dict(Deviation.PARAMS, how=(choice("nonhex", "odd", "short"), "nonhex", "what is wrong with it"))

    def turn(self, x, turn):
        last_id, _, result = self.last(x)
        if last_id in self.issued:
            if result.get("is_error") or "ERR" in block_text(result.get("content")):
                x.notes["deviation"] = "malformed-hex: ERR, writing the right reply"
                return x.decide(rewrite(x.body, drop={last_id}))
            return turn
        if turn.get("kind") != "write" or not self.applies(self.packet_read(x)):
            return turn
        prefix = x.cfg.write_cmd.split("{")[0]
        good = tool_command(turn)[len(prefix):]
        bad = x.cfg.write_cmd.format(hex=malformed(good, self.p["how"]))
        return self.mine(bash_turn(turn["content"][0].get("text", ""), bad, "Write the echo reply", "write"),
                         f"malformed-hex: {self.p['how']}", x)


class WriteTwice(Deviation):
    name = "write-twice"
    about = "writes the reply, then the same reply again"

    def turn(self, x, turn):
        last_id, command, result = self.last(x)
        prefix = x.cfg.write_cmd.split("{")[0]
        if last_id is None or last_id in self.issued or not command.startswith(prefix):
            return turn
        if result.get("is_error") or not self.applies(self.packet_read(x)):
            return turn
        return self.mine(bash_turn("Writing it once more to be sure it went out.", command,
                                   "Write the echo reply again", "write"), "write-twice: second write", x)


class NoWrite(Deviation):
    name = "no-write"
    about = "reads and builds the reply, then stops, saying it wrote it"

    def turn(self, x, turn):
        if turn.get("kind") != "write" or not self.applies(self.packet_read(x)):
            return turn
        x.notes["deviation"] = "no-write: stopped without writing"
        return text_turn(turn["content"][0].get("text", "") + " Replied: the write returned OK.", "no_write")


KINDS = (PythonFirst, RawFifo, MalformedHex, WriteTwice, NoWrite)
