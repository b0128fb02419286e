"""The points a precision study is fitted to: one per trained config (seeds averaged), which of
them form the held-out set, and the seed-to-seed spread; from a study file or the workspace."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from cpbench.build.precision_study import StudyResult
from cpbench.errors import UsageError
from cpbench.family.config import Config
from cpbench.fitting.precision_models import SeedSpread, seed_spread


@dataclass
class PrecisionPoints:
    configs: list[Config]
    precision: np.ndarray  # mean over seeds
    holdout: np.ndarray  # True: trained for the final held-out set, never fitted
    seeds: SeedSpread | None
    runs: int
    recipe: str
    dataset: str


def points_from_study(results: Iterable[StudyResult], recipe: str | None = None) -> PrecisionPoints:
    """Group a study's raw results by config. A config is held out only if every run of it was."""
    results = list(results)
    recipes = sorted({r.recipe for r in results})
    if not results:
        raise UsageError("the study file holds no results yet; run 'cpbench study run' first")
    if recipe is None:
        if len(recipes) > 1:
            raise UsageError(f"the study holds several recipes ({', '.join(recipes)}); pick one with --recipe")
        recipe = recipes[0]
    chosen = [r for r in results if r.recipe == recipe]
    if not chosen:
        raise UsageError(f"the study holds no results for recipe {recipe!r}; it has {', '.join(recipes)}")
    groups: dict[Config, list[float]] = defaultdict(list)
    held: dict[Config, bool] = {}
    for r in chosen:
        c = r.parsed
        groups[c].append(r.accuracy)
        held[c] = held.get(c, True) and r.role == "holdout"
    configs = list(groups)
    return PrecisionPoints(configs, np.array([np.mean(groups[c]) for c in configs]), np.array([held[c] for c in configs]),
                           seed_spread(groups), len(chosen), recipe, chosen[0].dataset)
