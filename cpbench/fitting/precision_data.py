"""The points a precision study is fitted to: one per trained config (seeds averaged), which of
them form the held-out set, and the seed-to-seed spread; from a study file or the workspace."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from cpbench.export.precision_study import HOLDOUT_ROLES, StudyResult
from cpbench.errors import UsageError
from cpbench.family.config import Config
from cpbench.fitting.precision_eval import SeedSpread, seed_spread


@dataclass
class PrecisionPoints:
    configs: list[Config]
    precision: np.ndarray  # mean over seeds
    holdout: np.ndarray  # True: trained for a held-out set, never fitted
    seeds: SeedSpread | None
    runs: int
    recipe: str
    dataset: str
    space: str | None = None  # the search space the configs were planned on, when stored with them


def one_recipe(present: Iterable[str], recipe: str | None, where: str) -> str:
    """The recipe to fit: the one asked for, else the only one present."""
    recipes = sorted(set(present))
    if recipe is None:
        if len(recipes) > 1:
            raise UsageError(f"{where} holds several recipes ({', '.join(recipes)}); pick one with --recipe")
        return recipes[0]
    if recipe not in recipes:
        raise UsageError(f"{where} holds nothing trained with recipe {recipe!r}; it has {', '.join(recipes)}")
    return recipe


def points_from_records(records, dataset: str, recipe: str | None, root: str) -> PrecisionPoints:
    """The workspace's trained models of a dataset, one point per config (no held-out set: k-fold judges)."""
    trained = [r for r in records if r.accuracy is not None and r.dataset == dataset]
    if not trained:
        raise UsageError(f"no trained {dataset} models in {root}; run 'cpbench export --preset quick'")
    recipe = one_recipe((r.recipe_name for r in trained), recipe, f"the workspace {root}")
    chosen = [r for r in trained if r.recipe_name == recipe]
    spaces = {r.space for r in chosen if r.space}
    return PrecisionPoints([Config.parse(r.config_id) for r in chosen], np.array([r.accuracy for r in chosen]),
                           np.zeros(len(chosen), dtype=bool), None, len(chosen), recipe, dataset,
                           next(iter(spaces)) if len(spaces) == 1 else None)


def points_from_study(results: Iterable[StudyResult], recipe: str | None = None) -> PrecisionPoints:
    """Group a study's raw results by config. A config is held out only if every run of it was."""
    results = list(results)
    if not results:
        raise UsageError("the study file holds no results yet; run 'cpbench study run' first")
    recipe = one_recipe((r.recipe for r in results), recipe, "the study")
    chosen = [r for r in results if r.recipe == recipe]
    groups: dict[Config, list[float]] = defaultdict(list)
    held: dict[Config, bool] = {}
    for r in chosen:
        c = r.parsed
        groups[c].append(r.accuracy)
        held[c] = held.get(c, True) and r.role in HOLDOUT_ROLES
    configs = list(groups)
    return PrecisionPoints(configs, np.array([np.mean(groups[c]) for c in configs]), np.array([held[c] for c in configs]),
                           seed_spread(groups), len(chosen), recipe, chosen[0].dataset, "fashionmnist")


def study_machine(results: Iterable[StudyResult]) -> dict:
    """The machine a study was trained on, or every machine when several shared the work."""
    machines = {r.machine.get("hardware_id"): r.machine for r in results}
    return next(iter(machines.values())) if len(machines) == 1 else {"machines": list(machines.values())}
