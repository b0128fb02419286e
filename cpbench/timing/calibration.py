"""Kernel-level calibration of a device (nn-Meter's approach): time the family's distinct kernels
alone, and a few whole networks, under a profile, in fresh worker processes, several interleaved
rounds, with a fixed number of runs per round. cpbench.fitting.kernel_model turns the result
into a latency model for this machine; nothing here knows any CPU's kernels. What is timed is
planned in calibration_design; the result is a calibration_record.
"""

from __future__ import annotations

import random
import tempfile
import time
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from cpbench.errors import UsageError, first_line
from cpbench.family.config import Config, Space
from cpbench.family.kernels import kernel_graph, network_graph
from cpbench.timing.calibration_design import CalibrationDesign, plan_kernels, plan_networks
from cpbench.timing.calibration_record import Calibration
from cpbench.timing.profiles import Profile
from cpbench.timing.protocol import MeasureSettings
from cpbench.timing.runtimes import DeviceUnavailable
from cpbench.timing.worker import Worker


def _settings(design: CalibrationDesign) -> MeasureSettings:
    return MeasureSettings(warmup_runs=design.warmup_runs, warmup_time_s=0.0, min_time_s=0.0, min_runs=design.runs,
                           max_runs=design.runs, max_time_s=60.0)


def _calibration_worker(connection, items: list[tuple[str, bytes]], profile: Profile, settings: MeasureSettings) -> None:
    """A fresh process: time each graph alone, send (id, min, median, load) back one at a time."""
    from cpbench.timing.protocol import measure
    from cpbench.timing.runtimes import get_runtime, make_inputs

    runtime = get_runtime(profile.runtime)
    with tempfile.TemporaryDirectory(prefix="cpbench-calibrate-") as folder:
        try:
            for index, (item_id, graph) in enumerate(items):
                path = Path(folder) / f"{index}.onnx"
                path.write_bytes(graph)
                inputs = make_inputs(path, 1, 0)
                loaded = runtime.load(path, profile, inputs)
                raw = measure(loaded.run, settings, own_latency=getattr(loaded, "own_latency", None), timer=profile.clock)
                times = np.asarray(raw.times_s)
                connection.send(("ok", item_id, float(times.min()), float(np.median(times)), float(loaded.load_s)))
                del loaded
                path.unlink()
        except DeviceUnavailable as exc:
            connection.send(("device", str(exc)))
        except Exception as exc:
            connection.send(("error", first_line(exc)[:500]))
        finally:
            connection.close()


def _run_chunk(items: list[tuple[str, bytes]], profile: Profile, settings: MeasureSettings, on_item) -> None:
    with Worker(_calibration_worker, items, profile, settings) as worker:
        for _ in items:
            message = worker.receive(300)
            if message is None:
                code = worker.stop()
                if code is None:
                    raise UsageError(f"calibration worker gave no result within 300 s under '{profile.name}'; "
                                     "the machine is overloaded or the runtime hangs")
                raise UsageError(f"calibration worker crashed under '{profile.name}' (exit code {code})")
            if message[0] == "device":
                raise DeviceUnavailable(message[1])
            if message[0] == "error":
                raise UsageError(f"calibration failed under '{profile.name}': {message[1]}")
            on_item(*message[1:])


def _time_network(config: Config, in_channels: int, profile: Profile, folder: Path, on_item) -> None:
    """One round of one calibration network under the profile's own measurement settings, in a fresh
    worker: what `cpbench time` does with one round (the test configs of benchmarks are timed so)."""
    from cpbench.timing.runner import TimingTarget, time_in_worker

    path = folder / f"{config.id}.onnx"
    if not path.exists():
        path.write_bytes(network_graph(config, in_channels).SerializeToString())
    single = profile.with_overrides(measure=replace(profile.measure, rounds=1, max_rounds=0))
    timing = time_in_worker(TimingTarget(config.id, path), single)
    if timing.status != "ok":
        raise UsageError(f"calibration network {config.as_csv()} failed under '{profile.name}': {timing.error}")
    summary = timing.rounds[0]
    on_item(f"net:{config.as_csv()}", summary["fixed_min_s"], summary["fixed_median_s"], float(timing.load_s or 0.0))


JOURNAL_FORMAT = 1


def journal_path(models_dir: Path, device: str, hardware_id: str) -> Path:
    return models_dir / "fits" / f"{device}-{hardware_id}.calibration.partial.jsonl"


class Journal:
    """What an unfinished calibration measured, one JSON line per (round, item), flushed as it comes:
    a stop at any moment (Ctrl-C, kill, a crash) loses at most the chunk in flight, and the same
    command resumes. The first line says what was being calibrated; other settings never resume it."""

    def __init__(self, path: Path, header: dict) -> None:

        self.path, self.header = path, header
        self.done: dict[tuple[int, str], tuple[float, float, float]] = {}
        self.elapsed_s = 0.0
        if path.exists():
            from cpbench.workspace.formats import open_for_append, read_jsonl

            fix = "delete the file to start over"
            rows = iter(read_jsonl(path, fix))
            first = next(rows, (0, None))[1]
            if first != header:
                raise UsageError(f"{path} holds an unfinished calibration with other settings (or is damaged); rerun "
                                 f"with the same options to resume it, or {fix}")
            for _, r in rows:
                try:
                    self.done[(int(r["round"]), str(r["id"]))] = (float(r["min"]), float(r["median"]), float(r["load_s"]))
                    self.elapsed_s = max(self.elapsed_s, float(r["t"]))
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by a kill: that item is measured again
            self._file = open_for_append(path)
        else:
            self._file = None  # created with the first measurement: a run that measures nothing leaves no journal

    def add(self, round_index: int, item_id: str, minimum: float, median: float, load_s: float, elapsed_s: float) -> None:
        import json

        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "w", encoding="utf-8")
            self._file.write(json.dumps(self.header, sort_keys=True) + "\n")
        self._file.write(json.dumps({"round": round_index, "id": item_id, "min": minimum, "median": median,
                                     "load_s": load_s, "t": round(elapsed_s, 3)}) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def journal_header(profile: Profile, space: Space, design: CalibrationDesign, in_channels: int, hardware_id: str) -> dict:
    import json

    return json.loads(json.dumps({"format": JOURNAL_FORMAT, "device": profile.name, "profile": profile.as_dict(),
                                  "space": space.name, "in_channels": in_channels, "design": asdict(design),
                                  "hardware_id": hardware_id}, sort_keys=True, default=str))


def calibrate(profile: Profile, space: Space, design: CalibrationDesign, in_channels: int = 1, observer=None,
              journal_file: Path | None = None) -> Calibration:
    """Measure every planned kernel and network `design.rounds` times, each round in a new order and
    new processes. `observer(done, total)` is told as items finish. With `journal_file`, every
    measurement is journaled as it arrives and those already there are not measured again (resume);
    the caller removes the journal once the calibration is saved. Raises DeviceUnavailable before any number
    exists when the profile's device is not here."""
    from cpbench.timing.environment import fingerprint

    if profile.batch != 1:
        raise UsageError(f"kernel calibration is for latency at batch 1; profile '{profile.name}' has batch {profile.batch}: "
                         f"calibrate a profile with batch = 1 (a copy of this one in the workspace's profiles/ with batch = 1)")
    machine = fingerprint()
    kernels = plan_kernels(space, design, in_channels)
    networks = plan_networks(space, design)
    graphs: dict[str, bytes] = {k.id: kernel_graph(k).SerializeToString() for k in kernels}
    items = list(graphs) + [f"net:{c.as_csv()}" for c in networks]
    journal = None
    if journal_file is not None:
        journal = Journal(journal_file, journal_header(profile, space, design, in_channels, machine["hardware_id"]))
    done_before = journal.done if journal else {}
    settings = _settings(design)
    started = time.perf_counter()
    prior_s = journal.elapsed_s if journal else 0.0
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    total = len(items) * design.rounds
    planned = set(items)
    results: dict[tuple[int, str], tuple[float, float, float]] = {
        k: v for k, v in done_before.items() if k[1] in planned and k[0] < design.rounds}
    done = len(results)
    current = 0

    def on_item(item_id: str, minimum: float, median: float, load_s: float) -> None:
        nonlocal done
        results[(current, item_id)] = (minimum, median, load_s)
        if journal:
            journal.add(current, item_id, minimum, median, load_s, prior_s + time.perf_counter() - started)
        done += 1
        if observer:
            observer(done, total)

    if observer:
        observer(done, total)
    order = list(graphs)
    try:
        with tempfile.TemporaryDirectory(prefix="cpbench-calibrate-networks-") as folder:
            for round_index in range(design.rounds):
                current = round_index
                random.Random(design.seed * 1000 + round_index).shuffle(order)
                todo = [i for i in order if (round_index, i) not in results]
                for start in range(0, len(todo), design.chunk):
                    _run_chunk([(i, graphs[i]) for i in todo[start:start + design.chunk]], profile, settings, on_item)
                for config in networks:  # whole networks exactly as `cpbench time` measures a model, so the
                    if (round_index, f"net:{config.as_csv()}") not in results:  # composition learns that protocol
                        _time_network(config, in_channels, profile, Path(folder), on_item)
    finally:
        if journal:
            journal.close()

    def entry(item_id: str) -> dict:
        measured = [results[(r, item_id)] for r in range(design.rounds)]
        return {"mins": [m[0] for m in measured], "medians": [m[1] for m in measured], "load_s": [m[2] for m in measured]}

    by_id = {k.id: k for k in kernels}
    return Calibration(
        device=profile.name, space=space.name, in_channels=in_channels, design=asdict(design), profile=profile.as_dict(),
        fingerprint=machine, started_at=started_at, duration_s=prior_s + time.perf_counter() - started,
        kernels={i: {**asdict(by_id[i]), **entry(i)} for i in graphs},
        networks={c.as_csv(): entry(f"net:{c.as_csv()}") for c in networks}, baseline=space.baseline.as_csv(),
    )
