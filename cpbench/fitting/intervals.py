"""Intervals beside every figure a benchmark or a verdict quotes: a bootstrap interval of a mean
(MAPE) and the Clopper-Pearson interval of a share (within ±10 %, interval coverage), from scipy."""

from __future__ import annotations

import numpy as np


def bootstrap_mean(values, confidence: float = 0.95, seed: int = 0, resamples: int = 4000) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (NaN, NaN for fewer than two)."""
    from scipy import stats

    values = np.asarray(values, float)
    if len(values) < 2:
        return float("nan"), float("nan")
    if np.all(values == values[0]):
        return float(values[0]), float(values[0])
    result = stats.bootstrap((values,), np.mean, confidence_level=confidence, n_resamples=resamples,
                             method="percentile", random_state=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def clopper_pearson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) interval of a binomial share; (0, 1) when n is 0."""
    from scipy import stats

    if n == 0:
        return 0.0, 1.0
    interval = stats.binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="exact")
    return float(interval.low), float(interval.high)


def error_summary(ape) -> dict:
    """Absolute relative errors summarised as the benchmarks report them: MAPE with its bootstrap
    95 % interval, the share within ±10 % with its Clopper-Pearson interval, the largest, n."""
    ape = np.asarray(ape, float)
    within = int(np.sum(ape <= 0.10))
    return {"mape": float(ape.mean()), "mape_ci": bootstrap_mean(ape), "within_10": within / len(ape),
            "within_10_ci": clopper_pearson(within, len(ape)), "max_ape": float(ape.max()), "n": len(ape)}
