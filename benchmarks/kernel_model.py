"""The kernel-level latency model on configs it never saw, timed in two separate runs.

    python benchmarks/kernel_model.py --device cpu-1thread [--seed SEED] [--workspace WS] [--configs 20]
        [--interfere [--processes N] [--interfered-only]] [--record] [--reuse | --shipped]
        [--pairs | --whole | --blocks] [--budget 10m]

1. `cpbench calibrate --device D` (timed: the goal is 10 minutes or less);
2. two test populations, none a calibration network: `--configs` random family configs (seed SEED,
   a fresh random one unless given, printed)
   and as many where recommend's picks live (f >= 16, k >= 3, s >= 16; seed SEED + 1), exported
   untrained and timed in two back-to-back `cpbench time` runs (the profile's rounds, round-min);
3. per population and run: MAPE with a bootstrap 95 % interval, the share within ±10 % with its
   Clopper-Pearson interval (goal: MAPE <= 5 %, >= 95 %), the worst, the 95 % interval's coverage,
   beside the noise floor (the two runs against each other), eq. (1) (alpha1 * MACs + alpha0) and
   FLOPs alone (alpha1 * MACs), both fitted on the same calibration networks;
4. the CPU (vendor, model, extensions), the co-measured reference's stability during calibration
   and test runs, and the calibration's own verdict.
With `--interfere`, everything is done twice, quiet and then under a duty-cycled competing load
(phases of `--on` seconds on and `--off` off) during calibration and test runs, printed side by side.
`--record` writes benchmarks/results/<date>-<hardware id>-kernel_model-<profile>.json.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from _family_set import config_of, cpbench, export, random_configs, recommend_configs, round_min
from _interference import Interference
from _record import record
from cpbench.family.closed_form import FEATURES, Layers
from cpbench.family.config import Config
from cpbench.family.kernels import whole_network
from cpbench.fitting.intervals import error_summary
from cpbench.fitting.kernel_model import fit_kernel_model
from cpbench.fitting.least_squares import relative_least_squares
from cpbench.timing.calibration_record import calibration_path, load_calibration
from cpbench.timing.environment import fingerprint


def affine(train_macs: np.ndarray, train_t: np.ndarray, test_macs: np.ndarray, offset: bool) -> np.ndarray:
    """Eq. (1) (offset, relative least squares) or FLOPs alone (t = a * MACs, the a that minimises the
    relative errors on the calibration networks: one weighted pass, since reweighting by the fitted
    value diverges for a law through the origin)."""
    if not offset:
        ratio = train_macs / train_t
        return float(ratio.sum() / (ratio ** 2).sum()) * test_macs
    coef = relative_least_squares(np.column_stack([np.ones_like(train_macs), train_macs]), train_t)[0]
    return coef[0] + coef[1] * test_macs


def scores(predicted: np.ndarray, measured: np.ndarray) -> dict:
    return error_summary(np.abs(predicted / measured - 1))


def show(s: dict) -> str:
    lo, hi = s["mape_ci"]
    wlo, whi = s["within_10_ci"]
    return (f"MAPE {s['mape']:6.1%} [{lo:.1%}, {hi:.1%}]  within ±10 % {s['within_10']:4.0%} [{wlo:.0%}, {whi:.0%}]  "
            f"max {s['max_ape']:6.1%}")


def time_twice(device: str, workspace: Path) -> tuple[list[Config], np.ndarray, np.ndarray, list[float]]:
    """Two back-to-back `cpbench time` runs of the workspace's family: configs, round-min of each
    run, and every reference timing the workers made around the models."""
    runs = [cpbench("time", "--device", device, "--models", "family/*", "-w", str(workspace)) for _ in range(2)]
    ok = [{m["model"]: m for m in run["models"] if m["status"] == "ok"} for run in runs]
    names = sorted(set(ok[0]) & set(ok[1]))
    refs = [v for run in ok for m in run.values() for r in m["rounds"] for v in (r.get("reference") or []) if v]
    return ([config_of(n) for n in names], np.array([round_min(ok[0][n]) for n in names]),
            np.array([round_min(ok[1][n]) for n in names]), refs)


def condition(args, ws: Path, label: str) -> dict:
    """Calibrate (or reuse), time both populations twice, and score the model: one column of the table."""
    hardware = fingerprint()["hardware_id"]
    path = calibration_path(ws / "models", args.device, hardware)
    wall = None
    if args.shipped:
        from cpbench.fitting.predictors import REFERENCE_FITS

        shipped = REFERENCE_FITS / path.name
        if not shipped.exists():
            print(f"error: no shipped calibration of '{args.device}' for this machine ({hardware}); calibrate it: drop --shipped", file=sys.stderr)
            raise SystemExit(2)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shipped, path)
    elif not (args.reuse and path.exists()):
        started = time.perf_counter()
        units = [f"--{name}" for name in ("pairs", "whole", "blocks") if getattr(args, name)]
        cpbench("calibrate", "--device", args.device, "-w", str(ws), "--budget", args.budget, *units)
        wall = time.perf_counter() - started
    calibration = load_calibration(path)
    model = fit_kernel_model(calibration)  # what calibrate saved: the same fit of the same file
    cal_configs = [Config.parse(c) for c in calibration.networks]
    cal_t = np.array([np.median(v["mins"]) for v in calibration.networks.values()])
    macs = lambda cs: FEATURES["macs"](Layers.of(cs))  # noqa: E731
    result = {"label": label, "calibration_wall_s": wall, "calibration_s": calibration.duration_s,
              "reference": {k: v for k, v in (calibration.reference or {}).items() if k != "times"},
              "plan": calibration.plan, "composition": model.composition, "form": model.form,
              "choice_kfold": model.choice_kfold, "kfold": model.kfold.as_dict(), "raw_sum": model.raw_sum.as_dict(),
              "verdict": model.verdict().as_dict(), "populations": {}}
    draws = {"random": random_configs(args.configs, args.seed), "recommend": recommend_configs(args.configs, args.seed + 1)}
    for name, configs in draws.items():
        test_ws = ws / f"test-{args.device}-{name}-{args.seed}"  # a fresh test set never shares a store with another
        export(configs, test_ws)
        tested, a, b, refs = time_twice(args.device, test_ws)
        predicted = model.predict_configs(tested)
        low, high = model.bounds(predicted)
        pair = np.abs(b / a - 1)
        ref = np.asarray(refs)
        population = {
            "configs": [c.as_csv() for c in tested], "measured_a_s": a.tolist(), "measured_b_s": b.tolist(),
            "predicted_s": predicted.tolist(), "kernel_a": scores(predicted, a), "kernel_b": scores(predicted, b),
            "interval_held": float(np.mean([(m >= low) & (m <= high) for m in (a, b)])),
            "noise_floor": {"median": float(np.median(pair)), "max": float(pair.max())},
            "eq1": scores(affine(macs(cal_configs), cal_t, macs(tested), True), a),
            "flops_only": scores(affine(macs(cal_configs), cal_t, macs(tested), False), a),
            "test_reference": {"n": len(ref), "spread": float(1.4826 * np.median(np.abs(ref / np.median(ref) - 1)))
                               if len(ref) else None},
        }
        if model.composition == "networks":  # a test config may be a table cell, timed under the kernel protocol
            population["table_cells"] = int(sum(whole_network(c.f, c.s, c.k, c.l, calibration.in_channels).id
                                                in calibration.kernels for c in tested))
        result["populations"][name] = population
    return result


def report(device: str, columns: list[dict]) -> None:
    machine = fingerprint()
    features = machine.get("cpu_features", {})
    print(f"'{device}' on {machine['hardware']['cpu']} ({features.get('vendor')}, {' '.join(features.get('isa', []))}; "
          f"hardware id {machine['hardware_id']}), statistic round-min")
    for c in columns:
        r, p = c["reference"], c["plan"]
        wall = f"{c['calibration_wall_s']:.0f} s end to end" if c["calibration_wall_s"] else "reused"
        print(f"\n[{c['label']}] calibration {c['calibration_s']:.0f} s ({wall}; goal 600 s); composition {c['composition']} "
              f"{c['form']}; k-fold on its networks: MAPE {c['kfold']['mape']:.1%} (plain sum {c['raw_sum']['mape']:.1%})")
        if r:
            print(f"  reference during calibration: spread {r['spread']:.1%}, {r['off_share']:.1%} of items off, "
                  f"{r['remeasured']} re-measured; extra rounds {p.get('extra_rounds')}, still noisy {p.get('noisy_share', 0):.1%}")
        v = c["verdict"]
        print(f"  verdict: {'good' if v['good'] else 'POOR'} ({v['advice']})")
        for name, pop in c["populations"].items():
            print(f"  {name:9s} run A  {show(pop['kernel_a'])}")
            print(f"  {'':9s} run B  {show(pop['kernel_b'])}   interval held {pop['interval_held']:.0%}")
            print(f"  {'':9s} noise floor |B/A - 1|: median {pop['noise_floor']['median']:.1%}, max "
                  f"{pop['noise_floor']['max']:.1%}; test reference spread "
                  + (f"{pop['test_reference']['spread']:.1%}" if pop['test_reference']['spread'] is not None else "-"))
            print(f"  {'':9s} eq. (1) {show(pop['eq1'])}")
            print(f"  {'':9s} FLOPs   {show(pop['flops_only'])}")
            if "table_cells" in pop:
                print(f"  {'':9s} ({pop['table_cells']} of {len(pop['configs'])} are cells of the sampled tables)")
            errs = np.array(pop["predicted_s"]) / np.array(pop["measured_a_s"]) - 1
            for i in np.argsort(-np.abs(errs))[:3]:
                print(f"  {'':9s} worst {pop['configs'][i]:>10s} measured {pop['measured_a_s'][i] * 1e6:7.1f} / "
                      f"{pop['measured_b_s'][i] * 1e6:7.1f} µs, predicted {pop['predicted_s'][i] * 1e6:7.1f} µs ({errs[i]:+.1%})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu-1thread")
    parser.add_argument("--workspace", type=Path, default=Path("bench-kernel"))
    parser.add_argument("--configs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=None,
                        help="test configs' seed (default: a fresh random one, printed): a test set that judged one change is spent")
    parser.add_argument("--budget", default="10m", help="calibrate's --budget")
    parser.add_argument("--reuse", action="store_true", help="use the workspace's calibration if there is one")
    units = parser.add_mutually_exclusive_group()
    units.add_argument("--pairs", action="store_true", help="calibrate with --pairs")
    units.add_argument("--whole", action="store_true", help="calibrate with --whole (whole networks instead of blocks)")
    units.add_argument("--blocks", action="store_true", help="calibrate with --blocks (blocks, where the profile's default is --whole)")
    parser.add_argument("--shipped", action="store_true",
                        help="use the shipped reference calibration (only on the machine it was measured on: its hardware id must match)")
    parser.add_argument("--interfere", action="store_true", help="also calibrate and test under a competing load, side by side")
    parser.add_argument("--on", type=float, default=60.0, help="seconds of each loaded phase")
    parser.add_argument("--off", type=float, default=60.0, help="seconds of each quiet phase")
    parser.add_argument("--processes", type=int, default=1, help="competing processes in a loaded phase")
    parser.add_argument("--interfered-only", action="store_true", help="with --interfere, skip the quiet condition")
    parser.add_argument("--record", action="store_true", help="write a dated record to benchmarks/results/")
    args = parser.parse_args()
    if args.seed is None:
        import secrets

        args.seed = 10_000 + secrets.randbelow(1_000_000)
    print(f"test seeds: {args.seed} (random), {args.seed + 1} (recommend's population)")
    columns = [] if args.interfere and args.interfered_only else [condition(args, args.workspace / "quiet", "quiet")]
    if args.interfere:
        with Interference(args.on, args.off, args.processes):
            columns.append(condition(args, args.workspace / "interfered",
                                     f"interfered: {args.processes} process(es), {args.on:.0f} s on / {args.off:.0f} s off"))
    report(args.device, columns)
    if args.record:
        name = f"{args.device}-interfered{args.processes}" if args.interfered_only else args.device
        print(f"\nrecorded {record('kernel_model', name, {'seed': args.seed, 'conditions': columns}, fingerprint())}")


if __name__ == "__main__":
    main()
