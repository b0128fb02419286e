"""Results from two machines in one workspace: export, import twice, fits kept per machine."""

import json

from cpbench.timing.profiles import SHIPPED
from cpbench.workspace.folder import Workspace
from test_cli import assert_one_line_error
from test_cli_fit import add_run, copy_hand_written, random_configs, truth


def workspace_of(tmp_path, name: str, machine: str, seed: int) -> Workspace:
    ws = Workspace(tmp_path / name)
    ws.profiles_dir.mkdir(parents=True)
    copy_hand_written(SHIPPED / "cpu-1thread.toml", ws.profiles_dir / "cpu-1thread.toml")
    configs = random_configs(40, seed)
    add_run(ws, "cpu-1thread", configs, truth(configs) * (1.0 if machine == "machine-a" else 1.6), hardware_id=machine, seed=seed)
    return ws


def test_export_import_twice_lists_both_machines_once_and_keeps_each_fit(cli, tmp_path):
    a, b = workspace_of(tmp_path, "a", "machine-a", 0), workspace_of(tmp_path, "b", "machine-b", 1)
    for ws, machine in ((a, "machine-a"), (b, "machine-b")):
        done = cli("fit", "--device", "cpu-1thread", "--machine", machine, "-w", str(ws.root), "--json")
        assert done.returncode == 0, done.stderr
    bundle = tmp_path / "a.json"
    assert cli("results", "export", str(bundle), "-w", str(a.root)).returncode == 0
    first = json.loads(cli("results", "import", str(bundle), "-w", str(b.root), "--json").stdout)
    second = json.loads(cli("results", "import", str(bundle), "-w", str(b.root), "--json").stdout)
    assert len(first["runs_added"]) == 1 and first["files_added"] == ["models/fits/cpu-1thread-machine-a.json"]
    assert second["runs_added"] == [] and second["files_added"] == [] and second["runs_present"] == 1
    rows = json.loads(cli("hardware", "-w", str(b.root), "--json").stdout)
    measured = [r for r in rows if r["profile"] == "cpu-1thread" and r["source"] != "shipped reference calibration"]
    machines = sorted(r["hardware_id"] for r in measured)
    assert machines == ["machine-a", "machine-b"]
    # fitting machine A's imported runs in B keeps B's own fit beside it
    own = (b.models_dir / "fits" / "cpu-1thread-machine-b.json").read_bytes()
    done = cli("fit", "--device", "cpu-1thread", "--machine", "machine-a", "-w", str(b.root), "--json")
    assert done.returncode == 0, done.stderr
    fits = sorted(p.name for p in (b.models_dir / "fits").glob("*.json"))
    assert fits == ["cpu-1thread-machine-a.json", "cpu-1thread-machine-b.json"]
    assert (b.models_dir / "fits" / "cpu-1thread-machine-b.json").read_bytes() == own
    assert not any("[fitted" in p.read_text() for p in b.profiles_dir.glob("*.toml"))  # profiles stay settings only
    a1 = {r["hardware_id"]: r["alpha1"] for r in measured}
    assert a1["machine-b"] > a1["machine-a"]  # machine B is 1.6x slower, and its coefficients say so
    # runs from two machines are never fitted together by accident
    assert_one_line_error(cli("fit", "--device", "cpu-1thread", "--machine", "machine-c", "-w", str(b.root)), "machine-c")


def test_a_clash_imports_nothing(cli, tmp_path):
    a, b = workspace_of(tmp_path, "a", "machine-a", 0), workspace_of(tmp_path, "b", "machine-b", 1)
    bundle = tmp_path / "a.json"
    assert cli("results", "export", str(bundle), "-w", str(a.root)).returncode == 0
    payload = json.loads(bundle.read_text())
    payload["runs"][0]["id"] = json.loads(cli("runs", "-w", str(b.root), "--json").stdout)[0]["id"]  # same id, other content
    payload["runs"].append({**payload["runs"][0], "id": "fresh-run"})
    bundle.write_text(json.dumps(payload))
    before = json.loads(cli("runs", "-w", str(b.root), "--json").stdout)
    assert_one_line_error(cli("results", "import", str(bundle), "-w", str(b.root)), "other content", "nothing was imported")
    assert json.loads(cli("runs", "-w", str(b.root), "--json").stdout) == before
    assert_one_line_error(cli("results", "import", str(tmp_path / "nope.json"), "-w", str(b.root)), "not a cpbench results bundle")
