"""The kernel-level latency model on configs it never saw, timed in a separate run.

    python benchmarks/kernel_model.py --device cpu-1thread [--workspace WS] [--configs 20] [--seed 9100] [--reuse | --shipped] [--pairs | --whole | --blocks]

1. `cpbench calibrate --device D` (timed: the goal is 10 minutes or less);
2. 20 random family configs (none a calibration network) exported untrained into WS/test and
   timed with `cpbench time` (the profile's rounds; statistic round-min, what the fits use);
3. predicted against measured: MAPE, within ±10 % (goal: <= 5 %, >= 95 %), the worst, the 95 %
   interval's coverage, beside eq. (1) (alpha1 * MACs + alpha0, OLS and relative) fitted on the
   same calibration networks, and the run-to-run noise floor of the test timings (rounds).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from _family_set import config_of, cpbench, export, random_configs, round_min
from cpbench.family.closed_form import FEATURES, Layers
from cpbench.family.config import Config
from cpbench.family.kernels import whole_network
from cpbench.fitting.kernel_model import fit_kernel_model, relative_fit
from cpbench.timing.calibration_record import calibration_path, load_calibration
from cpbench.timing.environment import fingerprint


def eq1(train_macs: np.ndarray, train_t: np.ndarray, test_macs: np.ndarray, relative: bool) -> np.ndarray:
    x = np.column_stack([np.ones_like(train_macs), train_macs])
    w = 1 / train_t if relative else np.ones_like(train_t)
    coef, *_ = np.linalg.lstsq(x * w[:, None], train_t * w, rcond=None)
    return coef[0] + coef[1] * test_macs


def errors(predicted: np.ndarray, measured: np.ndarray) -> str:
    ape = np.abs(predicted / measured - 1)
    return f"MAPE {ape.mean():6.1%}  within ±10 % {np.mean(ape <= 0.10):4.0%}  max {ape.max():6.1%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu-1thread")
    parser.add_argument("--workspace", type=Path, default=Path("bench-kernel"))
    parser.add_argument("--configs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=9100)
    parser.add_argument("--reuse", action="store_true", help="use the workspace's calibration if there is one")
    units = parser.add_mutually_exclusive_group()
    units.add_argument("--pairs", action="store_true",
                       help="calibrate with --pairs, and print both compositions' errors (blocks alone and pairs)")
    units.add_argument("--whole", action="store_true", help="calibrate with --whole (whole networks instead of blocks)")
    units.add_argument("--blocks", action="store_true", help="calibrate with --blocks (blocks, where the profile's default is --whole)")
    parser.add_argument("--shipped", action="store_true",
                        help="use the shipped reference calibration (only on the machine it was measured on: its hardware id must match)")
    args = parser.parse_args()
    ws = args.workspace
    hardware = fingerprint()["hardware_id"]
    path = calibration_path(ws / "models", args.device, hardware)
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
        cpbench("calibrate", "--device", args.device, "-w", str(ws), *units)
        print(f"calibration of '{args.device}': {time.perf_counter() - started:.0f} s end to end (goal: 600 s or less)")
    calibration = load_calibration(path)
    predictor = fit_kernel_model(calibration)  # what calibrate saved: the same fit of the same file
    test_ws = ws / f"test-{args.device}"
    configs = random_configs(args.configs, args.seed)
    export(configs, test_ws)
    run = cpbench("time", "--device", args.device, "--models", "family/*", "-w", str(test_ws))
    models = [m for m in run["models"] if m["status"] == "ok"]
    measured = np.array([round_min(m) for m in models])
    tested = [config_of(m["model"]) for m in models]
    predicted = predictor.predict_configs(tested)
    low, high = predictor.bounds(predicted)
    spread = np.median([(max(r["fixed_min_s"] for r in m["rounds"]) - min(r["fixed_min_s"] for r in m["rounds"]))
                        / round_min(m) for m in models])
    cal_configs = [Config.parse(c) for c in calibration.networks]
    cal_t = np.array([np.median(v["mins"]) for v in calibration.networks.values()])
    macs = lambda cs: FEATURES["macs"](Layers.of(cs))  # noqa: E731
    print(f"'{args.device}' on {calibration.fingerprint['hardware']['cpu']}: {len(models)} unseen configs timed in run "
          f"{run['run_id']} ({len(run['models'][0]['rounds'])} rounds), statistic round-min")
    print(f"  kernel model   {errors(predicted, measured)}  95 % interval held {np.mean((measured >= low) & (measured <= high)):.0%}")
    as_timed = fit_kernel_model(calibration, denoise=False).predict_configs(tested)  # the same model, cells as timed
    print(f"  (cells as timed, not denoised: {errors(as_timed, measured)})")
    model = predictor
    print(f"  composition chosen on the calibration networks: {model.composition} (k-fold MAPE "
          + ", ".join(f"{name} {v:.1%}" for name, v in model.choice_kfold.items()) + ")")
    if len(model.table.compositions) > 1:  # every composition of the same calibration; the model chose one on its k-fold
        networks = Layers.of(cal_configs, calibration.in_channels)
        for name in model.table.compositions:
            coef = relative_fit(model.table.terms(networks, name), cal_t)
            shown = model.table.terms(Layers.of(tested, calibration.in_channels), name) @ coef
            print(f"  (composed of {name:8s}: {errors(shown, measured)})")
    if model.composition == "networks":  # a test config may be a cell of the sampled tables: its own network, timed
        timed = np.array([whole_network(c.f, c.s, c.k, c.l, calibration.in_channels).id in calibration.kernels
                          for c in tested])  # under the kernel protocol; judge the ones it is not apart
        if (~timed).any():
            print(f"  (the {(~timed).sum()} whose network the calibration never timed: {errors(predicted[~timed], measured[~timed])}; "
                  f"{timed.sum()} were table cells)")
    print(f"  eq. (1) OLS    {errors(eq1(macs(cal_configs), cal_t, macs(tested), False), measured)}")
    print(f"  eq. (1) rel.   {errors(eq1(macs(cal_configs), cal_t, macs(tested), True), measured)}")
    print(f"  noise floor: the test models' rounds spread by a median {spread:.1%} (max - min over median)")
    worst = np.argsort(-np.abs(predicted / measured - 1))[:3]
    for i in worst:
        print(f"  worst: {tested[i].as_csv():>10s} measured {measured[i] * 1e6:7.1f} µs, predicted {predicted[i] * 1e6:7.1f} µs "
              f"({predicted[i] / measured[i] - 1:+.1%})")


if __name__ == "__main__":
    main()
