"""What a results bundle may hold, checked completely before anything is written: every run,
measurement and model record field by type and range, every model file inside the workspace's
models/, every result file a known kind of a known format under models/fits or models/precision.
An error names the place in the bundle (runs[2].measurements[0].median_s) and the fix."""

from __future__ import annotations

import math
import re
from dataclasses import MISSING, fields
from pathlib import PurePosixPath

from cpbench.errors import UsageError
from cpbench.workspace.records import MeasurementRecord, ModelRecord, RunRecord

FIX = "export the bundle again with 'cpbench results export'; nothing was imported"
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,199}")
HEX64 = re.compile(r"[0-9a-f]{64}")
RUN_STATUS = ("running", "done", "interrupted")
MEASUREMENT_STATUS = ("ok", "failed")
MAX_DEPTH = 64  # a result nested deeper than this is not one cpbench wrote


def _fail(where: str, problem: str) -> UsageError:
    return UsageError(f"the bundle's {where} {problem}; {FIX}")


def _depth(value: object, limit: int, where: str) -> None:
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            raise _fail(where, f"is nested more than {limit} levels deep")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def _number(value: object, where: str, integer: bool = False, low: float = 0.0, optional: bool = True) -> None:
    if value is None and optional:
        return
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value) or value < low:
        raise _fail(where, f"is {value!r}, not {'a whole number' if integer else 'a finite number'} >= {low:g}")


def _typed(value: object, kind: type | tuple, where: str, optional: bool = True) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
        name = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise _fail(where, f"is {type(value).__name__}, not {name}")


def _keys(row: object, record: type, where: str) -> dict:
    if not isinstance(row, dict):
        raise _fail(where, f"is {type(row).__name__}, not an object")
    known = {f.name for f in fields(record)}
    required = {f.name for f in fields(record) if f.default is MISSING and f.default_factory is MISSING}
    if extra := sorted(set(row) - known):
        raise _fail(f"{where}.{extra[0]}", "is not a field cpbench knows")
    if missing := sorted(required - set(row)):
        raise _fail(f"{where}.{missing[0]}", "is missing")
    return row


def _relative_file(value: object, where: str, under: str, suffixes: tuple[str, ...]) -> PurePosixPath:
    _typed(value, str, where, optional=False)
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or not path.parts or path.parts[0] != under or \
            not all(SAFE_NAME.fullmatch(p) for p in path.parts) or not value.endswith(suffixes):
        raise _fail(where, f"is {value!r}: not a {'/'.join(suffixes)} file inside the workspace's {under}/")
    return path


def check_measurement(row: object, where: str) -> None:
    m = _keys(row, MeasurementRecord, where)
    _typed(m["model"], str, f"{where}.model", optional=False)
    _number(m["batch"], f"{where}.batch", integer=True, low=1, optional=False)
    if m["status"] not in MEASUREMENT_STATUS:
        raise _fail(f"{where}.status", f"is {m['status']!r}, not one of {', '.join(MEASUREMENT_STATUS)}")
    for key in ("file", "error"):
        _typed(m.get(key), str, f"{where}.{key}")
    if m.get("sha256") is not None and not (isinstance(m["sha256"], str) and HEX64.fullmatch(m["sha256"])):
        raise _fail(f"{where}.sha256", "is not a sha256 (64 hex digits)")
    for key in ("macs", "warmup_runs", "n"):
        _number(m.get(key), f"{where}.{key}", integer=True)
    for key in ("load_s", "first_s", "median_s", "mean_s", "stdev_pct", "p90_s", "p99_s", "min_s", "max_s", "iqr_s",
                "median_ci_low_s", "median_ci_high_s", "throughput_ips"):
        _number(m.get(key), f"{where}.{key}")
    if m["status"] == "ok" and m.get("median_s") is None:
        raise _fail(f"{where}.median_s", "is missing from a measurement marked ok")
    for key, kind in (("warnings", list), ("runtime", dict), ("times", list), ("rounds", list)):
        _typed(m.get(key), kind, f"{where}.{key}")
    for i, t in enumerate(m.get("times") or []):
        _number(t, f"{where}.times[{i}]", optional=False)
    for i, r in enumerate(m.get("rounds") or []):
        _typed(r, dict, f"{where}.rounds[{i}]", optional=False)


def check_run(row: object, where: str) -> None:
    run = _keys(row, RunRecord, where)
    _typed(run["id"], str, f"{where}.id", optional=False)
    if not SAFE_NAME.fullmatch(run["id"]):
        raise _fail(f"{where}.id", f"is {run['id']!r}, not a run id")
    for key in ("device", "hardware_id", "started_at", "cpbench_version"):
        _typed(run[key], str, f"{where}.{key}", optional=False)
    _typed(run["finished_at"], str, f"{where}.finished_at")
    for key in ("profile", "fingerprint"):
        _typed(run[key], dict, f"{where}.{key}", optional=False)
    _number(run["batch"], f"{where}.batch", integer=True, low=1, optional=False)
    if run["status"] not in RUN_STATUS:
        raise _fail(f"{where}.status", f"is {run['status']!r}, not one of {', '.join(RUN_STATUS)}")
    if "measurements" not in run:
        raise _fail(f"{where}.measurements", "is missing")
    _typed(run["measurements"], list, f"{where}.measurements", optional=False)
    for i, m in enumerate(run["measurements"]):
        check_measurement(m, f"{where}.measurements[{i}]")


def check_model(row: object, where: str) -> None:
    m = _keys(row, ModelRecord, where)
    _typed(m["name"], str, f"{where}.name", optional=False)
    name = PurePosixPath(m["name"])
    if name.is_absolute() or ".." in name.parts or not all(SAFE_NAME.fullmatch(p) for p in name.parts):
        raise _fail(f"{where}.name", f"is {m['name']!r}, not a model name")
    _relative_file(m["file"], f"{where}.file", "models", (".onnx",))
    if not (isinstance(m["sha256"], str) and HEX64.fullmatch(m["sha256"])):
        raise _fail(f"{where}.sha256", "is not a sha256 (64 hex digits)")
    shape = m["input_shape"]
    if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
                                                                  for v in shape)):
        raise _fail(f"{where}.input_shape", f"is {shape!r}, not three whole numbers >= 1 (channels, height, width)")
    for key in ("kind", "dataset", "recipe_name", "recipe_hash", "exporter", "cpbench_version", "created_at"):
        _typed(m.get(key), str, f"{where}.{key}", optional=key == "created_at")
    for key in ("config_id", "space"):
        _typed(m.get(key), str, f"{where}.{key}")
    _typed(m["recipe"], dict, f"{where}.recipe", optional=False)
    for key in ("num_classes", "opset"):
        _number(m[key], f"{where}.{key}", integer=True, low=1, optional=False)
    _number(m["params"], f"{where}.params", integer=True, optional=False)
    _number(m["parity_max_abs_diff"], f"{where}.parity_max_abs_diff", optional=False)
    for key in ("f", "s", "k", "l"):
        _number(m.get(key), f"{where}.{key}", integer=True, low=1)
    for key in ("macs", "core_macs", "weight_bytes", "activation_bytes"):
        _number(m.get(key), f"{where}.{key}", integer=True)
    _number(m.get("accuracy"), f"{where}.accuracy")
    if m.get("accuracy") is not None and m["accuracy"] > 1:
        raise _fail(f"{where}.accuracy", f"is {m['accuracy']!r}, not in [0, 1]")
    for key in ("training", "normalization", "counts"):
        _typed(m.get(key), dict, f"{where}.{key}")


def check_files(files: object, kinds: dict[str, int]) -> None:
    """`kinds`: for each file ending cpbench imports ('fits/*.calibration.json.gz' and so on), the
    format its content must carry."""
    _typed(files, dict, "files", optional=False)
    for relative, content in files.items():
        where = f"files[{relative!r}]"
        path = _relative_file(relative, where, "models", (".json", ".json.gz"))
        kind = next((k for k in kinds if len(path.parts) == 3 and PurePosixPath(*path.parts[1:]).match(k)), None)
        if kind is None:
            raise _fail(where, f"is not a result file cpbench imports ({', '.join('models/' + k for k in kinds)})")
        if not isinstance(content, dict) or content.get("format") != kinds[kind]:
            found = content.get("format") if isinstance(content, dict) else type(content).__name__
            raise _fail(where, f"holds {found!r} where a models/{kind} of format {kinds[kind]} belongs")


def check_bundle(bundle: dict, kinds: dict[str, int]) -> None:
    """Everything the import would write, checked; raises on the first problem."""
    _depth(bundle, MAX_DEPTH, "content")
    runs, models = bundle.get("runs", []), bundle.get("models", [])
    _typed(runs, list, "runs", optional=False)
    _typed(models, list, "models", optional=False)
    seen: set[str] = set()
    for i, row in enumerate(runs):
        check_run(row, f"runs[{i}]")
        if row["id"] in seen:
            raise _fail(f"runs[{i}].id", f"repeats run {row['id']}")
        seen.add(row["id"])
    seen = set()
    for i, row in enumerate(models):
        check_model(row, f"models[{i}]")
        if row["name"] in seen:
            raise _fail(f"models[{i}].name", f"repeats model {row['name']}")
        seen.add(row["name"])
    check_files(bundle.get("files", {}), kinds)
