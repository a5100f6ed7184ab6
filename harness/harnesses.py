"""Harnesses: how Claude Code is set up around a prompt, by name.

A harness says which flags and environment the client gets, which permission settings, and
how the prompt reaches it (its slash command, or its text). `HARNESSES` maps the names
`--harness` takes to one each; a new harness is one more class here and one more entry:

- `default`: Claude Code as it comes, the prompt as its slash command when it has one,
  `--settings .claude/settings.json` (the allow rules), and `--strict-mcp-config`: the
  project's `.mcp.json` (`tunbridge mcp`, for the MCP prompts) would otherwise load in `-p`
  and add its three tools to every request of the Bash prompts;
- `lean`: only what the prompt needs (docs/HARNESS.md#the-lean-harness): Bash alone, a
  204-byte system prompt, no MCP, skills, slash commands, background tasks, CLAUDE.md,
  memory or hooks; `--bare` with an API key, the same without it for a login (OAuth).
"""

import json
import os
import re
from dataclasses import dataclass, field

from harness import ROOT

SETTINGS = os.path.join(ROOT, ".claude", "settings.json")


def prompt_body(path: str, args: str = "") -> str:
    """A prompt's text as Claude Code gives a slash command's file: front matter stripped,
    `$ARGUMENTS` filled in, and each `@file` line replaced by that file's text."""
    with open(path) as f:
        lines = f.read().split("\n")
    if lines and lines[0] == "---":
        try:
            lines = lines[lines.index("---", 1) + 1:]
        except ValueError:
            pass
    out = []
    for line in lines:
        m = re.fullmatch(r"@(\S+)", line)
        if m:
            with open(os.path.join(ROOT, m.group(1))) as f:
                out.append(f.read().rstrip("\n"))
        else:
            out.append(line.replace("$ARGUMENTS", args))
    return "\n".join(out)


def slash_command(path: str):
    """`/name` when `.claude/commands/name.md` is this prompt, else None."""
    name = os.path.splitext(os.path.basename(path))[0]
    command = os.path.join(ROOT, ".claude", "commands", name + ".md")
    if os.path.exists(command) and os.path.realpath(command) == os.path.realpath(path):
        return "/" + name
    return None

LEAN_SYSTEM = "prompts/lean-system.md"   # the lean harness's system prompt


@dataclass
class Client:
    """What a harness may need to know of the run it sets up: whether the client has a login
    (OAuth) rather than an API key, the configuration's private work folder (for files a
    harness writes, e.g. a server's config), and the environment that reaches its bridge."""

    oauth: bool = False
    work: str = None
    bridge_env: dict = field(default_factory=dict)


class Harness:
    """Claude Code as it comes (the base every harness changes)."""

    name = "default"

    def label(self, oauth: bool) -> str:
        """What the tables call it."""
        return self.name

    def flags(self, client: Client) -> list:
        """Client flags besides the prompt, the model, the output format and the permission
        mode (harness/clients.py: every run is in the default mode)."""
        return ["--strict-mcp-config", "--settings", self.settings()]

    def env(self, client: Client) -> dict:
        """Environment for the client."""
        return {}

    def settings(self) -> str:
        return SETTINGS

    def files(self) -> list:
        """Files of the repository, besides the prompt, that shape what the model is sent
        (run.json hashes them with the prompts)."""
        return []

    def prompt(self, path: str, args: str = "") -> str:
        """The `-p` text: the slash command (with ARGS) when the prompt has one, else its text."""
        command = slash_command(path)
        if command:
            return f"{command} {args}".rstrip()
        return prompt_body(path, args)


class Lean(Harness):
    """Only what the prompt needs; see the module's docstring."""

    name = "lean"

    def label(self, oauth: bool) -> str:
        return "lean (login, without --bare)" if oauth else "lean"

    def flags(self, client: Client) -> list:
        flags = ["--tools", "Bash", "--system-prompt-file", os.path.join(ROOT, LEAN_SYSTEM),
                 "--strict-mcp-config", "--disable-slash-commands", "--no-session-persistence"]
        # --bare reads only ANTHROPIC_API_KEY: with a login the same flags run without it.
        if not client.oauth:
            flags.append("--bare")
        return flags + ["--settings", self.settings()]

    def files(self) -> list:
        return [LEAN_SYSTEM]

    def env(self, client: Client) -> dict:
        return {"CLAUDE_CODE_DISABLE_BACKGROUND_TASKS": "1", "CLAUDE_CODE_DISABLE_GIT_INSTRUCTIONS": "1",
                "CLAUDE_CODE_DISABLE_CLAUDE_MDS": "1", "CLAUDE_CODE_DISABLE_AUTO_MEMORY": "1"}

    def settings(self) -> str:
        with open(SETTINGS) as f:
            s = json.load(f)
        s["disableAllHooks"] = True
        return json.dumps(s)

    def prompt(self, path: str, args: str = "") -> str:
        return prompt_body(path, args)


HARNESSES = {h.name: h for h in (Harness(), Lean())}
