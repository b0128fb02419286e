import onnx
import onnxruntime as ort
import pytest
import torch

from cpbench.export import onnx_export as export_module
from cpbench.workspace import files as files_module
from cpbench.family.config import Config
from cpbench.errors import ExportError
from cpbench.export.onnx_export import PARITY_TOLERANCE, export_onnx
from cpbench.workspace.files import write_atomically
from cpbench.family.network import build_family_model


@pytest.fixture(scope="module", params=["torchscript", "dynamo"])
def exported_even_k(request):
    torch.manual_seed(0)
    model = build_family_model(Config(6, 12, 4, 2)).eval()
    exported = export_onnx(model, (1, 12, 12), {"cpbench.config": "6,12,4,2"}, exporter=request.param)
    assert request.param in exported.exporter
    return model, exported


def test_export_passes_checker_and_parity(exported_even_k):
    _, exported = exported_even_k
    proto = onnx.load_from_string(exported.data)
    onnx.checker.check_model(proto, full_check=True)
    assert exported.opset >= 17
    assert exported.max_abs_diff <= PARITY_TOLERANCE
    assert {p.key: p.value for p in proto.metadata_props}["cpbench.config"] == "6,12,4,2"
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    assert len(convs) == 2
    # even k: 'same' padding is asymmetric, one more at the end (bottom/right)
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in convs[0].attribute}
    assert attrs.get("pads") == [1, 1, 2, 2] or attrs.get("auto_pad") == b"SAME_UPPER"


def test_batch_dimension_is_dynamic(exported_even_k):
    model, exported = exported_even_k
    proto = onnx.load_from_string(exported.data)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param
    session = ort.InferenceSession(exported.data, providers=["CPUExecutionProvider"])
    for batch in (1, 7):
        x = torch.randn(batch, 1, 12, 12)
        (logits,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        with torch.no_grad():
            assert abs(logits - model(x).numpy()).max() <= PARITY_TOLERANCE


def test_parity_failure_is_loud():
    with pytest.raises(ExportError, match="differs from torch"):
        export_onnx(build_family_model(Config(2, 8, 3, 1)), (1, 8, 8), tolerance=-1.0)


def test_auto_falls_back_to_dynamo_when_tracing_fails(monkeypatch):
    def broken(*_args, **_kwargs):
        raise ExportError("tracing exporter unavailable")

    monkeypatch.setattr(export_module, "_export_torchscript", broken)
    exported = export_onnx(build_family_model(Config(2, 8, 3, 1)), (1, 8, 8), exporter="auto")
    assert "dynamo" in exported.exporter


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "m" / "x.onnx"
    write_atomically(target, b"complete")
    assert target.read_bytes() == b"complete"

    def boom(*_):
        raise OSError("disk full")

    monkeypatch.setattr(files_module.os, "replace", boom)
    with pytest.raises(OSError):
        write_atomically(target, b"new content")
    assert target.read_bytes() == b"complete"
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.onnx"]
