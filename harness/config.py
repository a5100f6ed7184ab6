"""What a run is: the options every configuration shares, and the matrix of configurations.

`--model`, `--prompt`, `--harness`, `--thinking`, `--traffic` and `--model-behaviour` may
each be given several times; every combination is one `Config` (a prompt goes with the
harnesses that reach the bridge the way it is written for, Bash or MCP). Everything else (the agent, how many pings, the
mode, the suite, the budget) is the run's and lives in `Options`. Both are plain data,
checked once here (`ConfigError` carries the one-line message the command prints), and
written whole into run.json.
"""

import itertools
import os
import re
from dataclasses import asdict, dataclass, field

from harness import ROOT, backends
from harness.harnesses import HARNESSES, PROMPTS, prompt_tools, serves, writes_next
from harness.model.flaws import FLAWS
from harness.traffic import ALL_KINDS

AGENTS = ("claude", "dry-run", "native")
DEFAULT_PROMPT = PROMPTS["bash"]["oneshot"]
SUITE_PROMPT = PROMPTS["bash"]["suite"]
TOOLS_WORDS = {"bash": "the Bash commands (tunbridge read, tunbridge write)", "mcp": "the MCP tools"}


class ConfigError(Exception):
    """A flag's value that cannot run; the message is the one line the user sees."""


def thinking_tokens(thinking):
    """MAX_THINKING_TOKENS for `--thinking` (off, on, or a budget); None: the client decides."""
    if thinking in (None, ""):
        return None
    if thinking == "off":
        return 0
    if thinking == "on":
        return 31999
    if re.fullmatch(r"[0-9]+", thinking):
        return int(thinking)
    raise ConfigError(f"--thinking must be off, on or a number of tokens, not {thinking!r}")


@dataclass(frozen=True)
class Config:
    """One configuration of the matrix: who answers, with what prompt, harness and traffic."""

    model: str = None          # None: the client's default
    prompt: str = DEFAULT_PROMPT
    harness: str = "default"
    thinking: str = None       # None: the client's choice
    traffic: tuple = ()        # kinds cycled through, one per round; () is ping
    behaviour: str = None      # dry run: the scripted model's behaviours (harness/model/behaviour.py)
    index: int = 1

    @property
    def thinking_label(self) -> str:
        tokens = thinking_tokens(self.thinking)
        if tokens is None:
            return "client default"
        return f"{self.thinking} (MAX_THINKING_TOKENS={tokens})"

    def label(self) -> str:
        """One line naming the configuration, for progress and headings."""
        parts = [self.model or "default model", os.path.basename(self.prompt), self.harness]
        if self.thinking:
            parts.append(f"thinking {self.thinking}")
        if self.traffic:
            parts.append(",".join(self.traffic))
        if self.behaviour:
            parts.append(f"behaviour {self.behaviour}")
        return ", ".join(parts)

    def slug(self) -> str:
        """The configuration's folder name in a matrix run."""
        parts = [f"{self.index:02d}", self.model or "default", os.path.splitext(os.path.basename(self.prompt))[0],
                 self.harness]
        if self.thinking:
            parts.append(f"thinking-{self.thinking}")
        if self.traffic:
            parts.append("-".join(self.traffic))
        if self.behaviour:
            parts.append(self.behaviour)
        return re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(parts))


@dataclass
class Options:
    """What every configuration of a run shares."""

    agent: str = "claude"
    count: int = None             # pings per configuration (None with --suite alone)
    mode: str = "oneshot"         # or "continuous"
    interval: float = 1.0
    session_packets: int = 20
    ping_opts: list = field(default_factory=list)
    ping_wait: int = 180
    suite: list = None            # scenario names ([] = all the prompt handles); None: no suite
    flaw: str = None
    model_delay: float = None     # dry run: seconds the scripted model waits before each turn
    run_timeout: float = 600.0    # seconds an agent run may take (a session: plus the pings' own time)
    out: str = None
    jobs: int = 1
    max_cost: float = None
    argv: list = field(default_factory=list)
    client: str = None            # --client PATH: the user's own Claude Code
    backend: str = None           # --backend NAME[=URL] or URL (harness/backends.py)
    backend_checks: list = field(default_factory=list)   # what the pre-flight found
    unprivileged: bool = False    # every agent as nobody when root runs it with no sudo user (the
                                  # overhead benchmark: all harnesses as one user), not only MCP's

    def as_dict(self) -> dict:
        return asdict(self)

    def run_limit(self) -> float:
        """Seconds one agent run may take before the harness stops it: --run-timeout, and for
        a continuous session also the time its pings take to be sent and to give up."""
        if self.mode == "continuous":
            return self.run_timeout + self.session_packets * self.interval + self.ping_wait
        return self.run_timeout


def check_options(o: Options) -> None:
    """Raises ConfigError for a run-wide value that cannot run."""
    if o.agent not in AGENTS:
        raise ConfigError("--agent must be claude, native or dry-run")
    if o.count is not None and o.count < 1:
        raise ConfigError("--count must be a positive number")
    if o.session_packets < 1:
        raise ConfigError("--session-packets must be a positive number")
    if o.interval <= 0:
        raise ConfigError("--interval must be a number of seconds")
    if o.ping_wait < 1:
        raise ConfigError("--ping-wait must be a positive number of seconds")
    if o.jobs < 1:
        raise ConfigError("--jobs must be a positive number")
    if o.run_timeout <= 0:
        raise ConfigError("--run-timeout must be a positive number of seconds")
    if o.max_cost is not None and o.max_cost <= 0:
        raise ConfigError("--max-cost must be a positive number of US dollars")
    if o.backend:
        try:
            backends.parse(o.backend)
        except backends.BackendError as e:
            raise ConfigError(str(e)) from None
        if o.agent != "claude":
            raise ConfigError("--backend is for --agent claude (a dry run talks to its scripted model)")
    if o.client and o.agent == "native":
        raise ConfigError("--client runs Claude Code (--agent claude or dry-run), not the native agent")
    if o.flaw and o.agent != "dry-run":
        raise ConfigError("--flaw needs --agent dry-run")
    if o.flaw and o.flaw not in FLAWS:
        raise ConfigError(f"--flaw takes {', '.join(list(FLAWS)[:-1])} or {list(FLAWS)[-1]}, not {o.flaw!r}")
    if o.model_delay is not None and o.agent != "dry-run":
        raise ConfigError("--model-delay needs --agent dry-run")
    for opts in o.ping_opts:
        if not re.fullmatch(r"[-\sa-zA-Z0-9.]*", opts):
            raise ConfigError(f"--ping-opts takes plain ping flags, not {opts}")
    if o.mode == "continuous":
        if o.suite is not None:
            raise ConfigError("--continuous sends pings; it does not go with --suite")
        if o.agent == "native":
            raise ConfigError("--continuous runs Claude Code (--agent claude or dry-run); "
                              "the native agent always runs continuously")
        if len(o.ping_opts) > 1:
            raise ConfigError("--continuous sends one ping stream: give --ping-opts once")


def traffic_kinds(value: str) -> tuple:
    """`--traffic ping,ping6`: the kinds one configuration cycles through."""
    kinds = tuple(k for k in value.split(",") if k)
    for kind in kinds:
        if kind not in ALL_KINDS:
            raise ConfigError(f"--traffic takes ping, ping6, udp-echo[6], udp-closed[6] or tcp-syn[6], not {kind}")
    return kinds


def check_behaviour(spec: str, o: Options) -> list:
    """The names of the behaviours in `spec`; ConfigError unless it is a behaviour list the
    scripted model can run."""
    from harness.model.behaviour import Behaviours   # the model's own parser, loaded when needed
    if o.agent != "dry-run":
        raise ConfigError("--model-behaviour needs --agent dry-run")
    try:
        return Behaviours.parse([spec]).names
    except ValueError as e:
        raise ConfigError(f"--model-behaviour: {e}") from None


def matrix(o: Options, models=(), prompts=(), harnesses=(), thinking=(), traffic=(), behaviours=()) -> list:
    """Every combination of the axes as a Config, in the order given (a prompt with the
    harnesses of its kind only: `prompt_pairs`); checks each value."""
    check_options(o)
    named = {name for b in behaviours for name in check_behaviour(b, o)}
    if o.mode == "continuous" and traffic:
        raise ConfigError("--continuous sends pings; --traffic is for one-shot runs")
    for h in harnesses:
        if h not in HARNESSES:
            raise ConfigError(f"--harness takes {', '.join(HARNESSES)}, not {h}")
    pairs = prompt_pairs(o, list(prompts), list(harnesses) or ["default"])
    check_deviations(named, pairs)
    for t in thinking:
        thinking_tokens(t)
    local = bool(o.backend) and backends.parse(o.backend).preset.local
    if local and (not models or None in models):
        raise ConfigError(f"--backend {o.backend} needs --model NAME: the model as that server names it")
    if local and not thinking:   # a local server's thinking is off unless --thinking asks for it
        thinking = ["off"]
    axes = [list(models) or [None], pairs, list(thinking) or [None], [traffic_kinds(t) for t in traffic] or [()],
            list(behaviours) or [None]]
    if o.agent == "native":
        axes = [[None], [(DEFAULT_PROMPT, "default")], [None], axes[3], [None]]
    configs = []
    for i, (m, (p, h), t, k, b) in enumerate(itertools.product(*axes), 1):
        configs.append(Config(model=m, prompt=p, harness=h, thinking=t, traffic=k, behaviour=b, index=i))
    return configs


def check_deviations(named: set, pairs) -> None:
    """The deviations (python-first, raw-fifo, malformed-hex, write-twice, no-write) change
    the two Bash commands of a read-then-write prompt; under a one-call prompt (write --next,
    the MCP tools) they would do something else than they say, so they are refused there.
    `named`: the behaviours asked for, by name."""
    from harness.model.deviations import KINDS
    asked = sorted(named & {k.name for k in KINDS})
    one_call = sorted({p for p, h in pairs
                       if HARNESSES[h].tools == "mcp" or writes_next(os.path.join(ROOT, p))})
    if asked and one_call:
        raise ConfigError(f"--model-behaviour {asked[0]} is scripted for the read-then-write prompts "
                          f"(prompts/ping-respond.md, prompts/ping-serve.md), not {one_call[0]}: "
                          f"add --prompt prompts/ping-serve.md to a continuous run")


def prompt_pairs(o: Options, prompts: list, harnesses: list) -> list:
    """(prompt, harness) for each harness: its own prompt for the mode when none is given, else
    each prompt given with each harness that reaches the bridge the way it is written for
    (Bash or MCP: harness/harnesses.py), prompts first, in the order given."""
    mode = "continuous" if o.mode == "continuous" else "suite" if o.suite is not None else "oneshot"
    if not prompts:
        return [(HARNESSES[h].default_prompt(mode), h) for h in harnesses]
    for p in prompts:
        path = os.path.join(ROOT, p)
        if not os.path.isfile(path):
            raise ConfigError(f"prompt {p} not found")
        if o.mode == "continuous" and not serves(path):
            raise ConfigError(f"--continuous needs a prompt that serves many packets (it takes their number, "
                              f"$ARGUMENTS: {PROMPTS['bash']['continuous']}, prompts/ping-serve.md, "
                              f"{PROMPTS['mcp']['continuous']}), not {p}")
    kinds = {p: prompt_tools(os.path.join(ROOT, p)) for p in prompts}
    pairs = [(p, h) for p in prompts for h in harnesses if kinds[p] == HARNESSES[h].tools]
    for p in prompts:
        if not any(q == p for q, _ in pairs):
            fits = " or ".join(n for n, h in HARNESSES.items() if h.tools == kinds[p])
            raise ConfigError(f"{p} is written for {TOOLS_WORDS[kinds[p]]}: run it with --harness {fits}")
    for h in harnesses:
        if not any(g == h for _, g in pairs):
            tools = HARNESSES[h].tools
            raise ConfigError(f"--harness {h} reaches the bridge through {TOOLS_WORDS[tools]}, and no --prompt given "
                              f"is written for them: add one (e.g. {HARNESSES[h].default_prompt(mode)}) "
                              f"or give no --prompt")
    return pairs
