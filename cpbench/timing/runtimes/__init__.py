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


def make_inputs(path: Path, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs (not zeros) for every graph input. The batch is applied where it can be: to a
    symbolic leading dimension; a static one keeps its size (a model with a fixed-size second input
    can still be timed), and a static leading dimension of another size than `batch` is an error."""
    import onnx
    from onnx import helper

    model = onnx.load(str(path), load_external_data=False)
    initializers = {i.name for i in model.graph.initializer}
    rng = np.random.default_rng(seed)
    inputs = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        shape = []
        for axis, dim in enumerate(tensor.shape.dim):
            if dim.HasField("dim_value") and dim.dim_value > 0:
                if axis == 0 and batch != 1 and dim.dim_value == 1 and len(model.graph.input) - len(initializers) == 1:
                    raise UsageError(f"input '{value.name}' of {path} has a static batch of 1; export it with a dynamic "
                                     f"batch dimension to time --batch {batch}")
                shape.append(dim.dim_value)
            elif axis == 0:
                shape.append(batch)
            else:
                raise UsageError(f"input '{value.name}' of {path} has a dynamic dimension {axis}; export it with a static input size")
        dtype = helper.tensor_dtype_to_np_dtype(tensor.elem_type)
        if np.issubdtype(dtype, np.floating):
            inputs[value.name] = rng.standard_normal(shape).astype(dtype)
        else:
            inputs[value.name] = rng.integers(0, 2, shape).astype(dtype)
    return inputs
