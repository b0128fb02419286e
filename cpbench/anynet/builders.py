"""ONNX graphs built op by op, without torch: the single kernels and pairs a device is calibrated
with, and the synthetic networks that teach how kernels compose. Weights are random (latency does
not depend on their values); every tensor shape is static."""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 18


class Builder:
    """A graph grown one op at a time; each method returns the output tensor's name and records
    its shape, so callers chain ops as they would layers."""

    def __init__(self, shape: tuple[int, ...], seed: int = 0) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))]
        self.shapes: dict[str, tuple[int, ...]] = {"x": tuple(shape)}
        self._rng = np.random.default_rng(seed)
        self._count = 0

    def _name(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}{self._count}"

    def _weight(self, shape: tuple[int, ...], scale: float = 0.05) -> str:
        name = self._name("w")
        values = self._rng.standard_normal(shape, dtype=np.float32) * np.float32(scale)
        self.initializers.append(numpy_helper.from_array(values, name))
        return name

    def _node(self, op: str, inputs: list[str], shape: tuple[int, ...], **attrs) -> str:
        out = self._name("t")
        self.nodes.append(helper.make_node(op, inputs, [out], name=self._name(op.lower()), **attrs))
        self.shapes[out] = tuple(shape)
        return out

    def extra_input(self, shape: tuple[int, ...]) -> str:
        name = f"x{len(self.inputs)}"
        self.inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape)))
        self.shapes[name] = tuple(shape)
        return name

    def conv(self, x: str, cout: int, k: int, stride: int = 1, groups: int = 1, dilation: int = 1) -> str:
        n, c, h, w = self.shapes[x]
        pad = dilation * (k - 1) // 2
        oh = (h + 2 * pad - dilation * (k - 1) - 1) // stride + 1
        ow = (w + 2 * pad - dilation * (k - 1) - 1) // stride + 1
        weight = self._weight((cout, c // groups, k, k), scale=1.0 / math.sqrt(c // groups * k * k))
        bias = self._weight((cout,))
        return self._node("Conv", [x, weight, bias], (n, cout, oh, ow), kernel_shape=[k, k], strides=[stride, stride],
                          pads=[pad] * 4, group=groups, dilations=[dilation, dilation])

    def pool(self, x: str, op: str, k: int, stride: int) -> str:
        n, c, h, w = self.shapes[x]
        pad = (k - 1) // 2 if op == "MaxPool" else 0
        oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
        return self._node(op, [x], (n, c, oh, ow), kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4)

    def gap(self, x: str) -> str:
        n, c, _, _ = self.shapes[x]
        return self._node("GlobalAveragePool", [x], (n, c, 1, 1))

    def flatten(self, x: str) -> str:
        shape = self.shapes[x]
        return self._node("Flatten", [x], (shape[0], math.prod(shape[1:])), axis=1)

    def gemm(self, x: str, n_out: int) -> str:
        n, n_in = self.shapes[x]
        return self._node("Gemm", [x, self._weight((n_out, n_in)), self._weight((n_out,))], (n, n_out), transB=1)

    def unary(self, x: str, op: str) -> str:
        shape = self.shapes[x]
        if op == "Clip":
            low = numpy_helper.from_array(np.array(0.0, np.float32), self._name("lo"))
            high = numpy_helper.from_array(np.array(6.0, np.float32), self._name("hi"))
            self.initializers += [low, high]
            return self._node("Clip", [x, low.name, high.name], shape)
        if op == "BatchNormalization":
            c = shape[1]
            scale, bias, mean = self._weight((c,)), self._weight((c,)), self._weight((c,))
            var = numpy_helper.from_array(np.ones(c, np.float32), self._name("var"))
            self.initializers.append(var)
            return self._node(op, [x, scale, bias, mean, var.name], shape)
        if op in ("Swish", "HardSwish"):  # as exporters write them: x * gate(x)
            return self.binary(x, self.unary(x, "Sigmoid" if op == "Swish" else "HardSigmoid"), "Mul")
        if op == "Softmax":
            return self._node(op, [x], shape, axis=1)
        return self._node(op, [x], shape)

    def binary(self, x: str, y: str, op: str) -> str:
        return self._node(op, [x, y], self.shapes[x])

    def concat(self, tensors: list[str]) -> str:
        first = self.shapes[tensors[0]]
        channels = sum(self.shapes[t][1] for t in tensors)
        return self._node("Concat", tensors, (first[0], channels, *first[2:]), axis=1)

    def channel_slice(self, x: str, start: int, end: int) -> str:
        n, _, h, w = self.shapes[x]
        names = []
        for value in ([start], [end], [1]):
            tensor = numpy_helper.from_array(np.array(value, np.int64), self._name("s"))
            self.initializers.append(tensor)
            names.append(tensor.name)
        return self._node("Slice", [x, *names], (n, end - start, h, w))

    def shuffle(self, x: str, groups: int = 2) -> str:
        """A channel shuffle as ShuffleNet's exporter writes it: reshape, transpose, reshape."""
        n, c, h, w = self.shapes[x]
        split = self._node("Reshape", [x, self._shape((n, groups, c // groups, h, w))], (n, groups, c // groups, h, w))
        moved = self._node("Transpose", [split], (n, c // groups, groups, h, w), perm=[0, 2, 1, 3, 4])
        return self._node("Reshape", [moved, self._shape((n, c, h, w))], (n, c, h, w))

    def _shape(self, shape: tuple[int, ...]) -> str:
        tensor = numpy_helper.from_array(np.array(shape, np.int64), self._name("shape"))
        self.initializers.append(tensor)
        return tensor.name

    def model(self, outputs: list[str]) -> bytes:
        graph = helper.make_graph(
            self.nodes, "cpbench-anynet", self.inputs,
            [helper.make_tensor_value_info(o, TensorProto.FLOAT, list(self.shapes[o])) for o in outputs],
            self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="cpbench")
        model.ir_version = 8
        return model.SerializeToString()


def spatial_for(elements: int, channels: int) -> int:
    """The side of a square map holding `elements` values over `channels` channels."""
    return max(1, round(math.sqrt(max(1, elements // max(1, channels)))))


def apply_op(b: Builder, x: str, kind: str, f: dict) -> str:
    """One op of `kind` with features `f` on tensor x (whose shape the caller made to fit)."""
    if kind in ("conv", "dwconv"):
        return b.conv(x, f["cout"], f["kh"], f["stride"], f["groups"], f.get("dilation", 1))
    if kind == "pool":
        return b.pool(x, f["op"], f["k"], f["stride"])
    if kind == "gap":
        return b.gap(x)
    if kind == "gemm":
        return b.gemm(x, f["n_out"])
    if kind == "concat":
        n, c, h, w = b.shapes[x]
        parts = [x] + [b.extra_input((n, c, h, w)) for _ in range(f["inputs"] - 1)]
        return b.concat(parts)
    if kind == "elementwise":
        op = f["op"]
        shape = b.shapes[x]
        if op in ("Add", "Mul", "Sub", "Div"):
            other = b.extra_input(shape[:2] + (1,) * (len(shape) - 2) if f.get("broadcast") else shape)
            return b.binary(x, other, op)
        if op not in ("Slice", "Transpose"):
            return b.unary(x, op)
        n, c, h, w = shape
        if op == "Slice":
            return b.channel_slice(x, 0, max(1, c // 2))
        return b.shuffle(x) if c % 2 == 0 else b._node("Transpose", [x], (n, c, w, h), perm=[0, 1, 3, 2])
    raise ValueError(f"no builder for kernel type {kind!r}")


def input_shape(kind: str, f: dict) -> tuple[int, ...]:
    """The input one op of `kind` with features f reads."""
    if kind in ("conv", "dwconv"):
        return (1, f["cin"], f["h"], f["w"])
    if kind in ("pool", "gap"):
        return (1, f["c"], f["h"], f["w"])
    if kind == "gemm":
        return (1, f["n_in"])
    c = f.get("c") or 1
    if kind == "concat":
        c = max(1, c // f["inputs"])
        side = spatial_for(f["elements"], c * f["inputs"])
        return (1, c, side, side)
    if f.get("op") == "Slice":
        c *= 2
    side = spatial_for(f["elements"] * (2 if f.get("op") == "Slice" else 1), c)
    return (1, c, side, side)


def op_graph(kind: str, f: dict, then: list[tuple[str, dict]] = ()) -> bytes:
    """A graph of one op (and the ops in `then` applied after it: a fusion candidate)."""
    b = Builder(input_shape(kind, f))
    y = apply_op(b, "x", kind, f)
    for next_kind, next_f in then:
        y = apply_op(b, y, next_kind, next_f)
    return b.model([y])
