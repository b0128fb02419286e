"""The `cpbench` command line: parse, call the library, render with Rich (or print JSON)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from cpbench import __version__
from cpbench.cli.options import ClickException, DataDirOption, DeviceOption, JsonOption, WorkspaceOption, err, out, print_json
from cpbench.errors import CpbenchError, UsageError, check_choice, first_line

if TYPE_CHECKING:
    from cpbench.workspace.store import Workspace

app = typer.Typer(
    name="cpbench",
    help="How run time follows complexity on your hardware, and the cheapest CNN that reaches your accuracy there.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)



@app.command("export")
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
    from cpbench.workspace.store import Workspace

    if executor not in ("local", "ray"):
        raise UsageError(f"unknown executor {executor!r}; use local or ray")
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


@app.command("flops")
def flops_command(
    model: Annotated[str, typer.Argument(help="An .onnx file, or a model name from 'cpbench models'.")],
    input_shape: Annotated[Optional[str], typer.Option("--input-shape", help="Static input shape, e.g. 1x3x224x224.")] = None,
    all_layers: Annotated[bool, typer.Option("--all-layers", help="Also list zero-cost layers (reshapes, concats).")] = False,
    workspace: WorkspaceOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Count MACs (FLOPs = 2 x MACs), parameters and bytes of any ONNX model, per layer."""
    from cpbench.counting.count import count_file
    from cpbench.counting.graph import parse_input_shape
    from cpbench.cli.views.common import count_tables

    path = resolve_model_path(model, workspace)
    count = count_file(path, parse_input_shape(input_shape) if input_shape else None)
    if as_json:
        print_json({"model": str(path), **count.as_dict(layers=True)})
        return
    for table in count_tables(count, str(path), all_layers):
        out.print(table)


def resolve_model_path(model: str, workspace: Path) -> Path:
    """A path as given, else a stored model's file (so 'family/.../f64-s28-k5-l3' works too)."""
    path = Path(model)
    if path.exists() or model.endswith(".onnx"):
        return path
    from cpbench.workspace.store import Workspace

    ws = Workspace(workspace)
    if ws.store_path.exists():
        with ws.open_store() as store:
            record = store.get_model(model)
        if record is not None:
            from cpbench.workspace.files import sha256_of

            file = ws.root / record.file
            if not file.is_file():
                raise UsageError(f"{record.file} of model {record.name} is missing; re-export it with 'cpbench export ... --force'")
            if sha256_of(file) != record.sha256:  # what the store says must be what is counted
                raise UsageError(f"{record.file} has changed since model {record.name} was exported (sha256 differs); "
                                 "re-export it with 'cpbench export ... --force' or restore the file, or count the file by its path")
            return file
    raise UsageError(f"{model} is neither a file nor a model in {ws.root}; pass an .onnx path or a name from 'cpbench models'")


zoo_app = typer.Typer(help="Classic networks from torchvision.models (paper 003), untrained.", no_args_is_help=True)
app.add_typer(zoo_app, name="zoo")


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
    from cpbench.workspace.store import Workspace
    from cpbench.export.zoo import ZooJob

    check_choice(exporter, EXPORTERS, "exporter")
    names = [m.strip() for m in models.split(",") if m.strip()]
    if not names:
        raise UsageError("--models is empty; name at least one torchvision model, e.g. resnet18")
    jobs = [ZooJob(name, input_size, channels, classes, exporter=exporter) for name in names]
    sweep_and_report(Workspace(workspace), jobs, force, as_json)


@zoo_app.command("table")
def zoo_table_command(
    workspace: WorkspaceOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Paper 003's Table 1 beside cpbench's FLOPs and torchvision's published numbers."""
    from cpbench.cli.views.common import table1_table
    from cpbench.workspace.store import Workspace
    from cpbench.export.zoo import DENSENETS, PAPER_003_MODELS, ZooJob, count_zoo_model, table_1

    needed = list(dict.fromkeys(PAPER_003_MODELS + DENSENETS))
    core: dict[str, float] = {}
    ws = Workspace(workspace)
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
    if as_json:
        print_json({"rows": [r.as_dict() for r in rows], "counted_gmacs": core})
        return
    out.print(table1_table(rows))


@app.command("time")
def time_command(
    device: DeviceOption,
    models: Annotated[Optional[str], typer.Option("--models", help="Glob over stored model names, e.g. 'family/*'.")] = None,
    model: Annotated[Optional[list[Path]], typer.Option("--model", help="Any .onnx file (repeatable) instead of stored models.")] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", help="Override the profile's threads (0 = runtime default).")] = None,
    batch: Annotated[Optional[int], typer.Option("--batch", help="1 = latency; larger = throughput (images/s).")] = None,
    min_time: Annotated[Optional[float], typer.Option("--min-time", help="Seconds of timed runs at least.")] = None,
    min_runs: Annotated[Optional[int], typer.Option("--min-runs", help="Timed runs at least.")] = None,
    max_runs: Annotated[Optional[int], typer.Option("--max-runs", help="Timed runs at most.")] = None,
    max_time: Annotated[Optional[float], typer.Option("--max-time", help="Seconds of timed runs at most.")] = None,
    warmup: Annotated[Optional[int], typer.Option("--warmup", help="Warm-up runs (after the first inference).")] = None,
    rounds: Annotated[Optional[int], typer.Option("--rounds", help="Measure every model this many times, one pass over all models per round.")] = None,
    executor: Annotated[str, typer.Option("--executor", help="local (this machine) | ray (every node of a Ray cluster, one run per node).")] = "local",
    address: Annotated[Optional[str], typer.Option("--address", help="With --executor ray: the cluster to join ('auto', 'ray://host:10001'); default: start Ray here.")] = None,
    resource: Annotated[Optional[str], typer.Option("--resource", help="With --executor ray: only the nodes that have this custom resource.")] = None,
    max_rounds: Annotated[Optional[int], typer.Option("--max-rounds", help="Then up to this many rounds for a model until its best two rounds agree (measure.agree_pct).")] = None,
    workspace: WorkspaceOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Time models under a device profile: each in its own worker, stored as a run with its environment."""
    import dataclasses

    from cpbench.timing.profiles import MAX_THREADS, load_profile
    from cpbench.cli.views.common import TimingProgress, timing_table
    from cpbench.timing.runner import run_timing, targets_for
    from cpbench.workspace.store import Workspace

    if models and model:
        raise UsageError("--models selects stored models and --model times files: pass one of them, not both")
    ws = Workspace(workspace)
    profile = load_profile(device, ws.profiles_dir)
    for flag, value, low in (("--threads", threads, 0), ("--batch", batch, 1)):
        if value is not None and not low <= value <= MAX_THREADS:
            raise UsageError(f"{flag} must be in {low}..{MAX_THREADS}, got {value}")
    measure_changes = {k: v for k, v in dict(
        min_time_s=min_time, min_runs=min_runs, max_runs=max_runs, max_time_s=max_time, warmup_runs=warmup, rounds=rounds,
        max_rounds=max_rounds,
    ).items() if v is not None}
    if min_runs is not None and max_runs is None:
        measure_changes["max_runs"] = max(profile.measure.max_runs, min_runs)
    settings = dataclasses.replace(profile.measure, **measure_changes)
    profile = profile.with_overrides(threads=threads, batch=batch, measure=settings)
    check_choice(executor, ("local", "ray"), "executor")
    if executor == "local" and (address or resource):
        raise UsageError("--address and --resource are for --executor ray; add --executor ray or drop them")
    ws.ensure_writable()
    if executor == "ray":
        from cpbench.timing.ray_timing import run_timing_ray

        with ws.open_store() as store:
            targets = targets_for(ws.root, store, models, model or [], profile.batch)
            with err.status(f"timing {len(targets)} models on every Ray node"):
                ray_runs = run_timing_ray(store, profile.name, profile, targets, address, resource)
        if as_json:
            print_json({"runs": [r.as_dict() for r in ray_runs]})
        else:
            for r in ray_runs:
                out.print(f"node {r.fingerprint.get('ray_node', '?')[:12]} ({r.fingerprint['hardware']['cpu']}): run {r.id}")
                out.print(timing_table(r))
        if any(t.status != "ok" for r in ray_runs for t in r.timings):
            raise typer.Exit(1)
        return
    with ws.open_store() as store:
        targets = targets_for(ws.root, store, models, model or [], profile.batch)
        progress = TimingProgress(err)  # progress is diagnostics: stderr, so stdout holds only results
        try:
            with progress:
                run = run_timing(store, profile.name, profile, targets, observer=progress)
        except KeyboardInterrupt:
            err.print("interrupted: the models measured so far are kept in the run")
            raise typer.Exit(130) from None
    if as_json:
        print_json(run.as_dict())
    else:
        out.print(timing_table(run))
    if any(t.status != "ok" for t in run.timings):
        raise typer.Exit(1)


@app.command("runs")
def runs_command(workspace: WorkspaceOption = Path("."), as_json: JsonOption = False) -> None:
    """List the timing runs of the workspace."""
    from rich.table import Table

    from cpbench.workspace.store import Workspace

    ws = Workspace(workspace).require_existing()
    runs = []
    if ws.store_path.exists():
        with ws.open_store() as store:
            runs = store.runs()
    if as_json:
        print_json([r.as_dict() for r in runs])
        return
    table = Table("run", "device", "batch", "status", "started", "ok", "failed", title=f"Timing runs in {ws.root}")
    for r in runs:
        table.add_row(r.id, r.device, str(r.batch), r.status, r.started_at, str(r.ok), str(r.failed))
    out.print(table)


@app.command("compare")
def compare_command(
    run_a: Annotated[str, typer.Argument(help="Baseline run id (see 'cpbench runs').")],
    run_b: Annotated[str, typer.Argument(help="Run to compare with it.")],
    workspace: WorkspaceOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Per-model ratio of medians (B / A) with a Mann-Whitney U test, and their geometric mean."""
    from cpbench.timing.compare import compare_runs
    from cpbench.cli.views.common import compare_table
    from cpbench.workspace.store import Workspace

    if run_a == run_b:
        raise UsageError(f"both runs are {run_a}: compare two different runs (see 'cpbench runs')")
    ws = Workspace(workspace)
    if not ws.store_path.exists():
        raise UsageError(f"no store in {ws.root}; run 'cpbench time --device cpu' first")
    with ws.open_store() as store:
        runs = []
        for run_id in (run_a, run_b):
            run = store.get_run(run_id)
            if run is None:
                known = ", ".join(r.id for r in store.runs()[-5:]) or "none"
                raise UsageError(f"no run '{run_id}' in {ws.root} (latest: {known}); see 'cpbench runs'")
            runs.append(run)
    comparison = compare_runs(*runs)
    if as_json:
        print_json(comparison.as_dict())
    else:
        out.print(compare_table(comparison))


@app.command("models")
def models_command(
    pattern: Annotated[Optional[str], typer.Argument(help="Glob over model names, e.g. 'family/*'.")] = None,
    workspace: WorkspaceOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """List the exported models of the workspace: config, params, accuracy, file."""
    from cpbench.cli.views.common import models_table
    from cpbench.workspace.store import Workspace

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


@app.command("presets")
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


@app.command("data")
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


# commands that live in their own modules
from cpbench.cli import calibrate as cli_calibrate, fit as cli_fit, recommend as cli_recommend, report as cli_report, results as cli_results, study as cli_study  # noqa: E402 - after `app` exists

app.command("calibrate")(cli_calibrate.calibrate_command)
app.command("fit")(cli_fit.fit_command)
app.command("predict")(cli_fit.predict_command)
app.add_typer(cli_fit.profiles_app, name="profiles")
app.command("fit-precision")(cli_recommend.fit_precision_command)
app.command("recommend")(cli_recommend.recommend_command)
app.command("report")(cli_report.report_command)
app.add_typer(cli_study.study_app, name="study")
app.add_typer(cli_results.results_app, name="results")
app.command("hardware")(cli_results.hardware_command)


@app.callback(invoke_without_command=True)
def root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        out.print(f"cpbench {__version__}")
        raise typer.Exit(0)


def _keep_stdout_for_json() -> None:
    """Under --json, stdout carries only the JSON: anything a library writes to file descriptor 1
    (ONNX Runtime's C++ banner, a worker process's print) goes to stderr instead."""
    if "--json" not in sys.argv[1:]:
        return
    try:
        sys.stdout.flush()
        real = os.dup(1)
        os.dup2(2, 1)
        sys.stdout = os.fdopen(real, "w", buffering=1, encoding="utf-8")
    except (OSError, ValueError):  # no real file descriptors (an embedding host): leave stdout as it is
        pass


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback."""
    _keep_stdout_for_json()
    try:
        code = app(standalone_mode=False)
    except CpbenchError as exc:
        err.print(f"error: {exc}", soft_wrap=True, markup=False)
        sys.exit(exc.exit_code)
    except ClickException as exc:
        hint = f"; see '{exc.ctx.command_path} --help'" if getattr(exc, "ctx", None) else ""
        err.print(f"error: {exc.format_message()}{hint}", soft_wrap=True, markup=False)
        sys.exit(2)
    except (KeyboardInterrupt, typer.Abort):
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # a bug or an input nothing checked: one line, the traceback only on request
        if os.environ.get("CPBENCH_DEBUG"):
            raise
        err.print(f"error: internal error ({first_line(exc)}); rerun with CPBENCH_DEBUG=1 for the traceback and report it",
                  soft_wrap=True, markup=False)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
