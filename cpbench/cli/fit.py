"""`cpbench fit`, `cpbench predict` and `cpbench profiles`: time models per device profile."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cpbench.cli.options import DeviceOption, JsonOption, WorkspaceOption, err, out, print_json
from cpbench.errors import UsageError, calibration_hint

profiles_app = typer.Typer(help="List device profiles and show one with its fitted time models.", no_args_is_help=True)

def fit_command(
    device: DeviceOption,
    model: Annotated[Optional[list[str]], typer.Option("--model", "-m", help="Time model(s) to fit (repeatable); default: all.")] = None,
    batch: Annotated[Optional[int], typer.Option("--batch", help="Fit the runs at this batch size; default: the latest run's.")] = None,
    run: Annotated[Optional[list[str]], typer.Option("--run", help="Fit only these run ids (repeatable); default: every run of the device.")] = None,
    statistic: Annotated[str, typer.Option("--statistic", help="round-min (default: median over rounds of each round's min over a fixed count of runs) | min (the least disturbed run) | p10 | median (typical latency) | mean of each model's run times.")] = "round-min",
    folds: Annotated[int, typer.Option("--folds", help="k of the k-fold held-out evaluation.")] = 5,
    write: Annotated[bool, typer.Option("--write/--no-write", help="Save the fit as the measured machine's (models/fits/<device>-<hardware id>.json); --no-write only shows it. The profile is never written.")] = True,
    machine: Annotated[Optional[str], typer.Option("--machine", help="Fit the runs of this hardware id (imported runs from another machine); default: this machine's.")] = None,
    workspace: WorkspaceOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Fit time models to a device's timings, judge them on held-out configs, give the linearity verdict."""
    from cpbench.fitting.device_fit import fit_device, fit_record_path, save_fit_record
    from cpbench.fitting.observations import load_observations
    from cpbench.timing.profiles import load_profile
    from cpbench.cli.views.fit import fit_summary
    from cpbench.workspace.folder import Workspace

    from cpbench.fitting.time_models import get_model_spec

    if folds < 2:
        raise UsageError(f"--folds must be >= 2, got {folds}")
    if batch is not None and batch < 1:
        raise UsageError(f"--batch must be >= 1, got {batch}")
    for name in model or []:
        get_model_spec(name)
    ws = Workspace(workspace)
    profile = load_profile(device, ws.profiles_dir)
    if not ws.store_path.exists():
        raise UsageError(f"no store in {ws.root}; {calibration_hint(profile.name)}")
    with ws.open_store() as store:
        observations = load_observations(store, profile.name, batch, statistic, run, machine)
    result = fit_device(observations, model, folds)
    configs = len({p.config for p in observations.family})
    if folds > configs:
        result.warnings.append(f"--folds {folds} is more than the {configs} configs timed: each fold holds one config (leave-one-out)")
    measured_on = observations.fingerprint.get("hardware_id") or "unknown"
    others = other_verdicts(ws, profile.name, measured_on)
    written = None
    if write:  # one record per (profile, machine): another machine's fit is never replaced by this one
        ws.ensure_writable()
        if fit_record_path(ws.models_dir, profile.name, measured_on).is_file():
            result.warnings.append(f"replaces the earlier fit of '{profile.name}' on machine {measured_on}")
        written = str(save_fit_record(ws.models_dir, result, observations))
    if as_json:
        print_json({**result.as_dict(), "written": written, "record": written, "other_devices": others})
        return
    out.print(fit_summary(result, written))
    for other in others:
        out.print(f"on '{other['device']}' (batch {other['batch']}): b = {other['exponent']:.2f} "
                  f"[{other['ci_low']:.2f}, {other['ci_high']:.2f}], linear held-out MAPE {other['linear_mape']:.1%}, "
                  f"best {other['best']} {other['best_mape']:.1%}")


def other_verdicts(ws, exclude: str, hardware_id: str) -> list[dict]:
    """The linearity evidence already fitted on the same machine for the workspace's other profiles:
    the verdict may differ by device and batch, and this puts them side by side."""
    from cpbench.fitting.device_fit import load_fit_record
    from cpbench.timing.profiles import loadable_profiles

    rows = []
    for other in loadable_profiles(ws.profiles_dir)[0]:
        if other.name == exclude:
            continue
        try:
            record = load_fit_record(ws.models_dir, other.name, hardware_id) or {}
        except UsageError:
            continue
        name, fitted = other.name, record.get("fitted") or {}
        if not isinstance(fitted, dict):
            continue
        models, law = fitted.get("models", {}), fitted.get("power_law")
        if not isinstance(models, dict) or not isinstance(law, dict) or "linear-rel" not in models or fitted.get("best") not in models:
            continue
        rows.append({
            "device": name, "batch": fitted.get("batch"), "exponent": law["exponent"], "ci_low": law["ci_low"],
            "ci_high": law["ci_high"], "linear_mape": models["linear-rel"]["kfold"]["mape"], "best": fitted["best"],
            "best_mape": models[fitted["best"]]["kfold"]["mape"], "statistic": fitted.get("statistic"),
        })
    return rows


def predict_command(
    device: DeviceOption,
    config: Annotated[Optional[list[str]], typer.Option("--config", "-c", help="f,s,k,l (repeatable), e.g. 32,24,3,2")] = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="An ONNX network (a path ending in .onnx), predicted by the any-network model; else the fitted model for --config (default: the profile's best).")] = None,
    models: Annotated[Optional[str], typer.Option("--models", help="ONNX networks to predict, a glob under the workspace's models/ (e.g. 'zoo/*') or here.")] = None,
    by_kernel: Annotated[bool, typer.Option("--by-kernel", help="With --model/--models: every kernel's predicted time too.")] = False,
    workspace: WorkspaceOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Predicted time per inference on a device, with a 95 % interval from held-out errors: for family
    configs (--config), or for any ONNX CNN (--model NET.onnx, --models GLOB)."""
    if models or (model and model.endswith(".onnx")):
        if config:
            raise UsageError("give --config or an ONNX network (--model NET.onnx / --models), not both")
        from cpbench.cli.anynet import network_files, predict_networks_command

        predict_networks_command(device, network_files(model if not models else None, models, workspace), by_kernel,
                                 workspace, as_json)
        return
    if not config:
        raise UsageError("nothing to predict; give --config f,s,k,l or --model NET.onnx")
    from rich.table import Table

    from cpbench.family.config import Config
    from cpbench.fitting.predictors import named_time_model, time_model
    from cpbench.timing.environment import fingerprint
    from cpbench.family.closed_form import FEATURES, Layers
    from cpbench.timing.profiles import load_profile
    from cpbench import units
    from cpbench.workspace.folder import Workspace

    configs = [Config.parse(c) for c in config]
    ws = Workspace(workspace)
    profile = load_profile(device, ws.profiles_dir)
    here = fingerprint()["hardware_id"]
    if model and model != "kernel":
        chosen_warning, predictor = None, named_time_model(profile, ws.models_dir, here, model)
    else:
        chosen = time_model(profile, ws.models_dir, here)
        chosen_warning, predictor = chosen.warning, chosen.model
        if model == "kernel" and predictor.name != "kernel":
            raise UsageError(f"no kernel calibration for '{profile.name}' here; run 'cpbench calibrate --device {profile.name}'")
    predictor.check_configs(configs)
    layers = Layers.of(configs, predictor.in_channels)
    try:
        seconds = predictor.predict(layers)
    except UsageError:
        for c in configs:  # name the config the model cannot answer for
            try:
                predictor.predict_configs([c])
            except UsageError as exc:
                raise UsageError(f"config {c.as_csv()}: {exc}") from None
        raise
    low, high = predictor.bounds(seconds)
    macs = FEATURES["macs"](layers)
    baseline = predictor.baseline_time_s
    rows = [
        {"config": c.as_csv(), "macs": int(m), "predicted_s": float(t), "low_s": float(lo), "high_s": float(hi),
         "relative_to_baseline": float(t / baseline) if baseline else None}
        for c, m, t, lo, hi in zip(configs, macs, seconds, low, high)
    ]
    mismatch = chosen_warning
    verdict = predictor.verdict() if predictor.kind == "kernel" else None
    held_out = predictor.held_out
    coverage = None if held_out.interval_coverage != held_out.interval_coverage else held_out.interval_coverage
    if as_json:
        print_json({"device": profile.name, "model": predictor.name, "statistic": predictor.statistic,
                    "predictions": rows, "interval_coverage": coverage, "interval_coverage_on": held_out.measured_on,
                    "warning": mismatch, "measured_on": predictor.cpu, "hardware_id": predictor.provenance.hardware_id,
                    "calibration_verdict": verdict.as_dict() if verdict else None})
        return
    table = Table(title=f"Predicted time ({predictor.statistic} of runs) on '{profile.name}' "
                        f"({predictor.name}, batch {predictor.batch})")
    for column in ("config", "MACs", "predicted", "95 % interval", "× baseline"):
        table.add_column(column, justify="left" if column == "config" else "right")
    for r in rows:
        table.add_row(r["config"], units.macs(r["macs"]), units.seconds(r["predicted_s"]),
                      f"{units.seconds(r['low_s'])} – {units.seconds(r['high_s'])}",
                      "-" if r["relative_to_baseline"] is None else f"{r['relative_to_baseline']:.3f}")
    table.caption = ("predictions, not measurements; " + (
        f"the 95 % interval held {coverage:.0%} of held-out points ({held_out.measured_on})" if coverage is not None
        else "interval coverage not measured for this model"))
    out.print(table)
    if verdict is not None:
        (out if verdict.good else err).print(verdict.line() if verdict.good else f"warning: {verdict.line()}",
                                             soft_wrap=True, markup=False)
    if mismatch:
        err.print(f"warning: {mismatch}")


@profiles_app.command("list")
def profiles_list(workspace: WorkspaceOption = Path("."), as_json: JsonOption = False) -> None:
    """Every profile the workspace sees (its own first, then the shipped ones)."""
    from rich.table import Table

    from cpbench.fitting.predictors import locate_time_model
    from cpbench.timing.environment import fingerprint
    from cpbench.timing.profiles import loadable_profiles
    from cpbench.workspace.folder import Workspace

    ws = Workspace(workspace)
    here = fingerprint()["hardware_id"]
    profiles, warnings = loadable_profiles(ws.profiles_dir)
    for warning in warnings:
        err.print(f"warning: {warning}", soft_wrap=True, markup=False)
    rows = []
    for p in profiles:
        found = locate_time_model(p, ws.models_dir, here)
        rows.append({"name": p.name, "runtime": p.runtime, "description": p.description, "path": str(p.path),
                     "time_model": found.kind, "time_model_source": found.label})
    if as_json:
        print_json(rows)
        return
    table = Table("profile", "runtime", "description", "time model here", "file", title="Device profiles")
    for r in rows:
        table.add_row(r["name"], r["runtime"], r["description"], "-" if r["time_model"] == "none" else r["time_model_source"], r["path"])
    out.print(table)


@profiles_app.command("show")
def profiles_show(
    name: Annotated[str, typer.Argument(help="Profile name or .toml path.")],
    workspace: WorkspaceOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """A profile's settings and which time model answers for it here; once `cpbench fit` ran on this
    machine, that fit's models and verdict."""
    from cpbench.cli.views.fit import profile_panel
    from cpbench.fitting.device_fit import load_fit_record
    from cpbench.fitting.predictors import locate_time_model
    from cpbench.timing.environment import fingerprint
    from cpbench.timing.profiles import load_profile
    from cpbench.workspace.folder import Workspace

    ws = Workspace(workspace)
    here = fingerprint()["hardware_id"]
    profile = load_profile(name, ws.profiles_dir)
    found = locate_time_model(profile, ws.models_dir, here)
    record = load_fit_record(ws.models_dir, profile.name, here) if found.kind == "fit" else None
    fitted = (record or {}).get("fitted")
    if fitted is not None:
        from cpbench.fitting.fitted_time_model import from_record

        from_record(record, profile.name, source=str(found.path))  # a damaged fit is named, never half-shown
    if as_json:
        print_json({**profile.as_dict(), "time_model": found.kind, "time_model_source": found.label, "fitted": fitted})
        return
    out.print(profile_panel(profile, fitted, found.label))
