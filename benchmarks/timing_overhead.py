"""Timing overhead: cpbench's ONNX Runtime median against bare loops on the same session, same process.

On the smallest family model (a few microseconds) any per-run cost of the protocol shows.
Alternates blocks (A B C A B C ...) of: a bare `session.run` loop (outputs allocated and
converted to numpy every call), a bare `run_with_iobinding` loop on cpbench's binding (inputs
bound once, outputs preallocated), and cpbench's measure(), which times the latter.
Goals: cpbench / bare IO-binding loop <= 1.03; and what IO binding saves per call against session.run.

    python benchmarks/timing_overhead.py [--config 1,8,1,1] [--blocks 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import onnxruntime as ort
import torch

from cpbench.family.config import Config
from cpbench.export.onnx_export import export_onnx
from cpbench.family.network import build_family_model
from cpbench.timing.profiles import Profile
from cpbench.timing.runtimes import make_inputs
from cpbench.timing.runtimes.onnxruntime import OnnxRuntime
from cpbench.timing.protocol import MeasureSettings, measure


def bound_loop(session, binding, n: int) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        session.run_with_iobinding(binding)
        times.append(time.perf_counter() - t0)
    return times


def bare_loop(session, feeds, outputs, n: int) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        session.run(outputs, feeds)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="1,2,1,1")
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    config = Config.parse(args.config)
    exported = export_onnx(build_family_model(config), (1, config.s, config.s))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.onnx"
        path.write_bytes(exported.data)
        profile = Profile(name="bench", runtime="onnxruntime", provider="CPUExecutionProvider", threads=args.threads)
        inputs = make_inputs(path, 1)
        loaded = OnnxRuntime().load(path, profile, inputs)  # cpbench's session, as its worker makes it
        settings = MeasureSettings(warmup_runs=100, min_time_s=0, min_runs=args.runs, max_runs=args.runs)
        session = loaded.session  # the bare loop drives the very same session
        outputs = [o.name for o in session.get_outputs()]
        bare_loop(session, inputs, outputs, 200)
        bare, bound, ours = [], [], []
        for _ in range(args.blocks):
            bare += bare_loop(session, inputs, outputs, args.runs)
            bound += bound_loop(session, loaded.binding, args.runs)
            ours += measure(loaded.run, settings).times_s
    b, i, o = statistics.median(bare), statistics.median(bound), statistics.median(ours)
    print(f"model {config.id} (ORT {ort.__version__}, CPU EP, {args.threads} thread), {args.blocks} alternating blocks of {args.runs} runs")
    print(f"bare session.run loop          : median {b * 1e6:7.2f} µs")
    print(f"bare run_with_iobinding loop   : median {i * 1e6:7.2f} µs  (IO binding saves {(b - i) * 1e6:.2f} µs a call, {1 - i / b:.0%})")
    print(f"cpbench measure() (IO binding) : median {o * 1e6:7.2f} µs")
    print(f"ratio cpbench / bare IO binding: {o / i:.3f}  (goal <= 1.03)")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
