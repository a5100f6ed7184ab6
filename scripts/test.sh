#!/usr/bin/env bash
# Runs the whole test suite: unit tests, and the integration tests that need root
# (`#[ignore = "needs root"]`, run here with --include-ignored; each makes its own network
# namespace; nothing touches the host's networking).
# Installs what the tests need first: iproute2, iputils-ping, tcpdump, gcc, tmux, Node.js,
# the pinned Claude Code client and the oldest supported one (target/clients/) for the
# harness tests (scripts/lib/common.sh), builds as the user who runs it, and re-runs itself
# with sudo when that user is not root.
# As root it then runs the tests that need no root (the unit tests, the server and
# corpus tests on the in-memory device, the properties, the agent's tools, the harness
# package's Python tests) once more as the user nobody, so a test that quietly needs root
# fails here.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. scripts/lib/common.sh

tb_not_as_root_for_a_user "building the tests"
if ! tb_is_root; then
    command -v sudo >/dev/null || TB_DIE_STATUS=2 die "the tests need root (network namespaces, TUN devices): run it as root (no sudo here); \`cargo test\` alone runs those that need none"
    tb_sudo_now "the tests need root (network namespaces, TUN devices)"
fi
tb_install_commands ip ping tcpdump python3 npm node gcc setpriv tmux
tb_install_client
tb_install_oldest_client

say "building"
cargo build --release --all-targets
# The test binaries too (the examples as tests are built only by `cargo test`), so that root,
# below, builds nothing in a user's checkout.
cargo test --release --workspace --all-targets --no-run --quiet

if ! tb_is_root; then
    say "the tests need root (network namespaces, TUN devices); re-running with sudo"
    # The build above stays valid: the same toolchain and cargo home, passed by name. The
    # tests then run as CI runs them, as root with nothing of the sudo user's (SUDO_USER
    # would make the harness run its agents as you, in the tests' root-owned folders), and
    # root writes no bytecode into your checkout.
    keep=(PATH="$PATH" RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}" CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}"
        PYTHONDONTWRITEBYTECODE=1)
    for var in CI TEST_THREADS; do [[ -z ${!var+set} ]] || keep+=("$var=${!var}"); done
    exec sudo env -u SUDO_USER -u SUDO_UID -u SUDO_GID -u SUDO_COMMAND "${keep[@]}" "$ROOT/scripts/test.sh" "$@"
fi

say "running the tests (those that need root included)"
# A HOME of their own: the real Claude Code client, which the tests run, writes its session
# transcripts and state there, not into yours. The toolchain is named, so cargo is unmoved.
export RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup} CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}
tb_traps
TESTS_HOME=$(mktemp -d "${TMPDIR:-/tmp}/tunbridge-tests-home.XXXXXX")
tb_track_dir "$TESTS_HOME"
HOME=$TESTS_HOME cargo test --release --workspace --all-targets --no-fail-fast \
    -- --include-ignored --test-threads="${TEST_THREADS:-4}"

# The harness package's unit tests (harness/tests: no root, no network, no client).
python_tests() { python3 -m unittest discover -s harness/tests -t . 2>&1; }
say "running the harness package's Python tests"
python_tests | tail -4

# The built test binaries named (lib for the unit tests, else an integration test), run as
# nobody where cargo runs them (they use the checkout's daemon and scripts). Each must pass
# and run at least one test. Skipped, saying why, when nobody cannot reach the checkout
# (a parent folder closed to others, as /root usually is).
unprivileged() {
    local name exe out found=0 flags=()
    local as_nobody=(setpriv --reuid=nobody --regid=nogroup --clear-groups env -i PATH=/usr/bin:/bin HOME=/tmp CI=true)
    if ! "${as_nobody[@]}" test -x "$ROOT/target/release/tunbridge" -a -r "$ROOT/harness/model/stack.py"; then
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
    say "running the tests that need no root again, as nobody"
    unprivileged lib server channel corpus properties tools
    nobody=(setpriv --reuid=nobody --regid=nogroup --clear-groups env -i PATH=/usr/bin:/bin HOME=/tmp)
    if "${nobody[@]}" test -r "$ROOT/harness/tests/__init__.py"; then
        out=$("${nobody[@]}" bash -c "cd '$ROOT' && $(declare -f python_tests); python_tests") ||
            { echo "$out" >&2; die "the harness's Python tests failed as an unprivileged user"; }
        grep -E '^Ran [1-9][0-9]* tests' <<<"$out" | sed 's/^/    nobody, harness: /' ||
            { echo "$out" >&2; die "the harness's Python tests ran nothing as an unprivileged user"; }
    fi
fi
