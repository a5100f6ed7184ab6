"""The parts of a run that decide without root: the budget, the scenarios' judge, the
progress lines, the cleanup of child processes."""

import io
import os
import subprocess
import sys
import tempfile
import time
import unittest
from unittest import mock

from harness import procs, runner, scenarios
from harness.config import Config, Options
from harness.progress import Progress
from harness.runner import Budget


class BudgetTest(unittest.TestCase):
    def test_no_new_run_once_the_spend_reaches_the_limit(self):
        b = Budget(1.0)
        self.assertTrue(b.allow())
        b.add(0.6)
        self.assertTrue(b.allow())
        self.assertAlmostEqual(b.remaining(), 0.4)
        b.add(0.5)
        self.assertFalse(b.allow())
        self.assertIn("--max-cost $1 reached ($1.1000 reported spent)", b.reason)
        self.assertEqual(b.remaining(), 0.0)

    def test_no_limit(self):
        b = Budget(None)
        b.add(100)
        self.assertTrue(b.allow())
        self.assertIsNone(b.remaining())


class Judge(unittest.TestCase):
    echo = scenarios.BY_NAME["echo-56"]
    silent = scenarios.BY_NAME["bad-icmp-checksum"]

    def test_reply_scenarios(self):
        valid = {"written": True, "class": "valid", "queue_ms": 1.0, "outcome": "answered"}
        self.assertEqual(scenarios.judge(self.echo, [valid], {"client": "ping", "received": True}), (True, "valid"))
        self.assertEqual(scenarios.judge(self.echo, [valid], {"client": "ping", "received": False}),
                         (False, "valid, but ping saw no answer"))
        self.assertEqual(scenarios.judge(self.echo, [dict(valid, **{"class": "payload"})], {"received": True}),
                         (False, "payload"))
        self.assertEqual(scenarios.judge(self.echo, [], {}), (False, "the agent never read the request"))

    def test_silence_scenarios(self):
        read = {"queue_ms": 3.0, "outcome": "unanswered"}
        self.assertEqual(scenarios.judge(self.silent, [read], {"client": "inject"}), (True, "silent"))
        wrote = {"written": True, "class": "no_reply_owed", "queue_ms": 3.0, "outcome": "answered"}
        self.assertEqual(scenarios.judge(self.silent, [wrote], {}), (False, "wrote a reply (no_reply_owed)"))

    def test_selection_by_prompt_and_flaws(self):
        self.assertEqual(len(scenarios.select([], "prompts/ping-respond.md")), 11)
        self.assertEqual(len(scenarios.select([], "prompts/ip-stack.md")), 19)
        self.assertEqual([s.name for s in scenarios.select(["fragment,echo-0"], None)], ["echo-0", "fragment"])
        self.assertNotIn("data", scenarios.BY_NAME["echo-0"].caught_by)
        self.assertEqual(scenarios.BY_NAME["tcp-rst"].request_argv(30, 7)[-4:], ["--build", "tcp-rst", "--ident", "7"])


class ProgressTest(unittest.TestCase):
    def test_plain_lines_without_a_terminal(self):
        out = io.StringIO()
        with Progress(4, 2, stream=out, live=False) as p:
            p.show("#1", "ping 1/2: model turn 1, 0 s")
            p.show("#1", "ping 1/2: model turn 2, 1 s")   # within 10 s: not printed again
            p.note("    #1: ping 1/2: time=900 ms")
            p.ran(2.0)
            p.ran(4.0)
            self.assertEqual(p.summary()[:40], "2/4 agent runs, 0:00 elapsed, about 0:06")
        lines = out.getvalue().splitlines()
        self.assertEqual(lines, ["    #1: ping 1/2: model turn 1, 0 s", "    #1: ping 1/2: time=900 ms",
                                 "    1/4 agent runs, 0:00 elapsed, about 0:06 left",
                                 "    2/4 agent runs, 0:00 elapsed, about 0:06 left"])
        self.assertNotIn("\x1b", out.getvalue())

    def test_live_lines_are_redrawn_in_place(self):
        out = io.StringIO()
        with Progress(2, 1, stream=out, live=True) as p:
            p.show("#1", "ping 1/2: waiting in READ, 3 s")
            p.draw()
            p.note("    ping 1/2: time=1 ms")
        text = out.getvalue()
        self.assertIn("#1: ping 1/2: waiting in READ, 3 s", text)
        self.assertIn("\x1b[", text)

    def test_live_lines_fit_the_terminal(self):
        # A line longer than the terminal wraps, and the redraw, which moves up one row per
        # line, would leave the wrapped part behind on every round.
        out = io.StringIO()
        p = Progress(2, 1, stream=out, live=True, width=40)
        p.show("#1 model-a, ping-respond-fast.md, default echo-record-route", "ping 1/1: model turn 2, 3 s")
        p.draw()
        self.assertTrue(all(len(line) < 40 for line in out.getvalue().split("\n")), out.getvalue())

    def test_a_configuration_shows_one_live_line_whatever_it_runs(self):
        # Each scenario of the suite is a run of its own; its live line goes when it ends, so
        # the block stays one line per configuration under way (not one per scenario run).
        shown = []

        def bundle(run, config, out, key, scenario=None):
            run.progress.show(key, "ping 1/1: done, 1 s")
            shown.append(sorted(run.progress.lines))
            return {"meta": {}, "pings": []}

        with tempfile.TemporaryDirectory() as out:
            run = runner.Run(opts=Options(agent="dry-run", count=1, suite=["echo-0,fragment"]),
                             tunbridge="tunbridge", budget=Budget(None), single=False,
                             progress=Progress(3, 1, stream=io.StringIO(), live=False))
            config = Config(model="m", prompt="prompts/ping-respond.md", index=1)
            with mock.patch.object(runner, "run_bundle", bundle), mock.patch.object(procs, "chown_tree"):
                runner.run_config(run, config, os.path.join(out, "01"))
        key = f"#1 {config.label()}"
        self.assertEqual(shown, [[key], [f"{key} echo-0"], [f"{key} fragment"]])
        self.assertEqual(run.progress.lines, {})

    def test_no_estimate_before_a_run_ends(self):
        self.assertIsNone(Progress(3, 1, stream=io.StringIO(), live=False).eta())


class Cleanup(unittest.TestCase):
    def test_every_child_is_stopped_when_the_block_ends_however_it_ends(self):
        with self.assertRaises(RuntimeError):
            with procs.Procs() as group:
                a = group.start([sys.executable, "-c", "import time; time.sleep(60)"])
                b = group.start(["sh", "-c", "sleep 60 & wait"], group=True)
                raise RuntimeError("a configuration failed")
        self.assertIsNotNone(a.poll())
        self.assertIsNotNone(b.poll())

    def test_a_child_that_ignores_term_is_killed(self):
        with procs.Procs() as group:
            p = group.start([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
                             "signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"], stdout=subprocess.PIPE)
            p.stdout.readline()
            start = time.monotonic()
            group.stop(p, grace=0.2)
        self.assertEqual(p.returncode, -9)
        self.assertLess(time.monotonic() - start, 5)
        p.stdout.close()

    def test_descendants_are_found(self):
        with procs.Procs() as group:
            p = group.start(["sh", "-c", "sleep 30 & wait"], group=True)
            deadline = time.monotonic() + 5
            while not any(a[:1] == ["sleep"] for _, a in procs.descendants(p.pid)) and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertTrue(any(a == ["sleep", "30"] for _, a in procs.descendants(p.pid)))
            self.assertFalse(procs.waits_in_read(p.pid))


    def test_a_read_or_a_write_with_next_under_the_agent_is_a_wait_in_read(self):
        for argv, waits in ((["tunbridge", "read"], True), (["/w/bin/tunbridge", "write", "4500", "--next"], True),
                            (["tunbridge", "write", "4500"], False), (["tunbridge", "mcp"], False)):
            with mock.patch.object(procs, "descendants", return_value=[(7, ["bash", "-c", "..."]), (8, argv)]):
                self.assertEqual(procs.waits_in_read(1), waits, argv)

    def test_cpu_time_of_a_process_tree(self):
        with procs.Procs() as group:
            p = group.start([sys.executable, "-c", "import subprocess, sys, time\n"
                             "subprocess.run([sys.executable, '-c', 'sum(range(3_000_000))'])\n"
                             "print('ready', flush=True); time.sleep(30)"], stdout=subprocess.PIPE)
            p.stdout.readline()
            self.assertGreater(procs.tree_cpu(p.pid), 0.0)   # its child's time, waited for, counts
            group.stop(p)
            p.stdout.close()
        self.assertIsNone(procs.tree_cpu(p.pid))


class AgentUser(unittest.TestCase):
    def test_root_with_no_sudo_user_gives_an_unprivileged_agent_nobody(self):
        root = ("root", 0, 0, (0,))
        with mock.patch.object(procs, "run_user", return_value=root):
            self.assertEqual(procs.agent_user(False), root)
            name, uid, _, _ = procs.agent_user(True)
            self.assertEqual(name, "nobody")
            self.assertNotEqual(uid, 0)
        alice = ("alice", 1000, 1000, (1000,))
        with mock.patch.object(procs, "run_user", return_value=alice):   # a sudo user is kept
            self.assertEqual(procs.agent_user(True), alice)

    def test_a_run_whose_agent_would_be_nobody_is_checked_before_it_starts(self):
        from harness.config import Config, Options
        from harness.runner import unprivileged_problem
        root = ("root", 0, 0, (0,))
        mcp, bash = [Config(harness="mcp")], [Config(harness="default")]
        with tempfile.TemporaryDirectory() as d, mock.patch.object(procs, "run_user", return_value=root), \
                mock.patch.dict(os.environ, {}, clear=True):
            os.chmod(d, 0o755)
            self.assertIsNone(unprivileged_problem(Options(agent="dry-run"), mcp, [d]))
            self.assertIsNone(unprivileged_problem(Options(agent="claude"), bash, [d]))   # root runs it
            self.assertIn("a login in root's HOME does not reach",
                          unprivileged_problem(Options(agent="claude"), mcp, [d]))
            with mock.patch.dict(os.environ, {"ANTHROPIC_API_KEY": "k"}):
                self.assertIsNone(unprivileged_problem(Options(agent="claude"), mcp, [d]))
            os.chmod(d, 0o700)
            if os.getuid() == 0:   # (as nobody, the folder is nobody's own)
                self.assertIn(f"who cannot reach {d}", unprivileged_problem(Options(agent="dry-run"), mcp, [d]))
                # The benchmark asks for every agent unprivileged, the Bash ones too.
                self.assertIn(f"who cannot reach {d}",
                              unprivileged_problem(Options(agent="dry-run", unprivileged=True), bash, [d]))

    def test_a_folder_closed_to_others_is_named(self):
        nobody = ("nobody", 65534, 65534, (65534,))
        with tempfile.TemporaryDirectory() as d:
            inner = os.path.join(d, "closed", "repo")
            os.makedirs(inner)
            os.chmod(d, 0o755)
            self.assertIsNone(procs.unreachable([inner], nobody))
            os.chmod(os.path.join(d, "closed"), 0o700)
            if os.getuid() == 0 or os.stat(d).st_uid != 65534:
                self.assertEqual(procs.unreachable([d, inner], nobody), os.path.join(d, "closed"))
            os.chmod(os.path.join(d, "closed"), 0o755)
            self.assertEqual(procs.unreachable([os.path.join(d, "missing")], nobody), os.path.join(d, "missing"))


if __name__ == "__main__":
    unittest.main()
