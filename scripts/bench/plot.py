#!/usr/bin/env python3
"""Plots the RTT of every ping of a scripts/bench.sh run as an SVG (standard library only).

One dot per reply, one colour per variant, rounds side by side on the x axis, a
logarithmic RTT axis, and each variant's median as a dashed line.

    python3 scripts/bench/plot.py DIR OUT.svg
"""

import math
import os
import sys
from xml.sax.saxutils import escape

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from summarize import VARIANTS, read_ping, rounds, summarise  # noqa: E402

COLOURS = {"tunbridge": "#1f77b4", "tunbridge-cpu": "#9467bd", "floor": "#ff7f0e", "pyhelper": "#d62728", "inproc": "#2ca02c", "kernel": "#7f7f7f"}
W, H = 960, 520
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 40, 110


def series(directory):
    """Per variant: list of (x, rtt) with x = ping number across rounds; and round lengths."""
    data, lengths = {}, []
    for key, _ in VARIANTS:
        points, x = [], 0
        for i, path in enumerate(rounds(directory, key, "ping")):
            seqs, rtts, sent, _ = read_ping(path)
            points += [(x + s - 1, t) for s, t in zip(seqs, rtts)]
            x += sent
            if key == "tunbridge" or len(lengths) <= i:
                lengths[i:i + 1] = [sent]
        if points:
            data[key] = points
    return data, lengths


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: plot.py DIR OUT.svg")
    directory, out = sys.argv[1], sys.argv[2]
    data, lengths = series(directory)
    summary = summarise(directory)
    all_rtts = [t for pts in data.values() for _, t in pts]
    lo = 10 ** math.floor(math.log10(min(all_rtts)))
    hi = 10 ** math.ceil(math.log10(max(all_rtts)))
    xmax = max(sum(lengths), 1)
    px = lambda x: LEFT + (W - LEFT - RIGHT) * x / xmax
    py = lambda t: TOP + (H - TOP - BOTTOM) * (math.log10(hi) - math.log10(t)) / (math.log10(hi) - math.log10(lo))
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="15">Ping RTT per reply '
        f'({len(lengths)} rounds, interleaved)</text>',
    ]
    decade = lo
    while decade <= hi * 1.001:
        for k in range(1, 10):
            t = decade * k
            if t > hi * 1.001:
                break
            y = py(t)
            width = 1 if k == 1 else 0.3
            svg.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ccc" stroke-width="{width}"/>')
            if k == 1:
                svg.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{t:g}</text>')
        decade *= 10
    x = 0
    for i, n in enumerate(lengths):
        svg.append(f'<line x1="{px(x):.1f}" x2="{px(x):.1f}" y1="{TOP}" y2="{H - BOTTOM}" stroke="#999" stroke-width="0.5"/>')
        svg.append(f'<text x="{px(x + n / 2):.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">round {i + 1}</text>')
        x += n
    svg.append(f'<text transform="translate(18 {(TOP + H - BOTTOM) / 2}) rotate(-90)" text-anchor="middle">RTT (ms, log scale)</text>')
    svg.append(f'<text x="{(LEFT + W - RIGHT) / 2}" y="{H - BOTTOM + 34}" text-anchor="middle">ping number within the variant\'s rounds</text>')
    for key, pts in data.items():
        colour = COLOURS.get(key, "black")
        d = "".join(f"M{px(x):.1f} {py(t):.1f}h0" for x, t in pts)
        svg.append(f'<path d="{d}" stroke="{colour}" stroke-width="2.4" stroke-linecap="round" fill="none" opacity="0.55"/>')
        med = summary["variants"][key]["median_ms"]
        svg.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{py(med):.1f}" y2="{py(med):.1f}" stroke="{colour}" stroke-dasharray="6 4" stroke-width="1.2"/>')
    for i, (key, label) in enumerate(k for k in VARIANTS if k[0] in data):
        lx, ly = LEFT + (i % 2) * 440, H - BOTTOM + 58 + (i // 2) * 20
        med = summary["variants"][key]["median_ms"]
        svg.append(f'<circle cx="{lx + 6}" cy="{ly - 4}" r="5" fill="{COLOURS.get(key, "black")}"/>')
        svg.append(f'<text x="{lx + 18}" y="{ly}">{escape(label)}: median {med:.3f} ms</text>')
    svg.append(f'<rect x="{LEFT}" y="{TOP}" width="{W - LEFT - RIGHT}" height="{H - TOP - BOTTOM}" fill="none" stroke="black" stroke-width="0.8"/>')
    svg.append("</svg>")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        f.write("\n".join(svg) + "\n")


if __name__ == "__main__":
    main()
