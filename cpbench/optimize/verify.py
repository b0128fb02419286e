"""`recommend --verify`: close the loop. Train the pick with the precision model's recipe and seeds
the study never trained with, export the baseline (untrained: latency does not depend on the weights), time both in one
run whose rounds interleave them, and set measured precision and speed-up beside the predictions."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from cpbench.errors import CpbenchError
from cpbench.fitting.observations import statistic_of

VERIFY_SEED = 100  # --verify trains with seeds from here: the precision study trains with 0, 1 and 2, so a check is independent
TEST_SE = 0.003  # one standard error of a FashionMNIST test accuracy near 0.93 (10,000 images)


@dataclass
class Verification:
    config: str
    recipe: str
    seeds: list[int]
    models: list[str]
    target: float
    predicted_precision: float
    predicted_low: float
    predicted_high: float
    measured_precisions: list[float]  # one per seed
    predicted_speedup: float
    predicted_speedup_low: float
    predicted_speedup_high: float
    measured_pick_s: float
    measured_baseline_s: float
    statistic: str
    run_id: str

    @property
    def measured_precision(self) -> float:
        return float(np.mean(self.measured_precisions))

    @property
    def measured_speedup(self) -> float:
        return self.measured_baseline_s / self.measured_pick_s

    @property
    def reached(self) -> bool:
        """The mean over seeds reaches the target, allowing one test-set standard error."""
        return self.measured_precision >= self.target - TEST_SE

    @property
    def speedup_in_interval(self) -> bool:
        return self.predicted_speedup_low <= self.measured_speedup <= self.predicted_speedup_high

    def as_dict(self) -> dict:
        return {**asdict(self), "measured_precision": self.measured_precision, "measured_speedup": self.measured_speedup,
                "reached_target": self.reached, "speedup_in_interval": self.speedup_in_interval, "tolerance": TEST_SE}


def verify_pick(ws, profile, statistic: str, pick, baseline_pick, precision, data_dir: Path | None, target: float,
                seeds: list[int], sweep_observer=None, timing_observer=None) -> Verification:
    """`statistic` is the one the time model predicts (so measured and predicted speed-ups compare).
    Progress goes to the observers (the CLI passes its progress bars; None: silent)."""
    from cpbench.export.plan import plan_export
    from cpbench.export.sweep import run_sweep
    from cpbench.timing.runner import TimingTarget, run_timing

    config = pick.config.as_csv()
    jobs = [job for seed in seeds
            for job in plan_export(None, [config], recipe=precision.recipe, seed=seed, dataset=precision.dataset, data_dir=data_dir)]
    jobs += plan_export(None, [baseline_pick.config.as_csv()], untrained=True, dataset=precision.dataset, data_dir=data_dir)
    summary = run_sweep(ws, jobs, observer=sweep_observer)
    failed = [o for o in summary.outcomes if o.record is None]
    if failed:
        raise CpbenchError(f"--verify could not train and export {failed[0].job.label}: {failed[0].error}")
    trained, base = [o.record for o in summary.outcomes[:-1]], summary.outcomes[-1].record
    targets = [TimingTarget(r.name, ws.root / r.file, r.sha256, r.macs) for r in (trained[0], base)]
    with ws.open_store() as store:
        run = run_timing(store, profile.name, profile, targets, observer=timing_observer)
    timings = {t.model: t for t in run.timings}
    for record in (trained[0], base):
        if timings[record.name].status != "ok":
            raise CpbenchError(f"--verify could not time {record.name} on '{profile.name}': {timings[record.name].error}")
    pick_s = statistic_of(statistic, timings[trained[0].name].times_s, timings[trained[0].name].rounds)
    base_s = statistic_of(statistic, timings[base.name].times_s, timings[base.name].rounds)
    return Verification(
        config, precision.recipe, list(seeds), [r.name for r in trained], target, pick.precision, pick.precision_low,
        pick.precision_high, [float(r.accuracy) for r in trained], pick.speedup,
        baseline_pick.seconds_low / pick.seconds_high, baseline_pick.seconds_high / pick.seconds_low,
        float(pick_s), float(base_s), statistic, run.id,
    )
