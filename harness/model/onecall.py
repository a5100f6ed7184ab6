"""The scripted model under the one-call prompts: one tool call per packet.

`/ping-serve-next` writes each reply and reads the next packet with one Bash command,
`tunbridge write <hex> --next`; `/ping-serve-mcp` does the same with the tunbridge MCP tool
`write_and_read_next`, and `/ping-respond-mcp` answers one ping with `read_packet` and
`write_packet`. Like dialogue.py it decides each answer from the conversation alone:
the first call reads, each result that carries a packet gets its reply written (with the
next read, unless it is the last packet to serve), and a TIMEOUT, a failed read or the count
reached ends the run with the report, one line per packet. Stdlib only; dialogue.py calls
`decide` first and falls back to its own procedures when it returns None.
"""

import random
import re
import string

# The prompts, recognised by these markers in the first user turn.
NEXT_MARKER = "ping-serve-next"
MCP_SERVE_MARKER = "ping-serve-mcp"
MCP_ONESHOT_MARKER = "ping-respond-mcp"
MCP = "mcp__tunbridge__"
# The serving prompts' own line (at a line's start: the phrase in passing, as in a commit
# message of the git log Claude Code shows the model, is not it).
SERVE_COUNT = re.compile(r"(?m)^Packets to serve: *(\d*)[ \t]*$")
# A prompt's heading, "# NAME: ...", at the start of a line or of a Read result's numbered
# line (how Claude Code 2.1.318 and later pass an `@file` include).
HEADING = re.compile(r"(?m)^(?:[ \t]*\d+\t)?# ([a-z][a-z0-9-]*):")
# Claude Code's first line of a Bash result whose command exited non-zero.
EXIT_LINE = re.compile(r"^Exit code \d+$")


def prompts(first: str) -> set:
    """The prompts in the opening turn `first`, by their headings. Not by their names alone:
    those turn up in text of no meaning here (the git log and the list of commands that
    Claude Code puts in its context), where one run's commit message could change the next
    run's procedure."""
    return set(HEADING.findall(first))


def style(body: dict, first: str):
    """"bash" (one command per packet), "mcp" (the MCP tools), or None: not ours. `first`:
    the text of the user's opening turn."""
    tools = [t.get("name", "") for t in body.get("tools") or []]
    named = prompts(first)
    if NEXT_MARKER in named and "Bash" in tools:
        return "bash"
    if named & {MCP_SERVE_MARKER, MCP_ONESHOT_MARKER} and MCP + "read_packet" in tools:
        return "mcp"
    return None


def limit(first: str):
    """How many packets to serve: 1 for the one-shot prompt, N, or None (until TIMEOUT)."""
    if MCP_ONESHOT_MARKER in prompts(first):
        return 1
    match = SERVE_COUNT.search(first)
    return int(match.group(1)) if match and match.group(1) else None


def exchanges(messages) -> list:
    """Every tool_result block of the conversation with the tool_use block it answers (None
    when the conversation no longer holds it), in order: (use, result)."""
    uses, out = {}, []
    for msg in messages:
        for block in msg.get("content") if isinstance(msg.get("content"), list) else []:
            if block.get("type") == "tool_use":
                uses[block.get("id")] = block
            elif block.get("type") == "tool_result":
                out.append((uses.get(block.get("tool_use_id")), block))
    return out


def calls(messages) -> list:
    """Every tool call with its result: {name, input, lines, is_error}, in order."""
    out = []
    for use, block in exchanges(messages):
        if use is None:
            continue
        content = block.get("content")
        text = content if isinstance(content, str) else "\n".join(
            c.get("text", "") for c in content or [] if c.get("type") == "text")
        lines = [l.strip() for l in text.strip().splitlines() if l.strip()]
        if lines and EXIT_LINE.match(lines[0]):
            lines = lines[1:]
        out.append({"name": use.get("name"), "input": use.get("input") or {},
                    "lines": lines, "is_error": bool(block.get("is_error"))})
    return out


def is_hex(line: str) -> bool:
    return bool(line) and len(line) % 2 == 0 and all(c in string.hexdigits for c in line)


def reads(call: dict) -> bool:
    """Whether this call asked for a packet (a read, or a write with --next)."""
    command = call["input"].get("command", "")
    return (call["name"] in (MCP + "read_packet", MCP + "write_and_read_next")
            or command == "tunbridge read" or command.endswith(" --next"))


def writes(call: dict) -> bool:
    command = call["input"].get("command", "")
    return call["name"] in (MCP + "write_packet", MCP + "write_and_read_next") or command.startswith("tunbridge write ")


def refused(call: dict) -> bool:
    """A call the client did not run (a permission denial) rather than one the bridge answered."""
    if not call["is_error"]:
        return False
    first = call["lines"][0] if call["lines"] else ""
    return not (is_hex(first) or first.split(" ")[0] in ("OK", "ERR", "TIMEOUT", "tunbridge:"))


def report(done: list) -> list:
    """One line per packet: number, identifier, sequence, data length and the write's answer."""
    lines = []
    for n, (packet, answer) in enumerate(done, 1):
        p = bytes.fromhex(packet)
        h = (p[0] & 0x0F) * 4
        ident, seq = int.from_bytes(p[h + 4:h + 6], "big"), int.from_bytes(p[h + 6:h + 8], "big")
        lines.append(f"#{n} id 0x{ident:04x} seq {seq}, {len(p) - h - 8} B: {answer}")
    return lines


def history(cs: list):
    """The packets received so far, each with the answer its write got ("not answered" when
    none), and the packet line of the last call that read (or None)."""
    done, pending, line = [], None, None
    for call in cs:
        if writes(call) and pending is not None:
            done.append((pending, call["lines"][0] if call["lines"] else "?"))
            pending = None
        elif pending is not None:
            done.append((pending, "not answered"))
            pending = None
        if reads(call):
            want = 1 if call["name"] == MCP + "read_packet" or call["input"].get("command") == "tunbridge read" else 2
            line = call["lines"][want - 1] if len(call["lines"]) >= want else None
            if line is not None and is_hex(line):
                pending = line
    return done, pending, line


def tool_turn(say: str, how: str, name: str, hexstr: str, kind: str) -> dict:
    """A text line and one tool call: `name` is read, write or next."""
    if how == "mcp":
        tool = {"read": "read_packet", "write": "write_packet", "next": "write_and_read_next"}[name]
        use = {"name": MCP + tool, "input": {"hex": hexstr} if hexstr else {}}
    else:
        command = {"read": "tunbridge read", "write": f"tunbridge write {hexstr}",
                   "next": f"tunbridge write {hexstr} --next"}[name]
        use = {"name": "Bash", "input": {"command": command, "description": f"tunbridge {name}"}}
    tool_id = "toolu_01" + "".join(random.choices(string.ascii_letters + string.digits, k=22))
    return {"content": [{"type": "text", "text": say}, dict(use, type="tool_use", id=tool_id)],
            "stop_reason": "tool_use", "kind": kind}


def end(text: str, kind: str) -> dict:
    return {"content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "kind": kind}


def decide(body: dict, first: str, answer):
    """The next turn under the one-call prompts, or None for another prompt. `first`: the
    text of the user's opening turn; `answer(packet)`: (reply bytes or None, a line to say)."""
    how = style(body, first)
    if how is None:
        return None
    most, cs = limit(first), calls(body.get("messages", []))
    if not cs:
        return tool_turn("Reading the first packet.", how, "read", "", "read")
    last = cs[-1]
    if refused(last):
        return end(f"The call {last['name']} was not run: {' '.join(last['lines'])[:300]}", "refused")
    done, pending, line = history(cs)
    serving = most != 1
    if not reads(last) or line is None or not is_hex(line):
        why = ("the count reached" if not reads(last) else "a read returned TIMEOUT"
               if line == "TIMEOUT" else f"a read failed: {line or '(nothing)'}")
        kind = ("served" if serving else "replied" if not reads(last)
                else "timeout" if line == "TIMEOUT" else "bad_read")
        return end("\n".join(report(done) + [f"Stopped: {why}."]), kind)
    reply, say = answer(bytes.fromhex(line))
    last_one = most is not None and len(done) + 1 >= most
    if reply is None:
        if last_one:
            return end("\n".join(report(done + [(pending, 'not answered')]) + [f"Stopped: {say}"]),
                       "served" if serving else "not_answered")
        return tool_turn(say, how, "read", "", "read")
    return tool_turn(say, how, "write" if last_one else "next", reply.hex(), "write")
