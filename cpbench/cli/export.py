"""`cpbench export`, `zoo`, `models`, `presets` and `data`: train and export the family, build the
classic networks, list what the workspace holds, find the dataset."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from cpbench.cli.options import DataDirOption, JsonOption, WorkspaceOption, err, out, print_json
from cpbench.errors import UsageError, check_choice

if TYPE_CHECKING:
    from cpbench.workspace.folder import Workspace


def export_command(
    preset: Annotated[Optional[str], typer.Option("--preset", "-p", help="smoke | quick | paper | timing")] = None,
    config: Annotated[Optional[list[str]], typer.Option("--config", "-c", help="f,s,k,l (repeatable), e.g. 32,24,3,2")] = None,
    untrained: Annotated[bool, typer.Option("--untrained", help="Export with random weights (for timing only).")] = False,
    recipe: Annotated[Optional[str], typer.Option("--recipe", help="smoke | quick | paper | converged | converged-bn; default: the preset's own, else quick.")] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="Override the recipe's epochs.")] = None,
    train_subset: Annotated[Optional[int], typer.Option("--train-subset", help="Train on this many images (seeded pick).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed for weights, shuffling and random configs.")] = 0,
    threads: Annotated[Optional[int], typer.Option("--threads", help="torch threads; 0 or unset: all cores.")] = None,
    dataset: Annotated[str, typer.Option("--dataset", help="fashionmnist | imagefolder:PATH")] = "fashionmnist",
    space: Annotated[Optional[str], typer.Option("--space", help="Baseline and Omega sets: fashionmnist | lfw (default: by dataset).")] = None,
    data_dir: DataDirOption = None,
    workspace: WorkspaceOption = Path("."),
    exporter: Annotated[str, typer.Option("--exporter", help="auto (tracing, else dynamo) | torchscript | dynamo")] = "auto",
    force: Annotated[bool, typer.Option("--force", help="Redo configs that are already exported.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be exported and stop.")] = False,
    executor: Annotated[str, typer.Option("--executor", help="local (one config after another) | ray (each config a Ray task).")] = "local",
    address: Annotated[Optional[str], typer.Option("--address", help="Ray cluster to join: auto or ray://host:port; default: start Ray here.")] = None,
    max_retries: Annotated[int, typer.Option("--max-retries", help="Ray: retries of a failed or killed task before it is recorded as failed.")] = 2,
    train_device: Annotated[str, typer.Option("--train-device", help="cpu | cuda: where training runs (Ray: a GPU per task).")] = "cpu",
    as_json: JsonOption = False,
) -> None:
    """Train the configs of a preset (or given with --config) and export each to ONNX, resumably."""
    from cpbench.export.plan import plan_export
    from cpbench.cli.views.common import plan_table
    from cpbench.workspace.folder import Workspace

    check_choice(executor, ("local", "ray"), "executor")
    if executor == "local" and address:
        raise UsageError("--address is for --executor ray; add --executor ray or drop --address")
    if executor == "ray":
        from cpbench.workspace.ray_cluster import import_ray

        import_ray()  # say how to install it before any planning
    if not 0 <= max_retries <= 100:
        raise UsageError(f"--max-retries must be in 0..100, got {max_retries}")
    if not -(2**62) <= seed <= 2**62:  # torch's generators take 64 bits, and the recipes add small offsets
        raise UsageError(f"--seed must be within ±2^62, got {seed}")
    jobs = plan_export(
        preset=preset, configs=config or [], untrained=untrained, recipe=recipe, epochs=epochs,
        train_subset=train_subset, seed=seed, threads=threads or (1 if executor == "ray" else None), dataset=dataset,
        space=space, data_dir=data_dir, exporter=exporter, train_device=train_device, check_device=executor == "local",
    )
    if dry_run:
        if as_json:
            print_json([{"name": j.name, "config": j.config.id, "recipe": j.recipe_name} for j in jobs])
        else:
            out.print(plan_table(jobs))
        return
    ray = None
    if executor == "ray":
        from cpbench.export.ray_executor import RaySettings

        ray = RaySettings(address=address, max_retries=max_retries, gpus_per_task=1.0 if train_device.startswith("cuda") else 0.0)
    sweep_and_report(Workspace(workspace), jobs, force, as_json, ray)


def sweep_and_report(ws: "Workspace", jobs: list, force: bool, as_json: bool, ray=None) -> None:
    """Run the jobs with live progress, then print the summary; exit 130 on Ctrl-C, 1 if any failed."""
    from cpbench.cli.views.common import SweepProgress, sweep_table
    from cpbench.export.sweep import SweepSummary, run_sweep

    summary = SweepSummary()
    try:
        with SweepProgress(err if as_json else out) as progress:
            if ray is None:
                run_sweep(ws, jobs, observer=progress, force=force, summary=summary)
            else:
                from cpbench.export.ray_executor import run_sweep_ray

                run_sweep_ray(ws, jobs, ray, observer=progress, force=force, summary=summary)
    except KeyboardInterrupt:
        err.print(
            f"interrupted: {summary.count('exported') + summary.count('skipped')} finished models are kept; "
            "rerun the same command to resume"
        )
        raise typer.Exit(130) from None
    if as_json:
        print_json({"workspace": str(ws.root), "models": [o.as_dict() for o in summary.outcomes]})
    else:
        out.print(sweep_table(summary))
    failed = summary.count("failed")
    if failed:
        err.print(f"{failed} of {len(jobs)} models failed; see the error column")
        raise typer.Exit(1)


zoo_app = typer.Typer(help="Classic networks from torchvision.models (paper 003), untrained.", no_args_is_help=True)


@zoo_app.command("export")
def zoo_export_command(
    models: Annotated[str, typer.Option("--models", help="Comma-separated torchvision model names.")] = ",".join(
        ("alexnet", "vgg16", "googlenet", "resnet18", "densenet121")
    ),
    input_size: Annotated[int, typer.Option("--input", help="Input height and width.")] = 224,
    channels: Annotated[int, typer.Option("--channels", help="Input channels (1 for FashionMNIST-style inputs).")] = 3,
    classes: Annotated[int, typer.Option("--classes", help="Classifier outputs.")] = 1000,
    exporter: Annotated[str, typer.Option("--exporter", help="auto | torchscript | dynamo")] = "auto",
    force: Annotated[bool, typer.Option("--force", help="Redo models that are already exported.")] = False,
    workspace: WorkspaceOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Export torchvision networks with random weights to models/zoo/, counted and stored."""
    from cpbench.export.onnx_export import EXPORTERS
    from cpbench.workspace.folder import Workspace
    from cpbench.export.zoo import ZooJob

    check_choice(exporter, EXPORTERS, "exporter")
    names = [m.strip() for m in models.split(",") if m.strip()]
    if not names:
        raise UsageError("--models is empty; name at least one torchvision model, e.g. resnet18")
    jobs = [ZooJob(name, input_size, channels, classes, exporter=exporter) for name in names]
    sweep_and_report(Workspace(workspace), jobs, force, as_json)


@zoo_app.command("table")
def zoo_table_command(
    device: Annotated[Optional[str], typer.Option("--device", "-d", help="Also predict each exported network's inference latency at batch 1 on this profile, from this machine's any-network model.")] = None,
    workspace: WorkspaceOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Paper 003's Table 1 beside cpbench's FLOPs and torchvision's published numbers; with
    --device, the networks' predicted inference latency at batch 1 beside their FLOPs."""
    from cpbench.cli.views.common import table1_table
    from cpbench.workspace.folder import Workspace
    from cpbench.export.zoo import DENSENETS, PAPER_003_MODELS, ZooJob, count_zoo_model, table_1

    needed = list(dict.fromkeys(PAPER_003_MODELS + DENSENETS))
    core: dict[str, float] = {}
    ws = Workspace(workspace)
    latency_model = _any_model(device, ws) if device else None  # a missing model is refused before counting
    if ws.store_path.exists():  # reuse counts of models already exported at 224x224x3
        with ws.open_store() as store:
            for name in needed:
                record = store.get_model(ZooJob(name).name)
                if record is not None and record.core_macs:
                    core[name] = record.core_macs / 1e9
    missing = [n for n in needed if n not in core]
    if missing:
        from cpbench.cli.views.common import bar_progress

        with bar_progress(err if as_json else out, transient=True) as progress:
            task = progress.add_task("counting (export in memory)", total=len(missing))
            for name in missing:
                progress.update(task, description=f"counting {name} at 224x224x3")
                core[name] = count_zoo_model(name, 224).core_macs / 1e9
                progress.advance(task)
    rows = table_1(core)
    latency = _zoo_latency(latency_model, ws, PAPER_003_MODELS) if latency_model else None
    if as_json:
        print_json({"rows": [r.as_dict() for r in rows], "counted_gmacs": core,
                    **({"latency": latency} if latency is not None else {})})
        return
    out.print(table1_table(rows))
    if latency is not None:
        out.print(_latency_table(device, latency))


def _any_model(device: str, ws):
    """This machine's any-network model of the profile, or a clear error naming the calibration."""
    from cpbench.anynet.model import load_any_model, model_file
    from cpbench.timing.environment import fingerprint
    from cpbench.timing.profiles import load_profile

    profile = load_profile(device, ws.profiles_dir)
    path = model_file(ws.models_dir, profile.name, fingerprint()["hardware_id"])
    if not path.is_file():
        raise UsageError(f"no any-network model of '{profile.name}' on this machine; run "
                         f"'cpbench calibrate --device {profile.name} --kernels any' first")
    return load_any_model(path)


def _zoo_latency(model, ws, names) -> list[dict]:
    """Predicted batch-1 inference latency of the networks exported at 224 in the workspace."""
    from cpbench.export.zoo import ZooJob

    rows = []
    for name in names:
        file = ws.root / ZooJob(name).relative_file
        if not file.is_file():
            rows.append({"model": name, "file": None, "predicted_s": None})
            continue
        p = model.predict_file(file)
        rows.append({"model": name, "file": str(file), "gflops": 2 * p.macs / 1e9, "predicted_s": p.seconds,
                     "low_s": p.low_s, "high_s": p.high_s, "kind": "predicted inference latency, batch 1"})
    return rows


def _latency_table(device: str, rows: list[dict]):
    from rich.table import Table

    from cpbench import units

    table = Table(title=f"Inference latency at batch 1 on '{device}', predicted by this machine's any-network model "
                        "(paper 003 timed training and validation on a GPU)")
    for column in ("network", "GFLOPs", "predicted", "95 % interval"):
        table.add_column(column, justify="left" if column == "network" else "right")
    for r in rows:
        if r["predicted_s"] is None:
            table.add_row(r["model"], "-", "not exported", "'cpbench zoo export' first")
        else:
            table.add_row(r["model"], f"{r['gflops']:.2f}", units.seconds(r["predicted_s"]),
                          f"{units.seconds(r['low_s'])} – {units.seconds(r['high_s'])}")
    table.caption = "predictions, not measurements: 'cpbench time --models zoo/*' measures them"
    return table


def models_command(
    pattern: Annotated[Optional[str], typer.Argument(help="Glob over model names, e.g. 'family/*'.")] = None,
    workspace: WorkspaceOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """List the exported models of the workspace: config, params, accuracy, file."""
    from cpbench.cli.views.common import models_table
    from cpbench.workspace.folder import Workspace

    ws = Workspace(workspace).require_existing()
    if not ws.store_path.exists():
        records = []
    else:
        with ws.open_store() as store:
            records = store.models(pattern)
    if as_json:
        print_json([r.as_dict() for r in records])
        return
    if not records:
        out.print(f"no models in {ws.root}; run 'cpbench export --preset quick' to make some")
        return
    out.print(models_table(records, ws))


def presets_command(as_json: JsonOption = False) -> None:
    """List the presets with their size and default recipe."""
    from cpbench.family.config import FASHION_MNIST
    from cpbench.family.presets import PRESETS

    rows = [
        {"name": p.name, "configs": len(p.build(FASHION_MNIST, 0)), "recipe": p.recipe or "untrained", "description": p.description}
        for p in PRESETS.values()
    ]
    if as_json:
        print_json(rows)
        return
    from rich.table import Table

    table = Table("preset", "configs", "recipe", "what it is", title="Presets (FashionMNIST space)")
    for row in rows:
        table.add_row(row["name"], str(row["configs"]), row["recipe"], row["description"])
    out.print(table)


def data_command(
    install: Annotated[bool, typer.Option("--install", help="Install Debian's dataset-fashion-mnist when missing (needs root).")] = False,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Say where FashionMNIST is found; with --install, install it when it is missing."""
    from cpbench.export.data import INSTALL_HINT, locate_fashion_mnist

    try:
        folder = locate_fashion_mnist(data_dir)
        installed = False
    except UsageError:
        if not install or data_dir is not None:
            raise
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            raise UsageError(f"FashionMNIST is missing and cannot be installed here (needs root and apt-get); {INSTALL_HINT}") from None
        err.print("FashionMNIST is missing: installing Debian's dataset-fashion-mnist ...")
        for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "dataset-fashion-mnist"]):
            done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                raise UsageError(f"'{' '.join(command)}' failed ({last}); {INSTALL_HINT}") from None
        folder = locate_fashion_mnist(None)
        installed = True
    if as_json:
        print_json({"dataset": "fashionmnist", "folder": str(folder), "installed_now": installed})
    else:
        out.print(f"FashionMNIST: {folder}" + (" (installed now)" if installed else ""))
