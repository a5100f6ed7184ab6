"""harness/model: the behaviours (latency, thinking, errors, deviations), their specs, and
what the server sends for each over real HTTP on a loopback port."""

import http.client
import json
import threading
import unittest

from harness import wire
from harness.model import dialogue
from harness.model.behaviour import Behaviours, split
from harness.model.deviations import RAW_READ
from harness.model.server import Server, sse_events, usage_for
from harness.model.spec import BehaviourError, Exchange
from harness.model.thinking import Signer
from harness.tests.test_model import PROMPT, body, cfg

REQUEST = wire.echo_request(0x41AE, 1)


def exchange(b, spec_cfg=None, sleeps=None):
    c = spec_cfg or cfg()
    return Exchange(body=b, raw=json.dumps(b).encode(), now=0.0, n=1, stream=b.get("stream", True), cfg=c,
                    decide=lambda x: dialogue.decide(x, c), sleep=(sleeps.append if sleeps is not None else None))


def run_turn(specs, b):
    """What the behaviours make of the dialogue's turn for request `b`."""
    bs = Behaviours.parse(specs)
    x = exchange(b)
    return bs.turn(x, dialogue.decide(b, x.cfg)), x


def refused(b, command, text="This command requires approval"):
    """`b` plus an exchange whose command the permissions refused."""
    out = json.loads(json.dumps(b))
    out["messages"] += [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "tx", "name": "Bash", "input": {"command": command}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tx", "is_error": True, "content": text}]}]
    return out


def answered_by(b, turn, output, is_error=False):
    """`b` plus the turn's tool call and its result."""
    out = json.loads(json.dumps(b))
    use = next(x for x in turn["content"] if x["type"] == "tool_use")
    out["messages"] += [{"role": "assistant", "content": turn["content"]},
                        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use["id"],
                                                      "is_error": is_error, "content": output}]}]
    return out


def command_of(turn):
    return next((b["input"]["command"] for b in turn["content"] if b["type"] == "tool_use"), None)


AFTER_READ = body(PROMPT, ("tunbridge read", REQUEST.hex()))


class Specs(unittest.TestCase):
    def test_a_comma_starts_a_new_spec_only_before_a_name(self):
        self.assertEqual(split("latency:profile=haiku-4.5,errors:rate=0.2;kinds=429,529,python-first"),
                         ["latency:profile=haiku-4.5", "errors:rate=0.2;kinds=429,529", "python-first"])
        bs = Behaviours.parse(["latency:profile=haiku-4.5,errors:rate=0.2;kinds=429,529", "pace=2"])
        self.assertEqual(sorted(bs.names), ["errors", "latency", "pace"])
        errors = next(b for b in bs.items if b.name == "errors")
        self.assertEqual((errors.p["rate"], errors.p["kinds"]), (0.2, ["429", "529"]))

    def test_the_short_form_sets_the_main_parameter(self):
        bs = Behaviours.parse(["latency=sonnet-4.6,errors=0.5,thinking=300"])
        p = {b.name: b.p for b in bs.items}
        self.assertEqual((p["latency"]["profile"], p["errors"]["rate"], p["thinking"]["tokens"]),
                         ("sonnet-4.6", 0.5, 300))

    def test_bad_specs_are_one_line_errors(self):
        for spec, words in (("teleport", "unknown behaviour"), ("errors:rate=2", "rate"),
                            ("errors:kinds=418", "kinds"), ("latency:speed=9", "no parameter 'speed'"),
                            ("latency:profile=gpt", "profile"), ("python-first=3", "takes no value"),
                            ("errors:rate", "key=value"), ("caching,caching", "given twice")):
            with self.assertRaises(BehaviourError, msg=spec) as e:
                Behaviours.parse([spec])
            self.assertIn(words, str(e.exception))
            self.assertNotIn("\n", str(e.exception))

    def test_hooks_run_in_a_fixed_order_whatever_the_order_given(self):
        self.assertEqual(Behaviours.parse(["latency,thinking,errors,python-first"]).names,
                         ["python-first", "thinking", "errors", "latency"])


class Latency(unittest.TestCase):
    def test_first_token_then_every_delta_at_the_rate(self):
        turn = dialogue.decide(AFTER_READ, cfg())
        msg = {"id": "m", "type": "message", "role": "assistant", "model": "x", "content": turn["content"],
               "stop_reason": "tool_use", "stop_sequence": None, "usage": usage_for(1000, turn)}
        sleeps = []
        bs = Behaviours.parse(["latency:ttft=2;tps=100;scale=0.5"])
        x = exchange(AFTER_READ, sleeps=sleeps)
        events = list(bs.events(x, sse_events(msg, turn)))
        self.assertEqual([e for e, _ in events][:3], ["message_start", "ping", "content_block_start"])
        self.assertEqual(sleeps[0], 1.0)      # 2 s to the first token, scaled
        streamed = sum(len(d["delta"].get("text") or d["delta"].get("partial_json") or "")
                       for e, d in events if e == "content_block_delta")
        self.assertAlmostEqual(sum(sleeps[1:]), streamed / 4 / 100 * 0.5, delta=0.05)

    def test_a_profile_names_published_figures(self):
        b = Behaviours.parse(["latency=opus-4.1"]).items[0]
        self.assertEqual((b.ttft, b.tps), (2.7, 45.0))

    def test_pace_waits_before_main_loop_turns_only(self):
        sleeps = []
        bs = Behaviours.parse(["pace=2"])
        bs.before_turn(exchange(AFTER_READ, sleeps=sleeps), {"kind": "read"})
        bs.before_turn(exchange(AFTER_READ, sleeps=sleeps), {"kind": "side"})
        self.assertEqual(sleeps, [2.0])


class Thinking(unittest.TestCase):
    def thinking_body(self, **thinking):
        return dict(AFTER_READ, thinking=dict({"type": "adaptive"}, **thinking))

    def test_a_signed_block_with_the_checksum_working_before_the_write(self):
        turn, x = run_turn(["thinking"], self.thinking_body())
        block = turn["content"][0]
        self.assertEqual(block["type"], "thinking")
        self.assertIn("IPv4 header: sum the 10 words", block["thinking"])
        self.assertIn("ICMP message", block["thinking"])
        self.assertTrue(Signer(1).verifies(block["signature"], block["thinking"]))
        self.assertEqual(turn["kind"], "write")
        self.assertEqual(x.notes["thinking"]["type"], "thinking")

    def test_streamed_as_thinking_deltas_then_one_signature(self):
        turn, _ = run_turn(["thinking:tokens=100"], self.thinking_body())
        msg = {"usage": usage_for(100, turn), "content": turn["content"]}
        events = [(e, d) for e, d in sse_events(msg, turn) if d.get("index") == 0]
        start = events[0][1]["content_block"]
        self.assertEqual(start, {"type": "thinking", "thinking": "", "signature": ""})
        kinds = [d["delta"]["type"] for e, d in events if e == "content_block_delta"]
        self.assertEqual(kinds[-1], "signature_delta")
        self.assertEqual(set(kinds[:-1]), {"thinking_delta"})
        self.assertEqual(sum(len(d["delta"].get("thinking", "")) for _, d in events if "delta" in d), 400)
        self.assertEqual(events[-1][0], "content_block_stop")

    def test_omitted_display_sends_only_the_signature(self):
        turn, _ = run_turn(["thinking"], self.thinking_body(display="omitted"))
        events = list(sse_events({"usage": usage_for(100, turn), "content": turn["content"]}, turn))
        kinds = [d["delta"]["type"] for e, d in events if e == "content_block_delta" and d["index"] == 0]
        self.assertEqual(kinds, ["signature_delta"])

    def test_no_thinking_unless_the_request_asks(self):
        for thinking in (None, {"type": "disabled"}):
            b = dict(AFTER_READ, thinking=thinking) if thinking else AFTER_READ
            turn, _ = run_turn(["thinking"], b)
            self.assertNotEqual(turn["content"][0]["type"], "thinking")

    def test_a_budget_caps_it(self):
        turn, _ = run_turn(["thinking:tokens=5000"], self.thinking_body(type="enabled", budget_tokens=1024))
        self.assertEqual(len(turn["content"][0]["thinking"]), 1024 * 4)

    def test_a_changed_block_sent_back_gets_the_apis_400(self):
        bs = Behaviours.parse(["thinking"])
        turn, _ = run_turn(["thinking"], self.thinking_body())
        good = answered_by(self.thinking_body(), turn, "OK")
        self.assertIsNone(bs.respond(exchange(good), {"kind": "replied"}))
        omitted = json.loads(json.dumps(good))
        omitted["messages"][-2]["content"][0]["thinking"] = ""     # display omitted: text empty, signature kept
        self.assertIsNone(bs.respond(exchange(omitted), {"kind": "replied"}))
        tampered = json.loads(json.dumps(good))
        tampered["messages"][-2]["content"][0]["thinking"] += " (edited)"
        reply = bs.respond(exchange(tampered), {"kind": "replied"})
        self.assertEqual(reply.status, 400)
        self.assertEqual(reply.body["error"]["type"], "invalid_request_error")
        self.assertIn("Invalid `signature` in `thinking` block", reply.body["error"]["message"])


class Errors(unittest.TestCase):
    def draws(self, spec, n):
        b = Behaviours.parse([spec]).items[0]
        return [b.draw() for _ in range(n)]

    def test_the_same_seed_fails_the_same_attempts(self):
        a = self.draws("errors:rate=0.3;seed=7", 200)
        self.assertEqual(a, self.draws("errors:rate=0.3;seed=7", 200))
        self.assertNotEqual(a, self.draws("errors:rate=0.3;seed=8", 200))
        self.assertAlmostEqual(sum(k is not None for k in a) / 200, 0.3, delta=0.1)
        self.assertEqual(set(a) - {None}, {"429", "529", "500", "cut", "sse-error"})

    def test_bursts_and_exact_attempts(self):
        self.assertEqual(self.draws("errors:at=2;kinds=529;burst=2", 5), [None, "529", "529", None, None])
        self.assertEqual(self.draws("errors:rate=1;kinds=500", 3), ["500"] * 3)
        self.assertEqual(self.draws("errors:rate=0", 50), [None] * 50)

    def test_http_errors_in_the_apis_words(self):
        b = Behaviours.parse(["errors:rate=1;kinds=429;retry-after=3"])
        reply = b.respond(exchange(AFTER_READ), {"kind": "write"})
        self.assertEqual(reply.status, 429)
        self.assertEqual(reply.headers["retry-after"], "3")
        self.assertIn("anthropic-ratelimit-requests-remaining", reply.headers)
        self.assertEqual(reply.body["error"]["type"], "rate_limit_error")
        for kind, status, name in (("529", 529, "overloaded_error"), ("500", 500, "api_error")):
            reply = Behaviours.parse([f"errors:rate=1;kinds={kind}"]).respond(exchange(AFTER_READ), {"kind": "read"})
            self.assertEqual((reply.status, reply.body["error"]["type"]), (status, name))

    def stream(self, spec, b=AFTER_READ):
        bs = Behaviours.parse([spec])
        x = exchange(b)
        turn = dialogue.decide(b, x.cfg)
        self.assertIsNone(bs.respond(x, turn))
        msg = {"usage": usage_for(100, turn), "content": turn["content"]}
        return list(bs.events(x, sse_events(msg, turn))), x

    def test_a_cut_stream_ends_mid_message(self):
        events, x = self.stream("errors:rate=1;kinds=cut")
        self.assertEqual([e for e, _ in events], ["message_start", "ping", "content_block_start"])
        self.assertEqual(x.notes["fault"], "cut")
        events, _ = self.stream("errors:rate=1;kinds=cut;cut-at=mid-tool")
        self.assertEqual(events[-1][1]["delta"]["type"], "input_json_delta")
        self.assertNotIn("message_delta", [e for e, _ in events])

    def test_an_sse_error_event_then_the_end(self):
        events, _ = self.stream("errors:rate=1;kinds=sse-error")
        self.assertEqual(events[-1], ("error", {"type": "error", "error": {"type": "overloaded_error",
                                                                          "message": "Overloaded"}}))

    def test_a_non_streaming_request_is_answered_when_a_cut_is_drawn(self):
        b = dict(AFTER_READ, stream=False)
        bs = Behaviours.parse(["errors:rate=1;kinds=cut"])
        x = exchange(b)
        self.assertIsNone(bs.respond(x, {"kind": "write", "content": []}))
        self.assertIn("not streaming", x.notes["fault"])


class Deviations(unittest.TestCase):
    def test_python_first_then_the_write_after_the_refusal(self):
        b = Behaviours.parse(["python-first"])      # one behaviour: it knows the commands it asked for
        x = exchange(AFTER_READ)
        turn = b.turn(x, dialogue.decide(AFTER_READ, x.cfg))
        self.assertTrue(command_of(turn).startswith("python3 -c 'print(hex(0x4500+"))
        after = answered_by(AFTER_READ, turn, "This command requires approval", is_error=True)
        x2 = exchange(after)
        nxt = b.turn(x2, dialogue.decide(after, x2.cfg))
        self.assertEqual(nxt["kind"], "write")
        self.assertTrue(command_of(nxt).startswith("tunbridge write 4500"))
        self.assertIn("refused, carrying on", x2.notes["deviation"])

    def test_raw_fifo_then_tunbridge_read_after_the_refusal(self):
        b = Behaviours.parse(["raw-fifo"])
        start = body(PROMPT)
        x = exchange(start)
        turn = b.turn(x, dialogue.decide(start, x.cfg))
        self.assertEqual(command_of(turn), RAW_READ)
        after = answered_by(start, turn, "This Bash command contains multiple operations. The following parts "
                            "require approval: echo \"READ\"", is_error=True)
        x2 = exchange(after)
        self.assertEqual(command_of(b.turn(x2, dialogue.decide(after, x2.cfg))), "tunbridge read")
        ran = answered_by(start, turn, REQUEST.hex())        # allowed (auto mode): it goes on with the packet
        x3 = exchange(ran)
        self.assertEqual(b.turn(x3, dialogue.decide(ran, x3.cfg))["kind"], "write")

    def test_malformed_hex_then_the_right_reply_after_the_err(self):
        b = Behaviours.parse(["malformed-hex"])
        x = exchange(AFTER_READ)
        right = dialogue.decide(AFTER_READ, x.cfg)
        turn = b.turn(x, right)
        self.assertTrue(command_of(turn).startswith("tunbridge write z"))
        after = answered_by(AFTER_READ, turn, "Exit code 1\nERR bad hex: 'z' at position 0 is not a hex digit",
                            is_error=True)
        x2 = exchange(after)
        self.assertEqual(command_of(b.turn(x2, dialogue.decide(after, x2.cfg))), command_of(right))
        for how, check in (("odd", lambda h: len(h) % 2 == 1), ("short", lambda h: len(h) == 40)):
            t = Behaviours.parse([f"malformed-hex:how={how}"]).turn(exchange(AFTER_READ), right)
            self.assertTrue(check(command_of(t).split()[-1]), how)

    def test_write_twice_writes_the_same_reply_again_then_reports(self):
        b = Behaviours.parse(["write-twice"])
        x = exchange(AFTER_READ)
        first = b.turn(x, dialogue.decide(AFTER_READ, x.cfg))
        after = answered_by(AFTER_READ, first, "OK")
        x2 = exchange(after)
        second = b.turn(x2, dialogue.decide(after, x2.cfg))
        self.assertEqual(command_of(second), command_of(first))
        done = answered_by(after, second, "OK")
        x3 = exchange(done)
        self.assertEqual(b.turn(x3, dialogue.decide(done, x3.cfg))["kind"], "replied")

    def test_no_write_claims_the_write_and_stops(self):
        turn, x = run_turn(["no-write"], AFTER_READ)
        self.assertEqual((turn["kind"], turn["stop_reason"]), ("no_write", "end_turn"))
        self.assertIsNone(command_of(turn))
        self.assertIn("write returned OK", turn["content"][0]["text"])

    def test_a_share_of_the_packets_seeded(self):
        b, again = (Behaviours.parse(["no-write:rate=0.5;seed=3"]).items[0] for _ in range(2))
        picks = [b.applies(f"packet {i}") for i in range(100)]
        self.assertEqual(picks, [again.applies(f"packet {i}") for i in range(100)])
        self.assertTrue(20 < sum(picks) < 80)
        self.assertEqual(b.applies("packet 1"), picks[1])    # the same packet, the same answer (a retry)


class OverHttp(unittest.TestCase):
    """What the server sends with behaviours on, read back as a client reads it."""

    def serve(self, *specs):
        server = Server(("127.0.0.1", 0), cfg(behaviour=list(specs)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        return server.server_address[1]

    def post(self, port, payload):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.addCleanup(conn.close)
        conn.request("POST", "/v1/messages?beta=true", json.dumps(payload), {"content-type": "application/json"})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read().decode()

    @staticmethod
    def events(text):
        return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]

    def test_a_429_with_retry_after(self):
        status, headers, text = self.post(self.serve("errors:rate=1;kinds=429;retry-after=2"), AFTER_READ)
        self.assertEqual((status, headers.get("retry-after")), (429, "2"))
        self.assertEqual(json.loads(text)["error"]["type"], "rate_limit_error")

    def test_a_cut_stream_is_closed_before_message_stop(self):
        status, _, text = self.post(self.serve("errors:rate=1;kinds=cut"), AFTER_READ)
        self.assertEqual(status, 200)
        self.assertEqual([e["type"] for e in self.events(text)], ["message_start", "ping", "content_block_start"])

    def test_usage_with_caching_in_message_start_and_again_in_message_delta(self):
        port = self.serve("caching:min=10")
        b = dict(AFTER_READ, system=[{"type": "text", "text": "s" * 4000, "cache_control": {"type": "ephemeral"}}])
        _, _, first = self.post(port, b)
        _, _, second = self.post(port, b)
        start = self.events(second)[0]["message"]["usage"]
        delta = next(e for e in self.events(second) if e["type"] == "message_delta")["usage"]
        self.assertGreater(start["cache_read_input_tokens"], 1000)
        self.assertEqual(start["cache_creation"], {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0})
        self.assertEqual(delta["cache_read_input_tokens"], start["cache_read_input_tokens"])
        self.assertGreater(delta["output_tokens"], 1)
        self.assertGreater(self.events(first)[0]["message"]["usage"]["cache_creation_input_tokens"], 1000)


if __name__ == "__main__":
    unittest.main()
