import sqlite3

import pytest

from cpbench.errors import UsageError
from cpbench.workspace.store import SCHEMA_VERSION, ModelRecord, Store


def record(name: str, accuracy: float | None = 0.9) -> ModelRecord:
    return ModelRecord(
        name=name, kind="family", dataset="fashionmnist", input_shape=(1, 8, 8), num_classes=10,
        recipe_name="smoke", recipe_hash="abc", recipe={"epochs": 1}, params=10, file=f"models/{name}.onnx",
        sha256="0" * 64, opset=18, exporter="test", parity_max_abs_diff=0.0, cpbench_version="0",
        config_id="f1-s8-k1-l1", f=1, s=8, k=1, l=1, accuracy=accuracy, training={"seed": 0},
    )


def test_round_trip_and_versioned_schema(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        assert store.schema_version == SCHEMA_VERSION >= 1
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
