"""How the scripted model behaves around its answers: the place for what a real model does
besides being right or wrong (flaws.py is for being wrong).

A behaviour sees each Messages request the server answers and may change how the answer
goes out. Today there is one, `pace`: a fixed delay before every main-loop turn (the
benchmark of `--jobs` uses it as a stand-in for a model's thinking time). Each behaviour is
a small class with the hooks it needs:

- `before_turn(turn)`: called once the turn is decided, before any byte is sent (a delay,
  an API error instead of the turn);
- `events(events)`: the SSE events of the turn, to pace, extend or cut.

`Behaviours.parse("pace=2")` builds the list from the command line (`--behaviour`,
repeatable, `NAME[=VALUE]`); the server calls them in order.
"""

import time


class Pace:
    """Waits `seconds` before answering a main-loop turn (read, write, report): a slow model."""

    name = "pace"

    def __init__(self, value: str):
        try:
            self.seconds = float(value)
        except ValueError:
            raise ValueError(f"pace takes seconds, not {value!r}") from None
        if self.seconds < 0:
            raise ValueError("pace takes seconds >= 0")

    def before_turn(self, turn: dict) -> None:
        if turn.get("kind") not in ("side", "count_tokens", "probe"):
            time.sleep(self.seconds)

    def events(self, events):
        return events


KINDS = {cls.name: cls for cls in (Pace,)}


class Behaviours:
    """The behaviours switched on, in the order given."""

    def __init__(self, items=()):
        self.items = list(items)

    @classmethod
    def parse(cls, specs) -> "Behaviours":
        """From `NAME[=VALUE]` strings; ValueError naming what is wrong."""
        items = []
        for spec in specs or ():
            name, _, value = spec.partition("=")
            if name not in KINDS:
                raise ValueError(f"unknown behaviour {name!r}; known: {', '.join(KINDS)}")
            items.append(KINDS[name](value))
        return cls(items)

    def before_turn(self, turn: dict) -> None:
        for b in self.items:
            b.before_turn(turn)

    def events(self, events):
        for b in self.items:
            events = b.events(events)
        return events
