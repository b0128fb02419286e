"""The workspace's embedded SQLite store (cpbench.workspace.folder holds the folder itself).

Each finished model is one row, committed as soon as its file is in place, so an interrupted
sweep keeps everything it finished. The schema is versioned with PRAGMA user_version and grows by
appending migrations.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from cpbench.errors import UsageError
from cpbench.workspace.files import pid_alive
from cpbench.workspace.records import MeasurementRecord, ModelRecord, RunRecord, RunSummary

if TYPE_CHECKING:
    pass


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
        return pid_alive(int(pid))
    except ValueError:
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
