"""Where precision studies live: the workspace's models/precision/<dataset>-<recipe>.json beside the
trained models, else the reference fits shipped with cpbench (so `recommend` answers on a fresh clone).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from cpbench import __version__
from cpbench.config import SPACES, Config
from cpbench.errors import UsageError
from cpbench.files import write_atomically
from cpbench.precision import MODELS, PARAMS, PrecisionStudy

REFERENCE = Path(__file__).resolve().parent / "reference"


def study_name(dataset: str, recipe: str) -> str:
    return f"{dataset}-{recipe}"


def save_study(result: PrecisionStudy, folder: Path, machine: dict) -> Path:
    path = folder / f"{study_name(result.dataset, result.recipe)}.json"
    payload = {**result.as_dict(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "cpbench_version": __version__, "trained_on": machine}
    write_atomically(path, (json.dumps(payload, indent=2) + "\n").encode())
    return path


@dataclass
class PrecisionPredictor:
    """P(T) for configs as normalised rows, from a saved study's best integrated model."""

    model: str
    theta: np.ndarray
    baseline: Config
    baseline_precision: float | None
    interval: tuple[float, float]  # held-out relative-error quantiles (2.5 %, 97.5 %)
    ranges: dict[str, tuple[int, int]]
    source: Path
    reference: bool  # True: the shipped reference fit, not this workspace's
    payload: dict

    def predict(self, x: np.ndarray) -> np.ndarray:
        return MODELS[self.model](self.theta, x)

    def bounds(self, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        low, high = self.interval
        return predicted / (1 + high), predicted / (1 + low)

    def outside(self, config: Config) -> list[str]:
        """The parameters of `config` outside the trained range (where the model extrapolates)."""
        return [f"{p}={getattr(config, p)} (trained {lo}..{hi})" for p, (lo, hi) in self.ranges.items()
                if not lo <= getattr(config, p) <= hi]


def available_studies(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def load_precision(workspace_folder: Path, dataset: str, recipe: str | None, model: str | None = None) -> PrecisionPredictor:
    """The workspace's study for dataset (and recipe), else the shipped reference one."""
    for folder, reference in ((workspace_folder, False), (REFERENCE, True)):
        found = [p for p in available_studies(folder) if p.stem.startswith(f"{dataset}-")]
        if recipe:
            found = [p for p in found if p.stem == study_name(dataset, recipe)]
        if len(found) > 1:
            names = ", ".join(p.stem.split("-", 1)[1] for p in found)
            raise UsageError(f"several precision fits for {dataset} (recipes: {names}); pick one with --recipe")
        if found:
            return _predictor(found[0], reference, model)
    which = f"{dataset}/{recipe}" if recipe else dataset
    raise UsageError(
        f"no precision model for {which}; run 'cpbench export --preset quick' then 'cpbench fit-precision'"
    )


def _predictor(path: Path, reference: bool, model: str | None) -> PrecisionPredictor:
    try:
        payload = json.loads(path.read_text())
        name = model or payload["best"]
        entry = payload["models"][name]
    except (OSError, ValueError, KeyError) as exc:
        raise UsageError(f"{path} is not a usable precision fit ({exc}); rerun 'cpbench fit-precision'") from None
    spec = MODELS.get(name)
    if spec is None or list(spec.uses) != list(PARAMS) or list(entry["coefficients"]) != list(spec.parameters):
        raise UsageError(f"{path}: model {name!r} is not an integrated model of this cpbench; rerun 'cpbench fit-precision'")
    held = entry.get("held_out") or entry["fit_set"]
    dataset = payload["dataset"]
    baseline = Config.parse(payload["baseline"]) if payload.get("baseline") else SPACES[dataset].baseline
    return PrecisionPredictor(
        name, np.array(list(entry["coefficients"].values())), baseline, payload.get("baseline_precision"),
        (held["rel_q025"], held["rel_q975"]), {k: tuple(v) for k, v in payload["ranges"].items()}, path, reference, payload,
    )
