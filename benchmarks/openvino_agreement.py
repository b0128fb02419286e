"""Agreement with OpenVINO's own benchmark_app: same model, sync API, same threads and streams.

Runs benchmark_app and cpbench's OpenVINO measurement alternately (A B A B) on the baseline and
compares the medians (goal: ratio cpbench / benchmark_app within 0.97-1.03), and the fastest runs;
then the same on the smallest network of the family, where the wall time's difference is the
per-call cost of cpbench's Python loop over benchmark_app's C++ one. cpbench records both OpenVINO's
own latency of each request (what benchmark_app reports; the shipped profile's clock, what the fits
use) and the wall time of the Python call.

    python benchmarks/openvino_agreement.py [--config 64,28,5,3] [--small 1,2,1,1] [--threads 1] [--seconds 5] [--rounds 5]
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
from cpbench.export.onnx_export import export_onnx
from cpbench.family.network import build_family_model
from cpbench.timing.profiles import SHIPPED, load_profile
from cpbench.timing.runner import TimingTarget, time_in_worker
from cpbench.timing.protocol import MeasureSettings


def benchmark_app_latency_ms(path: Path, threads: int, seconds: int, size: int) -> tuple[float, float]:
    """benchmark_app's (median, min) latency in ms."""
    exe = shutil.which("benchmark_app") or str(Path(sys.executable).parent / "benchmark_app")
    # benchmark_app accepts -nstreams/-nthreads only with -hint none; cpbench gets the same settings below
    command = [exe, "-m", str(path), "-d", "CPU", "-api", "sync", "-hint", "none", "-nstreams", "1",
               "-nthreads", str(threads), "-t", str(seconds), "-shape", f"[1,1,{size},{size}]"]
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
    parser.add_argument("--config", default="64,28,5,3")
    parser.add_argument("--small", default="1,2,1,1")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    profile = load_profile("openvino", SHIPPED)
    profile = replace(
        profile, threads=args.threads, options={"NUM_STREAMS": "1"}, runtime_options=None,
        measure=MeasureSettings(min_time_s=args.seconds, max_time_s=args.seconds * 2),
    )
    print(f"OpenVINO CPU, sync API, no hint, 1 stream, {args.threads} thread(s), {args.rounds} alternating rounds of {args.seconds} s")
    for text in (args.config, args.small):
        compare(Config.parse(text), profile, args)


def compare(config: Config, profile, args) -> None:
    exported = export_onnx(build_family_model(config), (1, config.s, config.s))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{config.id}.onnx"
        path.write_bytes(exported.data)
        theirs, clocks = [], {"runtime": [], "wall": []}
        for _ in range(args.rounds):
            theirs.append(benchmark_app_latency_ms(path, args.threads, args.seconds, config.s))
            timing = time_in_worker(TimingTarget(config.id, path), profile)
            if timing.status != "ok":
                sys.exit(f"cpbench could not time {config.id}: {timing.error}")
            other = "wall" if profile.clock == "runtime" else "runtime"
            beside = timing.runtime.get("wall_time" if other == "wall" else "own_latency") or {}
            clocks[profile.clock].append((timing.stats.median_s * 1e3, timing.stats.min_s * 1e3))
            clocks[other].append((beside.get("median_s", float("nan")) * 1e3, beside.get("min_s", float("nan")) * 1e3))
    print(f"model {config.id}:")
    for i, label in enumerate(("median", "min")):
        t = statistics.median(v[i] for v in theirs)
        r = statistics.median(v[i] for v in clocks["runtime"])
        w = statistics.median(v[i] for v in clocks["wall"])
        spread = (max(v[i] for v in theirs) - min(v[i] for v in theirs)) / t * 100
        print(f"  {label:6s}: benchmark_app {t * 1e3:8.2f} µs (its rounds spread {spread:.1f} %) | cpbench, OpenVINO's own "
              f"latency {r * 1e3:8.2f} µs (ratio {r / t:.3f}, goal 0.97-1.03) | cpbench, wall time of the Python call "
              f"{w * 1e3:8.2f} µs (ratio {w / t:.3f}; {(w - t) * 1e3:+.2f} µs per call)")
    print(f"  the fits use the profile's clock: {profile.clock}")


if __name__ == "__main__":
    main()
