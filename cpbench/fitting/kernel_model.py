"""A latency model learned per machine from its kernel calibration (cpbench.timing.calibration),
saved once by `cpbench calibrate` and loaded as saved.

Two learned stages, no feature written for one CPU:
1. The kernel tables (cpbench.fitting.kernel_table): per conv kind and k, the times over the
   (f, s) matrix completed from the measured cells at a rank chosen by cross-validation.
2. The composition. A network is not exactly the sum of its kernels timed alone: each alone pays
   the call, and the layout and precision changes at its borders, which inside a network happen
   once (benchmarks/kernel_pairs.py). Where the calibration timed consecutive blocks as pairs
   (`cpbench calibrate --pairs`), a network can also be composed of pairs, whose inner border is
   the network's own: blocks b1 b2 b3 cost pair(b1 b2) + pair(b2 b3) - b2. Which composition a
   machine gets is chosen by k-fold on its calibration networks (`fit_kernel_model`). Either way
   the network time is a linear function of the sums, learned by relative least squares on the
   calibration networks (timed as `cpbench time` times a model, so the protocol's own offsets are
   learned too): t = c0 + c1 * first + c2 * inner + c3 * (classifier - empty) + c4 * (l - 1), where
   with pairs first = (pair of the first two blocks, or the first block when l = 1) - empty and
   inner = sum over later blocks of (pair ending in it - the block before it alone); without,
   first = first block - empty and inner = sum(inner block - empty). Where the calibration timed
   whole networks instead (`cpbench calibrate --whole`), the table is of networks, one (f, s)
   matrix per (k, l), and the composition only maps the kernel protocol onto `cpbench time`'s:
   t = c0 + c1 * network.
The quoted error comes from networks the composition never saw (nested k-fold over the calibration
networks; benchmarks/kernel_model.py adds configs timed in a separate run).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cpbench import __version__
from cpbench.errors import UsageError
from cpbench.family.closed_form import FEATURES, Layers
from cpbench.family.config import SPACES, Config
from cpbench.fitting.kernel_table import BLOCK_TERMS, COMPOSITION_TERMS, KernelTable
from cpbench.fitting.least_squares import relative_least_squares
from cpbench.fitting.metrics import ErrorMetrics, error_metrics, kfold_indices, out_of_fold
from cpbench.fitting.time_model import HeldOut, Provenance, TimeModel, run_settings
from cpbench.fitting.verdict import calibration_noise
from cpbench.timing.calibration_record import Calibration, round_min


def relative_fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The composition's coefficients: relative least squares of the network times on the terms."""
    return relative_least_squares(x, y)[0]


@dataclass(kw_only=True)
class KernelModel(TimeModel):
    """The kernel tables and the composition fitted on one machine's calibration."""

    table: KernelTable
    coef: np.ndarray
    composition: str = "blocks"  # chosen on this machine: blocks alone, pairs of blocks, or whole networks
    form: str = "free"  # its coefficients: all fitted, one factor on the plain sum of kernels, or that sum (FORMS)
    kfold: ErrorMetrics  # on calibration networks the composition did not see (nested: nor chose it)
    raw_sum: ErrorMetrics  # the plain sum of kernels (coefficients 1), for comparison
    interval_coverage: float = float("nan")  # share of held-out networks inside an interval from the other folds
    choice_kfold: dict = field(default_factory=dict)  # each candidate composition's k-fold MAPE, which chose it
    space: str = "fashionmnist"
    calibration: dict = field(default_factory=dict)  # what was timed: duration_s, kernels, networks, started_at, design
    affine: dict = field(default_factory=dict)  # eq. (1) on the calibration networks: coefficients, k-fold MAPE

    kind = "kernel"

    @property
    def name(self) -> str:
        return "kernel"

    @property
    def pairs(self) -> bool:
        return self.composition == "pairs"

    def predict(self, layers: Layers) -> np.ndarray:
        return self.table.terms(layers, self.composition) @ self.coef

    def summary(self) -> dict:
        return {
            "model": "kernel", "statistic": self.statistic, "device": self.device,
            "hardware_id": self.provenance.hardware_id, "cpu": self.cpu,
            "calibration_s": self.calibration.get("duration_s"), "kernels": self.calibration.get("kernels"),
            "networks": self.calibration.get("networks"),
            "tables": {f"{kind}-k{k}": {"rank": t.rank, "cv_mape": t.cv_mape, "measured": int(t.measured.sum()),
                                         "cells": int(t.measured.size), "denoised": t.denoised}
                       for (kind, k), t in self.table.convs.items()},
            "composition": self.composition, "form": self.form,
            "composition_kfold_mape": dict(self.choice_kfold),
            "coefficients": dict(zip(COMPOSITION_TERMS[self.composition], map(float, self.coef))),
            "kfold": self.kfold.as_dict(), "raw_sum": self.raw_sum.as_dict(), "interval": list(self.interval),
            "interval_coverage": self.interval_coverage, "noise": dict(self.noise), "verdict": self.verdict().as_dict(),
        }

    def as_dict(self) -> dict:
        return {**self.common_dict(), "table": self.table.as_dict(), "coef": [float(c) for c in self.coef],
                "composition": self.composition, "form": self.form, "kfold": self.kfold.as_dict(), "raw_sum": self.raw_sum.as_dict(),
                "interval_coverage": self.interval_coverage, "choice_kfold": dict(self.choice_kfold),
                "space": self.space, "calibration": dict(self.calibration), "affine": dict(self.affine)}

    @classmethod
    def from_dict(cls, payload: dict, source: str = "", reference: bool = False) -> "KernelModel":
        return cls(**cls.common_fields(payload, source, reference), table=KernelTable.from_dict(payload["table"]),
                   coef=np.array(payload["coef"], float), composition=payload["composition"],
                   kfold=ErrorMetrics(**payload["kfold"]), raw_sum=ErrorMetrics(**payload["raw_sum"]),
                   interval_coverage=float(payload["interval_coverage"]), choice_kfold=dict(payload["choice_kfold"]),
                   space=payload["space"], calibration=dict(payload["calibration"]), affine=dict(payload["affine"]),
                   form=payload.get("form", "free"))


FORMS = ("free", "scaled", "sum")  # a composition's coefficients: all fitted, one factor on the plain sum, the plain sum


@dataclass(frozen=True)
class Candidate:
    """One way to compose: the terms of a composition and how its coefficients are fitted. `prior`
    is the plain sum of the kernels in those terms; `scaled` fits one factor on it and `sum` fits
    nothing, so noisy calibration networks cannot pull them far from what the kernels say."""

    composition: str
    form: str
    x: np.ndarray
    prior: np.ndarray

    @property
    def name(self) -> str:
        return self.composition if self.form == "free" else f"{self.composition} {self.form}"

    def fit(self, rows: np.ndarray, times: np.ndarray) -> np.ndarray:
        if self.form == "sum":
            return self.prior
        if self.form == "scaled":
            return self.prior * relative_fit((self.x[rows] @ self.prior)[:, None], times)[0]
        return relative_fit(self.x[rows], times)


def plain_sum(composition: str, empty_s: float) -> np.ndarray:
    """The coefficients that add the kernels as timed: the call once, every block and the classifier
    (each net of its own call), no boundary cost; for whole networks, the network as timed."""
    return np.array([0.0, 1.0]) if composition == "networks" else np.array([empty_s, 1.0, 1.0, 1.0, 0.0])


def _kfold_mape(candidate: Candidate, rows: np.ndarray, times: np.ndarray, folds: int, seed: int) -> float:
    x = candidate.x[rows]
    index, predicted = out_of_fold(len(times), kfold_indices(len(times), folds, seed),
                                   lambda train, test: x[test] @ candidate.fit(rows[train], times[train]))
    return float(np.mean(np.abs(predicted / times[index] - 1)))


def _choose(candidates: list[Candidate], rows: np.ndarray, times: np.ndarray, folds: int,
            seed: int) -> tuple[Candidate, dict[str, float]]:
    """The candidate with the lowest k-fold MAPE on these networks (ties: the first listed, the
    freest), and every candidate's k-fold MAPE."""
    scores = {c.name: _kfold_mape(c, rows, times, folds, seed) for c in candidates}
    best = min(range(len(candidates)), key=lambda i: (scores[candidates[i].name], i))
    return candidates[best], scores


def _affine(layers: Layers, times: np.ndarray) -> dict:
    """Eq. (1), alpha1 * MACs + alpha0 by relative least squares, on the calibration networks, with
    its k-fold MAPE: the linearity figure shown beside the kernel model (cpbench hardware)."""
    from cpbench.fitting.time_models import MODELS, evaluate

    linear = evaluate(MODELS["linear-rel"], FEATURES["macs"](layers)[:, None], times, {})
    return {"coefficients": linear.fitted.coefficients(), "kfold_mape": linear.kfold.mape}


def _baseline(calibration: Calibration) -> Config:
    """The T0 that speed-ups are quoted against: recorded in the calibration, or its shipped space's."""
    if calibration.baseline:
        return Config.parse(calibration.baseline)
    if calibration.space in SPACES:
        return SPACES[calibration.space].baseline
    raise UsageError(f"the calibration names space {calibration.space!r}, which is not shipped, and records no "
                     "baseline; rerun 'cpbench calibrate'")


def fit_kernel_model(calibration: Calibration, folds: int = 5, seed: int = 0, denoise: bool = True) -> KernelModel:
    """The composition, of blocks alone or (where the calibration timed them) of pairs, or of whole
    networks, is chosen per machine by k-fold on its calibration networks, and the error quoted for
    it is nested: each outer fold's networks are predicted by the composition its other folds
    chose, so the choice never sees the networks it is judged on. Pairs are opt-in at calibration
    (docs/decisions/0005-pairs-opt-in.md); a `--whole` calibration times no blocks, so whole
    networks are its only candidate."""
    table = KernelTable.from_calibration(calibration, denoise)
    configs = [Config.parse(key) for key in calibration.networks]
    if len(configs) < len(BLOCK_TERMS) + 2:
        raise UsageError(f"the calibration timed {len(configs)} networks; the composition needs at least "
                         f"{len(BLOCK_TERMS) + 2}: rerun 'cpbench calibrate' with more --networks")
    times = np.array([round_min(v) for v in calibration.networks.values()])
    layers = Layers.of(configs, calibration.in_channels)
    if not table.compositions:
        raise UsageError("the calibration timed no conv kernels; rerun 'cpbench calibrate'")
    candidates = [Candidate(name, form, table.terms(layers, name), plain_sum(name, table.empty_s))
                  for name in table.compositions for form in FORMS]
    everything = np.arange(len(times))
    best, scores = _choose(candidates, everything, times, folds, seed)
    chosen, x = best.composition, best.x
    coef = best.fit(everything, times)
    out = np.zeros(len(times))
    covered = np.zeros(len(times), dtype=bool)
    for test in kfold_indices(len(times), folds, seed):
        train = np.setdiff1d(everything, test)
        inner = _choose(candidates, train, times[train], folds, seed + 1)[0]
        coef_train = inner.fit(train, times[train])
        out[test] = inner.x[test] @ coef_train
        # the interval a user gets (the 95 % range of out-of-fold errors), built as it is built for the
        # user but from the training networks alone, scored on the networks it never saw
        index, predicted = out_of_fold(len(train), kfold_indices(len(train), folds, seed + 2),
                                       lambda a, b, inner=inner, train=train:
                                       inner.x[train[b]] @ inner.fit(train[a], times[train[a]]))
        low, high = np.quantile(predicted / times[train[index]] - 1, [0.025, 0.975])
        rel_test = (out[test] - times[test]) / times[test]
        covered[test] = (rel_test >= low) & (rel_test <= high)
    relative = (out - times) / times  # (predicted - measured) / measured, as everywhere in cpbench
    raw = x @ plain_sum(chosen, table.empty_s)
    kfold = error_metrics(out, times)
    fingerprint = calibration.fingerprint
    provenance = Provenance(calibration.hardware_id, (fingerprint.get("hardware") or {}).get("cpu"), fingerprint,
                            run_settings(calibration.profile or {}), calibration.started_at, __version__)
    held_out = HeldOut(kfold.mape, kfold.within_10, kfold.max_ape, float(covered.mean()), len(times),
                       f"nested {folds}-fold over the {len(times)} calibration networks")
    baseline = _baseline(calibration)
    model = KernelModel(
        device=calibration.device, statistic=calibration.statistic, batch=1, in_channels=calibration.in_channels,
        interval=(float(np.quantile(relative, 0.025)), float(np.quantile(relative, 0.975))), provenance=provenance,
        held_out=held_out, baseline=baseline, baseline_time_s=float("nan"), table=table, coef=coef, composition=chosen,
        kfold=kfold, raw_sum=error_metrics(raw, times), interval_coverage=float(covered.mean()), choice_kfold=scores,
        form=best.form, noise=calibration_noise(calibration),
        space=calibration.space, affine=_affine(layers, times),
        calibration={"duration_s": calibration.duration_s, "kernels": len(calibration.kernels),
                     "networks": len(calibration.networks), "started_at": calibration.started_at,
                     "design": dict(calibration.design)},
    )
    model.baseline_time_s = float(model.predict_configs([baseline])[0])
    return model
