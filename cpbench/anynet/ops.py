"""An ONNX graph as a list of ops, each with the kernel type that predicts it and that type's
features. A kernel type is one registry entry (KINDS): which ops it takes and the numbers that
describe one of them. The graph is first simplified the way every runtime starts (constants folded,
BatchNorm folded into a preceding conv, identities dropped) by ONNX Runtime's basic level, so the ops
read here are the ones a runtime plans its kernels from."""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import onnx

from cpbench.counting.graph import infer_shapes, resolve_inputs
from cpbench.counting.handlers import HANDLERS, NodeInfo, Shape, numel
from cpbench.errors import UsageError, first_line

# ops that only relabel a tensor: no kernel runs for them in either runtime
FREE_OPS = frozenset({"Reshape", "Flatten", "Identity", "Dropout", "Squeeze", "Unsqueeze"})
UNARY_OPS = ("Relu", "Clip", "HardSwish", "Swish", "HardSigmoid", "Sigmoid", "Tanh", "LeakyRelu", "Elu", "Softmax",
             "BatchNormalization")
BINARY_OPS = ("Add", "Mul", "Sub", "Div")
COPY_OPS = ("Transpose", "Slice", "Split", "Pad")
ELEMENTWISE_OPS = UNARY_OPS + BINARY_OPS + COPY_OPS
FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16)


@dataclass(frozen=True)
class Op:
    """One node of the simplified graph: its kernel type (None: not covered), the features that type
    is predicted from, and its MACs (for the share an uncovered op leaves unexplained)."""

    name: str
    op_type: str
    kind: str | None
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    features: dict = field(default_factory=dict)
    macs: int = 0


def _attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _conv(node, shapes) -> tuple[str, dict] | None:
    x, w, y = shapes.get(node.input[0]), shapes.get(node.input[1]), shapes.get(node.output[0])
    if x is None or w is None or y is None or len(x) != 4:
        return None
    groups = int(_attr(node, "group", 1))
    strides = _attr(node, "strides", [1, 1])
    dilations = _attr(node, "dilations", [1, 1])
    features = {"cin": x[1], "cout": y[1], "h": x[2], "w": x[3], "kh": w[2], "kw": w[3], "stride": int(strides[0]),
                "dilation": int(dilations[0]), "groups": groups, "oh": y[2], "ow": y[3]}
    depthwise = groups > 1 and groups == x[1]
    return ("dwconv" if depthwise else "conv"), features


def _pool(node, shapes) -> tuple[str, dict] | None:
    x, y = shapes.get(node.input[0]), shapes.get(node.output[0])
    if x is None or y is None or len(x) != 4:
        return None
    kernel = _attr(node, "kernel_shape", [1, 1])
    strides = _attr(node, "strides", [1, 1])
    return "pool", {"op": node.op_type, "c": x[1], "h": x[2], "w": x[3], "k": int(kernel[0]), "stride": int(strides[0]),
                    "oh": y[2], "ow": y[3]}


def _global_pool(node, shapes) -> tuple[str, dict] | None:
    x, y = shapes.get(node.input[0]), shapes.get(node.output[0])
    if x is None or y is None or len(x) != 4:
        return None
    if node.op_type == "ReduceMean" and math.prod(y) != x[0] * x[1]:  # a mean over anything but the spatial axes
        return None
    return "gap", {"c": x[1], "h": x[2], "w": x[3]}


def _gemm(node, shapes) -> tuple[str, dict] | None:
    a, y = shapes.get(node.input[0]), shapes.get(node.output[0])
    if a is None or y is None or math.prod(a[:-1]) != 1:
        return None
    return "gemm", {"n_in": a[-1], "n_out": y[-1]}


def _elementwise(node, shapes) -> tuple[str, dict] | None:
    y = shapes.get(node.output[0])
    if y is None:
        return None
    inputs = [numel(shapes.get(i)) for i in node.input[:2] if i]
    smaller = min(inputs) if len(inputs) > 1 else numel(y)
    return "elementwise", {"op": node.op_type, "elements": numel(y), "c": y[1] if len(y) > 1 else 1,
                           "broadcast": int(smaller < numel(y))}


def _concat(node, shapes) -> tuple[str, dict] | None:
    y = shapes.get(node.output[0])
    if y is None:
        return None
    return "concat", {"elements": numel(y), "c": y[1] if len(y) > 1 else 1, "inputs": len(node.input)}


@dataclass(frozen=True)
class OpKind:
    """A kernel type: the ops it predicts and how one op's features are read from the graph."""

    name: str
    op_types: tuple[str, ...]
    read: Callable[[onnx.NodeProto, dict[str, Shape]], tuple[str, dict] | None]


KINDS: dict[str, OpKind] = {k.name: k for k in (
    OpKind("conv", ("Conv",), _conv),  # dwconv comes out of the same reader
    OpKind("pool", ("MaxPool", "AveragePool"), _pool),
    OpKind("gap", ("GlobalAveragePool", "GlobalMaxPool", "ReduceMean"), _global_pool),
    OpKind("gemm", ("Gemm", "MatMul"), _gemm),
    OpKind("elementwise", ELEMENTWISE_OPS, _elementwise),
    OpKind("concat", ("Concat",), _concat),
)}
READERS = {op: kind.read for kind in KINDS.values() for op in kind.op_types}
PREDICTED_KINDS = ("conv", "dwconv", "pool", "gap", "gemm", "elementwise", "concat")


def simplify(path: Path) -> onnx.ModelProto:
    """The graph after ONNX Runtime's basic, layout-free optimisations (what any runtime folds before
    planning kernels), with static shapes inferred."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.log_severity_level = 4
    with tempfile.TemporaryDirectory(prefix="cpbench-anynet-") as folder:
        options.optimized_model_filepath = str(Path(folder) / "simplified.onnx")
        try:
            ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            return onnx.load(options.optimized_model_filepath)
        except Exception as exc:
            raise UsageError(f"{path} cannot be read as an ONNX model ({first_line(exc)}); "
                             "give a valid .onnx file with static input shapes") from None


def read_ops(model: onnx.ModelProto, input_shape: Shape | None = None) -> list[Op]:
    """Every node of `model` as an Op in graph order; a node no kind covers gets kind None."""
    inputs = resolve_inputs(model, input_shape)
    shapes, types = infer_shapes(model, inputs)
    weights = {i.name for i in model.graph.initializer}
    ops = []
    for index, node in enumerate(model.graph.node):
        info = NodeInfo(node, [shapes.get(i) if i else None for i in node.input], [shapes.get(o) for o in node.output],
                        weights)
        handler = HANDLERS.get(node.op_type)
        try:
            macs = int(sum(handler(info).values())) if handler else 0
        except Exception:  # a shape the counting handler cannot read: no MACs, never a crash
            macs = 0
        read = READERS.get(node.op_type)
        found = read(node, shapes) if read and node.domain in ("", "ai.onnx") else None
        if node.op_type in FREE_OPS or not _on_activations(node, types):
            kind, features = "free", {}
        elif found is None:
            kind, features = None, {}
        else:
            kind, features = found
        ops.append(Op(node.name or f"{node.op_type}_{index}", node.op_type, kind, tuple(node.input),
                      tuple(node.output), features, macs))
    return _swish_diamonds(ops)


def _swish_diamonds(ops: list[Op]) -> list[Op]:
    """x * sigmoid(x) and x * hardsigmoid(x) as one elementwise op (Swish, HardSwish), as runtimes
    treat them: two nodes that read the same tensor are one activation, fused or not as a whole."""
    producer = {out: op for op in ops for out in op.outputs}
    readers: dict[str, int] = {}
    for op in ops:
        for name in op.inputs:
            readers[name] = readers.get(name, 0) + 1
    merged: dict[str, Op] = {}  # the gate's name -> the Mul that absorbs it
    for op in ops:
        if op.op_type != "Mul" or len(op.inputs) != 2:
            continue
        for x, gate in (op.inputs, op.inputs[::-1]):
            g = producer.get(gate)
            if g is not None and g.op_type in ("Sigmoid", "HardSigmoid") and g.inputs[:1] == (x,) and readers[gate] == 1:
                fused = "Swish" if g.op_type == "Sigmoid" else "HardSwish"
                merged[g.name] = Op(op.name, fused, "elementwise", (x,), op.outputs, {**op.features, "op": fused,
                                    "broadcast": 0}, op.macs + g.macs)
                break
    absorbed = {m.name for m in merged.values()}
    out = []
    for op in ops:
        if op.name in merged:
            out.append(merged[op.name])
        elif op.name not in absorbed:
            out.append(op)
    return out


def _on_activations(node: onnx.NodeProto, types: dict[str, int]) -> bool:
    """False for the integer arithmetic on shapes (Shape, Gather, Div on int64) that an exporter
    leaves for a reshape: scalars computed once per inference, not a kernel worth a prediction."""
    out = node.output[0] if node.output else ""
    return node.op_type != "Shape" and types.get(out, onnx.TensorProto.FLOAT) in FLOAT_TYPES


def uncovered(ops: list[Op]) -> list[dict]:
    """The ops no kernel type covers, by op type, with their share of the network's MACs."""
    total = sum(op.macs for op in ops) or 1
    by_type: dict[str, dict] = {}
    for op in ops:
        if op.kind is None:
            row = by_type.setdefault(op.op_type, {"op_type": op.op_type, "nodes": 0, "macs": 0})
            row["nodes"] += 1
            row["macs"] += op.macs
    return [{**row, "mac_share": row["macs"] / total} for row in by_type.values()]
