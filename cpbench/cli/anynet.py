"""`cpbench calibrate --kernels any` and `cpbench predict --model net.onnx`: the any-network latency
model of this machine, calibrated and saved, then loaded to predict ONNX networks it never saw."""

from __future__ import annotations

import glob
from pathlib import Path

import typer

from cpbench.cli.options import err, out, print_json
from cpbench.errors import UsageError


def calibrate_any_command(device: str, rounds: int | None, networks: int | None, scale: float, seed: int | None,
                          refit: bool, workspace: Path, as_json: bool) -> None:
    """Time the sampled kernels, fusion candidates and synthetic networks, fit and save the model."""
    from cpbench.anynet.calibration import (
        AnyDesign, calibrate_any, calibration_file, load_any_calibration, save_any_calibration,
    )
    from cpbench.anynet.model import fit_any_model, model_file, save_any_model
    from cpbench.cli.views.common import LazyProgress
    from cpbench.timing.environment import fingerprint
    from cpbench.timing.profiles import load_profile
    from cpbench.workspace.folder import Workspace

    from cpbench.cli.calibrate import journal_seed

    if not 0.05 <= scale <= 10:
        raise UsageError(f"--scale is {scale}; it must lie in [0.05, 10]")
    if rounds is not None and not 1 <= rounds <= 10:
        raise UsageError(f"--rounds is {rounds}; it must lie in [1, 10]")
    if networks is not None and not 5 <= networks <= 500:
        raise UsageError(f"--networks is {networks}; with --kernels any it must lie in [5, 500]")
    ws = Workspace(workspace)
    profile = load_profile(device, ws.profiles_dir)
    hardware = fingerprint()
    here = hardware["hardware_id"]
    path = calibration_file(ws.models_dir, profile.name, here)
    journal = path.with_name(path.name.replace(".calibration.json", ".journal.jsonl"))
    ws.ensure_writable()
    with ws.exclusive("calibrate", "wait for it to finish, or calibrate in another workspace"):
        if refit:
            if not path.is_file():
                raise UsageError(f"no any-network calibration of '{profile.name}' on this machine ({path}); "
                                 f"run 'cpbench calibrate --device {profile.name} --kernels any'")
        else:
            if seed is None:
                seed = journal_seed(journal)
            design = AnyDesign(seed=seed, rounds=rounds or 2, networks=networks or 60, scale=scale)
            with LazyProgress(err) as lazy:
                task = None

                def observer(done: int, total: int) -> None:
                    nonlocal task
                    lazy.start()
                    if task is None:
                        task = lazy.progress.add_task(f"calibrating '{profile.name}' for any network", total=total)
                    lazy.progress.update(task, completed=done, total=total)

                try:
                    calibration = calibrate_any(profile, design, hardware, journal, observer)
                except KeyboardInterrupt:
                    err.print(f"interrupted: the measurements so far are kept in {journal}; rerun the same command to resume")
                    raise typer.Exit(130) from None
            save_any_calibration(path, calibration)
            journal.unlink(missing_ok=True)
        calibration = load_any_calibration(path)
        model = fit_any_model(calibration)
        saved = save_any_model(model_file(ws.models_dir, profile.name, here), model)
    held = model.held_out
    summary = {"device": profile.name, "hardware_id": here, "cpu": calibration.cpu, "duration_s": calibration.duration_s,
               "seed": calibration.design["seed"], "kernels": len(calibration.kernels),
               "networks": len(calibration.networks), "rounds": calibration.design["rounds"],
               "fusion_rules": [f"{r.producer}>{r.follower}" for r in model.rules if r.fuses],
               "composition": model.composition, "held_out": held, "reference": calibration.reference,
               "file": str(path), "model_file": str(saved)}
    if as_json:
        print_json(summary)
        return
    out.print(f"calibrated '{profile.name}' for any network on {calibration.cpu} (hardware id {here}) in "
              f"{calibration.duration_s:.0f} s: {len(calibration.kernels)} kernels, {len(calibration.networks)} synthetic "
              f"networks, {calibration.design['rounds']} rounds, seed {calibration.design['seed']}")
    out.print(f"fusions found: {', '.join(summary['fusion_rules']) or 'none'}")
    out.print("kernel regressors, 5-fold MAPE on their own kernels: " +
              ", ".join(f"{k} {v:.1%}" for k, v in held["kernels_kfold_mape"].items()))
    out.print(f"on synthetic networks the composition was not fitted on: MAPE {held['mape']:.1%}, within ±10 % "
              f"{held['within_10']:.0%}, 95 % interval held {held['interval_coverage']:.0%} "
              f"(composition: {model.composition['form']})")
    out.print(f"saved {path} and {saved}; 'cpbench predict --device {profile.name} --model NET.onnx' uses it here")


def network_files(model: str | None, models: str | None, workspace: Path) -> list[Path]:
    """The ONNX files named by --model (a path) or --models (a glob, relative to the workspace's models/
    folder or to the current one)."""
    if model:
        path = Path(model)
        if not path.is_file():
            raise UsageError(f"--model {model}: no such ONNX file; give the path of a .onnx network")
        return [path]
    found = sorted(glob.glob(str(workspace / "models" / models))) or sorted(glob.glob(models))
    files = [Path(p) for p in found if p.endswith(".onnx")]
    if not files:
        raise UsageError(f"--models {models!r} matches no .onnx file (under {workspace / 'models'} or here)")
    return files


def predict_networks_command(device: str, files: list[Path], by_kernel: bool, workspace: Path, as_json: bool) -> None:
    """Predicted latency of ONNX networks from this machine's any-network model."""
    from rich.table import Table

    from cpbench import units
    from cpbench.anynet.model import load_any_model, model_file
    from cpbench.timing.environment import fingerprint
    from cpbench.timing.profiles import load_profile
    from cpbench.workspace.folder import Workspace

    ws = Workspace(workspace)
    profile = load_profile(device, ws.profiles_dir)
    here = fingerprint()["hardware_id"]
    path = model_file(ws.models_dir, profile.name, here)
    if not path.is_file():
        others = sorted(path.parent.glob(f"{profile.name}-*.anynet.model.pkl.gz"))
        if not others:
            raise UsageError(f"no any-network model of '{profile.name}' here; run "
                             f"'cpbench calibrate --device {profile.name} --kernels any' first")
        path = others[0]
    model = load_any_model(path)
    warning = None if model.hardware_id == here else (
        f"the model was calibrated on another machine ({model.cpu}, hardware id {model.hardware_id}); its figures "
        f"are that machine's, not this one's: calibrate here with 'cpbench calibrate --device {profile.name} --kernels any'")
    rows = []
    for file in files:
        p = model.predict_file(file)
        rows.append({"model": str(file), "macs": p.macs, "predicted_s": p.seconds, "low_s": p.low_s, "high_s": p.high_s,
                     "kernels_alone_s": sum(k["predicted_s"] for k in p.kernels), "by_kernel_type": p.by_kernel_type(),
                     "uncovered": p.uncovered,
                     **({"kernels": p.kernels} if by_kernel else {})})
    held = model.held_out
    if as_json:
        print_json({"device": profile.name, "answered_by": "any-network kernel model", "statistic": model.statistic,
                    "composition": model.composition["form"], "predictions": rows,
                    "interval_coverage": held.get("interval_coverage"),
                    "interval_coverage_on": f"{held.get('networks')} synthetic networks held out of the composition",
                    "measured_on": model.cpu, "hardware_id": model.hardware_id, "warning": warning})
        return
    table = Table(title=f"Predicted latency on '{profile.name}' (any-network kernel model, batch 1)")
    for column in ("network", "MACs", "predicted", "95 % interval", "uncovered ops"):
        table.add_column(column, justify="left" if column in ("network", "uncovered ops") else "right")
    for r in rows:
        missing = ", ".join(f"{u['op_type']} ×{u['nodes']} ({u['mac_share']:.1%} of MACs)" for u in r["uncovered"])
        table.add_row(Path(r["model"]).name, units.macs(r["macs"]), units.seconds(r["predicted_s"]),
                      f"{units.seconds(r['low_s'])} – {units.seconds(r['high_s'])}", missing or "-")
    table.caption = (f"predictions, not measurements; the 95 % interval held {held.get('interval_coverage', 0):.0%} of "
                     f"{held.get('networks')} held-out synthetic networks")
    out.print(table)
    if by_kernel:
        for r in rows:
            kernels = Table(title=f"{Path(r['model']).name}: kernels, each as predicted alone (they sum to "
                                  f"{units.seconds(r['kernels_alone_s'])}; the network composes them "
                                  f"({model.composition['form']}) to {units.seconds(r['predicted_s'])})", show_lines=False)
            for column in ("kernel", "type", "MACs", "predicted"):
                kernels.add_column(column, justify="right" if column in ("MACs", "predicted") else "left")
            for k in r["kernels"]:
                kernels.add_row(k["kernel"], k["type"], units.macs(k["macs"]), units.seconds(k["predicted_s"]))
            out.print(kernels)
    if warning:
        err.print(f"warning: {warning}", soft_wrap=True, markup=False)
