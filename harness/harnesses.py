"""Harnesses: how Claude Code is set up around a prompt, by name.

A harness says which flags and environment the client gets, which permission settings, and
how the prompt reaches it (its slash command, or its text). `HARNESSES` maps the names
`--harness` takes to one each; a new harness is one more class here and one more entry:

- `default`: Claude Code as it comes, the prompt as its slash command when it has one,
  `--settings .claude/settings.json` (the allow rules), and `--strict-mcp-config`: the
  project's `.mcp.json` (`tunbridge mcp`, for the MCP prompts) would otherwise load in `-p`
  and add its three tools to every request of the Bash prompts;
- `lean`: only what the prompt needs (docs/HARNESS.md#the-lean-harness): Bash alone, a
  short system prompt, no MCP, skills, slash commands, background tasks, CLAUDE.md,
  memory or hooks; `--bare` with an API key, the same without it for a login (OAuth);
- `mcp`: `default` with the bridge as MCP tools (`tunbridge mcp`, docs/MCP.md): a
  configuration file of the run's own (`<work>/mcp.json`, the run's `tunbridge` and FIFOs,
  `alwaysLoad` so the tools are in the first request) given with `--strict-mcp-config
  --mcp-config`;
- `lean-mcp`: `lean` with the three MCP tools instead of Bash (`--tools ""`) and their own
  system prompt.

A harness reaches the bridge over Bash (`tunbridge read`, `tunbridge write`) or over MCP
(`tools`), and a prompt is written for one of the two (`prompt_tools`); without `--prompt`
each harness runs its own per mode (`PROMPTS`): one ping, a session (one tool call per
packet: `ping-serve-next.md`, `ping-serve-mcp.md`), or the scenario suite. The MCP harnesses
never run their client as root (`unprivileged`): `tunbridge mcp` refuses it.
"""

import json
import os
import re
import shutil
from dataclasses import dataclass, field

from harness import ROOT

SETTINGS = os.path.join(ROOT, ".claude", "settings.json")
MCP_TOOLS = ("read_packet", "write_packet", "write_and_read_next")
PROMPTS = {
    "bash": {"oneshot": "prompts/ping-respond.md", "continuous": "prompts/ping-serve-next.md",
             "suite": "prompts/ip-stack.md"},
    "mcp": {"oneshot": "prompts/ping-respond-mcp.md", "continuous": "prompts/ping-serve-mcp.md",
            "suite": "prompts/ping-respond-mcp.md"},
}


def prompt_tools(path: str) -> str:
    """"mcp" when a prompt names the tunbridge MCP tools, else "bash" (its own text; the files
    it includes do not count: the MCP prompts include the Bash procedure)."""
    with open(path) as f:
        text = f.read()
    return "mcp" if any(tool in text for tool in MCP_TOOLS) else "bash"


def writes_next(path: str) -> bool:
    """Whether a Bash prompt reads each next packet with its write (`tunbridge write --next`)."""
    with open(path) as f:
        return "--next" in f.read()


def serves(path: str) -> bool:
    """Whether a prompt serves many packets: it takes their number (`$ARGUMENTS`)."""
    with open(path) as f:
        return "$ARGUMENTS" in f.read()


def project_settings() -> dict:
    with open(SETTINGS) as f:
        return json.load(f)


def mcp_only(settings: dict) -> dict:
    """The settings with only the MCP tools' allow rules."""
    allow = [r for r in settings["permissions"]["allow"] if r.startswith("mcp__")]
    return dict(settings, permissions=dict(settings["permissions"], allow=allow))


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



@dataclass
class Client:
    """What a harness may need to know of the run it sets up: whether the client has a login
    (OAuth) rather than an API key, the configuration's private work folder (for files a
    harness writes, e.g. a server's config), and the environment that reaches its bridge."""

    oauth: bool = False
    work: str = None
    bridge_env: dict = field(default_factory=dict)

    def mcp_config(self) -> str:
        return os.path.join(self.work or "<work>", "mcp.json")


class Harness:
    """Claude Code as it comes (the base every harness changes)."""

    name = "default"
    tools = "bash"          # how the agent reaches the bridge: "bash" or "mcp"

    def label(self, oauth: bool) -> str:
        """What the tables call it."""
        return self.name

    def default_prompt(self, mode: str) -> str:
        """The prompt it runs without --prompt: mode is oneshot, continuous or suite."""
        return PROMPTS[self.tools][mode]

    def unprivileged(self) -> bool:
        """Whether its client must not run as root."""
        return self.tools == "mcp"

    def prepare(self, client: Client) -> None:
        """Writes what the flags name into the run's work folder: the MCP configuration."""
        if self.tools != "mcp":
            return
        env = client.bridge_env
        command = shutil.which("tunbridge", path=env.get("PATH")) or "tunbridge"
        server = {"command": command, "args": ["mcp"], "alwaysLoad": True,
                  "env": {k: env[k] for k in ("TUNBRIDGE_CMD_FIFO", "TUNBRIDGE_RESP_FIFO") if k in env}}
        with open(client.mcp_config(), "w") as f:
            json.dump({"mcpServers": {"tunbridge": server}}, f, indent=1)
            f.write("\n")

    def mcp_flags(self, client: Client) -> list:
        """No MCP server but the harness's own: the project's `.mcp.json` would otherwise load
        in `-p` and add its tools to every request of the Bash prompts."""
        if self.tools == "mcp":
            return ["--strict-mcp-config", "--mcp-config", client.mcp_config()]
        return ["--strict-mcp-config"]

    def flags(self, client: Client) -> list:
        """Client flags besides the prompt, the model, the output format and the permission
        mode (harness/clients.py: every run is in the default mode)."""
        return [*self.mcp_flags(client), "--settings", self.settings()]

    def env(self, client: Client) -> dict:
        """Environment for the client."""
        return {}

    def settings(self) -> str:
        """`--settings`: the project's allow rules; an MCP harness allows only the MCP tools, so
        a model that falls back to Bash is refused rather than measured as an MCP run."""
        if self.tools != "mcp":
            return SETTINGS
        return json.dumps(mcp_only(project_settings()))

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


class Mcp(Harness):
    """Claude Code as it comes, with the bridge's MCP tools."""

    name = "mcp"
    tools = "mcp"


class Lean(Harness):
    """Only what the prompt needs; see the module's docstring."""

    name = "lean"
    offered = "Bash"                # --tools: the built-in tools the model is offered
    system = "lean-system.md"

    def label(self, oauth: bool) -> str:
        return f"{self.name} (login, without --bare)" if oauth else self.name

    def flags(self, client: Client) -> list:
        flags = ["--tools", self.offered, "--system-prompt-file", os.path.join(ROOT, "prompts", self.system),
                 *self.mcp_flags(client), "--disable-slash-commands", "--no-session-persistence"]
        # --bare reads only ANTHROPIC_API_KEY: with a login the same flags run without it.
        if not client.oauth:
            flags.append("--bare")
        return flags + ["--settings", self.settings()]

    def files(self) -> list:
        return [f"prompts/{self.system}"]

    def env(self, client: Client) -> dict:
        return {"CLAUDE_CODE_DISABLE_BACKGROUND_TASKS": "1", "CLAUDE_CODE_DISABLE_GIT_INSTRUCTIONS": "1",
                "CLAUDE_CODE_DISABLE_CLAUDE_MDS": "1", "CLAUDE_CODE_DISABLE_AUTO_MEMORY": "1"}

    def settings(self) -> str:
        s = project_settings()
        if self.tools == "mcp":
            s = mcp_only(s)
        s["disableAllHooks"] = True
        return json.dumps(s)

    def prompt(self, path: str, args: str = "") -> str:
        return prompt_body(path, args)


class LeanMcp(Lean):
    """The lean harness with the three MCP tools and no built-in tool at all."""

    name = "lean-mcp"
    tools = "mcp"
    offered = ""
    system = "lean-system-mcp.md"


HARNESSES = {h.name: h for h in (Harness(), Lean(), Mcp(), LeanMcp())}
