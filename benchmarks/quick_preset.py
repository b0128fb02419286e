"""The `quick` preset end to end, as `make demo` runs it: wall time (goal: 6 minutes or less on
2 cores, so that the demo fits in 15 with the install) and the accuracy it reaches at the
FashionMNIST baseline (64,28,5,3).

    python benchmarks/quick_preset.py [--workspace DIR]   # default: a fresh temporary workspace
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

GOAL_S = 360


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=None)
    args = parser.parse_args()
    workspace = args.workspace or Path(tempfile.mkdtemp(prefix="cpbench-quick-"))
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "cpbench.cli", "export", "--preset", "quick", "--force", "--json", "-w", str(workspace)],
        stdout=subprocess.PIPE, text=True,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"cpbench export failed with exit code {done.returncode}")
    models = json.loads(done.stdout)["models"]
    baseline = next(m for m in models if m["config"] == "f64-s28-k5-l3")
    train_total = sum(m["train_s"] or 0 for m in models)
    print(f"machine               : {psutil.cpu_count(logical=False)} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB")
    print(f"quick preset          : {len(models)} configs, all {', '.join(sorted({m['status'] for m in models}))}")
    print(f"wall time             : {wall:.0f} s (training {train_total:.0f} s); goal {GOAL_S} s -> ratio {wall / GOAL_S:.2f}")
    print(f"baseline (64,28,5,3)  : accuracy {baseline['accuracy']:.4f} after {baseline['train_s']:.0f} s of training")
    print(f"accuracy range        : {min(m['accuracy'] for m in models):.4f} .. {max(m['accuracy'] for m in models):.4f}")
    print(f"workspace             : {workspace}")


if __name__ == "__main__":
    main()
