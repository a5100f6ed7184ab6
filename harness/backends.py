"""Backends: where Claude Code sends its model requests (`--backend`), as presets.

`--backend NAME`, `--backend NAME=URL` (the preset at another address) or `--backend URL`
(any server that speaks the Anthropic Messages API). Each preset sets what the client needs
for that server (docs/BACKENDS.md has the commands and the reasons):

- `ANTHROPIC_BASE_URL`, without `/v1`: the client appends `/v1/messages` itself, so a URL
  ending in `/v1` would make it call `/v1/v1/messages` and is refused here;
- the credential: `ANTHROPIC_API_KEY` (header `x-api-key`) for Anthropic, a bearer token
  (`ANTHROPIC_AUTH_TOKEN`) for the local servers, the user's own when set;
- for a local server: the model name for every role the client may ask for (so no request
  names a Claude model it does not serve), `CLAUDE_CODE_ATTRIBUTION_HEADER=0` (the client's
  first system block otherwise carries a per-prompt hash that defeats the server's prefix
  cache), thinking off unless `--thinking` asks for it, an output limit that fits a small
  window, and no traffic to Anthropic besides (telemetry, update checks).

Before a run, `preflight` asks the server how large a context it serves the model with, where
the server can say (ollama, llama-server, vLLM, LiteLLM), and refuses with one line when the
harness's requests would not fit: ollama cuts a long prompt silently, and the others refuse
every request. It says what it could not check.
"""

import json
import math
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

from harness import ROOT

ANTHROPIC_URL = "https://api.anthropic.com"
# Output tokens a local backend is asked for at most (the client asks 32,000 of a model it
# does not know, which a server that checks prompt + max_tokens against a small window
# refuses); the user's own CLAUDE_CODE_MAX_OUTPUT_TOKENS wins.
LOCAL_MAX_OUTPUT = 8192
# On top of what every run carries (harness/clients.py, RUN_ENV: no non-essential traffic,
# telemetry or auto-updates): a server of your own gets no error reports either.
QUIET = {"DISABLE_ERROR_REPORTING": "1"}
MODEL_ROLES = ("ANTHROPIC_MODEL", "ANTHROPIC_DEFAULT_OPUS_MODEL", "ANTHROPIC_DEFAULT_SONNET_MODEL",
               "ANTHROPIC_DEFAULT_HAIKU_MODEL", "ANTHROPIC_SMALL_FAST_MODEL")


class BackendError(Exception):
    """A backend that cannot run; the message is the one line the user sees."""


@dataclass(frozen=True)
class Preset:
    """What one kind of server needs."""

    name: str
    url: str                   # its default address
    token: str = None          # the bearer token sent when the user has none (None: an API key)
    api_key_too: bool = False  # also send the token as x-api-key (vLLM's documented set-up)
    local: bool = True         # a server of the user's own: model required, attribution off, ...
    start: str = ""            # how to start it with enough context, for the error line


PRESETS = {p.name: p for p in (
    Preset("anthropic", ANTHROPIC_URL, local=False),
    Preset("ollama", "http://127.0.0.1:11434", token="ollama",
           start="start it with OLLAMA_CONTEXT_LENGTH={ctx} ollama serve"),
    Preset("llama-server", "http://127.0.0.1:8080", token="llama-server",
           start="start llama-server with --ctx-size {ctx} (per slot: times --parallel)"),
    Preset("vllm", "http://127.0.0.1:8000", token="vllm", api_key_too=True,
           start="start vllm serve with --max-model-len {ctx}"),
    Preset("litellm", "http://127.0.0.1:4000", token="sk-litellm",
           start="give the model a larger window (model_info: max_input_tokens) or route it to one"),
    Preset("url", "", token="no-key", start="give the server a context of {ctx} tokens or more"),
)}
NAMES = tuple(n for n in PRESETS if n != "url")


def check_url(url: str, what: str) -> str:
    """The base URL without a trailing slash; BackendError for one the client cannot use."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BackendError(f"{what} must be an http:// or https:// URL, not {url!r}")
    base = url.rstrip("/")
    if base.endswith("/v1"):
        raise BackendError(f"{what} {url} ends in /v1: Claude Code appends /v1/messages itself and would call "
                           f"{base}/v1/messages; give {base[:-3]}")
    return base


@dataclass(frozen=True)
class Backend:
    """A preset at an address."""

    preset: Preset
    url: str

    @property
    def name(self) -> str:
        return self.preset.name

    def label(self) -> str:
        return self.name if self.url == self.preset.url else f"{self.name} at {self.url}"

    def env(self, model: str, thinking_set: bool, environ=None) -> tuple:
        """(variables to set, variables to remove) for the client's environment."""
        environ = os.environ if environ is None else environ
        p = self.preset
        if not p.local:
            put = {}
            if self.url != ANTHROPIC_URL:
                put["ANTHROPIC_BASE_URL"] = self.url
            return put, ["ANTHROPIC_AUTH_TOKEN"] if environ.get("ANTHROPIC_API_KEY") else []
        token = environ.get("ANTHROPIC_AUTH_TOKEN") or p.token
        put = dict(QUIET, ANTHROPIC_BASE_URL=self.url, ANTHROPIC_AUTH_TOKEN=token,
                   CLAUDE_CODE_ATTRIBUTION_HEADER="0",
                   CLAUDE_CODE_MAX_OUTPUT_TOKENS=environ.get("CLAUDE_CODE_MAX_OUTPUT_TOKENS") or str(LOCAL_MAX_OUTPUT))
        put.update({role: model for role in MODEL_ROLES})
        if not thinking_set:
            put["MAX_THINKING_TOKENS"] = "0"
        drop = ["CLAUDE_CODE_OAUTH_TOKEN"]
        if p.api_key_too:
            put["ANTHROPIC_API_KEY"] = token
        else:
            drop.append("ANTHROPIC_API_KEY")
        return put, drop

    def apply(self, env: dict, model: str, thinking_set: bool) -> dict:
        """`env` with this backend's settings."""
        put, drop = self.env(model, thinking_set, env)
        env = {k: v for k, v in env.items() if k not in drop}
        env.update(put)
        return env

    def record(self, model_names=()) -> dict:
        """For run.json: the backend and what it set (a token is named, never shown)."""
        put, drop = self.env("<model>", False, {})
        shown = {k: ("(set)" if k in ("ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_API_KEY") else v) for k, v in put.items()}
        return {"name": self.name, "url": self.url, "sets": shown, "unsets": drop}


def describe(opts, environ=None) -> dict:
    """For run.json and the tables: where this run's requests went."""
    environ = os.environ if environ is None else environ
    if opts.agent == "dry-run":
        return {"name": "scripted model", "label": "the scripted model (harness/model)"}
    if opts.agent != "claude":
        return None
    if opts.backend:
        b = parse(opts.backend)
        return dict(b.record(), label=b.label(), checks=list(opts.backend_checks))
    url = environ.get("ANTHROPIC_BASE_URL")
    return {"name": "environment", "url": url or ANTHROPIC_URL,
            "label": f"the environment's ANTHROPIC_BASE_URL ({url})" if url else "anthropic (the environment's "
            "credentials)"}


def parse(spec: str) -> Backend:
    """`NAME`, `NAME=URL` or `URL` as a Backend; BackendError naming what is wrong."""
    if re.match(r"^[a-z][a-z-]*=", spec):
        name, _, url = spec.partition("=")
    elif "://" in spec:
        name, url = "url", spec
    else:
        name, url = spec, None
    if name not in PRESETS or (name == "url" and "://" not in spec):
        raise BackendError(f"--backend takes {', '.join(NAMES)}, NAME=URL or a URL, not {spec!r}")
    preset = PRESETS[name]
    return Backend(preset, check_url(url or preset.url, "--backend"))


# ---------------------------------------------------------------- how large the requests are

# Bytes of the first model request of a one-shot /ping-respond run, measured with the scripted
# model (model-requests.jsonl): the client's system prompt, tools and the prompt. Versions
# before 2.1.332 are taken at 2.1.197's size, the larger.
FIRST_REQUEST_BYTES = {("default", "2.1.332"): 56_900, ("default", "2.1.197"): 84_600,
                       ("lean", "2.1.332"): 7_700, ("lean", "2.1.197"): 7_700,
                       # the three MCP tools' schemas; lean-mcp offers them instead of Bash
                       ("mcp", "2.1.332"): 58_400, ("mcp", "2.1.197"): 86_100,
                       ("lean-mcp", "2.1.332"): 7_700, ("lean-mcp", "2.1.197"): 7_700}
MEASURED_PROMPT_BYTES = 4_426       # prompts/ping-respond.md, as those requests carried it
PER_PACKET_BYTES = 1_200            # one packet's read and write exchanges (measured: 1,175)


def prompt_bytes(path: str) -> int:
    """A prompt file's size with the files it includes (`@file` lines)."""
    total = 0
    with open(os.path.join(ROOT, path)) as f:
        for line in f:
            m = re.fullmatch(r"@(\S+)\n?", line)
            if m and os.path.exists(os.path.join(ROOT, m.group(1))):
                total += os.path.getsize(os.path.join(ROOT, m.group(1)))
            else:
                total += len(line.encode())
    return total


def needed_tokens(harness: str, prompt: str, client_version: str, packets: int, max_output: int) -> dict:
    """The context the harness needs: its largest request (after `packets` packets in one
    conversation) in tokens, plus the output it may ask for. Tokens are bytes / 4 (what the
    scripted model counts) plus a quarter: a local model's tokenizer may cut finer."""
    from harness.clients import parse_version
    newer = (parse_version(client_version or "") or (0,)) >= (2, 1, 332)
    base = FIRST_REQUEST_BYTES.get((harness, "2.1.332" if newer else "2.1.197"),
                                   FIRST_REQUEST_BYTES[("default", "2.1.197")])
    size = base + prompt_bytes(prompt) - MEASURED_PROMPT_BYTES + PER_PACKET_BYTES * max(packets, 1)
    request = math.ceil(size / 4 * 1.25)
    return {"request": request, "output": max_output, "total": request + max_output}


# ---------------------------------------------------------------- what the server says

@dataclass
class Context:
    """The context a server gives a model: `tokens`, or None and `why` not."""

    tokens: int = None
    how: str = ""
    why: str = ""
    notes: list = field(default_factory=list)


def http_json(url: str, token: str = None, body=None, timeout: float = 10.0):
    """GET (or POST `body`) `url`, the JSON answer; BackendError on any failure."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                 headers={"content-type": "application/json"})
    if token:
        req.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        detail = e.read().decode(errors="replace").strip().splitlines()
        raise BackendError(f"{url} answered {e.code}{': ' + detail[0][:160] if detail else ''}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise BackendError(f"cannot reach {url} ({reason})") from None
    except ValueError:
        raise BackendError(f"{url} did not answer JSON") from None


def ollama_context(url: str, model: str, token: str) -> Context:
    """From /api/ps, the model loaded: its context_length. Not loaded: load it (what the
    run's first request would do) and look again."""
    def loaded():
        for m in (http_json(f"{url}/api/ps", token) or {}).get("models") or []:
            if model in (m.get("name"), m.get("model")) or f"{model}:latest" in (m.get("name"), m.get("model")):
                return m.get("context_length")
        return None
    tokens = loaded()
    notes = []
    if tokens is None:
        notes.append(f"loaded {model} in ollama to read its context (the run would load it anyway)")
        try:
            http_json(f"{url}/api/generate", token, {"model": model, "stream": False}, timeout=600)
        except BackendError as e:
            if " 404" in str(e):
                raise BackendError(f"ollama at {url} has no model {model}: `ollama pull {model}`") from None
            raise
        tokens = loaded()
    if tokens is None:
        return Context(why="ollama's /api/ps does not say the context (ollama before 0.6?)", notes=notes)
    return Context(int(tokens), "/api/ps context_length", notes=notes)


def llama_context(url: str, model: str, token: str) -> Context:
    props = http_json(f"{url}/props", token) or {}
    n_ctx = (props.get("default_generation_settings") or {}).get("n_ctx")
    if not n_ctx:
        return Context(why="llama-server's /props has no default_generation_settings.n_ctx")
    return Context(int(n_ctx), "/props n_ctx (per slot)")


def vllm_context(url: str, model: str, token: str) -> Context:
    served = (http_json(f"{url}/v1/models", token) or {}).get("data") or []
    for m in served:
        if m.get("id") == model:
            if m.get("max_model_len"):
                return Context(int(m["max_model_len"]), "/v1/models max_model_len")
            return Context(why="vLLM's /v1/models has no max_model_len for it")
    names = ", ".join(m.get("id", "?") for m in served) or "nothing"
    raise BackendError(f"vLLM at {url} serves {names}, not {model} (vllm serve --served-model-name {model})")


def litellm_context(url: str, model: str, token: str) -> Context:
    for m in (http_json(f"{url}/model/info", token) or {}).get("data") or []:
        if m.get("model_name") == model:
            info = m.get("model_info") or {}
            tokens = info.get("max_input_tokens") or info.get("max_tokens")
            if tokens:
                return Context(int(tokens), "/model/info max_input_tokens",
                               notes=["LiteLLM's figure comes from its model map; the server behind it may "
                                      "serve less"])
            return Context(why="LiteLLM's /model/info gives no max_input_tokens for it")
    raise BackendError(f"LiteLLM at {url} has no model_name {model} in /model/info")


PROBES = {"ollama": ollama_context, "llama-server": llama_context, "vllm": vllm_context,
          "litellm": litellm_context}


def context_of(backend: Backend, model: str, environ=None) -> Context:
    """What the server says of the model's context, or why it could not be asked."""
    environ = os.environ if environ is None else environ
    probe = PROBES.get(backend.name)
    if backend.name == "anthropic":
        return Context(why="Anthropic's models take 200,000 tokens or more")
    if probe is None:
        return Context(why="a server of unknown kind cannot be asked its context")
    token = environ.get("ANTHROPIC_AUTH_TOKEN") or backend.preset.token
    return probe(backend.url, model, token)


def preflight(backend: Backend, configs, opts, client_version: str, environ=None) -> list:
    """Checks each configuration's model against the server's context before anything runs:
    the lines to print; BackendError (one line) when a request would not fit."""
    environ = os.environ if environ is None else environ
    lines, contexts = [], {}
    max_output = int(environ.get("CLAUDE_CODE_MAX_OUTPUT_TOKENS") or LOCAL_MAX_OUTPUT) \
        if backend.preset.local else 32_000
    packets = opts.session_packets if opts.mode == "continuous" else 1
    for c in configs:
        if c.model not in contexts:
            contexts[c.model] = context_of(backend, c.model, environ)
            lines += contexts[c.model].notes
        ctx = contexts[c.model]
        need = needed_tokens(c.harness, c.prompt, client_version, min(packets, opts.count or 1), max_output)
        what = f"{c.model or 'the default model'} ({c.harness} harness, {os.path.basename(c.prompt)})"
        if ctx.tokens is None:
            lines.append(f"context not checked for {what}: {ctx.why}; it needs about {need['total']:,} tokens")
            continue
        if ctx.tokens < need["total"]:
            fix = backend.preset.start.format(ctx=2 ** math.ceil(math.log2(need["total"])))
            lean = "" if c.harness.startswith("lean") else ", or use --lean"
            raise BackendError(
                f"{backend.name} serves {c.model} with a {ctx.tokens:,}-token context ({ctx.how}); {what} needs "
                f"about {need['total']:,} ({need['request']:,} a request + {need['output']:,} output): {fix}{lean}")
        lines.append(f"context of {c.model}: {ctx.tokens:,} tokens ({ctx.how}); {what} needs about "
                     f"{need['total']:,}")
    return lines
