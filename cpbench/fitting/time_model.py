"""The time model a profile answers with on one machine: what predict, recommend, report and
hardware read, whatever learned it (a kernel calibration, `cpbench fit`). A fitted model is saved
once as a versioned file and loaded as it was saved: loading never fits.

Seconds per inference of family configs, vectorised over a search space (`predict(layers)`), with
a 95 % interval from held-out relative errors (`bounds`), and where the model comes from
(`Provenance`): the machine, the profile's settings, the date and what its errors were judged on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field

import numpy as np

from cpbench.errors import UsageError
from cpbench.family.closed_form import Layers
from cpbench.family.config import Config

RUN_SETTINGS = ("runtime", "provider", "device", "threads", "batch", "graph_optimization", "options", "clock")
SETTING_DEFAULTS = {"clock": "wall"}  # what a model made before the setting existed measured


@dataclass(frozen=True)
class HeldOut:
    """How far the model missed on data that never shaped it, and what that data was."""

    mape: float
    within_10: float
    max_ape: float
    interval_coverage: float  # share of held-out points inside the 95 % interval built without them
    n: int
    measured_on: str  # e.g. "nested 5-fold over 40 calibration networks"

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: dict) -> "HeldOut":
        return cls(**{k: payload[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Provenance:
    """Where a saved model was measured and with which settings. `source` and `reference` are set
    when it is loaded: the file it came from, and whether that file is a shipped reference."""

    hardware_id: str
    cpu: str | None
    fingerprint: dict
    settings: dict  # the profile's run settings when it was measured (RUN_SETTINGS)
    date: str
    cpbench_version: str
    source: str = ""
    reference: bool = False

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("source", "reference")}

    @classmethod
    def from_dict(cls, payload: dict, source: str = "", reference: bool = False) -> "Provenance":
        fields = {k: payload[k] for k in cls.__dataclass_fields__ if k in payload and k not in ("source", "reference")}
        return cls(**fields, source=source, reference=reference)

    def settings_changed(self, now: dict) -> list[str]:
        """The run settings in which the model's profile differs from the profile `now` (as_dict):
        the times of one do not answer for the other."""
        if not self.settings:
            return []
        return [key for key in RUN_SETTINGS if (key in self.settings or key in SETTING_DEFAULTS)
                and self.settings.get(key, SETTING_DEFAULTS.get(key)) != now.get(key)]


def run_settings(profile: dict) -> dict:
    """The part of a profile (as_dict) that changes what a run measures."""
    return {key: profile[key] for key in RUN_SETTINGS if key in profile}


@dataclass
class TimeModel(ABC):
    """Seconds per inference of family configs on one device and machine. Subclasses are
    registered by `kind` in cpbench.fitting.predictors.MODEL_KINDS and saved with `as_dict`."""

    device: str
    statistic: str  # which run time it predicts: round-min, median, ...
    batch: int
    in_channels: int
    interval: tuple[float, float]  # 95 % quantiles of the held-out relative error (predicted - measured) / measured
    provenance: Provenance
    held_out: HeldOut
    baseline: Config
    baseline_time_s: float
    baseline_time_kind: str = "predicted"  # or "measured"
    notes: list[str] = field(default_factory=list)
    noise: dict = field(default_factory=dict)  # the machine's noise while it was measured (fitting.verdict.calibration_noise)

    kind = ""  # the registry key in the saved file

    @property
    @abstractmethod
    def name(self) -> str:
        """The model's name as shown: 'kernel', or the fitted model's ('linear-rel', 'layerwise', ...)."""

    @abstractmethod
    def predict(self, layers: Layers) -> np.ndarray:
        """Seconds per inference for every config in `layers`."""

    def predict_configs(self, configs: list[Config]) -> np.ndarray:
        return self.predict(Layers.of(configs, self.in_channels))

    def check_configs(self, configs: list[Config]) -> None:
        """Refuse, naming it, the first config outside the space the model was made for (each of f, s,
        k and l at most its baseline's): a time model answers where it learned, never by extrapolation."""
        b = self.baseline
        for c in configs:
            over = [f"{p} = {getattr(c, p)} > {getattr(b, p)}" for p in "fskl" if getattr(c, p) > getattr(b, p)]
            if over:
                raise UsageError(f"config {c.as_csv()} lies outside the space the '{self.device}' time model was made "
                                 f"for ({', '.join(over)}; its baseline is {b.as_csv()}); ask for configs up to the "
                                 "baseline, or calibrate a larger space")

    def bounds(self, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A 95 % interval for the measured time: measured = predicted / (1 + relative error);
        a wild model never gives negative times."""
        low_rel, high_rel = self.interval
        return predicted / (1 + high_rel), predicted / (1 + max(low_rel, -0.9))

    def verdict(self):
        """Whether its held-out error meets the goal, beside the noise it was measured in, and what to do."""
        from cpbench.fitting.verdict import judge

        h = self.held_out
        return judge(h.mape, h.within_10, h.n, self.noise, self.device, shipped=self.provenance.reference)

    @property
    def cpu(self) -> str | None:
        return self.provenance.cpu

    def common_dict(self) -> dict:
        return {"kind": self.kind, "device": self.device, "statistic": self.statistic, "batch": self.batch,
                "in_channels": self.in_channels, "interval": list(self.interval),
                "provenance": self.provenance.as_dict(), "held_out": self.held_out.as_dict(),
                "baseline": self.baseline.as_csv(), "baseline_time_s": self.baseline_time_s,
                "baseline_time_kind": self.baseline_time_kind, "notes": list(self.notes), "noise": dict(self.noise)}

    @staticmethod
    def common_fields(payload: dict, source: str, reference: bool) -> dict:
        return {"device": payload["device"], "statistic": payload["statistic"], "batch": int(payload["batch"]),
                "in_channels": int(payload["in_channels"]), "interval": tuple(map(float, payload["interval"])),
                "provenance": Provenance.from_dict(payload["provenance"], source, reference),
                "held_out": HeldOut.from_dict(payload["held_out"]), "baseline": Config.parse(payload["baseline"]),
                "baseline_time_s": float(payload["baseline_time_s"]),
                "baseline_time_kind": payload.get("baseline_time_kind", "predicted"), "notes": list(payload.get("notes", [])),
                "noise": dict(payload.get("noise", {}))}

    @abstractmethod
    def as_dict(self) -> dict:
        """Everything `from_dict` needs to answer again without fitting."""
