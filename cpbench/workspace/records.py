"""The records the store keeps: an exported model, a timing run and its measurements, each typed
as it is written and as it is read back."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from cpbench.errors import UsageError

if TYPE_CHECKING:
    from cpbench.counting.count import GraphCount


@dataclass
class ModelRecord:
    name: str
    kind: str
    dataset: str
    input_shape: tuple[int, int, int]
    num_classes: int
    recipe_name: str
    recipe_hash: str
    recipe: dict
    params: int
    file: str
    sha256: str
    opset: int
    exporter: str
    parity_max_abs_diff: float
    cpbench_version: str
    config_id: str | None = None
    f: int | None = None
    s: int | None = None
    k: int | None = None
    l: int | None = None  # noqa: E741
    accuracy: float | None = None
    training: dict | None = None
    normalization: dict | None = None
    macs: int | None = None
    core_macs: int | None = None
    weight_bytes: int | None = None
    activation_bytes: int | None = None
    counts: dict | None = None
    space: str | None = None  # the search space the config was planned on; None for zoo models
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    _JSON = ("input_shape", "recipe", "training", "normalization", "counts")

    def to_row(self) -> dict:
        row = dict(self.__dict__)
        for key in self._JSON:
            row[key] = None if row[key] is None else json.dumps(row[key], sort_keys=True)
        return row

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "ModelRecord":
        values = dict(row)
        for key in cls._JSON:
            if values[key] is not None:
                try:
                    values[key] = json.loads(values[key])
                except ValueError:
                    raise UsageError(f"the store's row for model {values.get('name')!r} has invalid JSON in '{key}'; "
                                     "re-export that model with --force or restore the store from a copy") from None
        values["input_shape"] = tuple(values["input_shape"])
        return cls(**values)

    def as_dict(self, layers: bool = False) -> dict:
        out = dict(self.__dict__, input_shape=list(self.input_shape))
        if out["counts"] and not layers:
            out["counts"] = {k: v for k, v in out["counts"].items() if k != "layers"}
        return out

    def set_counts(self, count: "GraphCount") -> None:
        self.macs, self.core_macs = count.total_macs, count.core_macs
        self.weight_bytes, self.activation_bytes = count.weight_bytes, count.activation_bytes
        self.counts = count.as_dict(layers=True)


@dataclass(frozen=True)
class RunSummary:
    """One timing run as listed: what ran, where, and how many models it measured."""

    id: str
    device: str
    batch: int
    status: str  # running | done | interrupted
    started_at: str
    hardware_id: str
    ok: int
    failed: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class MeasurementRecord:
    """One model's measurement in a run, as read back from the store."""

    model: str
    batch: int
    status: str  # ok | failed
    file: str | None = None
    sha256: str | None = None
    macs: int | None = None
    error: str | None = None
    load_s: float | None = None
    first_s: float | None = None
    warmup_runs: int | None = None
    n: int | None = None
    median_s: float | None = None
    mean_s: float | None = None
    stdev_pct: float | None = None
    p90_s: float | None = None
    p99_s: float | None = None
    min_s: float | None = None
    max_s: float | None = None
    iqr_s: float | None = None
    median_ci_low_s: float | None = None
    median_ci_high_s: float | None = None
    throughput_ips: float | None = None
    warnings: list | None = None
    runtime: dict | None = None
    times: list[float] | None = None
    rounds: list[dict] | None = None


@dataclass
class RunRecord:
    """A timing run with its profile, fingerprint and measurements, as read back from the store."""

    id: str
    device: str
    profile: dict
    batch: int
    fingerprint: dict
    hardware_id: str
    status: str
    started_at: str
    finished_at: str | None
    cpbench_version: str
    measurements: list[MeasurementRecord] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {**{k: v for k, v in self.__dict__.items() if k != "measurements"},
                "measurements": [dict(m.__dict__) for m in self.measurements]}
