"""What the user sees while a run goes: one live line per running configuration and an
estimate of the time left on a terminal; plain lines otherwise.

Each configuration reports its state with `show(key, text)` (which configuration, ping i of
n, the agent's phase, elapsed) and its events with `note(key, text)` (a ping's verdict, a
session's end). On a terminal the live lines are redrawn in place below the notes, with a
last line for the estimate; without one, notes are printed as they come and each live line
at most every 10 s. The estimate is the mean agent run so far times the runs left, over the
configurations running at once; without a terminal it is printed as each agent run ends.
"""

import os
import sys
import threading
import time


def clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    def __init__(self, planned_runs: int, jobs: int, stream=None, live=None, width=None):
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.width = width       # the terminal's columns; None: asked at each redraw
        self.planned, self.jobs = planned_runs, jobs
        self.lines = {}          # key -> text, in start order
        self.plain_at = {}       # key -> when its live line was last printed (plain mode)
        self.durations = []
        self.skipped = 0
        self.drawn = 0
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.stop = threading.Event()
        self.thread = None

    def __enter__(self):
        if self.live:
            self.thread = threading.Thread(target=self.loop, daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        if self.thread:
            self.thread.join()
        with self.lock:
            self.erase()
        return False

    def loop(self):
        while not self.stop.wait(0.5):
            with self.lock:
                self.draw()

    # -- reports

    def show(self, key: str, text: str) -> None:
        with self.lock:
            self.lines[key] = text
            if not self.live:
                now = time.monotonic()
                if now - self.plain_at.get(key, 0) >= 10:
                    self.plain_at[key] = now
                    self.stream.write(f"    {key + ': ' if key else ''}{text}\n")
                    self.stream.flush()

    def note(self, text: str) -> None:
        with self.lock:
            self.erase()
            self.stream.write(text + "\n")
            self.stream.flush()
            self.draw()

    def done(self, key: str) -> None:
        with self.lock:
            self.lines.pop(key, None)

    def ran(self, seconds: float) -> None:
        """An agent run ended after `seconds`; without a terminal, the estimate is printed."""
        with self.lock:
            self.durations.append(seconds)
            if not self.live:
                self.stream.write(f"    {self.summary()}\n")
                self.stream.flush()

    def skip(self, runs: int) -> None:
        """`runs` planned runs will not happen (the budget, or a configuration that stopped)."""
        with self.lock:
            self.skipped += runs

    # -- the estimate

    def eta(self):
        """Seconds left, or None before the first run has ended."""
        if not self.durations:
            return None
        left = max(self.planned - len(self.durations) - self.skipped, 0)
        return sum(self.durations) / len(self.durations) * left / max(1, min(self.jobs, max(len(self.lines), 1)))

    def summary(self) -> str:
        eta = self.eta()
        done = len(self.durations)
        text = f"{done}/{self.planned} agent runs, {clock(time.monotonic() - self.started)} elapsed"
        return text + (f", about {clock(eta)} left" if eta is not None else "")

    # -- drawing (terminal only)

    def columns(self) -> int:
        if self.width:
            return self.width
        try:
            return os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, OSError, ValueError):
            return 160

    def erase(self) -> None:
        if self.live and self.drawn:
            self.stream.write(f"\x1b[{self.drawn}F\x1b[J")
            self.drawn = 0

    def draw(self) -> None:
        if not self.live:
            return
        self.erase()
        rows = [f"    {key + ': ' if key else ''}{text}" for key, text in self.lines.items()]
        rows.append(f"    {self.summary()}")
        # A row as wide as the terminal would wrap, and erase() moves up one row per line.
        rows = [row[:self.columns() - 1] for row in rows]
        self.stream.write("\n".join(rows) + "\n")
        self.stream.flush()
        self.drawn = len(rows)
