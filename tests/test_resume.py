"""An interrupted export keeps what finished, leaves no partial file or row, and resumes."""

import json
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

# the first finishes fast; the others take seconds each, so the interrupt lands mid-sweep
CONFIGS = ["8,12,3,1", "16,28,3,2", "16,24,4,2", "12,20,3,2"]
SUBSET = "8000"


def start_export(workspace):
    args = [sys.executable, "-m", "cpbench.cli", "export", "--recipe", "smoke", "--train-subset", SUBSET, "-w", str(workspace)]
    for config in CONFIGS:
        args += ["--config", config]
    # a shell that starts jobs in the background (CI, nohup ... &) leaves SIGINT ignored in its
    # children; restore the default so the child behaves as in a terminal where Ctrl-C is pressed
    restore_ctrl_c = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=restore_ctrl_c)


def finished_rows(workspace) -> int:
    path = workspace / "cpbench.sqlite"
    if not path.exists():
        return 0
    try:
        db = sqlite3.connect(path, timeout=1)
        return db.execute("SELECT count(*) FROM models").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def wait_for_rows(workspace, process, n, timeout=120):
    deadline = time.time() + timeout
    while finished_rows(workspace) < n:
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline
        time.sleep(0.05)


def onnx_files(workspace):
    return sorted(p.name for p in (workspace / "models").rglob("*") if p.is_file())


@pytest.mark.parametrize("how", ["kill -9", "ctrl-c"])
def test_interrupted_export_resumes(cli, tmp_path, how):
    process = start_export(tmp_path)
    wait_for_rows(tmp_path, process, 1)  # then interrupt at once, inside the second config's training
    if how == "kill -9":
        process.kill()
        process.wait()
    else:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 130 and "rerun the same command to resume" in stderr
    kept = finished_rows(tmp_path)
    assert 1 <= kept < len(CONFIGS)
    files = onnx_files(tmp_path)
    assert all(name.endswith(".onnx") for name in files), files  # no temporary leftovers
    assert len(files) == kept

    db = sqlite3.connect(tmp_path / "cpbench.sqlite")
    before = dict(db.execute("SELECT name, created_at FROM models"))
    db.close()
    args = ["export", "--recipe", "smoke", "--train-subset", SUBSET, "-w", str(tmp_path), "--json"]
    for config in CONFIGS:
        args += ["--config", config]
    rerun = cli(*args)
    assert rerun.returncode == 0, rerun.stderr
    statuses = [m["status"] for m in json.loads(rerun.stdout)["models"]]
    assert statuses.count("skipped") == kept and statuses.count("exported") == len(CONFIGS) - kept
    assert finished_rows(tmp_path) == len(CONFIGS) and len(onnx_files(tmp_path)) == len(CONFIGS)
    db = sqlite3.connect(tmp_path / "cpbench.sqlite")
    after = dict(db.execute("SELECT name, created_at FROM models"))
    assert all(after[name] == created for name, created in before.items())  # finished work was not redone
