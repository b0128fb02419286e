"""`recommend --verify`: train, export and time the recommended config, then set the measurements
beside the predictions (the honest test of both models)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from cpbench.errors import CpbenchError
from cpbench.observations import DEFAULT_STATISTIC, STATISTICS


@dataclass
class Verification:
    config: str
    model: str
    recipe: str
    target: float
    predicted_precision: float
    measured_precision: float
    predicted_s: float
    measured_s: float
    statistic: str
    run_id: str

    @property
    def reached(self) -> bool:
        return self.measured_precision >= self.target

    def as_dict(self) -> dict:
        return {**asdict(self), "reached_target": self.reached,
                "precision_error": (self.predicted_precision - self.measured_precision) / self.measured_precision,
                "time_error": (self.predicted_s - self.measured_s) / self.measured_s}


def verify_pick(ws, profile, pick, precision, data_dir: Path | None, target: float, quiet: bool = False) -> Verification:
    from cpbench.cli_common import err, out
    from cpbench.plan import plan_export
    from cpbench.render import SweepProgress, TimingProgress
    from cpbench.runs import TimingTarget, run_timing
    from cpbench.sweep import run_sweep

    recipe = precision.payload["recipe"]
    jobs = plan_export(None, [pick.config], recipe=recipe, dataset=precision.payload["dataset"], data_dir=data_dir)
    console = err if quiet else out
    with SweepProgress(console) as progress:
        summary = run_sweep(ws, jobs, observer=progress)
    outcome = summary.outcomes[0]
    if outcome.record is None:
        raise CpbenchError(f"--verify could not train and export {pick.config}: {outcome.error}")
    record = outcome.record
    statistic = (profile.fitted or {}).get("statistic", DEFAULT_STATISTIC)
    with ws.open_store() as store:
        with TimingProgress(err) as timing_progress:
            run = run_timing(store, profile.name, profile, [TimingTarget(record.name, ws.root / record.file, record.sha256, record.macs)],
                             observer=timing_progress)
    timing = run.timings[0]
    if timing.status != "ok":
        raise CpbenchError(f"--verify trained {pick.config} but could not time it on '{profile.name}': {timing.error}")
    return Verification(
        pick.config, record.name, recipe, target, pick.precision, float(record.accuracy), pick.seconds,
        STATISTICS[statistic](np.asarray(timing.times_s)), statistic, run.id,
    )
