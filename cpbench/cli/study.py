"""`cpbench study run` and `cpbench study show`: the precision study behind `recommend`, trained
resumably into a JSONL file of raw results that `cpbench fit-precision --study FILE` fits."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cpbench.cli.options import DataDirOption, JsonOption, err, out, print_json
from cpbench.errors import UsageError

STUDY_RECIPE = "converged-bn"  # the recipe of the shipped study and fit (BatchNorm folded at export: the family's own graph)

study_app = typer.Typer(help="Train the precision study (resumably) and show how far it got.", no_args_is_help=True)

StudyFileOption = Annotated[Optional[Path], typer.Option("--file", help="The study's JSONL file; default: models/precision/<dataset>-<recipe>.study.jsonl in the workspace.")]


def _shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        raise UsageError(f"invalid --shard {text!r}; use INDEX/COUNT, e.g. 0/2 and 1/2 for two processes") from None
    if not 0 <= index < count or count > 64:
        raise UsageError(f"invalid --shard {text!r}; INDEX must be in 0..COUNT-1 and COUNT at most 64")
    return index, count


def _default_file(workspace: Path, recipe: str) -> Path:
    return Path(workspace) / "models" / "precision" / f"fashionmnist-{recipe}.study.jsonl"


@study_app.command("run")
def run_command(
    recipe: Annotated[str, typer.Option("--recipe", help="Training recipe of the study.")] = STUDY_RECIPE,
    study_file: StudyFileOption = None,
    threads: Annotated[int, typer.Option("--threads", help="Torch threads of this process.")] = 2,
    shard: Annotated[str, typer.Option("--shard", help="INDEX/COUNT: train every COUNT-th item, so several processes share one file.")] = "0/1",
    data_dir: DataDirOption = None,
    workspace: Annotated[Path, typer.Option("--workspace", "-w", help="Workspace whose models/precision holds the study.")] = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Train what the study file lacks, appending each result as soon as it exists (stop and rerun at will).
    Several processes may share one file, with or without --shard: each claims an item before training it."""
    from cpbench.export.data import DatasetSpec, locate_fashion_mnist
    from cpbench.export.precision_study import family_trainer, pending, plan_study, read_results, run_study
    from cpbench.export.train import get_recipe
    from cpbench.cli.views.common import bar_progress
    from cpbench.family.config import FASHION_MNIST
    from cpbench.timing.environment import machine_summary

    if not 1 <= threads <= 256:
        raise UsageError(f"--threads must be in 1..256, got {threads}")
    index, count = _shard(shard)
    base = get_recipe(recipe)
    DatasetSpec.parse("fashionmnist")
    locate_fashion_mnist(data_dir)
    path = study_file or _default_file(workspace, recipe)
    items = plan_study(FASHION_MNIST)[index::count]
    todo = pending(items, read_results(path), base.hash)
    trained = []
    with bar_progress(err) as progress:
        task = progress.add_task(f"precision study ({recipe}), shard {index}/{count}", total=len(todo))
        for result in run_study(items, path, "fashionmnist", recipe, base.hash,
                                family_trainer("fashionmnist", recipe, threads, data_dir), machine_summary()):
            trained.append(result)
            progress.update(task, advance=1, description=f"{result.role} {result.config} seed {result.seed}: {result.accuracy:.4f}")
    if as_json:
        print_json({"file": str(path), "trained": [r.__dict__ for r in trained], "pending": len(todo) - len(trained)})
        return
    out.print(f"{len(trained)} trained now, {len(items) - len(todo)} already in {path}")


@study_app.command("show")
def show_command(
    recipe: Annotated[str, typer.Option("--recipe", help="Training recipe of the study.")] = STUDY_RECIPE,
    study_file: StudyFileOption = None,
    workspace: Annotated[Path, typer.Option("--workspace", "-w", help="Workspace whose models/precision holds the study.")] = Path("."),
    as_json: JsonOption = False,
) -> None:
    """How far the study got, by role, and the seed-to-seed spread so far."""
    from collections import Counter

    from rich.table import Table

    from cpbench.export.precision_study import plan_study, read_results, shipped_study
    from cpbench.family.config import FASHION_MNIST
    from cpbench.fitting.precision_data import points_from_study

    path = study_file or _default_file(workspace, recipe)
    if not path.exists() and study_file is None and shipped_study("fashionmnist", recipe).exists():
        path = shipped_study("fashionmnist", recipe)
    if study_file is not None and not study_file.is_file():
        raise UsageError(f"no study file {study_file}; check the path, or leave --file out to show the workspace's study")
    results = read_results(path)
    planned = Counter(i.role for i in plan_study(FASHION_MNIST))
    done = Counter(r.role for r in results if r.recipe == recipe)
    points = points_from_study(results, recipe) if results else None
    seeds = points.seeds if points else None
    if as_json:
        print_json({"file": str(path), "planned": dict(planned), "done": dict(done),
                    "seeds": seeds.as_dict() if seeds else None})
        return
    table = Table("role", "done", "planned", title=f"Precision study {path}")
    for role in planned:
        table.add_row(role, str(done.get(role, 0)), str(planned[role]))
    out.print(table)
    if seeds:
        out.print(f"seed spread: sd {seeds.sd * 100:.2f} accuracy points over {seeds.configs} configs ({seeds.runs} runs)")
