"""Timed models of one device, read back from the store as (config, MACs, time) points to fit on.

Every timed run keeps every per-inference time, so the statistic a model is fitted on is chosen
here, not at timing. The default is round-min: each round (a fresh process) contributes the
minimum of a fixed number of its runs, and the median over rounds is the model's time. The
minimum is the cost with the least interference from the rest of the machine (it repeats between
runs better than the median or a low percentile: docs/decisions/0000-round-min.md); a fixed count keeps it unbiased by how many runs a model's speed allows, and the
median over processes keeps one unlucky process (memory layout, a noisy neighbour) out. Fit on
the median (--statistic median) to predict typical latency instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from cpbench.family.config import Config
from cpbench.timing.protocol import round_statistic
from cpbench.errors import UsageError, calibration_hint, check_choice

STATISTICS: dict[str, Callable[[np.ndarray], float]] = {
    "min": lambda t: float(np.min(t)),
    "p10": lambda t: float(np.percentile(t, 10)),
    "median": lambda t: float(np.median(t)),
    "mean": lambda t: float(np.mean(t)),
}
DEFAULT_STATISTIC = "round-min"
ROUND_STATISTIC = "round-min"  # median over rounds of each round's fixed-count minimum (needs per-round summaries)


@dataclass
class Observation:
    model: str
    kind: str  # 'family' | 'zoo' | 'file'
    time_s: float
    macs: int | None
    run_id: str
    config: Config | None = None
    in_channels: int = 1
    dataset: str | None = None
    space: str | None = None  # the search space the model was planned on, as stored


@dataclass
class Observations:
    device: str
    batch: int
    statistic: str
    points: list[Observation]
    runs: list[str] = field(default_factory=list)
    hardware_ids: list[str] = field(default_factory=list)
    fingerprint: dict = field(default_factory=dict)  # of the latest run
    clock: str = "wall"  # the runs' clock (profiles' 'clock'): only runs on the latest run's clock are used

    @property
    def family(self) -> list[Observation]:
        return [p for p in self.points if p.config is not None]

    @property
    def zoo(self) -> list[Observation]:
        return [p for p in self.points if p.kind == "zoo" and p.macs]


def statistic_of(statistic: str, times, rounds) -> float:
    """The named statistic of one model's measurement: over its runs, or (round-min) over its rounds.
    A measurement made before per-round summaries were kept counts as one round of all its runs."""
    if statistic == ROUND_STATISTIC:
        return round_statistic(rounds) if rounds else float(np.min(times)) if len(times) else float("nan")
    return STATISTICS[statistic](np.asarray(times))


def load_observations(store, device: str, batch: int | None = None, statistic: str = DEFAULT_STATISTIC,
                      run_ids: list[str] | None = None, hardware_id: str | None = None) -> Observations:
    """The latest measurement of each model on `device` at `batch` (default: the latest run's batch),
    from one machine's runs (`hardware_id`; default: the only machine that timed it, else this one)."""
    check_choice(statistic, [*STATISTICS, ROUND_STATISTIC], "statistic")
    runs = [r for r in store.runs() if r.device == device and r.ok > 0]
    machines = sorted({r.hardware_id for r in runs})
    if hardware_id is None and len(machines) > 1 and not run_ids:
        from cpbench.timing.environment import fingerprint

        here = fingerprint()["hardware_id"]
        if here not in machines:
            raise UsageError(f"device '{device}' was timed on {len(machines)} machines ({', '.join(machines)}) and not on "
                             "this one; pick one with --machine HARDWARE_ID (see 'cpbench hardware')")
        hardware_id = here
    if hardware_id is not None:
        if hardware_id not in machines:
            raise UsageError(f"no runs of device '{device}' from machine {hardware_id!r}; machines: {', '.join(machines) or 'none'}")
        runs = [r for r in runs if r.hardware_id == hardware_id]
    if run_ids:
        unknown = sorted(set(run_ids) - {r.id for r in runs})
        if unknown:
            raise UsageError(f"no run {unknown[0]!r} with measurements on device '{device}'; list runs with 'cpbench runs'")
        runs = [r for r in runs if r.id in run_ids]
    if not runs:
        raise UsageError(
            f"device '{device}' was never timed in this workspace; {calibration_hint(device)}"
        )
    if batch is None:
        batch = runs[-1].batch
    runs = [r for r in runs if r.batch == batch]
    if not runs:
        raise UsageError(f"device '{device}' was never timed at batch {batch}; run 'cpbench time --device {device} --batch {batch}'")
    latest: dict[str, Observation] = {}
    fingerprint: dict = {}
    def clock_of(summary) -> str:
        return store.run_profile(summary.id).get("clock", "wall")

    clock = clock_of(runs[-1])  # never mix wall times with runtime latencies
    used = [summary for summary in runs if clock_of(summary) == clock]
    for summary in used:  # oldest first, so a later measurement of a model replaces an earlier one
        run = store.get_run(summary.id)
        fingerprint = run.fingerprint
        for m in run.measurements:
            if m.status != "ok" or not m.times:
                continue
            record = store.get_model(m.model)
            value = statistic_of(statistic, m.times, m.rounds)
            if not np.isfinite(value):
                continue  # round-min of a measurement made before per-round summaries were kept
            point = Observation(m.model, record.kind if record else "file", value, m.macs, run.id)
            if record is not None:
                point.dataset = record.dataset
                point.space = record.space
                point.in_channels = int(record.input_shape[0])
                if record.kind == "family" and record.config_id:
                    point.config = Config.parse(record.config_id)
            latest[m.model] = point
    return Observations(
        device, batch, statistic, list(latest.values()), runs=[r.id for r in used],
        hardware_ids=sorted({r.hardware_id for r in used}), fingerprint=fingerprint, clock=clock,
    )


def runtime_summary(fingerprint: dict) -> dict:
    """The parts of a run's fingerprint that a fitted model depends on."""
    hardware = fingerprint.get("hardware", {})
    return {
        "hardware_id": fingerprint.get("hardware_id", ""), "cpu": hardware.get("cpu", ""),
        "physical_cores": hardware.get("physical_cores") or 0, "logical_cores": hardware.get("logical_cores") or 0,
        "gpus": ", ".join(g.get("name", "") for g in hardware.get("gpus", [])), "os": fingerprint.get("os", ""),
        "libraries": json.loads(json.dumps(fingerprint.get("libraries", {}))),
    }
