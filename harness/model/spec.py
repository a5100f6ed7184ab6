"""What every behaviour of the scripted model shares: its parameters and its hooks.

A behaviour is switched on by a spec, `NAME` or `NAME:key=value;key=value` (the runner's
`--model-behaviour`, the server's `--behaviour`); `Behaviour.params` reads the values with
a type each and says in one line what is wrong. The server calls the hooks of every
behaviour switched on, for each Messages request, in this order (harness/model/server.py):

1. `turn(x, turn)`: what the model says (deviations replace the turn, thinking adds a block);
2. `respond(x, turn)`: a `Reply` instead of the turn (an API error, a 400 for a request the
   API would refuse), or None;
3. `usage(x, usage)`: the usage the answer reports (prompt caching);
4. `before_turn(x, turn)`: a wait before any byte goes out;
5. `events(x, events)`: the server-sent events, to pace or to cut.

`x` is the `Exchange`: the request, when it came, its number, and `notes`, which go into the
request log as `behaviour` (what each behaviour decided for this request).
"""

import random
from dataclasses import dataclass, field


class BehaviourError(ValueError):
    """A spec that cannot run; the message is the one line the user sees."""


@dataclass
class Reply:
    """A whole HTTP answer that replaces the turn: status, headers, JSON body."""

    status: int
    body: dict
    headers: dict = field(default_factory=dict)


@dataclass
class Exchange:
    """One Messages request as the behaviours see it."""

    body: dict
    raw: bytes
    now: float                 # when the request came (unix time)
    n: int                     # its number in the server's log
    stream: bool = True
    cfg: object = None         # the server's options (read and write commands, flaw)
    decide: object = None      # decide(body) -> the scripted turn for a (changed) request
    notes: dict = field(default_factory=dict)
    state: dict = field(default_factory=dict)   # what one behaviour keeps between its hooks
    sleep: object = None       # time.sleep, or a stand-in in tests


class Behaviour:
    """The base: every hook does nothing. A subclass sets `name`, `order`, `about`,
    `PARAMS` ({key: (type, default, help)}) and overrides the hooks it needs."""

    name = ""
    about = ""
    order = 50                 # hooks of lower order run first, whatever order the specs came in
    PARAMS = {}
    SHORT = None               # the key `NAME=VALUE` sets (`pace=2` is `pace:seconds=2`)

    def __init__(self, params: dict):
        self.p = self.read_params(params)
        self.rng = random.Random(f"{self.name}:{self.p.get('seed', 1)}")

    @classmethod
    def read_params(cls, given: dict) -> dict:
        out = {}
        for key, value in given.items():
            if key not in cls.PARAMS:
                known = ", ".join(cls.PARAMS) or "none"
                raise BehaviourError(f"{cls.name} has no parameter {key!r} (it takes: {known})")
        for key, (kind, default, _) in cls.PARAMS.items():
            if key not in given:
                out[key] = default
                continue
            try:
                out[key] = kind(given[key])
            except (TypeError, ValueError) as e:
                raise BehaviourError(f"{cls.name}: {key}={given[key]!r}: {e}") from None
        return out

    def turn(self, x: Exchange, turn: dict) -> dict:
        return turn

    def respond(self, x: Exchange, turn: dict):
        return None

    def usage(self, x: Exchange, usage: dict) -> dict:
        return usage

    def before_turn(self, x: Exchange, turn: dict) -> None:
        pass

    def events(self, x: Exchange, events):
        return events


def number(low=None, high=None, kind=float):
    """A parameter type: a number within [low, high]."""
    def read(text):
        try:
            v = kind(text)
        except ValueError:
            raise ValueError("not a number") from None
        if (low is not None and v < low) or (high is not None and v > high):
            bounds = f"from {low}" if high is None else f"from {low} to {high}"
            raise ValueError(f"must be {bounds}")
        return v
    read.__name__ = kind.__name__
    return read


def choice(*options):
    """A parameter type: one of `options`."""
    def read(text):
        if text not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return text
    return read


def words(*options):
    """A parameter type: a comma list, each one of `options`."""
    def read(text):
        items = [w for w in str(text).split(",") if w]
        bad = [w for w in items if w not in options]
        if bad or not items:
            raise ValueError(f"takes a comma list of {', '.join(options)}")
        return items
    return read
