"""`cpbench time --executor ray`: the same models timed on every node of a Ray cluster (or the
nodes a resource label selects), one node's measurements never overlapping: each node gets one
task that reserves all its CPUs and measures the models one after another, in fresh worker
processes and rounds as on one machine. Each node's results come back as their own run, tagged
with that node's fingerprint, so one command yields a fit for every kind of machine.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from cpbench.errors import UsageError, first_line
from cpbench.timing.profiles import Profile
from cpbench.timing.runner import ModelTiming, TimingRun, TimingTarget, new_run_id, time_in_worker
from cpbench.workspace.ray_cluster import import_ray, start_ray


@dataclass(frozen=True)
class ShippedModel:
    """A model sent to a node with its bytes: nodes need not share the driver's filesystem."""

    name: str
    data: bytes
    sha256: str | None
    macs: int | None


def _time_on_node(models: list[ShippedModel], profile: Profile, seed: int) -> dict:
    """Runs on one node: write the models to a scratch folder, time them in rounds, one at a time."""
    from cpbench.timing.environment import fingerprint

    with tempfile.TemporaryDirectory(prefix="cpbench-time-") as folder:
        targets = []
        for i, m in enumerate(models):
            path = Path(folder) / f"{i}.onnx"
            path.write_bytes(m.data)
            targets.append(TimingTarget(m.name, path, m.sha256, m.macs))
        latest: dict[int, ModelTiming] = {}
        for _ in range(profile.measure.rounds):
            for index, target in enumerate(targets):
                if index in latest and latest[index].status != "ok":
                    continue
                timing = time_in_worker(target, profile, seed)
                latest[index] = latest[index].merged_with(timing) if index in latest else timing
        timings = [latest[i] for i in sorted(latest)]
        for timing, model in zip(timings, models):
            timing.file = model.name
    return {"fingerprint": fingerprint(), "timings": timings}


def cluster_nodes(ray, resource: str | None) -> list[dict]:
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if resource:
        nodes = [n for n in nodes if n.get("Resources", {}).get(resource)]
        if not nodes:
            raise UsageError(f"no live Ray node has the resource {resource!r}; start nodes with "
                             f"--resources '{{\"{resource}\": 1}}' or drop --resource")
    return nodes


def run_timing_ray(store, device: str, profile: Profile, targets: list[TimingTarget], address: str | None = None,
                   resource: str | None = None, seed: int = 0) -> list[TimingRun]:
    ray = import_ray()
    started = start_ray(address)
    try:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        models = [ShippedModel(t.name, Path(t.path).read_bytes(), t.sha256, t.macs) for t in targets]
        task = ray.remote(_time_on_node)
        pending = {}
        for node in cluster_nodes(ray, resource):
            cpus = node.get("Resources", {}).get("CPU", 1)
            strategy = NodeAffinitySchedulingStrategy(node_id=node["NodeID"], soft=False)
            ref = task.options(num_cpus=cpus, scheduling_strategy=strategy, max_retries=0).remote(models, profile, seed)
            pending[ref] = node
        runs = []
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    node = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except Exception as exc:  # the device is not on that node, or the node went away
                        cause = getattr(exc, "cause", None) or exc
                        raise UsageError(f"timing on Ray node {node['NodeID'][:12]} failed ({first_line(cause)[:300]}); "
                                         "runs of the nodes that finished are kept") from None
                    run = TimingRun(new_run_id(device), device, profile, {**result["fingerprint"], "ray_node": node["NodeID"]},
                                    datetime.now(timezone.utc).isoformat(timespec="seconds"))
                    store.start_run(run)
                    for timing in result["timings"]:
                        store.put_timing(run.id, timing)
                    run.timings = result["timings"]
                    run.status = "done"
                    store.finish_run(run)
                    runs.append(run)
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        return runs
    finally:
        if started:
            ray.shutdown()
