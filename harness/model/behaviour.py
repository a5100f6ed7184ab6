"""How the scripted model behaves besides being right or wrong (flaws.py is for being wrong):
the place for what a real model does, each behaviour a switch.

    latency         time to first token, then output tokens per second (timing.py)
    pace            a fixed wait before each turn of the tool loop (timing.py; --model-delay)
    thinking        signed thinking blocks, streamed as the API streams them (thinking.py)
    caching         prompt caching as the API accounts it (cache.py)
    errors          API errors at a seeded rate: 429, 529, 500, cut streams, SSE errors (faults.py)
    python-first, raw-fifo, malformed-hex, write-twice, no-write
                    deviations from the prompt (deviations.py)

A spec is `NAME`, `NAME=VALUE` (the behaviour's main parameter: `pace=2`, `latency=sonnet-4.6`)
or `NAME:key=value;key=value` (`errors:rate=0.2;kinds=429,529`); several are a comma list
(`latency:profile=haiku-4.5,errors:rate=0.2;kinds=429,529`: a piece that names no behaviour
belongs to the one before). `KINDS` maps the names to their classes; `Behaviours.parse` builds
the list, and the server calls their hooks (spec.py) in a fixed order, whatever the order
given: deviations, thinking, errors, caching, timing.
"""

from harness.model import cache, deviations, faults, thinking, timing
from harness.model.spec import BehaviourError

KINDS = {cls.name: cls for cls in (timing.Latency, timing.Pace, thinking.Thinking, cache.Caching,
                                   faults.Errors, *deviations.KINDS)}


def split(text: str) -> list:
    """`a:x=1;k=2,3,b` -> ["a:x=1;k=2,3", "b"]: a comma starts a new spec only before a name."""
    specs = []
    for piece in text.split(","):
        name = piece.split(":", 1)[0].split("=", 1)[0].strip()
        if specs and name not in KINDS:
            specs[-1] += "," + piece
        elif piece.strip():
            specs.append(piece.strip())
    return specs


def parse_one(spec: str):
    """A behaviour from one spec; BehaviourError naming what is wrong."""
    name, colon, rest = spec.partition(":")
    params = {}
    if not colon and "=" in name:
        name, _, value = name.partition("=")
        params = {None: value}
    elif colon:
        for item in filter(None, rest.split(";")):
            key, eq, value = item.partition("=")
            if not eq:
                raise BehaviourError(f"{name}: {item!r} is not key=value")
            params[key.strip()] = value.strip()
    cls = KINDS.get(name.strip())
    if cls is None:
        raise BehaviourError(f"unknown behaviour {name!r}; known: {', '.join(KINDS)}")
    if None in params:
        if cls.SHORT is None:
            raise BehaviourError(f"{cls.name} takes no value; write {cls.name}:key=value")
        params = {cls.SHORT: params.pop(None)}
    return cls(params)


class Behaviours:
    """The behaviours switched on, their hooks called in order."""

    def __init__(self, items=()):
        self.items = sorted(items, key=lambda b: b.order)

    @classmethod
    def parse(cls, specs) -> "Behaviours":
        """From spec strings (each may be a comma list); BehaviourError for a bad one."""
        items = []
        for text in specs or ():
            items += [parse_one(s) for s in split(text)]
        names = [b.name for b in items]
        twice = {n for n in names if names.count(n) > 1}
        if twice:
            raise BehaviourError(f"behaviour given twice: {', '.join(sorted(twice))}")
        return cls(items)

    @property
    def names(self) -> list:
        return [b.name for b in self.items]

    def turn(self, x, turn):
        for b in self.items:
            turn = b.turn(x, turn)
        return turn

    def respond(self, x, turn):
        for b in self.items:
            reply = b.respond(x, turn)
            if reply is not None:
                return reply
        return None

    def usage(self, x, usage):
        for b in self.items:
            usage = b.usage(x, usage)
        return usage

    def before_turn(self, x, turn):
        for b in self.items:
            b.before_turn(x, turn)

    def events(self, x, events):
        for b in self.items:
            events = b.events(x, events)
        return events


def describe() -> str:
    """One line per behaviour, for --help."""
    return "; ".join(f"{name}: {cls.about}" for name, cls in KINDS.items())
