"""The workspace: a folder holding models/, profiles/, reports/ and the store, with the advisory
lock that keeps one model's file and row together."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from cpbench.errors import UsageError

if TYPE_CHECKING:
    from cpbench.workspace.store import Store

STORE_NAME = "cpbench.sqlite"
LOCK_NAME = ".cpbench.lock"


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
        from cpbench.workspace.store import Store

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

    @contextlib.contextmanager
    def exclusive(self, job: str, fix: str) -> Iterator[None]:
        """Held for the whole of a long job that must run alone in this workspace (a calibration: two at
        once would duplicate entries and keep timings taken while they fought for the cores). A second
        one is refused at once, in one line naming the holder, instead of waiting for minutes."""
        import fcntl
        import os

        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f".cpbench-{job}.lock"
        with open(path, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise UsageError(f"another cpbench {job} is running in {self.root} ({holder}); {fix}") from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}")
            handle.flush()
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
