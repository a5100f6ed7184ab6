"""The harness's pictures, drawn in one place: SVG by hand, on a logarithmic RTT axis.

Two charts share the axis code: `strip_chart`, the leaderboard's every ping per
configuration (a box from the quartiles with the median, each ping a dot; an invalid reply a
red cross at its RTT; a lost ping a grey triangle in a column of its own on the right), and
`round_chart`, the bridge benchmark's every reply by ping number, one colour per variant,
rounds side by side, each variant's median dashed. Standard library only: the pictures are
simple, and the runner runs as root after sudo, where a plotting package installed for the
user would not be found (docs/RUNNER.md says why no plotting library).
"""

import math
import random
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from harness import stats

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
           "#7f7f7f", "#d62728"]


def log_range(values):
    """(low, high) decades around `values` (1 ms to 10 ms when there are none)."""
    values = [v for v in values if v and v > 0]
    if not values:
        return 1.0, 10.0
    lo = 10 ** math.floor(math.log10(min(values)))
    hi = 10 ** math.ceil(math.log10(max(values)))
    return lo, hi if hi > lo else lo * 10


def log_ticks(lo, hi):
    """(value, major) for every 1..9 x decade between lo and hi."""
    ticks, decade = [], lo
    while decade <= hi * 1.001:
        for k in range(1, 10):
            t = decade * k
            if t > hi * 1.001:
                break
            ticks.append((t, k == 1))
        decade *= 10
    return ticks


def head(width, height, title):
    return [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
            f'<rect width="{width}" height="{height}" fill="white"/>',
            f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="15">{escape(title)}</text>']


def label_ms(t: float) -> str:
    return f"{t:g} ms" if t < 1000 else f"{t / 1000:g} s"


@dataclass
class Strip:
    """One configuration: its label and (RTT or None, valid, lost) per ping."""

    label: str
    points: list = field(default_factory=list)


def strip_chart(series, title="Ping RTT per configuration", unit="RTT (log scale)") -> str:
    label_w = min(440, 40 + 6.6 * max((len(s.label) for s in series), default=10))
    width, row_h, top = int(label_w + 620), 34, 44
    left, right = label_w, width - 90          # the lost column sits right of the axis
    height = top + row_h * max(len(series), 1) + 90
    rtts = [p[0] for s in series for p in s.points if p[0] is not None]
    lo, hi = log_range(rtts)
    px = lambda t: left + (right - left) * (math.log10(t) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
    bottom = top + row_h * max(len(series), 1)
    svg = head(width, height, title)
    few = math.log10(hi / lo) <= 2   # label 2 and 5 as well when the axis spans few decades
    for t, major in log_ticks(lo, hi):
        x = px(t)
        svg.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{bottom}" stroke="#ccc" '
                   f'stroke-width="{1 if major else 0.3}"/>')
        first = round(t / 10 ** math.floor(math.log10(t) + 1e-9))
        if major or (few and first in (2, 5)):
            svg.append(f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">{label_ms(t)}</text>')
    svg.append(f'<text x="{(left + right) / 2}" y="{bottom + 36}" text-anchor="middle">{escape(unit)}</text>')
    lost_x = right + 45
    svg.append(f'<text x="{lost_x}" y="{top - 6}" text-anchor="middle" fill="#555">lost</text>')
    svg.append(f'<rect x="{right + 20}" y="{top}" width="50" height="{bottom - top}" fill="none" stroke="#999" '
               'stroke-dasharray="3 3"/>')
    rng = random.Random(7)
    for i, s in enumerate(series):
        y = top + row_h * i + row_h / 2
        if i % 2:
            svg.append(f'<rect x="0" y="{y - row_h / 2:.1f}" width="{width}" height="{row_h}" fill="#f4f4f4"/>')
        svg.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{escape(s.label)}</text>')
        got = [p[0] for p in s.points if p[0] is not None]
        if got:
            q1, med, q3 = stats.percentile(got, 25), stats.median(got), stats.percentile(got, 75)
            svg.append(f'<rect x="{px(q1):.1f}" y="{y - 10:.1f}" width="{max(px(q3) - px(q1), 1):.1f}" height="20" '
                       'fill="#dde8f4" stroke="#6a8fb8"/>')
            svg.append(f'<line x1="{px(med):.1f}" x2="{px(med):.1f}" y1="{y - 12:.1f}" y2="{y + 12:.1f}" '
                       'stroke="#1f3f66" stroke-width="2"/>')
        for rtt, valid, lost in s.points:
            dy = rng.uniform(-7, 7)
            if rtt is None or lost:
                x = lost_x + rng.uniform(-12, 12)
                svg.append(f'<path d="M{x:.1f} {y + dy - 4:.1f} l4 7 h-8 z" fill="#888"/>')
            elif valid:
                svg.append(f'<circle cx="{px(rtt):.1f}" cy="{y + dy:.1f}" r="3.2" fill="#1f77b4" opacity="0.8"/>')
            else:
                x, yy = px(rtt), y + dy
                svg.append(f'<path d="M{x - 4:.1f} {yy - 4:.1f} l8 8 M{x - 4:.1f} {yy + 4:.1f} l8 -8" '
                           'stroke="#d62728" stroke-width="2"/>')
    svg.append(f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" fill="none" '
               'stroke="black" stroke-width="0.8"/>')
    ly = bottom + 62
    svg += [f'<circle cx="{left + 6}" cy="{ly - 4}" r="3.2" fill="#1f77b4"/>',
            f'<text x="{left + 14}" y="{ly}">valid reply</text>',
            f'<path d="M{left + 106} {ly - 8} l8 8 M{left + 106} {ly} l8 -8" stroke="#d62728" stroke-width="2"/>',
            f'<text x="{left + 120}" y="{ly}">invalid reply (at its RTT)</text>',
            f'<path d="M{left + 290} {ly - 8} l4 7 h-8 z" fill="#888"/>',
            f'<text x="{left + 300}" y="{ly}">lost (no reply)</text>',
            f'<rect x="{left + 400}" y="{ly - 10}" width="18" height="12" fill="#dde8f4" stroke="#6a8fb8"/>',
            f'<text x="{left + 424}" y="{ly}">quartiles, median</text>', "</svg>"]
    return "\n".join(svg) + "\n"


def round_chart(variants, lengths, title) -> str:
    """`variants`: [(label, colour or None, [(x, rtt)], median)]; `lengths`: pings per round."""
    width, height = 960, 520
    left, right, top, bottom = 70, 20, 40, 110
    lo, hi = log_range([t for _, _, pts, _ in variants for _, t in pts])
    xmax = max(sum(lengths), 1)
    px = lambda x: left + (width - left - right) * x / xmax
    py = lambda t: top + (height - top - bottom) * (math.log10(hi) - math.log10(t)) / (math.log10(hi) - math.log10(lo))
    svg = head(width, height, title)
    for t, major in log_ticks(lo, hi):
        y = py(t)
        svg.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ccc" '
                   f'stroke-width="{1 if major else 0.3}"/>')
        if major:
            svg.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{t:g}</text>')
    x = 0
    for i, n in enumerate(lengths):
        svg.append(f'<line x1="{px(x):.1f}" x2="{px(x):.1f}" y1="{top}" y2="{height - bottom}" stroke="#999" '
                   'stroke-width="0.5"/>')
        svg.append(f'<text x="{px(x + n / 2):.1f}" y="{height - bottom + 16}" text-anchor="middle">round {i + 1}</text>')
        x += n
    svg.append(f'<text transform="translate(18 {(top + height - bottom) / 2}) rotate(-90)" '
               'text-anchor="middle">RTT (ms, log scale)</text>')
    svg.append(f'<text x="{(left + width - right) / 2}" y="{height - bottom + 34}" text-anchor="middle">'
               "ping number within the variant's rounds</text>")
    for k, (label, colour, pts, med) in enumerate(variants):
        colour = colour or PALETTE[k % len(PALETTE)]
        d = "".join(f"M{px(x):.1f} {py(t):.1f}h0" for x, t in pts)
        svg.append(f'<path d="{d}" stroke="{colour}" stroke-width="2.4" stroke-linecap="round" fill="none" '
                   'opacity="0.55"/>')
        if med:
            svg.append(f'<line x1="{left}" x2="{width - right}" y1="{py(med):.1f}" y2="{py(med):.1f}" '
                       f'stroke="{colour}" stroke-dasharray="6 4" stroke-width="1.2"/>')
        lx, ly = left + (k % 2) * 440, height - bottom + 58 + (k // 2) * 20
        svg.append(f'<circle cx="{lx + 6}" cy="{ly - 4}" r="5" fill="{colour}"/>')
        svg.append(f'<text x="{lx + 18}" y="{ly}">{escape(label)}: median {med:.3f} ms</text>' if med else
                   f'<text x="{lx + 18}" y="{ly}">{escape(label)}</text>')
    svg.append(f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}" '
               'fill="none" stroke="black" stroke-width="0.8"/>')
    svg.append("</svg>")
    return "\n".join(svg) + "\n"
