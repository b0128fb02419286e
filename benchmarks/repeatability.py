"""Repeatability: two back-to-back `cpbench time` runs over the same models; medians within 3 %
for every model of 100 µs or more.

    python benchmarks/repeatability.py [--device cpu-1thread] [--models 'family/*'] [--workspace .]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys


def time_run(args: argparse.Namespace) -> dict:
    command = [sys.executable, "-m", "cpbench.cli", "time", "--device", args.device, "-w", args.workspace, "--json"]
    if args.models:
        command += ["--models", args.models]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    if done.returncode not in (0, 1):
        sys.exit(f"cpbench time failed with exit code {done.returncode}")
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu-1thread")
    parser.add_argument("--models", default=None)
    parser.add_argument("--workspace", default=".")
    args = parser.parse_args()
    first, second = time_run(args), time_run(args)
    a = {m["model"]: m["stats"]["median_s"] for m in first["models"] if m["status"] == "ok"}
    b = {m["model"]: m["stats"]["median_s"] for m in second["models"] if m["status"] == "ok"}
    rows = [(name, a[name], b[name], b[name] / a[name]) for name in a if name in b]
    judged = [r for r in rows if min(r[1], r[2]) >= 100e-6]
    worst = max(judged, key=lambda r: abs(r[3] - 1), default=None)
    within = sum(1 for r in judged if abs(r[3] - 1) <= 0.03)
    print(f"runs {first['run_id']} and {second['run_id']} on '{args.device}': {len(rows)} models, {len(judged)} of 100 µs or more")
    print(f"within 3 %: {within} of {len(judged)}")
    if worst:
        print(f"worst: {worst[0]}: {worst[1] * 1e6:.1f} µs -> {worst[2] * 1e6:.1f} µs (ratio {worst[3]:.3f})")
    ratios = [r[3] for r in rows]
    print(f"all models: ratio min {min(ratios):.3f}, max {max(ratios):.3f}")


if __name__ == "__main__":
    main()
