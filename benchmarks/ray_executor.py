"""The Ray executor against the local one: the same sweep both ways (Ray in local mode on 2 CPUs,
one thread per task), both wall times and their ratio; and Ray's scheduling overhead per task,
measured on tiny untrained exports run one at a time both ways (goal: under 0.5 s).

    python benchmarks/ray_executor.py [--preset quick] [--overhead-tasks 30]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from cpbench.family.config import FASHION_MNIST, random_from_space
from cpbench.export.plan import plan_export
from cpbench.export.ray_executor import RaySettings, import_ray, run_sweep_ray
from cpbench.workspace.folder import Workspace
from cpbench.export.sweep import run_sweep

GOAL_OVERHEAD_S = 0.5


def timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--overhead-tasks", type=int, default=30)
    args = parser.parse_args()
    ray = import_ray()
    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        configs = [c.as_csv() for c in random_from_space(FASHION_MNIST, args.overhead_tasks, seed=7)]
        tiny = plan_export(None, configs, untrained=True, threads=1)
        local = timed(lambda: run_sweep(Workspace(root / "o-local"), tiny))
        init = timed(lambda: ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False))
        on_ray = timed(lambda: run_sweep_ray(Workspace(root / "o-ray"), tiny, RaySettings(num_cpus=1)))
        ray.shutdown()
        overhead = (on_ray - local) / len(tiny)
        print(f"overhead: {len(tiny)} untrained exports one at a time: local {local:.1f} s, Ray {on_ray:.1f} s "
              f"(+ {init:.1f} s to start Ray)")
        print(f"overhead: Ray's scheduling overhead per task {overhead:.3f} s; goal {GOAL_OVERHEAD_S} s -> ratio {overhead / GOAL_OVERHEAD_S:.2f}")
        jobs = plan_export(args.preset, [], threads=1)
        local = timed(lambda: run_sweep(Workspace(root / "s-local"), jobs))
        on_ray = timed(lambda: run_sweep_ray(Workspace(root / "s-ray"), jobs, RaySettings(num_cpus=2)))
        print(f"sweep: preset {args.preset}, {len(jobs)} configs, 1 thread per config: local executor {local:.0f} s, "
              f"Ray local mode on 2 CPUs {on_ray:.0f} s (start-up included) -> ratio Ray / local {on_ray / local:.2f}")


if __name__ == "__main__":
    main()
