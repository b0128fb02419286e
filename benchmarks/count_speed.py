"""Counting speed: cpbench's count of ResNet-50's ONNX graph against onnx.load of the same file.

Goal: counting takes under 1 s. Prints the median of several runs of each and their ratio.

    python benchmarks/count_speed.py [--model resnet50] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import onnx
import torch

from cpbench.counting.count import count_file
from cpbench.export.onnx_export import to_onnx
from cpbench.export.zoo import build_zoo_model, published


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    size = published(args.model).input_size
    proto, exporter = to_onnx(build_zoo_model(args.model), torch.randn(1, 3, size, size))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{args.model}.onnx"
        onnx.save(proto, str(path))
        load = median_time(lambda: onnx.load(str(path)), args.repeats)
        count = median_time(lambda: count_file(path), args.repeats)
        result = count_file(path)
        print(f"{args.model} ({path.stat().st_size / 2**20:.0f} MiB, {len(proto.graph.node)} nodes, {exporter} export)")
        print(f"onnx.load alone          : {load * 1000:7.1f} ms (median of {args.repeats})")
        print(f"cpbench count (load incl): {count * 1000:7.1f} ms -> {result.core_macs / 1e9:.3f} G core MACs")
        print(f"ratio count / load       : {count / load:.2f}x; goal: count under 1 s -> {'met' if count < 1 else 'MISSED'}")


if __name__ == "__main__":
    main()
