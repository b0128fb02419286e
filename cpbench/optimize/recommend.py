"""`cpbench recommend`: the cheapest config on a device that reaches a precision target, with the
evidence around it (alternatives, Pareto front, C(P) envelope, other devices' picks, warnings)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from cpbench.family.config import Config, Space
from cpbench.fitting.time_model import TimeModel
from cpbench.errors import UsageError
from cpbench.family.closed_form import FEATURES, Layers
from cpbench.optimize.search import Evaluated, Infeasible, best_under, candidates_for, evaluate_space
from cpbench.fitting.precision_predictor import PrecisionPredictor

ENVELOPE_LEVELS = 12


DEFAULT_CONFIDENCE = 0.9


@dataclass
class Pick:
    config: Config
    macs: int
    precision: float  # predicted for one training
    precision_low: float  # 95 % interval of one training's accuracy: local held-out residuals (bias and spread)
    precision_high: float
    probability: float  # predicted chance that one training reaches the target
    seconds: float  # predicted on this device
    seconds_low: float
    seconds_high: float
    speedup: float  # predicted baseline time / predicted time, on this device: a prediction, not a measurement
    support_distance: float  # log2 steps to the nearest trained config
    support_count: int = 0  # trainings with a held-out residual within the support radius: the probability's evidence
    trained: bool = False  # the study trained this config: its predicted precision is in-sample there

    def as_dict(self) -> dict:
        return {**asdict(self), "config": self.config.as_csv(), "speedup_kind": "predicted"}


@dataclass
class Recommendation:
    device: str
    target: float
    target_rule: str  # e.g. 'precision >= 0.93' or 'at most 0.01 below the baseline's 0.9360'
    confidence: float
    grid: str
    candidates: int
    evaluate_s: float
    pick: Pick
    alternatives: list[Pick]
    baseline: Pick
    baseline_precision: float  # the one baseline precision: the model's (targets and candidates in one frame)
    baseline_measured: float | None  # the mean of the baseline's trained seeds, for the record (JSON)
    pareto: list[Pick]
    envelope: list[dict]
    time_model: str
    precision_model: str
    precision_source: str
    statistic: str  # which run time the time model predicts: min (fastest run), median, ...
    other_devices: dict[str, str] = field(default_factory=dict)  # device -> its pick, where it differs
    warnings: list[str] = field(default_factory=list)

    @property
    def configs_per_s(self) -> float:
        return self.candidates / self.evaluate_s if self.evaluate_s > 0 else float("inf")

    def as_dict(self) -> dict:
        return {
            "device": self.device, "target": self.target, "target_rule": self.target_rule, "confidence": self.confidence,
            "grid": self.grid, "candidates": self.candidates, "evaluate_s": self.evaluate_s, "configs_per_s": self.configs_per_s,
            "pick": self.pick.as_dict(), "alternatives": [a.as_dict() for a in self.alternatives],
            "baseline": self.baseline.as_dict(), "baseline_precision": self.baseline_precision,
            "baseline_precision_kind": "predicted by the precision model", "baseline_measured": self.baseline_measured,
            "pareto": [p.as_dict() for p in self.pareto], "envelope": self.envelope,
            "time_model": self.time_model, "precision_model": self.precision_model, "precision_source": self.precision_source,
            "statistic": self.statistic, "other_devices": self.other_devices, "warnings": self.warnings,
        }


def resolve_target(target: float | None, max_drop: float | None, precision: PrecisionPredictor) -> tuple[float, str, list[str]]:
    """The absolute target from --target or --max-drop. --max-drop is taken from the one baseline
    precision: the model's, in the same frame as every candidate's."""
    notes: list[str] = []
    if (target is None) == (max_drop is None):
        raise UsageError("give exactly one of --target (e.g. 0.93) or --max-drop (e.g. 0.01)")
    if target is not None:
        if not 0 < target <= 1:
            raise UsageError(f"--target must be in (0, 1], got {target}; precision is a fraction, e.g. 0.93")
        return target, f"precision >= {target:.4f}", notes
    if not 0 <= max_drop < 1:
        raise UsageError(f"--max-drop must be in [0, 1), got {max_drop}; e.g. 0.01 for one point below the baseline")
    reference = precision.baseline_value
    goal = reference - max_drop
    if goal <= 0:
        raise UsageError(f"--max-drop {max_drop} leaves no precision to reach (baseline {reference:.4f}); use a smaller drop")
    return goal, f"at most {max_drop:.4f} below the baseline's predicted {reference:.4f} (precision >= {goal:.4f})", notes


def _picks(index: np.ndarray, evaluated: Evaluated, x: np.ndarray, probability: np.ndarray, time_model: TimeModel,
           precision: PrecisionPredictor, baseline_s: float) -> list[Pick]:
    if not len(index):
        return []
    chosen = evaluated.candidates.subset(index)
    p, s = evaluated.precision[index], evaluated.seconds[index]
    p_low, p_high = precision.bounds(p, x[index])
    s_low, s_high = time_model.bounds(s)
    macs = FEATURES["macs"](chosen.layers(time_model.in_channels))
    distance = precision.support_distance(x[index])
    support = precision.support_count(x[index])
    return [Pick(chosen.config(j), int(macs[j]), float(p[j]), float(p_low[j]), float(p_high[j]), float(probability[index[j]]),
                 float(s[j]), float(s_low[j]), float(s_high[j]), baseline_s / float(s[j]), float(distance[j]),
                 int(support[j]), precision.trained(chosen.config(j)))
            for j in range(len(index))]


def evaluate(space: Space, grid: str, time_model: TimeModel, precision: PrecisionPredictor,
             extrapolate: bool = False) -> tuple[Evaluated, float]:
    """Every candidate of the grid (only those in the trained configs' support unless
    `extrapolate`), with its predicted precision and time."""
    candidates = candidates_for(space, grid)
    if not extrapolate:
        candidates = candidates.subset(np.flatnonzero(precision.supported(candidates.normalised(precision.baseline))))
    started = time.perf_counter()
    evaluated = evaluate_space(candidates, precision.predict, time_model.predict, precision.baseline, time_model.in_channels)
    return evaluated, time.perf_counter() - started


def recommend(space: Space, time_model: TimeModel, precision: PrecisionPredictor, target: float, target_rule: str,
              top: int = 5, grid: str = "integer", others: dict[str, TimeModel] | None = None,
              extrapolate: bool = False, confidence: float = DEFAULT_CONFIDENCE) -> Recommendation:
    """The fastest config whose chance of reaching `target` when trained once is at least
    `confidence`. By default only configs within the support of the trained configs (no further
    from one than the trained configs are from each other) can be picked; --extrapolate searches
    the whole space and warns."""
    if top < 1:
        raise UsageError(f"--top must be >= 1, got {top}")
    if not 0 < confidence < 1:
        raise UsageError(f"--confidence must be in (0, 1), got {confidence}; e.g. 0.9")
    evaluated, elapsed = evaluate(space, grid, time_model, precision, extrapolate)
    x = evaluated.candidates.normalised(precision.baseline)
    probability = precision.probability(x, target)
    chosen = best_under(evaluated, target, top, probability, confidence)
    base = precision.baseline
    base_s = float(time_model.predict_configs([base])[0])
    picks = _picks(chosen, evaluated, x, probability, time_model, precision, base_s)
    base_x = np.ones((1, 4))
    base_p = float(precision.predict(base_x)[0])
    b_low, b_high = precision.bounds(np.array([base_p]), base_x)
    s_low, s_high = time_model.bounds(np.array([base_s]))
    baseline_pick = Pick(base, int(FEATURES["macs"](Layers.of([base], time_model.in_channels))[0]), base_p, float(b_low[0]),
                         float(b_high[0]), float(precision.probability(base_x, target)[0]), base_s, float(s_low[0]),
                         float(s_high[0]), 1.0, float(precision.support_distance(base_x)[0]))
    front = evaluated.pareto()
    pareto = _picks(front, evaluated, x, probability, time_model, precision, base_s)
    reachable = evaluated.precision[front]
    levels = np.linspace(max(float(reachable.min()), float(np.quantile(reachable, 0.25))), float(reachable.max()), ENVELOPE_LEVELS)
    envelope = [{"precision": float(level), "seconds": float(c)} for level, c in zip(levels, evaluated.lower_envelope(levels))]
    result = Recommendation(
        time_model.device, target, target_rule, confidence, grid, len(evaluated.candidates), elapsed, picks[0], picks[1:],
        baseline_pick, precision.baseline_value, precision.baseline_precision, pareto, envelope,
        time_model.name, precision.model,
        ("shipped reference fit " if precision.reference else "") + str(precision.source), time_model.statistic,
    )
    if picks[0].trained:
        result.warnings.append(f"the pick {picks[0].config.as_csv()} is a config the precision study trained: its predicted "
                               "precision fits its own trainings (in-sample there); --verify trains it with seeds the study never used")
    if precision.held_out_max is not None and target > precision.held_out_max:
        result.warnings.append(f"the target {target:.4f} lies above every held-out training of the study (the highest "
                               f"reached {precision.held_out_max:.4f}): the probability there was never checked on data "
                               "that did not fit the model")
    outside = precision.outside(picks[0].config)
    if outside:
        result.warnings.append(
            "the pick lies outside the support of the trained configs (" + ", ".join(outside)
            + "); its precision is an extrapolation: check it with --verify"
        )
    for name, other in (others or {}).items():
        try:
            other_eval = evaluate_space(evaluated.candidates, precision.predict, other.predict, base, other.in_channels)
        except UsageError as exc:  # e.g. a kernel calibration of a smaller space: no pick there, said so
            result.warnings.append(f"no pick shown for '{name}': {exc}")
            continue
        try:
            their = other_eval.candidates.config(int(best_under(other_eval, target, 1, probability, confidence)[0]))
        except Infeasible:
            continue
        if their != picks[0].config:
            result.other_devices[name] = their.as_csv()
    return result
