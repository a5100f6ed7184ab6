"""harness/bundle.py and harness/leaderboard.py: a bundle's table and result, the leaderboard,
its ordering and picture, and reading a bundle written before the package."""

import contextlib
import io
import json
import os
import tempfile
import unittest

from harness import bundle, cli, leaderboard, overhead

ARRIVAL = "2026-12-01T10:00:00.000000Z"
T0 = 1764583200.0   # ARRIVAL as unix time


def ping_text(rtt):
    if rtt is None:
        return "PING 192.0.2.2\n\n--- 192.0.2.2 ping statistics ---\n1 packets transmitted, 0 received\n"
    return (f"64 bytes from 192.0.2.2: icmp_seq=1 ttl=64 time={rtt} ms\n\n"
            "1 packets transmitted, 1 received, 0% packet loss\n")


def make_bundle(d, pings, old=False):
    """pings: [(ident, rtt or None, record dict or None)]. `old`: timeline.tsv and a
    summary.md heading as the runner before the package wrote them."""
    records, runs = [], []
    for n, (ident, rtt, record) in enumerate(pings, 1):
        with open(os.path.join(d, f"ping-{n}.txt"), "w") as f:
            f.write(ping_text(rtt))
        if record is not None:
            records.append(dict({"arrival": ARRIVAL, "id": ident, "seq": 1}, **record))
        runs.append({"tag": str(n), "start": T0 - 1, "end": T0 + 2, "status": 0, "ident": ident, "opts": ""})
    with open(os.path.join(d, "records.jsonl"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    if old:
        with open(os.path.join(d, "timeline.tsv"), "w") as f:
            f.writelines(f"{r['tag']}\t{r['start']}\t{r['end']}\t0\t{r['ident']}\t\n" for r in runs)
        with open(os.path.join(d, "summary.md"), "w") as f:
            f.write("# Experiment: dry-run, model claude-x, prompt `prompts/ping-respond.md`, "
                    "harness lean, thinking client default\n")
    else:
        with open(os.path.join(d, "runs.jsonl"), "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in runs)


ANSWERED = {"outcome": "answered", "queue_ms": 900.0, "agent_ms": 80.0, "rtt_ms": 1000.0, "verdict": "valid",
            "class": "valid", "written": True}
WRONG = dict(ANSWERED, verdict="bad ICMP checksum: got 0x1c2a, want 0x1c2b", **{"class": "icmp_checksum"})
META = {"agent": "native", "model": None, "prompt": "prompts/ping-respond.md", "harness": "default",
        "mode": "oneshot", "count": 4, "max_age": 60}


class Bundle(unittest.TestCase):
    def test_fates_in_one_field(self):
        with tempfile.TemporaryDirectory() as d:
            make_bundle(d, [(101, 1000.5, ANSWERED), (102, 990.0, WRONG), (103, None, None),
                            (104, None, {"outcome": "unanswered", "queue_ms": 10.0})])
            result = bundle.summarise(d, META, tunbridge="/nonexistent/tunbridge")
            fates = [p["fate"] for p in result["pings"]]
            self.assertEqual(fates[0], "valid")
            self.assertTrue(fates[1].startswith("bad ICMP checksum"))
            self.assertEqual(fates[2], "no request reached the bridge")
            self.assertEqual(fates[3], "read and never written")
            self.assertEqual([p["fate_kind"] for p in result["pings"]],
                             ["answered", "answered", "lost", "read_not_written"])
            self.assertEqual([p["lost"] for p in result["pings"]], [False, False, True, True])
            with open(os.path.join(d, "summary.md")) as f:
                summary = f.read()
            self.assertIn("4 pings, 2 answered in ping, 1 valid replies", summary)
            self.assertIn("Fates: answered 2, read_not_written 1, lost 1.", summary)
            with open(os.path.join(d, "timeline.json")) as f:
                rows = json.load(f)["rows"]
            self.assertEqual([r["label"] for r in rows], ["ping 1 (seq 1)", "ping 2 (seq 1)", "ping 4 (seq 1)"])
            with open(os.path.join(d, "result.json")) as f:
                self.assertEqual(json.load(f)["pings"][0]["rtt_ms"], 1000.5)

    def test_a_bundle_from_before_the_package_reads_the_same(self):
        with tempfile.TemporaryDirectory() as d:
            make_bundle(d, [(201, 1500.0, ANSWERED), (202, 1700.0, ANSWERED)], old=True)
            found = leaderboard.find_results(d)
            self.assertEqual(len(found), 1)
            row = leaderboard.row_of(found[0][1])
            self.assertEqual((row["model"], row["harness"], row["pings"], row["valid"]), ("claude-x", "lean", 2, 2))
            self.assertEqual(row["median"], 1600.0)
            self.assertFalse(os.path.exists(os.path.join(d, "result.json")), "compare writes nothing")


def result(model, rtts, valid=None, lost=(), cost=0.3, suite=None):
    valid = valid if valid is not None else [True] * len(rtts)
    pings = [{"n": i + 1, "rtt_ms": None if i in lost else r, "valid": v and i not in lost, "lost": i in lost,
              "agent_ms": 50.0, "requests": 3, "tool_calls": 2, "input_tokens": 1000, "cached_tokens": 100,
              "output_tokens": 50} for i, (r, v) in enumerate(zip(rtts, valid))]
    out = {"meta": {"agent": "dry-run", "model": model, "prompt": "prompts/ping-respond.md",
                    "harness": "default"}, "pings": pings, "models": [model], "cost_usd": cost * len(pings)}
    if suite:
        out["suite"] = suite
    return out


class Leaderboard(unittest.TestCase):
    def test_clean_configurations_first_by_median_then_the_rest(self):
        rows = [leaderboard.row_of(result("slow", [3000, 3100, 2900])),
                leaderboard.row_of(result("wrong", [100, 110, 120], valid=[True, False, True])),
                leaderboard.row_of(result("fast", [1000, 1100, 900])),
                leaderboard.row_of(result("lossy", [800, 900, 700], lost=[1]))]
        self.assertEqual([r["model"] for r in leaderboard.order(rows)], ["fast", "slow", "wrong", "lossy"])

    def test_markdown_has_every_column_and_the_interval(self):
        rows = [leaderboard.row_of(result("m", [1000, 1100, 900], suite={"passed": 18, "run": 19}))]
        text = leaderboard.markdown(rows)
        head, rule, line = [line for line in text.splitlines() if line.startswith("|")]
        self.assertEqual(head.count("|"), line.count("|"))
        self.assertEqual(rule.count("|"), line.count("|"))
        self.assertIn("| 1 | m | ping-respond.md | default | default | 3 | 100 | 1000.0 [", line)
        self.assertIn("| 0.3000 | - | - | 18 / 19 |", line)
        self.assertIn("[leaderboard.svg](leaderboard.svg)", text)

    def test_the_picture_marks_invalid_and_lost(self):
        rows = [leaderboard.row_of(result("m", [1000, 1100, 900], valid=[True, False, True], lost=[2]))]
        svg = leaderboard.svg(rows)
        self.assertTrue(svg.startswith("<svg"))
        self.assertEqual(svg.count('<circle cx="'), 1 + 1)         # one valid ping, and the legend's dot
        self.assertEqual(svg.count('stroke="#d62728"'), 1 + 1)      # one invalid cross, and the legend's
        self.assertEqual(svg.count('fill="#888"'), 1 + 1)           # one lost triangle, and the legend's
        self.assertIn("log scale", svg)
        self.assertIn("#1 m, ping-respond.md, default", svg)

    def test_a_configuration_without_pings_has_a_row(self):
        text = leaderboard.markdown([leaderboard.row_of({"meta": {"agent": "dry-run"}, "pings": [],
                                                         "error": "the bridge did not start"})])
        self.assertIn("failed: the bridge did not start", text)


FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def continuous_bundle(d, variant, harness="default", prompt="prompts/ping-serve.md"):
    """A copy of a real four-ping session (Claude Code 2.1.332, the scripted model, the bridge)
    in `d`, summarised: two-call (/ping-serve), one-call (/ping-serve-next) or mcp."""
    src = os.path.join(FIXTURES, f"continuous-{variant}")
    for name in os.listdir(src):
        with open(os.path.join(src, name)) as f, open(os.path.join(d, name), "w") as g:
            g.write(f.read())
    meta = {"agent": "dry-run", "model": None, "prompt": prompt, "harness": harness, "mode": "continuous",
            "count": 4, "max_age": 30, "interval": 0.5, "session_packets": 4, "client_version": "2.1.332"}
    return bundle.summarise(d, meta, tunbridge="/nonexistent/tunbridge")


class CallsPerPacket(unittest.TestCase):
    def per_ping(self, variant):
        with tempfile.TemporaryDirectory() as d:
            result = continuous_bundle(d, variant)
            with open(os.path.join(d, "timeline.json")) as f:
                rows = json.load(f)["rows"]
        return [(p["requests"], p["tool_calls"], p["fate"]) for p in result["pings"]], rows

    def test_two_calls_and_two_requests_per_packet(self):
        pings, _ = self.per_ping("two-call")
        # The last packet: its write and the final report; no read after it.
        self.assertEqual(pings, [(2, 2, "valid")] * 3 + [(2, 1, "valid")])

    def test_one_call_and_one_request_per_packet_over_bash_and_mcp(self):
        for variant in ("one-call", "mcp"):
            pings, rows = self.per_ping(variant)
            self.assertEqual(pings, [(1, 1, "valid")] * 3 + [(2, 1, "valid")], variant)
            # Packet 2's row: the call that handed it over, from its arrival; one request; the
            # call that wrote it (and waits for the next) drawn up to the reply, not past it.
            spans = rows[1]["spans"]
            agent = next(s for s in spans if s["phase"] == "agent")
            tools = [s for s in spans if s["phase"] == "tool"]
            self.assertEqual(len(tools), 2, variant)
            self.assertEqual(tools[0]["start"], 0.0)
            self.assertLessEqual(tools[1]["end"], agent["end"] + 1e-9)
            self.assertEqual(sum(1 for s in spans if s["phase"] == "model"), 1, variant)

    def test_the_overhead_table_from_the_sessions(self):
        with tempfile.TemporaryDirectory() as out:
            for variant, harness, prompt in (("two-call", "default", "prompts/ping-serve.md"),
                                             ("one-call", "default", "prompts/ping-serve-next.md"),
                                             ("mcp", "mcp", "prompts/ping-serve-mcp.md")):
                for load in ("idle", "saturated"):
                    d = os.path.join(out, "r1", f"2.1.332-{load}", variant)
                    os.makedirs(d)
                    continuous_bundle(d, variant, harness, prompt)
            overhead.summarise(out, show=False)
            with open(os.path.join(out, "overhead.json")) as f:
                rows = {r["variant"]: r for r in json.load(f)["rows"]}
        self.assertEqual(sorted(rows), ["mcp", "one-call", "two-call"])
        # Four packets; the session's first request (the first read) and its last (the report)
        # are in the totals: 2 x 4 + 1 requests and 2 x 4 calls with two calls per packet,
        # 4 + 2 and 4 + 1 with one.
        self.assertEqual(rows["two-call"]["requests_per_packet"], 9 / 4)
        self.assertEqual(rows["two-call"]["tool_calls_per_packet"], 8 / 4)
        for one in ("one-call", "mcp"):
            self.assertEqual(rows[one]["requests_per_packet"], 6 / 4)
            self.assertEqual(rows[one]["tool_calls_per_packet"], 5 / 4)
            self.assertEqual((rows[one]["valid"], rows[one]["packets"]), (8, 8))
        self.assertEqual(len(rows["mcp"]["idle_rtt_ms"]), 3)            # packets 2 to 4 of the idle session
        self.assertEqual(len(rows["mcp"]["saturated_cycle_ms"]), 2)      # between the replies to 2, 3 and 4
        self.assertEqual(len(rows["mcp"]["cpu_ms_per_packet"]), 1)
        self.assertGreater(rows["mcp"]["cpu_ms_per_packet"][0], 0)


class Compare(unittest.TestCase):
    def test_each_row_names_its_bundle_and_no_picture_is_promised_unless_drawn(self):
        with tempfile.TemporaryDirectory() as top:
            old, new = os.path.join(top, "old"), os.path.join(top, "new")
            for d, pings in ((old, [(201, 1500.0, ANSWERED)]), (new, [(202, 1400.0, ANSWERED)])):
                os.makedirs(d)
                make_bundle(d, pings, old=True)
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                self.assertEqual(cli.cmd_compare([old, new]), 0)
            text = out.getvalue()
            self.assertIn(f"- #1 `{cli.shown_path(new)}`", text)
            self.assertIn(f"- #2 `{cli.shown_path(old)}`", text)
            self.assertFalse(cli.shown_path(old).startswith(".."))
            self.assertNotIn("leaderboard.svg", text)
            drawn = os.path.join(top, "board")
            with contextlib.redirect_stdout(io.StringIO()) as out:
                self.assertEqual(cli.cmd_compare([old, new, "--out", drawn]), 0)
            self.assertIn(os.path.join(drawn, "leaderboard.svg"), out.getvalue())
            with open(os.path.join(drawn, "leaderboard.md")) as f:
                self.assertIn("[leaderboard.svg](leaderboard.svg)", f.read())


if __name__ == "__main__":
    unittest.main()


class Costs(unittest.TestCase):
    def test_list_prices_with_the_cache_and_without(self):
        from harness import prices
        haiku = prices.price_of("claude-haiku-4-5-20251001")
        self.assertEqual((haiku.input, haiku.output), (1, 5))
        usage = {"input_tokens": 100, "cache_read_input_tokens": 1000, "cache_creation_input_tokens": 200,
                 "cache_creation": {"ephemeral_5m_input_tokens": 150, "ephemeral_1h_input_tokens": 50}}
        cached, plain = prices.cost(haiku, usage, 50)
        self.assertAlmostEqual(cached, (100 + 0.1 * 1000 + 1.25 * 150 + 2 * 50 + 5 * 50) / 1e6)
        self.assertAlmostEqual(plain, (1300 + 5 * 50) / 1e6)
        # Without the cache_creation object every write counts as 5 minutes, as Claude Code counts it.
        self.assertEqual(prices.split({"cache_creation_input_tokens": 200})["write_5m"], 200)
        self.assertEqual(prices.price_of("claude-opus-5-5").read, 0.05)
        self.assertEqual(prices.price_of("claude-opus-4-8[1m]").input, 5)
        self.assertIsNone(prices.price_of("qwen3-coder:30b"))

    def test_the_reported_cost_is_shared_by_list_price(self):
        from harness import session
        t = session.Tracker()
        t.requests = [{"model": "claude-haiku-4-5", "usage": {"input_tokens": 1000}, "output_tokens": 0},
                      {"model": "claude-haiku-4-5", "usage": {"cache_read_input_tokens": 10000}, "output_tokens": 0}]
        t.result = {"total_cost_usd": 0.004}
        (a, a_plain, a_list), (b, b_plain, b_list) = bundle.share_cost(t)
        self.assertAlmostEqual(a, 0.002)
        self.assertAlmostEqual(b, 0.002)            # 10,000 reads cost what 1,000 inputs do
        self.assertAlmostEqual(b_plain, 0.02)       # without the cache: ten times as much
        self.assertAlmostEqual((a_list, b_list), (0.001, 0.001))


class Continuous(unittest.TestCase):
    def test_drop_summaries_late_replies_and_pings_never_sent(self):
        with tempfile.TemporaryDirectory() as d:
            ident = 77
            lines = [dict(ANSWERED, arrival=ARRIVAL, id=ident, seq=1),
                     dict(ANSWERED, arrival="2026-12-01T10:00:01.000000Z", id=ident, seq=2),
                     {"arrival": "2026-12-01T10:00:02.000000Z", "id": None, "seq": None, "outcome": "stale",
                      "count": 3, "written": False,
                      "note": "3 requests dropped, arrived 2026-12-01T10:00:02.000Z to 2026-12-01T10:00:04.000Z"},
                     dict(ANSWERED, arrival=ARRIVAL, id=ident, seq=1, outcome="unmatched",
                          **{"class": "no_matching_request"})]
            with open(os.path.join(d, "records.jsonl"), "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in lines)
            with open(os.path.join(d, "ping-continuous.txt"), "w") as f:
                f.write("64 bytes from 192.0.2.2: icmp_seq=1 ttl=64 time=500 ms\n"
                        "64 bytes from 192.0.2.2: icmp_seq=2 ttl=64 time=40000 ms\n\n"
                        "5 packets transmitted, 2 received, 60% packet loss\n")
            with open(os.path.join(d, "runs.jsonl"), "w") as f:
                t0 = bundle.epoch(ARRIVAL)
                f.write(json.dumps({"tag": "s1", "start": t0 - 5, "end": t0 + 60, "status": 0, "ident": ident,
                                    "opts": ""}) + "\n")
            meta = dict(META, agent="dry-run", mode="continuous", count=6, interval=1.0, max_age=30)
            result = bundle.summarise(d, meta, tunbridge="/nonexistent/tunbridge")
            kinds = [p["fate_kind"] for p in result["pings"]]
            self.assertEqual(kinds, ["answered_twice", "late", "expired_in_queue", "expired_in_queue",
                                     "expired_in_queue", "not_sent"])
            self.assertIn("one of 3 counted together", result["pings"][2]["fate"])
            self.assertIn("it arrived while the agent had ping 2", result["pings"][2]["fate"])
