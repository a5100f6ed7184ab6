"""harness/fates.py and the client's evidence (harness/session.py, harness/bundle.py): the fate
of a ping from its record and from Claude Code's own events, recorded from 2.1.197 and
2.1.332 against throwaway servers (harness/tests/fixtures/*.jsonl: the stream-json of one
`claude -p` run each)."""

import json
import os
import unittest

from harness import bundle, fates, session, wire

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
PACKET = wire.echo_request(0x41AE, 5).hex()
VALID = {"outcome": "answered", "verdict": "valid", "class": "valid"}


def tracked(name) -> session.Tracker:
    t = session.Tracker()
    with open(os.path.join(FIXTURES, name + ".jsonl")) as f:
        for i, line in enumerate(f):
            t.feed(float(i), json.loads(line))
    return t


def whole_run(t: session.Tracker, status=0, stopped=None) -> fates.Evidence:
    return bundle.evidence(t, t.requests, t.calls(), ended=True, run={"status": status, "stopped": stopped})


class FromTheClientsEvents(unittest.TestCase):
    def test_refusals_from_the_tool_results_and_the_permission_denied_events(self):
        for version in ("197", "332"):
            t = tracked(f"refused-{version}")
            refused = [c["command"] for c in t.calls() if c["refused"]]
            self.assertEqual(len(refused), 2, version)
            self.assertTrue(refused[0].startswith("python3 -c"))
            self.assertTrue(refused[1].startswith('echo "READ"'))
            # `tunbridge read` failing to run (not on PATH) is an error, not a refusal.
            self.assertFalse([c for c in t.calls() if c["command"] == "tunbridge read"][0]["refused"])
        self.assertEqual(len(tracked("refused-332").denied), 2)    # 2.1.332 says so in events too

    def test_retries_by_status(self):
        t = tracked("retry-529-332")
        self.assertEqual([(r["attempt"], r["status"]) for r in t.retries], [(1, 529), (2, 529)])
        self.assertEqual(fates.retry_words(t.retries), "2 retries of a 529")
        self.assertEqual(fates.retry_words(tracked("retry-429-197").retries), "1 retry of a 429")

    def test_the_api_giving_up(self):
        for version in ("197", "332"):
            e = whole_run(tracked(f"gave-up-529-{version}"), status=1)
            kind, text = fates.classify(None, False, e, never_read_why="still queued when the bridge stopped")
            self.assertEqual(kind, "api_gave_up", version)
            self.assertIn("never read: the API gave up after 4 retries of a 529 (API Error: 529", text)

    def test_a_cut_stream_recovered_without_a_word_in_197_and_retried_in_332(self):
        old = tracked("cut-197")
        self.assertEqual((len(old.cut_streams()), old.retries), (1, []))
        new = tracked("cut-332")
        self.assertEqual(new.cut_streams(), [])
        self.assertEqual([(r["status"], r["error"]) for r in new.retries], [(None, "unknown")])
        self.assertEqual(new.requests[0]["attempts"], 2)
        kind, text = fates.classify(VALID, True, whole_run(old))
        self.assertEqual((kind, text), ("answered_after_retries", "valid; after 1 cut stream recovered without a "
                                                                  "retry event"))
        self.assertEqual(fates.classify(VALID, True, whole_run(new))[1], "valid; after 1 retry of a cut stream")

    def test_usage_from_the_delta_wins_and_a_fallback_answer_counts_its_own(self):
        t = session.Tracker()
        for i, ev in enumerate([
                {"type": "system", "status": "requesting"},
                {"type": "stream_event", "event": {"type": "message_start", "message": {
                    "model": "m", "usage": {"input_tokens": 10, "cache_read_input_tokens": 0}}}},
                {"type": "stream_event", "event": {"type": "message_delta", "usage": {
                    "input_tokens": 10, "cache_read_input_tokens": 900, "output_tokens": 30}}},
                {"type": "stream_event", "event": {"type": "message_stop"}},
                {"type": "system", "status": "requesting"},
                {"type": "stream_event", "event": {"type": "message_start", "message": {"usage": {"input_tokens": 5}}}},
                {"type": "assistant", "message": {"content": [], "usage": {"input_tokens": 7, "output_tokens": 61}}},
                {"type": "system", "status": "requesting"},
                # the cut stream's own end comes late, inside the next request: not that request's
                {"type": "stream_event", "event": {"type": "message_delta", "usage": {"output_tokens": 1}}},
                {"type": "stream_event", "event": {"type": "message_stop"}},
                {"type": "result", "total_cost_usd": 0.5}]):
            t.feed(float(i), ev)
        first, cut, third = t.requests
        self.assertEqual((first["usage"]["cache_read_input_tokens"], first["output_tokens"]), (900, 30))
        self.assertEqual((cut["cut"], cut["usage"]["input_tokens"], cut["output_tokens"]), (True, 7, 61))
        self.assertEqual((third["first_byte"], third["end"], third["cut"]), (None, None, False))


class Classify(unittest.TestCase):
    def test_answered_and_what_happened_on_the_way(self):
        e = fates.Evidence(retries=[{"status": 529}, {"status": 529}])
        self.assertEqual(fates.classify(VALID, True, e), ("answered_after_retries", "valid; after 2 retries of a 529"))
        e = fates.Evidence(refused=["python3 -c 'print(hex(0x4500+0x0054))'"])
        self.assertEqual(fates.classify(VALID, True, e),
                         ("refused_then_answered", "valid; `python3 -c 'print(hex(0x4500+0x0054))'` refused, then answered"))
        e = fates.Evidence(write_errors=["ERR bad hex: 'z' at position 0 is not a hex digit"], writes=1)
        self.assertEqual(fates.classify(VALID, True, e)[0], "malformed_then_answered")
        dup = [{"outcome": "unmatched", "class": "no_matching_request"}]
        self.assertEqual(fates.classify(VALID, True, fates.Evidence(writes=2), dup),
                         ("answered_twice", "valid; written twice: first valid, second no_matching_request"))
        self.assertEqual(fates.classify(VALID, True, fates.Evidence(fallback="claude-sonnet-4-6"))[0],
                         "answered_by_fallback_model")
        wrong = dict(VALID, verdict="bad ICMP checksum: got 0x1c2a, want 0x1c2b", **{"class": "icmp_checksum"})
        self.assertEqual(fates.classify(wrong, True, fates.Evidence()), ("answered", wrong["verdict"]))
        self.assertEqual(fates.classify(VALID, False, fates.Evidence())[0], "late")

    def test_read_and_not_answered_says_why(self):
        unanswered = {"outcome": "unanswered"}
        self.assertEqual(fates.classify(unanswered, False, fates.Evidence(read=True)),
                         ("read_not_written", "read and never written"))
        e = fates.Evidence(read=True, write_errors=["ERR bad hex: odd number of digits"])
        self.assertEqual(fates.classify(unanswered, False, e)[0], "malformed_write")
        e = fates.Evidence(read=True, refused=["python3 -c 'x'"])
        self.assertEqual(fates.classify(unanswered, False, e)[0], "refused")
        for result, status, stopped, kind in (
                ({"subtype": "error_max_budget_usd", "is_error": True}, 1, None, "budget_exhausted"),
                ({"subtype": "error_max_turns", "is_error": True}, 1, None, "max_turns"),
                ({"is_error": True, "result": "Prompt is too long · the provider said: request (21412 tokens) "
                  "exceeds the available context size (8192 tokens)"}, 1, None, "context_too_small"),
                ({"is_error": True, "api_error_status": 500, "result": "API Error: 500"}, 1, None, "api_gave_up"),
                (None, -15, "timeout", "client_timeout"),
                (None, -2, "interrupted", "interrupted"),
                (None, 3, None, "client_crashed")):
            e = fates.Evidence(read=True, ended=True, result=result, status=status, stopped=stopped)
            self.assertEqual(fates.classify(unanswered, False, e)[0], kind, kind)

    def test_never_read(self):
        self.assertEqual(fates.classify({"outcome": "stale"}, False, fates.Evidence())[0], "expired_in_queue")
        self.assertEqual(fates.classify({"outcome": "overflow"}, False, fates.Evidence())[0], "overflow")
        self.assertEqual(fates.classify(None, False, fates.Evidence()), ("lost", "no request reached the bridge"))
        e = fates.Evidence(ended=True, stopped="interrupted")
        self.assertEqual(fates.classify({"outcome": "queued"}, False, e, never_read_why="still queued")[0],
                         "interrupted")

    def test_every_kind_is_documented(self):
        for kind in fates.KINDS:
            self.assertIn(f"    {kind} ", fates.__doc__)


if __name__ == "__main__":
    unittest.main()
