"""harness/config.py and the run flags of harness/cli.py: the matrix and its checks."""

import contextlib
import io
import unittest
from unittest import mock

from harness import cli, provenance, runner
from harness.config import Config, ConfigError, Options, matrix, thinking_tokens


def parse(*argv):
    return cli.parse_run(list(argv) + ["--out", "/tmp/unused"])


class Matrix(unittest.TestCase):
    def test_one_configuration_by_default(self):
        opts, configs = parse("--agent", "dry-run")
        self.assertEqual(len(configs), 1)
        self.assertEqual(opts.count, 3)
        c = configs[0]
        self.assertEqual((c.model, c.prompt, c.harness, c.thinking, c.traffic),
                         (None, "prompts/ping-respond.md", "default", None, ()))

    def test_every_combination_in_order(self):
        _, configs = parse("--agent", "dry-run", "--model", "a", "--model", "b", "--prompt", "prompts/ping-respond.md",
                           "--prompt", "prompts/ping-respond-fast.md", "--lean", "--harness", "default",
                           "--thinking", "off")
        self.assertEqual(len(configs), 2 * 2 * 2)
        self.assertEqual([c.index for c in configs], list(range(1, 9)))
        self.assertEqual((configs[0].model, configs[0].harness), ("a", "lean"))
        self.assertEqual(len({c.slug() for c in configs}), 8)

    def test_traffic_comma_list_is_one_configuration_repeats_are_several(self):
        _, one = parse("--agent", "dry-run", "--prompt", "prompts/ip-stack.md", "--traffic", "ping6,tcp-syn")
        self.assertEqual([c.traffic for c in one], [("ping6", "tcp-syn")])
        _, two = parse("--agent", "dry-run", "--traffic", "ping", "--traffic", "udp-echo6")
        self.assertEqual([c.traffic for c in two], [("ping",), ("udp-echo6",)])

    def test_suite_alone_runs_no_pings_and_defaults_to_ip_stack(self):
        opts, configs = parse("--agent", "dry-run", "--suite")
        self.assertIsNone(opts.count)
        self.assertEqual(configs[0].prompt, "prompts/ip-stack.md")
        opts, _ = parse("--agent", "dry-run", "--suite", "echo-56", "--repeat", "3")
        self.assertEqual((opts.count, opts.suite), (3, ["echo-56"]))

    def test_continuous_serves_one_call_per_packet_unless_told(self):
        opts, configs = parse("--agent", "dry-run", "--continuous", "--count", "10")
        self.assertEqual(configs[0].prompt, "prompts/ping-serve-next.md")
        self.assertEqual(runner.planned_runs(opts, configs[0]), 1)
        _, configs = parse("--agent", "dry-run", "--continuous", "--prompt", "prompts/ping-serve.md")
        self.assertEqual(configs[0].prompt, "prompts/ping-serve.md")
        opts, configs = parse("--agent", "dry-run", "--continuous", "--count", "45")
        self.assertEqual(runner.planned_runs(opts, configs[0]), 3)

    def test_each_harness_runs_its_own_prompt_per_mode(self):
        for argv, want in (([], ["prompts/ping-respond.md", "prompts/ping-respond-mcp.md"]),
                           (["--continuous"], ["prompts/ping-serve-next.md", "prompts/ping-serve-mcp.md"]),
                           (["--suite"], ["prompts/ip-stack.md", "prompts/ping-respond-mcp.md"])):
            _, configs = parse("--agent", "dry-run", "--harness", "lean", "--harness", "lean-mcp", *argv)
            self.assertEqual([(c.prompt, c.harness) for c in configs], list(zip(want, ["lean", "lean-mcp"])), argv)

    def test_a_prompt_goes_with_the_harnesses_of_its_kind(self):
        # The benchmark's three in one matrix: two-call and one-call over Bash, and MCP.
        _, configs = parse("--agent", "dry-run", "--continuous", "--harness", "default", "--harness", "mcp",
                           "--prompt", "prompts/ping-serve.md", "--prompt", "prompts/ping-serve-next.md",
                           "--prompt", "prompts/ping-serve-mcp.md", "--model", "a", "--model", "b")
        pairs = [(c.model, c.prompt, c.harness) for c in configs]
        self.assertEqual(pairs[:3], [("a", "prompts/ping-serve.md", "default"),
                                     ("a", "prompts/ping-serve-next.md", "default"),
                                     ("a", "prompts/ping-serve-mcp.md", "mcp")])
        self.assertEqual(len(pairs), 6)
        self.assertEqual(len({c.slug() for c in configs}), 6)

    def test_native_has_one_configuration(self):
        _, configs = parse("--agent", "native", "--model", "a", "--model", "b")
        self.assertEqual(len(configs), 1)

    def test_bad_values_are_one_line_errors(self):
        for argv, text in (
                (["--agent", "robot"], "--agent"),
                (["--count", "0"], "--count"),
                (["--agent", "claude", "--flaw", "data"], "--flaw needs --agent dry-run"),
                (["--agent", "dry-run", "--thinking", "lots"], "--thinking"),
                (["--agent", "dry-run", "--harness", "fat"], "--harness"),
                (["--agent", "dry-run", "--traffic", "smtp"], "--traffic"),
                (["--agent", "dry-run", "--prompt", "prompts/none.md"], "not found"),
                (["--agent", "dry-run", "--continuous", "--suite"], "--continuous"),
                (["--agent", "dry-run", "--continuous", "--traffic", "ping6"], "--traffic"),
                (["--agent", "dry-run", "--ping-opts", "-s 1; rm -rf /"], "--ping-opts"),
                (["--agent", "dry-run", "--suite", "no-such-scenario"], "unknown scenario"),
                (["--agent", "dry-run", "--jobs", "0"], "--jobs"),
                (["--agent", "dry-run", "--max-cost", "-1"], "--max-cost"),
                (["--agent", "claude", "--model-delay", "2"], "--model-delay"),
                (["--agent", "claude", "--model-behaviour", "thinking"], "--model-behaviour needs --agent dry-run"),
                (["--agent", "dry-run", "--model-behaviour", "errors:rate=2"], "rate"),
                (["--agent", "dry-run", "--model-behaviour", "teleport"], "unknown behaviour"),
                (["--agent", "dry-run", "--run-timeout", "0"], "--run-timeout"),
                (["--agent", "dry-run", "--harness", "mcp", "--prompt", "prompts/ping-respond.md"],
                 "written for the Bash commands (tunbridge read, tunbridge write): run it with --harness default "
                 "or lean"),
                (["--agent", "dry-run", "--prompt", "prompts/ping-respond-mcp.md"], "--harness mcp or lean-mcp"),
                (["--agent", "dry-run", "--harness", "lean-mcp", "--harness", "lean",
                  "--prompt", "prompts/ping-respond.md"], "--harness lean-mcp reaches the bridge through the MCP"),
                (["--agent", "dry-run", "--continuous", "--prompt", "prompts/ping-respond.md"],
                 "--continuous needs a prompt that serves many packets"),
                (["--agent", "dry-run", "--flaw", "nope"], "--flaw takes checksum, data or answer-all, not 'nope'"),
                (["--agent", "dry-run", "--continuous", "--model-behaviour", "errors:rate=0.1,write-twice"],
                 "--model-behaviour write-twice is scripted for the read-then-write prompts (prompts/ping-respond.md, "
                 "prompts/ping-serve.md), not prompts/ping-serve-next.md: add --prompt prompts/ping-serve.md"),
                (["--agent", "dry-run", "--harness", "mcp", "--model-behaviour", "no-write"],
                 "not prompts/ping-respond-mcp.md")):
            with self.assertRaises(ConfigError, msg=argv) as caught:
                parse(*argv)
            self.assertIn(text, str(caught.exception))
            self.assertNotIn("\n", str(caught.exception))

    def test_a_flag_argparse_refuses_is_one_line_too(self):
        # Not the whole usage block (13 lines) with the reason last.
        for argv, text in ((["--jobs", "x"], "argument --jobs: invalid int value: 'x'"),
                           (["--bogus"], "unrecognized arguments: --bogus"),
                           (["--model"], "argument --model: expected one argument")):
            err = io.StringIO()
            with contextlib.redirect_stderr(err), self.assertRaises(SystemExit, msg=argv) as caught:
                parse(*argv)
            self.assertEqual(caught.exception.code, 2)
            self.assertEqual(len(err.getvalue().splitlines()), 1, err.getvalue())
            self.assertIn(text, err.getvalue())
            self.assertIn("--help", err.getvalue())

    def test_an_out_folder_that_cannot_be_made_is_one_line(self):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), mock.patch("os.geteuid", return_value=0):
            status = cli.cmd_run(["--agent", "native", "--out", "/proc/no/such"])
        self.assertEqual(status, 2)
        self.assertEqual(len(err.getvalue().splitlines()), 1, err.getvalue())
        self.assertIn("/proc/no/such", err.getvalue())

    def test_thinking(self):
        self.assertEqual([thinking_tokens(t) for t in (None, "off", "on", "2048")], [None, 0, 31999, 2048])
        self.assertEqual(Config(thinking="off").thinking_label, "off (MAX_THINKING_TOKENS=0)")
        self.assertEqual(Config().thinking_label, "client default")

    def test_labels_and_slugs(self):
        c = Config(model="claude-haiku-4-5", prompt="prompts/ip-stack.md", harness="lean", thinking="on",
                   traffic=("ping6", "tcp-syn"), index=3)
        self.assertEqual(c.label(), "claude-haiku-4-5, ip-stack.md, lean, thinking on, ping6,tcp-syn")
        self.assertEqual(c.slug(), "03-claude-haiku-4-5-ip-stack-lean-thinking-on-ping6-tcp-syn")
        self.assertEqual(Config(model="a/b c").slug(), "01-a_b_c-ping-respond-default")

    def test_each_model_behaviour_is_a_configuration(self):
        _, configs = parse("--agent", "dry-run", "--model-behaviour", "latency=haiku-4.5,caching",
                           "--model-behaviour", "errors:rate=0.2;kinds=429,529")
        self.assertEqual([c.behaviour for c in configs], ["latency=haiku-4.5,caching", "errors:rate=0.2;kinds=429,529"])
        self.assertIn("behaviour errors:rate=0.2;kinds=429,529", configs[1].label())
        self.assertEqual(len({c.slug() for c in configs}), 2)

    def test_the_limit_of_an_agent_run(self):
        one_shot, _ = parse("--agent", "dry-run", "--run-timeout", "120")
        self.assertEqual(one_shot.run_limit(), 120)
        session, _ = parse("--agent", "dry-run", "--continuous", "--count", "60", "--session-packets", "20",
                           "--interval", "0.5", "--ping-wait", "30")
        self.assertEqual(session.run_limit(), 600 + 20 * 0.5 + 30)

    def test_options_go_into_run_json_whole(self):
        self.assertIn("max_cost", Options().as_dict())
        with self.assertRaises(ConfigError):
            matrix(Options(agent="dry-run", mode="continuous"), traffic=["ping"])

    def test_run_json_hashes_every_file_that_shapes_the_request(self):
        # The prompt, what it includes, and a harness's own system prompt: a change to any
        # of them changes what the model is asked.
        configs = matrix(Options(agent="dry-run"), prompts=["prompts/ping-serve.md"], harnesses=["default", "lean"])
        prov = provenance.collect(Options(agent="dry-run"), configs, {"tunbridge": "/bin/false"})
        self.assertEqual(sorted(prov["prompts"]),
                         ["prompts/lean-system.md", "prompts/ping-respond.md", "prompts/ping-serve.md"])
        self.assertTrue(all(len(h) == 64 for h in prov["prompts"].values()), prov["prompts"])


if __name__ == "__main__":
    unittest.main()
