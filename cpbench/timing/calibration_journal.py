"""The journal of an unfinished calibration: every measurement appended as it arrives, so a stop at
any moment loses almost nothing and the same command resumes where it stopped."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

from cpbench.errors import UsageError
from cpbench.family.config import Space
from cpbench.timing.calibration_design import CalibrationDesign
from cpbench.timing.profiles import Profile

JOURNAL_FORMAT = 3


def journal_path(models_dir: Path, device: str, hardware_id: str) -> Path:
    return models_dir / "fits" / f"{device}-{hardware_id}.calibration.partial.jsonl"


@dataclass
class Measured:
    """One item timed in one round: round-min and median of its runs, its load time, and the two
    reference timings around it; `attempt` 1 when it was re-measured for an off reference."""

    minimum: float
    median: float
    load_s: float
    bracket: tuple[float, float]
    attempt: int = 0


class Journal:
    """What an unfinished calibration measured, one JSON line per (round, item) or reference timing,
    flushed as it comes: a stop at any moment (Ctrl-C, kill, a crash) loses at most the items since
    the last reference timing, and the same command resumes. The first line says what was being
    calibrated (other settings never resume it); a `plan` line keeps what the budget chose."""

    def __init__(self, path: Path, header: dict) -> None:
        self.path, self.header = path, header
        self.done: dict[tuple[int, str], Measured] = {}
        self.references: list[float] = []
        self.plan: dict | None = None
        self.elapsed_s = 0.0
        self._file = None  # created with the first measurement: a run that measures nothing leaves no journal
        if path.exists():
            self._read()

    def _read(self) -> None:
        from cpbench.workspace.formats import open_for_append, read_jsonl

        fix = "delete the file to start over"
        rows = iter(read_jsonl(self.path, fix))
        if next(rows, (0, None))[1] != self.header:
            raise UsageError(f"{self.path} holds an unfinished calibration with other settings (or is damaged); rerun "
                             f"with the same options to resume it, or {fix}")
        for _, r in rows:
            try:
                if "plan" in r:
                    self.plan = dict(r["plan"])
                    continue
                self.elapsed_s = max(self.elapsed_s, float(r["t"]))
                if "ref" in r:
                    self.references.append(float(r["ref"]))
                    continue
                key = (int(r["round"]), str(r["id"]))
                m = Measured(float(r["min"]), float(r["median"]), float(r["load_s"]),
                             (float(r["bracket"][0]), float(r["bracket"][1])), int(r.get("attempt", 0)))
                self.done[key] = m if key not in self.done else quieter(self.done[key], m)
            except (ValueError, KeyError, TypeError, IndexError):
                continue  # a line cut short by a kill: that item is measured again
        self._file = open_for_append(self.path)

    def _write(self, row: dict) -> None:
        import json

        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "w", encoding="utf-8")
            self._file.write(json.dumps(self.header, sort_keys=True) + "\n")
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()

    def add(self, round_index: int, item_id: str, m: Measured, elapsed_s: float) -> None:
        self._write({"round": round_index, "id": item_id, "min": m.minimum, "median": m.median, "load_s": m.load_s,
                     "bracket": list(m.bracket), "attempt": m.attempt, "t": round(elapsed_s, 3)})

    def add_reference(self, seconds: float, elapsed_s: float) -> None:
        self._write({"ref": seconds, "t": round(elapsed_s, 3)})

    def set_plan(self, plan: dict) -> None:
        self.plan = plan
        self._write({"plan": plan})

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def quieter(old: Measured, new: Measured) -> Measured:
    """Of two timings of one item in one round, the one whose reference bracket was the quieter."""
    return new if max(new.bracket) < max(old.bracket) else replace(old, attempt=max(old.attempt, new.attempt))


def journal_header(profile: Profile, space: Space, design: CalibrationDesign, in_channels: int, hardware_id: str) -> dict:
    import json

    return json.loads(json.dumps({"format": JOURNAL_FORMAT, "device": profile.name, "profile": profile.as_dict(),
                                  "space": space.name, "in_channels": in_channels, "design": asdict(design),
                                  "hardware_id": hardware_id}, sort_keys=True, default=str))
