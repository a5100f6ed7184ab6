"""The agents that answer the bridge: Claude Code (against a real model or the scripted one)
and the native baseline.

An agent is started once per ping (one-shot) or per session (continuous) with `start(tag,
args)`, which returns an `AgentRun`: the process, its event stream as it arrives (Claude
Code's, timestamped into claude-TAG.jsonl; harness/session.py) and, once it has ended, its
exit status and the cost it reported. `ScriptedModel` is the dry run's model server for one
configuration, a context manager like the bridge.
"""

import json
import os
import subprocess
import sys
import threading
import time

from harness import ROOT, backends, procs
from harness.clients import RUN_ENV, RUN_FLAGS
from harness.harnesses import HARNESSES, Client
from harness.session import Stamp


class AgentError(Exception):
    """An agent or its model could not start."""


class ScriptedModel:
    """`python3 -m harness.model` on a free loopback port, its request log in the bundle."""

    def __init__(self, procs, out, work, flaw=None, delay=None, behaviour=None):
        self.procs, self.out, self.work, self.flaw, self.delay = procs, out, work, flaw, delay
        self.behaviour = behaviour
        self.url = None

    def __enter__(self):
        argv = [sys.executable, "-m", "harness.model", "--port", "0",
                "--log", os.path.join(self.out, "model-requests.jsonl")]
        if self.flaw:
            argv += ["--flaw", self.flaw]
        if self.delay:
            argv += ["--behaviour", f"pace={self.delay}"]
        if self.behaviour:
            argv += ["--behaviour", self.behaviour]
        log = os.path.join(self.work, "model.out")
        with open(log, "w") as f:
            # Its own session, as the bridge's: Ctrl-C must not cut a request under way
            # (the client would retry it, a retry counted against the model).
            self.proc = self.procs.start(argv, group=True, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT,
                                         env=dict(os.environ, PYTHONPATH=ROOT))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.proc.poll() is None:
            with open(log) as f:
                text = f.read()
            if "listening on " in text:
                self.url = text.split("listening on ", 1)[1].split()[0]
                return self
            time.sleep(0.05)
        raise AgentError("the scripted model did not start: " + open(log).read().strip())

    def __exit__(self, *exc):
        self.procs.stop(self.proc)
        return False


class AgentRun:
    """One run of an agent: its process and, for Claude Code, its stamped event stream, the
    CPU time its process tree had used at each tool result (`cpu`: [unix time, seconds]), and
    whether it needs the tunbridge MCP server (`mcp`)."""

    def __init__(self, tag, proc, stamp=None, reader=None, mcp=False):
        self.tag, self.proc, self.stamp, self.reader, self.mcp = tag, proc, stamp, reader, mcp
        self.start, self.end, self.status = time.time(), None, None
        self.stopped = None      # "timeout", "interrupted" or "mcp" when the harness stopped it
        self.cpu = []

    @property
    def tracker(self):
        return self.stamp.tracker if self.stamp else None

    @property
    def phase(self) -> str:
        return self.tracker.phase if self.tracker else "running"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def trouble(self):
        """One line when the run needs the tunbridge MCP server and the client's init event
        says it is not connected; else None."""
        return self.tracker.mcp_trouble() if self.mcp and self.tracker else None

    def waits_in_read(self) -> bool:
        """Whether the agent waits for a packet: a `tunbridge read` (or `write --next`) process
        under it, or, over MCP, where no process shows it, a read it asked for and has not got."""
        if procs.waits_in_read(self.proc.pid):
            return True
        call = self.tracker.waiting_read() if self.tracker else None
        return call is not None and call["name"] != "Bash"

    def finish(self) -> None:
        """Waits for the process and its stream; records the end and exit status."""
        self.status = self.proc.wait()
        if self.reader:
            self.reader.join(10)
            self.stamp.close()
        self.end = time.time()

    @property
    def cost(self) -> float:
        result = (self.tracker.result if self.tracker else None) or {}
        return float(result.get("total_cost_usd") or 0.0)


class Claude:
    """Claude Code, `-p` once per run, its events streamed and stamped; as `user` (as
    harness/procs.py gives one; None: the run user), with a HOME of its own in `work` when
    that is not the run user (`nobody`, whom the caller's HOME is not for)."""

    def __init__(self, client, config, opts, out, group, bridge_env, model_url=None, oauth=False, work=None,
                 user=None):
        self.client, self.config, self.opts, self.out, self.procs = client, config, opts, out, group
        self.harness = HARNESSES[config.harness]
        self.oauth = oauth
        self.user = user or procs.run_user()
        self.setup = Client(oauth=oauth, work=work, bridge_env=bridge_env)
        if work:
            self.harness.prepare(self.setup)
        env = dict(os.environ, **RUN_ENV)
        if self.user != procs.run_user():
            env.update(private_home(work, self.user))
            for k in [k for k in env if k == "CLAUDE_CONFIG_DIR" or k.startswith("XDG_")]:
                del env[k]
        if model_url:   # the dry run: the scripted model, never the network
            env.update(ANTHROPIC_BASE_URL=model_url, ANTHROPIC_API_KEY="dry-run")
            env.pop("ANTHROPIC_AUTH_TOKEN", None)
            if oauth:
                env.pop("ANTHROPIC_API_KEY")
                env["CLAUDE_CODE_OAUTH_TOKEN"] = "sk-ant-oat01-dry-run"
        if opts.backend:   # a backend preset: where the requests go, and what that server needs
            env = backends.parse(opts.backend).apply(env, config.model, config.thinking is not None)
        env.update(bridge_env)
        env.update(self.harness.env(self.setup))
        env.pop("PYTHONPATH", None)
        tokens = config.thinking and {"off": "0", "on": "31999"}.get(config.thinking, config.thinking)
        if tokens is not None:
            env["MAX_THINKING_TOKENS"] = str(tokens)
        self.env = env

    def argv(self, args: str = "", budget: float = None) -> list:
        argv = [self.client, "-p", self.harness.prompt(os.path.join(ROOT, self.config.prompt), args),
                "--output-format", "stream-json", "--verbose", "--include-partial-messages", *RUN_FLAGS]
        if self.config.model:
            argv += ["--model", self.config.model]
        if budget is not None:
            argv += ["--max-budget-usd", f"{max(budget, 0.0001):.4f}"]
        return argv + self.harness.flags(self.setup)

    def start(self, tag, args: str = "", budget: float = None) -> AgentRun:
        stamp = Stamp(os.path.join(self.out, f"claude-{tag}.jsonl"), os.path.join(self.out, f"claude-{tag}.json"))
        err = open(os.path.join(self.out, f"claude-{tag}.err"), "w")
        proc = self.procs.start(self.argv(args, budget), as_user=self.user, group=True, cwd=ROOT, env=self.env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, text=True)
        err.close()
        run = AgentRun(tag, proc, stamp, mcp=self.harness.tools == "mcp")
        run.reader = threading.Thread(target=pump, args=(proc.stdout, stamp, run), daemon=True)
        run.reader.start()
        return run


def private_home(work: str, user) -> dict:
    """A HOME for `user` in `work`, theirs alone, with onboarding done (the TUI would ask)."""
    home = os.path.join(work, "home")
    os.makedirs(home, exist_ok=True)
    with open(os.path.join(home, ".claude.json"), "w") as f:
        json.dump({"hasCompletedOnboarding": True}, f)
    for path in (home, os.path.join(home, ".claude.json")):
        os.chown(path, user[1], user[2])
    os.chmod(home, 0o700)
    return {"HOME": home}


def pump(stream, stamp, run) -> None:
    """Stamps the client's events; at each tool result, notes the CPU time its tree has used."""
    for line in stream:
        stamp.line(line)
        if '"tool_result"' in line:
            cpu = procs.tree_cpu(run.proc.pid)
            if cpu is not None:
                run.cpu.append([round(time.time(), 6), round(cpu, 3)])


class Native:
    """The non-LLM baseline (examples/native_agent.rs): one exchange per run."""

    def __init__(self, binary, out, procs, bridge_env):
        self.binary, self.out, self.procs = binary, out, procs
        self.env = dict(os.environ, **bridge_env)

    def start(self, tag, args: str = "", budget: float = None) -> AgentRun:
        with open(os.path.join(self.out, f"agent-{tag}.txt"), "w") as f:
            proc = self.procs.start([self.binary, "--count", "1"], env=self.env, stdin=subprocess.DEVNULL,
                                    stdout=f, stderr=subprocess.STDOUT)
        return AgentRun(tag, proc)


def write_run(out, run: AgentRun, ident: int, opts: str) -> None:
    """Appends the run to the bundle's runs.jsonl."""
    line = {"tag": str(run.tag), "start": run.start, "end": run.end, "status": run.status,
            "stopped": run.stopped, "ident": ident, "opts": opts, "cost_usd": run.cost,
            "models": run.tracker.models if run.tracker else [], "cpu": run.cpu}
    with open(os.path.join(out, "runs.jsonl"), "a") as f:
        f.write(json.dumps(line) + "\n")
