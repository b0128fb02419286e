"""Kernel-level calibration of a device (nn-Meter's approach): time the family's distinct kernels
alone, and a few whole networks, under a profile, in fresh worker processes, several interleaved
rounds, with a fixed number of runs per round. cpbench.fitting.kernel_model turns the result
into a latency predictor for this machine; nothing here knows any CPU's kernels.

Which kernels: for each conv kind (first block, inner block, and the pairs of consecutive blocks a
network runs: first then inner, inner then inner; or, with `whole`, the whole network of each
depth) and kernel size k, the (f, s) matrix
of the space is sampled, not swept: every f at a few s, every s at a few f, and a random share of
the other cells (the predictor completes the matrix from its low-rank structure), plus the
classifier at log-spaced input sizes and the empty call.
"""

from __future__ import annotations

import math
import multiprocessing
import random
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from cpbench.errors import UsageError, first_line
from cpbench.family.config import Config, Space, random_from_space
from cpbench.family.kernels import (EMPTY, Kernel, classifier, first, first_pair, inner, inner_pair, kernel_graph,
                                    network_depth, network_graph, network_kind, whole_network)
from cpbench.timing.profiles import Profile
from cpbench.timing.protocol import MeasureSettings
from cpbench.timing.runtimes import DeviceUnavailable

CALIBRATION_FORMAT = 1
NETWORK_SEED = 7001  # calibration networks; benchmarks draw their test configs with other seeds and exclude these
NETWORK_POOL = 50  # random configs per calibration network, to pick them from across the log-MACs range


@dataclass(frozen=True)
class CalibrationDesign:
    """How much to measure. Defaults sized for <= 10 minutes on a 2-core VM under ONNX Runtime."""

    full_s: int = 4  # every f at this many s values (spread over the range)
    full_f: int = 4  # every s at this many f values (random, plus the largest)
    share: float = 1.0  # and this share of the remaining cells, at random (1: every cell; the rest is completed)
    pairs: bool = False  # time consecutive blocks as pairs too (a composition of pairs is then fitted beside that of blocks)
    whole: bool = False  # time whole networks over each (k, l)'s (f, s) matrix instead of blocks (see conv_kinds)
    classifier_points: int = 24
    networks: int = 40  # timed as `cpbench time` times a model (the profile's measure settings), one per round
    rounds: int = 3
    runs: int = 50  # timed runs per kernel per round (the fixed count of the round statistic)
    warmup_runs: int = 10
    chunk: int = 400  # kernels per worker process
    seed: int = 0

    def __post_init__(self) -> None:
        if not (1 <= self.rounds <= 20 and 5 <= self.runs <= 10_000 and 0 <= self.share <= 1 and self.networks >= 0
                and self.full_s >= 1 and self.full_f >= 1 and self.chunk >= 1):
            raise UsageError(f"invalid calibration design {asdict(self)}; see 'cpbench calibrate --help'")
        if self.pairs and self.whole:
            raise UsageError("--pairs and --whole are two ways to time the family (pairs of blocks, or whole networks "
                             "instead of blocks); pick one")


def default_design(runtime: str, *, rounds: int | None = None, runs: int | None = None, networks: int | None = None,
                   share: float | None = None, pairs: bool = False, whole: bool | None = None) -> CalibrationDesign:
    """`cpbench calibrate`'s design for a runtime, each None taking the runtime's default. Sized for
    10 minutes on a 2-core VM: under ONNX Runtime 12,824 blocks x 3 rounds (15,344 with pairs);
    under OpenVINO, which compiles every kernel (~25 ms), 4,839 whole networks x 2 rounds (437-452 s;
    4,184 blocks, 5,794 with pairs), whose kernels need many runs: after a compile OpenVINO's first
    hundred or so runs are slow (here the minimum of 50 runs after 10 warm-up ones sat 25 % above
    that of 500 after 110, and moved by up to 30 % between compiles). Whole networks are the
    OpenVINO default (README, "Whole networks"); under ONNX Runtime they scored worse than blocks."""
    compiles = runtime != "onnxruntime"
    whole = (compiles and not pairs) if whole is None else whole
    sampled = pairs or whole
    return CalibrationDesign(
        rounds=rounds if rounds is not None else (2 if compiles else 3),
        runs=runs if runs is not None else (200 if compiles else 50),
        networks=networks if networks is not None else (30 if compiles else 40),
        share=share if share is not None else ((0.05 if sampled else 0.1) if compiles else (0.5 if sampled else 1.0)),
        pairs=pairs, whole=whole, full_s=3 if compiles and sampled else 4, full_f=3 if compiles and sampled else 4,
        warmup_runs=100 if compiles else 10)


def _spread(values: list[int], n: int) -> list[int]:
    """n values spread evenly over a sorted list, ends included."""
    if n >= len(values):
        return list(values)
    return sorted({values[round(i * (len(values) - 1) / (n - 1))] for i in range(n)}) if n > 1 else [values[-1]]


def conv_axes(space: Space, kind: str) -> tuple[list[int], list[int]]:
    """The f and s values a conv kind takes in the integer space up to the baseline: a first block
    sees s in [2, s0] (s >= 2**l), an inner block s // 2 or s // 4 ... >= 2; a pair starts where its
    first block does and needs s >= 4 (its second block runs at s // 2 >= 2); a whole network of
    depth l takes s in [2**l, s0]."""
    b = space.baseline
    fs = list(range(1, b.f + 1))
    if network_depth(kind):
        return fs, list(range(2 ** network_depth(kind), b.s + 1))
    low = 4 if kind.endswith("-pair") else 2
    high = b.s if kind.startswith("first") else b.s // 2
    return fs, list(range(low, high + 1))


def conv_kinds(space: Space, design: "CalibrationDesign") -> tuple[str, ...]:
    """The conv kinds a space's networks run: inner blocks from l = 2, pairs of them from l = 3; with
    `whole`, instead, the whole network at each depth up to the baseline's. Why whole networks: under
    OpenVINO on AMX a block timed alone converts its input and output to bf16 and back, which a
    network does once, and the composition of pairs needs four tables that 10 minutes of compiles
    (~25 ms each) sample too sparsely; a whole network is one compile (~37 ms a network-round with
    its 300 runs), and its border conversions are the network's own: on this project's VM the map
    from the completed table to `cpbench time`'s round-min came out as 1.01-1.02 x table - 0.2 us (stop 26)."""
    depth = space.baseline.l
    if design.whole:
        return tuple(network_kind(d) for d in range(1, depth + 1))
    kinds = ["first"] + (["inner"] if depth > 1 else [])
    if design.pairs:
        kinds += (["first-pair"] if depth > 1 else []) + (["inner-pair"] if depth > 2 else [])
    return tuple(kinds)


def classifier_sizes(space: Space, points: int) -> list[int]:
    b = space.baseline
    largest = b.f * (b.s // 2) ** 2
    return sorted({max(1, round(math.exp(v))) for v in np.linspace(0.0, math.log(largest), points)})


def plan_kernels(space: Space, design: CalibrationDesign, in_channels: int = 1) -> list[Kernel]:
    rng = random.Random(design.seed)
    kernels: list[Kernel] = [EMPTY]
    makers = {"first": lambda f, s, k: first(f, s, k, in_channels), "inner": inner,
              "first-pair": lambda f, s, k: first_pair(f, s, k, in_channels), "inner-pair": inner_pair}
    for depth in range(1, space.baseline.l + 1):
        makers[network_kind(depth)] = lambda f, s, k, depth=depth: whole_network(f, s, k, depth, in_channels)
    if space.baseline.l >= 1:
        for kind in conv_kinds(space, design):
            fs, ss = conv_axes(space, kind)
            for k in range(1, space.baseline.k + 1):
                cells = {(f, s) for f in fs for s in _spread(ss, design.full_s)}
                some_f = set(rng.sample(fs[:-1], min(design.full_f - 1, len(fs) - 1))) | {fs[-1]}
                cells |= {(f, s) for f in some_f for s in ss}
                rest = sorted({(f, s) for f in fs for s in ss} - cells)
                cells |= set(rng.sample(rest, round(design.share * len(rest))))
                kernels += [makers[kind](f, s, k) for f, s in sorted(cells)]
    kernels += [classifier(n) for n in classifier_sizes(space, design.classifier_points)]
    return kernels


def plan_networks(space: Space, design: CalibrationDesign) -> list[Config]:
    """`design.networks` configs spread evenly over the space's log-MACs range, one per equal-width
    bin, drawn from a random pool. Why: the composition is used from the smallest network up to the
    baseline (recommend divides the baseline's time by the pick's), so it must be learned there too.
    Plain random configs (f log-uniform) put 34 of 40 networks under 20 µs and none above 60 µs on
    `cpu`; the composition learned on them over-predicted 32- and 64-filter networks by 12-27 %
    against the baseline's -2 to -10 % (stop 24)."""
    from cpbench.family.closed_form import Layers, total_macs

    n = design.networks
    pool = random_from_space(space, NETWORK_POOL * n, seed=NETWORK_SEED)
    if n == 0 or len(pool) <= n:
        return pool[:n]
    log_macs = np.log(total_macs(Layers.of(pool)))
    edges = np.linspace(log_macs.min(), log_macs.max(), n + 1)
    rng = random.Random(NETWORK_SEED)
    free = set(range(len(pool)))
    chosen: list[int] = []
    for low, high in zip(edges[:-1], edges[1:]):
        inside = [i for i in sorted(free) if low <= log_macs[i] <= high]
        centre = (low + high) / 2
        pick = rng.choice(inside) if inside else min(free, key=lambda i: (abs(log_macs[i] - centre), i))
        free.discard(pick)
        chosen.append(pick)
    return [pool[i] for i in chosen]


def round_min(entry: dict) -> float:
    """A saved kernel's or network's time: the median over rounds of its per-round minimum (round-min).
    Pure Python: called once per kernel (12,800 of them), where numpy's per-call cost dominated."""
    return float(statistics.median(entry["mins"]))


@dataclass
class Calibration:
    device: str
    space: str
    in_channels: int
    design: dict
    profile: dict
    fingerprint: dict
    started_at: str
    duration_s: float
    kernels: dict[str, dict]  # id -> kernel fields + rounds
    networks: dict[str, dict]  # config csv -> rounds
    statistic: str = "round-min"

    @property
    def hardware_id(self) -> str:
        return str(self.fingerprint.get("hardware_id", ""))

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: dict) -> "Calibration":
        fields = {k: payload[k] for k in cls.__dataclass_fields__ if k in payload}
        return cls(**fields)


def calibration_path(models_dir: Path, device: str, hardware_id: str) -> Path:
    return Path(models_dir) / "fits" / f"{device}-{hardware_id}.calibration.json.gz"


def _compact(values: list[float]) -> list[float]:
    return [float(f"{v:.5g}") for v in values]


def save_calibration(models_dir: Path, calibration: Calibration) -> Path:
    """gzip-compressed JSON (format 1): ~13,000 kernels x rounds stay a few hundred kB."""
    import gzip
    import json

    from cpbench.workspace.files import write_atomically
    from cpbench.workspace.formats import stamp

    payload = calibration.as_dict()
    for group in ("kernels", "networks"):
        for entry in payload[group].values():
            for key in ("mins", "medians", "load_s"):
                entry[key] = _compact(entry[key])
    path = calibration_path(models_dir, calibration.device, calibration.hardware_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(stamp(payload, CALIBRATION_FORMAT), separators=(",", ":"), default=str)
    write_atomically(path, gzip.compress(text.encode(), mtime=0))
    return path


def load_calibration(path: Path) -> Calibration:
    import gzip
    import json

    from cpbench.workspace.formats import check_format

    fix = "rerun 'cpbench calibrate'"
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path} ({exc.strerror or type(exc).__name__}); {fix}") from None
    try:
        payload = json.loads(gzip.decompress(raw).decode("utf-8"))
    except (OSError, ValueError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise UsageError(f"{path} is not a gzip-compressed cpbench calibration ({first_line(exc)}); {fix}") from None
    if not isinstance(payload, dict):
        raise UsageError(f"{path} does not hold a cpbench calibration; {fix}")
    check_format(payload, CALIBRATION_FORMAT, str(path), fix)
    try:
        return Calibration.from_dict(payload)
    except TypeError as exc:
        raise UsageError(f"{path} is not a complete calibration ({first_line(exc)}); {fix}") from None


def _settings(design: CalibrationDesign) -> MeasureSettings:
    return MeasureSettings(warmup_runs=design.warmup_runs, warmup_time_s=0.0, min_time_s=0.0, min_runs=design.runs,
                           max_runs=design.runs, max_time_s=60.0)


def _calibration_worker(connection, items: list[tuple[str, bytes]], profile: Profile, settings: MeasureSettings) -> None:
    """A fresh process: time each graph alone, send (id, min, median, load) back one at a time."""
    from cpbench.timing.protocol import measure
    from cpbench.timing.runner import _detach_from_signals
    from cpbench.timing.runtimes import get_runtime, make_inputs

    _detach_from_signals()
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
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_calibration_worker, args=(sender, items, profile, settings), daemon=True)
    process.start()
    sender.close()
    try:
        received = 0
        while received < len(items):
            if not receiver.poll(300):
                raise UsageError(f"calibration worker gave no result within 300 s under '{profile.name}'; "
                                 "the machine is overloaded or the runtime hangs")
            message = receiver.recv()
            if message[0] == "device":
                raise DeviceUnavailable(message[1])
            if message[0] == "error":
                raise UsageError(f"calibration failed under '{profile.name}': {message[1]}")
            on_item(*message[1:])
            received += 1
    except EOFError:
        raise UsageError(f"calibration worker crashed under '{profile.name}' (exit code {process.exitcode})") from None
    finally:
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join()


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
        import json

        self.path, self.header = path, header
        self.done: dict[tuple[int, str], tuple[float, float, float]] = {}
        self.elapsed_s = 0.0
        if path.exists():
            lines = path.read_text(encoding="utf-8").splitlines()
            try:
                first = json.loads(lines[0]) if lines else None
            except ValueError:
                first = None
            if first != header:
                raise UsageError(f"{path} holds an unfinished calibration with other settings (or is damaged); rerun "
                                 f"with the same options to resume it, or delete the file to start over")
            for line in lines[1:]:
                try:
                    r = json.loads(line)
                    self.done[(int(r["round"]), str(r["id"]))] = (float(r["min"]), float(r["median"]), float(r["load_s"]))
                    self.elapsed_s = max(self.elapsed_s, float(r["t"]))
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by a kill: that item is measured again
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(header, sort_keys=True) + "\n", encoding="utf-8")
        self._file = open(path, "a", encoding="utf-8")
        if path.read_bytes()[-1:] not in (b"\n", b""):  # a kill mid-line: start the next line on its own
            self._file.write("\n")

    def add(self, round_index: int, item_id: str, minimum: float, median: float, load_s: float, elapsed_s: float) -> None:
        import json

        self._file.write(json.dumps({"round": round_index, "id": item_id, "min": minimum, "median": median,
                                     "load_s": load_s, "t": round(elapsed_s, 3)}) + "\n")
        self._file.flush()

    def close(self) -> None:
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
                         f"use --batch 1")
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
        networks={c.as_csv(): entry(f"net:{c.as_csv()}") for c in networks},
    )
