"""One way to write and read cpbench's JSON, TOML and JSON-lines files: each carries `format = N`,
and one function reads each kind, refusing a version this cpbench does not know with a clear message."""

from __future__ import annotations

import gzip
import json
import os
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from cpbench.errors import UsageError
from cpbench.workspace.files import write_atomically


def stamp(payload: dict, version: int) -> dict:
    """The payload with its format version first."""
    return {"format": version, **{k: v for k, v in payload.items() if k != "format"}}


def check_format(payload: dict, version: int, what: str, fix: str) -> dict:
    """Refuse a payload whose format is not `version`, naming the file and the fix."""
    found = payload.get("format") if isinstance(payload, dict) else None
    if found != version:
        newer = isinstance(found, int) and found > version
        advice = "upgrade cpbench to read it" if newer else fix
        shown = "no format field" if found is None else f"format {found!r}"
        raise UsageError(f"{what} has {shown}; this cpbench reads format {version}: {advice}")
    return payload


def read_versioned(path: Path, version: int, fix: str) -> dict:
    """A JSON (plain or gzip-compressed, `.json.gz`) or TOML file of cpbench's, parsed and checked
    against `version`."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path} ({exc.strerror or type(exc).__name__}); check the path and its permissions") from None
    try:
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise UsageError(f"{path} is damaged or not gzip-compressed ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); {fix}") from None
    try:
        text = raw.decode("utf-8")
        payload = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"{path} is not valid {'TOML' if path.suffix == '.toml' else 'JSON'} ({reason}); {fix}") from None
    if not isinstance(payload, dict):
        raise UsageError(f"{path} does not hold a cpbench result (not an object); {fix}")
    return check_format(payload, version, str(path), fix)


def write_json(path: Path, payload: dict, version: int) -> Path:
    """Written atomically; a `.json.gz` path is gzip-compressed, compact and reproducible (mtime 0)."""
    path = Path(path)
    if path.suffix == ".gz":
        text = json.dumps(stamp(payload, version), separators=(",", ":"), default=str)
        write_atomically(path, gzip.compress(text.encode(), mtime=0))
    else:
        write_atomically(path, (json.dumps(stamp(payload, version), indent=2, default=str) + "\n").encode())
    return path


def read_jsonl(path: Path, fix: str) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each line of a JSON-lines file. A line that opens an object but does
    not parse is a write cut short by a kill and is skipped (appends start a fresh line after it);
    any other line that is not a JSON object is damage, refused naming the line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path} ({exc.strerror or type(exc).__name__}); check the path and its permissions") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text; {fix}") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):
            if line.lstrip().startswith("{"):
                continue
            raise UsageError(f"{path}:{number} is not a JSON line; {fix}") from None
        if not isinstance(row, dict):
            raise UsageError(f"{path}:{number} is not a JSON object; {fix}")
        yield number, row


def open_for_append(path: Path) -> TextIO:
    """The file opened for appending lines, on a line of its own even when the last write was cut
    mid-line (otherwise the next line would be glued to the fragment and never read back)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a", encoding="utf-8")
    if handle.tell() > 0:
        with open(path, "rb") as reader:
            reader.seek(-1, 2)
            if reader.read(1) != b"\n":
                handle.write("\n")
    return handle


def append_jsonl(path: Path, row: dict) -> None:
    """One line, flushed and fsynced: a stop at any moment loses at most the line being written."""
    with open_for_append(path) as handle:
        handle.write(json.dumps(row, sort_keys=True, default=str) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
