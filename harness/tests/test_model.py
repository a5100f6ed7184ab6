"""harness/model: the dialogue, the reference stack through it, flaws, and the server over
real HTTP on a loopback port (server-sent events, the model name reported back); the
behaviours are in test_behaviour.py."""

import http.client
import json
import os
import tempfile
import threading
import unittest
from types import SimpleNamespace

from harness import wire
from harness.model import deviations, dialogue, flaws
from harness.model.server import Server

REQUEST = wire.echo_request(0x41AE, 1)
BASH = [{"name": "Bash"}]


def cfg(**kw):
    base = dict(read_cmd=dialogue.READ_CMD, write_cmd=dialogue.WRITE_CMD, flaw=None, log=None,
                dump_dir=None, verbose=False, behaviour=[])
    return SimpleNamespace(**dict(base, **kw))


def body(prompt, *exchanges, model="any-model-name"):
    """A Messages request: the prompt, then (command, output) tool exchanges."""
    messages = [{"role": "user", "content": [{"type": "text", "text": prompt}]}]
    for i, (command, output) in enumerate(exchanges):
        messages.append({"role": "assistant", "content": [
            {"type": "tool_use", "id": f"t{i}", "name": "Bash", "input": {"command": command}}]})
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": f"t{i}", "content": output}]})
    return {"model": model, "tools": BASH, "messages": messages, "stream": True}


PROMPT = "# ping-respond: run `tunbridge read`"


def written(turn) -> bytes:
    command = next(b["input"]["command"] for b in turn["content"] if b["type"] == "tool_use")
    return bytes.fromhex(command.split()[-1])


class Dialogue(unittest.TestCase):
    def test_tool_calls_pair_each_result_with_its_command(self):
        messages = body(PROMPT, ("tunbridge read", "4500"), ("tunbridge write 4500", "OK"))["messages"]
        orphan = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "gone", "content": "x"}]}
        calls = dialogue.tool_calls(messages + [orphan])
        self.assertEqual([(i, c) for i, c, _ in calls],
                         [("t0", "tunbridge read"), ("t1", "tunbridge write 4500"), ("gone", None)])
        self.assertEqual([c for c, _ in dialogue.tool_exchanges(messages + [orphan])],
                         ["tunbridge read", "tunbridge write 4500", ""])
        self.assertEqual([i for i, _, _ in deviations.exchanges(messages + [orphan])], ["t0", "t1"])

    def test_read_then_a_valid_reply_then_a_report(self):
        first = dialogue.decide(body(PROMPT), cfg())
        self.assertEqual(first["kind"], "read")
        turn = dialogue.decide(body(PROMPT, ("tunbridge read", REQUEST.hex())), cfg())
        self.assertEqual(turn["kind"], "write")
        reply = written(turn)
        self.assertEqual(reply[12:16], REQUEST[16:20])
        self.assertEqual(reply[20], 0)
        self.assertTrue(wire.verifies(reply[:20]) and wire.verifies(reply[20:]))
        done = dialogue.decide(body(PROMPT, ("tunbridge read", REQUEST.hex()),
                                    ("tunbridge write " + reply.hex(), "OK")), cfg())
        self.assertEqual(done["kind"], "replied")

    def test_the_fast_procedure_agrees_with_the_full_one(self):
        fast = dialogue.decide(body("# ping-respond-fast: ...\n" + PROMPT, ("tunbridge read", REQUEST.hex())), cfg())
        full = dialogue.decide(body(PROMPT, ("tunbridge read", REQUEST.hex())), cfg())
        self.assertEqual(written(fast)[20:], written(full)[20:])

    def test_timeout_refusal_and_side_requests(self):
        self.assertEqual(dialogue.decide(body(PROMPT, ("tunbridge read", "TIMEOUT")), cfg())["kind"], "timeout")
        refused = body(PROMPT)
        refused["messages"] += [
            {"role": "assistant", "content": [{"type": "tool_use", "id": "x", "input": {"command": "tunbridge read"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "x", "is_error": True,
                                          "content": "This command requires approval"}]}]
        self.assertEqual(dialogue.decide(refused, cfg())["kind"], "refused")
        self.assertEqual(dialogue.decide({"messages": [], "tools": []}, cfg())["kind"], "side")

    def test_an_include_sent_as_its_own_user_message_is_read_with_the_command(self):
        # From Claude Code 2.1.318 an `@file` include arrives as a user message of its own
        # before the command's (captured from 2.1.332 running /ping-serve 4, texts cut);
        # a `role: "system"` message follows. Every message before the first assistant
        # message is the opening turn.
        include = ('<system-reminder>\nCalled the Read tool with the following input: '
                   '{"file_path":"/repo/prompts/ping-respond.md"}\n</system-reminder>')
        command = [{"type": "text", "text": "<system-reminder>\nResult of calling the Read tool:\n"
                    "5\t# ping-respond: ... run `tunbridge read` ...</system-reminder>"},
                   {"type": "text", "text": "<command-message>ping-serve</command-message>\n"
                    "<command-name>/ping-serve</command-name>\n<command-args>4</command-args>\n"},
                   {"type": "text", "text": "# ping-serve: answer pings one after another\n\n"
                    "Packets to serve: 4\n"}]
        request = body("")
        request["messages"] = [{"role": "user", "content": include}, {"role": "user", "content": command},
                               {"role": "system", "content": [{"type": "text", "text": "# Environment"}]}]
        self.assertEqual(dialogue.decide(request, cfg())["kind"], "read")
        self.assertEqual(dialogue.serve_limit(request), (True, 4))
        # What the assistant says later is not the opening turn.
        request["messages"] = request["messages"][:1] + [
            {"role": "assistant", "content": [{"type": "text", "text": "ping-respond: `tunbridge read`"}]},
            {"role": "user", "content": command}]
        self.assertEqual(dialogue.decide(request, cfg())["kind"], "side")

    def test_an_include_sent_as_a_system_message_after_the_command_is_read_too(self):
        # Claude Code 2.1.197 (captured running /ping-serve 2, texts cut): the command, then
        # the include in a `role: "system"` message; nothing else names ping-respond.
        command = [{"type": "text", "text": "<command-name>/ping-serve</command-name>\n<command-args>2</command-args>"},
                   {"type": "text", "text": "# ping-serve: answer pings one after another\n\nPackets to serve: 2\n"}]
        include = ('Called the Read tool with the following input: {"file_path":"/repo/prompts/ping-respond.md"}\n'
                   "Result of calling the Read tool:\n1\t---\n5\t# ping-respond: ... run `tunbridge read` ...")
        request = body("")
        request["messages"] = [{"role": "user", "content": command}, {"role": "system", "content": include}]
        self.assertEqual(dialogue.decide(request, cfg())["kind"], "read")
        self.assertEqual(dialogue.serve_limit(request), (True, 2))

    def test_the_stack_answers_silence_for_a_bad_checksum(self):
        bad = wire.spoil(REQUEST, 22)
        turn = dialogue.decide(body("# ip-stack: `tunbridge read`", ("tunbridge read", bad.hex())), cfg())
        self.assertEqual(turn["kind"], "not_answered")

    def test_flaws_change_exactly_what_they_say(self):
        good = dialogue.decide(body(PROMPT, ("tunbridge read", REQUEST.hex())), cfg())
        bad = dialogue.decide(body(PROMPT, ("tunbridge read", REQUEST.hex())), cfg(flaw="checksum"))
        self.assertFalse(wire.verifies(written(bad)[20:]))
        data = dialogue.decide(body(PROMPT, ("tunbridge read", REQUEST.hex())), cfg(flaw="data"))
        self.assertTrue(wire.verifies(written(data)[20:]))
        self.assertNotEqual(written(data), written(good))
        self.assertEqual(set(flaws.FLAWS), {"checksum", "data", "answer-all"})


class Server_(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.log = os.path.join(self.dir.name, "requests.jsonl")
        self.server = Server(("127.0.0.1", 0), cfg(log=self.log))
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def tearDown(self):
        self.server.shutdown()
        self.server.server_close()
        self.dir.cleanup()

    def post(self, payload):
        conn = http.client.HTTPConnection("127.0.0.1", self.server.server_address[1], timeout=10)
        conn.request("POST", "/v1/messages?beta=true", json.dumps(payload), {"content-type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read().decode()

    def test_streams_the_turn_under_any_model_name(self):
        status, text = self.post(body(PROMPT, model="made-up-model-7"))
        self.assertEqual(status, 200)
        events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
        self.assertEqual(events[0]["type"], "message_start")
        self.assertEqual(events[0]["message"]["model"], "made-up-model-7")
        self.assertEqual(events[-1]["type"], "message_stop")
        partial = "".join(e["delta"].get("partial_json", "") for e in events if e["type"] == "content_block_delta")
        self.assertEqual(json.loads(partial)["command"], "tunbridge read")
        with open(self.log) as f:
            logged = json.loads(f.readline())
        self.assertEqual((logged["answer"], logged["model"]), ("read", "made-up-model-7"))

    def test_bad_json_is_a_400(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.server.server_address[1], timeout=10)
        conn.request("POST", "/v1/messages", "{nope", {"content-type": "application/json"})
        self.assertEqual(conn.getresponse().status, 400)


if __name__ == "__main__":
    unittest.main()
