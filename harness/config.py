"""What a run is: the options every configuration shares, and the matrix of configurations.

`--model`, `--prompt`, `--harness`, `--thinking` and `--traffic` may each be given several
times; every combination is one `Config`. Everything else (the agent, how many pings, the
mode, the suite, the budget) is the run's and lives in `Options`. Both are plain data,
checked once here (`ConfigError` carries the one-line message the command prints), and
written whole into run.json.
"""

import itertools
import os
import re
from dataclasses import asdict, dataclass, field

from harness import ROOT
from harness.harnesses import HARNESSES
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
        return ", ".join(parts)

    def slug(self) -> str:
        """The configuration's folder name in a matrix run."""
        parts = [f"{self.index:02d}", self.model or "default", os.path.splitext(os.path.basename(self.prompt))[0],
                 self.harness]
        if self.thinking:
            parts.append(f"thinking-{self.thinking}")
        if self.traffic:
            parts.append("-".join(self.traffic))
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
    out: str = None
    jobs: int = 1
    max_cost: float = None
    argv: list = field(default_factory=list)
    client: str = None            # --client PATH: the user's own Claude Code

    def as_dict(self) -> dict:
        return asdict(self)


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
    if o.max_cost is not None and o.max_cost <= 0:
        raise ConfigError("--max-cost must be a positive number of US dollars")
    if o.client and o.agent == "native":
        raise ConfigError("--client runs Claude Code (--agent claude or dry-run), not the native agent")
    if o.flaw and o.agent != "dry-run":
        raise ConfigError("--flaw needs --agent dry-run")
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


def matrix(o: Options, models=(), prompts=(), harnesses=(), thinking=(), traffic=()) -> list:
    """Every combination of the axes as a Config, in the order given; checks each value."""
    check_options(o)
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
    axes = [list(models) or [None], list(prompts), list(harnesses) or ["default"],
            list(thinking) or [None], [traffic_kinds(t) for t in traffic] or [()]]
    if o.agent == "native":
        axes = [[None], [DEFAULT_PROMPT], ["default"], [None], axes[4]]
    configs = []
    for i, (m, p, h, t, k) in enumerate(itertools.product(*axes), 1):
        configs.append(Config(model=m, prompt=p, harness=h, thinking=t, traffic=k, index=i))
    return configs
