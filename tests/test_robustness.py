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
