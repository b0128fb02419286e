"""`cpbench flops` and `cpbench zoo` as a user runs them."""

import json

from onnx import TensorProto, helper

from test_cli import assert_one_line_error


def export_family(cli, workspace, config="8,12,3,1"):
    done = cli("export", "--config", config, "--untrained", "-w", str(workspace), "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["models"][0]


def test_flops_of_a_family_model_by_path_and_by_name(cli, tmp_path):
    model = export_family(cli, tmp_path)
    by_path = json.loads(cli("flops", str(tmp_path / model["file"]), "--json").stdout)
    # f=8, s=12, k=3, l=1: conv 1*9*8*12*12 MACs, linear 8*6*6*10
    assert by_path["macs_by_category"]["conv"] == 9 * 8 * 144
    assert by_path["macs_by_category"]["linear"] == 8 * 36 * 10
    assert by_path["flops"] == 2 * by_path["macs"] and by_path["uncounted"] == {}
    assert [layer["op_type"] for layer in by_path["layers"]][:3] == ["Conv", "Relu", "MaxPool"]
    by_name = json.loads(cli("flops", model["name"], "-w", str(tmp_path), "--json").stdout)
    assert by_name["macs"] == by_path["macs"]
    table = cli("flops", model["name"], "-w", str(tmp_path))
    assert table.returncode == 0 and "core: conv + linear + matmul" in table.stdout and "Per layer" in table.stdout
    stored = json.loads(cli("models", "-w", str(tmp_path), "--json").stdout)[0]
    assert stored["macs"] == by_path["macs"] and stored["core_macs"] == by_path["core_macs"]
    assert stored["activation_bytes"] == by_path["activation_bytes"] > 0


def test_flops_bad_input(cli, tmp_path):
    assert_one_line_error(cli("flops", str(tmp_path / "missing.onnx")), "does not exist")
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x01garbage" * 30)
    assert_one_line_error(cli("flops", str(tmp_path / "junk.onnx")), "not a readable ONNX model")
    model = export_family(cli, tmp_path)
    (tmp_path / "cut.onnx").write_bytes((tmp_path / model["file"]).read_bytes()[:5000])
    assert_one_line_error(cli("flops", str(tmp_path / "cut.onnx")), "not a readable ONNX model")
    assert_one_line_error(cli("flops", str(tmp_path / model["file"]), "--input-shape", "1x1x"), "invalid --input-shape")
    assert_one_line_error(cli("flops", "family/nothing-here", "-w", str(tmp_path)), "neither a file nor a model")


def test_flops_lists_custom_ops_as_uncounted(cli, tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Gadget", ["r"], ["y"], domain="com.vendor")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 16])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.vendor", 1)])
    (tmp_path / "custom.onnx").write_bytes(model.SerializeToString())
    done = cli("flops", str(tmp_path / "custom.onnx"), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["uncounted"] == {"com.vendor::Gadget": 1} and result["macs"] == 16
    table = cli("flops", str(tmp_path / "custom.onnx"))
    assert "uncounted" in table.stdout.lower() and "com.vendor::Gadget" in table.stdout


def test_zoo_export_stores_counted_models_and_resumes(cli, tmp_path):
    args = ["zoo", "export", "--models", "resnet18,mobilenet_v3_small", "--input", "32", "--channels", "1", "--classes", "10", "-w", str(tmp_path), "--json"]
    done = cli(*args)
    assert done.returncode == 0, done.stderr
    models = json.loads(done.stdout)["models"]
    assert [m["name"] for m in models] == ["zoo/resnet18-c1-s32-n10", "zoo/mobilenet_v3_small-c1-s32-n10"]
    assert all(m["status"] == "exported" and m["macs"] > 0 for m in models)
    stored = {m["name"]: m for m in json.loads(cli("models", "zoo/*", "-w", str(tmp_path), "--json").stdout)}
    assert stored["zoo/resnet18-c1-s32-n10"]["kind"] == "zoo"
    assert stored["zoo/resnet18-c1-s32-n10"]["input_shape"] == [1, 32, 32]
    again = json.loads(cli(*args).stdout)["models"]
    assert [m["status"] for m in again] == ["skipped", "skipped"]


def test_zoo_bad_input(cli, tmp_path):
    assert_one_line_error(cli("zoo", "export", "--models", "resnet19", "-w", str(tmp_path)), "resnet19", "resnet18")
    assert_one_line_error(cli("zoo", "export", "--models", "alexnet", "--input", "28", "-w", str(tmp_path)), "at least 63x63")


def test_zoo_table_reports_paper_003_beside_cpbench(cli, tmp_path):
    done = cli("zoo", "table", "-w", str(tmp_path), "--json")
    assert done.returncode == 0, done.stderr
    rows = {r["model"]: r for r in json.loads(done.stdout)["rows"]}
    assert abs(rows["resnet18"]["cpbench_gflops"] - 3.628) < 0.01 and rows["resnet18"]["agrees"]
    assert abs(rows["vgg16"]["cpbench_gflops"] - 30.94) < 0.02
    assert not rows["densenet121"]["agrees"] and "densenet121: 5.67" in rows["densenet121"]["note"]
