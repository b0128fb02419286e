"""`cpbench fit-precision` and `cpbench recommend`: precision models and the optimizer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cpbench.cli.options import DataDirOption, DeviceOption, JsonOption, WorkspaceOption, err, out, print_json
from cpbench.errors import UsageError, check_choice


def fit_precision_command(
    dataset: Annotated[str, typer.Option("--dataset", help="Dataset the models were trained on.")] = "fashionmnist",
    recipe: Annotated[Optional[str], typer.Option("--recipe", help="Training recipe of the models; default: the only one present.")] = None,
    study_file: Annotated[Optional[Path], typer.Option("--study", help="Fit to a precision study's raw results (JSONL from 'cpbench study run'); 'reference' for the shipped one.")] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Folder to write the fit to; default: the workspace's models/precision.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the fits' random starting points and folds.")] = 0,
    workspace: WorkspaceOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Fit paper 000's precision models (eqs. 2-6) and a monotone one; judge them held out, beside naive baselines and the seed spread."""
    from cpbench.export.precision_study import read_results, shipped_study
    from cpbench.cli.views.precision import precision_study_view
    from cpbench.fitting.precision_data import points_from_records, points_from_study, study_machine
    from cpbench.fitting.precision_eval import fit_and_judge
    from cpbench.fitting.precision_predictor import save_study
    from cpbench.timing.environment import machine_summary
    from cpbench.workspace.folder import Workspace
    from cpbench.family.config import space_of

    ws = Workspace(workspace)
    if study_file is not None:
        path = shipped_study(dataset, recipe) if str(study_file) == "reference" else study_file
        if not path.is_file():
            raise UsageError(f"no study file at {path}; run 'cpbench study run' or pass --study reference")
        results = read_results(path)
        points = points_from_study(results, recipe)
        source = {"study": path.name, "runs": points.runs}
        machine = study_machine(results)
    else:
        if not ws.store_path.exists():
            raise UsageError(f"no store in {ws.root}; run 'cpbench export --preset quick' first (or pass --study reference)")
        with ws.open_store() as store:
            points = points_from_records(store.models("family/*"), dataset, recipe, str(ws.root))
        source = {"workspace": str(ws.root), "models": points.runs}
        machine = machine_summary()
    configs, precision, holdout, seeds = points.configs, points.precision, points.holdout, points.seeds
    dataset, recipe = points.dataset, points.recipe
    space = space_of(dataset, points.space)
    with err.status(f"fitting precision models to {len(configs)} trained configs"):
        result = fit_and_judge(configs, precision, space.baseline, dataset, recipe, holdout, seed, seeds)
    path = save_study(result, out_dir or ws.models_dir / "precision", machine, source, space.name)
    if as_json:
        print_json({**result.as_dict(), "written": str(path)})
        return
    out.print(precision_study_view(result, str(path)))


def recommend_command(
    device: DeviceOption,
    target: Annotated[Optional[float], typer.Option("--target", help="Least precision to reach, in (0, 1], e.g. 0.93.")] = None,
    max_drop: Annotated[Optional[float], typer.Option("--max-drop", help="Or: at most this much below the baseline's precision, e.g. 0.01.")] = None,
    top: Annotated[int, typer.Option("--top", help="How many configs to list (the pick and its alternatives).")] = 5,
    dataset: Annotated[str, typer.Option("--dataset", help="Dataset of the precision model.")] = "fashionmnist",
    recipe: Annotated[Optional[str], typer.Option("--recipe", help="Recipe of the precision model; default: the only one.")] = None,
    grid: Annotated[str, typer.Option("--grid", help="integer: every integer config up to the baseline | paper: 0.05 steps.")] = "integer",
    verify: Annotated[bool, typer.Option("--verify", help="Train, export and time the pick: predicted against measured.")] = False,
    extrapolate: Annotated[bool, typer.Option("--extrapolate", help="Also pick configs outside the support of the trained configs.")] = False,
    verify_seeds: Annotated[int, typer.Option("--verify-seeds", help="With --verify: train the pick with this many seeds, none a seed the precision study trains with (100, 101, ...).")] = 3,
    confidence: Annotated[float, typer.Option("--confidence", help="Least probability that one training of the pick reaches the target.")] = 0.9,
    data_dir: DataDirOption = None,
    workspace: WorkspaceOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """The fastest config on a device likely (--confidence) to reach a precision target when trained (paper 000 eq. 7)."""
    from cpbench.cli.views.precision import recommendation_view
    from cpbench.fitting.predictors import other_time_models, time_model as locate_and_load
    from cpbench.fitting.precision_predictor import load_precision
    from cpbench.optimize.recommend import recommend, resolve_target
    from cpbench.optimize.search import GRIDS
    from cpbench.timing.environment import fingerprint
    from cpbench.timing.profiles import load_profile
    from cpbench.workspace.folder import Workspace
    from cpbench.family.config import space_of

    check_choice(grid, GRIDS, "grid")
    if not 1 <= verify_seeds <= 10:
        raise UsageError(f"--verify-seeds must be in 1..10, got {verify_seeds}")
    ws = Workspace(workspace)
    precision = load_precision(ws.models_dir / "precision", dataset, recipe)
    goal, rule, notes = resolve_target(target, max_drop, precision)
    profile = load_profile(device, ws.profiles_dir)
    chosen = locate_and_load(profile, ws.models_dir, fingerprint()["hardware_id"])
    time_model = chosen.model
    skipped: list[str] = []
    others = other_time_models(ws.profiles_dir, ws.models_dir, fingerprint()["hardware_id"], profile.name, skipped)
    space = space_of(precision.dataset, precision.space)
    result = recommend(space, time_model, precision, goal, rule, top, grid, others, extrapolate, confidence)
    result.warnings[:0] = notes
    result.warnings.extend(skipped)
    if chosen.warning:
        result.warnings.append(chosen.warning)
    if precision.reference:
        result.warnings.append(
            f"precision from the shipped reference fit ({precision.source.name}, trained on "
            f"{precision.trained_on.get('cpu', 'another machine')}); fit your own with 'cpbench study run' and "
            "'cpbench fit-precision --study FILE'"
        )
    verification = None
    if verify:
        from cpbench.cli.views.common import SweepProgress, TimingProgress
        from cpbench.optimize.verify import VERIFY_SEED, verify_pick

        with SweepProgress(err if as_json else out) as sweep_progress, TimingProgress(err) as timing_progress:
            verification = verify_pick(ws, profile, time_model.statistic, result.pick, result.baseline, precision, data_dir, goal,
                                       list(range(VERIFY_SEED, VERIFY_SEED + verify_seeds)), sweep_progress, timing_progress)
    verdict = time_model.verdict() if time_model.kind == "kernel" else None
    if verdict is not None and not verdict.good:
        result.warnings.append(verdict.line())
    if as_json:
        print_json({**result.as_dict(), "verification": verification.as_dict() if verification else None,
                    "calibration_verdict": verdict.as_dict() if verdict else None})
        return
    out.print(recommendation_view(result, verification))
    if verdict is not None and verdict.good:
        out.print(verdict.line(), soft_wrap=True, markup=False)
