"""Could OpenVINO calibrate faster by compiling one model per (kind, f, k) with a dynamic spatial size
and timing every s on it? Side by side in one run: a static compile per shape against one dynamic
compile, the compile times and each shape's round-min, under the `openvino` profile's threads.

    python benchmarks/openvino_dynamic_shapes.py [--warmup 100] [--runs 200] [--json]

Measured on an Intel Xeon with AMX: one dynamic compile took 20-22 ms against 23-31 ms for a static one (the
process's first, 75 ms), and the dynamic model ran 3.4-5.4 µs a call slower (x1.22-1.56, median
x1.41), by an amount that moves with kind and s: a calibration on dynamic shapes would time
another program than the networks run, and would save ~5 ms a kernel at most.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cpbench.family.kernels import first, first_pair, inner, inner_pair, kernel_graph

CASES = [(first, 16, 3, [6, 10, 14, 20, 28]), (inner, 32, 3, [4, 7, 10, 14]),
         (first_pair, 8, 5, [4, 8, 14, 20, 28]), (inner_pair, 48, 3, [4, 8, 14])]


def round_min(request, x: np.ndarray, warmup: int, runs: int) -> float:
    """Seconds: the minimum of the runtime's own request latency over `runs` after `warmup` runs."""
    for _ in range(warmup):
        request.infer({0: x})
    latencies = []
    for _ in range(runs):
        request.infer({0: x})
        latencies.append(request.latency)  # milliseconds
    return min(latencies) * 1e-3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    try:
        import onnx
        import openvino as ov
    except ImportError as exc:
        print(f"error: this benchmark needs openvino and onnx ({exc}); run 'make setup'", file=sys.stderr)
        raise SystemExit(2) from None
    if args.warmup < 0 or args.runs < 1:
        print("error: --warmup must be >= 0 and --runs >= 1", file=sys.stderr)
        raise SystemExit(2)
    core = ov.Core()
    config = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1", "INFERENCE_NUM_THREADS": "1"}  # profiles/openvino.toml
    rows = []
    with tempfile.TemporaryDirectory(prefix="cpbench-ov-dynamic-") as folder:
        def saved(model, name: str) -> str:
            path = Path(folder) / f"{name}.onnx"
            onnx.save(model, path)
            return str(path)

        for make, f, k, sizes in CASES:
            kind = make(f, sizes[0], k).kind
            static = {}
            for s in sizes:
                started = time.perf_counter()
                compiled = core.compile_model(saved(kernel_graph(make(f, s, k)), f"{kind}-{s}"), "CPU", config)
                compile_s = time.perf_counter() - started
                x = np.random.rand(*list(compiled.input(0).shape)).astype(np.float32)
                static[s] = (round_min(compiled.create_infer_request(), x, args.warmup, args.runs), compile_s)
            model = core.read_model(saved(kernel_graph(make(f, sizes[0], k)), f"{kind}-dynamic"))
            c_in = model.input(0).get_partial_shape()[1].get_length()
            model.reshape({0: ov.PartialShape([1, c_in, -1, -1])})
            started = time.perf_counter()
            compiled = core.compile_model(model, "CPU", config)
            dynamic_compile_s = time.perf_counter() - started
            request = compiled.create_infer_request()
            for s in sizes:
                dynamic = round_min(request, np.random.rand(1, c_in, s, s).astype(np.float32), args.warmup, args.runs)
                rows.append({"kind": kind, "f": f, "k": k, "s": s, "static_s": static[s][0], "dynamic_s": dynamic,
                             "ratio": dynamic / static[s][0], "static_compile_s": static[s][1],
                             "dynamic_compile_s": dynamic_compile_s})
    if args.json:
        print(json.dumps({"warmup": args.warmup, "runs": args.runs, "rows": rows}, indent=2))
        return
    print(f"OpenVINO {ov.__version__}, 1 thread, latency hint; round-min of {args.runs} runs after {args.warmup}, the runtime's own latency")
    for r in rows:
        print(f"  {r['kind']:>10s} f={r['f']:2d} k={r['k']} s={r['s']:2d}: static {r['static_s'] * 1e6:6.2f} µs "
              f"(compiled in {r['static_compile_s'] * 1e3:3.0f} ms), dynamic {r['dynamic_s'] * 1e6:6.2f} µs "
              f"(once, {r['dynamic_compile_s'] * 1e3:3.0f} ms): x{r['ratio']:.3f}")
    ratios = np.array([r["ratio"] for r in rows])
    print(f"  dynamic / static: median x{np.median(ratios):.3f}, range x{ratios.min():.3f}-x{ratios.max():.3f}")


if __name__ == "__main__":
    main()
