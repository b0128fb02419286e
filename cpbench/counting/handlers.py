"""Op handlers: op type -> (category, MACs) from a node and its shapes, as fvcore's jit_handles.

Each handler sees the node with its input and output shapes and returns {category: MACs}. Ops in
ZERO_COST are data movement and count 0 on purpose; any other op without a handler is reported as
*uncounted* by the count, never as a silent zero. MACs are the base unit; FLOPs = 2 x MACs.

Categories let totals match other tools' conventions: torchvision publishes conv + linear (+ the
MatMuls of attention) MACs and leaves out bias, normalisation, activations and pooling.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import onnx
from onnx import TensorProto, helper


# The categories, in display order. The first three are the "core" MACs torchvision publishes.
CORE = ("conv", "linear", "matmul")
CATEGORIES = CORE + ("bias", "norm", "activation", "pool", "elementwise", "softmax")

Shape = tuple[int, ...]


@dataclass
class NodeInfo:
    """What a handler sees: the node, its attributes, and static input/output shapes (None if absent)."""

    node: onnx.NodeProto
    inputs: list[Shape | None]
    outputs: list[Shape | None]
    initializers: set[str]

    def attr(self, name: str, default=None):
        for a in self.node.attribute:
            if a.name == name:
                return helper.get_attribute_value(a)
        return default

    def has_input(self, index: int) -> bool:
        return len(self.node.input) > index and self.node.input[index] != ""

    def is_weight(self, index: int) -> bool:
        return self.has_input(index) and self.node.input[index] in self.initializers


Counts = dict[str, int]  # category -> MACs
Handler = Callable[[NodeInfo], Counts]


def numel(shape: Shape | None) -> int:
    return 0 if shape is None else math.prod(shape)


# --------------------------------------------------------------------------------------------
# Handlers. Each is a closed form over shapes; tests check them on hand-built graphs.


def _conv_counts(info: NodeInfo, driver: Shape) -> Counts:
    """Each element of `driver` meets w[1] x prod(kernel) weights; a bias adds one per output."""
    w = info.inputs[1]
    counts = {"conv": numel(driver) * (w[1] * math.prod(w[2:]))}
    if info.has_input(2):
        counts["bias"] = numel(info.outputs[0])
    return counts


def conv(info: NodeInfo) -> Counts:
    """Paper 003 eqs. 2-4: every output element costs (C_in / groups) x prod(kernel) MACs
    (w: [C_out, C_in/groups, *kernel]). A weight that does not fit the input's channels is an
    inconsistent graph (no runtime would run it), never a count."""
    x, w = info.inputs[0], info.inputs[1]
    groups = int(info.attr("group", 1))
    if x is not None and w is not None and len(x) >= 2 and len(w) >= 2 and w[1] * groups != x[1]:
        from cpbench.errors import UsageError

        raise UsageError(f"Conv node '{info.node.name or info.node.output[0]}' has weights for {w[1] * groups} input "
                         f"channels but its input has {x[1]}; the graph is inconsistent: re-export the model")
    return _conv_counts(info, info.outputs[0])


def conv_transpose(info: NodeInfo) -> Counts:
    """Every input element is scattered through (C_out / groups) x prod(kernel) weights
    (w: [C_in, C_out/groups, *kernel])."""
    return _conv_counts(info, info.inputs[0])


def gemm(info: NodeInfo) -> Counts:
    a, b = info.inputs[0], info.inputs[1]
    m, k = (a[1], a[0]) if info.attr("transA", 0) else (a[0], a[1])
    n = b[0] if info.attr("transB", 0) else b[1]
    counts = {"linear": m * n * k}
    if info.has_input(2):
        counts["bias"] = m * n
    return counts


def matmul(info: NodeInfo) -> Counts:
    """Batched and broadcast MatMul: each output element is a dot product of length K.

    A MatMul against a weight is a linear layer; one between two activations (attention) is 'matmul'.
    """
    a, y = info.inputs[0], info.outputs[0]
    k = a[-1]
    category = "linear" if info.is_weight(1) or info.is_weight(0) else "matmul"
    return {category: numel(y) * k}


def einsum(info: NodeInfo) -> Counts:
    """Every combination of the equation's letters is one multiply-add (two-operand contractions)."""
    equation = info.attr("equation", b"")
    equation = equation.decode() if isinstance(equation, bytes) else equation
    operands = equation.replace(" ", "").split("->")[0].split(",")
    sizes: dict[str, int] = {}
    for letters, shape in zip(operands, info.inputs):
        if "..." in letters:
            head, tail = letters.split("...")
            broadcast = len(shape) - len(head) - len(tail)
            labels = list(head) + [f"...{i}" for i in range(broadcast)] + list(tail)
        else:
            labels = list(letters)
        for label, size in zip(labels, shape):
            sizes[label] = max(sizes.get(label, 1), size)
    category = "linear" if any(info.is_weight(i) for i in range(len(operands))) else "matmul"
    return {category: math.prod(sizes.values())}


def per_output(category: str, factor: int = 1) -> Handler:
    def handler(info: NodeInfo) -> Counts:
        return {category: factor * numel(info.outputs[0])}

    return handler


def per_input(category: str) -> Handler:
    def handler(info: NodeInfo) -> Counts:
        return {category: numel(info.inputs[0])}

    return handler


def pool(info: NodeInfo) -> Counts:
    kernel = info.attr("kernel_shape", [])
    return {"pool": numel(info.outputs[0]) * math.prod(kernel)}


def global_pool(info: NodeInfo) -> Counts:
    return {"pool": numel(info.inputs[0])}


HANDLERS: dict[str, Handler] = {
    "Conv": conv,
    "ConvTranspose": conv_transpose,
    "Gemm": gemm,
    "MatMul": matmul,
    "Einsum": einsum,
    "BatchNormalization": per_output("norm"),  # one multiply-add per element after folding
    "InstanceNormalization": per_output("norm", 2),
    "LayerNormalization": per_output("norm", 2),
    "GroupNormalization": per_output("norm", 2),
    "MaxPool": pool,
    "AveragePool": pool,
    "LpPool": pool,
    "GlobalAveragePool": global_pool,
    "GlobalMaxPool": global_pool,
    "Softmax": per_output("softmax"),
    "LogSoftmax": per_output("softmax"),
}
ACTIVATIONS = (
    "Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Gelu", "Sigmoid", "HardSigmoid", "HardSwish",
    "Tanh", "Softplus", "Softsign", "Mish", "Clip", "ThresholdedRelu", "Erf",
)
ELEMENTWISE = (
    "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Exp", "Log", "Neg", "Abs", "Reciprocal", "Max", "Min",
    "Sum", "Mean", "Where", "Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "Not", "And",
    "Or", "Xor", "Floor", "Ceil", "Round", "Sin", "Cos", "Sign", "Mod", "Resize", "Upsample",
)
REDUCTIONS = ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2", "ReduceSumSquare", "ReduceLogSumExp")
HANDLERS.update({op: per_output("activation") for op in ACTIVATIONS})
HANDLERS.update({op: per_output("elementwise") for op in ELEMENTWISE})
HANDLERS.update({op: per_input("elementwise") for op in REDUCTIONS})

# Data movement and shape bookkeeping: 0 MACs by definition, not by ignorance.
ZERO_COST = frozenset({
    "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Concat", "Split", "Slice", "Gather",
    "GatherElements", "GatherND", "Shape", "Size", "Constant", "ConstantOfShape", "Identity", "Expand",
    "Pad", "Dropout", "Range", "Tile", "Cast", "CastLike", "DepthToSpace", "SpaceToDepth", "ScatterND",
    "ScatterElements", "NonZero", "TopK", "ArgMax", "ArgMin", "OneHot", "Trilu", "SplitToSequence",
})

# Bytes per element of the tensor types a CNN meets.
DTYPE_BYTES = {
    TensorProto.FLOAT: 4, TensorProto.FLOAT16: 2, TensorProto.BFLOAT16: 2, TensorProto.DOUBLE: 8,
    TensorProto.INT8: 1, TensorProto.UINT8: 1, TensorProto.INT16: 2, TensorProto.UINT16: 2,
    TensorProto.INT32: 4, TensorProto.UINT32: 4, TensorProto.INT64: 8, TensorProto.UINT64: 8,
    TensorProto.BOOL: 1,
}



# How many leading inputs a handler reads the shape of (all read output 0).
SHAPED_INPUTS = {"Conv": 2, "ConvTranspose": 2, "Gemm": 2, "MatMul": 2, "Einsum": 2, "GlobalAveragePool": 1, "GlobalMaxPool": 1}
SHAPED_INPUTS.update({op: 1 for op in REDUCTIONS})
