"""harness/harnesses.py: the registry, and how each harness hands Claude Code its prompt."""

import json
import os
import tempfile
import unittest
from unittest import mock

from harness import ROOT, harnesses
from harness.harnesses import HARNESSES, Client

KEY, LOGIN = Client(oauth=False), Client(oauth=True)


class Prompts(unittest.TestCase):
    def test_a_prompt_with_a_slash_command_goes_in_as_the_command(self):
        default = HARNESSES["default"]
        self.assertEqual(default.prompt(os.path.join(ROOT, "prompts/ping-respond.md")), "/ping-respond")
        self.assertEqual(default.prompt(os.path.join(ROOT, "prompts/ping-serve.md"), "10"), "/ping-serve 10")

    def test_lean_sends_the_text_front_matter_stripped_arguments_and_includes_filled_in(self):
        text = HARNESSES["lean"].prompt(os.path.join(ROOT, "prompts/ping-serve.md"), "4")
        self.assertFalse(text.startswith("---"))
        self.assertNotIn("$ARGUMENTS", text)
        self.assertIn("Packets to serve: 4", text)
        with open(os.path.join(ROOT, "prompts/ping-respond.md")) as f:
            included = f.read().split("---", 2)[2].strip().splitlines()[0]
        self.assertIn(included, text)   # @prompts/ping-respond.md became its text

    def test_a_prompt_without_a_command_goes_in_as_text(self):
        with tempfile.NamedTemporaryFile("w", suffix=".md", delete=False) as f:
            f.write("Say $ARGUMENTS.\n")
        try:
            self.assertEqual(HARNESSES["default"].prompt(f.name, "hi"), "Say hi.\n")
        finally:
            os.unlink(f.name)


class Flags(unittest.TestCase):
    def test_default_only_adds_the_settings(self):
        self.assertEqual(HARNESSES["default"].flags(KEY),
                         ["--strict-mcp-config", "--settings", harnesses.SETTINGS])
        self.assertEqual(HARNESSES["default"].env(KEY), {})

    def test_lean_is_bare_with_a_key_and_not_with_a_login(self):
        lean = HARNESSES["lean"]
        self.assertIn("--bare", lean.flags(KEY))
        self.assertNotIn("--bare", lean.flags(LOGIN))
        for flag in ("--tools", "--system-prompt-file", "--strict-mcp-config", "--disable-slash-commands",
                     "--no-session-persistence"):
            self.assertIn(flag, lean.flags(LOGIN))
        settings = json.loads(lean.flags(LOGIN)[-1])
        self.assertTrue(settings["disableAllHooks"])
        self.assertIn("Bash(tunbridge read)", settings["permissions"]["allow"])
        self.assertEqual(lean.env(LOGIN)["CLAUDE_CODE_DISABLE_CLAUDE_MDS"], "1")
        self.assertEqual(lean.label(True), "lean (login, without --bare)")

    def test_mcp_writes_its_own_server_config_and_names_only_it(self):
        with tempfile.TemporaryDirectory() as work:
            os.mkdir(os.path.join(work, "bin"))
            tunbridge = os.path.join(work, "bin", "tunbridge")
            with open(tunbridge, "w") as f:
                f.write("#!/bin/sh\n")
            os.chmod(tunbridge, 0o755)
            client = Client(work=work, bridge_env={"PATH": f"{work}/bin:/usr/bin", "TUNBRIDGE_CMD_FIFO": "/x/cmd",
                                                   "TUNBRIDGE_RESP_FIFO": "/x/resp", "BASH_ENV": "/x/path.sh"})
            mcp = HARNESSES["mcp"]
            mcp.prepare(client)
            with open(os.path.join(work, "mcp.json")) as f:
                server = json.load(f)["mcpServers"]["tunbridge"]
            self.assertEqual(server, {"command": tunbridge, "args": ["mcp"], "alwaysLoad": True,
                                      "env": {"TUNBRIDGE_CMD_FIFO": "/x/cmd", "TUNBRIDGE_RESP_FIFO": "/x/resp"}})
            flags = mcp.flags(client)
            self.assertEqual(flags[:4], ["--strict-mcp-config", "--mcp-config", os.path.join(work, "mcp.json"),
                                         "--settings"])
            # Only the MCP tools: a model that falls back to Bash is refused, not measured as MCP.
            self.assertEqual(json.loads(flags[4])["permissions"]["allow"],
                             ["mcp__tunbridge__read_packet", "mcp__tunbridge__write_packet",
                              "mcp__tunbridge__write_and_read_next"])
            HARNESSES["default"].prepare(client)   # a Bash harness writes nothing
            self.assertEqual(sorted(os.listdir(work)), ["bin", "mcp.json"])

    def test_lean_mcp_offers_no_built_in_tool_and_its_own_system_prompt(self):
        flags = HARNESSES["lean-mcp"].flags(Client(work="/w"))
        self.assertEqual(flags[flags.index("--tools") + 1], "")
        self.assertTrue(flags[flags.index("--system-prompt-file") + 1].endswith("prompts/lean-system-mcp.md"))
        self.assertEqual(flags[flags.index("--mcp-config") + 1], "/w/mcp.json")
        self.assertIn("--bare", flags)
        self.assertNotIn("--bare", HARNESSES["lean-mcp"].flags(Client(oauth=True, work="/w")))
        settings = json.loads(flags[-1])
        self.assertTrue(settings["disableAllHooks"])
        self.assertFalse([r for r in settings["permissions"]["allow"] if not r.startswith("mcp__")])
        self.assertEqual(HARNESSES["lean-mcp"].label(True), "lean-mcp (login, without --bare)")

    def test_which_harness_reaches_the_bridge_how(self):
        self.assertEqual({n: (h.tools, h.unprivileged()) for n, h in HARNESSES.items()},
                         {"default": ("bash", False), "lean": ("bash", False), "mcp": ("mcp", True),
                          "lean-mcp": ("mcp", True)})
        kinds = {p: harnesses.prompt_tools(os.path.join(ROOT, "prompts", p)) for p in
                 ("ping-respond.md", "ping-serve.md", "ping-serve-next.md", "ip-stack.md", "ping-respond-mcp.md",
                  "ping-serve-mcp.md")}
        self.assertEqual([p for p, k in kinds.items() if k == "mcp"], ["ping-respond-mcp.md", "ping-serve-mcp.md"])
        for mode in ("oneshot", "continuous", "suite"):
            for h in HARNESSES.values():
                self.assertEqual(harnesses.prompt_tools(os.path.join(ROOT, h.default_prompt(mode))), h.tools)

    def test_every_harness_runs_in_the_default_permission_mode(self):
        # A user's `defaultMode: auto` would otherwise make `-p` run in auto mode, where a
        # command the settings do not allow may run instead of being refused.
        from harness.agents import Claude
        from harness.config import Config, Options
        for name in HARNESSES:
            for mode, args in (("oneshot", ""), ("continuous", "3")):
                claude = Claude("/bin/claude", Config(harness=name), Options(agent="dry-run", mode=mode), "/tmp",
                                None, {}, model_url="http://127.0.0.1:1")
                argv = claude.argv(args)
                self.assertEqual(argv.count("--permission-mode"), 1, argv)
                self.assertEqual(argv[argv.index("--permission-mode") + 1], "default", argv)

    def test_a_new_harness_is_one_entry(self):
        class Mine(harnesses.Harness):
            name = "mine"
        with mock.patch.dict(HARNESSES, {"mine": Mine()}):
            from harness.config import Options, matrix
            self.assertEqual(matrix(Options(agent="dry-run"), harnesses=["mine"])[0].harness, "mine")


if __name__ == "__main__":
    unittest.main()
