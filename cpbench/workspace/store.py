"""The workspace (a folder with models/, profiles/, reports/) and its embedded SQLite store.

Each finished model is one row, committed as soon as its file is in place, so an interrupted
sweep keeps everything it finished. The schema is versioned with PRAGMA user_version and grows by
appending migrations.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from cpbench.errors import UsageError, check_choice

if TYPE_CHECKING:
    from cpbench.counting.count import GraphCount

STORE_NAME = "cpbench.sqlite"
LOCK_NAME = ".cpbench.lock"

MIGRATIONS: list[str] = [
    # 1: models
    """
    CREATE TABLE models (
        name            TEXT PRIMARY KEY,      -- e.g. family/fashionmnist-quick/f64-s28-k5-l3
        kind            TEXT NOT NULL,         -- 'family' or 'zoo'
        config_id       TEXT,
        f INTEGER, s INTEGER, k INTEGER, l INTEGER,
        dataset         TEXT NOT NULL,
        input_shape     TEXT NOT NULL,         -- JSON [C, H, W]; the batch dimension is dynamic
        num_classes     INTEGER NOT NULL,
        recipe_name     TEXT NOT NULL,         -- 'untrained' when exported with random weights
        recipe_hash     TEXT NOT NULL,
        recipe          TEXT NOT NULL,         -- JSON of the recipe's fields
        accuracy        REAL,                  -- test accuracy on the whole test split, P(T)
        training        TEXT,                  -- JSON: epochs, train size, seed, threads, wall time, loss
        normalization   TEXT,                  -- JSON: scale, mean, std, resize
        params          INTEGER NOT NULL,
        file            TEXT NOT NULL,         -- relative to the workspace
        sha256          TEXT NOT NULL,
        opset           INTEGER NOT NULL,
        exporter        TEXT NOT NULL,
        parity_max_abs_diff REAL NOT NULL,
        macs            INTEGER,               -- every counted category (batch 1); FLOPs = 2 x MACs
        core_macs       INTEGER,               -- conv + linear + matmul, torchvision's convention
        weight_bytes    INTEGER,
        activation_bytes INTEGER,
        counts          TEXT,                  -- JSON: cpbench.counting's full count, per layer
        cpbench_version TEXT NOT NULL,
        created_at      TEXT NOT NULL
    );
    CREATE INDEX models_config ON models (config_id, dataset, recipe_hash);
    """,
    # 2: timing runs and their measurements
    """
    CREATE TABLE runs (
        id              TEXT PRIMARY KEY,
        device          TEXT NOT NULL,         -- the profile's name
        profile         TEXT NOT NULL,         -- JSON: the profile as used, overrides included
        batch           INTEGER NOT NULL,
        fingerprint     TEXT NOT NULL,         -- JSON: hardware, OS, library versions
        hardware_id     TEXT NOT NULL,
        status          TEXT NOT NULL,         -- running | done | interrupted
        started_at      TEXT NOT NULL,
        finished_at     TEXT,
        cpbench_version TEXT NOT NULL
    );
    CREATE TABLE measurements (
        run_id          TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        model           TEXT NOT NULL,
        file            TEXT,
        sha256          TEXT,
        macs            INTEGER,
        batch           INTEGER NOT NULL,
        status          TEXT NOT NULL,         -- ok | failed
        error           TEXT,
        load_s          REAL,                  -- session creation or compile
        first_s         REAL,                  -- first inference, apart from the rest
        warmup_runs     INTEGER,
        n               INTEGER,
        median_s REAL, mean_s REAL, stdev_pct REAL, p90_s REAL, p99_s REAL, min_s REAL, max_s REAL,
        iqr_s REAL, median_ci_low_s REAL, median_ci_high_s REAL,
        throughput_ips  REAL,
        warnings        TEXT,                  -- JSON list
        runtime         TEXT,                  -- JSON: what actually ran (providers in use, threads, device)
        times           TEXT,                  -- JSON list of every timed run, seconds
        PRIMARY KEY (run_id, model)
    );
    """,
    # 3: per-round summaries when a model is measured in several rounds
    """
    ALTER TABLE measurements ADD COLUMN rounds TEXT;   -- JSON list: runs, median, min per round
    """,
    # 4: the search space a family model was planned on (fashionmnist | lfw), filled by the rule
    # export has always used: FashionMNIST models on its space, every other dataset on paper 000's
    """
    ALTER TABLE models ADD COLUMN space TEXT;
    UPDATE models SET space = CASE WHEN dataset = 'fashionmnist' THEN 'fashionmnist' ELSE 'lfw' END WHERE kind = 'family';
    """,
    # 5: which process and host run a timing run, so one whose process died shows as interrupted
    """
    ALTER TABLE runs ADD COLUMN owner TEXT;   -- "host:pid" of the process measuring it
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


@dataclass
class ModelRecord:
    name: str
    kind: str
    dataset: str
    input_shape: tuple[int, int, int]
    num_classes: int
    recipe_name: str
    recipe_hash: str
    recipe: dict
    params: int
    file: str
    sha256: str
    opset: int
    exporter: str
    parity_max_abs_diff: float
    cpbench_version: str
    config_id: str | None = None
    f: int | None = None
    s: int | None = None
    k: int | None = None
    l: int | None = None  # noqa: E741
    accuracy: float | None = None
    training: dict | None = None
    normalization: dict | None = None
    macs: int | None = None
    core_macs: int | None = None
    weight_bytes: int | None = None
    activation_bytes: int | None = None
    counts: dict | None = None
    space: str | None = None  # the search space the config was planned on; None for zoo models
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    _JSON = ("input_shape", "recipe", "training", "normalization", "counts")

    def to_row(self) -> dict:
        row = dict(self.__dict__)
        for key in self._JSON:
            row[key] = None if row[key] is None else json.dumps(row[key], sort_keys=True)
        return row

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "ModelRecord":
        values = dict(row)
        for key in cls._JSON:
            if values[key] is not None:
                try:
                    values[key] = json.loads(values[key])
                except ValueError:
                    raise UsageError(f"the store's row for model {values.get('name')!r} has invalid JSON in '{key}'; "
                                     "re-export that model with --force or restore the store from a copy") from None
        values["input_shape"] = tuple(values["input_shape"])
        return cls(**values)

    def as_dict(self, layers: bool = False) -> dict:
        out = dict(self.__dict__, input_shape=list(self.input_shape))
        if out["counts"] and not layers:
            out["counts"] = {k: v for k, v in out["counts"].items() if k != "layers"}
        return out

    def set_counts(self, count: "GraphCount") -> None:
        self.macs, self.core_macs = count.total_macs, count.core_macs
        self.weight_bytes, self.activation_bytes = count.weight_bytes, count.activation_bytes
        self.counts = count.as_dict(layers=True)


@dataclass(frozen=True)
class RunSummary:
    """One timing run as listed: what ran, where, and how many models it measured."""

    id: str
    device: str
    batch: int
    status: str  # running | done | interrupted
    started_at: str
    hardware_id: str
    ok: int
    failed: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class MeasurementRecord:
    """One model's measurement in a run, as read back from the store."""

    model: str
    batch: int
    status: str  # ok | failed
    file: str | None = None
    sha256: str | None = None
    macs: int | None = None
    error: str | None = None
    load_s: float | None = None
    first_s: float | None = None
    warmup_runs: int | None = None
    n: int | None = None
    median_s: float | None = None
    mean_s: float | None = None
    stdev_pct: float | None = None
    p90_s: float | None = None
    p99_s: float | None = None
    min_s: float | None = None
    max_s: float | None = None
    iqr_s: float | None = None
    median_ci_low_s: float | None = None
    median_ci_high_s: float | None = None
    throughput_ips: float | None = None
    warnings: list | None = None
    runtime: dict | None = None
    times: list[float] | None = None
    rounds: list[dict] | None = None


@dataclass
class RunRecord:
    """A timing run with its profile, fingerprint and measurements, as read back from the store."""

    id: str
    device: str
    profile: dict
    batch: int
    fingerprint: dict
    hardware_id: str
    status: str
    started_at: str
    finished_at: str | None
    cpbench_version: str
    measurements: list[MeasurementRecord] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {**{k: v for k, v in self.__dict__.items() if k != "measurements"},
                "measurements": [dict(m.__dict__) for m in self.measurements]}


def default_space(dataset: str) -> str:
    """The one rule for a dataset's search space when none was chosen: FashionMNIST's own, else
    paper 000's LFW space (64 x 64 inputs), which image folders are planned on."""
    return "fashionmnist" if dataset == "fashionmnist" else "lfw"


def space_of(dataset: str, stored: str | None = None):
    """The search space of a dataset's models: the one stored with them, else the default rule."""
    from cpbench.family.config import SPACES

    name = stored or default_space(dataset)
    check_choice(name, SPACES, "space")
    return SPACES[name]


class Workspace:
    """A folder holding models/, profiles/, reports/ and the store; by default the current directory."""

    def __init__(self, root: Path | str = ".") -> None:
        self.root = Path(root).expanduser().resolve()
        if self.root.exists() and not self.root.is_dir():
            raise UsageError(f"--workspace {self.root} is a file, not a folder; pass the folder that holds (or will hold) models/ and the store")

    def require_existing(self) -> "Workspace":
        """For commands that only read: a folder that does not exist is a typo, not an empty workspace."""
        if not self.root.is_dir():
            raise UsageError(f"no workspace at {self.root} (the folder does not exist); check --workspace")
        return self

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def profiles_dir(self) -> Path:
        return self.root / "profiles"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def store_path(self) -> Path:
        return self.root / STORE_NAME

    def ensure_writable(self) -> None:
        """Create the folders and prove we can write there, before any work is done."""
        try:
            for folder in (self.root, self.models_dir, self.reports_dir):
                folder.mkdir(parents=True, exist_ok=True)
            for folder in (self.root, self.models_dir):  # the store's folder too: SQLite creates its journal files there
                with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
                    pass
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise UsageError(
                f"workspace {self.root} is not writable ({reason}); pass --workspace DIR with a folder you can write to"
            ) from None

    def open_store(self) -> "Store":
        path = self.store_path
        if path.exists() and path.stat().st_size == 0 and self.models_dir.is_dir() and any(self.models_dir.rglob("*.onnx")):
            raise UsageError(f"{path} is empty but {self.models_dir} holds model files; restore the store from a copy, "
                             "or move models/ away to start a new workspace (nothing was changed)")
        return Store(path)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """An advisory lock on the workspace, held while a model's file is replaced and its row
        committed, so two processes exporting one model never leave one's row beside the other's file."""
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / LOCK_NAME, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _owner() -> str:
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(owner: str | None) -> bool:
    """Whether the process that owns a run still lives (on another host: assumed so)."""
    import socket

    if not owner or ":" not in owner:
        return True
    host, pid = owner.rsplit(":", 1)
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


def _statements(script: str) -> list[str]:
    """The SQL statements of a migration script, one by one (executescript would commit on its own)."""
    out, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                out.append(buffer.strip())
            buffer = ""
    return out


class Store:
    """The SQLite store; one connection, autocommit off, one transaction per finished item."""

    def __init__(self, path: Path) -> None:
        self.path = path
        writable = os.access(path.parent, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))
        self.read_only = path.exists() and not writable
        try:
            if self.read_only:  # a read-only workspace stays readable; nothing is written, not even the journal mode
                self.db = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True, timeout=30)
            else:
                self.db = sqlite3.connect(path, timeout=30)
        except sqlite3.OperationalError as exc:
            raise UsageError(f"cannot open the store {path} ({exc}); check its permissions or pass --workspace DIR") from None
        self.db.row_factory = sqlite3.Row
        try:
            self._migrate()
            if not self.read_only:
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "readonly" in str(exc) or "unable to open" in str(exc):
                raise UsageError(f"cannot open or lock the store {path} ({exc}); it is intact: retry, or check who holds it") from None
            raise UsageError(f"{path} is not a cpbench store ({exc}); move it away or pick another --workspace") from None
        except sqlite3.DatabaseError as exc:
            raise UsageError(f"{path} is not a cpbench store ({exc}); move it away or pick another --workspace") from None

    def _version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    def _migrate(self) -> None:
        """Checked before anything is written; migrations run in one immediate transaction that reads
        the version again, so processes opening a new workspace at once create it exactly once."""
        version = self._version()
        if version > SCHEMA_VERSION:
            raise UsageError(
                f"{self.path} has schema version {version}, newer than this cpbench ({SCHEMA_VERSION}); upgrade cpbench"
            )
        if version == SCHEMA_VERSION:
            self._check_tables()
            return
        if self.read_only:
            raise UsageError(f"{self.path} needs a schema upgrade ({version} -> {SCHEMA_VERSION}) but is read-only; "
                             "make the workspace writable once, or copy it")
        self.db.isolation_level = None  # manual transactions: BEGIN IMMEDIATE takes the write lock at once
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                version = self._version()
                for number in range(version, SCHEMA_VERSION):
                    for statement in _statements(MIGRATIONS[number]):
                        self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        finally:
            self.db.isolation_level = ""
        self._check_tables()

    def _check_tables(self) -> None:
        tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = {"models", "runs", "measurements"} - tables
        if missing:
            raise UsageError(f"{self.path} has a schema version but no {', '.join(sorted(missing))} table; it is not a cpbench "
                             "store: move it away or pick another --workspace")

    @property
    def schema_version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            yield self.db
            self.db.commit()
        except BaseException:
            self.db.rollback()
            raise

    def put_model(self, record: ModelRecord) -> None:
        row = record.to_row()
        columns = ", ".join(row)
        marks = ", ".join(f":{key}" for key in row)
        with self.transaction() as db:
            db.execute(f"INSERT OR REPLACE INTO models ({columns}) VALUES ({marks})", row)

    def get_model(self, name: str) -> ModelRecord | None:
        row = self.db.execute("SELECT * FROM models WHERE name = ?", (name,)).fetchone()
        return None if row is None else ModelRecord.from_row(row)

    def models(self, pattern: str | None = None) -> list[ModelRecord]:
        rows = self.db.execute("SELECT * FROM models ORDER BY kind, dataset, recipe_name, f DESC, s DESC, k DESC, l DESC, name")
        records = [ModelRecord.from_row(row) for row in rows]
        if pattern:
            from fnmatch import fnmatchcase

            records = [r for r in records if fnmatchcase(r.name, pattern)]
        return records

    # ---- timing runs -------------------------------------------------------------------------

    def start_run(self, run) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO runs (id, device, profile, batch, fingerprint, hardware_id, status, started_at, cpbench_version, owner)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run.id, run.device, json.dumps(run.profile.as_dict()), run.profile.batch, json.dumps(run.fingerprint),
                 run.fingerprint["hardware_id"], run.status, run.started_at, run.fingerprint["cpbench"], _owner()),
            )

    def finish_run(self, run) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE runs SET status = ?, finished_at = ? WHERE id = ?",
                (run.status, datetime.now(timezone.utc).isoformat(timespec="seconds"), run.id),
            )

    def delete_run(self, run_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM measurements WHERE run_id = ?", (run_id,))
            db.execute("DELETE FROM runs WHERE id = ?", (run_id,))

    def put_timing(self, run_id: str, timing) -> None:
        stats = timing.stats.as_dict() if timing.stats else {}
        row = {
            "run_id": run_id, "model": timing.model, "file": timing.file, "sha256": timing.sha256, "macs": timing.macs,
            "batch": timing.batch, "status": timing.status, "error": timing.error, "load_s": timing.load_s,
            "first_s": timing.first_s, "warmup_runs": timing.warmup_runs, "n": stats.get("n"),
            **{k: stats.get(k) for k in ("median_s", "mean_s", "stdev_pct", "p90_s", "p99_s", "min_s", "max_s", "iqr_s", "median_ci_low_s", "median_ci_high_s")},
            "throughput_ips": timing.throughput_ips, "warnings": json.dumps(stats.get("warnings", [])),
            "runtime": json.dumps(timing.runtime), "times": json.dumps(timing.times_s), "rounds": json.dumps(timing.rounds),
        }
        with self.transaction() as db:
            db.execute(
                f"INSERT OR REPLACE INTO measurements ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)})", row
            )

    def insert_run_record(self, run: "RunRecord", db: sqlite3.Connection) -> None:
        """A run read from another store (a results bundle), inside the caller's transaction."""
        db.execute(
            "INSERT INTO runs (id, device, profile, batch, fingerprint, hardware_id, status, started_at, finished_at,"
            " cpbench_version, owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
            (run.id, run.device, json.dumps(run.profile), run.batch, json.dumps(run.fingerprint), run.hardware_id,
             run.status, run.started_at, run.finished_at, run.cpbench_version),
        )
        for m in run.measurements:
            row = {"run_id": run.id, **m.__dict__}
            for key in ("warnings", "runtime", "times", "rounds"):
                row[key] = None if row[key] is None else json.dumps(row[key])
            db.execute(f"INSERT INTO measurements ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)})", row)

    def runs(self) -> list["RunSummary"]:
        rows = self.db.execute(
            "SELECT r.id, r.device, r.batch, r.status, r.started_at, r.hardware_id, r.owner,"
            " (SELECT count(*) FROM measurements m WHERE m.run_id = r.id AND m.status = 'ok') AS ok,"
            " (SELECT count(*) FROM measurements m WHERE m.run_id = r.id AND m.status != 'ok') AS failed"
            " FROM runs r ORDER BY r.started_at, r.id"
        )
        out = []
        for row in rows:
            values = dict(row)
            owner = values.pop("owner")
            if values["status"] == "running" and not _alive(owner):
                values["status"] = "interrupted"  # its process is gone (kill -9, a crash): it will never finish
            out.append(RunSummary(**values))
        return out

    def run_profile(self, run_id: str) -> dict:
        """The profile a run was timed with, without reading its measurements (they hold every time)."""
        row = self.db.execute("SELECT profile FROM runs WHERE id = ?", (run_id,)).fetchone()
        try:
            return json.loads(row["profile"]) if row is not None else {}
        except ValueError:
            raise UsageError(f"the store's run {run_id!r} holds invalid JSON; restore the store from a copy or "
                             "time the device again") from None

    def get_run(self, run_id: str) -> "RunRecord | None":
        row = self.db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            return None
        run = dict(row)
        if run["status"] == "running" and not _alive(run.get("owner")):
            run["status"] = "interrupted"
        run.pop("owner", None)
        try:
            run["profile"], run["fingerprint"] = json.loads(run["profile"]), json.loads(run["fingerprint"])
            measurements = []
            for m in self.db.execute("SELECT * FROM measurements WHERE run_id = ? ORDER BY rowid", (run_id,)):
                m = dict(m)
                for key in ("warnings", "runtime", "times", "rounds"):
                    m[key] = json.loads(m[key]) if m[key] else None
                m.pop("run_id")
                measurements.append(MeasurementRecord(**m))
        except ValueError:
            raise UsageError(f"the store's run {run_id!r} holds invalid JSON; restore the store from a copy or "
                             "time the device again") from None
        return RunRecord(**run, measurements=measurements)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
