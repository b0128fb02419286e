"""Loading an ONNX graph and the static shapes of its tensors: what the handlers are given."""

from __future__ import annotations

import math
from pathlib import Path

import onnx
from onnx import helper, shape_inference

from cpbench.counting.handlers import Shape
from cpbench.errors import UsageError, first_line


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
    check_versions(model, path)
    check_acyclic(model, path)
    return model


def check_versions(model: onnx.ModelProto, path: Path) -> None:
    """A model newer than this onnx package cannot be counted faithfully: say so instead of guessing."""
    newest_opset = onnx.defs.onnx_opset_version()
    if model.ir_version > onnx.IR_VERSION:
        raise UsageError(f"{path} has ONNX IR version {model.ir_version}, newer than this onnx {onnx.__version__} reads "
                         f"({onnx.IR_VERSION}); upgrade onnx or export with an older IR version")
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx") and opset.version > newest_opset:
            raise UsageError(f"{path} imports ONNX opset {opset.version}, newer than this onnx {onnx.__version__} knows "
                             f"({newest_opset}); export with opset {newest_opset} or lower")


def check_acyclic(model: onnx.ModelProto, path: Path) -> None:
    """ONNX graphs are acyclic and topologically sorted; a node reading a value produced by itself
    or a later node is a broken graph, not a missing --input-shape."""
    available = {i.name for i in model.graph.input} | {i.name for i in model.graph.initializer} | {""}
    produced_later = {out for node in model.graph.node for out in node.output}
    for index, node in enumerate(model.graph.node):
        for name in node.input:
            if name not in available and name in produced_later:
                raise UsageError(f"{path} is not a valid ONNX graph: node {index} ({node.op_type}) reads '{name}', "
                                 "which it or a later node produces (a cycle, or nodes out of order); re-export the model")
        available.update(node.output)


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
        if not value.type.tensor_type.HasField("shape"):  # the rank itself is unknown: only the user can say it
            if input_shape is None:
                raise UsageError(f"input '{value.name}' has no shape in the model (not even its rank); pass --input-shape, "
                                 "e.g. 1x3x224x224")
            resolved[value.name] = tuple(input_shape)
            continue
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
        raise UsageError(f"ONNX shape inference failed: {first_line(exc)}; check the model or --input-shape") from None
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

