"""`cpbench recommend`: the cheapest config on a device that reaches a precision target, with the
evidence around it (alternatives, Pareto front, C(P) envelope, other devices' picks, warnings)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from cpbench.config import Config, Space
from cpbench.devicefit import TimePredictor
from cpbench.errors import UsageError
from cpbench.features import FEATURES, Layers
from cpbench.optimize import Candidates, Evaluated, Infeasible, best_under, candidates_for, evaluate_space
from cpbench.precision_files import PrecisionPredictor

ENVELOPE_LEVELS = 12


@dataclass
class Pick:
    config: str
    macs: int
    precision: float
    precision_low: float
    precision_high: float
    seconds: float
    seconds_low: float
    seconds_high: float
    speedup: float  # predicted baseline time / predicted time, on this device

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Recommendation:
    device: str
    target: float
    target_rule: str  # e.g. 'precision >= 0.93' or 'at most 0.01 below the baseline's 0.8953'
    grid: str
    candidates: int
    evaluate_s: float
    pick: Pick
    alternatives: list[Pick]
    baseline: Pick
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
            "device": self.device, "target": self.target, "target_rule": self.target_rule, "grid": self.grid,
            "candidates": self.candidates, "evaluate_s": self.evaluate_s, "configs_per_s": self.configs_per_s,
            "pick": self.pick.as_dict(), "alternatives": [a.as_dict() for a in self.alternatives],
            "baseline": self.baseline.as_dict(), "pareto": [p.as_dict() for p in self.pareto], "envelope": self.envelope,
            "time_model": self.time_model, "precision_model": self.precision_model, "precision_source": self.precision_source,
            "statistic": self.statistic,
            "other_devices": self.other_devices, "warnings": self.warnings,
        }


def resolve_target(target: float | None, max_drop: float | None, precision: PrecisionPredictor) -> tuple[float, str, list[str]]:
    """The absolute target from --target or --max-drop (relative to the baseline's measured precision)."""
    notes: list[str] = []
    if (target is None) == (max_drop is None):
        raise UsageError("give exactly one of --target (e.g. 0.93) or --max-drop (e.g. 0.01)")
    if target is not None:
        if not 0 < target <= 1:
            raise UsageError(f"--target must be in (0, 1], got {target}; precision is a fraction, e.g. 0.93")
        return target, f"precision >= {target:.4f}", notes
    if not 0 <= max_drop < 1:
        raise UsageError(f"--max-drop must be in [0, 1), got {max_drop}; e.g. 0.01 for one point below the baseline")
    reference = precision.baseline_precision
    if reference is None:
        reference = float(precision.predict(np.ones((1, 4)))[0])
        notes.append(f"the baseline {precision.baseline.as_csv()} was not trained; --max-drop is relative to its predicted precision {reference:.4f}")
    goal = reference - max_drop
    if goal <= 0:
        raise UsageError(f"--max-drop {max_drop} leaves no precision to reach (baseline {reference:.4f}); use a smaller drop")
    return goal, f"at most {max_drop:.4f} below the baseline's {reference:.4f} (precision >= {goal:.4f})", notes


def _pick(i: int, evaluated: Evaluated, time_model: TimePredictor, precision: PrecisionPredictor, baseline_s: float) -> Pick:
    c = evaluated.candidates.config(i)
    p, s = float(evaluated.precision[i]), float(evaluated.seconds[i])
    p_low, p_high = precision.bounds(np.array([p]))
    s_low, s_high = time_model.bounds(np.array([s]))
    macs = int(FEATURES["macs"](Layers.of([c], time_model.in_channels))[0])
    return Pick(c.as_csv(), macs, p, float(p_low[0]), float(p_high[0]), s, float(s_low[0]), float(s_high[0]), baseline_s / s)


def within_trained(candidates: Candidates, precision: PrecisionPredictor) -> Candidates:
    """The candidates whose every parameter lies in the range the precision model was trained on."""
    keep = np.ones(len(candidates), dtype=bool)
    for name, (low, high) in precision.ranges.items():
        values = getattr(candidates, name)
        keep &= (values >= low) & (values <= high)
    return Candidates(candidates.f[keep], candidates.s[keep], candidates.k[keep], candidates.l[keep])


def evaluate(space: Space, grid: str, time_model: TimePredictor, precision: PrecisionPredictor,
             extrapolate: bool = False) -> tuple[Evaluated, float]:
    candidates = candidates_for(space, grid)
    if not extrapolate:
        candidates = within_trained(candidates, precision)
    started = time.perf_counter()
    evaluated = evaluate_space(candidates, precision.predict, time_model.predict, precision.baseline, time_model.in_channels)
    return evaluated, time.perf_counter() - started


def recommend(space: Space, time_model: TimePredictor, precision: PrecisionPredictor, target: float, target_rule: str,
              top: int = 5, grid: str = "integer", others: dict[str, TimePredictor] | None = None,
              extrapolate: bool = False) -> Recommendation:
    """By default only configs inside the precision model's trained ranges can be picked: measured
    with --verify, a pick outside them (s = 4 when training saw s >= 8) missed its predicted
    precision by 16 %. --extrapolate searches the whole space and warns."""
    if top < 1:
        raise UsageError(f"--top must be >= 1, got {top}")
    evaluated, elapsed = evaluate(space, grid, time_model, precision, extrapolate)
    chosen = best_under(evaluated, target, top)
    base = precision.baseline
    base_s = float(time_model.predict_configs([base])[0])
    base_p = float(precision.predict(np.ones((1, 4)))[0])
    picks = [_pick(int(i), evaluated, time_model, precision, base_s) for i in chosen]
    b_low, b_high = precision.bounds(np.array([base_p]))
    s_low, s_high = time_model.bounds(np.array([base_s]))
    baseline_pick = Pick(base.as_csv(), int(FEATURES["macs"](Layers.of([base], time_model.in_channels))[0]), base_p,
                         float(b_low[0]), float(b_high[0]), base_s, float(s_low[0]), float(s_high[0]), 1.0)
    front = evaluated.pareto()
    pareto = [_pick(int(i), evaluated, time_model, precision, base_s) for i in front]
    reachable = evaluated.precision[front]
    levels = np.linspace(max(float(reachable.min()), float(np.quantile(reachable, 0.25))), float(reachable.max()), ENVELOPE_LEVELS)
    envelope = [{"precision": float(level), "seconds": float(c)} for level, c in zip(levels, evaluated.lower_envelope(levels))]
    result = Recommendation(
        time_model.device, target, target_rule, grid, len(evaluated.candidates), elapsed, picks[0], picks[1:], baseline_pick,
        pareto, envelope, time_model.model.spec.name, precision.model,
        ("shipped reference fit " if precision.reference else "") + str(precision.source),
        str(time_model.fitted.get("statistic", "min")),
    )
    outside = precision.outside(Config.parse(picks[0].config))
    if outside:
        result.warnings.append(
            "the pick lies outside the configs the precision model was fitted on (" + ", ".join(outside)
            + "); its precision is an extrapolation: check it with --verify"
        )
    for name, other in (others or {}).items():
        other_eval = evaluate_space(evaluated.candidates, precision.predict, other.predict, base, other.in_channels)
        try:
            their = other_eval.candidates.config(int(best_under(other_eval, target, 1)[0])).as_csv()
        except Infeasible:
            continue
        if their != picks[0].config:
            result.other_devices[name] = their
    return result
