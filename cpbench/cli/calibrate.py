"""`cpbench calibrate`: kernel-level calibration of this machine for a device profile."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cpbench.errors import UsageError
from cpbench.cli.options import DeviceOption, JsonOption, WorkspaceOption, err, out, print_json


def journal_seed(journal: Path) -> int:
    """The seed of the unfinished calibration in `journal`, so that the same command resumes it; a
    new random one where there is none."""
    import json
    import secrets

    try:
        with open(journal, encoding="utf-8") as handle:
            return int(json.loads(handle.readline())["design"]["seed"])
    except (OSError, ValueError, KeyError, TypeError):
        return secrets.randbelow(1_000_000)


def parse_duration(text: str, option: str) -> float:
    """Seconds in '90', '90s', '10m' or '1h'; a clear error otherwise."""
    import re

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text or "")
    if not match:
        raise UsageError(f"{option} is {text!r}; give a duration such as 600, 600s, 10m or 1h")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def calibrate_command(
    device: DeviceOption,
    dataset: Annotated[str, typer.Option("--dataset", help="Whose search space to calibrate (its baseline bounds f, s, k, l).")] = "fashionmnist",
    rounds: Annotated[Optional[int], typer.Option("--rounds", help="Rounds over every kernel and network, each in a new order and new processes. Default: 3 (2 for runtimes that compile each model).")] = None,
    runs: Annotated[Optional[int], typer.Option("--runs", help="Timed runs per kernel per round (the fixed count of round-min). Default: 50 (200, after 100 warm-up runs, for runtimes that compile each model).")] = None,
    networks: Annotated[Optional[int], typer.Option("--networks", help="Whole networks timed to learn how kernels compose. Default: 40 (30 for runtimes that compile each model).")] = None,
    share: Annotated[Optional[float], typer.Option("--share", help="Share of the (f, s) cells beyond the sampled rows and columns to time; the rest is completed. Default: 1 under ONNX Runtime, 0.1 under OpenVINO (0.5, 0.05 with --pairs or --whole).")] = None,
    pairs: Annotated[bool, typer.Option("--pairs/--no-pairs", help="Also time consecutive blocks as pairs, and use their composition where its k-fold error is lower. Off by default: it doubles the kernels (docs/decisions/0005-pairs-opt-in.md).")] = False,
    whole: Annotated[Optional[bool], typer.Option("--whole/--blocks", help="Time sampled whole networks instead of blocks, completed as one matrix. Default: --whole under OpenVINO, --blocks under ONNX Runtime (docs/decisions/0006-openvino-whole-networks.md).")] = None,
    budget: Annotated[str, typer.Option("--budget", help="Time to spend, e.g. 10m, 600s, 1h: the optional kernels are planned to it and what is left adds rounds where rounds disagree; 0 times the whole design once. Default: 10m.")] = "10m",
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed of the sampled cells and the timing order; recorded in the calibration. Default: a random one (an unfinished calibration resumes with its own).")] = None,
    refit: Annotated[bool, typer.Option("--refit", help="Measure nothing: fit this machine's saved calibration of the profile again and save its model.")] = False,
    kernels: Annotated[str, typer.Option("--kernels", help="family: the family's kernels, for predict --config and recommend; any: sampled kernels of every type, for predict --model NET.onnx. Default: family.")] = "family",
    scale: Annotated[float, typer.Option("--scale", help="With --kernels any: multiplies the sampled kernels of every type (1 samples 1,300). Default: 1.")] = 1.0,
    workspace: WorkspaceOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Time kernels and a few networks alone on this machine, learn the latency model and save it in
    models/fits/: the family's kernels by default, or with --kernels any kernels of any CNN."""
    from cpbench.errors import check_choice

    check_choice(kernels, ("family", "any"), "kernel set (--kernels)")
    if kernels == "any":
        from cpbench.cli.anynet import calibrate_any_command

        family_only = [name for name, given in (("--runs", runs is not None), ("--share", share is not None),
                                                ("--pairs", pairs), ("--whole/--blocks", whole is not None)) if given]
        if family_only:
            raise UsageError(f"{', '.join(family_only)} apply to the family's kernels, not to --kernels any; drop them")

        calibrate_any_command(device, rounds, networks, scale, seed, refit, workspace, as_json)
        return
    from cpbench.cli.views.common import LazyProgress
    from cpbench.family.config import SPACES
    from cpbench.fitting.kernel_model import fit_kernel_model
    from cpbench.fitting.predictors import model_path, save_time_model
    from cpbench.timing.calibration import calibrate
    from cpbench.timing.calibration_journal import journal_path
    from cpbench.timing.calibration_record import calibration_path, load_calibration, save_calibration
    from cpbench.timing.calibration_design import default_design
    from cpbench.timing.environment import fingerprint
    from cpbench.timing.profiles import load_profile
    from cpbench.workspace.folder import Workspace

    check_choice(dataset, SPACES, "dataset")
    ws = Workspace(workspace)
    profile = load_profile(device, ws.profiles_dir)
    here = fingerprint()["hardware_id"]
    ws.ensure_writable()
    with ws.exclusive("calibrate", "wait for it to finish, or calibrate in another workspace"):
        resumed = False
        if refit:
            path = calibration_path(ws.models_dir, profile.name, here)
            if not path.is_file():
                raise UsageError(f"no saved calibration of '{profile.name}' on this machine ({path}) to refit; "
                                 f"run 'cpbench calibrate --device {profile.name}'")
            calibration = load_calibration(path)
            design_rounds, design_runs = calibration.design.get("rounds"), calibration.design.get("runs")
        else:
            journal = journal_path(ws.models_dir, profile.name, here)
            if seed is None:
                seed = journal_seed(journal)
            design = default_design(profile.runtime, rounds=rounds, runs=runs, networks=networks, share=share, pairs=pairs,
                                    whole=whole, budget_s=parse_duration(budget, "--budget"), seed=seed)
            design_rounds, design_runs = design.rounds, design.runs
            resumed = journal.exists()
            with LazyProgress(err) as lazy:
                task, first = None, None

                def observer(done: int, total: int) -> None:
                    nonlocal task, first
                    first = done if first is None else first
                    if task is None and done > first:  # shown once something is measured: an early error stands alone
                        lazy.start()
                        task = lazy.progress.add_task(f"calibrating '{profile.name}'", total=total)
                    if task is not None:
                        lazy.progress.update(task, completed=done, total=total)

                try:
                    calibration = calibrate(profile, SPACES[dataset], design, observer=observer, journal_file=journal)
                except KeyboardInterrupt:
                    kept = (sum('"round"' in line for line in journal.read_text(encoding="utf-8").splitlines())
                            if journal.exists() else 0)
                    err.print(f"interrupted: {kept} measurements are kept in {journal}; rerun the same command to resume"
                              if kept else "interrupted before anything was measured; nothing to resume")
                    raise typer.Exit(130) from None
            path = save_calibration(ws.models_dir, calibration)
            journal.unlink(missing_ok=True)  # only now: every measurement is in the saved calibration
            # the model of an earlier calibration must never answer for this one, even if this fit fails
            model_path(ws.models_dir, profile.name, calibration.hardware_id).unlink(missing_ok=True)
        # fitted from the file as saved (its times rounded to 5 digits); a fit that fails keeps the
        # calibration, which --refit fits again
        model = fit_kernel_model(load_calibration(path))
        saved = save_time_model(model_path(ws.models_dir, profile.name, calibration.hardware_id), model)
    summary = {**model.summary(), "file": str(path), "model_file": str(saved)}
    if as_json:
        print_json(summary)
        return
    k = model.kfold
    if resumed:
        err.print(f"resumed the unfinished calibration of {journal.name}")
    out.print(f"calibrated '{profile.name}' on {summary['cpu']} (hardware id {calibration.hardware_id}) in "
              f"{calibration.duration_s:.0f} s: {len(calibration.kernels)} kernels and {len(calibration.networks)} networks, "
              f"{design_rounds} rounds of {design_runs} runs, statistic round-min, seed {calibration.design.get('seed')}")
    choice = ", ".join(f"{name} {v:.1%}" for name, v in model.choice_kfold.items())
    form = "" if model.form == "free" else f" {model.form}"
    out.print(f"composition: {summary['composition']}{form} (chosen on its k-fold MAPE over the calibration networks: {choice})")
    out.print(f"kernel model on calibration networks it did not see (5-fold, nested: nor chose the composition): MAPE "
              f"{k.mape:.1%}, within ±10 % {k.within_10:.0%}, max {k.max_ape:.1%}; 95 % interval held "
              f"{model.interval_coverage:.0%}; the plain sum of kernels: MAPE {model.raw_sum.mape:.1%}")
    reference = calibration.reference or {}
    if reference.get("n"):
        plan = calibration.plan or {}
        kept = (f"; the budget kept {plan['extra_kept']} of {plan['extra_planned']} optional kernels"
                if "extra_kept" in plan else "")
        worst = sorted((plan.get("noisy_tables") or {}).items(), key=lambda t: -t[1])[:3]
        where = f"; most in {', '.join(f'{name} {n}' for name, n in worst)}" if worst else ""
        out.print(f"machine stability: reference kernel {reference['kernel']} timed {reference['n']} times, spread "
                  f"{reference['spread']:.1%} around {reference['quiet_s'] * 1e6:.1f} µs; {reference['off_share']:.1%} of "
                  f"measurements ran while it was off by more than {reference['tolerance']:.1%}, {reference['remeasured']} "
                  f"re-measured{kept}; {plan.get('extra_rounds', 0)} extra rounds where rounds disagreed, "
                  f"{plan.get('noisy', 0)} items still disagree ({plan.get('noisy_share', 0):.1%}{where})"
                  + (f"; the budget left {plan['short_of_rounds']} items short of {design_rounds} rounds"
                     if plan.get("short_of_rounds") else ""))
    tables = summary["tables"]
    denoised = [name for name, t in tables.items() if t["denoised"]]
    out.print(f"kernel tables: {len(denoised)} of {len(tables)} denoised (the low-rank fit predicted a held-out round "
              f"better than the cells' own other rounds){': ' + ', '.join(denoised) if 0 < len(denoised) < len(tables) else ''}")
    verdict = model.verdict()
    (out if verdict.good else err).print(verdict.line(), soft_wrap=True, markup=False)
    out.print(f"saved {path} (the measurements) and {saved} (the model); 'cpbench predict' and "
              f"'cpbench recommend --device {profile.name}' use it on this machine")
