"""Claude Code clients: which one a run uses, its version, and the versions the harness supports.

The harness is checked (scripts/test.sh, so CI) with both ends of the supported range: the
pinned client (package.json, installed into ./node_modules) and `OLDEST`, installed by the
test script into target/clients/. Another version runs with a one-line warning, never a
refusal: Claude Code moves fast and users run whatever they have. `--client PATH` runs a
user's own `claude`; it must exist, be executable and print a version.

Every run carries `RUN_FLAGS`, `--permission-mode default`: a user whose settings say
`defaultMode: auto` would otherwise run `-p` in auto mode, where the client's classifier
(or, from 2.1.283, a server-side check) decides what runs, so a refused command is not
refused (docs/HARNESS.md). 2.1.332 calls the mode `manual` but accepts `default`; 2.1.197
rejects `manual`.

Every run also carries `RUN_ENV`, real runs too: with non-essential traffic and telemetry on,
the client spent 10 to 20 ms more per packet and 2.1.197 made a side request at start and
offered one more tool (docs/HARNESS.md, "Where a packet's time goes"); without the auto-updater
one client version serves the whole run, the one run.json records.
"""

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from harness import ROOT

OLDEST = "2.1.197"
PERMISSION_MODE = "default"
RUN_FLAGS = ["--permission-mode", PERMISSION_MODE]
RUN_ENV = {"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1"}
PINNED_PATH = os.path.join(ROOT, "node_modules", ".bin", "claude")
VERSION = re.compile(r"^\s*(\d+)\.(\d+)\.(\d+)\b")


class ClientError(Exception):
    """A client that cannot run; the message is the one line the user sees."""


def parse_version(text: str):
    """(major, minor, patch) from `claude --version`'s output ("2.1.332 (Claude Code)"), or None."""
    m = VERSION.match(text or "")
    return tuple(int(g) for g in m.groups()) if m else None


def pinned() -> str:
    """The version package.json pins."""
    with open(os.path.join(ROOT, "package.json")) as f:
        return json.load(f)["dependencies"]["@anthropic-ai/claude-code"]


def supported_range() -> str:
    return f"{OLDEST} to {pinned()}"


def in_range(version: str) -> bool:
    v = parse_version(version)
    return v is not None and parse_version(OLDEST) <= v <= parse_version(pinned())


@dataclass(frozen=True)
class ClaudeCode:
    """One client: where it is, how it was chosen, and the version it reports."""

    path: str
    version: str            # "2.1.332", as `--version` prints it
    source: str             # "pinned" (./node_modules), "--client", or "PATH"

    def warning(self):
        """One line when the version is outside the supported range, else None."""
        if in_range(self.version):
            return None
        return (f"warning: Claude Code {self.version} ({self.path}) is outside the range this harness "
                f"is tested with ({supported_range()}); the run goes on")

    def as_dict(self) -> dict:
        return {"path": self.path, "version": self.version, "source": self.source,
                "supported": in_range(self.version), "supported_range": supported_range(),
                "permission_mode": PERMISSION_MODE, "env": dict(RUN_ENV)}


def probe(path: str, source: str) -> ClaudeCode:
    """Checks that `path` is a Claude Code client: it exists, is executable and prints a
    version. ClientError (one line) otherwise."""
    shown = path if source != "--client" else f"--client {path}"
    if not os.path.exists(path):
        raise ClientError(f"{shown}: no such file")
    if os.path.isdir(path) or not os.access(path, os.X_OK):
        raise ClientError(f"{shown}: not an executable file")
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ClientError(f"{shown}: `--version` did not run: {e}") from None
    said = (done.stdout or done.stderr).strip().splitlines()
    first = said[0] if said else ""
    if done.returncode != 0 or parse_version(first) is None:
        raise ClientError(f"{shown}: `--version` printed {first[:80]!r} (exit {done.returncode}), "
                          "not a Claude Code version")
    return ClaudeCode(os.path.abspath(path), ".".join(map(str, parse_version(first))), source)


def find(agent: str, client: str = None) -> ClaudeCode:
    """The client a run uses: `--client` when given; for a real run the user's `claude` on
    PATH first, for a dry run the pinned one first (the scripted model is checked against
    it); then the other."""
    if client:
        return probe(client, "--client")
    on_path = shutil.which("claude")
    pinned_first = [(PINNED_PATH, "pinned"), (on_path, "PATH")]
    for path, source in pinned_first if agent == "dry-run" else pinned_first[::-1]:
        if path and os.path.exists(path):
            return probe(path, source)
    raise ClientError(f"Claude Code is not installed: no `claude` on PATH and no "
                      f"{os.path.relpath(PINNED_PATH, ROOT)} (run `npm ci` here, or give --client PATH)")
