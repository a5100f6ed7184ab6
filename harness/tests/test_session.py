"""harness/session.py: Claude Code's streamed events, stamped and read back."""

import json
import os
import tempfile
import unittest

from harness import session, wire

PACKET = wire.echo_request(0x41AE, 5).hex()
NEXT = wire.echo_request(0x41AE, 6).hex()


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


def one_call(calls):
    """A session's events, one tool call per packet: [(name, input, result text, is_error)]."""
    evs = [{"type": "system", "subtype": "init", "mcp_servers": [{"name": "tunbridge", "status": "connected"}]}]
    for i, (name, args, text, error) in enumerate(calls):
        evs.append({"type": "system", "status": "requesting"})
        evs.append({"type": "assistant", "message": {"content": [
            {"type": "tool_use", "id": f"t{i}", "name": name, "input": args}]}})
        if text is not None:
            evs.append({"type": "user", "message": {"content": [
                {"type": "tool_result", "tool_use_id": f"t{i}", "is_error": error,
                 "content": [{"type": "text", "text": text}]}]}})
    return evs


def track(evs):
    t = session.Tracker()
    for i, ev in enumerate(evs):
        t.feed(float(i), ev)
    return t


class OneCallPerPacket(unittest.TestCase):
    def test_write_next_hands_over_the_packet_on_its_second_line(self):
        t = track(one_call([("Bash", {"command": "tunbridge read"}, PACKET, False),
                            ("Bash", {"command": f"tunbridge write {PACKET} --next"}, f"OK\n{NEXT}", False),
                            ("Bash", {"command": f"tunbridge write --next {NEXT}"}, "OK\nTIMEOUT", False)]))
        self.assertEqual([c["key"][2] for c in t.packets()], [5, 6])
        first, second, third = t.calls()
        self.assertEqual((second["answer"], second["wrote_key"]), ("OK", ("echo", 0x41AE, 5)))
        self.assertEqual((third["answer"], third["line"], third["packet"]), ("OK", "TIMEOUT", None))
        self.assertEqual(third["wrote_key"], ("echo", 0x41AE, 6))
        self.assertEqual(len(t.reading_calls()), 3)

    def test_a_refused_write_still_carries_the_next_packet_below_the_exit_code(self):
        t = track(one_call([("Bash", {"command": "tunbridge write zz --next"},
                             f"Exit code 1\nERR bad hex: 'z' at position 0 is not a hex digit\n{NEXT}", True)]))
        call = t.calls()[0]
        self.assertTrue(call["answer"].startswith("ERR bad hex"))
        self.assertEqual(call["packet"], NEXT)
        self.assertFalse(call["refused"])
        self.assertEqual(t.seq, "6")

    def test_the_mcp_tools_read_write_and_do_both(self):
        t = track(one_call([(session.MCP_READ, {}, PACKET, False),
                            (session.MCP_NEXT, {"hex": PACKET}, f"OK\n{NEXT}", False),
                            (session.MCP_WRITE, {"hex": NEXT}, "OK", False)]))
        self.assertEqual([c["key"][2] for c in t.packets()], [5, 6])
        read, both, write = t.calls()
        self.assertEqual(read["command"], "read_packet")
        self.assertEqual(both["command"], f"write_and_read_next {PACKET}")
        self.assertEqual((write["answer"], write["reads"], write["wrote_key"]), ("OK", None, ("echo", 0x41AE, 6)))
        self.assertEqual(t.phase, f"tool: write_packet {NEXT}"[:30])

    def test_the_phase_while_a_call_waits_for_the_next_packet(self):
        evs = one_call([(session.MCP_READ, {}, PACKET, False), (session.MCP_NEXT, {"hex": PACKET}, None, False)])
        t = track(evs)
        self.assertEqual(t.phase, "waiting in READ")
        self.assertEqual(t.seq, "5")
        self.assertIs(t.waiting_read(), t.calls()[-1])
        self.assertIsNone(track(evs[:-1] + [evs[-1]] + [{"type": "user", "message": {"content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": f"OK\n{NEXT}"}]}}]).waiting_read())

    def test_a_permission_refusal_reads_nothing(self):
        t = track(one_call([(session.MCP_NEXT, {"hex": PACKET},
                             "Claude requested permissions to use mcp__tunbridge__write_and_read_next, "
                             "but you haven't granted it yet.", True)]))
        self.assertTrue(t.calls()[0]["refused"])
        self.assertEqual(t.packets(), [])

    def test_the_init_event_says_whether_the_mcp_server_connected(self):
        self.assertIsNone(session.Tracker().mcp_trouble())          # no init event yet
        self.assertIsNone(track(one_call([])).mcp_trouble())
        failed = track([{"type": "system", "subtype": "init", "mcp_servers": [
            {"name": "tunbridge", "status": "failed", "source": "dynamic"}]}]).mcp_trouble()
        self.assertIn("lists it as failed", failed)
        self.assertIn("refuses root", failed)
        self.assertIn("does not list it", track([{"type": "system", "subtype": "init"}]).mcp_trouble())


if __name__ == "__main__":
    unittest.main()
