"""Agreement with OpenVINO's own benchmark_app: same model, sync API, same threads and streams.

Runs benchmark_app and cpbench's OpenVINO measurement alternately (A B A B) on a family model of
0.1-1 ms and compares the medians (goal: ratio cpbench / benchmark_app within 0.95-1.05), and the
fastest runs, which a machine whose speed drifts disturbs least.

    python benchmarks/openvino_agreement.py [--config 64,28,3,2] [--threads 1] [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from cpbench.family.config import Config
from cpbench.build.onnx_export import export_onnx
from cpbench.family.network import build_family_model
from cpbench.timing.profiles import SHIPPED, load_profile
from cpbench.timing.runner import TimingTarget, time_in_worker
from cpbench.timing.protocol import MeasureSettings


def benchmark_app_latency_ms(path: Path, threads: int, seconds: int) -> tuple[float, float]:
    """benchmark_app's (median, min) latency in ms."""
    exe = shutil.which("benchmark_app") or str(Path(sys.executable).parent / "benchmark_app")
    # benchmark_app accepts -nstreams/-nthreads only with -hint none; cpbench gets the same settings below
    command = [exe, "-m", str(path), "-d", "CPU", "-api", "sync", "-hint", "none", "-nstreams", "1",
               "-nthreads", str(threads), "-t", str(seconds), "-shape", "[1,1,28,28]"]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    found = {}
    for label in ("Median", "Min"):
        match = re.search(label + r":\s+([0-9.]+)\s*(ms|us)", done.stdout)
        if not match:
            sys.exit(f"benchmark_app printed no {label.lower()}:\n" + done.stdout[-2000:])
        found[label] = float(match.group(1)) / (1000 if match.group(2) == "us" else 1)
    return found["Median"], found["Min"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="64,28,3,2")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    config = Config.parse(args.config)
    exported = export_onnx(build_family_model(config), (1, config.s, config.s))
    profile = load_profile("openvino", SHIPPED)
    profile = replace(
        profile, threads=args.threads, options={"NUM_STREAMS": "1"},
        measure=MeasureSettings(min_time_s=args.seconds, max_time_s=args.seconds * 2),
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{config.id}.onnx"
        path.write_bytes(exported.data)
        theirs, ours = [], []
        for _ in range(args.rounds):
            theirs.append(benchmark_app_latency_ms(path, args.threads, args.seconds))
            timing = time_in_worker(TimingTarget(config.id, path), profile)
            ours.append((timing.stats.median_s * 1e3, timing.stats.min_s * 1e3))
    print(f"model {config.id}, OpenVINO CPU, sync API, no hint, 1 stream, {args.threads} thread(s), {args.rounds} rounds of {args.seconds} s")
    for i, label in enumerate(("median", "min")):
        t = statistics.median(v[i] for v in theirs)
        o = statistics.median(v[i] for v in ours)
        print(f"benchmark_app {label:6s}: {t:.4f} ms  (rounds: {', '.join(f'{v[i]:.4f}' for v in theirs)})")
        print(f"cpbench {label:12s}: {o:.4f} ms  (rounds: {', '.join(f'{v[i]:.4f}' for v in ours)})")
        print(f"ratio cpbench / benchmark_app ({label}): {o / t:.3f}  (goal 0.95-1.05)")


if __name__ == "__main__":
    main()
