"""Time models on configs they never saw: fit on the `timing` preset, predict 50 random configs drawn
with another seed, and print per runtime the held-out MAPE and the share within +-10 % of the
linear model (paper 000 eq. 1) and of the best model (goal: MAPE <= 5 %, >= 95 % within +-10 %).

    python benchmarks/time_models.py --workspace WS [--devices cpu openvino] [--seed 1] [--statistic min]

WS must hold the timing preset, timed on each device:
    cpbench export --preset timing --untrained -w WS && cpbench time --device cpu -w WS && cpbench time --device openvino -w WS
The held-out configs are exported and timed in WS/holdout-seedN (reused when it is there).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

from cpbench.fitting.metrics import error_metrics
from cpbench.fitting.time_models import MODELS
from cpbench.family.config import FASHION_MNIST, Config
from cpbench.fitting.device_fit import fit_device
from cpbench.family.closed_form import Layers, feature_matrix
from cpbench.fitting.observations import load_observations
from cpbench.family.presets import get_preset
from cpbench.workspace.folder import Workspace

GOAL_MAPE, GOAL_WITHIN_10 = 0.05, 0.95


def cli(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "cpbench.cli", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        sys.exit(f"cpbench {' '.join(args[:2])} failed with exit code {done.returncode}: {done.stderr.strip()[-500:]}")


def held_out_configs(n: int, seed: int) -> list[Config]:
    from cpbench.family.config import random_from_space

    fitted_on = set(get_preset("timing").build(FASHION_MNIST, 0))
    return random_from_space(FASHION_MNIST, n, seed, exclude=fitted_on)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--devices", nargs="+", default=["cpu", "openvino"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--statistic", default="min")
    args = parser.parse_args()
    configs = held_out_configs(args.n, args.seed)
    holdout = Workspace(args.workspace / f"holdout-seed{args.seed}")
    config_args = [a for c in configs for a in ("--config", c.as_csv())]
    cli("export", "--untrained", *config_args, "-w", str(holdout.root))
    print(f"fit on the timing preset in {args.workspace}; judged on {len(configs)} random configs (seed {args.seed}) in {holdout.root}")
    print(f"statistic: {args.statistic}; goal: MAPE <= {GOAL_MAPE:.0%} and >= {GOAL_WITHIN_10:.0%} within +-10 %\n")
    print(f"{'device':10s} {'model':18s} {'MAPE':>7s} {'±10 %':>7s} {'±5 %':>6s} {'max':>6s}   (k-fold MAPE on the fitting set)")
    for device in args.devices:
        with holdout.open_store() as store:
            timed = {r.device for r in store.runs() if r.ok > 0}
        if device not in timed:
            cli("time", "--device", device, "-w", str(holdout.root))
        with Workspace(args.workspace).open_store() as store:
            fit = fit_device(load_observations(store, device, statistic=args.statistic))
        with holdout.open_store() as store:
            points = load_observations(store, device, statistic=args.statistic).family
        layers = Layers.of([p.config for p in points])
        measured = np.array([p.time_s for p in points])
        for name in ("eq1", "linear-rel", fit.best):
            model = fit.evaluations[name].fitted
            m = error_metrics(model.predict(feature_matrix(MODELS[name].features, layers)), measured)
            label = f"{name} (best)" if name == fit.best else name
            print(f"{device:10s} {label:18s} {m.mape:7.1%} {m.within_10:7.0%} {m.within_5:6.0%} {m.max_ape:6.0%}"
                  f"   ({fit.evaluations[name].kfold.mape:.1%})")
        best = error_metrics(fit.evaluations[fit.best].fitted.predict(feature_matrix(MODELS[fit.best].features, layers)), measured)
        print(f"{device:10s} goal ratios: MAPE {best.mape / GOAL_MAPE:.2f} (<= 1 meets), within +-10 % {best.within_10 / GOAL_WITHIN_10:.2f} (>= 1 meets)")
        print(f"{device:10s} verdict: {fit.verdict}\n")


if __name__ == "__main__":
    main()
