"""The measurement protocol and its statistics, in the spirit of pyperf and OpenVINO's benchmark_app.

One model is measured as: load/compile (timed apart) -> first inference (timed apart) -> warm-up
-> timed runs until both a minimum duration and a minimum count are reached (with caps on both).
Every run's time is kept; the summary reports median, mean, stdev %, p90, p99, min, IQR and a
distribution-free 95 % confidence interval of the median, with warnings when the spread is too
wide to trust.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from cpbench.errors import UsageError, check_choice

UNSTABLE_STDEV_PCT = 10.0  # pyperf warns above 10 %
OUTLIER_SHARE = 0.05  # more than 5 % of runs beyond Q3 + 1.5 IQR
MIN_TRUSTED_RUNS = 10


@dataclass(frozen=True)
class MeasureSettings:
    """When to stop: both min_time_s and min_runs reached, or either cap hit. With rounds > 1 every
    model is measured that many times, in fresh workers, one pass over all the models per round, so a
    model's runs come from moments minutes apart (pyperf's several processes; a machine whose speed
    drifts then shifts every model alike instead of whichever was measured at the wrong moment)."""

    warmup_runs: int = 10
    warmup_time_s: float = 0.2
    min_time_s: float = 1.0
    min_runs: int = 50
    max_runs: int = 100_000
    max_time_s: float = 60.0
    rounds: int = 1
    max_rounds: int = 0  # > rounds: more rounds for a model until its best two rounds agree (0: exactly `rounds`)
    agree_pct: float = 1.0  # how close (in %) the two best per-round statistics must be to stop
    round_runs: int = 50  # the per-round statistic uses this many runs, whatever the model's speed

    def __post_init__(self) -> None:
        bad = self.invalid_key(asdict(self))
        if bad:
            raise UsageError(f"invalid measurement setting {bad}={getattr(self, bad)!r}; see 'cpbench time --help'")

    @staticmethod
    def invalid_key(values: dict) -> str | None:
        """The first setting out of range in `values` (all fields present), or None."""
        v = values
        checks = {
            "warmup_runs": v["warmup_runs"] >= 0, "warmup_time_s": v["warmup_time_s"] >= 0,
            "min_time_s": v["min_time_s"] >= 0, "min_runs": v["min_runs"] >= 1,
            "max_runs": v["min_runs"] <= v["max_runs"] <= 10**9,
            "max_time_s": 0 < v["max_time_s"] <= 86400 and v["min_time_s"] <= 86400 and v["warmup_time_s"] <= 86400,
            "rounds": isinstance(v.get("rounds", 1), int) and 1 <= v.get("rounds", 1) <= 100,
            "max_rounds": isinstance(v.get("max_rounds", 0), int) and 0 <= v.get("max_rounds", 0) <= 100,
            "agree_pct": 0 < v.get("agree_pct", 1.0) <= 100,
            "round_runs": isinstance(v.get("round_runs", 50), int) and 1 <= v.get("round_runs", 50) <= 10**6,
        }
        return next((key for key, ok in checks.items() if not ok), None)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class TimingStats:
    n: int
    median_s: float
    mean_s: float
    stdev_s: float
    stdev_pct: float
    p90_s: float
    p99_s: float
    min_s: float
    max_s: float
    iqr_s: float
    median_ci_low_s: float
    median_ci_high_s: float
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def median_confidence_interval(sorted_times: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free interval of the median from order statistics (binomial, p = 1/2)."""
    from scipy import stats  # here: loading a profile should not pay scipy's import time

    n = len(sorted_times)
    if n < 6:  # too few runs for a 95 % interval: the whole range is the honest answer
        return float(sorted_times[0]), float(sorted_times[-1])
    alpha = 1 - confidence
    lo = int(stats.binom.ppf(alpha / 2, n, 0.5))
    hi = int(stats.binom.isf(alpha / 2, n, 0.5))
    lo = max(lo - 1, 0)  # ranks are 1-based in the textbook form
    hi = min(hi, n - 1)
    return float(sorted_times[lo]), float(sorted_times[hi])


def summarize(times: Sequence[float], timer_resolution_s: float | None = None) -> TimingStats:
    """Statistics of per-run times (seconds), with pyperf-style warnings."""
    if len(times) == 0:
        raise ValueError("no timings to summarize")
    t = np.sort(np.asarray(times, dtype=np.float64))
    n = len(t)
    median = float(np.median(t))
    mean = float(t.mean())
    stdev = float(t.std(ddof=1)) if n > 1 else 0.0
    q1, q3 = np.percentile(t, [25, 75])
    iqr = float(q3 - q1)
    ci = median_confidence_interval(t)
    warnings = []
    stdev_pct = 100 * stdev / mean if mean > 0 else 0.0
    if stdev_pct > UNSTABLE_STDEV_PCT:
        warnings.append(f"unstable: the standard deviation is {stdev_pct:.0f}% of the mean (over {UNSTABLE_STDEV_PCT:.0f}%)")
    outliers = int(np.sum(t > q3 + 1.5 * iqr))
    if n >= MIN_TRUSTED_RUNS and outliers / n > OUTLIER_SHARE:
        warnings.append(f"{outliers} of {n} runs ({outliers / n:.0%}) are outliers beyond Q3 + 1.5 IQR")
    if n < MIN_TRUSTED_RUNS:
        warnings.append(f"only {n} runs; use at least {MIN_TRUSTED_RUNS}")
    resolution = timer_resolution_s if timer_resolution_s is not None else time.get_clock_info("perf_counter").resolution
    if median < 100 * resolution:
        warnings.append(f"the median ({median:.3g} s) is within 100x the timer resolution ({resolution:.3g} s)")
    return TimingStats(
        n=n, median_s=median, mean_s=mean, stdev_s=stdev, stdev_pct=stdev_pct,
        p90_s=float(np.percentile(t, 90)), p99_s=float(np.percentile(t, 99)),
        min_s=float(t[0]), max_s=float(t[-1]), iqr_s=iqr,
        median_ci_low_s=ci[0], median_ci_high_s=ci[1], warnings=warnings,
    )


CLOCKS = {
    "wall": "the wall time of the call from Python (perf_counter around it): what a Python caller waits",
    "runtime": "the runtime's own latency of each request, timed inside it around the inference "
               "(what OpenVINO's benchmark_app reports): the Python call and its cache misses left out",
}


@dataclass
class RawMeasurement:
    first_s: float  # the first inference after load/compile, timed apart (wall)
    warmup_runs: int
    times_s: list[float]  # every timed run on the profile's clock: what the statistics and the fits use
    wall_s: float  # warm-up and timed runs together
    own_times_s: list[float] | None = None  # the runtime's own latency of each timed run, where it reports one
    wall_times_s: list[float] | None = None  # the wall time of each call, kept beside when the clock is 'runtime'
    clock: str = "wall"


def measure(run: Callable[[], object], settings: MeasureSettings, clock: Callable[[], float] = time.perf_counter,
            own_latency: Callable[[], float | None] | None = None, timer: str = "wall") -> RawMeasurement:
    """Time `run` per call: the first call, a warm-up, then runs until the stop rule says enough.
    `own_latency`, where the runtime measures its own request latency (OpenVINO), is read after
    each timed run and kept beside the wall time (benchmark_app reports that figure). With
    timer='runtime' that latency is the measurement (and drives the stop rule's count) and the wall
    time is kept beside it; the stop rule's duration is always wall time."""
    check_choice(timer, CLOCKS, "clock")
    if timer == "runtime" and own_latency is None:
        raise UsageError("clock 'runtime' needs a runtime that reports its own request latency; set clock = \"wall\" in the profile")
    started = clock()
    t0 = clock()
    run()
    first = clock() - t0
    warm_start = clock()
    warmups = 0
    while warmups < settings.warmup_runs or clock() - warm_start < settings.warmup_time_s:
        run()
        warmups += 1
        if clock() - warm_start > settings.max_time_s:
            break
    times: list[float] = []
    own: list[float] = []
    timed_start = clock()
    while True:
        t0 = clock()
        run()
        t1 = clock()
        times.append(t1 - t0)
        if own_latency is not None:
            value = own_latency()
            if value is not None:
                own.append(value)
        elapsed = t1 - timed_start
        n = len(times)
        if (n >= settings.min_runs and elapsed >= settings.min_time_s) or n >= settings.max_runs or elapsed >= settings.max_time_s:
            break
    total = clock() - started
    if timer == "runtime":
        if len(own) != len(times):
            raise UsageError("the runtime did not report its own latency for every run; set clock = \"wall\" in the profile")
        return RawMeasurement(first_s=first, warmup_runs=warmups, times_s=own, wall_s=total, wall_times_s=times,
                              clock="runtime")
    return RawMeasurement(first_s=first, warmup_runs=warmups, times_s=times, wall_s=total,
                          own_times_s=own if len(own) == len(times) else None)


def geometric_mean(values: Sequence[float]) -> float:
    return float(math.exp(np.mean(np.log(values)))) if len(values) else float("nan")


def round_summary(times: Sequence[float], fixed_count: int) -> dict:
    """One round of one model: its runs, median and min, and the min and median over the first
    `fixed_count` runs, so that every model's per-round statistic comes from the same number of
    runs (a small model gets far more runs per round, which biases a plain minimum downwards)."""
    t = np.asarray(times, dtype=float)
    head = t[:fixed_count]
    return {"n": int(len(t)), "median_s": float(np.median(t)), "min_s": float(t.min()),
            "fixed_n": int(len(head)), "fixed_min_s": float(head.min()), "fixed_median_s": float(np.median(head))}


def rounds_agree(rounds: Sequence[dict], agree_pct: float, key: str = "fixed_min_s") -> bool:
    """Whether the two best rounds' statistics are within agree_pct of each other (pyperf's many
    processes: a model measured in a slow mode in one round gets another round)."""
    values = sorted(r[key] for r in rounds if r.get(key))
    return len(values) >= 2 and (values[1] - values[0]) / values[0] * 100 <= agree_pct


def round_statistic(rounds: Sequence[dict], key: str = "fixed_min_s") -> float:
    """The median over rounds of the per-round fixed-count statistic: robust to one slow round."""
    values = [r[key] for r in rounds if r.get(key)]
    return float(np.median(values)) if values else float("nan")
