"""Repeatability: two back-to-back `cpbench time` runs of the same random family configs agree on
the statistic the fits use (round-min) with a median difference of 1.5 % or less and a maximum
of 5 % (the repeatability goal), per device profile.

    python benchmarks/repeatability.py [--device cpu-1thread] [--configs 20] [--seed 9200] [--workspace bench-repeat] [--max-rounds M]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from _family_set import cpbench, export, random_configs, round_min


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu-1thread")
    parser.add_argument("--configs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=9200)
    parser.add_argument("--workspace", type=Path, default=Path("bench-repeat"))
    parser.add_argument("--max-rounds", type=int, default=0, help="passed to cpbench time: the stop rule across rounds (0: the profile's)")
    args = parser.parse_args()
    export(random_configs(args.configs, args.seed), args.workspace)
    extra = ["--max-rounds", str(args.max_rounds)] if args.max_rounds else []
    first, second = (cpbench("time", "--device", args.device, "--models", "family/*", "-w", str(args.workspace), *extra)
                     for _ in range(2))
    a = {m["model"]: round_min(m) for m in first["models"] if m["status"] == "ok"}
    b = {m["model"]: round_min(m) for m in second["models"] if m["status"] == "ok"}
    names = sorted(set(a) & set(b))
    diff = np.array([abs(b[n] / a[n] - 1) for n in names])
    worst = names[int(np.argmax(diff))]
    counts = [len(m["rounds"]) for run in (first, second) for m in run["models"] if m["status"] == "ok"]
    rounds = f"{min(counts)}-{max(counts)}" if min(counts) != max(counts) else str(counts[0])
    verdict = "met" if np.median(diff) <= 0.015 and diff.max() <= 0.05 else "NOT met"
    print(f"'{args.device}': runs {first['run_id']} and {second['run_id']}, {len(names)} configs, {rounds} rounds each, "
          f"round-min: median |B/A - 1| {np.median(diff):.2%}, max {diff.max():.2%} ({worst}: {a[worst] * 1e6:.1f} -> "
          f"{b[worst] * 1e6:.1f} µs); goal median <= 1.5 %, max <= 5 %: {verdict}")
    # a diagnostic, not the goal: how much of the difference is the whole machine moving between the
    # two runs (every model alike), which no per-model statistic can repeat
    ratio = np.array([b[n] / a[n] for n in names])
    drift = float(np.median(ratio))
    relative = np.abs(ratio / drift - 1)
    print(f"  the second run is {drift - 1:+.2%} on the median model (B/A from {ratio.min():.3f} to {ratio.max():.3f}); "
          f"with that common drift divided out: median {np.median(relative):.2%}, max {relative.max():.2%}")
    # also a diagnostic: other ways to pool the same per-round minima, measured side by side on the same two runs
    rounds_a = {m["model"]: [r["fixed_min_s"] for r in m["rounds"]] for m in first["models"] if m["status"] == "ok"}
    rounds_b = {m["model"]: [r["fixed_min_s"] for r in m["rounds"]] for m in second["models"] if m["status"] == "ok"}
    for label, pool in POOLS.items():
        change = np.array([pool(rounds_b[n]) / pool(rounds_a[n]) for n in names])
        print(f"  pooled as {label:34s}: median {np.median(np.abs(change - 1)):.2%}, max {np.abs(change - 1).max():.2%}; "
              f"drift divided out: median {np.median(np.abs(change / np.median(change) - 1)):.2%}, "
              f"max {np.abs(change / np.median(change) - 1).max():.2%}")
    # and fewer rounds of the same runs: what a profile with fewer rounds would have repeated, side by side
    fewest = min(min(len(v) for v in rounds_a.values()), min(len(v) for v in rounds_b.values()))
    for count in range(3, fewest, 2):
        change = np.array([np.median(rounds_b[n][:count]) / np.median(rounds_a[n][:count]) for n in names])
        print(f"  round-min of the first {count} rounds only       : median {np.median(np.abs(change - 1)):.2%}, "
              f"max {np.abs(change - 1).max():.2%}")


POOLS = {  # per-round minima -> one figure; the first is round-min, what the fits use
    "median of the rounds (round-min)": lambda v: float(np.median(v)),
    "mean of the rounds": lambda v: float(np.mean(v)),
    "mean of the rounds but the extremes": lambda v: float(np.mean(sorted(v)[1:-1])) if len(v) > 2 else float(np.mean(v)),
    "fastest round": lambda v: float(np.min(v)),
}


if __name__ == "__main__":
    main()
