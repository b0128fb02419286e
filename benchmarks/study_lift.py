"""How much one recipe lifts the precision surface over another: two precision studies paired on the
(config, seed) trainings both hold, side by side, beside the seed-to-seed spread of each.

    python benchmarks/study_lift.py [--base cpbench/reference/fashionmnist-converged.study.jsonl]
                                    [--new cpbench/reference/fashionmnist-converged-bn.study.jsonl] [--json]

Pairs share config and seed, so the lift is free of the seed's own variation only as far as a
seed means the same initial weights in both recipes (it does where the recipes build the same
modules; converged-bn adds BatchNorm modules, whose initialisation draws no random numbers).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from cpbench.export.precision_study import read_results
from cpbench.family.config import Config
from cpbench.fitting.precision_eval import seed_spread

REFERENCE = Path(__file__).resolve().parents[1] / "cpbench" / "reference"


def accuracies(path: Path) -> dict[tuple[str, int], float]:
    return {(r.config, r.seed): r.accuracy for r in read_results(path)}


def spread_points(table: dict[tuple[str, int], float]) -> float | None:
    """The pooled seed-to-seed standard deviation, in points, of the configs trained with several seeds."""
    by: dict[Config, list[float]] = {}
    for (config, _), accuracy in table.items():
        by.setdefault(Config.parse(config), []).append(accuracy)
    spread = seed_spread(by)
    return spread.sd * 100 if spread else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, default=REFERENCE / "fashionmnist-converged.study.jsonl")
    parser.add_argument("--new", type=Path, default=REFERENCE / "fashionmnist-converged-bn.study.jsonl")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    base, new = accuracies(args.base), accuracies(args.new)
    shared = sorted(set(base) & set(new), key=lambda key: (-base[key], key))
    lifts = [(new[k] - base[k]) * 100 for k in shared]
    summary = {
        "base": args.base.name, "new": args.new.name, "pairs": len(shared),
        "mean_lift_points": statistics.mean(lifts) if lifts else None,
        "sd_lift_points": statistics.stdev(lifts) if len(lifts) > 1 else None,
        "lifted": sum(v > 0 for v in lifts),
        "mean_lift_points_where_base_ge_0.92": statistics.mean([v for k, v in zip(shared, lifts) if base[k] >= 0.92] or [float("nan")]),
        "seed_sd_points": {"base": spread_points(base), "new": spread_points(new)},
        "rows": [{"config": c, "seed": s, "base": base[(c, s)], "new": new[(c, s)]} for c, s in shared],
    }
    if args.json:
        print(json.dumps(summary, indent=1))
        return
    print(f"{'config':<12}{'seed':>5}{'base':>9}{'new':>9}{'lift':>8}")
    for (config, seed), lift in zip(shared, lifts):
        print(f"{config:<12}{seed:>5}{base[(config, seed)]:>9.4f}{new[(config, seed)]:>9.4f}{lift:>+8.2f}")
    if lifts:
        sd = f", sd {summary['sd_lift_points']:.2f}" if summary["sd_lift_points"] is not None else ""
        print(f"{args.new.name} over {args.base.name}: {len(shared)} pairs, mean lift {summary['mean_lift_points']:+.2f} points{sd}, "
              f"{summary['lifted']} of {len(shared)} lifted; where the base reached 0.92: "
              f"{summary['mean_lift_points_where_base_ge_0.92']:+.2f} points")
    seeds = summary["seed_sd_points"]
    print("seed-to-seed sd (pooled, points): " + ", ".join(f"{k} {v:.2f}" if v is not None else f"{k} -" for k, v in seeds.items()))


if __name__ == "__main__":
    main()
