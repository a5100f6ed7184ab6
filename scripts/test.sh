#!/usr/bin/env bash
# Runs the whole test suite: unit tests, and the integration tests that need root
# (each makes its own network namespace; nothing touches the host's networking).
# Installs what the tests need first: iproute2, iputils-ping, tcpdump, Node.js and
# the pinned Claude Code client for the harness tests (scripts/lib/common.sh).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. scripts/lib/common.sh

tb_install_commands ip ping tcpdump python3 npm node
tb_install_client

if ! tb_is_root; then
    echo "test.sh: warning: not root; the integration tests will be skipped" >&2
fi

say "building"
cargo build --release --all-targets

say "running the tests"
cargo test --release --workspace --all-targets -- --test-threads="${TEST_THREADS:-4}"
