"""Kernel configurations sampled where real CNNs live: map sides from 3 to 224 (the sides classic
networks reach at 224, 160 and 112 inputs drawn more often), channels spread on a log scale from 3
to 1024, the kernel sizes and strides their convolutions use, and no kernel beyond what the largest
classic networks hold. Each kernel type is one sampler in SAMPLERS."""

from __future__ import annotations

import math
import random
from typing import Callable

from cpbench.anynet.builders import op_graph

SIDES = (4, 5, 7, 10, 13, 14, 20, 27, 28, 40, 55, 56, 80, 112, 160, 224)
MAX_CONV_MACS = 2.5e9  # VGG's largest conv at 224 is 1.85 G
MAX_ELEMENTS = 4_000_000  # 64 x 224 x 224 = 3.2 M, the largest activation of the classic networks
ELEMENTWISE_OPS = ("Relu", "Clip", "Sigmoid", "HardSigmoid", "Swish", "HardSwish", "Add", "Mul", "BatchNormalization",
                   "Slice", "Transpose")


def _side(rng: random.Random) -> int:
    return rng.choice(SIDES) if rng.random() < 0.6 else int(round(math.exp(rng.uniform(math.log(3), math.log(224)))))


def _channels(rng: random.Random, low: int = 3, high: int = 1024) -> int:
    c = int(round(math.exp(rng.uniform(math.log(low), math.log(high)))))
    return c if rng.random() < 0.15 else max(8, c // 8 * 8)  # classic networks' widths are mostly multiples of 8


def _conv(rng: random.Random) -> tuple[str, dict]:
    while True:
        k = rng.choices((1, 3, 5, 7, 11), (45, 35, 9, 8, 3))[0]
        stride = rng.choices((1, 2, 4), (72, 26, 2 if k >= 7 else 0))[0]
        side = _side(rng)
        if side < k:
            continue
        cin = 3 if rng.random() < 0.08 else _channels(rng)
        if cin > 3 and rng.random() < 0.7:  # networks widen or narrow by small factors from layer to layer
            cout = max(8, int(cin * rng.choice((0.25, 0.5, 1, 1, 2, 4, 6))) // 8 * 8)
        else:
            cout = _channels(rng, 8)
        out = (side + 2 * ((k - 1) // 2) - k) // stride + 1
        macs = cin * cout * k * k * out * out
        if 1e4 <= macs <= MAX_CONV_MACS:
            return "conv", {"cin": cin, "cout": cout, "h": side, "w": side, "kh": k, "kw": k, "stride": stride,
                            "dilation": 1, "groups": 1, "oh": out, "ow": out}


def _dwconv(rng: random.Random) -> tuple[str, dict]:
    k = rng.choices((3, 5, 7), (60, 30, 10))[0]
    stride = rng.choices((1, 2), (70, 30))[0]
    while True:
        side, c = _side(rng), _channels(rng, 8, 1536)
        if side >= k and c * side * side <= MAX_ELEMENTS:
            out = (side + 2 * ((k - 1) // 2) - k) // stride + 1
            return "dwconv", {"cin": c, "cout": c, "h": side, "w": side, "kh": k, "kw": k, "stride": stride,
                              "dilation": 1, "groups": c, "oh": out, "ow": out}


def _pool(rng: random.Random) -> tuple[str, dict]:
    op = rng.choice(("MaxPool", "MaxPool", "AveragePool"))
    k, stride = rng.choice(((2, 2), (3, 2), (3, 1), (3, 2)))
    while True:
        side, c = _side(rng), _channels(rng)
        if side >= k and c * side * side <= MAX_ELEMENTS:
            pad = (k - 1) // 2 if op == "MaxPool" else 0
            out = (side + 2 * pad - k) // stride + 1
            return "pool", {"op": op, "c": c, "h": side, "w": side, "k": k, "stride": stride, "oh": out, "ow": out}


def _gap(rng: random.Random) -> tuple[str, dict]:
    while True:
        side, c = _side(rng), _channels(rng, 8, 2048)
        if c * side * side <= MAX_ELEMENTS:
            return "gap", {"c": c, "h": side, "w": side}


def _gemm(rng: random.Random) -> tuple[str, dict]:
    while True:
        n_in = int(round(math.exp(rng.uniform(math.log(64), math.log(25088)))))
        n_out = rng.choice((10, 100, 1000, 1000, 1280, 4096)) if rng.random() < 0.7 else _channels(rng, 8, 4096)
        if n_in * n_out <= 1.1e8:
            return "gemm", {"n_in": n_in, "n_out": n_out}


def _elementwise(rng: random.Random) -> tuple[str, dict]:
    op = rng.choice(ELEMENTWISE_OPS)
    while True:
        side, c = _side(rng), _channels(rng, 8, 2048)
        if c * side * side <= MAX_ELEMENTS and (op not in ("Slice", "Transpose") or c % 2 == 0):
            broadcast = int(op == "Mul" and rng.random() < 0.5)
            elements = c * side * side // (2 if op == "Slice" else 1)
            return "elementwise", {"op": op, "elements": elements, "c": c // (2 if op == "Slice" else 1),
                                   "broadcast": broadcast}


def _concat(rng: random.Random) -> tuple[str, dict]:
    inputs = rng.choice((2, 2, 3, 4))
    while True:
        side, c = _side(rng), _channels(rng, 16, 2048) // inputs * inputs
        if c and c * side * side <= MAX_ELEMENTS:
            return "concat", {"elements": c * side * side, "c": c, "inputs": inputs}


SAMPLERS: dict[str, Callable[[random.Random], tuple[str, dict]]] = {
    "conv": _conv, "dwconv": _dwconv, "pool": _pool, "gap": _gap, "gemm": _gemm, "elementwise": _elementwise,
    "concat": _concat,
}
# samples per kernel type in a full calibration: the types that carry most of a network's time get most
SAMPLES = {"conv": 700, "dwconv": 200, "pool": 60, "gap": 40, "gemm": 50, "elementwise": 200, "concat": 50}


def sample_items(kind: str, count: int, seed: int, prefix: str = "k") -> list[tuple[str, str, dict, bytes]]:
    """`count` kernels of `kind` (id, kind, features, ONNX bytes), reproducible from the seed."""
    rng = random.Random(f"{kind}:{seed}")
    items = []
    for index in range(count):
        sampled_kind, features = SAMPLERS[kind](rng)
        items.append((f"{prefix}:{kind}:{seed}:{index}", sampled_kind, features, op_graph(sampled_kind, features)))
    return items
