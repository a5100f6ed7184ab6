"""One configuration, run: its namespace, bridge, model and agent, the pings, the bundle.

`run_config` runs a configuration's pings (one-shot: one agent run per ping; continuous: one
Claude Code session per `--session-packets` packets) and, with `--suite`, one bundle per
scenario; then writes the bundle (harness/bundle.py) and draws its timeline. Everything it
starts lives in context managers (processes, namespace, bridge, scripted model), so it is
stopped and removed however the configuration ends. `Run` is what the configurations of a
run share: the options, the binaries, the budget, the stop flag (Ctrl-C) and the progress.
"""

import json
import math
import os
import shlex
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field

from harness import ROOT, backends, bundle, clients, pingout, procs, scenarios
from harness.agents import Claude, Native, ScriptedModel, write_run
from harness.bridge import Bridge
from harness.config import Config, Options
from harness.harnesses import HARNESSES
from harness.netns import Namespace
from harness.wire import PEER


# Credentials a client run as another user still gets (its environment); a login file does not.
CREDENTIALS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")
# A configuration stopped for one of these failed (the run's exit status is 1), unlike one the
# budget or Ctrl-C stopped.
FAILED_SET_UP = ("the bridge exited", "the tunbridge MCP server is not connected")


class Budget:
    """The spend reported so far against `--max-cost`; no new agent run once it is reached."""

    def __init__(self, max_cost=None):
        self.max_cost, self.spent = max_cost, 0.0
        self.lock = threading.Lock()
        self.reason = None

    def allow(self) -> bool:
        with self.lock:
            if self.max_cost is None or self.spent < self.max_cost:
                return True
            if self.reason is None:
                self.reason = f"--max-cost ${self.max_cost:g} reached (${self.spent:.4f} reported spent)"
            return False

    def add(self, cost: float) -> None:
        with self.lock:
            self.spent += cost or 0.0

    def remaining(self):
        """What a run may still spend (the client's own --max-budget-usd), or None."""
        with self.lock:
            return None if self.max_cost is None else max(self.max_cost - self.spent, 0.0)


@dataclass
class Run:
    """What every configuration of a run shares."""

    opts: Options
    tunbridge: str
    client: str = None
    native: str = None
    oauth: bool = False
    budget: Budget = None
    progress: object = None
    stop: threading.Event = field(default_factory=threading.Event)
    single: bool = True
    claude_code: clients.ClaudeCode = None

    def say(self, text: str) -> None:
        self.progress.note(f"==> {text}")


def planned_runs(opts: Options, config: Config, suite_size: int = 0) -> int:
    """How many agent runs a configuration makes."""
    runs = 0
    if opts.count:
        runs += math.ceil(opts.count / opts.session_packets) if opts.mode == "continuous" else opts.count
    return runs + suite_size


def suite_scenarios(opts: Options, config: Config) -> list:
    return [] if opts.suite is None else scenarios.select(opts.suite, config.prompt)


def run_config(run: Run, config: Config, out: str) -> dict:
    """Runs one configuration into `out`; returns its result (result.json, plus the suite)."""
    key = "" if run.single else f"#{config.index} {config.label()}"
    os.makedirs(out, exist_ok=True)
    result = None
    if run.opts.count:
        try:
            result = run_bundle(run, config, out, key)
        finally:
            run.progress.done(key)
    chosen = suite_scenarios(run.opts, config)
    if chosen:
        suite_dir = out if not run.opts.count else os.path.join(out, "suite")
        result = dict(result or {"meta": meta_of(run, config), "pings": []},
                      suite=run_suite(run, config, suite_dir, chosen, key))
        if run.opts.count:   # the bundle's result.json gets the score too
            with open(os.path.join(out, "result.json"), "w") as f:
                json.dump(result, f, indent=1)
                f.write("\n")
    run.progress.done(key)
    procs.chown_tree(out)
    return result


def run_suite(run: Run, config: Config, out: str, chosen: list, key: str) -> dict:
    """One bundle per scenario, then the scorecard; returns the totals."""
    os.makedirs(out, exist_ok=True)
    run.say(f"{'' if run.single else key + ': '}scenario suite: {len(chosen)} scenarios, prompt {config.prompt}")
    for n, sc in enumerate(chosen):
        if run.stop.is_set():
            break
        if not run.budget.allow():
            run.progress.skip(len(chosen) - n)
            run.say(f"{'' if run.single else key + ': '}stopping the suite: {run.budget.reason}; "
                    f"{len(chosen) - n} scenarios not run")
            break
        d = os.path.join(out, sc.name)
        os.makedirs(d, exist_ok=True)
        try:
            run_bundle(run, config, d, f"{key} {sc.name}".strip(), scenario=sc)
        except Exception as e:  # one scenario's failure is its row's, not the suite's end
            with open(os.path.join(d, "experiment.log"), "a") as f:
                f.write(f"{e}\n")
        finally:
            run.progress.done(f"{key} {sc.name}".strip())
        row = scenarios.score_one(out, sc, {})
        run.progress.note(f"    {'' if run.single else key + ': '}{sc.name:<20} {sc.expect:<8} "
                          f"{'pass' if row['pass'] else 'FAIL'}: {row['why']}")
    meta = {"agent": run.opts.agent, "model": config.model, "prompt": config.prompt,
            "harness": config.harness, "flaw": run.opts.flaw}
    rows = scenarios.write_scorecard(out, meta)
    t = scenarios.totals(rows)
    return {"passed": t["all"][0], "run": t["all"][1], "scorecard": os.path.relpath(out, ROOT)}


def meta_of(run: Run, config: Config, scenario=None, stopped=None) -> dict:
    o = run.opts
    harness = HARNESSES[config.harness]
    return {"agent": o.agent, "model": config.model, "prompt": config.prompt, "harness": config.harness,
            "harness_label": harness.label(run.oauth), "thinking": config.thinking,
            "thinking_label": config.thinking_label, "traffic": list(config.traffic),
            "count": 1 if scenario else o.count, "mode": "oneshot" if scenario else o.mode,
            "interval": o.interval, "session_packets": o.session_packets, "max_age": o.ping_wait,
            "scenario": scenario.name if scenario else None, "flaw": o.flaw, "behaviour": config.behaviour,
            "stopped": stopped, "config": config.index, "label": config.label(),
            "client_version": run.claude_code.version if run.claude_code else None,
            "permission_mode": clients.PERMISSION_MODE if run.claude_code else None,
            "backend": (backends.describe(o) or {}).get("label")}


def run_bundle(run: Run, config: Config, out: str, key: str, scenario=None) -> dict:
    """The pings (or one scenario) of a configuration with a bridge of their own."""
    os.makedirs(out, exist_ok=True)
    for stale in ("runs.jsonl", "records.jsonl"):
        if os.path.exists(os.path.join(out, stale)):
            os.unlink(os.path.join(out, stale))
    stopped = None
    name = f"tbx-{os.getpid()}-{config.index}"
    user = agent_user(run, config)
    # The bridge gives its FIFOs and channel to the agent's user, and runs as that user.
    extra = ["--user", user[0]] if user != procs.run_user() else []
    with procs.Procs() as group, tempfile.TemporaryDirectory(prefix="tunbridge-exp.") as work:
        os.chmod(work, 0o755)
        procs.chown_tree(work)
        procs.chown_tree(out)
        if extra:   # the bridge, as that user, removes its FIFOs from here when it stops
            os.chown(work, user[1], user[2])
        with Namespace(name) as ns, Bridge(run.tunbridge, ns, out, work, run.opts.ping_wait, group,
                                           extra=extra) as bridge:
            if run.single and not scenario:
                run.say(f"network namespace {name} (the host's networking is not touched); "
                        f"bridge record: {out}/records.jsonl")
            model = ScriptedModel(group, out, work, run.opts.flaw, run.opts.model_delay, config.behaviour) \
                if run.opts.agent == "dry-run" else None
            with model or _nothing():
                agent = make_agent(run, config, out, group, bridge.env(), model.url if model else None, work, user)
                if not scenario:
                    describe(run, config, key, user, agent)
                pinger = Pinger(run, config, out, ns, group, key, scenario, bridge)
                if run.opts.mode == "continuous" and not scenario:
                    stopped = pinger.continuous(agent)
                else:
                    stopped = pinger.oneshot(agent)
        meta = meta_of(run, config, scenario, stopped)
        result = bundle.summarise(out, meta, run.tunbridge)
        draw = subprocess.run([run.tunbridge, "timeline", os.path.join(out, "timeline.json"),
                               "--out", os.path.join(out, "timeline.svg")], capture_output=True, text=True)
        if draw.returncode and not scenario and "no pings" not in draw.stderr:
            run.progress.note(f"    timeline not drawn: {draw.stderr.strip()}")
    procs.chown_tree(out)
    return result


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def agent_user(run: Run, config: Config):
    """The user the configuration's agent runs as (harness/procs.py): never root for an MCP
    harness (`tunbridge mcp` refuses it), nor for any with `unprivileged` (the benchmark)."""
    if run.opts.agent == "native":
        return procs.run_user()
    return procs.agent_user(HARNESSES[config.harness].unprivileged() or run.opts.unprivileged)


def unprivileged_problem(opts: Options, configs: list, paths: list):
    """One line when an agent that runs as `nobody` (root with no sudo user) could not reach
    the checkout, its client or tunbridge; else None."""
    users = {procs.agent_user(HARNESSES[c.harness].unprivileged() or opts.unprivileged)
             for c in configs} if opts.agent != "native" else set()
    for user in users - {procs.run_user()}:
        where = procs.unreachable(paths, user)
        if where:
            return (f"the agent runs as {user[0]} (tunbridge mcp refuses root, and there is no sudo user), who "
                    f"cannot reach {where}: put the checkout where others may enter, or run as a user with sudo")
        if opts.agent == "claude" and not opts.backend and not any(os.environ.get(k) for k in CREDENTIALS):
            return (f"the agent runs as {user[0]} (tunbridge mcp refuses root, and there is no sudo user), whom "
                    f"a login in root's HOME does not reach: set ANTHROPIC_API_KEY (or CLAUDE_CODE_OAUTH_TOKEN), "
                    f"or run as a user with sudo")
    return None


def make_agent(run: Run, config: Config, out: str, group, bridge_env: dict, model_url, work, user):
    if run.opts.agent == "native":
        return Native(run.native, out, group, bridge_env)
    return Claude(run.client, config, run.opts, out, group, bridge_env, model_url, run.oauth, work, user)


def describe(run: Run, config: Config, key: str, user, agent) -> None:
    o = run.opts
    h = HARNESSES[config.harness]
    head = "" if run.single else f"{key}: "
    if config.harness.startswith("lean") and o.agent != "native":
        how = "login: without --bare" if run.oauth else "API key: --bare"
        run.say(f"{head}{config.harness} harness ({how}): claude {shlex.join(h.flags(agent.setup))[:240]}")
    if o.agent != "native" and user != procs.run_user():
        why = "tunbridge mcp refuses root" if h.unprivileged() else "every harness alike"
        run.say(f"{head}Claude Code runs as {user[0]} ({why}; no sudo user), HOME {agent.env['HOME']}; "
                f"the bridge gives it its channel (--user {user[0]})")
    if run.single:
        traffic = f", traffic: {','.join(config.traffic)}" if config.traffic else ""
        model = f" ({config.model})" if config.model else ""
        run.say(f"agent: {o.agent}{model}, prompt: {config.prompt}, harness: {config.harness}, "
                f"pings: {o.count}, mode: {o.mode}{traffic}")


class Pinger:
    """The requests of one bundle and the agent runs that answer them."""

    def __init__(self, run: Run, config: Config, out, ns, group, key, scenario=None, bridge=None):
        self.run, self.config, self.out, self.ns, self.group, self.key = run, config, out, ns, group, key
        self.scenario, self.bridge = scenario, bridge
        self.ident_base = (os.getpid() * 131 + config.index * 977) % 60000 + 1000
        self.head = "" if run.single else f"{key}: "

    def ident(self, opts: str, n: int) -> int:
        """Each ping process gets its own ICMP identifier (a -e in the options wins), so the
        table can match the bridge's record to it by flow key."""
        words = opts.split()
        if "-e" in words[:-1]:
            return int(words[words.index("-e") + 1])
        return (self.ident_base + n) & 0xFFFF

    def request_argv(self, n: int, opts: str, ident: int) -> list:
        wait = self.run.opts.ping_wait
        if self.scenario:
            return self.ns.argv(*self.scenario.request_argv(wait, ident))
        kinds = self.config.traffic or ("ping",)
        kind = kinds[(n - 1) % len(kinds)]
        if kind != "ping":
            return self.ns.argv("python3", "-m", "harness.traffic", kind, "--wait", str(wait),
                                "--ident", str(ident), "--ping-opts", opts)
        return self.ns.argv("ping", "-n", "-c", "1", "-W", str(wait), "-e", str(ident), *opts.split(), PEER)

    def may_start(self) -> str:
        """None when a new agent run may start, else why not."""
        if self.run.stop.is_set():
            return "interrupted"
        if self.bridge is not None and self.bridge.proc.poll() is not None:
            return f"the bridge exited (status {self.bridge.proc.returncode}; its log: bridge.log)"
        if not self.run.budget.allow():
            return self.run.budget.reason
        return None

    def watch(self, agent_run, label) -> None:
        """Shows what the agent is doing until it exits; stops it on Ctrl-C, once it has
        run longer than the run's limit, or when its MCP server did not connect (its fate then
        says so)."""
        start = time.monotonic()
        limit = self.run.opts.run_limit()
        while agent_run.alive():
            trouble = agent_run.trouble()
            if self.run.stop.is_set() or time.monotonic() - start > limit or trouble:
                agent_run.stopped = "interrupted" if self.run.stop.is_set() else "mcp" if trouble else "timeout"
                if agent_run.stopped == "timeout":
                    self.run.progress.note(f"    {self.head}the agent ran over {limit:g} s (--run-timeout); stopping it")
                if trouble:
                    self.run.progress.note(f"    {self.head}{trouble}; stopping the agent (its stderr: "
                                           f"claude-{agent_run.tag}.err)")
                self.group.stop(agent_run.proc)
                break
            self.run.progress.show(self.key, label(agent_run, time.monotonic() - start))
            time.sleep(0.2)
        agent_run.finish()
        self.run.budget.add(agent_run.cost)
        self.run.progress.ran(agent_run.end - agent_run.start)

    def wait_client(self, proc, limit=None) -> None:
        """Waits for the request's client (ping, probe) to end; on Ctrl-C, or after `limit`
        seconds, stops it: SIGINT first, on which ping prints its totals."""
        deadline = None if limit is None else time.monotonic() + limit
        while proc.poll() is None:
            if self.run.stop.is_set() or (deadline is not None and time.monotonic() > deadline):
                try:
                    proc.send_signal(signal.SIGINT)
                    proc.wait(2)
                except (subprocess.TimeoutExpired, ProcessLookupError):
                    pass
                self.group.stop(proc)
                break
            time.sleep(0.1)
        self.group.stop(proc)

    def oneshot(self, agent):
        o = self.run.opts
        count = 1 if self.scenario else o.count
        for i in range(1, count + 1):
            why = self.may_start()
            if why:
                self.run.progress.skip(count - i + 1)
                self.stopped_note(why, count - i + 1)
                return why
            opts = o.ping_opts[(i - 1) % len(o.ping_opts)] if o.ping_opts else ""
            ident = self.ident(opts, i)
            with open(os.path.join(self.out, f"ping-{i}.txt"), "w") as f:
                client = self.group.start(self.request_argv(i, opts, ident), stdout=f, stderr=subprocess.STDOUT,
                                          cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
            agent_run = agent.start(i, budget=self.run.budget.remaining())
            self.watch(agent_run, lambda r, s: f"ping {i}/{count}: {r.phase}, {s:.0f} s")
            write_run(self.out, agent_run, ident, opts)
            if agent_run.stopped == "mcp":
                self.wait_client(client, 1)
                self.run.progress.skip(count - i)
                self.stopped_note(agent_run.trouble(), count - i)
                return agent_run.trouble()
            # The agent is done and no one else reads: an answer it wrote is there within ms.
            self.wait_client(client, 3)
            if not self.scenario:
                rtt = pingout.read(os.path.join(self.out, f"ping-{i}.txt")).rtt(1)
                got = f"time={rtt:g} ms" if rtt is not None else "no reply"
                self.run.progress.note(f"    {self.head}ping {i}/{count}: {got} (agent exit {agent_run.status})")
        return None

    def continuous(self, agent):
        o = self.run.opts
        opts = o.ping_opts[0] if o.ping_opts else ""
        ident = self.ident(opts, 0)
        served, session, ping = 0, 0, None
        stopped, all_sent = None, float("inf")
        sessions = planned_runs(o, self.config)
        while served < o.count:
            if ping is not None and ping.poll() is not None:
                self.run.say(f"{self.head}ping has finished; {o.count - served} packets were never read")
                break
            why = self.may_start()
            if why:
                self.run.progress.skip(max(sessions - session, 0))
                self.stopped_note(why, o.count - served)
                stopped = why
                break
            session += 1
            n = min(o.count - served, o.session_packets)
            prompt = HARNESSES[self.config.harness].prompt(os.path.join(ROOT, self.config.prompt), str(n))
            self.run.say(f"{self.head}session {session}: claude -p \"{prompt.splitlines()[0]}\" ({n} packets)")
            agent_run = agent.start(f"s{session}", str(n), budget=self.run.budget.remaining())
            if ping is None and procs.wait_until_reading(
                    agent_run.proc, lambda t: self.run.progress.note(f"    {self.head}{t}"), self.run.stop,
                    o.run_timeout, agent_run.waits_in_read, agent_run.trouble):
                self.run.say(f"{self.head}session {session} waits in READ; pinging {PEER} {o.count} times, "
                             f"every {o.interval:g} s")
                all_sent = time.monotonic() + o.count * o.interval
                with open(os.path.join(self.out, "ping-continuous.txt"), "w") as f:
                    ping = self.group.start(self.ns.argv("ping", "-n", "-D", "-O", "-c", str(o.count),
                                                         "-i", f"{o.interval:g}", "-W", str(o.ping_wait),
                                                         "-e", str(ident), *opts.split(), PEER),
                                            stdout=f, stderr=subprocess.STDOUT)
            self.watch(agent_run, lambda r, s: self.session_label(r, o.count))
            write_run(self.out, agent_run, ident, opts)
            if agent_run.stopped == "mcp":
                stopped = agent_run.trouble()
                self.stopped_note(stopped, o.count - served)
                break
            got = len(agent_run.tracker.packets())
            self.run.progress.note(f"    {self.head}session {session}: {got} packets read (agent exit {agent_run.status})")
            served += got
            if got == 0:
                self.run.say(f"{self.head}session {session} read no packet; stopping")
                break
            asked = agent_run.tracker.reading_calls()
            if served < o.count and asked and asked[-1]["line"] == "TIMEOUT" and time.monotonic() > all_sent:
                # Its last read waited 30 s for a packet after ping's last one was sent: the
                # rest were dropped by the bridge (they would have come by now), not left for later.
                self.run.say(f"{self.head}session {session} ended on TIMEOUT after ping's last packet; "
                             f"{o.count - served} packets were never read")
                break
        if ping is not None:
            # No session will read again: what ping still sends or waits for goes unanswered.
            self.wait_client(ping, 1 if served < o.count else o.ping_wait)
            with open(os.path.join(self.out, "ping-continuous.txt")) as f:
                for line in f:
                    if "packets transmitted" in line or line.startswith("rtt"):
                        self.run.progress.note(f"    {self.head}{line.strip()}")
        return stopped

    @staticmethod
    def session_label(agent_run, count) -> str:
        t = agent_run.tracker
        since = time.time() - (t.since or agent_run.start)
        if t.seq.isdigit() and t.phase == "waiting in READ":
            return f"waiting in READ for ping {int(t.seq) + 1}/{count}, {since:.0f} s"
        if t.seq.isdigit():
            return f"ping {t.seq}/{count}: {t.phase}, {since:.0f} s"
        return f"{t.phase}, {since:.0f} s"

    def stopped_note(self, why: str, left: int) -> None:
        if why != "interrupted":
            self.run.say(f"{self.head}stopping: {why}; {left} planned agent run{'s' if left != 1 else ''} not started")


def tunbridge_binary() -> str:
    """The tunbridge a run uses: $TUNBRIDGE, else this checkout's release build."""
    return os.environ.get("TUNBRIDGE") or os.path.join(ROOT, "target", "release", "tunbridge")


def find_binaries(opts: Options) -> dict:
    """The tunbridge, Claude Code and native agent binaries the run uses (`claude_code`: the
    client with its version, harness/clients.py)."""
    tunbridge = tunbridge_binary()
    claude_code = clients.find(opts.agent, opts.client) if opts.agent != "native" else None
    native = os.path.join(os.path.dirname(tunbridge), "examples", "native_agent")
    if not os.path.exists(native):
        native = os.path.join(ROOT, "target", "release", "examples", "native_agent")
    return {"tunbridge": tunbridge, "client": claude_code.path if claude_code else None, "native": native,
            "claude_code": claude_code}
