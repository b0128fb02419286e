"""A latency model learned per machine from its kernel calibration (cpbench.timing.calibration).

Two learned stages, no feature written for one CPU:
1. The kernel table. For each conv kind and k, the times over the (f, s) matrix are completed
   from the measured cells by a low-rank factorisation (relative-error alternating least squares;
   the rank is chosen by cross-validation on the measured cells), so the jumps a runtime's
   kernels make at some channel counts are row factors, learned from every f measured, whatever
   they are on this CPU. The measured cells keep their times, or take the fit's where it predicts
   a fresh round of them better than they do themselves (noisy cells: `denoises`). The classifier is interpolated over its input size; the empty call is measured.
2. The composition. A network is not exactly the sum of its kernels timed alone: each alone pays
   the call, and the layout and precision changes at its borders, which inside a network happen
   once (OpenVINO on AMX runs bf16 inside and converts every call's input and output; see
   benchmarks/kernel_pairs.py). Where the calibration timed consecutive blocks as pairs
   (`cpbench calibrate --pairs`), a network can also be composed of pairs, whose inner border is
   the network's own: blocks b1 b2 b3 cost pair(b1 b2) + pair(b2 b3) - b2. Which composition a
   machine gets is chosen by k-fold on its calibration networks (`fit_kernel_model`). Either way the network time is a
   linear function of the sums, learned by relative least squares on the calibration networks
   (timed as `cpbench time` times a model, so the protocol's own offsets are learned too):
   t = c0 + c1 * first + c2 * inner + c3 * (classifier - empty) + c4 * (l - 1), where with pairs
   first = (pair of the first two blocks, or the first block when l = 1) - empty and
   inner = sum over later blocks of (pair ending in it - the block before it alone); without,
   first = first block - empty and inner = sum(inner block - empty). Where the calibration timed
   whole networks instead (`cpbench calibrate --whole`), the table is of networks, one (f, s)
   matrix per (k, l), and the composition only maps the kernel protocol onto `cpbench time`'s:
   t = c0 + c1 * network.
The quoted error comes from networks the composition never saw (k-fold over the calibration
networks here; benchmarks/kernel_model.py adds 20 configs timed in a separate run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cpbench.errors import UsageError
from cpbench.family.closed_form import Layers
from cpbench.family.config import Config
from cpbench.family.kernels import network_depth, network_kind
from cpbench.fitting.metrics import ErrorMetrics, error_metrics, kfold_indices
from cpbench.timing.calibration import Calibration, round_min

RANKS = (1, 2, 3, 4)
ALS_ITERATIONS = 40
RIDGE = 1e-6
BLOCK_TERMS = ("constant", "first", "inner", "classifier", "boundaries")
COMPOSITION_TERMS = {"blocks": BLOCK_TERMS, "pairs": BLOCK_TERMS, "networks": ("constant", "network")}


def _als(values: np.ndarray, mask: np.ndarray, rank: int, iterations: int = ALS_ITERATIONS) -> np.ndarray:
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
    eye = np.eye(rank) * RIDGE
    for _ in range(iterations):
        a = np.einsum("fs,si,sj->fij", weight, v, v) + eye * (weight.sum(axis=1)[:, None, None] + 1e-30)
        b = np.einsum("fs,fs,si->fi", weight, filled, v)
        u = np.linalg.solve(a, b[..., None])[..., 0]
        a = np.einsum("fs,fi,fj->sij", weight, u, u) + eye * (weight.sum(axis=0)[:, None, None] + 1e-30)
        b = np.einsum("fs,fs,fi->si", weight, filled, u)
        v = np.linalg.solve(a, b[..., None])[..., 0]
    return u @ v.T * scale


def complete(values: np.ndarray, mask: np.ndarray, folds: int = 5, seed: int = 0) -> tuple[np.ndarray, int, float]:
    """The low-rank fit of the measured cells, at the rank chosen by k-fold over them, and that
    rank's out-of-fold MAPE on cells it did not see (the unmeasured cells are taken from it; see
    `denoises` for the measured ones)."""
    cells = np.argwhere(mask)
    best: tuple[float, int] | None = None
    for rank in RANKS:
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
            guess = _als(values, train, rank)
            truth = values[cells[test, 0], cells[test, 1]]
            errors.append(np.abs(guess[cells[test, 0], cells[test, 1]] / truth - 1))
        if not errors:
            continue
        error = float(np.mean(np.concatenate(errors)))
        if best is None or error < best[0]:
            best = (error, rank)
    if best is None:
        if not mask.any() or mask.sum(axis=1).min() < 1 or mask.sum(axis=0).min() < 1:
            raise UsageError("the calibration has too few measured cells to complete a kernel table; rerun 'cpbench calibrate'")
        # every row or column holds one cell (a space whose pairs fit one s): nothing to hold out; rank 1
        return _als(values, mask, 1), 1, float("nan")
    return _als(values, mask, best[1]), best[1], best[0]


def denoises(rounds: np.ndarray, mask: np.ndarray, rank: int) -> bool:
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
        fitted.append(np.abs(_als(others, mask, rank)[mask] / truth - 1))
    return float(np.mean(np.concatenate(fitted))) < float(np.mean(np.concatenate(own)))


def _measured(cells: list[dict]) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """One (kind, k)'s cells as (s_min, round-min over f x s, measured mask, per-round mins)."""
    f_max = max(e["f"] for e in cells)
    s_min, s_max = min(e["s"] for e in cells), max(e["s"] for e in cells)
    values = np.ones((f_max, s_max - s_min + 1))
    mask = np.zeros_like(values, dtype=bool)
    n_rounds = min(len(e["mins"]) for e in cells)
    rounds = np.ones((n_rounds,) + values.shape)
    for e in cells:
        values[e["f"] - 1, e["s"] - s_min] = round_min(e)
        mask[e["f"] - 1, e["s"] - s_min] = True
        rounds[:, e["f"] - 1, e["s"] - s_min] = e["mins"][:n_rounds]
    return s_min, values, mask, rounds


def _completion_groups(measured: dict) -> list[list[tuple[str, int]]]:
    """Which tables are completed together. Each block table alone; the whole-network tables of
    every depth and k as one matrix of f by (l, k, s), so a row's factor (what f costs, jumps at the
    runtime's channel counts included) is learned from every table at once. Why: a whole network
    is sampled at 3 s per f (10 minutes of compiles), too few to learn a row's factors from one
    table; stop 26 on `openvino` (20 configs): 7.9 % MAPE, 70 % within ±10 % with each table alone,
    3.1 % and 100 % completed together (the rank chosen by k-fold over the measured cells either
    way); two calibrations made after that choice: 2.3-7.2 % over four test runs each."""
    whole = [key for key in measured if network_depth(key[0])]
    rows = {measured[key][1].shape[0] for key in whole}
    groups = [[key] for key in measured if key not in whole or len(rows) > 1]
    return groups + ([whole] if whole and len(rows) == 1 else [])


@dataclass
class ConvTable:
    """Completed times of one conv kind and k over f (rows, from 1) and s (columns, from s_min)."""

    kind: str
    k: int
    s_min: int
    times: np.ndarray
    measured: np.ndarray  # mask of measured cells
    rank: int
    cv_mape: float
    denoised: bool = False  # True: the measured cells are the low-rank fit's too, not the times as measured

    def lookup(self, f: np.ndarray, s: np.ndarray) -> np.ndarray:
        rows, cols = self.times.shape
        fi, si = f.astype(int) - 1, s.astype(int) - self.s_min
        if (fi < 0).any() or (fi >= rows).any() or (si < 0).any() or (si >= cols).any():
            raise UsageError(f"a config needs a {self.kind} block outside the calibrated f in [1, {rows}], "
                             f"s in [{self.s_min}, {self.s_min + cols - 1}]; calibrate a larger space")
        return self.times[fi, si]


@dataclass
class KernelTable:
    convs: dict[tuple[str, int], ConvTable]
    classifier_n: np.ndarray
    classifier_t: np.ndarray
    empty_s: float

    @classmethod
    def from_calibration(cls, calibration: Calibration, completed: dict | None = None, denoise: bool = True) -> "KernelTable":
        """The table of a calibration; `completed` ((kind, k) -> (times, rank, cv_mape, denoised), from
        load_table_cache) skips the factorisation, which is most of the cost of loading a model.
        denoise=False keeps every measured cell as timed (the reference `denoises` is judged against;
        a cache, made with denoising, is then not used)."""
        entries = list(calibration.kernels.values())
        measured = {}  # (kind, k) -> (s_min, values, mask, rounds)
        for kind in sorted({e["kind"] for e in entries} - {"classifier", "empty"}):
            for k in sorted({e["k"] for e in entries if e["kind"] == kind}):
                measured[(kind, k)] = _measured([e for e in entries if e["kind"] == kind and e["k"] == k])
        convs = {}
        for group in _completion_groups(measured):
            cached = [(completed or {}).get(key) if denoise else None for key in group]
            if all(c is not None and np.shape(c[0]) == measured[key][1].shape for c, key in zip(cached, group)):
                for (kind, k), c in zip(group, cached):
                    convs[(kind, k)] = ConvTable(kind, k, measured[(kind, k)][0], np.asarray(c[0], float),
                                                 measured[(kind, k)][2], int(c[1]), float(c[2]), bool(c[3]))
                continue
            # a group's tables side by side: one matrix of f by every column of every table in it
            values = np.hstack([measured[key][1] for key in group])
            mask = np.hstack([measured[key][2] for key in group])
            n_rounds = min(len(measured[key][3]) for key in group)
            rounds = np.concatenate([measured[key][3][:n_rounds] for key in group], axis=2)
            filled, rank, cv = complete(values, mask)
            denoised = denoise and denoises(rounds, mask, rank)
            filled = np.maximum(filled, values[mask].min() * 0.5)
            times = filled if denoised else np.where(mask, values, filled)
            at = 0
            for kind, k in group:
                s_min, own, own_mask, _ = measured[(kind, k)]
                width = own.shape[1]
                convs[(kind, k)] = ConvTable(kind, k, s_min, times[:, at:at + width], own_mask, rank, cv, denoised)
                at += width
        fc = sorted((e["features"], round_min(e)) for e in entries if e["kind"] == "classifier")
        empty = [round_min(e) for e in entries if e["kind"] == "empty"]
        if not fc or not empty:
            raise UsageError("the calibration lacks the classifier or the empty call; rerun 'cpbench calibrate'")
        return cls(convs, np.array([n for n, _ in fc], float), np.array([t for _, t in fc]), empty[0])

    def conv(self, kind: str, k: np.ndarray, f: np.ndarray, s: np.ndarray) -> np.ndarray:
        out = np.zeros(len(f))
        for kk in np.unique(k.astype(int)):
            table = self.convs.get((kind, int(kk)))
            if table is None:
                raise UsageError(f"no {kind} blocks with k = {kk} were calibrated; calibrate a space with that k")
            at = k.astype(int) == kk
            out[at] = table.lookup(f[at], s[at])
        return out

    def classifier(self, n: np.ndarray) -> np.ndarray:
        return np.interp(np.log(np.maximum(n, 1)), np.log(self.classifier_n), self.classifier_t)

    @property
    def pairs(self) -> bool:
        """Whether consecutive blocks were timed as pairs (calibrations before pairs existed were not)."""
        return any(kind == "first-pair" for kind, _ in self.convs)

    @property
    def compositions(self) -> tuple[str, ...]:
        """The compositions this calibration's tables support, in the order that breaks k-fold ties."""
        have = {kind for kind, _ in self.convs}
        return tuple(name for name, needs in (("blocks", "first"), ("pairs", "first-pair"), ("networks", network_kind(1)))
                     if needs in have)

    def terms(self, layers: Layers, composition: str = "blocks") -> np.ndarray:
        """Per config, the composition's terms (COMPOSITION_TERMS; the module's docstring says what
        first and inner are, composed of pairs or of blocks alone)."""
        if composition not in self.compositions:
            fix = {"pairs": "--pairs", "networks": "--whole"}.get(composition, "without --whole")
            raise UsageError(f"this calibration timed no kernels for the composition of {composition}; "
                             f"rerun 'cpbench calibrate {fix}'")
        f, s, k, depth = layers.f, layers.s, layers.k, layers.l
        s = s.astype(np.int64)
        if composition == "networks":
            whole = np.zeros(len(f))
            for d in np.unique(depth.astype(int)):
                at = depth == d
                whole[at] = self.conv(network_kind(int(d)), k[at], f[at], s[at].astype(float))
            return np.column_stack([np.ones(len(f)), whole])
        pairs = composition == "pairs"
        if pairs:
            first = np.zeros(len(f))
            alone = depth == 1
            if alone.any():
                first[alone] = self.conv("first", k[alone], f[alone], s[alone].astype(float))
            if (~alone).any():
                first[~alone] = self.conv("first-pair", k[~alone], f[~alone], s[~alone].astype(float))
            first -= self.empty_s
        else:
            first = self.conv("first", k, f, s) - self.empty_s
        inner = np.zeros(len(f))
        side = s // 2
        for i in range(1, int(depth.max()) if len(depth) else 0):
            present = depth > i
            if pairs:  # block i + 1 joins the block i before it at side `side`
                present &= depth > i + 1
                if present.any():
                    at = (k[present], f[present], side[present].astype(float))
                    inner[present] += self.conv("inner-pair", *at) - self.conv("inner", *at)
            elif present.any():
                inner[present] += self.conv("inner", k[present], f[present], side[present].astype(float)) - self.empty_s
            side = side // 2
        fc = self.classifier(f * layers.final_side**2) - self.empty_s
        return np.column_stack([np.ones(len(f)), first, inner, fc, depth - 1])


def _relative_fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares of relative error, weights from fitted values after a first pass."""
    weight = 1.0 / y
    for _ in range(3):
        coef, *_ = np.linalg.lstsq(x * weight[:, None], y * weight, rcond=None)
        fitted = x @ coef
        weight = 1.0 / np.where(fitted > 0, fitted, y)
    return coef


@dataclass
class KernelModel:
    table: KernelTable
    coef: np.ndarray
    kfold: ErrorMetrics  # on calibration networks the composition did not see (nested: nor chose it)
    raw_sum: ErrorMetrics  # the plain sum of kernels (coefficients 1), for comparison
    interval: tuple[float, float]  # 95 % relative-error quantiles, out of fold
    calibration: Calibration
    interval_coverage: float = float("nan")  # share of held-out networks inside an interval from the other folds
    notes: list[str] = field(default_factory=list)
    composition: str = "blocks"  # chosen on this machine: blocks alone, pairs of blocks, or whole networks
    choice_kfold: dict = field(default_factory=dict)  # each candidate composition's k-fold MAPE, which chose it

    @property
    def pairs(self) -> bool:
        return self.composition == "pairs"

    def predict(self, layers: Layers) -> np.ndarray:
        return self.table.terms(layers, self.composition) @ self.coef

    def predict_configs(self, configs: list[Config]) -> np.ndarray:
        return self.predict(Layers.of(configs, self.calibration.in_channels))

    def summary(self) -> dict:
        return {
            "model": "kernel", "statistic": self.calibration.statistic, "device": self.calibration.device,
            "hardware_id": self.calibration.hardware_id, "cpu": (self.calibration.fingerprint.get("hardware") or {}).get("cpu"),
            "calibration_s": self.calibration.duration_s, "kernels": len(self.calibration.kernels),
            "networks": len(self.calibration.networks),
            "tables": {f"{kind}-k{k}": {"rank": t.rank, "cv_mape": t.cv_mape, "measured": int(t.measured.sum()),
                                         "cells": int(t.measured.size), "denoised": t.denoised}
                       for (kind, k), t in self.table.convs.items()},
            "composition": self.composition,
            "composition_kfold_mape": dict(self.choice_kfold),
            "coefficients": dict(zip(COMPOSITION_TERMS[self.composition], map(float, self.coef))),
            "kfold": self.kfold.as_dict(), "raw_sum": self.raw_sum.as_dict(), "interval": list(self.interval),
            "interval_coverage": self.interval_coverage,
        }


TABLE_CACHE_FORMAT = 1
TABLE_CACHE_VERSION = 4  # bump when the completion changes: every cache made before is then ignored (2: `denoises`; 3: folds keep short rows; 4: rank < cells per row and column, whole-network tables completed together)


def table_cache_path(calibration_file: Path) -> Path:
    return Path(calibration_file).with_name(Path(calibration_file).name.replace(".calibration.json.gz", ".tables.json.gz"))


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_table_cache(calibration_file: Path, table: KernelTable) -> Path:
    """The completed tables of a saved calibration, beside it, keyed by the calibration file's hash:
    loading a model then costs a lookup instead of the factorisation (recommend loads three)."""
    import gzip
    import json

    from cpbench.workspace.files import write_atomically
    from cpbench.workspace.formats import stamp

    payload = {"version": TABLE_CACHE_VERSION, "calibration_sha256": _sha256(calibration_file),
               "convs": [{"kind": kind, "k": k, "rank": t.rank, "cv_mape": t.cv_mape, "denoised": t.denoised, "times": t.times.tolist()}
                         for (kind, k), t in sorted(table.convs.items())]}
    path = table_cache_path(calibration_file)
    write_atomically(path, gzip.compress(json.dumps(stamp(payload, TABLE_CACHE_FORMAT)).encode(), mtime=0))
    return path


def refresh_table_cache(calibration_file: Path) -> "KernelModel":
    """Fit the saved calibration from its file and cache its tables beside it (cpbench calibrate does
    this; for a shipped reference: python -c "from cpbench.fitting.kernel_model import *;
    refresh_table_cache('cpbench/reference/fits/<name>.calibration.json.gz')")."""
    from cpbench.timing.calibration import load_calibration

    model = fit_kernel_model(load_calibration(calibration_file))
    write_table_cache(calibration_file, model.table)
    return model


def load_table_cache(calibration_file: Path) -> dict | None:
    """(kind, k) -> (times, rank, cv_mape, denoised) when a cache of exactly this calibration file and this
    version of the completion exists; None otherwise (the tables are then completed again)."""
    import gzip
    import json

    path = table_cache_path(calibration_file)
    try:
        payload = json.loads(gzip.decompress(path.read_bytes()))
        if (payload.get("format") != TABLE_CACHE_FORMAT or payload.get("version") != TABLE_CACHE_VERSION
                or payload.get("calibration_sha256") != _sha256(calibration_file)):
            return None
        return {(c["kind"], int(c["k"])): (c["times"], c["rank"], c["cv_mape"], c["denoised"]) for c in payload["convs"]}
    except (OSError, ValueError, EOFError, KeyError, TypeError, AttributeError):
        return None  # a cache is only ever a shortcut: a damaged one costs time, never an answer


def _out_of_fold(x: np.ndarray, times: np.ndarray, folds: int, seed: int) -> np.ndarray:
    predicted = np.zeros(len(times))
    for test in kfold_indices(len(times), folds, seed):
        train = np.setdiff1d(np.arange(len(times)), test)
        predicted[test] = x[test] @ _relative_fit(x[train], times[train])
    return predicted


def _kfold_mape(x: np.ndarray, times: np.ndarray, folds: int, seed: int) -> float:
    return float(np.mean(np.abs(_out_of_fold(x, times, folds, seed) / times - 1)))


def _choose(candidates: dict[str, np.ndarray], times: np.ndarray, folds: int, seed: int) -> tuple[str, dict[str, float]]:
    """The composition with the lowest k-fold MAPE on these networks (ties: the first listed),
    and every candidate's k-fold MAPE."""
    scores = {name: _kfold_mape(x, times, folds, seed) for name, x in candidates.items()}
    return min(scores, key=lambda name: (scores[name], list(candidates).index(name))), scores


def fit_kernel_model(calibration: Calibration, folds: int = 5, seed: int = 0, completed: dict | None = None,
                     denoise: bool = True) -> KernelModel:
    """The composition, of blocks alone or (where the calibration timed them) of pairs, or of whole
    networks, is chosen per machine by k-fold on its calibration networks, and the error quoted for
    it is nested: each outer fold's networks are predicted by the composition its other folds
    chose, so the choice never sees the networks it is judged on. Measured on this project's VM
    (stop 25, 20 unseen configs): pairs were chosen on `cpu-1thread` and scored 3.8 % MAPE against
    the blocks' 3.6 %; blocks were chosen on `cpu`, where pairs scored 16.6 % against 7.4 %: hence
    pairs are opt-in. (A `--whole` calibration times no blocks: whole networks are its only candidate.)"""
    table = KernelTable.from_calibration(calibration, completed, denoise)
    configs = [Config(*map(int, key.split(","))) for key in calibration.networks]
    if len(configs) < len(BLOCK_TERMS) + 2:
        raise UsageError(f"the calibration timed {len(configs)} networks; the composition needs at least "
                         f"{len(BLOCK_TERMS) + 2}: rerun 'cpbench calibrate' with more --networks")
    times = np.array([round_min(v) for v in calibration.networks.values()])
    layers = Layers.of(configs, calibration.in_channels)
    if not table.compositions:
        raise UsageError("the calibration timed no conv kernels; rerun 'cpbench calibrate'")
    candidates = {name: table.terms(layers, name) for name in table.compositions}
    chosen, scores = _choose(candidates, times, folds, seed)
    x = candidates[chosen]
    coef = _relative_fit(x, times)
    out_of_fold = np.zeros(len(times))
    covered = np.zeros(len(times), dtype=bool)
    for test in kfold_indices(len(times), folds, seed):
        train = np.setdiff1d(np.arange(len(times)), test)
        inner = _choose(candidates, times[train], folds, seed + 1)[0] if len(candidates) > 1 else chosen
        x_fold = candidates[inner]
        coef_train = _relative_fit(x_fold[train], times[train])
        out_of_fold[test] = x_fold[test] @ coef_train
        # the interval a user gets, built without the test networks: training residuals' 95 % range
        rel_train = (x_fold[train] @ coef_train - times[train]) / times[train]
        low, high = np.quantile(rel_train, [0.025, 0.975])
        rel_test = (out_of_fold[test] - times[test]) / times[test]
        covered[test] = (rel_test >= low) & (rel_test <= high)
    relative = (out_of_fold - times) / times  # (predicted - measured) / measured, as everywhere in cpbench
    raw = x @ (np.array([0.0, 1.0]) if chosen == "networks" else np.array([table.empty_s, 1.0, 1.0, 1.0, 0.0]))
    return KernelModel(table, coef, error_metrics(out_of_fold, times), error_metrics(raw, times),
                       (float(np.quantile(relative, 0.025)), float(np.quantile(relative, 0.975))), calibration,
                       float(covered.mean()), composition=chosen, choice_kfold=scores)


@dataclass
class KernelPredictor:
    """A KernelModel behind the interface of device_fit.TimePredictor (recommend and predict take either)."""

    device: str
    kernel_model: KernelModel
    source: str  # where the calibration came from (a workspace file or the shipped reference)
    reference: bool = False  # True: the shipped calibration of another machine, not this one's

    name = "kernel"

    @property
    def in_channels(self) -> int:
        return self.kernel_model.calibration.in_channels

    @property
    def statistic(self) -> str:
        return self.kernel_model.calibration.statistic

    @property
    def interval(self) -> tuple[float, float]:
        return self.kernel_model.interval

    @property
    def fitted(self) -> dict:
        """What the views read from a [fitted] table: batch, statistic, baseline time, machine."""
        calibration = self.kernel_model.calibration
        from cpbench.family.config import SPACES

        baseline = SPACES[calibration.space].baseline
        return {"batch": 1, "statistic": calibration.statistic, "hardware_id": calibration.hardware_id,
                "fingerprint": {"cpu": (calibration.fingerprint.get("hardware") or {}).get("cpu"),
                                "hardware_id": calibration.hardware_id},
                "baseline": baseline.as_csv(), "baseline_time_s": float(self.predict_configs([baseline])[0]),
                "baseline_time_kind": "predicted", "source": self.source,
                "selection_honest": {"interval_coverage": self.kernel_model.interval_coverage}}

    def predict(self, layers: Layers) -> np.ndarray:
        return self.kernel_model.predict(layers)

    def predict_configs(self, configs: list[Config]) -> np.ndarray:
        return self.kernel_model.predict_configs(configs)

    def bounds(self, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        low_rel, high_rel = self.interval
        return predicted / (1 + high_rel), predicted / (1 + max(low_rel, -0.9))  # a wild calibration never gives negative times
