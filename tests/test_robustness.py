"""What a careless or hostile user can do to a workspace, driven from the CLI: nothing cpbench keeps is
overwritten, nothing outside the workspace is read or written, and every bad input is one line, exit 2."""

import copy
import json

import pytest

from test_cli import assert_one_line_error
from test_cross_hardware import workspace_of


def _tree(root):
    """Every file under root with its bytes, the lock files aside (a refused command may take one)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and ".cpbench" not in p.name}


def test_results_export_never_replaces_the_store_a_model_or_an_existing_file(cli, tmp_path):
    ws = tmp_path / "ws"
    assert cli("export", "--config", "2,8,1,1", "--untrained", "-w", str(ws)).returncode == 0
    model = next((ws / "models").rglob("*.onnx"))
    before = _tree(ws)
    for target, fragment in ((ws / "cpbench.sqlite", "store"), (model, "models/"), (ws / "models", "models/"),
                             (tmp_path, "is a folder"), (tmp_path / "nowhere" / "b.json", "does not exist")):
        assert_one_line_error(cli("results", "export", str(target), "-w", str(ws)), fragment)
    assert _tree(ws) == before
    assert cli("runs", "-w", str(ws), "--json").returncode == 0
    bundle = tmp_path / "b.json"
    bundle.write_text("a user's notes")
    assert_one_line_error(cli("results", "export", str(bundle), "-w", str(ws)), "exists", "--force")
    assert bundle.read_text() == "a user's notes"
    done = cli("results", "export", str(bundle), "--force", "-w", str(ws), "--json")
    assert done.returncode == 0, done.stderr and json.loads(bundle.read_text())["kind"] == "cpbench-results"


def _bad(payload, change):
    out = copy.deepcopy(payload)
    change(out)
    return out


def _set(path, value):
    def change(payload):
        *head, last = path
        node = payload
        for key in head:
            node = node[key]
        node[last] = value
    return change


DEEP = "[" * 100_000 + "]" * 100_000

BAD_BUNDLES = {
    "model file outside the workspace": (_set(("models", 0, "file"), "/etc/passwd"), "models[0].file"),
    "model file climbing out": (_set(("models", 0, "file"), "models/../../x.onnx"), "models[0].file"),
    "model name climbing out": (_set(("models", 0, "name"), "../../../../x"), "models[0].name"),
    "the fits folder itself": (_set(("files", "models/fits/"), {"format": 1}), "files["),
    "a script": (_set(("files", "models/precision/evil.sh"), {"format": 1}), "evil.sh"),
    "a file under a file": (_set(("files", "models/fits/a.json/b.json"), {"format": 1}), "a.json/b.json"),
    "a fit record of format 99": (_set(("files", "models/fits/cpu-x.json"), {"format": 99}), "format 1"),
    "a calibration that is a list": (_set(("files", "models/fits/cpu-x.calibration.json.gz"), [1, 2, 3]), "calibration"),
    "a time that is text": (_set(("runs", 0, "measurements", 0, "median_s"), "fast"), "median_s"),
    "a negative time": (_set(("runs", 0, "measurements", 0, "median_s"), -1), "median_s"),
    "runs a string": (_set(("runs",), "abc"), "runs"),
    "a run without measurements": (lambda p: p["runs"][0].pop("measurements"), "measurements"),
    "a run without device": (lambda p: p["runs"][0].pop("device"), "device"),
    "an extra key in a run": (_set(("runs", 0, "colour"), "red"), "colour"),
    "an extra key in a measurement": (_set(("runs", 0, "measurements", 0, "colour"), "red"), "colour"),
    "a model without keys": (_set(("models", 0), {}), "models[0]"),
    "input_shape null": (_set(("models", 0, "input_shape"), None), "input_shape"),
    "files a string": (_set(("files",), "abc"), "files"),
    "one run id twice": (lambda p: p["runs"].append(copy.deepcopy(p["runs"][0])), "repeats run"),
    "one model name twice": (lambda p: p["models"].append(copy.deepcopy(p["models"][0])), "repeats model"),
}


@pytest.fixture(scope="module")
def bundle_and_target(tmp_path_factory):
    from conftest import run_cli

    tmp = tmp_path_factory.mktemp("bundles")
    a = workspace_of(tmp, "a", "machine-a", 0)
    assert run_cli("fit", "--device", "cpu-1thread", "--machine", "machine-a", "-w", str(a.root)).returncode == 0
    bundle = tmp / "a.json"
    assert run_cli("results", "export", str(bundle), "-w", str(a.root)).returncode == 0
    payload = json.loads(bundle.read_text())
    assert payload["runs"] and payload["models"] and payload["files"]
    target = workspace_of(tmp, "b", "machine-b", 1)
    return payload, target.root


@pytest.mark.parametrize("case", sorted(BAD_BUNDLES))
def test_a_bad_bundle_is_one_line_and_imports_nothing(cli, tmp_path, bundle_and_target, case):
    payload, target = bundle_and_target
    change, fragment = BAD_BUNDLES[case]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_bad(payload, change)))
    before, runs = _tree(target), cli("runs", "-w", str(target), "--json").stdout
    assert_one_line_error(cli("results", "import", str(path), "-w", str(target)), fragment, "nothing was imported")
    assert _tree(target) == before and cli("runs", "-w", str(target), "--json").stdout == runs


def test_a_bundle_nested_beyond_reason_is_one_line(cli, tmp_path, bundle_and_target):
    _, target = bundle_and_target
    path = tmp_path / "deep.json"
    path.write_text('{"format": 1, "kind": "cpbench-results", "runs": ' + DEEP + "}")
    assert_one_line_error(cli("results", "import", str(path), "-w", str(target)), "not a cpbench results bundle")
    path.write_text('{"format": 1, "kind": "cpbench-results", "runs": [], "files": {"models/fits/x.json": '
                    + "[" * 500 + "]" * 500 + "}}")
    assert_one_line_error(cli("results", "import", str(path), "-w", str(target)), "nested")


def test_the_good_bundle_still_imports(cli, tmp_path, bundle_and_target):
    payload, _ = bundle_and_target
    target = tmp_path / "fresh"
    path = tmp_path / "good.json"
    path.write_text(json.dumps(payload))
    done = cli("results", "import", str(path), "-w", str(target), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["files_added"] == sorted(payload["files"])


def _study_lines():
    from cpbench.export.precision_study import shipped_study

    return shipped_study("fashionmnist", "converged-bn").read_text().splitlines()[:6]


def _with(line: str, **changes) -> str:
    return json.dumps({**json.loads(line), **changes})


STUDY_DAMAGE = {
    "accuracy above one": (lambda lines: lines + [_with(lines[0], accuracy=1.7, seed=7)], ":7: accuracy"),
    "accuracy NaN": (lambda lines: lines + [_with(lines[0], accuracy=float("nan"), seed=7)], ":7: accuracy"),
    "a seed in words": (lambda lines: lines + [_with(lines[0], seed="zero")], ":7: seed"),
    "a config outside the space": (lambda lines: lines + [_with(lines[0], config="4096,28,5,3", seed=7)], ":7: config"),
    "an extra key": (lambda lines: lines + [_with(lines[0], colour="red", seed=7)], ":7 is not a study result"),
    "a list line": (lambda lines: lines[:2] + ["[1, 2]"] + lines[2:], ":3 is not a JSON object"),
    "garbage in the middle": (lambda lines: lines[:2] + ["hello"] + lines[2:], ":3 is not a JSON line"),
}


@pytest.mark.parametrize("case", sorted(STUDY_DAMAGE))
def test_a_damaged_study_line_is_named_by_file_and_line(cli, tmp_path, case):
    change, fragment = STUDY_DAMAGE[case]
    path = tmp_path / "s.study.jsonl"
    path.write_text("\n".join(change(_study_lines())) + "\n")
    assert_one_line_error(cli("study", "show", "--recipe", "converged-bn", "--file", str(path), "-w", str(tmp_path)),
                          str(path) + fragment)


def test_a_study_file_that_is_missing_binary_or_a_folder_is_one_line(cli, tmp_path):
    show = ("study", "show", "--recipe", "converged-bn", "-w", str(tmp_path), "--file")
    assert_one_line_error(cli(*show, str(tmp_path / "nosuch.jsonl")), "no study file")
    (tmp_path / "b.jsonl").write_bytes(b"\xff\xfe\x00garbage")
    assert_one_line_error(cli(*show, str(tmp_path / "b.jsonl")), "not UTF-8")
    (tmp_path / "d.jsonl").mkdir()
    assert_one_line_error(cli(*show, str(tmp_path / "d.jsonl")))


def test_a_torn_study_line_is_skipped_and_the_rest_is_read(cli, tmp_path):
    lines = _study_lines()
    path = tmp_path / "s.study.jsonl"
    path.write_text("\n".join(lines[:3] + [lines[3][:40]] + lines[4:]) + "\n")  # a kill mid-write, then more results
    done = cli("study", "show", "--recipe", "converged-bn", "--file", str(path), "-w", str(tmp_path), "--json")
    assert done.returncode == 0, done.stderr
    assert sum(json.loads(done.stdout)["done"].values()) == len(lines) - 1


def test_a_second_calibration_in_one_workspace_is_refused_at_once(cli, tmp_path):
    from cpbench.workspace.folder import Workspace

    ws = Workspace(tmp_path)
    with ws.exclusive("calibrate", "wait"):  # a calibration running in another process
        done = cli("calibrate", "--device", "cpu-1thread", "--share", "0", "-w", str(tmp_path), timeout=60)
    assert_one_line_error(done, "another cpbench calibrate is running", "another workspace")
    assert not (tmp_path / "models" / "fits").exists()  # nothing journaled, nothing timed


@pytest.mark.parametrize("option, value, fragment", [
    ("--rounds", "0", "--rounds is 0; it must lie in [1, 20]"),
    ("--runs", "-5", "--runs is -5"),
    ("--share", "1.5", "--share is 1.5"),
    ("--share", "nan", "--share is nan"),
    ("--networks", "3", "at least 7 networks"),
    ("--networks", "1000000000", "--networks is 1000000000; it must lie in [0, 2000]"),
])
def test_a_calibration_option_out_of_range_is_named_before_anything_runs(cli, tmp_path, option, value, fragment):
    done = cli("calibrate", "--device", "cpu-1thread", option, value, "-w", str(tmp_path), timeout=60)
    assert_one_line_error(done, fragment)
    assert not (tmp_path / "models" / "fits").exists()


def test_a_device_that_is_not_here_leaves_no_journal_to_block_the_next_run(cli, tmp_path):
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "trt.toml").write_text('runtime = "onnxruntime"\nprovider = "TensorrtExecutionProvider"\n')
    first = cli("calibrate", "--device", "trt", "--share", "0", "-w", str(tmp_path), timeout=120)
    assert_one_line_error(first, "TensorrtExecutionProvider")
    assert not list((tmp_path / "models" / "fits").glob("*.partial.jsonl")) if (tmp_path / "models" / "fits").exists() else True
    second = cli("calibrate", "--device", "trt", "--share", "0", "--rounds", "2", "-w", str(tmp_path), timeout=120)
    assert_one_line_error(second, "TensorrtExecutionProvider")  # the device, not "an unfinished calibration"


def test_a_batch_profile_is_told_a_fix_that_exists(cli, tmp_path):
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "b4.toml").write_text('runtime = "onnxruntime"\nprovider = "CPUExecutionProvider"\nbatch = 4\n')
    done = cli("calibrate", "--device", "b4", "-w", str(tmp_path), timeout=60)
    assert_one_line_error(done, "batch = 1")
    assert "--batch" not in done.stderr


@pytest.mark.parametrize("device, configs, fragment", [
    ("cpu", ["4096,28,5,3"], "config 4096,28,5,3 lies outside the space"),
    ("cpu", ["8,29,5,3"], "s = 29 > 28"),
    ("cpu-1thread", ["8,12,3,1", "4096,28,5,3"], "config 4096,28,5,3"),
    ("openvino", ["8,28,5,4"], "l = 4 > 3"),
])
def test_predict_names_the_config_outside_the_space_and_never_extrapolates(cli, tmp_path, device, configs, fragment):
    args = [a for c in configs for a in ("-c", c)]
    assert_one_line_error(cli("predict", "--device", device, *args, "-w", str(tmp_path), "--json"), fragment)


def test_a_fitted_profile_refuses_configs_outside_its_space_too(cli, tmp_path):
    ws = workspace_of(tmp_path, "a", "machine-a", 0)
    assert cli("fit", "--device", "cpu-1thread", "--machine", "machine-a", "-w", str(ws.root)).returncode == 0
    from cpbench.fitting.fitted_time_model import from_record
    record = json.loads((ws.models_dir / "fits" / "cpu-1thread-machine-a.json").read_text())
    model = from_record(record, "cpu-1thread")
    from cpbench.errors import UsageError
    from cpbench.family.config import Config

    with pytest.raises(UsageError, match="f = 4096 > 64"):
        model.check_configs([Config(4096, 28, 5, 3)])


def test_a_damaged_workspace_model_is_an_error_in_hardware_and_report_never_the_reference_instead(cli, tmp_path):
    from cpbench.fitting.predictors import REFERENCE_FITS

    fits = tmp_path / "models" / "fits"
    fits.mkdir(parents=True)
    good = (REFERENCE_FITS / "cpu-deb299df8670.model.json.gz").read_bytes()
    (fits / "cpu-abc123.model.json.gz").write_bytes(good[:20000])
    assert_one_line_error(cli("hardware", "-w", str(tmp_path), "--json"), "cpu-abc123.model.json.gz", "damaged")
    assert_one_line_error(cli("report", "--name", "r1", "-w", str(tmp_path)), "cpu-abc123.model.json.gz")
    assert not (tmp_path / "reports" / "r1").exists()  # no half-written report left behind
    (fits / "cpu-abc123.model.json.gz").unlink()
    (fits / "cpu-abc123.calibration.json.gz").write_bytes((REFERENCE_FITS / "cpu-deb299df8670.calibration.json.gz").read_bytes())
    assert_one_line_error(cli("hardware", "-w", str(tmp_path)), "has no saved model", "--refit")


@pytest.mark.parametrize("name", ["   ", "~", "x" * 300, "a b", "-r"])
def test_a_report_name_that_is_not_a_plain_folder_name_is_refused(cli, tmp_path, name):
    assert_one_line_error(cli("report", "--name", name, "-w", str(tmp_path)), "--name must be a plain folder name")
    assert not (tmp_path / "reports").exists() or not any((tmp_path / "reports").iterdir())


def _if_model(path, shaped: bool = True):
    """An If whose two branches each hold a 1 -> 4 3x3 conv on 28x28: the cost lives in subgraphs."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((4, 1, 3, 3), np.float32), "w")

    def branch(name):
        conv = helper.make_node("Conv", ["x", "w"], [f"{name}_y"])
        return helper.make_graph([conv], name, [], [helper.make_tensor_value_info(f"{name}_y", TensorProto.FLOAT, None)])

    cond = numpy_helper.from_array(np.array(True), "c")
    node = helper.make_node("If", ["c"], ["y"], then_branch=branch("then"), else_branch=branch("else"))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 28, 28] if shaped else None)
    graph = helper.make_graph([node], "g", [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [weight, cond])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_flops_of_a_graph_with_control_flow_says_its_total_is_a_lower_bound(cli, tmp_path):
    path = _if_model(tmp_path / "if.onnx")
    done = cli("flops", str(path), "--json", "-w", str(tmp_path))
    assert done.returncode == 0, done.stderr
    count = json.loads(done.stdout)
    assert count["complete"] is False and count["uncounted"] == {"If": 1}
    assert "lower bound" in done.stderr and "If x1" in done.stderr


def test_an_input_without_a_shape_is_counted_with_the_shape_given(cli, tmp_path):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((4, 1, 3, 3), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [weight])
    path = tmp_path / "noshape.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    assert_one_line_error(cli("flops", str(path), "-w", str(tmp_path)), "has no shape", "--input-shape")
    done = cli("flops", str(path), "--input-shape", "1x1x28x28", "--json", "-w", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["macs"] == 4 * 26 * 26 * 9


def test_a_zoo_input_too_large_to_allocate_is_refused_up_front(cli, tmp_path):
    done = cli("zoo", "export", "--models", "resnet18", "--input", "100000", "-w", str(tmp_path), timeout=60)
    assert_one_line_error(done, "--input 100000 is above 1024")


def test_time_on_an_unreachable_ray_cluster_fails_in_seconds(cli, tmp_path):
    pytest.importorskip("ray")
    assert cli("export", "--config", "2,8,1,1", "--untrained", "-w", str(tmp_path)).returncode == 0
    for extra in ((), ("--json",)):
        done = cli("time", "--executor", "ray", "--address", "127.0.0.1:1", "--device", "cpu-1thread", *extra,
                   "-w", str(tmp_path), timeout=60)
        assert_one_line_error(done, "no Ray cluster answers at 127.0.0.1:1")


def test_time_never_reads_a_model_file_outside_the_workspace(cli, tmp_path):
    import sqlite3

    assert cli("export", "--config", "2,8,1,1", "--untrained", "-w", str(tmp_path)).returncode == 0
    outside = tmp_path.parent / f"{tmp_path.name}-outside.onnx"
    outside.write_bytes(next((tmp_path / "models").rglob("*.onnx")).read_bytes())
    db = sqlite3.connect(tmp_path / "cpbench.sqlite")
    db.execute("UPDATE models SET file = ?", (str(outside),))  # as a forged bundle or a hand edit would leave it
    db.commit()
    db.close()
    assert_one_line_error(cli("time", "--device", "cpu-1thread", "-w", str(tmp_path)), "outside the workspace's models/")


def test_sigterm_stops_a_calibration_quietly_and_keeps_its_journal(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", "cpbench.cli", "calibrate", "--device", "cpu-1thread", "--share", "0",
                             "-w", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, COLUMNS="200"))
    journal = tmp_path / "models" / "fits"
    deadline = time.time() + 120
    while time.time() < deadline and not any(len(p.read_text().splitlines()) > 20 for p in journal.glob("*.partial.jsonl")):
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM and "Traceback" not in stderr and "Error" not in stderr, stderr
    lines = next(journal.glob("*.partial.jsonl")).read_text().splitlines()
    assert len(lines) > 20 and all(json.loads(line) for line in lines[:-1])
