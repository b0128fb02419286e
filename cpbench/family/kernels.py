"""The family as distinct kernels (nn-Meter's unit of latency): every network T = (f, s, k, l) is
a first conv block on the image, l - 1 inner blocks, and the classifier, each block being
[k x k conv, same padding -> ReLU -> 2x2 max-pool]. A kernel is timed alone on a device as its own
ONNX graph, built here with the very node types and attributes the exporter writes for the whole
network (tests/test_kernels.py checks that against the torch export), so a device can be
calibrated without torch and a network predicted as the sum of its kernels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cpbench.family.config import Config

OPSET = 18
CLASSES = 10
PAIR_KINDS = ("first-pair", "inner-pair")  # a pair: that block, then an inner block at half the side
CONV_KINDS = ("first", "inner") + PAIR_KINDS
NETWORK_PREFIX = "network-l"  # a whole network of depth l as one kernel: kinds network-l1, network-l2, ...
KINDS = CONV_KINDS + ("classifier", "empty")  # and network-l<depth>, one kind per depth of the space


def network_kind(depth: int) -> str:
    return f"{NETWORK_PREFIX}{depth}"


def network_depth(kind: str) -> int:
    """The depth of a whole-network kind; 0 for any other kind."""
    return int(kind[len(NETWORK_PREFIX):]) if kind.startswith(NETWORK_PREFIX) else 0


@dataclass(frozen=True, order=True)
class Kernel:
    """One distinct piece of work. conv kinds: c_in -> f channels at s x s with k x k kernels
    (first: c_in is the image's channels; inner: c_in = f); a pair kind is that block followed by
    an inner block at s // 2, timed as one graph (nn-Meter's test for what two consecutive kernels
    share: inside a network a runtime keeps the tensor between two blocks in its own layout and
    precision, which a block timed alone converts at both ends); classifier: a flattened input of
    `features` values -> CLASSES; empty: a call that does nothing (the per-inference cost)."""

    kind: str
    f: int = 0
    s: int = 0
    k: int = 0
    c_in: int = 0
    features: int = 0

    @property
    def id(self) -> str:
        if self.kind == "classifier":
            return f"classifier-n{self.features}"
        if self.kind == "empty":
            return "empty"
        return f"{self.kind}-c{self.c_in}-f{self.f}-s{self.s}-k{self.k}"

    def input_shape(self) -> list[int]:
        if self.kind == "classifier":
            return [1, self.features, 1, 1]
        if self.kind == "empty":
            return [1, 1, 1, 1]
        return [1, self.c_in, self.s, self.s]


def first(f: int, s: int, k: int, in_channels: int = 1) -> Kernel:
    return Kernel("first", f=f, s=s, k=k, c_in=in_channels)


def inner(f: int, s: int, k: int) -> Kernel:
    return Kernel("inner", f=f, s=s, k=k, c_in=f)


def first_pair(f: int, s: int, k: int, in_channels: int = 1) -> Kernel:
    return Kernel("first-pair", f=f, s=s, k=k, c_in=in_channels)


def inner_pair(f: int, s: int, k: int) -> Kernel:
    return Kernel("inner-pair", f=f, s=s, k=k, c_in=f)


def whole_network(f: int, s: int, k: int, depth: int, in_channels: int = 1) -> Kernel:
    return Kernel(network_kind(depth), f=f, s=s, k=k, c_in=in_channels)


def classifier(features: int) -> Kernel:
    return Kernel("classifier", features=features)


EMPTY = Kernel("empty")


def kernels_of(config: Config, in_channels: int = 1) -> list[Kernel]:
    """The kernels `config` runs, in order: first block, inner blocks, classifier."""
    out = [first(config.f, config.s, config.k, in_channels)]
    size = config.s // 2
    for _ in range(config.l - 1):
        out.append(inner(config.f, size, config.k))
        size //= 2
    out.append(classifier(config.f * size * size))
    return out


def _conv_block(index: int, c_in: int, f: int, k: int, source: str, rng: np.random.Generator) -> tuple[list, list, str]:
    from onnx import helper, numpy_helper

    weight = numpy_helper.from_array(rng.standard_normal((f, c_in, k, k)).astype(np.float32), f"conv{index}.weight")
    bias = numpy_helper.from_array(rng.standard_normal(f).astype(np.float32), f"conv{index}.bias")
    nodes = [
        helper.make_node("Conv", [source, weight.name, bias.name], [f"conv{index}"], auto_pad="SAME_UPPER",
                         dilations=[1, 1], group=1, kernel_shape=[k, k], strides=[1, 1]),
        helper.make_node("Relu", [f"conv{index}"], [f"relu{index}"]),
        helper.make_node("MaxPool", [f"relu{index}"], [f"pool{index}"], ceil_mode=0, dilations=[1, 1],
                         kernel_shape=[2, 2], pads=[0, 0, 0, 0], strides=[2, 2]),
    ]
    return nodes, [weight, bias], f"pool{index}"


def _classifier(source: str, features: int, rng: np.random.Generator) -> tuple[list, list, str]:
    from onnx import helper, numpy_helper

    weight = numpy_helper.from_array((rng.standard_normal((CLASSES, features)) * 0.01).astype(np.float32), "fc.weight")
    bias = numpy_helper.from_array(np.zeros(CLASSES, np.float32), "fc.bias")
    nodes = [helper.make_node("Flatten", [source], ["flat"], axis=1),
             helper.make_node("Gemm", ["flat", weight.name, bias.name], ["output"], alpha=1.0, beta=1.0, transB=1)]
    return nodes, [weight, bias], "output"


def _model(nodes: list, initializers: list, input_shape: list[int], output: str, output_shape: list[int] | None):
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes, "cpbench-kernel", [helper.make_tensor_value_info("input", TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, output_shape)], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="cpbench")
    model.ir_version = 9  # what the pinned onnxruntime and OpenVINO read
    return model


def kernel_graph(kernel: Kernel, seed: int = 0):
    """The ONNX model that runs `kernel` alone (random weights: latency does not depend on them)."""
    from onnx import helper

    rng = np.random.default_rng(seed)
    if kernel.kind in ("first", "inner"):
        nodes, weights, output = _conv_block(0, kernel.c_in, kernel.f, kernel.k, "input", rng)
        return _model(nodes, weights, kernel.input_shape(), output, None)
    if kernel.kind in PAIR_KINDS:
        nodes, weights, middle = _conv_block(0, kernel.c_in, kernel.f, kernel.k, "input", rng)
        more, params, output = _conv_block(1, kernel.f, kernel.f, kernel.k, middle, rng)
        return _model(nodes + more, weights + params, kernel.input_shape(), output, None)
    if network_depth(kernel.kind):
        return network_graph(Config(kernel.f, kernel.s, kernel.k, network_depth(kernel.kind)), kernel.c_in, seed)
    if kernel.kind == "classifier":
        nodes, weights, output = _classifier("input", kernel.features, rng)
        return _model(nodes, weights, kernel.input_shape(), output, [1, CLASSES])
    if kernel.kind == "empty":
        return _model([helper.make_node("Identity", ["input"], ["output"])], [], kernel.input_shape(), "output", None)
    raise ValueError(f"unknown kernel kind {kernel.kind!r}")


def network_graph(config: Config, in_channels: int = 1, seed: int = 0):
    """The whole network as the exporter writes it (same nodes and attributes; fixed batch of 1)."""
    rng = np.random.default_rng(seed)
    nodes, weights, source, channels = [], [], "input", in_channels
    for index in range(config.l):
        block, params, source = _conv_block(index, channels, config.f, config.k, source, rng)
        nodes += block
        weights += params
        channels = config.f
    block, params, output = _classifier(source, config.f * config.final_size**2, rng)
    return _model(nodes + block, weights + params, [1, in_channels, config.s, config.s], output, [1, CLASSES])
