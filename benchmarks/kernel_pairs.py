"""Blocks alone against pairs of consecutive blocks, as parts of a whole network, in one run.

    python benchmarks/kernel_pairs.py --device openvino [--configs 12] [--seed 9300] [--rounds 5] [--runs 200] [--json]

For each config (random family configs of depth 2 and 3, plus recommend's usual picks and the
baseline) the network, its blocks alone, its consecutive pairs, its classifier and the empty call
are timed as kernels are in calibration (fresh worker processes, a fixed count of runs per round,
every round in a new order), and two plain compositions (no learned coefficient) are put beside
the network's own time:
  blocks: first + sum(inner - empty) + (classifier - empty)
  pairs:  pair(b1 b2) + sum(pair(b_i b_i+1) - b_i, i >= 2) + (classifier - empty)
The ratio composition / network is printed per config, with the median and worst |ratio - 1| of
each. What it answers: how much of a network's time the blocks alone mis-state because each pays
its layout and precision changes at both ends (the reason `cpbench calibrate` times pairs).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import defaultdict

import numpy as np

from cpbench.errors import UsageError
from cpbench.family.config import FASHION_MNIST, Config, random_from_space
from cpbench.family.kernels import EMPTY, classifier, first, first_pair, inner, inner_pair, kernel_graph, network_graph
from cpbench.timing.calibration_design import CalibrationDesign
from cpbench.timing.calibration import run_chunk, _settings
from cpbench.timing.profiles import SHIPPED, load_profile
from cpbench.timing.runtimes import DeviceUnavailable

PICKS = ("64,28,3,3", "32,26,3,3", "32,21,3,3", "64,28,5,3")


def parts(config: Config) -> dict[str, object]:
    """id -> kernel of every piece either composition needs."""
    f, s, k, depth = config.f, config.s, config.k, config.l
    out = {"empty": EMPTY, "fc": classifier(f * config.final_size**2), "first": first(f, s, k)}
    for i in range(1, depth):
        out[f"inner{i}"] = inner(f, s // 2**i, k)
    if depth >= 2:
        out["pair0"] = first_pair(f, s, k)
    for i in range(1, depth - 1):
        out[f"pair{i}"] = inner_pair(f, s // 2**i, k)
    return out


def compositions(config: Config, t: dict[str, float]) -> tuple[float, float]:
    depth = config.l
    fc = t["fc"] - t["empty"]
    blocks = t["first"] + sum(t[f"inner{i}"] - t["empty"] for i in range(1, depth)) + fc
    if depth == 1:
        return blocks, blocks
    pairs = t["pair0"] + sum(t[f"pair{i}"] - t[f"inner{i}"] for i in range(1, depth - 1)) + fc
    return blocks, pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="openvino")
    parser.add_argument("--configs", type=int, default=12, help="random configs of depth 2 and 3 besides the picks")
    parser.add_argument("--seed", type=int, default=9300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    try:
        profile = load_profile(args.device, SHIPPED)
        design = CalibrationDesign(rounds=args.rounds, runs=args.runs)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    drawn = [c for c in random_from_space(FASHION_MNIST, 10 * args.configs, args.seed) if c.l >= 2][: args.configs]
    configs = drawn + [Config.parse(p) for p in PICKS]
    graphs: dict[str, bytes] = {}
    for c in configs:
        graphs[f"net:{c.as_csv()}"] = network_graph(c).SerializeToString()
        for kernel in parts(c).values():
            graphs.setdefault(kernel.id, kernel_graph(kernel).SerializeToString())
    mins: dict[str, list[float]] = defaultdict(list)
    order = list(graphs)
    for r in range(args.rounds):
        random.Random(args.seed * 100 + r).shuffle(order)
        print(f"round {r + 1}/{args.rounds}: {len(order)} graphs", file=sys.stderr, flush=True)
        try:
            for start in range(0, len(order), design.chunk):
                run_chunk([(i, graphs[i]) for i in order[start:start + design.chunk]], profile, _settings(design),
                           lambda item, low, median, load: mins[item].append(low))
        except (UsageError, DeviceUnavailable) as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
    t = {i: float(np.median(v)) for i, v in mins.items()}
    rows = []
    for c in configs:
        pieces = {name: t[kernel.id] for name, kernel in parts(c).items()}
        blocks, pairs = compositions(c, pieces)
        net = t[f"net:{c.as_csv()}"]
        rows.append({"config": c.as_csv(), "network_s": net, "blocks_ratio": blocks / net, "pairs_ratio": pairs / net})
    summary = {name: {"median_abs": float(np.median([abs(r[f"{name}_ratio"] - 1) for r in rows])),
                      "max_abs": float(max(abs(r[f"{name}_ratio"] - 1) for r in rows))} for name in ("blocks", "pairs")}
    result = {"device": profile.name, "rounds": args.rounds, "runs": args.runs, "statistic": "round-min", "configs": rows,
              "summary": summary}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"'{profile.name}': plain compositions / the network, round-min over {args.rounds} rounds of {args.runs} runs, one run")
    for r in rows:
        print(f"  {r['config']:>10s}  network {r['network_s'] * 1e6:7.1f} µs   blocks {r['blocks_ratio']:5.3f}   pairs {r['pairs_ratio']:5.3f}")
    for name, s in summary.items():
        print(f"  {name:6s}: median |ratio - 1| {s['median_abs']:.1%}, worst {s['max_abs']:.1%}")


if __name__ == "__main__":
    main()
