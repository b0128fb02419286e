"""Calibrating a device for any network: the empty graph (the per-inference cost), the fusion
candidates, sampled kernels of every type and synthetic networks, each timed alone in fresh worker
processes with the co-measured reference, in rounds whose order is drawn anew, every measurement
appended to a journal at once so an interrupted calibration resumes where it stopped."""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from cpbench.anynet.fusion import test_items
from cpbench.anynet.sampling import SAMPLES, sample_items
from cpbench.anynet.synthetic import random_network
from cpbench.family.config import SPACES
from cpbench.family.kernels import Kernel, kernel_graph
from cpbench.timing.calibration import run_chunk
from cpbench.timing.profiles import Profile
from cpbench.timing.reference import ReferenceLevel, reference_kernel
from cpbench.workspace.formats import append_jsonl, read_jsonl

FORMAT = 1
EMPTY_ID = "empty"


@dataclass(frozen=True)
class AnyDesign:
    """What is timed and how: `scale` multiplies every type's sample count (SAMPLES), `networks`
    synthetic networks; per item the minimum of `runs` runs after `warmup_runs`, per round."""

    seed: int
    rounds: int = 2
    runs: int = 20
    warmup_runs: int = 5
    scale: float = 1.0
    networks: int = 60
    chunk: int = 40  # items per worker process
    reference_every: int = 10
    remeasure_share: float = 0.0
    extra_share: float = 0.5  # of a poorly predicted type's samples, drawn again after the first rounds

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def statistic(self) -> str:
        return f"minimum of {self.runs} runs after {self.warmup_runs} warm-up runs, median over {self.rounds} rounds"


@dataclass
class AnyCalibration:
    """What a calibration measured (seconds, one minimum per round), and where."""

    profile: str
    hardware_id: str
    cpu: str
    design: dict
    created: str
    duration_s: float
    times: dict[str, list[float]]
    kernels: dict[str, dict]  # id -> {"kind", "features"}
    networks: dict[str, int]  # id -> seed of random_network
    reference: dict = field(default_factory=dict)
    format: int = FORMAT

    def statistic(self, item: str) -> float:
        """The median over rounds: what a network's prediction is compared with."""
        return float(np.median(self.times[item]))

    def fastest(self, item: str) -> float:
        """The minimum over rounds: for the per-inference cost and the fusion tests, small costs
        whose slower rounds are another item's interference, not their own."""
        return float(np.min(self.times[item]))


def plan_items(design: AnyDesign) -> tuple[dict[str, bytes], dict[str, dict], dict[str, int]]:
    """Every item of the design: ONNX bytes by id, the kernels' kinds and features, the networks' seeds."""
    graphs: dict[str, bytes] = {EMPTY_ID: kernel_graph(Kernel("empty")).SerializeToString()}
    graphs.update(test_items())
    kernels: dict[str, dict] = {}
    for kind, count in SAMPLES.items():
        for item_id, sampled_kind, features, graph in sample_items(kind, max(4, round(count * design.scale)), design.seed):
            graphs[item_id] = graph
            kernels[item_id] = {"kind": sampled_kind, "features": features}
    networks: dict[str, int] = {}
    for index in range(design.networks):
        seed = design.seed * 1000 + index
        item_id, graph = random_network(seed)
        graphs[item_id] = graph
        networks[item_id] = seed
    return graphs, kernels, networks


def calibrate_any(profile: Profile, design: AnyDesign, hardware: dict, journal: Path, observer=None) -> AnyCalibration:
    """Time the design under `profile`; `observer(done, total)` follows the progress."""
    started = time.monotonic()
    graphs, kernels, networks = plan_items(design)
    header = {"format": FORMAT, "profile": profile.name, "hardware_id": hardware["hardware_id"],
              "design": design.as_dict()}
    done: dict[tuple[int, str], float] = {}
    references: list[float] = []
    if journal.exists():
        lines = [row for _, row in read_jsonl(journal, "delete it to calibrate from scratch")]
        if lines and lines[0].get("design") == header["design"] and lines[0].get("profile") == profile.name:
            for line in lines[1:]:
                if "ref" in line:
                    references.append(line["ref"])
                elif "id" in line and (line["id"] in graphs or line["id"].startswith("k+:")):
                    done[(line["round"], line["id"])] = line["min"]
        else:
            journal.unlink()
    if not journal.exists():
        journal.parent.mkdir(parents=True, exist_ok=True)
        append_jsonl(journal, header)

    def on_item(round_index: int, item_id: str, minimum: float, bracket) -> None:
        done[(round_index, item_id)] = minimum
        append_jsonl(journal, {"round": round_index, "id": item_id, "min": minimum, "bracket": list(bracket)})

    def on_reference(seconds: float) -> None:
        references.append(seconds)
        append_jsonl(journal, {"ref": seconds})

    time_items(profile, graphs, design, set(done), on_item, on_reference, observer)
    extra = more_samples(design, kernels, done)
    if extra:
        kernels.update({item_id: {"kind": kind, "features": f} for item_id, (kind, f, _) in extra.items()})
        time_items(profile, {item_id: graph for item_id, (_, _, graph) in extra.items()}, design, set(done), on_item,
                   on_reference, observer)
    times: dict[str, list[float]] = {}
    for (_, item), value in sorted(done.items()):
        times.setdefault(item, []).append(value)
    level = ReferenceLevel.of(references) if references else None
    return AnyCalibration(
        profile=profile.name, hardware_id=hardware["hardware_id"], cpu=hardware.get("hardware", {}).get("cpu", ""),
        design=design.as_dict(), created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        duration_s=time.monotonic() - started, times=times, kernels=kernels, networks=networks,
        reference=level.as_dict() if level else {},
    )


def more_samples(design: AnyDesign, kernels: dict[str, dict], done: dict) -> dict[str, tuple[str, dict, bytes]]:
    """The adaptive second draw: the kernel types whose regressors miss their own held-out kernels
    by more than the median type get half their count again (a draw of its own from the seed)."""
    from cpbench.anynet.model import fit_kernels

    if design.extra_share <= 0:
        return {}
    times: dict[str, list[float]] = {}
    for (_, item), value in done.items():
        times.setdefault(item, []).append(value)
    statistic = {item: float(np.median(v)) for item, v in times.items()}
    if EMPTY_ID not in statistic:
        return {}
    fits = fit_kernels(kernels, statistic, float(np.min(times[EMPTY_ID])))
    if not fits:
        return {}
    middle = float(np.median([f.kfold_mape for f in fits.values()]))
    extra: dict[str, tuple[str, dict, bytes]] = {}
    for kind, fit in fits.items():
        if fit.kfold_mape > middle:
            for _, sampled_kind, f, graph in sample_items(kind, max(4, round(fit.samples * design.extra_share)),
                                                          design.seed + 1, prefix="k+"):
                extra[f"k+:{kind}:{design.seed}:{len(extra)}"] = (sampled_kind, f, graph)
    return extra


def time_items(profile: Profile, graphs: dict[str, bytes | str], design: AnyDesign, done: set[tuple[int, str]],
               on_item, on_reference, observer=None) -> None:
    """Time every item (ONNX bytes or a file's path) in design.rounds rounds, each round in an order
    drawn anew and in fresh worker processes of design.chunk items, skipping (round, id) in `done`;
    `on_item(round, id, seconds, bracket)` gets each round's minimum as it arrives."""
    reference = kernel_graph(reference_kernel(SPACES["fashionmnist"])).SerializeToString()
    total = design.rounds * len(graphs)
    finished = sum(1 for _, item in done if item in graphs)
    for round_index in range(design.rounds):
        order = [item for item in graphs if (round_index, item) not in done]
        random.Random(f"{design.seed}:{round_index}").shuffle(order)

        def measured(item_id, minimum, median, load_s, bracket, _round=round_index):
            nonlocal finished
            finished += 1
            on_item(_round, item_id, minimum, bracket)
            if observer:
                observer(finished, total)

        for start in range(0, len(order), design.chunk):
            chunk = [(item, graphs[item]) for item in order[start:start + design.chunk]]
            run_chunk(chunk, profile, design, reference, measured, on_reference)


def calibration_file(models_dir: Path, profile: str, hardware_id: str) -> Path:
    return models_dir / "fits" / f"{profile}-{hardware_id}.anynet.calibration.json"


def save_any_calibration(path: Path, calibration: AnyCalibration) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(asdict(calibration)), encoding="utf-8")
    temporary.replace(path)
    return path


def load_any_calibration(path: Path) -> AnyCalibration:
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format") != FORMAT:
        from cpbench.errors import UsageError

        raise UsageError(f"{path} is an any-network calibration of format {data.get('format')}, not {FORMAT}; "
                         "calibrate again with 'cpbench calibrate --kernels any'")
    return AnyCalibration(**data)
