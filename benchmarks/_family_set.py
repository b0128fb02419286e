"""Shared by the timing benchmarks: random family configs exported untrained into a workspace, and
the statistic the fits use read from a `cpbench time --json` run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from cpbench.family.config import FASHION_MNIST, Config, random_from_space
from cpbench.timing.calibration_design import CalibrationDesign, plan_networks


def random_configs(n: int, seed: int) -> list[Config]:
    """n configs over the whole integer space, none of them a calibration network."""
    return random_from_space(FASHION_MNIST, n, seed, exclude=calibration_networks())


def cpbench(*args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "cpbench.cli", *args, "--json"], stdout=subprocess.PIPE, text=True)
    if done.returncode not in (0, 1):
        sys.exit(f"cpbench {' '.join(args)} failed with exit code {done.returncode}")
    return json.loads(done.stdout)


def export(configs: list[Config], workspace: Path) -> None:
    args = ["export", "--untrained", "-w", str(workspace)]
    for c in configs:
        args += ["--config", c.as_csv()]
    cpbench(*args)


def round_min(model: dict) -> float:
    """Median over rounds of each round's minimum over a fixed count of runs (what the fits use)."""
    return float(np.median([r["fixed_min_s"] for r in model["rounds"]]))


def config_of(name: str) -> Config:
    return Config.parse(Path(name).name.removesuffix(".onnx"))


def calibration_networks() -> set[Config]:
    """Every design's calibration networks (ONNX Runtime's 40, the compiling runtimes' 30)."""
    return {c for n in (40, 30) for c in plan_networks(FASHION_MNIST, CalibrationDesign(networks=n))}


def recommend_configs(n: int, seed: int) -> list[Config]:
    """n configs where recommend's picks live (f >= 16, k >= 3, s >= 16), none a calibration network."""
    import random

    b, rng, taken, out = FASHION_MNIST.baseline, random.Random(seed), calibration_networks(), []
    while len(out) < n:
        l = rng.randint(1, b.l)  # noqa: E741
        config = Config(rng.randint(16, b.f), rng.randint(max(16, 2 ** l), b.s), rng.randint(3, b.k), l)
        if config not in taken:
            taken.add(config)
            out.append(config)
    return out
