"""torch -> ONNX with the checks an ONNX user expects: the checker passes, the batch dimension is
dynamic, and ONNX Runtime's output equals torch's on random inputs, or the export fails loudly."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from cpbench.errors import ExportError

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


def export_onnx(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    metadata: dict[str, str] | None = None,
    opset: int = OPSET,
) -> ExportedModel:
    """Export `model` for inputs [batch, C, H, W] with a dynamic batch, check it, and verify parity."""
    model = model.eval().to(memory_format=torch.contiguous_format)
    example = torch.randn(2, *input_shape)
    batch = torch.export.Dim("batch", min=1, max=4096)
    sink = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model,
                (example,),
                dynamo=True,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: batch},),
                optimize=True,
                verbose=False,
            )
    except Exception as exc:  # the exporter raises many types; all mean the same to the user
        raise ExportError(f"torch.onnx.export failed: {type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
    proto = program.model_proto
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "cpbench"
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"onnx.checker rejected the export: {str(exc).splitlines()[0]}") from exc
    data = proto.SerializeToString()
    diff = parity_max_abs_diff(model, data, input_shape)
    if not diff <= PARITY_TOLERANCE:
        raise ExportError(
            f"ONNX Runtime output differs from torch by {diff:.3g} (tolerance {PARITY_TOLERANCE}); "
            "the export is not faithful"
        )
    return ExportedModel(data, hashlib.sha256(data).hexdigest(), opset, diff, f"torch.onnx dynamo {torch.__version__}")


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


def write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
