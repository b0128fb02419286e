import sqlite3

import pytest

from cpbench.errors import UsageError
from cpbench.workspace.store import SCHEMA_VERSION, Store
from cpbench.workspace.records import ModelRecord


def record(name: str, accuracy: float | None = 0.9) -> ModelRecord:
    return ModelRecord(
        name=name, kind="family", dataset="fashionmnist", input_shape=(1, 8, 8), num_classes=10,
        recipe_name="smoke", recipe_hash="abc", recipe={"epochs": 1}, params=10, file=f"models/{name}.onnx",
        sha256="0" * 64, opset=18, exporter="test", parity_max_abs_diff=0.0, cpbench_version="0",
        config_id="f1-s8-k1-l1", f=1, s=8, k=1, l=1, accuracy=accuracy, training={"seed": 0},
    )


def test_round_trip_and_versioned_schema(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        assert store._version() == SCHEMA_VERSION >= 1
        store.put_model(record("family/a"))
        store.put_model(record("family/b", accuracy=None))
        got = store.get_model("family/a")
        assert got == record("family/a").__class__(**{**record("family/a").__dict__, "created_at": got.created_at})
        assert [r.name for r in store.models("family/*")] == ["family/a", "family/b"]
        assert store.models("zoo/*") == []
    # reopening keeps the rows and does not migrate again
    with Store(tmp_path / "s.sqlite") as store:
        assert len(store.models()) == 2


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "s.sqlite"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(UsageError, match="upgrade cpbench"):
        Store(path)


def test_garbage_store_is_a_clear_error(tmp_path):
    path = tmp_path / "s.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(UsageError, match="not a cpbench store"):
        Store(path)


def test_processes_opening_a_new_workspace_at_once_create_the_store_once(tmp_path):
    import subprocess
    import sys

    (tmp_path / "ws").mkdir()  # a new, empty workspace
    code = ("import sys; from cpbench.workspace.folder import Workspace\n"
            "with Workspace(sys.argv[1]).open_store() as store: print(store._version())")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "ws")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(8)]
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [r[1] for r in results]
    from cpbench.workspace.store import SCHEMA_VERSION
    assert {r[0].strip() for r in results} == {str(SCHEMA_VERSION)}


def test_two_exports_of_one_model_at_once_leave_a_row_that_matches_its_file(tmp_path):
    import hashlib
    import json
    import subprocess
    import sys

    ws = tmp_path / "ws"
    args = [sys.executable, "-m", "cpbench.cli", "export", "--config", "4,8,3,1", "--untrained", "--force", "-w", str(ws)]
    for round_ in range(2):
        procs = [subprocess.Popen(args + ["--seed", str(seed + 2 * round_)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for seed in (0, 1)]
        assert all(p.wait(timeout=300) == 0 for p in procs)
        done = subprocess.run([sys.executable, "-m", "cpbench.cli", "models", "-w", str(ws), "--json"], capture_output=True, text=True)
        for model in json.loads(done.stdout):
            assert hashlib.sha256((ws / model["file"]).read_bytes()).hexdigest() == model["sha256"]


def test_a_read_only_workspace_is_readable_and_an_empty_store_beside_models_is_refused(tmp_path, cli):
    import os
    import stat

    from cpbench.errors import UsageError
    from cpbench.workspace.folder import Workspace

    ws = tmp_path / "ws"
    assert cli("export", "--config", "4,8,3,1", "--untrained", "-w", str(ws)).returncode == 0
    store = ws / "cpbench.sqlite"
    if os.geteuid() != 0:  # root reads and writes whatever the mode says; the read-only path is for everyone else
        os.chmod(ws, stat.S_IRUSR | stat.S_IXUSR)
        os.chmod(store, stat.S_IRUSR)
        try:
            listed = cli("models", "-w", str(ws), "--json")
            assert listed.returncode == 0, listed.stderr
        finally:
            os.chmod(ws, stat.S_IRWXU)
            os.chmod(store, stat.S_IRUSR | stat.S_IWUSR)
    for extra in ("-wal", "-shm"):
        (ws / f"cpbench.sqlite{extra}").unlink(missing_ok=True)
    store.write_bytes(b"")
    with pytest.raises(UsageError, match="empty but .* holds model files"):
        Workspace(ws).open_store()


def test_a_run_whose_process_died_shows_as_interrupted(tmp_path):
    import subprocess
    import sys

    from cpbench.workspace.store import Store

    path = tmp_path / "cpbench.sqlite"
    with Store(path) as store:
        store.db.execute("INSERT INTO runs (id, device, profile, batch, fingerprint, hardware_id, status, started_at, cpbench_version, owner)"
                         " VALUES ('r1', 'cpu', '{}', 1, '{}', 'h', 'running', '2026-01-01', 'x', ?)",
                         (f"{__import__('socket').gethostname()}:{subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], capture_output=True, text=True).stdout.strip()}",))
        store.db.commit()
        assert store.runs()[0].status == "interrupted" and store.get_run("r1").status == "interrupted"
