"""Is the machine quiet enough to trust a timing? Other processes' CPU use before and
during a run, and each measurement's own spread.

A ratio of two medians means something only where the two spreads do not overlap; the
report marks the others instead of printing a winner.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import List, Optional, Sequence

BUSY_LIMIT = 0.15  # other processes' share of all cores above which the machine is not quiet
SPREAD_LIMIT = 0.15  # (p90 - p10) / median above which a timing is noisy


def _cpu_times():
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields), idle


def other_load(seconds=2.0) -> Optional[float]:
    """Share of all cores busy over ``seconds`` while this process sleeps, so it is what
    other processes use (None where /proc/stat does not exist)."""
    try:
        total_0, idle_0 = _cpu_times()
        time.sleep(seconds)
        total_1, idle_1 = _cpu_times()
    except OSError:
        return None
    total = total_1 - total_0
    return 1.0 - (idle_1 - idle_0) / total if total > 0 else None


def quantiles(values: Sequence[float]):
    """(p10, median, p90) of a timing."""
    ordered = sorted(values)
    if len(ordered) < 3:
        return ordered[0], statistics.median(ordered), ordered[-1]
    deciles = statistics.quantiles(ordered, n=10, method="inclusive")
    return deciles[0], statistics.median(ordered), deciles[-1]


def spread(values: Sequence[float]) -> float:
    """(p90 - p10) / median."""
    low, mid, high = quantiles(values)
    return (high - low) / mid if mid > 0 else 0.0


def overlaps(a: Sequence[float], b: Sequence[float]) -> bool:
    """Do the p10-p90 ranges of two timings overlap (their ratio is within the noise)?"""
    a_low, _, a_high = quantiles(a)
    b_low, _, b_high = quantiles(b)
    return a_low <= b_high and b_low <= a_high


class NoiseGuard:
    """Samples other processes' load at named points and collects the warnings."""

    def __init__(self, sample_seconds=2.0):
        self.sample_seconds = sample_seconds
        self.samples = {}
        self.warnings: List[str] = []

    def sample(self, when: str):
        load = other_load(self.sample_seconds)
        if load is None:
            return
        self.samples[when] = load
        if load > BUSY_LIMIT:
            cores = os.cpu_count() or 1
            self.warnings.append(
                f"{when}: other processes kept {100 * load:.0f} % of the {cores} cores busy "
                f"(quiet means under {100 * BUSY_LIMIT:.0f} %)")

    def check_spreads(self, timings: dict, label=lambda key: str(key)):
        """Warns once for the timings whose spread is above :data:`SPREAD_LIMIT`; returns
        the noisy keys."""
        noisy = [key for key, values in timings.items() if spread(values) > SPREAD_LIMIT]
        if noisy:
            self.warnings.append(
                f"{len(noisy)} of {len(timings)} timings spread more than "
                f"{100 * SPREAD_LIMIT:.0f} % between their 10th and 90th percentiles "
                f"(marked ~): " + ", ".join(label(k) for k in noisy[:6])
                + (" ..." if len(noisy) > 6 else ""))
        return set(noisy)

    @property
    def quiet(self) -> bool:
        return not self.warnings
