"""Paper 000 eq. (7): min C(T) subject to P(T) >= P_T, by exact enumeration of the search space.

Every candidate is evaluated at once with numpy (the time model's closed-form features and the
precision model are both vectorised), so whole integer spaces of tens of thousands of configs take
milliseconds; the answer is exact for the models, not a local optimum.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cpbench.family.config import Config, Space
from cpbench.errors import CpbenchError, check_choice
from cpbench.family.closed_form import Layers

GRIDS = ("integer", "paper")
PAPER_STEP = 0.05


class Infeasible(CpbenchError):
    """No config of the space reaches the target: the question asks for what the space cannot give,
    answered like other input to change (exit code 2), with the nearest the space comes."""

    exit_code = 2


@dataclass
class Candidates:
    """Configs as parallel integer arrays (one entry per config)."""

    f: np.ndarray
    s: np.ndarray
    k: np.ndarray
    l: np.ndarray  # noqa: E741

    def __len__(self) -> int:
        return len(self.f)

    def config(self, i: int) -> Config:
        return Config(int(self.f[i]), int(self.s[i]), int(self.k[i]), int(self.l[i]))

    def normalised(self, baseline: Config) -> np.ndarray:
        return np.column_stack([self.f, self.s, self.k, self.l]).astype(np.float64) / np.array(baseline.as_tuple(), dtype=np.float64)

    def layers(self, in_channels: int = 1) -> Layers:
        return Layers(self.f, self.s, self.k, self.l, in_channels=in_channels)

    def subset(self, index: np.ndarray) -> "Candidates":
        return Candidates(self.f[index], self.s[index], self.k[index], self.l[index])


def integer_space(space: Space) -> Candidates:
    """Every integer config with 1 <= f <= f0, 1 <= k <= k0, 1 <= l <= l0 and 2^l <= s <= s0."""
    b = space.baseline
    f, s, k, l = np.meshgrid(np.arange(1, b.f + 1), np.arange(1, b.s + 1), np.arange(1, b.k + 1), np.arange(1, b.l + 1), indexing="ij")
    f, s, k, l = (a.ravel() for a in (f, s, k, l))  # noqa: E741
    valid = s >= 2**l
    return Candidates(f[valid], s[valid], k[valid], l[valid])


def paper_grid(space: Space) -> Candidates:
    """Paper 000's grid: each normalised parameter from 0.05 to 1 in steps of 0.05, rounded to the
    nearest buildable integer (at least 1) and deduplicated."""
    b = space.baseline
    steps = np.arange(1, round(1 / PAPER_STEP) + 1) * PAPER_STEP
    values = [np.unique(np.maximum(1, np.rint(steps * v))).astype(np.int64) for v in b.as_tuple()]
    f, s, k, l = (a.ravel() for a in np.meshgrid(*values, indexing="ij"))  # noqa: E741
    valid = s >= 2**l
    return Candidates(f[valid], s[valid], k[valid], l[valid])


def candidates_for(space: Space, grid: str) -> Candidates:
    check_choice(grid, GRIDS, "grid")
    return integer_space(space) if grid == "integer" else paper_grid(space)


@dataclass
class Evaluated:
    candidates: Candidates
    precision: np.ndarray
    seconds: np.ndarray

    def pareto(self) -> np.ndarray:
        """Indices of the Pareto front, cheapest first: no other config is both faster and more precise."""
        order = np.lexsort((-self.precision, self.seconds))
        best_so_far = np.maximum.accumulate(self.precision[order])
        keep = np.r_[True, self.precision[order][1:] > best_so_far[:-1]]
        return order[keep]

    def lower_envelope(self, levels: np.ndarray) -> np.ndarray:
        """C(P): for each precision level, the least time of any config reaching it (nan if none)."""
        front = self.pareto()
        p, c = self.precision[front], self.seconds[front]
        out = np.full(len(levels), np.nan)
        for i, level in enumerate(levels):
            reach = p >= level
            if reach.any():
                out[i] = c[reach].min()
        return out


def evaluate_space(candidates: Candidates, precision: Callable[[np.ndarray], np.ndarray],
                   seconds: Callable[[Layers], np.ndarray], baseline: Config, in_channels: int = 1) -> Evaluated:
    return Evaluated(candidates, precision(candidates.normalised(baseline)), seconds(candidates.layers(in_channels)))


def best_under(evaluated: Evaluated, target: float, top: int = 5, probability: np.ndarray | None = None,
               confidence: float | None = None) -> np.ndarray:
    """Indices of the `top` fastest configs that reach `target`, fastest first: predicted to reach
    it or, given each config's `probability` of reaching it, at least `confidence` likely to."""
    if probability is not None and confidence is not None:
        feasible = np.flatnonzero(probability >= confidence)
        if not len(feasible):
            best, top_index = int(np.argmax(probability)), int(evaluated.precision.argmax())
            nearest = (f"the highest predicted precision is {evaluated.precision[top_index]:.4f} "
                       f"({evaluated.candidates.config(top_index).as_csv()}, probability {probability[top_index]:.2f})")
            if best != top_index and probability[best] >= 0.01:
                nearest += (f"; the most likely to reach it is {evaluated.candidates.config(best).as_csv()} at "
                            f"{probability[best]:.2f}")
            raise Infeasible(f"no config of the space reaches precision {target:.7g} with probability {confidence:.7g}; "
                             f"{nearest}; lower --target or --confidence, or raise --max-drop")
    else:
        feasible = np.flatnonzero(evaluated.precision >= target)
        if not len(feasible):
            raise Infeasible(
                f"no config of the space reaches precision {target:.7g}; the best reachable is "
                f"{evaluated.precision.max():.4f} ({evaluated.candidates.config(int(evaluated.precision.argmax())).as_csv()}); "
                "lower --target or raise --max-drop"
            )
    order = feasible[np.lexsort((-evaluated.precision[feasible], evaluated.seconds[feasible]))]
    return order[:top]
