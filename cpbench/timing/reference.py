"""The co-measured reference: one fixed kernel timed by every worker process before its first item
and again after every few items, so each measurement is bracketed by two timings of the same work.
Interference on a shared machine (another tenant, a host phase) slows the reference and the
measurement alike; a measurement whose brackets sit off the reference's quiet level beyond its own
spread is suspect and re-measured (duet benchmarking on shared clouds, Bulej et al. 2020).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from cpbench.family.config import Space
from cpbench.family.kernels import Kernel, first, inner

MIN_TOLERANCE = 0.03  # a bracket is off when it is this much (or 3 spreads, if more) slower than quiet


def reference_kernel(space: Space, in_channels: int = 1) -> Kernel:
    """A mid-sized conv block of the space: long enough to time well, short enough to repeat often."""
    b = space.baseline
    f, s, k = max(1, b.f // 2), max(2, b.s // 4), min(3, max(1, b.k))
    return inner(f, s, k) if b.l > 1 else first(f, s, k, in_channels)


def reference_timer(runtime, profile, graph: bytes, settings) -> Callable[[], float]:
    """Load the reference graph in this process and return a function timing it once (the minimum of
    `settings`' fixed count of runs). The first timing is made and dropped here: a new process's
    first timing runs cold and would read as interference."""
    import os
    import tempfile

    from cpbench.timing.protocol import measure
    from cpbench.timing.runtimes import make_inputs

    folder = tempfile.mkdtemp(prefix="cpbench-reference-")
    path = Path(folder) / "reference.onnx"
    path.write_bytes(graph)
    try:
        loaded = runtime.load(path, profile, make_inputs(path, 1, 0))
    finally:
        path.unlink()
        os.rmdir(folder)

    def timed() -> float:
        raw = measure(loaded.run, settings, own_latency=getattr(loaded, "own_latency", None), timer=profile.clock)
        return float(min(raw.times_s))

    timed()
    return timed


@dataclass(frozen=True)
class ReferenceLevel:
    """The reference's quiet level (median of its timings) and spread (1.4826 x the median absolute
    relative deviation from it: a standard deviation robust to the disturbed minority)."""

    quiet_s: float
    spread: float
    n: int

    @classmethod
    def of(cls, times: list[float]) -> "ReferenceLevel":
        if not times:
            return cls(float("nan"), float("nan"), 0)
        values = np.asarray(times, float)
        quiet = float(np.median(values))
        return cls(quiet, float(1.4826 * np.median(np.abs(values / quiet - 1))), len(values))

    @property
    def tolerance(self) -> float:
        return max(MIN_TOLERANCE, 3 * self.spread) if np.isfinite(self.spread) else MIN_TOLERANCE

    def offset(self, bracket: tuple[float, float]) -> float:
        """How far the slower of a measurement's two reference timings sits above quiet (relative)."""
        return max(bracket) / self.quiet_s - 1 if self.n and all(b > 0 for b in bracket) else 0.0

    def off(self, bracket: tuple[float, float]) -> bool:
        return self.offset(bracket) > self.tolerance

    def as_dict(self) -> dict:
        return {**asdict(self), "tolerance": self.tolerance}
