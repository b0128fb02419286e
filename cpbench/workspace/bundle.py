"""A portable, self-describing bundle of a workspace's results: timing runs (with their machine
fingerprints, measurements and per-round summaries), the model rows they refer to, saved time-model
fits and precision fits. Import merges losslessly and idempotently: what is already there with the
same content is skipped, a clash of ids with different content refuses the whole import before
anything is written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from cpbench import __version__
from cpbench.errors import UsageError
from cpbench.workspace.files import write_atomically
from cpbench.workspace.formats import check_format, stamp
from cpbench.workspace.records import ModelRecord, RunRecord
from cpbench.workspace.folder import LOCK_NAME, Workspace

BUNDLE_FORMAT = 1
KIND = "cpbench-results"


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _read_result(path: Path) -> dict:
    """A saved result file's content: JSON, or gzip-compressed JSON (kernel calibrations)."""
    import gzip

    raw = path.read_bytes()
    return json.loads(gzip.decompress(raw) if path.name.endswith(".gz") else raw.decode("utf-8"))


def _write_result(path: Path, content: dict) -> None:
    import gzip

    text = json.dumps(content, indent=None if path.name.endswith(".gz") else 2, separators=None)
    write_atomically(path, gzip.compress(text.encode(), mtime=0) if path.name.endswith(".gz") else (text + "\n").encode())


def _result_files(ws: Workspace) -> dict[str, dict]:
    """Saved fits and kernel calibrations, by their path relative to the workspace:
    models/fits/*.json, models/fits/*.calibration.json.gz, models/fits/*.model.json.gz and models/precision/*.json."""
    out = {}
    for folder, pattern in (("fits", "*.json"), ("fits", "*.calibration.json.gz"), ("fits", "*.model.json.gz"),
                            ("precision", "*.json")):
        for path in sorted((ws.models_dir / folder).glob(pattern)) if (ws.models_dir / folder).is_dir() else []:
            out[f"models/{folder}/{path.name}"] = _read_result(path)
    return out


def export_bundle(ws: Workspace, machine: dict) -> dict:
    runs, models = [], {}
    if ws.store_path.exists():
        with ws.open_store() as store:
            for summary in store.runs():
                run = store.get_run(summary.id)
                runs.append(run.as_dict())
                for m in run.measurements:
                    record = store.get_model(m.model)
                    if record is not None:
                        models[record.name] = record.as_dict(layers=True)
    return stamp({"kind": KIND, "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "cpbench_version": __version__, "exported_on": machine, "runs": runs,
                  "models": list(models.values()), "files": _result_files(ws)}, BUNDLE_FORMAT)


def check_bundle_target(ws: Workspace, path: Path, force: bool) -> None:
    """A bundle never replaces what cpbench keeps (the store, its lock, anything under models/) nor,
    without --force, any existing file; checked before anything is read."""
    path = Path(path)
    target = path.resolve()
    kept = [ws.store_path.resolve(), ws.models_dir.resolve(), (ws.root / LOCK_NAME).resolve()]
    if any(target == k or target.is_relative_to(k) for k in kept) or target.name.startswith(ws.store_path.name):
        raise UsageError(f"{path} is the workspace's store or lies under its models/; write the bundle elsewhere, "
                         "such as results.json")
    if target.is_dir():
        raise UsageError(f"{path} is a folder; name a file such as {path / 'results.json'}")
    if not target.parent.is_dir():
        raise UsageError(f"the folder of {path} does not exist; create it or name a file in an existing folder")
    if target.exists() and not force:
        raise UsageError(f"{path} exists; name a new file, or pass --force to replace it")


def write_bundle(path: Path, bundle: dict) -> None:
    write_atomically(path, (json.dumps(bundle, indent=1, default=str) + "\n").encode())


def read_bundle(path: Path) -> dict:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise UsageError(f"{path} is not a cpbench results bundle ({type(exc).__name__}); export one with 'cpbench results export FILE'") from None
    if not isinstance(payload, dict) or payload.get("kind") != KIND:
        raise UsageError(f"{path} is not a cpbench results bundle; export one with 'cpbench results export FILE'")
    return check_format(payload, BUNDLE_FORMAT, str(path), "export it again with this cpbench")


@dataclass
class ImportSummary:
    runs_added: list[str] = field(default_factory=list)
    runs_present: int = 0
    models_added: int = 0
    models_present: int = 0
    files_added: list[str] = field(default_factory=list)
    files_present: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _run_record(row: dict) -> RunRecord:
    from cpbench.workspace.records import MeasurementRecord

    values = dict(row)
    measurements = [MeasurementRecord(**m) for m in values.pop("measurements")]
    return RunRecord(**values, measurements=measurements)


def import_bundle(ws: Workspace, bundle: dict, kinds: dict[str, int]) -> ImportSummary:
    """Check everything first (bundle_schema: every field, every path inside the workspace, every file
    of a known kind and format; `kinds` maps each file pattern under models/ to its format), then
    write: a clash or a bad field anywhere means nothing is imported."""
    from cpbench.workspace.bundle_schema import check_bundle

    check_bundle(bundle, kinds)
    summary = ImportSummary()
    new_runs, new_models, new_files = [], [], []
    with ws.open_store() as store:
        for row in bundle.get("runs", []):
            run = _run_record(row)
            mine = store.get_run(run.id)
            if mine is None:
                new_runs.append(run)
            elif _canonical(mine.as_dict()) == _canonical(run.as_dict()):
                summary.runs_present += 1
            else:
                raise UsageError(f"run {run.id} is already in {ws.root} with other content; nothing was imported "
                                 "(rename one of the runs or import into another workspace)")
        for row in bundle.get("models", []):
            record = ModelRecord(**{**row, "input_shape": tuple(row["input_shape"])})
            mine = store.get_model(record.name)
            if mine is None:
                new_models.append(record)
            elif mine.sha256 == record.sha256:
                summary.models_present += 1
            else:
                raise UsageError(f"model {record.name} is already in {ws.root} with another file (sha256 differs); "
                                 "nothing was imported")
        for relative, content in bundle.get("files", {}).items():
            if not relative.startswith(("models/fits/", "models/precision/")) or ".." in Path(relative).parts:
                raise UsageError(f"the bundle names a file outside models/fits and models/precision ({relative}); nothing was imported")
            target = ws.root / relative
            if target.is_dir() or any(p.exists() and not p.is_dir() for p in target.parents if ws.root in p.parents):
                raise UsageError(f"{relative} would replace a folder, or lies under a file, in {ws.root}; nothing was imported")
            if not target.exists():
                new_files.append((target, content))
            elif _canonical(_read_result(target)) == _canonical(content):
                summary.files_present += 1
            else:
                raise UsageError(f"{relative} is already in {ws.root} with other content; nothing was imported")
        with ws.lock():
            # files first, each atomically: if the store's transaction then fails, importing again finds
            # them present and commits the rest; the other order would leave runs without their fits
            for target, content in new_files:
                target.parent.mkdir(parents=True, exist_ok=True)
                _write_result(target, content)
                summary.files_added.append(str(target.relative_to(ws.root)))
            with store.transaction() as db:
                for record in new_models:
                    row = record.to_row()
                    db.execute(f"INSERT INTO models ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)})", row)
                for run in new_runs:
                    store.insert_run_record(run, db)
        summary.models_added = len(new_models)
        summary.runs_added = [r.id for r in new_runs]
    return summary
