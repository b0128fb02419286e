"""Complexity of any ONNX graph: MACs per layer and category, parameters, weight and activation bytes.

Built like fvcore's flop counter: a registry maps op type -> handler; each handler sees the node
with its input and output shapes and returns (category, MACs). Ops in ZERO_COST are data movement
and count 0 on purpose; any other op without a handler is reported as *uncounted*, never as a
silent zero. MACs are the base unit; FLOPs = 2 x MACs.

Categories let totals match other tools' conventions: torchvision publishes conv + linear (+ the
MatMuls of attention) MACs and leaves out bias, normalisation, activations and pooling.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import onnx
from onnx import TensorProto, helper, shape_inference

from cpbench.errors import UsageError

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
    (w: [C_out, C_in/groups, *kernel])."""
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


@dataclass
class LayerCount:
    """One row per node."""

    name: str
    op_type: str
    domain: str
    output_shape: Shape | None
    macs: Counts
    params: int
    counted: bool  # False: no handler; its cost is unknown, not zero

    @property
    def total_macs(self) -> int:
        return sum(self.macs.values())

    def as_dict(self) -> dict:
        return {
            "name": self.name, "op_type": self.op_type, "domain": self.domain,
            "output_shape": list(self.output_shape) if self.output_shape else None,
            "macs": self.total_macs, "macs_by_category": dict(self.macs),
            "params": self.params, "counted": self.counted,
        }


@dataclass
class GraphCount:
    """Totals for one model; MACs by category so a total can follow any tool's convention."""

    input_shapes: dict[str, Shape]
    layers: list[LayerCount]
    params: int
    weight_bytes: int
    activation_bytes: int
    macs_by_category: dict[str, int] = field(default_factory=dict)
    uncounted: dict[str, int] = field(default_factory=dict)  # op type (domain-qualified) -> nodes

    @property
    def core_macs(self) -> int:
        """conv + linear + matmul: torchvision's published 'GFLOPS' convention."""
        return sum(self.macs_by_category.get(c, 0) for c in CORE)

    @property
    def total_macs(self) -> int:
        return sum(self.macs_by_category.values())

    @property
    def flops(self) -> int:
        """FLOPs = 2 x MACs (one multiply and one add), over every counted category."""
        return 2 * self.total_macs

    def as_dict(self, layers: bool = True) -> dict:
        out = {
            "input_shapes": {k: list(v) for k, v in self.input_shapes.items()},
            "macs": self.total_macs,
            "flops": self.flops,
            "core_macs": self.core_macs,
            "macs_by_category": {c: self.macs_by_category.get(c, 0) for c in CATEGORIES},
            "params": self.params,
            "weight_bytes": self.weight_bytes,
            "activation_bytes": self.activation_bytes,
            "uncounted": dict(self.uncounted),
            "convention": "MACs are multiply-accumulates; FLOPs = 2 x MACs; core = conv + linear + matmul",
        }
        if layers:
            out["layers"] = [layer.as_dict() for layer in self.layers]
        return out


# --------------------------------------------------------------------------------------------
# Loading and shapes


def load_model(path: Path | str) -> onnx.ModelProto:
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path} does not exist; pass the path of an .onnx file")
    if path.is_dir():
        raise UsageError(f"{path} is a folder; pass the path of an .onnx file")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf raises DecodeError, onnx raises others on truncation
        raise UsageError(f"{path} is not a readable ONNX model ({type(exc).__name__}); re-export it or check the file") from None
    if not model.graph.node:
        raise UsageError(f"{path} is not a readable ONNX model (no graph nodes); re-export it or check the file")
    return model


def parse_input_shape(text: str) -> Shape:
    """'1x3x224x224' -> (1, 3, 224, 224)."""
    parts = text.lower().replace(",", "x").split("x")
    if not parts or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise UsageError(f"invalid --input-shape {text!r}; use positive integers joined by x, e.g. 1x3x224x224")
    return tuple(int(p) for p in parts)


def _graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    initializers = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in initializers]


def resolve_inputs(model: onnx.ModelProto, input_shape: Shape | None) -> dict[str, Shape]:
    """Give every graph input a static shape: --input-shape, else the model's own, with a symbolic
    batch dimension taken as 1. Anything else symbolic is an error naming the tensor."""
    resolved: dict[str, Shape] = {}
    inputs = _graph_inputs(model)
    if input_shape is not None and len(inputs) != 1:
        raise UsageError(f"--input-shape sets one input, but the model has {len(inputs)}: {', '.join(i.name for i in inputs)}")
    for value in inputs:
        dims = value.type.tensor_type.shape.dim
        if input_shape is not None:
            if len(input_shape) != len(dims):
                raise UsageError(
                    f"--input-shape {'x'.join(map(str, input_shape))} has {len(input_shape)} dimensions but input "
                    f"'{value.name}' has {len(dims)}"
                )
            for dim, size in zip(dims, input_shape):
                if dim.HasField("dim_value") and dim.dim_value != size:
                    raise UsageError(f"--input-shape conflicts with input '{value.name}', which is static: {_dims_text(dims)}")
            resolved[value.name] = tuple(input_shape)
            continue
        shape = []
        for axis, dim in enumerate(dims):
            if dim.HasField("dim_value") and dim.dim_value > 0:
                shape.append(dim.dim_value)
            elif axis == 0:
                shape.append(1)  # the batch dimension: count one image
            else:
                raise UsageError(
                    f"input '{value.name}' has a dynamic dimension {axis} ({_dims_text(dims)}); pass --input-shape, e.g. 1x3x224x224"
                )
        resolved[value.name] = tuple(shape)
    return resolved


def _dims_text(dims) -> str:
    return "x".join(str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?") for d in dims)


# Initializers up to this many elements stay in the graph that shape inference sees (Reshape targets,
# Slice bounds); larger ones are weights, and only their shapes matter. Leaving their bytes out makes
# inference on a 100 MB model take milliseconds instead of seconds.
SMALL_INITIALIZER = 4096


def _shape_only_model(model: onnx.ModelProto, inputs: dict[str, Shape]) -> onnx.ModelProto:
    """The model without its weights' bytes, its inputs fixed to static shapes."""
    source = model.graph
    graph = onnx.GraphProto(name=source.name)
    graph.node.extend(source.node)
    graph.output.extend(source.output)
    graph.value_info.extend(source.value_info)
    graph.sparse_initializer.extend(source.sparse_initializer)
    initializer_names = set()
    for init in source.initializer:
        initializer_names.add(init.name)
        if math.prod(init.dims) <= SMALL_INITIALIZER:
            graph.initializer.append(init)
        else:
            graph.input.append(helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
    for value in source.input:
        if value.name in initializer_names:
            continue
        fixed = graph.input.add()
        fixed.CopyFrom(value)
        if value.name in inputs:
            shape = fixed.type.tensor_type.shape
            del shape.dim[:]
            for size in inputs[value.name]:
                shape.dim.add().dim_value = size
    light = onnx.ModelProto(ir_version=model.ir_version, graph=graph)
    light.opset_import.extend(model.opset_import)
    light.functions.extend(model.functions)
    return light


def infer_shapes(model: onnx.ModelProto, inputs: dict[str, Shape]) -> tuple[dict[str, Shape], dict[str, int]]:
    """Static shapes and element types of every tensor, after fixing the inputs' shapes."""
    fixed = _shape_only_model(model, inputs)
    try:
        inferred = shape_inference.infer_shapes(fixed, data_prop=True)
    except Exception as exc:
        raise UsageError(f"ONNX shape inference failed: {str(exc).splitlines()[0]}; check the model or --input-shape") from None
    shapes, types = _collect_shapes(inferred)
    missing = _unknown_outputs(inferred, shapes)
    if missing:
        # onnx's inference stops at shapes computed at run time (Shape -> Div -> Slice in ShuffleNet's
        # channel split, window padding in Swin); with static inputs, one run of the graph knows them.
        shapes.update(_shapes_by_running(model, inputs, missing))
    for init in model.graph.initializer:
        shapes[init.name] = tuple(init.dims)
        types[init.name] = init.data_type
    return shapes, types


def _unknown_outputs(model: onnx.ModelProto, shapes: dict[str, Shape]) -> list[str]:
    return [
        name
        for node in model.graph.node if node.domain in ("", "ai.onnx")
        for name in node.output if name and name not in shapes
    ]


def _shapes_by_running(model: onnx.ModelProto, inputs: dict[str, Shape], names: list[str]) -> dict[str, Shape]:
    """Shapes of `names` from one ONNX Runtime run on random inputs; {} when the model cannot run
    (an op from a custom domain, say), and the caller then names the tensor it could not resolve."""
    import numpy as np
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    outputs = {o.name for o in probe.graph.output}
    probe.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n not in outputs)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 4
    rng = np.random.default_rng(0)
    feeds = {}
    for value in _graph_inputs(model):
        dtype = helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
        feeds[value.name] = rng.standard_normal(inputs[value.name]).astype(dtype)
    try:
        session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
        results = session.run(names, feeds)
    except Exception:
        return {}
    return {name: tuple(np.shape(value)) for name, value in zip(names, results)}


def _collect_shapes(inferred: onnx.ModelProto) -> tuple[dict[str, Shape], dict[str, int]]:
    shapes: dict[str, Shape] = {}
    types: dict[str, int] = {}
    for value in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
        tensor = value.type.tensor_type
        if not value.type.HasField("tensor_type"):
            continue
        types[value.name] = tensor.elem_type
        if tensor.HasField("shape") and all(d.HasField("dim_value") for d in tensor.shape.dim):
            shapes[value.name] = tuple(d.dim_value for d in tensor.shape.dim)
    return shapes, types


# --------------------------------------------------------------------------------------------
# Counting


def count_model(model: onnx.ModelProto, input_shape: Shape | None = None) -> GraphCount:
    """Count a loaded model. Nodes in subgraphs (If/Loop bodies) are not visited: such ops are uncounted."""
    inputs = resolve_inputs(model, input_shape)
    shapes, types = infer_shapes(model, inputs)
    graph = model.graph
    initializer_names = {i.name for i in graph.initializer}
    constant_outputs: dict[str, int] = {}  # Constant node outputs count as weights too
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            for a in node.attribute:
                if a.name == "value":
                    constant_outputs[node.output[0]] = math.prod(a.t.dims) * DTYPE_BYTES.get(a.t.data_type, 4)
    weights = initializer_names | set(constant_outputs)
    owned: set[str] = set()
    totals: Counter[str] = Counter()
    uncounted: Counter[str] = Counter()
    layers: list[LayerCount] = []
    for index, node in enumerate(graph.node):
        domain = node.domain or ""
        op = node.op_type
        params = 0
        for name in node.input:
            if name in initializer_names and name not in owned:
                owned.add(name)
                params += numel(shapes.get(name))
        output_shape = shapes.get(node.output[0]) if node.output else None
        handler = HANDLERS.get(op) if domain in ("", "ai.onnx") else None
        if handler is not None:
            info = NodeInfo(node, [shapes.get(i) if i else None for i in node.input], [shapes.get(o) for o in node.output], weights)
            _require_shapes(node, info)
            counts = {k: int(v) for k, v in handler(info).items() if v}
            counted = True
        elif op in ZERO_COST and domain in ("", "ai.onnx"):
            counts, counted = {}, True
        else:
            counts, counted = {}, False
            uncounted[f"{domain}::{op}" if domain else op] += 1
        totals.update(counts)
        layers.append(LayerCount(node.name or f"{op}_{index}", op, domain, output_shape, counts, params, counted))
    weight_bytes = sum(numel(tuple(i.dims)) * DTYPE_BYTES.get(i.data_type, 4) for i in graph.initializer)
    weight_bytes += sum(constant_outputs.values())
    activation_bytes = 0
    for node in graph.node:
        if node.op_type == "Constant":
            continue
        for name in node.output:
            if name and (name in shapes) and name not in weights:
                activation_bytes += numel(shapes[name]) * DTYPE_BYTES.get(types.get(name, TensorProto.FLOAT), 4)
    return GraphCount(
        input_shapes=inputs,
        layers=layers,
        params=sum(numel(tuple(i.dims)) for i in graph.initializer),
        weight_bytes=weight_bytes,
        activation_bytes=activation_bytes,
        macs_by_category={c: totals[c] for c in CATEGORIES if totals[c]},
        uncounted=dict(uncounted),
    )


# How many leading inputs a handler reads the shape of (all read output 0).
SHAPED_INPUTS = {"Conv": 2, "ConvTranspose": 2, "Gemm": 2, "MatMul": 2, "Einsum": 2, "GlobalAveragePool": 1, "GlobalMaxPool": 1}
SHAPED_INPUTS.update({op: 1 for op in REDUCTIONS})


def _require_shapes(node: onnx.NodeProto, info: NodeInfo) -> None:
    needed = SHAPED_INPUTS.get(node.op_type, 0)
    pairs = list(zip(node.input, info.inputs))[:needed] + list(zip(node.output, info.outputs))[:1]
    for name, shape in pairs:
        if name and shape is None:
            raise UsageError(
                f"cannot infer the shape of tensor '{name}' (at node '{node.name or node.op_type}', {node.op_type}); "
                "pass --input-shape or export the model with static shapes"
            )


def count_file(path: Path | str, input_shape: Shape | None = None) -> GraphCount:
    return count_model(load_model(path), input_shape)
