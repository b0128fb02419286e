"""One relative least squares for every time model: minimise the squared relative error of
a @ coef against y, weighting by 1/measured on the first pass and by 1/fitted after it (weights
from the observed times alone are biased towards the fast points)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

PASSES = 3


def plain_solve(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.linalg.lstsq(a, y, rcond=None)[0]


def relative_least_squares(a: np.ndarray, y: np.ndarray, solve: Callable[[np.ndarray, np.ndarray], np.ndarray] = plain_solve,
                           passes: int = PASSES) -> tuple[np.ndarray, np.ndarray]:
    """(coef, the weights of the last pass). `solve(weighted design, weighted target)` is one
    weighted pass; a fitted value <= 0 keeps its measured weight."""
    weight = 1.0 / y
    coef = solve(a * weight[:, None], y * weight)
    for _ in range(passes - 1):
        fitted = a @ coef
        weight = 1.0 / np.where(fitted > 0, fitted, y)
        coef = solve(a * weight[:, None], y * weight)
    return coef, weight
