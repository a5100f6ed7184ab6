"""run.json: what produced a run, so any result can be traced and two runs compared.

tunbridge's version and git commit (with whether the tree had changes), Claude Code's
version, the models as the API named them (filled in as configurations end), each prompt
file's sha256, the permission settings, every flag and the configurations they made, the
kernel, Python, the machine, the date; and per configuration its folder, state and result
summary.
"""

import hashlib
import json
import os
import platform
import subprocess
import sys
import time

from harness import ROOT, backends
from harness.harnesses import HARNESSES, SETTINGS


def sha256(path: str):
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


def output(argv, cwd=ROOT):
    try:
        done = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def git() -> dict:
    commit = output(["git", "rev-parse", "HEAD"])
    dirty = output(["git", "status", "--porcelain", "--untracked-files=no"])
    return {"commit": commit, "changes": bool(dirty) if commit else None}


def collect(opts, configs, binaries) -> dict:
    """Everything known before the run starts."""
    prompts = sorted({c.prompt for c in configs})
    prompt_files = {p: sha256(os.path.join(ROOT, p)) for p in prompts}
    for p in prompts:   # files a prompt includes (@file) count as the prompt
        try:
            for line in open(os.path.join(ROOT, p)):
                if line.startswith("@") and len(line.split()) == 1:
                    prompt_files[line[1:].strip()] = sha256(os.path.join(ROOT, line[1:].strip()))
        except OSError:
            pass
    for name in sorted({c.harness for c in configs}):   # a harness's own system prompt, say
        prompt_files.update((f, sha256(os.path.join(ROOT, f))) for f in HARNESSES[name].files())
    claude_code = binaries.get("claude_code")
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "argv": opts.argv,
        "options": opts.as_dict(),
        "configurations": [dict(vars(c), traffic=list(c.traffic), folder=None, state="planned") for c in configs],
        "tunbridge": {"version": output([binaries["tunbridge"], "--version"]), **git()},
        "claude_code": claude_code.as_dict() if claude_code else None,
        "backend": backends.describe(opts),
        "models": {},
        "prompts": prompt_files,
        "settings": {"path": os.path.relpath(SETTINGS, ROOT), "sha256": sha256(SETTINGS)},
        "kernel": " ".join(platform.uname()[i] for i in (0, 2, 3)),
        "python": sys.version.split()[0],
        "machine": {"nproc": os.cpu_count(), "arch": platform.machine()},
    }


def write(out: str, prov: dict) -> None:
    path = os.path.join(out, "run.json")
    with open(path + ".tmp", "w") as f:
        json.dump(prov, f, indent=1)
        f.write("\n")
    os.replace(path + ".tmp", path)
