"""The statistics the tables print: median, percentiles, and a bootstrap interval for the median.

A handful of pings per configuration is the normal case (a real model takes about 40 s a
ping), so the median's uncertainty is shown, not hidden: a percentile bootstrap (resample
the RTTs with replacement, take each resample's median, read the 2.5th and 97.5th
percentiles of those). The generator is seeded, so the same data gives the same interval.
"""

import random
import statistics


def median(values):
    """The median, or None for no values."""
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def percentile(values, p):
    """The p-th percentile by linear interpolation between closest ranks, or None."""
    ordered = sorted(v for v in values if v is not None)
    if not ordered:
        return None
    k = (len(ordered) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def nearest_rank(values, p):
    """The p-th percentile by nearest rank (what the bridge benchmark has always printed)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def bootstrap_median(values, level=0.95, resamples=2000, seed=1):
    """(low, high): the percentile-bootstrap interval of the median at `level`; None for no values."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    if len(values) == 1:
        return values[0], values[0]
    rng = random.Random(seed)
    n = len(values)
    medians = sorted(statistics.median(rng.choices(values, k=n)) for _ in range(resamples))
    tail = (1 - level) / 2
    return percentile(medians, tail * 100), percentile(medians, (1 - tail) * 100)
