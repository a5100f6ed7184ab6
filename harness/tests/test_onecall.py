"""harness/model/onecall.py: the scripted model under the one-call prompts, over Bash
(`tunbridge write <hex> --next`) and over the MCP tools."""

import unittest

from harness import wire
from harness.model import dialogue, onecall

FIRST = wire.echo_request(0x1C2A, 1)
SECOND = wire.echo_request(0x1C2A, 2)
MCP_TOOLS = [{"name": "Bash"}] + [{"name": onecall.MCP + t} for t in
                                  ("read_packet", "write_packet", "write_and_read_next")]


def body(prompt, tools, *calls):
    """A request: the prompt, then (tool name, input, result text[, is_error]) calls."""
    messages = [{"role": "user", "content": [{"type": "text", "text": prompt}]}]
    for i, call in enumerate(calls):
        name, args, text = call[:3]
        messages.append({"role": "assistant", "content": [
            {"type": "tool_use", "id": f"t{i}", "name": name, "input": args}]})
        result = {"type": "tool_result", "tool_use_id": f"t{i}", "content": text}
        if len(call) > 3:
            result["is_error"] = call[3]
        messages.append({"role": "user", "content": [result]})
    return {"tools": tools, "messages": messages}


def decide(b):
    return onecall.decide(b, dialogue.opening_text(b), dialogue.answer_echo)


def use(turn):
    return next(x for x in turn["content"] if x["type"] == "tool_use")


def bash(command, text, is_error=False):
    return ("Bash", {"command": command}, text, is_error)


class Bash(unittest.TestCase):
    PROMPT = "# ping-serve-next: ...\nPackets to serve: 2\nRun `tunbridge read` ..."

    def test_reads_then_writes_with_next_then_the_last_one_plainly(self):
        first = decide(body(self.PROMPT, [{"name": "Bash"}]))
        self.assertEqual(use(first)["input"]["command"], "tunbridge read")
        turn = decide(body(self.PROMPT, [{"name": "Bash"}], bash("tunbridge read", FIRST.hex())))
        command = use(turn)["input"]["command"]
        self.assertTrue(command.startswith("tunbridge write ") and command.endswith(" --next"), command)
        reply = bytes.fromhex(command.split()[2])
        self.assertTrue(wire.verifies(reply[:20]) and wire.verifies(reply[20:]))
        # The second packet is the last of 2: a plain write, then the report.
        calls = [bash("tunbridge read", FIRST.hex()), bash(command, "OK\n" + SECOND.hex())]
        turn = decide(body(self.PROMPT, [{"name": "Bash"}], *calls))
        self.assertFalse(use(turn)["input"]["command"].endswith("--next"))
        last = use(turn)["input"]["command"]
        done = decide(body(self.PROMPT, [{"name": "Bash"}], *calls, bash(last, "OK")))
        self.assertEqual(done["kind"], "served")
        self.assertIn("#2 id 0x1c2a seq 2, 56 B: OK", done["content"][0]["text"])

    def test_a_refused_write_still_carries_the_next_packet(self):
        calls = [bash("tunbridge read", FIRST.hex()),
                 bash("tunbridge write 00 --next", "Exit code 1\nERR bad packet\n" + SECOND.hex(), True)]
        turn = decide(body("# ping-serve-next: ...\nPackets to serve: 3", [{"name": "Bash"}], *calls))
        self.assertEqual(turn["kind"], "write")
        reply = bytes.fromhex(use(turn)["input"]["command"].split()[2])
        self.assertEqual(reply[26:28], SECOND[26:28])

    def test_timeout_a_failed_read_and_a_refusal_end_the_run(self):
        prompt = "# ping-serve-next: ...\nPackets to serve: "
        calls = [bash("tunbridge read", FIRST.hex())]
        timeout = decide(body(prompt, [{"name": "Bash"}], *calls, bash("tunbridge write 45 --next", "OK\nTIMEOUT")))
        self.assertEqual(timeout["kind"], "served")
        self.assertIn("TIMEOUT", timeout["content"][0]["text"])
        cut = decide(body(prompt, [{"name": "Bash"}], *calls,
                          bash("tunbridge write 45 --next", "Exit code 3\nOK\ntunbridge: no next packet: x", True)))
        self.assertIn("a read failed", cut["content"][0]["text"])
        refused = decide(body(prompt, [{"name": "Bash"}], bash("tunbridge read", "This command requires approval", True)))
        self.assertEqual(refused["kind"], "refused")


class Mcp(unittest.TestCase):
    def test_serves_with_the_mcp_tools(self):
        prompt = "# ping-serve-mcp: ...\nPackets to serve: 2"
        first = decide(body(prompt, MCP_TOOLS))
        self.assertEqual(use(first)["name"], onecall.MCP + "read_packet")
        calls = [(onecall.MCP + "read_packet", {}, [{"type": "text", "text": FIRST.hex()}])]
        turn = decide(body(prompt, MCP_TOOLS, *calls))
        self.assertEqual(use(turn)["name"], onecall.MCP + "write_and_read_next")
        calls.append((onecall.MCP + "write_and_read_next", use(turn)["input"], "OK\n" + SECOND.hex()))
        turn = decide(body(prompt, MCP_TOOLS, *calls))
        self.assertEqual(use(turn)["name"], onecall.MCP + "write_packet")

    def test_one_shot_reads_writes_and_reports(self):
        prompt = "# ping-respond-mcp: answer one ping"
        calls = [(onecall.MCP + "read_packet", {}, FIRST.hex())]
        turn = decide(body(prompt, MCP_TOOLS, *calls))
        self.assertEqual(use(turn)["name"], onecall.MCP + "write_packet")
        done = decide(body(prompt, MCP_TOOLS, *calls, (onecall.MCP + "write_packet", use(turn)["input"], "OK")))
        self.assertEqual(done["kind"], "replied")

    def test_other_prompts_are_not_its_business(self):
        self.assertIsNone(decide(body("# ping-serve: ...\nPackets to serve: 2", MCP_TOOLS)))
        # An MCP prompt without the MCP tools offered is not run as one.
        self.assertIsNone(decide(body("# ping-serve-mcp: ...", [{"name": "Bash"}])))

    def test_a_prompt_is_known_by_its_heading_not_by_its_name_in_passing(self):
        # Claude Code puts the git log and its list of commands in the opening turn: a commit
        # message naming ping-respond-mcp made a /ping-serve-next session stop after one
        # packet; one naming ping-serve-next must not make /ping-serve a one-call run.
        context = ("<system-reminder>Recent commits:\n7f82197 harness.rs: one ping each through "
                   "/ping-respond-mcp; /ping-serve-next answers ...\nc353285 one pattern for a serving "
                   "prompt's 'Packets to serve: N' line</system-reminder>\n")
        serve_next = context + "1\t# ping-respond: ...\n# ping-serve-next: ...\nPackets to serve: 10"
        self.assertEqual((onecall.style({"tools": MCP_TOOLS}, serve_next), onecall.limit(serve_next)), ("bash", 10))
        self.assertIsNone(decide(body(context + "# ping-serve: ...\nPackets to serve: 2", MCP_TOOLS)))
        self.assertEqual(onecall.prompts(context + "5\t# ping-respond: ...\n  # not-a-heading: x"), {"ping-respond"})


if __name__ == "__main__":
    unittest.main()
