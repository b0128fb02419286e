"""`cpbench fit-precision` and `cpbench recommend`: precision models and the optimizer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cpbench.cli_common import DataDirOption, JsonOption, WorkspaceOption, err, out, print_json
from cpbench.errors import UsageError


def fit_precision_command(
    dataset: Annotated[str, typer.Option("--dataset", help="Dataset the models were trained on.")] = "fashionmnist",
    recipe: Annotated[Optional[str], typer.Option("--recipe", help="Training recipe of the models; default: the only one present.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the fits' random starting points and folds.")] = 0,
    workspace: WorkspaceOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Fit paper 000's precision models (eqs. 2-6) and a monotone one to the trained configs; judge them held out."""
    import numpy as np

    from cpbench.config import SPACES, Config, grids_2d, sweeps_1d
    from cpbench.environment import fingerprint
    from cpbench.precision import study
    from cpbench.precision_files import save_study
    from cpbench.render_precision import precision_study_view
    from cpbench.store import Workspace

    ws = Workspace(workspace)
    if not ws.store_path.exists():
        raise UsageError(f"no store in {ws.root}; run 'cpbench export --preset quick' first")
    with ws.open_store() as store:
        trained = [r for r in store.models("family/*") if r.accuracy is not None and r.dataset == dataset]
    recipes = sorted({r.recipe_name for r in trained})
    if not trained:
        raise UsageError(f"no trained {dataset} models in {ws.root}; run 'cpbench export --preset quick'")
    if recipe is None:
        if len(recipes) > 1:
            raise UsageError(f"models trained with several recipes ({', '.join(recipes)}); pick one with --recipe")
        recipe = recipes[0]
    chosen = [r for r in trained if r.recipe_name == recipe]
    if not chosen:
        raise UsageError(f"no {dataset} models trained with recipe {recipe!r}; trained recipes: {', '.join(recipes)}")
    space = SPACES.get(dataset, SPACES["fashionmnist"])
    configs = [Config.parse(r.config_id) for r in chosen]
    studied = set(sweeps_1d(space)) | set(grids_2d(space))
    random_mask = np.array([c not in studied for c in configs])
    precision = np.array([r.accuracy for r in chosen])
    with err.status(f"fitting precision models to {len(configs)} trained configs"):
        result = study(configs, precision, space.baseline, dataset, recipe, random_mask, seed)
    env = fingerprint()
    path = save_study(result, ws.models_dir / "precision", {"cpu": env["hardware"]["cpu"], "hardware_id": env["hardware_id"]})
    if as_json:
        print_json({**result.as_dict(), "written": str(path)})
        return
    out.print(precision_study_view(result, str(path)))


def recommend_command(
    device: Annotated[str, typer.Option("--device", "-d", help="Profile name (profiles/NAME.toml) or a .toml path.")],
    target: Annotated[Optional[float], typer.Option("--target", help="Least precision to reach, in (0, 1], e.g. 0.93.")] = None,
    max_drop: Annotated[Optional[float], typer.Option("--max-drop", help="Or: at most this much below the baseline's precision, e.g. 0.01.")] = None,
    top: Annotated[int, typer.Option("--top", help="How many configs to list (the pick and its alternatives).")] = 5,
    dataset: Annotated[str, typer.Option("--dataset", help="Dataset of the precision model.")] = "fashionmnist",
    recipe: Annotated[Optional[str], typer.Option("--recipe", help="Recipe of the precision model; default: the only one.")] = None,
    grid: Annotated[str, typer.Option("--grid", help="integer: every integer config up to the baseline | paper: 0.05 steps.")] = "integer",
    verify: Annotated[bool, typer.Option("--verify", help="Train, export and time the pick: predicted against measured.")] = False,
    extrapolate: Annotated[bool, typer.Option("--extrapolate", help="Also pick configs outside the precision model's trained ranges.")] = False,
    data_dir: DataDirOption = None,
    workspace: WorkspaceOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """The cheapest config on a device predicted to reach a precision target (paper 000 eq. 7)."""
    from cpbench.cli_fit import hardware_mismatch
    from cpbench.config import SPACES
    from cpbench.devicefit import predictor_from_profile
    from cpbench.environment import fingerprint
    from cpbench.optimize import GRIDS
    from cpbench.precision_files import load_precision
    from cpbench.profiles import available_profiles, load_profile
    from cpbench.recommend import recommend, resolve_target
    from cpbench.render_precision import recommendation_view
    from cpbench.store import Workspace

    if grid not in GRIDS:
        raise UsageError(f"unknown grid {grid!r}; choose one of {', '.join(GRIDS)}")
    ws = Workspace(workspace)
    precision = load_precision(ws.models_dir / "precision", dataset, recipe)
    goal, rule, notes = resolve_target(target, max_drop, precision)
    profile = load_profile(device, ws.profiles_dir)
    time_model = predictor_from_profile(profile)
    others = {}
    for name in available_profiles(ws.profiles_dir):
        if name == profile.name:
            continue
        other = load_profile(name, ws.profiles_dir)
        if other.fitted and "models" in other.fitted:
            try:
                others[name] = predictor_from_profile(other)
            except UsageError:
                continue
    space = SPACES.get(precision.payload["dataset"], SPACES["fashionmnist"])
    result = recommend(space, time_model, precision, goal, rule, top, grid, others, extrapolate)
    result.warnings[:0] = notes
    mismatch = hardware_mismatch(profile.fitted, fingerprint()["hardware_id"])
    if mismatch:
        result.warnings.append(
            f"{mismatch}; calibrate this machine with 'cpbench export --preset timing --untrained', "
            f"'cpbench time --device {profile.name}' and 'cpbench fit --device {profile.name}'"
        )
    if precision.reference:
        result.warnings.append(
            f"precision from the shipped reference fit ({precision.source.name}); "
            "fit your own with 'cpbench export --preset quick' and 'cpbench fit-precision'"
        )
    verification = None
    if verify:
        from cpbench.verify import verify_pick

        verification = verify_pick(ws, profile, result.pick, precision, data_dir, goal, quiet=as_json)
    if as_json:
        print_json({**result.as_dict(), "verification": verification.as_dict() if verification else None})
        return
    out.print(recommendation_view(result, verification))
