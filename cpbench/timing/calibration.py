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
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from cpbench.errors import UsageError, first_line
from cpbench.family.config import Space
from cpbench.family.kernels import kernel_graph, network_graph
from cpbench.timing.calibration_design import CalibrationDesign, plan_kernel_tiers, plan_networks
from cpbench.timing.calibration_journal import Journal, Measured, journal_header, quieter
from cpbench.timing.calibration_record import Calibration, round_spread
from cpbench.timing.reference import ReferenceLevel, reference_kernel, reference_timer
from cpbench.timing.profiles import Profile
from cpbench.timing.protocol import MeasureSettings
from cpbench.timing.runtimes import DeviceUnavailable
from cpbench.timing.worker import Worker


NETWORK_PREFIX = "net:"  # a calibration network's item id: net:f,s,k,l


def _settings(design: CalibrationDesign) -> MeasureSettings:
    """A kernel's protocol: a fixed count of runs after a fixed warm-up (round-min over that count)."""
    return MeasureSettings(warmup_runs=design.warmup_runs, warmup_time_s=0.0, min_time_s=0.0, min_runs=design.runs,
                           max_runs=design.runs, max_time_s=60.0)


def _network_settings(profile: Profile, design: CalibrationDesign) -> MeasureSettings:
    """A calibration network's protocol: the profile's warm-up and the fixed count of runs its round
    statistic reads, so a network is timed as one round of `cpbench time` times it, in the same
    process and moment as the kernels around it."""
    m = profile.measure
    return MeasureSettings(warmup_runs=max(m.warmup_runs, design.warmup_runs), warmup_time_s=m.warmup_time_s,
                           min_time_s=0.0, min_runs=m.round_runs, max_runs=m.round_runs, max_time_s=60.0)


def _calibration_worker(connection, items: list[tuple[str, bytes | str]], profile: Profile, settings: MeasureSettings,
                        network_settings: MeasureSettings, reference: bytes, every: int) -> None:
    """A fresh process: time the reference, then each graph alone (ONNX bytes, or the path of a file)
    with the reference again after every `every` of them, sending ("ref", min) and ("ok", id, min,
    median, load) one at a time."""
    from cpbench.timing.protocol import measure
    from cpbench.timing.runtimes import get_runtime, make_inputs

    runtime = get_runtime(profile.runtime)
    with tempfile.TemporaryDirectory(prefix="cpbench-calibrate-") as folder:
        try:
            reference_time = reference_timer(runtime, profile, reference, settings)

            def time_reference() -> None:
                connection.send(("ref", reference_time()))

            time_reference()
            for index, (item_id, graph) in enumerate(items):
                path = Path(graph) if isinstance(graph, str) else Path(folder) / f"{index}.onnx"
                if not isinstance(graph, str):
                    path.write_bytes(graph)
                inputs = make_inputs(path, 1, 0)
                loaded = runtime.load(path, profile, inputs)
                chosen = network_settings if item_id.startswith(NETWORK_PREFIX) else settings
                raw = measure(loaded.run, chosen, own_latency=getattr(loaded, "own_latency", None), timer=profile.clock)
                times = np.asarray(raw.times_s)
                connection.send(("ok", item_id, float(times.min()), float(np.median(times)), float(loaded.load_s)))
                del loaded
                if not isinstance(graph, str):
                    path.unlink()
                if (index + 1) % every == 0 or index + 1 == len(items):
                    time_reference()
            connection.send(("end",))
        except DeviceUnavailable as exc:
            connection.send(("device", str(exc)))
        except Exception as exc:
            connection.send(("error", first_line(exc)[:500]))
        finally:
            connection.close()


def run_chunk(items: list[tuple[str, bytes]], profile: Profile, design: CalibrationDesign, reference: bytes,
               on_item, on_reference) -> None:
    """Time a chunk in one worker; `on_item(id, min, median, load_s, bracket)` once the reference
    timing after the item has arrived, bracket being (reference before, reference after)."""
    pending: list[tuple] = []
    before = 0.0
    with Worker(_calibration_worker, items, profile, _settings(design), _network_settings(profile, design),
                reference, design.reference_every) as worker:
        while True:
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
            if message[0] == "end":
                return
            if message[0] == "ref":
                on_reference(message[1])
                for item in pending:
                    on_item(*item, (before, message[1]))
                pending, before = [], message[1]
            else:
                pending.append(message[1:])


PILOT_NETWORKS = 3
BASE_SHARE = 0.75  # of the budget, for the design's rounds; the rest re-measures and adds rounds where they disagree
AGREE = 0.03  # an item's rounds disagree when their spread (max - min over median) is beyond this or the reference's tolerance


def _budget_plan(design: CalibrationDesign, n_core: int, n_extra: int, n_networks: int, cost_kernel_s: float,
                 cost_network_s: float) -> dict:
    """How many of the optional kernels fit: the design's rounds of every kernel and network (plus
    re-measurements) within BASE_SHARE of the budget, measured costs per kernel and network."""
    per_round = BASE_SHARE * design.budget_s / (design.rounds * (1 + design.remeasure_share / 2))
    room = per_round - n_core * cost_kernel_s - n_networks * cost_network_s
    keep = int(min(n_extra, max(0, room // cost_kernel_s))) if cost_kernel_s > 0 else n_extra
    projected = design.rounds * ((n_core + keep) * cost_kernel_s + n_networks * cost_network_s)
    return {"budget_s": design.budget_s, "extra_kept": keep, "extra_planned": n_extra, "core": n_core,
            "cost_kernel_s": round(cost_kernel_s, 6), "cost_network_s": round(cost_network_s, 6),
            "projected_base_s": round(projected, 1), "over_budget": bool(projected > design.budget_s)}


def calibrate(profile: Profile, space: Space, design: CalibrationDesign, in_channels: int = 1, observer=None,
              journal_file: Path | None = None) -> Calibration:
    """Measure every planned kernel and network `design.rounds` times, interleaved in a new random
    order each round and in new processes, each bracketed by the reference; re-measure what the
    reference says ran during interference; with a budget, plan the optional kernels to it and spend
    what is left on more rounds where rounds disagree. `observer(done, total)` is told as items
    finish. With `journal_file`, every measurement is journaled as it arrives and those already
    there are not measured again (resume); the caller removes the journal once the calibration is
    saved. Raises DeviceUnavailable before any number exists when the profile's device is not here."""
    from cpbench.timing.environment import fingerprint

    if profile.batch != 1:
        raise UsageError(f"kernel calibration is for latency at batch 1; profile '{profile.name}' has batch {profile.batch}: "
                         f"calibrate a profile with batch = 1 (a copy of this one in the workspace's profiles/ with batch = 1)")
    machine = fingerprint()
    core, extra = plan_kernel_tiers(space, design, in_channels)
    networks = plan_networks(space, design)
    ref_kernel = reference_kernel(space, in_channels)
    reference = kernel_graph(ref_kernel).SerializeToString()
    graphs: dict[str, bytes] = {k.id: kernel_graph(k).SerializeToString() for k in core + extra}
    graphs.update({f"{NETWORK_PREFIX}{c.as_csv()}": network_graph(c, in_channels).SerializeToString() for c in networks})
    net_ids = [f"{NETWORK_PREFIX}{c.as_csv()}" for c in networks]
    journal = None
    if journal_file is not None:
        journal = Journal(journal_file, journal_header(profile, space, design, in_channels, machine["hardware_id"]))
    results: dict[tuple[int, str], Measured] = dict(journal.done) if journal else {}
    references: list[float] = list(journal.references) if journal else []
    plan = journal.plan if journal else None
    started, prior_s = time.perf_counter(), (journal.elapsed_s if journal else 0.0)
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    elapsed = lambda: prior_s + time.perf_counter() - started  # noqa: E731
    progress = {"done": len(results), "total": (len(core) + len(extra) + len(net_ids)) * design.rounds}

    def on_item(round_index: int, attempt: int):
        def record(item_id: str, minimum: float, median: float, load_s: float, bracket: tuple[float, float]) -> None:
            m = Measured(minimum, median, load_s, bracket, attempt)
            key = (round_index, item_id)
            results[key] = m if key not in results else quieter(results[key], m)
            if journal:
                journal.add(round_index, item_id, m, elapsed())
            progress["done"] += 1
            if observer:
                observer(progress["done"], progress["total"])
        return record

    def on_reference(seconds: float) -> None:
        references.append(seconds)
        if journal:
            journal.add_reference(seconds, elapsed())

    def run(ids: list[str], round_index, attempt: int = 0, within_budget: bool = False) -> None:
        """Time `ids` in chunks of new processes; round_index is a number or a function of the id.
        `within_budget`: stop before a chunk the budget cannot pay for (the rest keep fewer rounds)."""
        for start in range(0, len(ids), design.chunk):
            chunk = ids[start:start + design.chunk]
            if within_budget and plan and elapsed() + len(chunk) * plan["cost_kernel_s"] > design.budget_s * 0.97:
                return
            by_round: dict[int, list[str]] = {}
            for i in chunk:
                by_round.setdefault(round_index(i) if callable(round_index) else round_index, []).append(i)
            recorders = {i: on_item(r, attempt) for r, group in by_round.items() for i in group}
            run_chunk([(i, graphs[i]) for i in chunk], profile, design, reference,
                       lambda i, *rest, recorders=recorders: recorders[i](i, *rest), on_reference)

    if observer:
        observer(progress["done"], progress["total"])
    try:
        if design.budget_s > 0 and plan is None:
            rng = random.Random(design.seed * 7919 + 1)
            # one worker's chunk of kernels first, to learn what one costs here, its process start included
            pilot = rng.sample([k.id for k in core], min(design.chunk, len(core)))
            pilot_nets = rng.sample(net_ids, min(PILOT_NETWORKS, len(net_ids)))
            pilot_started = time.perf_counter()
            run([i for i in pilot if (0, i) not in results], 0)
            cost_kernel = (time.perf_counter() - pilot_started) / max(1, len(pilot))
            run([i for i in pilot_nets if (0, i) not in results], 0)
            m = _network_settings(profile, design)
            cost_network = cost_kernel + float(np.mean([m.warmup_time_s + (m.warmup_runs + m.min_runs) * results[(0, i)].median
                                                        for i in pilot_nets])) if pilot_nets else 0.0
            plan = _budget_plan(design, len(core), len(extra), len(net_ids), cost_kernel, cost_network)
            if journal:
                journal.set_plan(plan)
        kept = core + extra[:plan["extra_kept"]] if plan else core + extra
        items = [k.id for k in kept] + net_ids
        progress["total"] = len(items) * design.rounds
        wanted = set(items)
        progress["done"] = sum(1 for (r, i) in results if r < design.rounds and i in wanted)
        for round_index in range(design.rounds):
            order = [i for i in items if (round_index, i) not in results]
            random.Random(design.seed * 1000 + round_index).shuffle(order)
            run(order, round_index, within_budget=round_index > 0)  # every item gets its first round
            level = ReferenceLevel.of(references)
            suspect = sorted((i for i in items if (round_index, i) in results and results[(round_index, i)].attempt == 0
                              and level.off(results[(round_index, i)].bracket)),
                             key=lambda i: -level.offset(results[(round_index, i)].bracket))
            suspect = suspect[:int(design.remeasure_share * len(items))]
            progress["total"] += len(suspect)
            run(suspect, round_index, attempt=1, within_budget=True)
        if design.budget_s > 0:
            _extra_rounds(design, items, results, references, elapsed, plan, run, progress)
    finally:
        if journal:
            journal.close()

    rounds_of = _rounds_by_item(results, items)

    def entry(item_id: str) -> dict:
        measured = [results[(r, item_id)] for r in rounds_of[item_id]]
        return {"mins": [m.minimum for m in measured], "medians": [m.median for m in measured],
                "load_s": [m.load_s for m in measured], "refs": [max(m.bracket) for m in measured]}

    level = ReferenceLevel.of(references)
    all_measured = [results[(r, i)] for i in items for r in rounds_of[i]]
    by_id = {k.id: k for k in kept}
    noisy = [i for i in items if _disagreement(results, i, rounds_of[i]) > max(AGREE, level.tolerance)]
    return Calibration(
        device=profile.name, space=space.name, in_channels=in_channels, design=asdict(design), profile=profile.as_dict(),
        fingerprint=machine, started_at=started_at, duration_s=elapsed(),
        kernels={k.id: {**asdict(by_id[k.id]), **entry(k.id)} for k in kept},
        networks={c.as_csv(): entry(f"{NETWORK_PREFIX}{c.as_csv()}") for c in networks}, baseline=space.baseline.as_csv(),
        reference={"kernel": ref_kernel.id, **level.as_dict(), "times": references,
                   "off_share": float(np.mean([level.off(m.bracket) for m in all_measured])) if all_measured else 0.0,
                   "remeasured": sum(1 for m in all_measured if m.attempt), "items": len(items)},
        plan={**(plan or {}), "rounds": design.rounds, "noisy": len(noisy), "noisy_share": len(noisy) / max(1, len(items)),
              "noisy_tables": _noisy_tables(noisy, by_id), "extra_rounds": sum(max(0, len(r) - design.rounds)
                                                                                 for r in rounds_of.values()),
              "short_of_rounds": sum(1 for r in rounds_of.values() if len(r) < design.rounds)},
    )


def _rounds_by_item(results: dict, items: list[str]) -> dict[str, list[int]]:
    """The rounds each item was measured in, in order."""
    rounds_of: dict[str, list[int]] = {i: [] for i in items}
    for (r, i) in sorted(results):
        if i in rounds_of:
            rounds_of[i].append(r)
    return rounds_of


def _disagreement(results: dict, item_id: str, rounds: list[int]) -> float:
    """How far an item's rounds spread (calibration_record.round_spread of its per-round minima)."""
    return round_spread([results[(r, item_id)].minimum for r in rounds])


def _noisy_tables(noisy: list[str], kernels: dict) -> dict[str, int]:
    """How many noisy items each table (conv kind and k), the classifier or the networks hold."""
    counts: dict[str, int] = {}
    for i in noisy:
        k = kernels.get(i)
        name = "networks" if k is None else (f"{k.kind}-k{k.k}" if k.k else k.kind)
        counts[name] = counts.get(name, 0) + 1
    return counts


def _extra_rounds(design: CalibrationDesign, items: list[str], results: dict, references: list[float], elapsed,
                  plan: dict, run, progress: dict) -> None:
    """Spend the budget left on more rounds for the items whose rounds disagree beyond the reference's
    tolerance, networks first (the composition learns from them), then the widest spread first; one
    more round per item a pass, until none disagrees, each has max_extra_rounds more, or the budget is spent."""
    cost = {i: plan["cost_network_s"] if i.startswith(NETWORK_PREFIX) else plan["cost_kernel_s"] for i in items}
    while True:
        level = ReferenceLevel.of(references)
        tolerance = max(AGREE, level.tolerance)
        rounds_of = _rounds_by_item(results, items)
        spread = {i: _disagreement(results, i, rounds_of[i]) for i in items
                  if len(rounds_of[i]) < design.rounds + design.max_extra_rounds}
        wanted = sorted((i for i, v in spread.items() if v > tolerance),
                        key=lambda i: (not i.startswith(NETWORK_PREFIX), -spread[i]))
        left = design.budget_s * 0.97 - elapsed()
        chosen, spent = [], 0.0
        for i in wanted:
            if spent + cost[i] > left:
                break
            chosen.append(i)
            spent += cost[i]
        if not chosen:
            return
        random.Random(len(results)).shuffle(chosen)
        progress["total"] += len(chosen)
        next_round = {i: max(rounds_of[i]) + 1 for i in chosen}
        run(chosen, next_round.__getitem__)
