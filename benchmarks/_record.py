"""Dated result records under benchmarks/results/: one JSON file per benchmark run, named by its
conditions (date, hardware id, benchmark, profile), with the machine's fingerprint, the command,
the commit and a format version, so a figure can be traced to where and how it was measured."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
RECORD_FORMAT = 1


def commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=RESULTS.parent)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True,
                           cwd=RESULTS.parent).stdout.strip()
    return (done.stdout.strip() or "unknown") + ("+changes" if dirty else "")


def record(benchmark: str, profile: str, figures: dict, fingerprint: dict) -> Path:
    """Write the record and return its path: results/<date>-<hardware id>-<benchmark>-<profile>.json."""
    now = datetime.now(timezone.utc)
    path = RESULTS / f"{now:%Y-%m-%d}-{fingerprint.get('hardware_id', 'unknown')}-{benchmark}-{profile}.json"
    payload = {"format": RECORD_FORMAT, "benchmark": benchmark, "profile": profile,
               "date": now.isoformat(timespec="seconds"), "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
               "commit": commit(), "fingerprint": fingerprint, "figures": figures}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, default=float) + "\n", encoding="utf-8")
    return path
