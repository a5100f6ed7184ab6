"""What a run is: the options every configuration shares, and the matrix of configurations.

`--model`, `--prompt`, `--harness`, `--thinking`, `--traffic` and `--model-behaviour` may
each be given several times; every combination is one `Config`. Everything else (the agent, how many pings, the
mode, the suite, the budget) is the run's and lives in `Options`. Both are plain data,
checked once here (`ConfigError` carries the one-line message the command prints), and
written whole into run.json.
"""

import itertools
import os
import re
from dataclasses import asdict, dataclass, field

from harness import ROOT, backends
from harness.harnesses import HARNESSES
from harness.model.flaws import FLAWS
from harness.traffic import ALL_KINDS

AGENTS = ("claude", "dry-run", "native")
DEFAULT_PROMPT = "prompts/ping-respond.md"
SUITE_PROMPT = "prompts/ip-stack.md"
SERVE_PROMPT = "prompts/ping-serve.md"


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


def check_behaviour(spec: str, o: Options) -> None:
    """Raises ConfigError unless `spec` is a behaviour list the scripted model can run."""
    from harness.model.behaviour import Behaviours   # the model's own parser, loaded when needed
    if o.agent != "dry-run":
        raise ConfigError("--model-behaviour needs --agent dry-run")
    try:
        Behaviours.parse([spec])
    except ValueError as e:
        raise ConfigError(f"--model-behaviour: {e}") from None


def matrix(o: Options, models=(), prompts=(), harnesses=(), thinking=(), traffic=(), behaviours=()) -> list:
    """Every combination of the axes as a Config, in the order given; checks each value."""
    check_options(o)
    for b in behaviours:
        check_behaviour(b, o)
    if o.mode == "continuous":
        if traffic:
            raise ConfigError("--continuous sends pings; --traffic is for one-shot runs")
        prompts = [SERVE_PROMPT]
    elif not prompts:
        suite_default = o.suite is not None and os.path.exists(os.path.join(ROOT, SUITE_PROMPT))
        prompts = [SUITE_PROMPT if suite_default else DEFAULT_PROMPT]
    for p in prompts:
        if not os.path.isfile(os.path.join(ROOT, p)):
            raise ConfigError(f"prompt {p} not found")
    for h in harnesses:
        if h not in HARNESSES:
            raise ConfigError(f"--harness takes {' or '.join(HARNESSES)}, not {h}")
    for t in thinking:
        thinking_tokens(t)
    local = bool(o.backend) and backends.parse(o.backend).preset.local
    if local and (not models or None in models):
        raise ConfigError(f"--backend {o.backend} needs --model NAME: the model as that server names it")
    if local and not thinking:   # a local server's thinking is off unless --thinking asks for it
        thinking = ["off"]
    axes = [list(models) or [None], list(prompts), list(harnesses) or ["default"],
            list(thinking) or [None], [traffic_kinds(t) for t in traffic] or [()], list(behaviours) or [None]]
    if o.agent == "native":
        axes = [[None], [DEFAULT_PROMPT], ["default"], [None], axes[4], [None]]
    configs = []
    for i, (m, p, h, t, k, b) in enumerate(itertools.product(*axes), 1):
        configs.append(Config(model=m, prompt=p, harness=h, thinking=t, traffic=k, behaviour=b, index=i))
    return configs
