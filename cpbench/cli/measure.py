"""`cpbench flops`, `time`, `runs` and `compare`: count and time models, list and compare runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from cpbench.cli.options import DeviceOption, JsonOption, WorkspaceOption, err, out, print_json
from cpbench.errors import UsageError, check_choice

if TYPE_CHECKING:
    pass


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
    if not count.complete:
        listed = ", ".join(f"{op} x{n}" for op, n in count.uncounted.items())
        err.print(f"warning: {sum(count.uncounted.values())} nodes were not counted ({listed}), nor the subgraphs of "
                  "control flow: the MACs and FLOPs are a lower bound")
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
    from cpbench.workspace.folder import Workspace

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
    from cpbench.workspace.folder import Workspace

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
        level = run.reference()
        if level.n:
            out.print(f"reference kernel timed {level.n} times around the models: {level.quiet_s * 1e6:.1f} µs, spread "
                      f"{level.spread:.1%} ({'steady' if level.spread <= 0.01 else 'noisy: compare runs with care'})")
    if any(t.status != "ok" for t in run.timings):
        raise typer.Exit(1)


def runs_command(workspace: WorkspaceOption = Path("."), as_json: JsonOption = False) -> None:
    """List the timing runs of the workspace."""
    from rich.table import Table

    from cpbench.workspace.folder import Workspace

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


def compare_command(
    run_a: Annotated[str, typer.Argument(help="Baseline run id (see 'cpbench runs').")],
    run_b: Annotated[str, typer.Argument(help="Run to compare with it.")],
    workspace: WorkspaceOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Per-model ratio of medians (B / A) with Welch's t-test on the log per-round medians, and their geometric mean."""
    from cpbench.timing.compare import compare_runs
    from cpbench.cli.views.common import compare_table
    from cpbench.workspace.folder import Workspace

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
