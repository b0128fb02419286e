"""A saved calibration: every kernel's and network's per-round times under one profile on one
machine, as gzip-compressed JSON (format 1), and round-min, the statistic read from it."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path


from cpbench.errors import UsageError, first_line


CALIBRATION_FORMAT = 1


def round_min(entry: dict) -> float:
    """A saved kernel's or network's time: the median over rounds of its per-round minimum (round-min).
    Pure Python: called once per kernel (12,800 of them), where numpy's per-call cost dominated."""
    return float(statistics.median(entry["mins"]))


def round_spread(mins: list[float]) -> float:
    """How far an item's rounds disagree: (max - min) / median of its per-round minima (0 for one round)."""
    return (max(mins) - min(mins)) / float(statistics.median(mins)) if len(mins) > 1 else 0.0


@dataclass
class Calibration:
    device: str
    space: str
    in_channels: int
    design: dict
    profile: dict
    fingerprint: dict
    started_at: str
    duration_s: float
    kernels: dict[str, dict]  # id -> kernel fields + rounds
    networks: dict[str, dict]  # config csv -> rounds
    statistic: str = "round-min"
    baseline: str = ""  # the space's T0 as "f,s,k,l"; calibrations saved before it name a shipped space
    reference: dict = field(default_factory=dict)  # the co-measured reference: its level, spread, times, re-measured
    plan: dict = field(default_factory=dict)  # what the budget kept, extra rounds, items whose rounds still disagree

    @property
    def hardware_id(self) -> str:
        return str(self.fingerprint.get("hardware_id", ""))

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: dict) -> "Calibration":
        fields = {k: payload[k] for k in cls.__dataclass_fields__ if k in payload}
        return cls(**fields)


def calibration_path(models_dir: Path, device: str, hardware_id: str) -> Path:
    return Path(models_dir) / "fits" / f"{device}-{hardware_id}.calibration.json.gz"


def _compact(values: list[float]) -> list[float]:
    return [float(f"{v:.5g}") for v in values]


def save_calibration(models_dir: Path, calibration: Calibration) -> Path:
    """gzip-compressed JSON (format 1): ~13,000 kernels x rounds stay a few hundred kB."""
    import gzip
    import json

    from cpbench.workspace.files import write_atomically
    from cpbench.workspace.formats import stamp

    payload = calibration.as_dict()
    for group in ("kernels", "networks"):
        for entry in payload[group].values():
            for key in ("mins", "medians", "load_s", "refs"):
                if key in entry:
                    entry[key] = _compact(entry[key])
    if "times" in payload["reference"]:
        payload["reference"]["times"] = _compact(payload["reference"]["times"])
    path = calibration_path(models_dir, calibration.device, calibration.hardware_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(stamp(payload, CALIBRATION_FORMAT), separators=(",", ":"), default=str)
    write_atomically(path, gzip.compress(text.encode(), mtime=0))
    return path


def load_calibration(path: Path) -> Calibration:
    from cpbench.workspace.formats import read_versioned

    fix = "rerun 'cpbench calibrate'"
    payload = read_versioned(Path(path), CALIBRATION_FORMAT, fix)
    try:
        return Calibration.from_dict(payload)
    except TypeError as exc:
        raise UsageError(f"{path} is not a complete calibration ({first_line(exc)}); {fix}") from None


