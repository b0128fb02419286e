"""The shipped precision fit judged on each held-out set of its study, and pooled over the sets that
judge its form blind (trained after the form was frozen), beside the seed-to-seed spread.

    python benchmarks/precision_holdout.py [--study cpbench/reference/fashionmnist-converged-bn.study.jsonl]
                                           [--fit cpbench/reference/fashionmnist-converged-bn.json] [--json]

Errors are in accuracy points, |predicted - measured| with measured the mean over a config's seeds;
"P >= 0.90" is the region where targets live (the goal: MAE there <= 1.5 x the seed sd).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from cpbench.export.precision_study import BLIND_HOLDOUT_ROLES, HOLDOUT_ROLES, read_results
from cpbench.errors import CpbenchError
from cpbench.family.config import Config
from cpbench.fitting.precision_data import points_from_study
from cpbench.fitting.precision_models import REGION, normalise
from cpbench.fitting.precision_predictor import predictor_from_file

REFERENCE = Path(__file__).resolve().parents[1] / "cpbench" / "reference"


def judge(predicted: np.ndarray, measured: np.ndarray, seed_sd: float) -> dict:
    error = (predicted - measured) * 100
    top = measured >= REGION
    region = float(np.abs(error[top]).mean()) if top.any() else float("nan")
    return {"configs": int(len(measured)), "mae": float(np.abs(error).mean()), "region_configs": int(top.sum()),
            "region_mae": region, "region_bias": float(error[top].mean()) if top.any() else float("nan"),
            "region_over_seed_sd": region / seed_sd}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", type=Path, default=REFERENCE / "fashionmnist-converged-bn.study.jsonl")
    parser.add_argument("--fit", type=Path, default=REFERENCE / "fashionmnist-converged-bn.json")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    try:
        predictor = predictor_from_file(args.fit, reference=True)
        results = read_results(args.study)
        points = points_from_study(results, predictor.recipe)  # one point per config, seeds averaged, as fitted
    except CpbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    roles: dict[Config, set[str]] = defaultdict(set)
    for r in results:
        if r.recipe == predictor.recipe:
            roles[r.parsed].add(r.role)
    predicted = predictor.predict(normalise(points.configs, predictor.baseline))
    seed_sd = points.seeds.sd * 100 if points.seeds else float("nan")

    def rows(wanted: tuple[str, ...]) -> dict:
        chosen = np.array([roles[c] <= set(wanted) for c in points.configs])
        return judge(predicted[chosen], points.precision[chosen], seed_sd) if chosen.any() else {}

    table = {role: rows((role,)) for role in HOLDOUT_ROLES}
    table["blind (" + ", ".join(BLIND_HOLDOUT_ROLES) + ")"] = rows(BLIND_HOLDOUT_ROLES)
    table["all held-out sets"] = rows(HOLDOUT_ROLES)
    if args.json:
        print(json.dumps({"fit": str(args.fit), "seed_sd_points": seed_sd, "sets": table}, indent=2))
        return
    print(f"{args.fit.name} ({predictor.model}) on {args.study.name}; seed sd {seed_sd:.2f} points; errors in points")
    print(f"{'held-out set':<32s} {'configs':>7s} {'MAE':>6s} {'P>=0.90':>8s} {'MAE there':>10s} {'bias':>6s} {'/ seed sd':>9s}")
    for name, row in table.items():
        if row:
            print(f"{name:<32s} {row['configs']:>7d} {row['mae']:>6.2f} {row['region_configs']:>8d} {row['region_mae']:>10.2f} "
                  f"{row['region_bias']:>+6.2f} {row['region_over_seed_sd']:>8.2f}×")
    print(f"blind: trained after the form was frozen; goal at P >= {REGION:.2f}: <= 1.5 × the seed sd")


if __name__ == "__main__":
    main()
