"""Summaries of repeated measurements: median, quartiles, extremes, a bootstrap CI.

Every timing in the benchmarks is reported through ``summarize``, so each figure carries
the number of repeats, its median and its spread (interquartile range and min/max).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


def summarize(values: Sequence[float]) -> dict:
    """Repeats, median, quartiles, IQR, min and max of ``values`` (plus the raw values)."""
    data = np.asarray(values, dtype="float64")
    q1, median, q3 = np.percentile(data, [25, 50, 75])
    return {
        "repeats": int(data.size),
        "median": float(median),
        "q1": float(q1),
        "q3": float(q3),
        "iqr": float(q3 - q1),
        "min": float(data.min()),
        "max": float(data.max()),
        "values": [float(v) for v in data],
    }


def median_ci(values: Sequence[float], level: float = 0.95, groups: int = 1) -> tuple:
    """A percentile-bootstrap confidence interval for the median of ``values``.

    With ``groups`` > 1 the values are that many equal, consecutive groups (rounds of one
    pair of model instances) and the bootstrap is two-level: groups are drawn with
    replacement, then values within each, so differences between groups widen the CI.
    """
    data = np.asarray(values, dtype="float64")
    if data.size < 2:
        return float(data[0]), float(data[0])
    data = data.reshape(groups, -1)
    per_group = data.shape[1]
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    picked = rng.integers(0, groups, size=(BOOTSTRAP_RESAMPLES, groups, 1))
    within = rng.integers(0, per_group, size=(BOOTSTRAP_RESAMPLES, groups, per_group))
    samples = data[picked, within].reshape(BOOTSTRAP_RESAMPLES, -1)
    medians = np.median(samples, axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(medians, [tail, 100.0 - tail])
    return float(low), float(high)


def ratio_summary(
    numerators: Sequence[float], denominators: Sequence[float], groups: int = 1
) -> dict:
    """Paired ratios ``numerators[i] / denominators[i]``, summarized, with a 95% CI."""
    ratios = [n / d for n, d in zip(numerators, denominators, strict=True)]
    summary = summarize(ratios)
    summary["ci95"] = list(median_ci(ratios, groups=groups))
    return summary


def power_law_exponent(sizes: Sequence[float], seconds: Sequence[float]) -> float:
    """Slope of log(seconds) against log(size): 1 is linear, 2 quadratic."""
    slope, _ = np.polyfit(np.log(sizes), np.log(seconds), 1)
    return float(slope)
