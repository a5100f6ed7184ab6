"""harness/session.py: Claude Code's streamed events, stamped and read back."""

import json
import os
import tempfile
import unittest

from harness import session, wire

PACKET = wire.echo_request(0x41AE, 5).hex()


def events(model="claude-haiku-4-5"):
    """One answered ping as Claude Code streams it (what the tracker reads of it)."""
    read, write = "toolu_read", "toolu_write"
    return [
        {"type": "system", "subtype": "init"},
        {"type": "system", "status": "requesting"},
        {"type": "stream_event", "event": {"type": "message_start", "message": {
            "model": model, "usage": {"input_tokens": 100, "cache_read_input_tokens": 900}}}},
        {"type": "stream_event", "event": {"type": "content_block_delta", "delta": {"text": "hi"}}},
        {"type": "stream_event", "event": {"type": "message_delta", "usage": {"output_tokens": 30}}},
        {"type": "stream_event", "event": {"type": "message_stop"}},
        {"type": "assistant", "message": {"content": [
            {"type": "tool_use", "id": read, "input": {"command": "tunbridge read"}}]}},
        {"type": "user", "message": {"content": [
            {"type": "tool_result", "tool_use_id": read, "content": PACKET}]}},
        {"type": "system", "status": "requesting"},
        {"type": "assistant", "message": {"content": [
            {"type": "tool_use", "id": write, "input": {"command": "tunbridge write " + PACKET}}]}},
        {"type": "user", "message": {"content": [
            {"type": "tool_result", "tool_use_id": write, "content": [{"type": "text", "text": "OK"}]}]}},
        {"type": "result", "total_cost_usd": 0.01, "num_turns": 3},
    ]


class Tracking(unittest.TestCase):
    def test_phases_as_the_run_goes(self):
        t = session.Tracker()
        phases = []
        for i, ev in enumerate(events()):
            t.feed(float(i), ev)
            phases.append(t.phase)
        self.assertEqual(phases[0], "client started")
        self.assertEqual(phases[1], "model turn 1")
        self.assertEqual(phases[6], "waiting in READ")
        self.assertEqual(phases[7], "packet read")
        self.assertEqual(t.seq, "5")
        self.assertEqual(phases[9], "tool: tunbridge write 45000054")
        self.assertEqual(phases[-1], "done")

    def test_requests_tools_tokens_and_the_model_named(self):
        t = session.Tracker()
        for i, ev in enumerate(events()):
            t.feed(float(i), ev)
        self.assertEqual(len(t.requests), 2)
        self.assertEqual(t.requests[0]["usage"]["cache_read_input_tokens"], 900)
        self.assertEqual(t.requests[0]["output_tokens"], 30)
        self.assertEqual(t.models, ["claude-haiku-4-5"])
        self.assertEqual([c["key"] for c in t.calls()], [("echo", 0x41AE, 5)] * 2)
        self.assertEqual(len(t.packets()), 1)

    def test_stamp_writes_the_stream_without_deltas_and_the_result(self):
        with tempfile.TemporaryDirectory() as d:
            out, result = os.path.join(d, "c.jsonl"), os.path.join(d, "c.json")
            stamp = session.Stamp(out, result)
            for ev in events():
                stamp.line(json.dumps(ev) + "\n")
            stamp.line("not json\n")
            stamp.line("\n")
            stamp.close()
            with open(result) as f:
                self.assertEqual(json.load(f)["num_turns"], 3)
            back = session.load(out)
            self.assertEqual(len(back.requests), 2)
            self.assertEqual(back.models, ["claude-haiku-4-5"])
            with open(out) as f:
                text = f.read()
            self.assertNotIn("content_block_delta", text)
            self.assertIn('"unparsed"', text)
            self.assertEqual(len(session.load(os.path.join(d, "missing")).requests), 0)


if __name__ == "__main__":
    unittest.main()
