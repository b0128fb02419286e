"""`cpbench results export/import` and `cpbench hardware`: results that travel between machines,
and every machine's fits side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cpbench.cli.options import JsonOption, WorkspaceOption, out, print_json

results_app = typer.Typer(help="Move results between workspaces: a versioned bundle of runs, fits and precision studies.",
                          no_args_is_help=True)


@results_app.command("export")
def export_command(
    file: Annotated[Path, typer.Argument(help="Bundle to write (JSON); a new file unless --force.")],
    force: Annotated[bool, typer.Option("--force", help="Replace FILE if it exists (never the workspace's store or models).")] = False,
    workspace: WorkspaceOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Write every run (fingerprints, measurements, per-round summaries), the models they timed and the saved fits to FILE."""
    from cpbench.timing.environment import machine_summary
    from cpbench.workspace.bundle import check_bundle_target, export_bundle, write_bundle
    from cpbench.workspace.folder import Workspace

    ws = Workspace(workspace)
    check_bundle_target(ws, file, force)
    bundle = export_bundle(ws, machine_summary())
    write_bundle(file, bundle)
    counts = {"runs": len(bundle["runs"]), "models": len(bundle["models"]), "files": len(bundle["files"])}
    if as_json:
        print_json({"file": str(file), **counts})
        return
    out.print(f"wrote {file}: {counts['runs']} runs, {counts['models']} models, {counts['files']} fit files")


@results_app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="Bundle written by 'cpbench results export'.")],
    workspace: WorkspaceOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Merge a bundle: what is already here is skipped; a clash of ids with other content imports nothing."""
    from cpbench.fitting.device_fit import FIT_FORMAT
    from cpbench.fitting.precision_predictor import PRECISION_FORMAT
    from cpbench.fitting.predictors import MODEL_FORMAT
    from cpbench.timing.calibration_record import CALIBRATION_FORMAT
    from cpbench.workspace.bundle import import_bundle, read_bundle
    from cpbench.workspace.folder import Workspace

    bundle = read_bundle(file)
    ws = Workspace(workspace)
    ws.ensure_writable()
    kinds = {"fits/*.calibration.json.gz": CALIBRATION_FORMAT, "fits/*.model.json.gz": MODEL_FORMAT,
             "fits/*.json": FIT_FORMAT, "precision/*.json": PRECISION_FORMAT}
    summary = import_bundle(ws, bundle, kinds)
    if as_json:
        print_json(summary.as_dict())
        return
    out.print(f"imported {len(summary.runs_added)} runs, {summary.models_added} models, {len(summary.files_added)} files "
              f"from {bundle.get('exported_on', {}).get('cpu', 'another machine')}; already here: {summary.runs_present} runs, "
              f"{summary.models_present} models, {summary.files_present} files")


def hardware_command(
    target: Annotated[Optional[float], typer.Option("--target", help="Also show each machine's pick for this precision.")] = 0.93,
    workspace: WorkspaceOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """One row per (machine, profile): eq. (1)'s α0 and α1, the errors, the verdict, the baseline's latency and the pick."""
    from rich.table import Table

    from cpbench import units
    from cpbench.errors import UsageError
    from cpbench.fitting.precision_predictor import load_precision
    from cpbench.report.hardware import hardware_rows
    from cpbench.timing.environment import fingerprint
    from cpbench.workspace.folder import Workspace

    ws = Workspace(workspace)
    try:
        precision = load_precision(ws.models_dir / "precision", "fashionmnist", None)
    except UsageError:
        precision = None
    rows = hardware_rows(ws, fingerprint()["hardware_id"], precision, target)
    if as_json:
        print_json([r.as_dict() for r in rows])
        return
    table = Table("machine", "profile", "source", "α1 (s/MAC) [95 %]", "α0 [95 %]", "affine MAPE", "best (error)",
                  "eq. (1)?", "baseline", f"pick for {target}", title="Fits by machine and profile")
    for r in rows:
        here = " [green](this machine)[/]" if r.measured_here else ""
        a1 = f"{r.alpha1:.3g} [{r.alpha1_ci[0]:.3g}, {r.alpha1_ci[1]:.3g}]" if r.alpha1 is not None else "-"
        a0 = f"{units.seconds(r.alpha0)} [{units.seconds(r.alpha0_ci[0])}, {units.seconds(r.alpha0_ci[1])}]" if r.alpha0 is not None else "-"
        table.add_row(f"{r.cpu} ({r.hardware_id}){here}", r.profile, r.source, a1, a0,
                      "-" if r.affine_mape is None else f"{r.affine_mape:.1%}",
                      f"{r.best} {r.best_mape:.1%} ({r.best_error_kind})" if r.best_mape is not None else (r.best or "-"),
                      "-" if r.proportional is None else ("yes" if r.proportional else "no"),
                      "-" if r.baseline_s is None else units.seconds(r.baseline_s),
                      "-" if r.pick is None else f"{r.pick} ({r.pick_speedup:.2f}× predicted)")
    out.print(table)
