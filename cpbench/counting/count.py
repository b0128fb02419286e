"""The count of a whole graph: per-layer and per-category MACs, parameters, weight and activation
bytes, and the ops no handler knows (uncounted, never zero). As fvcore's flop_count, the handlers
can be replaced or extended per call."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import onnx
from onnx import TensorProto

from cpbench.counting.graph import infer_shapes, load_model, resolve_inputs
from cpbench.counting.handlers import (
    CATEGORIES, CORE, DTYPE_BYTES, HANDLERS, SHAPED_INPUTS, ZERO_COST, Counts, Handler, NodeInfo, Shape, numel,
)
from cpbench.errors import UsageError


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

    @property
    def complete(self) -> bool:
        """Every node counted: otherwise the totals are a lower bound (an If or Loop hides its
        subgraphs' convolutions, an unknown op its cost)."""
        return not self.uncounted

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
            "complete": self.complete,
            "convention": "MACs are multiply-accumulates; FLOPs = 2 x MACs; core = conv + linear + matmul",
        }
        if layers:
            out["layers"] = [layer.as_dict() for layer in self.layers]
        return out



def count_model(model: onnx.ModelProto, input_shape: Shape | None = None,
                handlers: Mapping[str, Handler] | None = None) -> GraphCount:
    """Count a loaded model. `handlers` replace or add to the default ones for this call only.
    Nodes in subgraphs (If/Loop bodies) are not visited: such ops are uncounted."""
    table = {**HANDLERS, **(handlers or {})}
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
        handler = table.get(op) if domain in ("", "ai.onnx") else None
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




def _require_shapes(node: onnx.NodeProto, info: NodeInfo) -> None:
    needed = SHAPED_INPUTS.get(node.op_type, 0)
    pairs = list(zip(node.input, info.inputs))[:needed] + list(zip(node.output, info.outputs))[:1]
    for name, shape in pairs:
        if name and shape is None:
            raise UsageError(
                f"cannot infer the shape of tensor '{name}' (at node '{node.name or node.op_type}', {node.op_type}); "
                "pass --input-shape or export the model with static shapes"
            )


def count_file(path: Path | str, input_shape: Shape | None = None, handlers: Mapping[str, Handler] | None = None) -> GraphCount:
    return count_model(load_model(path), input_shape, handlers)
