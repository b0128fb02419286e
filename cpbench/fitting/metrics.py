"""Error metrics and folds shared by the time and the precision models: one definition of each."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class ErrorMetrics:
    """How far predictions are from measurements; relative errors are (predicted - measured) / measured."""

    n: int
    r2: float
    mape: float
    max_ape: float
    rmspe: float
    within_10: float  # share of configs predicted within +-10 % (nn-Meter's metric)
    within_5: float
    rel_q025: float  # 2.5 % and 97.5 % quantiles of the relative error: the prediction interval
    rel_q975: float
    mae: float = float("nan")  # mean absolute error in the measured unit (accuracy points for precision)

    def as_dict(self) -> dict:
        return asdict(self)


def error_metrics(predicted: np.ndarray, measured: np.ndarray) -> ErrorMetrics:
    predicted, measured = np.asarray(predicted, float), np.asarray(measured, float)
    rel = (predicted - measured) / measured
    ape = np.abs(rel)
    total = float(np.sum((measured - measured.mean()) ** 2))
    r2 = 1 - float(np.sum((measured - predicted) ** 2)) / total if total > 0 else float("nan")
    return ErrorMetrics(
        n=len(measured), r2=r2, mape=float(ape.mean()), max_ape=float(ape.max()), rmspe=float(np.sqrt(np.mean(rel**2))),
        within_10=float(np.mean(ape <= 0.10 + 1e-12)), within_5=float(np.mean(ape <= 0.05 + 1e-12)),
        rel_q025=float(np.quantile(rel, 0.025)), rel_q975=float(np.quantile(rel, 0.975)),
        mae=float(np.mean(np.abs(predicted - measured))),
    )


def kfold_indices(n: int, folds: int, seed: int = 0) -> list[np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    return [part for part in np.array_split(order, min(folds, n)) if len(part)]


def out_of_fold(n: int, test_sets: Sequence[np.ndarray], predict_held_out: Callable[[np.ndarray, np.ndarray], np.ndarray | None],
                minimum: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Predictions for each test set from a fit on the rest: `predict_held_out(train, test)` fits
    on `train` from scratch (never from a fit that saw `test`) and predicts `test`, or returns None
    when that split cannot be fitted. Returns (indices, predictions) of the points predicted."""
    everything = np.arange(n)
    indices, predictions = [], []
    for test in test_sets:
        train = np.setdiff1d(everything, test)
        if len(train) < minimum:
            continue
        predicted = predict_held_out(train, test)
        if predicted is None:
            continue
        indices.append(test)
        predictions.append(np.asarray(predicted, float))
    if not indices:
        return np.array([], dtype=int), np.array([])
    return np.concatenate(indices), np.concatenate(predictions)
