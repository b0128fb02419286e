"""The optimizer's speed: candidate configs evaluated per second (precision model + time model + the
feasibility filter; goal >= 100,000/s) and `cpbench recommend` end to end (goal < 2 s), measured
side by side with the time model a fresh clone uses (the shipped kernel calibration of the profile)
and the reference precision fit.

    python benchmarks/optimizer_speed.py [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cpbench.family.config import Space
from cpbench.fitting.predictors import time_model as locate_and_load
from cpbench.optimize.search import best_under, evaluate_space, integer_space
from cpbench.fitting.precision_predictor import load_precision
from cpbench.timing.profiles import SHIPPED, load_profile

GOAL_PER_S = 100_000
GOAL_COMMAND_S = 2.0


def configs_per_second(space: Space, time_model, precision, repeats: int = 7) -> tuple[int, float]:
    candidates = integer_space(space)
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        evaluated = evaluate_space(candidates, precision.predict, time_model.predict, space.baseline, time_model.in_channels)
        best_under(evaluated, float(evaluated.precision.max()) - 0.01, 5)
        rates.append(len(candidates) / (time.perf_counter() - started))
    return len(candidates), statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as empty:
        time_model = locate_and_load(load_profile(args.device, SHIPPED), Path(empty) / "models", "a-fresh-clone").model
        precision = load_precision(Path(empty), "fashionmnist", None)
        # the kernel model answers inside the space it was calibrated on (a wider one needs its own calibration)
        label, space = "FashionMNIST space (f<=64, s<=28, k<=5, l<=3)", Space("fm", precision.baseline, (), (), (), ())
        n, rate = configs_per_second(space, time_model, precision)
        print(f"{label:48s}: {n:>9,} configs, {rate:>12,.0f} configs/s; goal {GOAL_PER_S:,} -> ratio {rate / GOAL_PER_S:.1f}")
        walls = []
        for _ in range(3):
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "cpbench.cli", "recommend", "--device", args.device, "--target", "0.93",
                                   "-w", empty, "--json"], capture_output=True, text=True)
            walls.append(time.perf_counter() - started)
            if done.returncode != 0:
                sys.exit(f"cpbench recommend failed: {done.stderr.strip()}")
    wall = statistics.median(walls)
    print(f"{'cpbench recommend --target 0.93, end to end':48s}: {wall:.2f} s (median of 3, Python start-up included); "
          f"goal {GOAL_COMMAND_S} s -> ratio {wall / GOAL_COMMAND_S:.2f}")


if __name__ == "__main__":
    main()
