"""harness/backends.py and `--backend`: the presets' environments, URLs refused, the size of the
harness's requests, and the context pre-flight against the scripted model standing in for each
server (harness/model/serving.py) on a loopback port."""

import contextlib
import io
import json
import os
import socket
import tempfile
import threading
import unittest
import urllib.request
from types import SimpleNamespace
from unittest import mock

from harness import backends, cli
from harness.backends import BackendError
from harness.config import Config, ConfigError, Options
from harness.model import dialogue
from harness.model.server import Server

USER = {"PATH": "/usr/bin", "ANTHROPIC_API_KEY": "sk-ant-users-own", "CLAUDE_CODE_OAUTH_TOKEN": "oat"}


class Presets(unittest.TestCase):
    def test_names_urls_and_the_v1_mistake(self):
        self.assertEqual(backends.parse("ollama").url, "http://127.0.0.1:11434")
        self.assertEqual(backends.parse("vllm=http://gpu:9000/").url, "http://gpu:9000")
        b = backends.parse("http://127.0.0.1:7000/anthropic")
        self.assertEqual((b.name, b.url), ("url", "http://127.0.0.1:7000/anthropic"))
        self.assertEqual(backends.parse("anthropic").url, "https://api.anthropic.com")
        for spec, text in (("http://127.0.0.1:8000/v1", "ends in /v1"), ("llama-server=http://h:8080/v1/", "/v1/v1"),
                           ("openai", "--backend takes"), ("url", "--backend takes"),
                           ("ollama=localhost:11434", "http:// or https://")):
            with self.assertRaises(BackendError) as e:
                backends.parse(spec)
            self.assertIn(text, str(e.exception))
            self.assertNotIn("\n", str(e.exception))

    def test_a_local_server_gets_a_token_the_model_for_every_role_and_no_attribution(self):
        put, drop = backends.parse("ollama").env("qwen3-coder:30b", False, USER)
        self.assertEqual(put["ANTHROPIC_BASE_URL"], "http://127.0.0.1:11434")
        self.assertEqual(put["ANTHROPIC_AUTH_TOKEN"], "ollama")
        self.assertEqual(put["CLAUDE_CODE_ATTRIBUTION_HEADER"], "0")
        self.assertEqual(put["MAX_THINKING_TOKENS"], "0")
        self.assertEqual(put["CLAUDE_CODE_MAX_OUTPUT_TOKENS"], "8192")
        self.assertEqual(put["DISABLE_ERROR_REPORTING"], "1")
        for role in backends.MODEL_ROLES:
            self.assertEqual(put[role], "qwen3-coder:30b")
        self.assertIn("ANTHROPIC_API_KEY", drop)           # no x-api-key to a bearer-token server
        self.assertIn("CLAUDE_CODE_OAUTH_TOKEN", drop)
        env = backends.parse("ollama").apply(dict(USER), "m", False)
        self.assertNotIn("ANTHROPIC_API_KEY", env)
        self.assertEqual(env["PATH"], "/usr/bin")

    def test_the_users_token_output_limit_and_thinking_win(self):
        mine = dict(USER, ANTHROPIC_AUTH_TOKEN="sk-virtual", CLAUDE_CODE_MAX_OUTPUT_TOKENS="4096")
        put, _ = backends.parse("litellm").env("m", True, mine)
        self.assertEqual(put["ANTHROPIC_AUTH_TOKEN"], "sk-virtual")
        self.assertEqual(put["CLAUDE_CODE_MAX_OUTPUT_TOKENS"], "4096")
        self.assertNotIn("MAX_THINKING_TOKENS", put)

    def test_vllm_gets_both_headers_anthropic_its_key(self):
        put, drop = backends.parse("vllm").env("m", False, {})
        self.assertEqual(put["ANTHROPIC_API_KEY"], put["ANTHROPIC_AUTH_TOKEN"])
        self.assertNotIn("ANTHROPIC_API_KEY", drop)
        put, drop = backends.parse("anthropic").env(None, False, USER)
        self.assertEqual(put, {})   # what every run carries is clients.RUN_ENV
        self.assertEqual(drop, ["ANTHROPIC_AUTH_TOKEN"])
        put, _ = backends.parse("anthropic=https://gateway.example/anthropic").env(None, False, USER)
        self.assertEqual(put["ANTHROPIC_BASE_URL"], "https://gateway.example/anthropic")

    def test_the_record_names_a_token_but_never_shows_it(self):
        rec = backends.parse("vllm").record()
        self.assertEqual(rec["sets"]["ANTHROPIC_AUTH_TOKEN"], "(set)")
        self.assertEqual(rec["sets"]["ANTHROPIC_API_KEY"], "(set)")
        self.assertEqual(rec["sets"]["CLAUDE_CODE_ATTRIBUTION_HEADER"], "0")


class Flags(unittest.TestCase):
    def parse(self, *argv):
        return cli.parse_run(list(argv) + ["--out", "/tmp/unused"])

    def test_a_local_backend_needs_a_model_and_the_real_client(self):
        with self.assertRaisesRegex(ConfigError, "needs --model NAME"):
            self.parse("--agent", "claude", "--backend", "ollama")
        with self.assertRaisesRegex(ConfigError, "--backend is for --agent claude"):
            self.parse("--agent", "dry-run", "--backend", "ollama", "--model", "m")
        with self.assertRaisesRegex(ConfigError, "ends in /v1"):
            self.parse("--backend", "http://127.0.0.1:1/v1", "--model", "m")
        opts, configs = self.parse("--backend", "anthropic")           # the client's default model is fine
        self.assertEqual((opts.backend, configs[0].model, configs[0].thinking), ("anthropic", None, None))
        _, configs = self.parse("--backend", "ollama", "--model", "m")   # a local server does not think...
        self.assertEqual(configs[0].thinking, "off")
        _, configs = self.parse("--backend", "ollama", "--model", "m", "--thinking", "on")   # ...unless asked
        self.assertEqual(configs[0].thinking, "on")

    def test_a_base_url_ending_in_v1_from_the_environment_is_refused_before_the_run(self):
        err = io.StringIO()
        env = {"ANTHROPIC_BASE_URL": "http://127.0.0.1:4000/v1", "ANTHROPIC_API_KEY": "k"}
        with mock.patch.dict(os.environ, env), mock.patch("os.geteuid", return_value=0), \
                mock.patch("harness.matrix.run") as run, contextlib.redirect_stderr(err):
            status = cli.main(["run", "--agent", "claude", "--out", "/tmp/unused", "--client", fake_claude()])
        run.assert_not_called()
        self.assertEqual(status, 2)
        self.assertIn("ANTHROPIC_BASE_URL http://127.0.0.1:4000/v1 ends in /v1", err.getvalue())


def fake_claude() -> str:
    d = tempfile.mkdtemp()
    path = os.path.join(d, "claude")
    with open(path, "w") as f:
        f.write("#!/bin/sh\necho '2.1.332 (Claude Code)'\n")
    os.chmod(path, 0o755)
    return path


class Sizes(unittest.TestCase):
    def test_requests_grow_with_the_prompt_the_client_and_the_packets(self):
        new = backends.needed_tokens("default", "prompts/ping-respond.md", "2.1.332", 1, 8192)
        old = backends.needed_tokens("default", "prompts/ping-respond.md", "2.1.197", 1, 8192)
        lean = backends.needed_tokens("lean", "prompts/ping-respond.md", "2.1.332", 1, 8192)
        stack = backends.needed_tokens("default", "prompts/ip-stack.md", "2.1.332", 1, 8192)
        serve = backends.needed_tokens("default", "prompts/ping-serve.md", "2.1.332", 20, 8192)
        # (56,900 + 1,200) bytes / 4, plus a quarter.
        self.assertEqual(new["request"], 18157)
        self.assertEqual(new["total"], 18157 + 8192)
        self.assertGreater(old["request"], new["request"])
        self.assertLess(lean["request"], 3_000)
        self.assertGreater(stack["request"], new["request"] + 2_000)
        self.assertGreater(serve["request"], new["request"] + 20 * 300)
        # A version before the newest measured one is taken at the older, larger size.
        self.assertEqual(backends.needed_tokens("default", "prompts/ping-respond.md", "2.1.250", 1, 0)["request"],
                         old["request"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Preflight(unittest.TestCase):
    """The scripted model standing in for each server, asked by the pre-flight."""

    def serve(self, kind, context, model=None):
        cfg = SimpleNamespace(read_cmd=dialogue.READ_CMD, write_cmd=dialogue.WRITE_CMD, flaw=None, log=self.log,
                              dump_dir=None, verbose=False, behaviour=[], serve_as=kind, context=context,
                              served_model=model)
        server = Server(("127.0.0.1", 0), cfg)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        return f"http://127.0.0.1:{server.server_address[1]}"

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        self.log = os.path.join(self.dir.name, "requests.jsonl")
        self.opts = Options(agent="claude", count=3)

    def check(self, spec, model, harness="default", opts=None, version="2.1.332"):
        return backends.preflight(backends.parse(spec), [Config(model=model, harness=harness)], opts or self.opts,
                                  version, environ={})

    def test_each_server_says_its_context_and_a_fitting_one_passes(self):
        for kind, how in (("ollama", "/api/ps"), ("llama-server", "/props"), ("vllm", "/v1/models"),
                          ("litellm", "/model/info")):
            url = self.serve(kind, 32768, model="qwen3")
            lines = self.check(f"{kind}={url}", "qwen3")
            fit = [line for line in lines if line.startswith("context of qwen3: 32,768 tokens")]
            self.assertEqual(len(fit), 1, lines)
            self.assertIn(how, fit[0])
            self.assertIn("needs about 26,349", fit[0])

    def test_ollama_loads_a_model_that_is_not_loaded_and_says_so(self):
        url = self.serve("ollama", 65536, model="qwen3")
        lines = self.check(f"ollama={url}", "qwen3")
        self.assertIn("loaded qwen3 in ollama", lines[0])
        with open(self.log) as f:
            asked = [json.loads(line)["path"] for line in f]
        self.assertEqual(asked, ["/api/ps", "/api/generate", "/api/ps"])
        with self.assertRaisesRegex(BackendError, r"has no model llama9: `ollama pull llama9`"):
            self.check(f"ollama={url}", "llama9")

    def test_a_context_too_small_is_one_line_naming_the_fix(self):
        url = self.serve("ollama", 4096, model="qwen3")
        with self.assertRaises(BackendError) as e:
            self.check(f"ollama={url}", "qwen3")
        text = str(e.exception)
        self.assertNotIn("\n", text)
        self.assertIn("ollama serves qwen3 with a 4,096-token context (/api/ps context_length)", text)
        self.assertIn("needs about 26,349 (18,157 a request + 8,192 output)", text)
        self.assertIn("OLLAMA_CONTEXT_LENGTH=32768 ollama serve, or use --lean", text)
        # The lean harness fits where the default does not.
        url = self.serve("llama-server", 16384)
        with self.assertRaisesRegex(BackendError, r"--ctx-size 32768"):
            self.check(f"llama-server={url}", "qwen3")
        self.assertIn("context of qwen3: 16,384", self.check(f"llama-server={url}", "qwen3", harness="lean")[0])

    def test_a_session_needs_room_for_its_packets(self):
        url = self.serve("vllm", 32768, model="qwen3")
        serve = Options(agent="claude", count=40, mode="continuous", session_packets=20)
        with self.assertRaisesRegex(BackendError, r"--max-model-len 65536"):
            backends.preflight(backends.parse(f"vllm={url}"), [Config(model="qwen3", prompt="prompts/ping-serve.md")],
                               serve, "2.1.332", environ={})

    def test_what_cannot_be_checked_is_said(self):
        url = self.serve("vllm", 32768, model="qwen3")
        with self.assertRaisesRegex(BackendError, r"serves qwen3, not qwen4 \(vllm serve --served-model-name qwen4\)"):
            self.check(f"vllm={url}", "qwen4")
        self.assertIn("context not checked", self.check(f"{url}/anthropic", "qwen3")[0])
        self.assertIn("200,000 tokens or more", self.check("anthropic", None)[0])
        dead = f"http://127.0.0.1:{free_port()}"
        with self.assertRaisesRegex(BackendError, r"cannot reach http://127.0.0.1:\d+/props"):
            self.check(f"llama-server={dead}", "qwen3")

    def test_the_scripted_model_logs_what_a_preset_changes(self):
        url = self.serve("llama-server", 32768)
        body = {"model": "qwen3", "max_tokens": 8192, "stream": False, "messages": [],
                "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.332.abc;"}]}
        req = urllib.request.Request(f"{url}/v1/messages?beta=true", json.dumps(body).encode(),
                                     {"authorization": "Bearer llama-server", "content-type": "application/json"})
        urllib.request.urlopen(req, timeout=10).read()
        with open(self.log) as f:
            entry = json.loads(f.readline())
        self.assertEqual(entry["auth"], {"authorization": "Bearer llama-server"})
        self.assertEqual((entry["max_tokens"], entry["attribution"]), (8192, True))


if __name__ == "__main__":
    unittest.main()
