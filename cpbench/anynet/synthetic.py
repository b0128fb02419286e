"""Random CNNs in the styles of the classic families (plain, residual, bottleneck, inverted residual
with squeeze-excite, dense, inception, shuffle), built from the calibrated op types. Timed whole
during calibration they teach how kernels compose into a network and how wide the interval around
a network's prediction must be; no torchvision network is among them."""

from __future__ import annotations

import random

from cpbench.anynet.builders import Builder

STYLES = ("plain", "residual", "bottleneck", "inverted", "dense", "inception", "shuffle")
ACTIVATIONS = ("Relu", "Clip", "hardswish", "silu")


def _act(b: Builder, x: str, act: str) -> str:
    if act == "hardswish":
        return b.binary(x, b.unary(x, "HardSigmoid"), "Mul")
    if act == "silu":
        return b.binary(x, b.unary(x, "Sigmoid"), "Mul")
    return b.unary(x, act)


def _conv_act(b: Builder, x: str, cout: int, k: int, stride: int, act: str, groups: int = 1) -> str:
    return _act(b, b.conv(x, cout, k, stride, groups), act)


def _squeeze_excite(b: Builder, x: str, rng: random.Random) -> str:
    c = b.shapes[x][1]
    squeezed = b.unary(b.conv(b.gap(x), max(8, c // 4), 1), "Relu")
    gate = b.unary(b.conv(squeezed, c, 1), rng.choice(("Sigmoid", "HardSigmoid")))
    return b.binary(x, gate, "Mul")


def _block(b: Builder, x: str, style: str, cout: int, stride: int, act: str, rng: random.Random) -> str:
    cin = b.shapes[x][1]
    if style == "plain":
        return _conv_act(b, x, cout, rng.choice((3, 3, 5)), stride, act)
    if style in ("residual", "bottleneck"):
        if style == "residual":
            y = b.conv(_conv_act(b, x, cout, 3, stride, act), cout, 3)
        else:
            mid = max(8, cout // 4)
            y = b.conv(_conv_act(b, _conv_act(b, x, mid, 1, 1, act), mid, 3, stride, act), cout, 1)
        shortcut = x if (stride == 1 and cin == cout) else b.conv(x, cout, 1, stride)
        return b.unary(b.binary(y, shortcut, "Add"), "Relu")
    if style == "inverted":
        mid = cin * rng.choice((3, 4, 6))
        y = _conv_act(b, x, mid, 1, 1, act)
        y = _conv_act(b, y, mid, rng.choice((3, 5)), stride, act, groups=mid)
        if rng.random() < 0.5:
            y = _squeeze_excite(b, y, rng)
        y = b.conv(y, cout, 1)
        return b.binary(y, x, "Add") if (stride == 1 and cin == cout) else y
    if style == "dense":
        growth = rng.choice((16, 32))
        if stride == 2:  # a transition
            y = b.conv(b.unary(b.unary(x, "BatchNormalization"), "Relu"), max(growth, cin // 2), 1)
            return b.pool(y, "AveragePool", 2, 2)
        y = b.conv(b.unary(b.unary(x, "BatchNormalization"), "Relu"), 4 * growth, 1)
        y = b.conv(b.unary(b.unary(y, "BatchNormalization"), "Relu"), growth, 3)
        return b.concat([x, y])
    if style == "inception":
        if stride == 2:
            x = b.pool(x, "MaxPool", 3, 2)
        quarter = max(8, cout // 4)
        branches = [
            _conv_act(b, x, quarter, 1, 1, act),
            _conv_act(b, _conv_act(b, x, quarter, 1, 1, act), quarter, 3, 1, act),
            _conv_act(b, _conv_act(b, x, quarter // 2, 1, 1, act), quarter, rng.choice((3, 5)), 1, act),
            _conv_act(b, b.pool(x, "MaxPool", 3, 1), quarter, 1, 1, act),
        ]
        return b.concat(branches)
    # shuffle: half the channels pass, the other half go through 1x1, depthwise 3x3, 1x1
    half = max(8, cout // 2)
    if stride == 1 and cin == cout and cin % 2 == 0:
        keep, work = b.channel_slice(x, 0, cin // 2), b.channel_slice(x, cin // 2, cin)
    else:
        keep = b.conv(b.conv(x, cin, 3, stride, groups=cin), half, 1)
        work = x
    y = _conv_act(b, work, half, 1, 1, "Relu")
    y = b.conv(y, half, 3, stride if work is x else 1, groups=half)
    y = _conv_act(b, y, cout - b.shapes[keep][1], 1, 1, "Relu")
    return b.shuffle(b.concat([keep, y]))


def random_network(seed: int) -> tuple[str, bytes]:
    """A random network (its id and ONNX bytes): a strided stem, three to five stages of one style
    that widen as they shrink the map, global pooling and a classifier."""
    rng = random.Random(seed)
    style = rng.choice(STYLES)
    side = rng.choice((64, 96, 128, 160, 192, 224))
    act = "Relu" if style in ("residual", "bottleneck", "dense", "shuffle") else rng.choice(ACTIVATIONS)
    b = Builder((1, 3, side, side), seed)
    width = rng.choice((16, 24, 32, 48, 64))
    x = _conv_act(b, "x", width, rng.choice((3, 7)) if style != "inverted" else 3, 2, act)
    if style != "inverted" and rng.random() < 0.6:
        x = b.pool(x, "MaxPool", 3, 2)
    for stage in range(rng.randint(3, 5)):
        if b.shapes[x][2] < 4:
            break
        width = min(1024, int(width * rng.choice((1.5, 2.0)))) // 8 * 8
        for index in range(rng.randint(1, 3)):
            stride = 2 if index == 0 and stage > 0 else 1
            x = _block(b, x, style, width, stride, act, rng)
    if style in ("plain", "inception") and rng.random() < 0.5:
        y = _large_classifier(b, x, rng)  # AlexNet's and VGG's: pooled to a small map, then wide layers
    else:
        y = b.gemm(b.flatten(b.gap(x)), 1000)
    return f"syn:{seed}:{style}:{side}", b.model([y])


def _large_classifier(b: Builder, x: str, rng: random.Random) -> str:
    """Two wide fully connected layers on a small pooled map, whose weights no cache holds."""
    while b.shapes[x][2] > 7:
        x = b.pool(x, "MaxPool", 2, 2)
    hidden = rng.choice((1024, 2048, 4096))
    y = b.flatten(x)
    while b.shapes[y][1] * hidden > 4e7:
        hidden //= 2
    y = b.unary(b.gemm(y, hidden), "Relu")
    y = b.unary(b.gemm(y, hidden), "Relu")
    return b.gemm(y, 1000)
