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
    return random_from_space(FASHION_MNIST, n, seed, exclude=set(plan_networks(FASHION_MNIST, CalibrationDesign())))


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
