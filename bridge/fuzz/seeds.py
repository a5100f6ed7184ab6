#!/usr/bin/env python3
"""Seeds the `stack` fuzz target with the kernel's packets from bridge/src/wire/fixtures.

Random bytes seldom carry valid IP and transport checksums, so without seeds the fuzzer
spends its time on packets owed silence. Each seed is a two-byte request length, a
captured request, and a captured packet as the other stack's answer: every pair.

    python3 seeds.py            # writes corpus/stack/ (ignored by git)
"""

import itertools
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "src", "wire", "fixtures")
ARRAY = re.compile(r"pub static (\w+): \[u8; \d+\] = \[(.*?)\];", re.S)


def packets():
    """Every captured packet in the fixtures, by name."""
    found = {}
    for name in sorted(os.listdir(FIXTURES)):
        with open(os.path.join(FIXTURES, name)) as f:
            text = f.read()
        for m in ARRAY.finditer(text):
            body = re.sub(r"//[^\n]*", "", m.group(2))
            found[m.group(1)] = bytes(int(x, 0) for x in re.findall(r"0x[0-9a-fA-F]+|\b\d+\b", body))
    return found


def main():
    out = os.path.join(HERE, "corpus", "stack")
    os.makedirs(out, exist_ok=True)
    found = packets()
    for (r, request), (a, answer) in itertools.product(found.items(), repeat=2):
        with open(os.path.join(out, f"{r}__{a}"), "wb") as f:
            f.write(len(request).to_bytes(2, "big") + request + answer)
    print(f"{len(found)} packets, {len(found) ** 2} seeds in {out}")


if __name__ == "__main__":
    main()
