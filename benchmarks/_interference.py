"""A competing load on demand: duty-cycled CPU-bound processes (matrix products, one thread each),
minutes-long phases on and off, as a noisy neighbour on a shared host would be."""

from __future__ import annotations

import os
import subprocess
import sys

LOAD = """
import os, sys, time
import numpy as np
on_s, off_s = float(sys.argv[1]), float(sys.argv[2])
a = np.random.default_rng(0).random((384, 384))
while True:
    end = time.monotonic() + on_s
    while time.monotonic() < end:
        a = a @ a
        a /= np.abs(a).max()
    time.sleep(off_s)
"""


class Interference:
    """`with Interference(on_s, off_s, processes):` runs the load for the block's duration."""

    def __init__(self, on_s: float = 60.0, off_s: float = 60.0, processes: int = 1) -> None:
        self.args, self.processes, self._children = (str(on_s), str(off_s)), processes, []

    def __enter__(self) -> "Interference":
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        self._children = [subprocess.Popen([sys.executable, "-c", LOAD, *self.args], env=env)
                          for _ in range(self.processes)]
        return self

    def __exit__(self, *exc: object) -> None:
        for child in self._children:
            child.kill()
            child.wait()
