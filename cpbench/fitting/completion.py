"""Low-rank completion of a partly measured matrix of times, by relative-error alternating least
squares: the generic numerics behind the kernel tables (cpbench.fitting.kernel_table). The rank
is chosen by k-fold over the measured cells; `denoises` says whether the fit should replace the
measured cells too."""

from __future__ import annotations

import numpy as np

from cpbench.errors import UsageError
from cpbench.fitting.metrics import kfold_indices

RANKS = (1, 2, 3, 4)
ALS_ITERATIONS = 40
# candidate ridges, relative to each row's or column's weight: the k-fold over the measured cells picks
# one with the rank. Nearly none lets a column of 3 cells at rank 2 interpolate them, and the fit then
# swings with noise in a few cells (OpenVINO whole-network tables: 18-23 % k-fold MAPE on their own
# networks at 1e-6, 5 % at 1e-3, the same timings refitted)
RIDGES = (1e-6, 1e-4, 1e-3, 1e-2)
RIDGE = 1e-6


def _als(values: np.ndarray, mask: np.ndarray, rank: int, iterations: int = ALS_ITERATIONS, ridge: float = RIDGE) -> np.ndarray:
    """Low-rank completion of `values` (observed where mask) minimising relative squared error."""
    scale = float(values[mask].mean())
    values = values / scale  # the ridge below is relative to weights of values near 1
    rows, cols = values.shape
    weight = np.where(mask, 1.0 / np.where(mask, values, 1.0) ** 2, 0.0)
    filled = np.where(mask, values, 0.0)
    # start: row means times column shape, the rank-1 answer of a log-additive model
    row_mean = np.array([values[i, mask[i]].mean() if mask[i].any() else np.nan for i in range(rows)])
    row_mean = np.where(np.isnan(row_mean), np.nanmean(row_mean), row_mean)
    ratio = np.where(mask, filled / row_mean[:, None], np.nan)
    col_shape = np.nanmedian(np.where(mask, ratio, np.nan), axis=0)
    col_shape = np.where(np.isnan(col_shape), 1.0, col_shape)
    rng = np.random.default_rng(0)
    v = np.column_stack([col_shape] + [rng.standard_normal(cols) * 0.01 for _ in range(rank - 1)])
    u = np.zeros((rows, rank))
    eye = np.eye(rank) * ridge
    for _ in range(iterations):
        a = np.einsum("fs,si,sj->fij", weight, v, v) + eye * (weight.sum(axis=1)[:, None, None] + 1e-30)
        b = np.einsum("fs,fs,si->fi", weight, filled, v)
        u = np.linalg.solve(a, b[..., None])[..., 0]
        a = np.einsum("fs,fi,fj->sij", weight, u, u) + eye * (weight.sum(axis=0)[:, None, None] + 1e-30)
        b = np.einsum("fs,fs,fi->si", weight, filled, u)
        v = np.linalg.solve(a, b[..., None])[..., 0]
    return u @ v.T * scale


def complete(values: np.ndarray, mask: np.ndarray, folds: int = 5, seed: int = 0) -> tuple[np.ndarray, int, float, float]:
    """The low-rank fit of the measured cells, at the rank and ridge chosen by k-fold over them, and
    that choice's out-of-fold MAPE on cells it did not see (the unmeasured cells are taken from it;
    see `denoises` for the measured ones): (filled, rank, MAPE, ridge)."""
    cells = np.argwhere(mask)
    best: tuple[float, int, float] | None = None
    for rank, ridge in ((r, q) for r in RANKS for q in RIDGES):
        # above rank 1, every row and column must hold more measured cells than the rank: with
        # exactly `rank` a column's factor interpolates its cells' noise (whole-network tables
        # sampled at 3 f per column put single cells 55 % off at rank 3 on synthetic data, 23 % at rank 2)
        need = rank if rank == 1 else rank + 1
        if rank > min(values.shape) or mask.sum(axis=1).min() < need or mask.sum(axis=0).min() < need:
            break
        errors = []
        for test in kfold_indices(len(cells), folds, seed):
            train = mask.copy()
            train[cells[test, 0], cells[test, 1]] = False
            # a cell whose row or column would keep fewer than `rank` cells cannot be predicted from
            # the rest: it stays in training (with 3 timed s per f, a fold holds a whole row often)
            short = (train.sum(axis=1)[cells[test, 0]] < rank) | (train.sum(axis=0)[cells[test, 1]] < rank)
            train[cells[test[short], 0], cells[test[short], 1]] = True
            test = test[~short]
            if len(test) == 0 or train.sum(axis=1).min() < rank or train.sum(axis=0).min() < rank:
                continue
            guess = _als(values, train, rank, ridge=ridge)
            truth = values[cells[test, 0], cells[test, 1]]
            errors.append(np.abs(guess[cells[test, 0], cells[test, 1]] / truth - 1))
        if not errors:
            continue
        error = float(np.mean(np.concatenate(errors)))
        if best is None or error < best[0]:
            best = (error, rank, ridge)
    if best is None:
        if not mask.any() or mask.sum(axis=1).min() < 1 or mask.sum(axis=0).min() < 1:
            raise UsageError("the calibration has too few measured cells to complete a kernel table; rerun 'cpbench calibrate'")
        # every row or column holds one cell (a space whose pairs fit one s): nothing to hold out; rank 1
        return _als(values, mask, 1), 1, float("nan"), RIDGE
    return _als(values, mask, best[1], ridge=best[2]), best[1], best[0], best[2]


def denoises(rounds: np.ndarray, mask: np.ndarray, rank: int, ridge: float = RIDGE) -> bool:
    """Whether the low-rank fit should replace the measured cells too. Leave one round out: does the
    fit of the other rounds predict that round's cells better than those cells' own other rounds
    do? Where a cell timed alone is noisy (at 2 threads on 2 vCPUs its rounds spread by a third)
    the fit, which pools every f and s, wins; where the cells are steady and the table has more
    structure than a few factors, the cells win. `rounds` is (rounds, f, s); one round decides nothing."""
    if len(rounds) < 2:
        return False
    own, fitted = [], []
    for held in range(len(rounds)):
        others = np.median(np.delete(rounds, held, axis=0), axis=0)
        truth = rounds[held][mask]
        own.append(np.abs(others[mask] / truth - 1))
        fitted.append(np.abs(_als(others, mask, rank, ridge=ridge)[mask] / truth - 1))
    return float(np.mean(np.concatenate(fitted))) < float(np.mean(np.concatenate(own)))
