#!/usr/bin/env bash
# Runs the whole test suite: unit tests, and the integration tests that need root
# (each makes its own network namespace; nothing touches the host's networking).
# Installs what the tests need first: iproute2, iputils-ping, tcpdump, Node.js
# packages for the Claude Code harness.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n==> %s\n' "$*"; }

need_apt=()
command -v ip >/dev/null || need_apt+=(iproute2)
command -v ping >/dev/null || need_apt+=(iputils-ping)
command -v tcpdump >/dev/null || need_apt+=(tcpdump)
command -v python3 >/dev/null || need_apt+=(python3)
command -v npm >/dev/null || need_apt+=(nodejs npm)
if ((${#need_apt[@]})); then
    say "installing ${need_apt[*]}"
    if [[ $(id -u) -ne 0 ]]; then
        echo "test.sh: need root to install ${need_apt[*]} (run with sudo)" >&2
        exit 2
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [[ -f package-lock.json ]]; then
    say "installing the pinned Claude Code client (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "test.sh: warning: not root; the integration tests will be skipped" >&2
fi

say "building"
cargo build --release --all-targets

say "running the tests"
cargo test --release --workspace --all-targets -- --test-threads="${TEST_THREADS:-4}"
