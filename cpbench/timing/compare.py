"""Compare two timing runs model by model: ratio of medians, a test on the per-round medians (the
independent repeats: thousands of inferences inside one process are not independent samples), an
effect-size threshold below which a difference is called 'same', and the geometric mean of the
ratios (pyperf's compare_to, in spirit)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats

from cpbench.errors import UsageError
from cpbench.timing.protocol import geometric_mean

if TYPE_CHECKING:
    from cpbench.workspace.records import RunRecord

ALPHA = 0.05
EFFECT = 0.03  # a difference under 3 % is 'same' however significant: below the run-to-run noise of a shared VM


@dataclass
class ModelComparison:
    model: str
    median_a_s: float
    median_b_s: float
    ratio: float  # B / A: above 1 means B is slower
    p_value: float | None  # Welch's t-test on log per-round medians; None with fewer than 2 rounds on a side
    significant: bool
    verdict: str  # 'faster' | 'slower' | 'same' | 'untested' (a difference above EFFECT, but one round a side)
    rounds_a: int = 1
    rounds_b: int = 1

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class RunComparison:
    run_a: str
    run_b: str
    models: list[ModelComparison]
    geometric_mean_ratio: float
    only_in_a: list[str]
    only_in_b: list[str]
    same_hardware: bool
    clocks: tuple[str, str] = ("wall", "wall")  # each run's profile clock: a runtime latency against a wall time is not like for like

    def as_dict(self) -> dict:
        return {**asdict(self), "models": [m.as_dict() for m in self.models], "clocks": list(self.clocks)}


def compare_runs(run_a: "RunRecord", run_b: "RunRecord") -> RunComparison:
    """Runs as returned by Store.get_run; models are matched by name, failed ones left out."""
    ok_a = {m.model: m for m in run_a.measurements if m.status == "ok"}
    ok_b = {m.model: m for m in run_b.measurements if m.status == "ok"}
    shared = [name for name in ok_a if name in ok_b]
    if not shared:
        raise UsageError(f"runs {run_a.id} and {run_b.id} have no successfully timed model in common")
    models = []
    for name in shared:
        a, b = ok_a[name], ok_b[name]
        ratio = b.median_s / a.median_s
        rounds_a = [r["median_s"] for r in (a.rounds or []) if r.get("median_s")] or [a.median_s]
        rounds_b = [r["median_s"] for r in (b.rounds or []) if r.get("median_s")] or [b.median_s]
        p_value = None
        if len(rounds_a) >= 2 and len(rounds_b) >= 2:
            p_value = float(stats.ttest_ind(np.log(rounds_a), np.log(rounds_b), equal_var=False).pvalue)
            if not np.isfinite(p_value):
                p_value = 0.0 if abs(ratio - 1) > 0 else 1.0
        large = abs(ratio - 1) >= EFFECT
        significant = p_value is not None and p_value < ALPHA
        if not large:
            verdict = "same"
        elif p_value is None:
            verdict = "untested"
        else:
            verdict = ("slower" if ratio > 1 else "faster") if significant else "same"
        models.append(ModelComparison(name, a.median_s, b.median_s, ratio, p_value, significant, verdict,
                                      len(rounds_a), len(rounds_b)))
    return RunComparison(
        run_a=run_a.id, run_b=run_b.id, models=models,
        geometric_mean_ratio=geometric_mean([m.ratio for m in models]),
        only_in_a=[n for n in ok_a if n not in ok_b], only_in_b=[n for n in ok_b if n not in ok_a],
        same_hardware=run_a.hardware_id == run_b.hardware_id,
        clocks=(run_a.profile.get("clock", "wall"), run_b.profile.get("clock", "wall")),
    )
