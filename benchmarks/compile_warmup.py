"""Does a network timed as a calibration kernel read slower than `cpbench time` reads it, and why?

    python benchmarks/compile_warmup.py --device openvino [--networks 12] [--seed 5] [--record]

For each of `--networks` random family networks, in a fresh process: load (compile) it, then time
consecutive runs on the profile's clock for the profile's warm-up plus 2,000 runs (at least 3,000
runs). From that one sequence, side by side:
- the calibration kernel protocol: the minimum of runs 101-300 (a runtime that compiles gets 100
  warm-up runs and 200 timed ones);
- `cpbench time`'s round: the minimum of the 500 runs after the profile's warm-up (its runs and
  its seconds);
- the minimum of the last 500 runs (fully warm);
and, in a second fresh process that first loads and runs 100 other networks (as a calibration
worker has), `cpbench time`'s round again. Ratios above 1 mean the kernel protocol over-predicts.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from _record import record
from cpbench.family.config import FASHION_MNIST, random_from_space
from cpbench.family.kernels import network_graph
from cpbench.timing.environment import fingerprint
from cpbench.timing.profiles import SHIPPED, load_profile
from cpbench.timing.worker import Worker

RUNS = 3000


def _sequence(connection, graphs: list[bytes], profile) -> None:
    """Load and run every graph but the last 30 times each; then the last for the profile's warm-up
    seconds and 2,000 runs more (RUNS at least): send its times and when each ended."""
    import time

    from cpbench.timing.runtimes import get_runtime, make_inputs

    runtime = get_runtime(profile.runtime)
    with tempfile.TemporaryDirectory() as folder:
        for index, graph in enumerate(graphs):
            path = Path(folder) / f"{index}.onnx"
            path.write_bytes(graph)
            loaded = runtime.load(path, profile, make_inputs(path, 1, 0))
            own = getattr(loaded, "own_latency", None)
            last = index == len(graphs) - 1
            times, ends, started = [], [], time.perf_counter()
            while len(times) < (30 if not last else RUNS) or (last and (ends[-1] < profile.measure.warmup_time_s
                                                                        or len(times) < warm_runs(ends, profile) + 2000)):
                t0 = time.perf_counter()
                loaded.run()
                t1 = time.perf_counter()
                times.append(own() if profile.clock == "runtime" and own else t1 - t0)
                ends.append(t1 - started)
            if last:
                connection.send((times, ends))
    connection.close()


def warm_runs(ends: list[float], profile) -> int:
    """How many runs `cpbench time`'s warm-up takes: its count of runs and its seconds, both."""
    seconds = next((i + 1 for i, end in enumerate(ends) if end >= profile.measure.warmup_time_s), len(ends))
    return max(profile.measure.warmup_runs, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="openvino")
    parser.add_argument("--networks", type=int, default=12)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    profile = load_profile(args.device, SHIPPED)
    m = profile.measure
    configs = random_from_space(FASHION_MNIST, args.networks + 100, args.seed)
    others = [network_graph(c).SerializeToString() for c in configs[args.networks:]]
    rows = []
    for config in configs[:args.networks]:
        graph = network_graph(config).SerializeToString()
        sequences = []
        for prefix in ([], others):
            with Worker(_sequence, prefix + [graph], profile) as worker:
                times, ends = worker.receive(600)
            sequences.append((np.asarray(times), warm_runs(ends, profile)))
        (fresh, warm), (busy, busy_warm) = sequences
        time_round = fresh[warm:warm + m.round_runs].min()
        row = {"config": config.as_csv(), "kernel_protocol": fresh[100:300].min() / time_round,
               "fully_warm": fresh[-500:].min() / time_round,
               "after_100_networks": busy[busy_warm:busy_warm + m.round_runs].min() / time_round,
               "time_round_s": float(time_round), "warmup_runs": warm}
        rows.append(row)
        print(f"{row['config']:>10s}  time's round {time_round * 1e6:7.1f} µs after {warm} warm-up runs   kernel protocol x{row['kernel_protocol']:.3f}   "
              f"fully warm x{row['fully_warm']:.3f}   in a busy process x{row['after_100_networks']:.3f}")
    for key in ("kernel_protocol", "fully_warm", "after_100_networks"):
        values = np.array([r[key] for r in rows])
        print(f"{key:20s} median x{np.median(values):.3f}, range x{values.min():.3f} - x{values.max():.3f}")
    if args.record:
        print(f"recorded {record('compile_warmup', args.device, {'rows': rows, 'seed': args.seed}, fingerprint())}")


if __name__ == "__main__":
    main()
