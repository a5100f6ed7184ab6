#!/usr/bin/env bash
# Runs the whole test suite: unit tests, and the integration tests that need root
# (each makes its own network namespace; nothing touches the host's networking).
# Installs what the tests need first: iproute2, iputils-ping, tcpdump, gcc, Node.js and
# the pinned Claude Code client for the harness tests (scripts/lib/common.sh).
# As root it then runs the tests that need no root (the unit tests, the server and
# corpus tests on the in-memory device, the properties) once more as the user nobody,
# so a test that quietly needs root fails here instead of skipping on a laptop.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. scripts/lib/common.sh

tb_install_commands ip ping tcpdump python3 npm node gcc setpriv
tb_install_client

if ! tb_is_root; then
    echo "test.sh: warning: not root; the integration tests will be skipped" >&2
fi

say "building"
cargo build --release --all-targets

say "running the tests"
cargo test --release --workspace --all-targets -- --test-threads="${TEST_THREADS:-4}"

# The built test binaries named (lib for the unit tests, else an integration test), run as
# nobody where cargo runs them (they use the checkout's daemon and scripts). Each must pass
# and run at least one test. Skipped, saying why, when nobody cannot reach the checkout
# (a parent folder closed to others, as /root usually is).
unprivileged() {
    local name exe out found=0 flags=()
    local as_nobody=(setpriv --reuid=nobody --regid=nogroup --clear-groups env -i PATH=/usr/bin:/bin HOME=/tmp CI=true)
    if ! "${as_nobody[@]}" test -x "$ROOT/target/release/tunbridge" -a -r "$ROOT/examples/dry_run_stack.py"; then
        say "skipped: the user nobody cannot reach $ROOT (clone it where others may enter to run this pass)"
        return 0
    fi
    for name in "$@"; do
        if [[ $name == lib ]]; then flags+=(--lib); else flags+=(--test "$name"); fi
    done
    while read -r name exe; do
        found=$((found + 1))
        out=$(cd "$ROOT/bridge" && timeout 300 "${as_nobody[@]}" "$exe" --test-threads=2 </dev/null 2>&1) ||
            { echo "$out" >&2; die "the $name tests failed as an unprivileged user"; }
        grep -E '^test result: ok\. [1-9][0-9]* passed' <<<"$out" | sed "s/^/    nobody, $name: /" ||
            { echo "$out" >&2; die "the $name tests ran nothing as an unprivileged user"; }
    done < <(cargo test --release --no-run --quiet --message-format=json "${flags[@]}" |
        python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["target"]["name"], m["executable"])')
    ((found == $#)) || die "found $found test binaries for the $# named: $*"
}

if tb_is_root; then
    tb_traps
    say "running the tests that need no root again, as nobody"
    unprivileged lib server corpus properties tools
fi
