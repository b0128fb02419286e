"""Closed-form quantities of the family's networks, vectorised over many configs at once.

The time models need the same numbers for a stored, counted model (to fit) and for any integer
config (to predict, and to enumerate whole search spaces in the optimizer at 100k+ configs/s), so
they come from the architecture's formulas, not from exported graphs. tests check them against
the ONNX counts of exported models.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from cpbench.family.config import Config

NUM_CLASSES = 10
FeatureFn = Callable[["Layers"], np.ndarray]


class Layers:
    """Per-layer shapes of configs given as arrays f, s, k, l (one entry per config).

    Layer i (0-based) of a config exists when i < l; its conv reads c_in x s_i x s_i with
    s_i = s // 2**i (each block ends in a floor-rounding 2x2 max-pool) and writes f x s_i x s_i.
    """

    def __init__(self, f: np.ndarray, s: np.ndarray, k: np.ndarray, l: np.ndarray, in_channels: int = 1,  # noqa: E741
                 num_classes: int = NUM_CLASSES) -> None:
        self.f, self.s, self.k, self.l = (np.asarray(a, dtype=np.float64) for a in (f, s, k, l))
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.depth = int(self.l.max()) if self.l.size else 0
        side = np.asarray(s, dtype=np.int64)
        sides, present = [], []
        for i in range(self.depth):
            sides.append(side.astype(np.float64))
            present.append((i < self.l).astype(np.float64))
            side = side // 2
        self.final_side = (np.asarray(s, dtype=np.int64) // 2 ** np.asarray(l, dtype=np.int64)).astype(np.float64)
        self.sides, self.present = sides, present

    def per_layer_sum(self, term: Callable[[int, np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
        """Sum over existing layers of term(i, c_in, side)."""
        total = np.zeros_like(self.f)
        for i, (side, here) in enumerate(zip(self.sides, self.present)):
            c_in = np.full_like(self.f, self.in_channels) if i == 0 else self.f
            total += here * term(i, c_in, side)
        return total

    @classmethod
    def of(cls, configs: Sequence[Config], in_channels: int = 1) -> "Layers":
        arr = np.array([c.as_tuple() for c in configs], dtype=np.int64).reshape(-1, 4)
        return cls(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3], in_channels=in_channels)


def conv_macs(x: Layers) -> np.ndarray:
    """Paper 000 eq. (1)'s complexity: sum_i f_{i-1} k_i^2 f_i s_i^2 (f_0 = input channels)."""
    return x.per_layer_sum(lambda i, c_in, side: c_in * x.k**2 * x.f * side**2)


def fc_macs(x: Layers) -> np.ndarray:
    return x.f * x.final_side**2 * x.num_classes


def conv_outputs(x: Layers) -> np.ndarray:
    """Elements written by the convolutions (read again by bias, ReLU and pooling)."""
    return x.per_layer_sum(lambda i, c_in, side: x.f * side**2)


def conv_inputs(x: Layers) -> np.ndarray:
    """Elements of the unfolded (im2col) conv input, c_in k^2 s_i^2: the memory side of a conv."""
    return x.per_layer_sum(lambda i, c_in, side: c_in * x.k**2 * side**2)


def conv_weights(x: Layers) -> np.ndarray:
    return x.per_layer_sum(lambda i, c_in, side: c_in * x.k**2 * x.f)


def layers(x: Layers) -> np.ndarray:
    return x.l.copy()


def total_macs(x: Layers) -> np.ndarray:
    """Every MAC cpbench.counting counts for the family: conv, bias, ReLU, 2x2 pooling (4 per
    output), the classifier and its bias. Equal to the stored count of an exported model."""
    pool = x.per_layer_sum(lambda i, c_in, side: x.f * np.floor(side / 2) ** 2 * 4)
    return conv_macs(x) + 2 * conv_outputs(x) + pool + fc_macs(x) + x.num_classes


def split_by_alignment(feature: FeatureFn, lanes: int, aligned: bool) -> FeatureFn:
    """The feature for configs whose f is (or is not) a multiple of `lanes`. Runtimes pick other
    conv kernels when channels fill whole SIMD registers (ONNX Runtime's NCHWc path, 8 fp32 lanes
    on AVX2, 16 on AVX-512), so a MAC does not cost the same on both sides."""

    def part(x: Layers) -> np.ndarray:
        mask = (x.f % lanes == 0) == aligned
        return feature(x) * mask

    return part


# name -> closed form; a new feature for the time models is one entry here
FEATURES: dict[str, FeatureFn] = {
    "macs": total_macs,
    "conv_macs": conv_macs,
    "fc_macs": fc_macs,
    "conv_outputs": conv_outputs,
    "conv_inputs": conv_inputs,
    "conv_weights": conv_weights,
    "layers": layers,
}
for _lanes in (8, 16):
    for _name in ("conv_macs", "conv_outputs"):
        FEATURES[f"{_name}_aligned{_lanes}"] = split_by_alignment(FEATURES[_name], _lanes, True)
        FEATURES[f"{_name}_unaligned{_lanes}"] = split_by_alignment(FEATURES[_name], _lanes, False)


def feature_matrix(names: Sequence[str], x: Layers) -> np.ndarray:
    """Columns in the order of `names`, one row per config."""
    return np.column_stack([FEATURES[name](x) for name in names]) if names else np.zeros((len(x.f), 0))
