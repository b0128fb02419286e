"""Saved precision fits and the predictor `recommend` uses: P(T), its uncertainty near T, and
whether T lies in the support of the trained configs.

A fit lives in the workspace's models/precision/<dataset>-<recipe>.json, else in the reference
fits shipped with cpbench (so `recommend` answers on a fresh clone). Each file carries
`format = PRECISION_FORMAT`; anything else is refused with a message saying what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from cpbench import __version__
from cpbench.errors import UsageError
from cpbench.family.config import SPACES, Config
from cpbench.fitting.precision_models import MODELS, PARAMS, normalise
from cpbench.fitting.precision_eval import PrecisionFitReport
from cpbench.workspace.formats import read_versioned, write_json

REFERENCE = Path(__file__).resolve().parents[1] / "reference"
PRECISION_FORMAT = 2
NEIGHBOURS = 8  # residuals of the nearest trained configs give the model's error near a candidate
SUPPORT_QUANTILE = 0.9  # a candidate is supported when it is as close to a trained config as 90 % of them are to each other
MAX_SUPPORT_RADIUS = 0.5  # and never further than half a log2 step (k = 2 is not "near" trained k = 3)
REFIT_HINT = "rerun 'cpbench fit-precision'"


def study_name(dataset: str, recipe: str) -> str:
    return f"{dataset}-{recipe}"


def log_position(x: np.ndarray) -> np.ndarray:
    """Normalised configs in log2 units: halving any parameter is one step, wherever it starts."""
    return np.log2(np.clip(np.asarray(x, float), 1e-9, None))


def nearest_distances(points: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(distances, indices) of the k nearest points to each query, in log2 units, nearest first."""
    d = np.sqrt(((queries[:, None, :] - points[None, :, :]) ** 2).sum(axis=-1))
    k = min(k, points.shape[0])
    index = np.argsort(d, axis=1)[:, :k]
    return np.take_along_axis(d, index, axis=1), index


def uncertainty_table(result: PrecisionFitReport) -> dict:
    """What the predictor needs to say how sure it is: each trained config's held-out residual
    (out-of-fold for fitted configs, the final fit's for the held-out set), the seed spread, and
    the support radius of the trained configs."""
    points = result.as_dict()["points"]
    rows = [(p["config"], p["precision"] - (p["predicted"] if p["held_out"] else p["out_of_fold"]))
            for p in points if p["held_out"] or p["out_of_fold"] is not None]
    x = log_position(normalise([Config.parse(c) for c, _ in rows], result.baseline)) if rows else np.zeros((0, 4))
    radius = None
    if len(x) >= 2:
        d, _ = nearest_distances(x, x, 2)
        radius = min(float(np.quantile(d[:, 1], SUPPORT_QUANTILE)), MAX_SUPPORT_RADIUS)
    return {"residuals": [{"config": c, "residual": float(r)} for c, r in rows],
            "seed_sd": result.seeds.sd if result.seeds else None, "support_radius": radius}


def save_study(result: PrecisionFitReport, folder: Path, machine: dict, source: dict | None = None, space: str | None = None) -> Path:
    path = folder / f"{study_name(result.dataset, result.recipe)}.json"
    payload = {**result.as_dict(), "uncertainty": uncertainty_table(result),
               "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cpbench_version": __version__,
               "trained_on": machine, "source": source or {}, "space": space}
    return write_json(path, payload, PRECISION_FORMAT)


@dataclass
class PrecisionPredictor:
    """P(T) for configs as normalised rows, from a saved study's best integrated model. One baseline
    frame: targets relative to the baseline use the model's baseline precision, not the mean of its
    few seeds (anchoring every prediction to that mean would add its noise to all of them)."""

    model: str
    theta: np.ndarray
    baseline: Config
    baseline_precision: float | None  # measured, mean over seeds; None when the baseline was not trained
    residual_x: np.ndarray  # log positions of the trained configs with a held-out residual
    residuals: np.ndarray
    seed_sd: float
    support_radius: float | None
    ranges: dict[str, tuple[int, int]]
    source: Path
    reference: bool  # True: the shipped reference fit, not this workspace's
    dataset: str
    recipe: str
    trained_on: dict
    space: str | None = None  # the search space of the trained configs
    measured_points: list[tuple[Config, float]] | None = None  # every trained config and its measured precision
    held_out_max: float | None = None  # the highest precision any held-out training reached

    def support_count(self, x: np.ndarray) -> np.ndarray:
        """How many trainings with a held-out residual lie within the support radius of each config:
        how much evidence the probability there rests on."""
        if self.support_radius is None or not len(self.residual_x):
            return np.zeros(len(x), dtype=int)
        d = np.sqrt(((log_position(x)[:, None, :] - self.residual_x[None, :, :]) ** 2).sum(axis=-1))
        return (d <= self.support_radius + 1e-9).sum(axis=1)

    def trained(self, config: Config) -> bool:
        """Whether the study trained this very config: its precision there is in-sample."""
        return any(c == config for c, _ in self.measured_points or [])

    def predict(self, x: np.ndarray) -> np.ndarray:
        return MODELS[self.model](self.theta, x)

    @property
    def baseline_value(self) -> float:
        """The one baseline precision every target is taken from: the model's."""
        return float(self.predict(np.ones((1, 4)))[0])

    def local_error(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """(bias, scale, k): the mean of the held-out residuals of the k nearest trained configs (the
        model's local bias, which it runs high by near the top) and the predictive scale of one new
        training, their standard deviation times sqrt(1 + 1/k). Each residual is one training's, so
        the seed spread is in it already; with k - 1 degrees of freedom (Student's t)."""
        if len(self.residuals) < 3:
            return np.zeros(len(x)), np.full(len(x), np.nan), 0
        _, index = nearest_distances(self.residual_x, log_position(x), NEIGHBOURS)
        local = self.residuals[index]
        k = local.shape[1]
        return local.mean(axis=1), np.maximum(local.std(axis=1, ddof=1), 1e-6) * np.sqrt(1 + 1 / k), k

    def sigma(self, x: np.ndarray) -> np.ndarray:
        """The predictive scale of one new training's accuracy near each config (see local_error)."""
        return self.local_error(x)[1]

    def quantile(self, x: np.ndarray, q: float) -> np.ndarray:
        """The q-quantile of one new training's accuracy: prediction plus local bias plus t-scaled spread."""
        from scipy import stats

        bias, scale, k = self.local_error(x)
        return self.predict(x) + bias + stats.t.ppf(q, max(k - 1, 1)) * scale

    def probability(self, x: np.ndarray, target: float) -> np.ndarray:
        """P(accuracy >= target) for one training of each config: centred on the prediction plus the
        local bias, Student's t with the local spread."""
        from scipy import stats

        bias, scale, k = self.local_error(x)
        return stats.t.sf((target - self.predict(x) - bias) / scale, max(k - 1, 1))

    def support_distance(self, x: np.ndarray) -> np.ndarray:
        """Distance (log2 units) to the nearest trained config."""
        d, _ = nearest_distances(self.residual_x, log_position(x), 1)
        return d[:, 0]

    def supported(self, x: np.ndarray) -> np.ndarray:
        if self.support_radius is None:
            return np.ones(len(x), dtype=bool)
        return self.support_distance(x) <= self.support_radius + 1e-9

    def bounds(self, predicted: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A 95 % interval for one training of each config (`predicted` is the model's value at x)."""
        from scipy import stats

        bias, scale, k = self.local_error(x)
        half = stats.t.ppf(0.975, max(k - 1, 1)) * scale
        return predicted + bias - half, predicted + bias + half

    def outside(self, config: Config) -> list[str]:
        """Why `config` lies outside the trained configs' support (empty when inside)."""
        x = normalise([config], self.baseline)
        if self.support_radius is None or self.supported(x)[0]:
            return []
        return [f"{self.support_distance(x)[0]:.2f} log2 steps from the nearest trained config (support radius {self.support_radius:.2f})"]


def available_studies(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.json")) if folder.is_dir() else []


def load_precision(workspace_folder: Path, dataset: str, recipe: str | None, model: str | None = None) -> PrecisionPredictor:
    """The workspace's fit for dataset (and recipe), else the shipped reference one."""
    for folder, reference in ((workspace_folder, False), (REFERENCE, True)):
        found = [p for p in available_studies(folder) if p.stem.startswith(f"{dataset}-")]
        if recipe:
            found = [p for p in found if p.stem == study_name(dataset, recipe)]
        if len(found) > 1:
            names = ", ".join(p.stem.split("-", 1)[1] for p in found)
            raise UsageError(f"several precision fits for {dataset} (recipes: {names}); pick one with --recipe")
        if found:
            return predictor_from_file(found[0], reference, model)
    which = f"{dataset}/{recipe}" if recipe else dataset
    raise UsageError(f"no precision model for {which}; run 'cpbench export --preset quick' then 'cpbench fit-precision'")


def predictor_from_file(path: Path, reference: bool, model: str | None = None) -> PrecisionPredictor:
    payload = read_versioned(path, PRECISION_FORMAT, REFIT_HINT)
    try:
        name = model or payload["best"]
        entry = payload["models"][name]
        uncertainty = payload["uncertainty"]
        dataset = payload["dataset"]
        baseline = Config.parse(payload["baseline"]) if payload.get("baseline") else SPACES[dataset].baseline
        ranges = {k: tuple(v) for k, v in payload["ranges"].items()}
    except (KeyError, TypeError, UsageError) as exc:
        raise UsageError(f"{path} is not a usable precision fit (missing {exc}); {REFIT_HINT}") from None
    spec = MODELS.get(name)
    if spec is None or list(spec.uses) != list(PARAMS) or list(entry["coefficients"]) != list(spec.parameters):
        raise UsageError(f"{path}: model {name!r} is not an integrated model of this cpbench; {REFIT_HINT}")
    rows = uncertainty.get("residuals") or []
    x = log_position(normalise([Config.parse(r["config"]) for r in rows], baseline)) if rows else np.zeros((0, 4))
    return PrecisionPredictor(
        name, np.array(list(entry["coefficients"].values()), float), baseline, payload.get("baseline_precision"), x, np.array([r["residual"] for r in rows], float),
        float(uncertainty.get("seed_sd") or 0.0), uncertainty.get("support_radius"), ranges, path, reference,
        dataset, payload["recipe"], payload.get("trained_on", {}), payload.get("space"),
        [(Config.parse(p["config"]), float(p["precision"])) for p in payload.get("points") or []],
        max((float(p["precision"]) for p in payload.get("points") or [] if p.get("held_out")), default=None),
    )
