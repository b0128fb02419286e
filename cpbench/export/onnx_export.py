"""torch -> ONNX with the checks an ONNX user expects: the checker passes, the batch dimension is
dynamic, and ONNX Runtime's output equals torch's on random inputs, or the export fails loudly."""

from __future__ import annotations

import contextlib
import hashlib
import io
import warnings
from dataclasses import dataclass, field

import numpy as np
import onnx
import torch
from torch import nn

from cpbench.errors import ExportError, check_choice, first_line


OPSET = 18
PARITY_TOLERANCE = 1e-4
PARITY_BATCH = 3  # not the export batch (2), so the dynamic batch dimension is exercised
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


@dataclass
class ExportedModel:
    """A serialised, checked ONNX model, not yet on disk."""

    data: bytes
    sha256: str
    opset: int
    max_abs_diff: float
    exporter: str
    proto: onnx.ModelProto | None = field(default=None, repr=False, compare=False)  # parsed form of `data`


EXPORTERS = ("auto", "torchscript", "dynamo")


def export_onnx(
    model: nn.Module,
    input_shape: tuple[int, ...],
    metadata: dict[str, str] | None = None,
    opset: int = OPSET,
    exporter: str = "auto",
    tolerance: float = PARITY_TOLERANCE,
) -> ExportedModel:
    """Export `model` for inputs [batch, *input_shape] with a dynamic batch, check it, and verify parity.

    exporter: 'torchscript' (torch.onnx's tracing exporter: ~50x faster on small nets), 'dynamo'
    (torch.export based, the future default), or 'auto' (tracing, falling back to dynamo when the
    tracing exporter fails or no longer exists).
    """
    check_choice(exporter, EXPORTERS, "exporter", ExportError)
    model = model.eval().to(memory_format=torch.contiguous_format)
    proto, used = to_onnx(model, torch.randn(2, *input_shape), exporter, opset)
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "cpbench"
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"onnx.checker rejected the export: {first_line(exc)}") from exc
    data = proto.SerializeToString()
    diff = parity_max_abs_diff(model, data, input_shape)
    if not diff <= tolerance:
        raise ExportError(
            f"ONNX Runtime output differs from torch by {diff:.3g} (tolerance {tolerance}); the export is not faithful"
        )
    return ExportedModel(data, hashlib.sha256(data).hexdigest(), opset, diff, f"torch.onnx {used} (torch {torch.__version__})", proto)


def to_onnx(model: nn.Module, example: torch.Tensor, exporter: str = "auto", opset: int = OPSET) -> tuple[onnx.ModelProto, str]:
    """The raw export (no checks) and the exporter that made it; see export_onnx for the choices."""
    if exporter == "auto":
        try:
            return _export_torchscript(model, example, opset), "torchscript"
        except Exception:  # any failure of the legacy path: let the dynamo exporter try
            return _export_dynamo(model, example, opset), "dynamo"
    if exporter == "torchscript":
        return _export_torchscript(model, example, opset), "torchscript"
    return _export_dynamo(model, example, opset), "dynamo"


def _export_torchscript(model: nn.Module, example: torch.Tensor, opset: int) -> onnx.ModelProto:
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model, (example,), buffer, dynamo=False, opset_version=opset,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                do_constant_folding=True,
            )
    except Exception as exc:
        raise ExportError(f"torch.onnx.export (torchscript) failed: {first_line(exc)}") from exc
    return onnx.load_from_string(buffer.getvalue())


def _export_dynamo(model: nn.Module, example: torch.Tensor, opset: int) -> onnx.ModelProto:
    batch = torch.export.Dim("batch", min=1, max=4096)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model, (example,), dynamo=True, opset_version=opset,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: batch},), optimize=True, verbose=False,
            )
    except Exception as exc:
        raise ExportError(f"torch.onnx.export (dynamo) failed: {first_line(exc)}") from exc
    return program.model_proto


def parity_max_abs_diff(model: nn.Module, onnx_bytes: bytes, input_shape: tuple[int, int, int], seed: int = 0) -> float:
    """Largest |torch - ONNX Runtime| over the logits of a random batch."""
    import onnxruntime as ort

    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(PARITY_BATCH, *input_shape, generator=generator)
    with torch.no_grad():
        expected = model(x).numpy()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    (actual,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    return float(np.max(np.abs(actual - expected)))


