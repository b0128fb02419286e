"""Repeatability: two back-to-back `cpbench time` runs over the same models; medians within 3 %
for every model of 100 µs or more. Also printed: the same for each model's fastest run (the
statistic `cpbench fit` uses by default), and with --rounds N the runs measure in N interleaved rounds.

    python benchmarks/repeatability.py [--device cpu-1thread] [--models 'family/*'] [--workspace .] [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys


def time_run(args: argparse.Namespace) -> dict:
    command = [sys.executable, "-m", "cpbench.cli", "time", "--device", args.device, "-w", args.workspace, "--json",
               "--rounds", str(args.rounds)]
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
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    first, second = time_run(args), time_run(args)
    print(f"runs {first['run_id']} and {second['run_id']} on '{args.device}', {args.rounds} round(s) each")
    for statistic in ("median_s", "min_s"):
        a = {m["model"]: m["stats"][statistic] for m in first["models"] if m["status"] == "ok"}
        b = {m["model"]: m["stats"][statistic] for m in second["models"] if m["status"] == "ok"}
        rows = [(name, a[name], b[name], b[name] / a[name]) for name in a if name in b]
        judged = [r for r in rows if min(r[1], r[2]) >= 100e-6]
        worst = max(judged, key=lambda r: abs(r[3] - 1), default=None)
        within = sum(1 for r in judged if abs(r[3] - 1) <= 0.03)
        label = statistic[:-2]
        print(f"{label:6s}: {len(rows)} models, {len(judged)} of 100 µs or more; within 3 %: {within} of {len(judged)}"
              f" (goal: all); mean |ratio - 1| {sum(abs(r[3] - 1) for r in rows) / len(rows):.1%} over all models")
        if worst:
            print(f"{label:6s}  worst: {worst[0]}: {worst[1] * 1e6:.1f} µs -> {worst[2] * 1e6:.1f} µs (ratio {worst[3]:.3f})")


if __name__ == "__main__":
    main()
