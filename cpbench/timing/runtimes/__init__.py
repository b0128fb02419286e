"""Runtimes behind one small protocol. Adding one is a module here plus a line in REGISTRY."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol

import numpy as np

from cpbench.errors import UsageError, check_choice
from cpbench.timing.profiles import Profile

# runtime name -> "module:class"; imported only when used, so a missing runtime costs nothing
REGISTRY = {
    "onnxruntime": "cpbench.timing.runtimes.onnxruntime:OnnxRuntime",
    "openvino": "cpbench.timing.runtimes.openvino:OpenVinoRuntime",
}


class DeviceUnavailable(UsageError):
    """The profile's device or provider cannot run here: no numbers are produced, ever."""


class LoadedModel(Protocol):
    load_s: float  # session creation / compile time

    def run(self) -> None:
        """One inference on the inputs given at load time; returns when the results are ready."""

    def describe(self) -> dict:
        """What actually ran: provider or device in use, threads, streams, library version."""


class Runtime(Protocol):
    name: str

    def load(self, path: Path, profile: Profile, inputs: dict[str, np.ndarray]) -> LoadedModel: ...


def get_runtime(name: str) -> Runtime:
    check_choice(name, REGISTRY, "runtime")
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)()


def input_specs(model, path: Path, batch: int) -> dict[str, tuple[list[int], np.dtype]]:
    """(shape, dtype) of every graph input at this batch. The batch is applied where it can be: to
    a symbolic leading dimension; a static one keeps its size (a model with a fixed-size second input
    can still be timed), and a static leading dimension of 1 with another batch is an error, as is
    any other dynamic dimension or a size below 1."""
    from onnx import helper

    initializers = {i.name for i in model.graph.initializer}
    graph_inputs = [v for v in model.graph.input if v.name not in initializers]
    specs = {}
    for value in graph_inputs:
        tensor = value.type.tensor_type
        shape = []
        for axis, dim in enumerate(tensor.shape.dim):
            if dim.HasField("dim_value"):
                if dim.dim_value < 1:
                    raise UsageError(f"input '{value.name}' of {path} has dimension {axis} of size {dim.dim_value}; "
                                     "a tensor's sizes are 1 or more: fix the model's input shape")
                if axis == 0 and batch != 1 and dim.dim_value == 1 and len(graph_inputs) == 1:
                    raise UsageError(f"input '{value.name}' of {path} has a static batch of 1; export it with a dynamic "
                                     f"batch dimension to time --batch {batch}")
                shape.append(dim.dim_value)
            elif axis == 0:
                shape.append(batch)
            else:
                raise UsageError(f"input '{value.name}' of {path} has a dynamic dimension {axis}; export it with a static input size")
        specs[value.name] = (shape, helper.tensor_dtype_to_np_dtype(tensor.elem_type))
    return specs


def input_bytes(specs: dict[str, tuple[list[int], np.dtype]]) -> int:
    itemsize = lambda dtype: 16 if dtype == np.dtype(object) else np.dtype(dtype).itemsize  # noqa: E731
    return sum(int(np.prod(shape, dtype=np.float64)) * itemsize(dtype) for shape, dtype in specs.values())


def make_inputs(path: Path, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs (not zeros) for every graph input, at the shapes `input_specs` gives."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    rng = np.random.default_rng(seed)
    inputs = {}
    for name, (shape, dtype) in input_specs(model, path, batch).items():
        if np.issubdtype(dtype, np.floating):
            inputs[name] = rng.standard_normal(shape).astype(dtype)
        elif dtype == np.dtype(object):  # ONNX strings
            inputs[name] = rng.integers(0, 1000, shape).astype(str).astype(object)
        else:
            inputs[name] = rng.integers(0, 2, shape).astype(dtype)
    return inputs
