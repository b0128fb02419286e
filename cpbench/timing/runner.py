"""Timing runs: each model measured under a device profile in its own worker process, stored as it finishes.

A worker that crashes, hangs or fails to load its model is recorded as failed and the sweep goes
on; a device that is not really there (CUDA asked, CPU given) stops the run before any number is
kept.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

import numpy as np

from cpbench.timing.environment import fingerprint
from cpbench.errors import UsageError, first_line
from cpbench.timing.profiles import Profile
from cpbench.timing.runtimes import DeviceUnavailable
from cpbench.timing.protocol import TimingStats, round_summary, rounds_agree, summarize
from cpbench.timing.worker import Worker

LOAD_ALLOWANCE_S = 300.0  # compile/session creation and the first run, on top of the measuring caps


@dataclass
class TimingTarget:
    """A model to time: a stored model (name from the store) or any .onnx file."""

    name: str
    path: Path
    sha256: str | None = None
    macs: int | None = None


@dataclass
class ModelTiming:
    model: str
    status: str  # 'ok' | 'failed'
    batch: int
    macs: int | None = None
    error: str | None = None
    load_s: float | None = None
    first_s: float | None = None
    warmup_runs: int | None = None
    stats: TimingStats | None = None
    times_s: list[float] = field(default_factory=list)
    runtime: dict = field(default_factory=dict)
    file: str | None = None
    sha256: str | None = None
    rounds: list[dict] = field(default_factory=list)  # per round: runs, median, min (several with measure.rounds)
    final: bool = True  # False while later rounds are still to come

    def merged_with(self, later: "ModelTiming") -> "ModelTiming":
        """This model's runs so far and a later round's, as one measurement (a failure in any round fails it)."""
        if self.status != "ok":
            return self
        if later.status != "ok":
            later.rounds = self.rounds
            return later
        combined = ModelTiming(
            self.model, "ok", self.batch, macs=self.macs, load_s=self.load_s, first_s=self.first_s,
            warmup_runs=self.warmup_runs, times_s=self.times_s + later.times_s, runtime=self.runtime, file=self.file,
            sha256=self.sha256, rounds=self.rounds + later.rounds,
        )
        combined.stats = summarize(combined.times_s)
        return combined

    @property
    def throughput_ips(self) -> float | None:
        return None if self.stats is None else self.batch / self.stats.median_s

    @property
    def gmacs_per_s(self) -> float | None:
        if self.stats is None or not self.macs:
            return None
        return self.macs * self.batch / self.stats.median_s / 1e9

    def as_dict(self, times: bool = False) -> dict:
        out = {
            "model": self.model, "status": self.status, "error": self.error, "batch": self.batch, "macs": self.macs,
            "load_s": self.load_s, "first_s": self.first_s, "warmup_runs": self.warmup_runs,
            "stats": None if self.stats is None else self.stats.as_dict(),
            "throughput_ips": self.throughput_ips, "gmacs_per_s": self.gmacs_per_s, "runtime": self.runtime,
            "file": self.file, "sha256": self.sha256, "rounds": self.rounds,
        }
        if times:
            out["times_s"] = self.times_s
        return out


def _beside(times: list[float], what: str) -> dict:
    """The summary of the clock the profile does not time, kept beside the measurement."""
    values = np.asarray(times)
    return {"n": len(values), "median_s": float(np.median(values)), "min_s": float(values.min()), "what": what}


def _reference_timer(runtime, profile: Profile):
    """A function timing the co-measured reference kernel (cpbench.timing.reference) in this process:
    round-min of 50 runs; None from it where the reference cannot run at the profile's batch."""
    from cpbench.family.config import FASHION_MNIST
    from cpbench.family.kernels import kernel_graph
    from cpbench.timing.protocol import MeasureSettings
    from cpbench.timing.reference import reference_kernel, reference_timer

    if profile.batch != 1:
        return lambda: None
    return reference_timer(runtime, profile, kernel_graph(reference_kernel(FASHION_MNIST)).SerializeToString(),
                           MeasureSettings(warmup_runs=10, warmup_time_s=0.0, min_time_s=0.0, min_runs=50, max_runs=50))


def _worker(connection, path: str, profile: Profile, seed: int) -> None:
    """Runs in a fresh process: load, measure, send back raw facts (no statistics here)."""
    from cpbench.timing.runtimes import get_runtime, make_inputs
    from cpbench.timing.protocol import measure

    try:
        runtime = get_runtime(profile.runtime)
        inputs = make_inputs(Path(path), profile.batch, seed)
        loaded = runtime.load(Path(path), profile, inputs)
        reference = _reference_timer(runtime, profile)
        before = reference()
        raw = measure(loaded.run, profile.measure, own_latency=getattr(loaded, "own_latency", None), timer=profile.clock)
        after = reference()
        described = loaded.describe()
        described["clock"] = raw.clock
        if raw.own_times_s:
            described["own_latency"] = _beside(raw.own_times_s, "the runtime's own request latency; the fits use the wall time of the call")
        if raw.wall_times_s:
            described["wall_time"] = _beside(raw.wall_times_s, "the wall time of the Python call; the fits use the runtime's own latency")
        connection.send({
            "ok": True, "load_s": loaded.load_s, "first_s": raw.first_s, "warmup_runs": raw.warmup_runs,
            "times": raw.times_s, "runtime": described, "reference": [before, after],
        })
    except DeviceUnavailable as exc:
        connection.send({"ok": False, "device": str(exc)})
    except Exception as exc:  # the model failed; the parent records it and goes on
        connection.send({"ok": False, "error": first_line(exc)[:500]})
    finally:
        connection.close()


def time_in_worker(target: TimingTarget, profile: Profile, seed: int = 0) -> ModelTiming:
    """Measure one model in a spawned process; a crash or a hang is a failed model, not a failed run."""
    timeout = profile.measure.max_time_s * 2 + LOAD_ALLOWANCE_S
    with Worker(_worker, str(target.path), profile, seed) as worker:
        message = worker.receive(timeout)
        code = worker.stop()
    base = ModelTiming(target.name, "failed", profile.batch, macs=target.macs, file=str(target.path), sha256=target.sha256)
    if message is None:
        base.error = f"worker crashed (exit code {code})" if code not in (None, 0) else f"no result within {timeout:.0f} s"
        return base
    if "device" in message:
        raise DeviceUnavailable(message["device"])
    if not message["ok"]:
        base.error = message["error"]
        return base
    base.status = "ok"
    base.load_s, base.first_s, base.warmup_runs = message["load_s"], message["first_s"], message["warmup_runs"]
    base.times_s = message["times"]
    base.stats = summarize(message["times"])
    base.runtime = message["runtime"]
    base.rounds = [{**round_summary(message["times"], profile.measure.round_runs), "reference": message.get("reference")}]
    return base


def new_run_id(device: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{device}-{stamp}-{secrets.token_hex(2)}"


class TimingObserver(Protocol):
    def model_started(self, index: int, total: int, target: TimingTarget) -> None: ...
    def model_finished(self, timing: ModelTiming) -> None: ...


@dataclass
class TimingRun:
    id: str
    device: str
    profile: Profile
    fingerprint: dict
    started_at: str
    timings: list[ModelTiming] = field(default_factory=list)
    status: str = "running"  # running | done | interrupted

    def as_dict(self, times: bool = False) -> dict:
        return {
            "run_id": self.id, "device": self.device, "status": self.status, "started_at": self.started_at,
            "profile": self.profile.as_dict(), "fingerprint": self.fingerprint,
            "models": [t.as_dict(times) for t in self.timings], "reference": self.reference().as_dict(),
        }

    def reference(self):
        """How steady the machine was: the level and spread of every reference timing around the models."""
        from cpbench.timing.reference import ReferenceLevel

        return ReferenceLevel.of([v for t in self.timings for r in t.rounds for v in (r.get("reference") or []) if v])


def run_timing(
    store, device: str, profile: Profile, targets: list[TimingTarget], observer: TimingObserver | None = None,
    seed: int = 0, run: TimingRun | None = None,
) -> TimingRun:
    """Time every target; each finished model is committed at once. Raises DeviceUnavailable (nothing
    kept) when the device is not really there; KeyboardInterrupt keeps what finished."""
    if not targets:
        raise UsageError("no models to time; run 'cpbench export --preset timing --untrained' or pass --model FILE.onnx")
    run = run or TimingRun(new_run_id(device), device, profile, fingerprint(), datetime.now(timezone.utc).isoformat(timespec="seconds"))
    store.start_run(run)
    with tempfile.TemporaryDirectory(prefix="cpbench-time-") as folder:
        return _run_rounds(store, profile, targets, observer, seed, run, Path(folder))


def _checked_copy(target: TimingTarget, index: int, folder: Path) -> Path:
    """The bytes every round of `target` loads: read once, checked against the sha256 it was
    registered with, and kept aside, so a file replaced mid-run is never timed under the old name."""
    import hashlib

    import shutil

    copy = folder / str(index) / target.path.name
    if not copy.exists():
        data = target.path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if target.sha256 is not None and digest != target.sha256:
            raise ChangedModel(f"{target.path} changed after it was checked (sha256 differs); nothing of it was timed")
        target.sha256 = digest
        copy.parent.mkdir(parents=True)
        copy.write_bytes(data)
        for name in _external_files(copy):  # weights stored beside the graph travel with it
            source, placed = (target.path.parent / name).resolve(), (copy.parent / name).resolve()
            if source.is_file() and placed.is_relative_to(copy.parent):
                placed.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, placed)
    return copy


def _external_files(path: Path) -> set[str]:
    """The files an ONNX graph keeps its large tensors in (external data), by their relative names."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    names = set()
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            names.update(e.value for e in tensor.external_data if e.key == "location")
    return names


class ChangedModel(Exception):
    """A model file whose bytes are no longer those registered for it."""


def _run_rounds(store, profile: Profile, targets: list[TimingTarget], observer, seed: int, run: TimingRun,
                folder: Path) -> TimingRun:
    settings = profile.measure
    rounds, most = settings.rounds, max(settings.rounds, settings.max_rounds)
    latest: dict[int, ModelTiming] = {}
    try:
        for round_index in range(most):
            todo = [i for i in range(len(targets)) if i not in latest or latest[i].status == "ok"]
            if round_index >= rounds:  # past the fixed rounds: only models whose best rounds disagree
                todo = [i for i in todo if not rounds_agree(latest[i].rounds, settings.agree_pct)]
                if not todo:
                    break
            for position, index in enumerate(todo):
                target = targets[index]
                if observer:
                    observer.model_started(round_index * len(targets) + position, most * len(targets), target)
                try:
                    copy = _checked_copy(target, index, folder)
                except Exception as exc:  # a file changed or unreadable: that model failed, the run goes on
                    timing = ModelTiming(target.name, "failed", profile.batch, macs=target.macs, sha256=target.sha256,
                                         error=first_line(exc))
                else:
                    timing = time_in_worker(replace(target, path=copy), profile, seed)
                timing.file = str(target.path)
                if index in latest:
                    timing = latest[index].merged_with(timing)
                adaptive = most > rounds
                agree = rounds_agree(timing.rounds, settings.agree_pct)
                timing.final = (timing.status != "ok" or round_index == most - 1
                                or (round_index >= rounds - 1 and (not adaptive or agree)))
                if timing.final and timing.status == "ok" and adaptive and not agree:
                    timing.stats.warnings.append(
                        f"rounds never agreed within {settings.agree_pct:g} % in {len(timing.rounds)} rounds: its time moved between "
                        "processes (a noisy or throttled machine); treat it with care")
                latest[index] = timing
                run.timings = [latest[i] for i in sorted(latest)]
                store.put_timing(run.id, timing)
                if observer:
                    observer.model_finished(timing)
    except DeviceUnavailable:
        store.delete_run(run.id)  # no numbers from a device that is not there
        raise
    except KeyboardInterrupt:
        run.status = "interrupted"
        store.finish_run(run)
        raise
    run.status = "done"
    store.finish_run(run)
    return run


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 << 30


def targets_for(root: Path, store, pattern: str | None, files: list[Path], batch: int = 1) -> list[TimingTarget]:
    """What `cpbench time` will measure, checked before any run is created: a stored model's file
    must still be the bytes it was exported as (its sha256), and a file given with --model must be
    an ONNX model whose inputs can be made at this batch (static sizes, within half this machine's
    memory). The hash stored with each timing is the hash of the file checked here."""
    from cpbench.counting.count import count_model
    from cpbench.counting.graph import load_model
    from cpbench.timing.runtimes import input_bytes, input_specs
    from cpbench.workspace.files import sha256_of

    if files:
        targets = []
        for path in files:
            model = load_model(path)  # refuses a missing file, a folder, or bytes that are not ONNX
            needed = input_bytes(input_specs(model, path, batch))
            if needed > _memory_bytes() // 2:
                raise UsageError(f"the inputs of {path} need {needed / 2**30:.1f} GiB at batch {batch}, more than half this "
                                 "machine's memory; use a smaller --batch or input size")
            count = count_model(model)  # its inputs are static (checked above): a graph that cannot be counted is inconsistent
            macs = count.total_macs if count.complete else None  # a lower bound is never stored as the MACs
            targets.append(TimingTarget(str(path), path, sha256_of(path), macs))
        return targets
    records = store.models(pattern)
    if not records:
        where = f"matching '{pattern}' " if pattern else ""
        raise UsageError(f"no models {where}in {root}; run 'cpbench export --preset timing --untrained' or pass --model FILE.onnx")
    targets = []
    models = (Path(root) / "models").resolve()
    for r in records:
        path = Path(root) / r.file
        if not path.resolve().is_relative_to(models):
            raise UsageError(f"model {r.name} names the file {r.file}, outside the workspace's models/; nothing was timed "
                             "(re-export it here, or time that file with --model FILE.onnx)")
        if not path.is_file():
            raise UsageError(f"{r.file} of model {r.name} is missing; re-export it with 'cpbench export ... --force' or time other models with --models")
        if sha256_of(path) != r.sha256:
            raise UsageError(f"{r.file} has changed since model {r.name} was exported (sha256 differs); "
                             "re-export it with 'cpbench export ... --force' or restore the file; nothing was timed")
        targets.append(TimingTarget(r.name, path, r.sha256, r.macs))
    return targets
