"""`cpbench export --executor ray`: each job a Ray task, results streamed back to the driver.

A job's work is pure (cpbench.sweep): the task returns the ONNX bytes and the facts to record, so
workers need not share a filesystem with the driver; only the driver writes files and rows, one
result at a time as tasks finish. A failed or killed task is retried (max_retries), then recorded as
failed without stopping the sweep; Ctrl-C cancels what is outstanding and keeps what finished;
rerunning skips finished jobs, so a sweep resumes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from cpbench.errors import UsageError, first_line
from cpbench.workspace.ray_cluster import import_ray, start_ray
from cpbench.workspace.folder import Workspace
from cpbench.export.sweep import Job, JobOutcome, SilentObserver, SweepObserver, SweepSummary, already_done, check_inputs, commit_job

@dataclass(frozen=True)
class RaySettings:
    address: str | None = None  # None: start Ray on this machine; 'auto' or 'ray://host:port': join a cluster
    max_retries: int = 2
    num_cpus: int | None = None  # of a local Ray: default all cores
    gpus_per_task: float = 0.0  # 1 when training on a GPU


def _execute(job: Job):
    """Runs on a Ray worker: the job's pure part, no workspace."""
    return job.run(SilentObserver())


def run_sweep_ray(workspace: Workspace, jobs: list[Job], settings: RaySettings, observer: SweepObserver | None = None,
                  force: bool = False, summary: SweepSummary | None = None) -> SweepSummary:
    ray = import_ray()
    if settings.max_retries < 0:
        raise UsageError(f"--max-retries must be >= 0, got {settings.max_retries}")
    observer = observer or SilentObserver()
    summary = summary if summary is not None else SweepSummary()
    workspace.ensure_writable()
    check_inputs(jobs)
    started_ray = start_ray(settings.address, settings.num_cpus)
    task = ray.remote(_execute)
    pending: dict = {}
    submitted_at: dict = {}
    try:
        if settings.gpus_per_task and not ray.cluster_resources().get("GPU"):
            raise UsageError("--train-device cuda, but the Ray cluster has no GPU (its tasks would wait forever); "
                             "join a cluster with GPUs (--address) or train with --train-device cpu")
        with workspace.open_store() as store:
            total = len(jobs)
            finished = 0
            for job in jobs:
                done = None if force else already_done(workspace, store, job)
                if done is not None:
                    observer.job_started(finished, total, job)
                    outcome = JobOutcome(job, "skipped", record=done)
                    summary.outcomes.append(outcome)
                    observer.job_finished(outcome)
                    finished += 1
                    continue
                options = {"num_cpus": getattr(job, "threads", 1), "max_retries": settings.max_retries, "retry_exceptions": True}
                if settings.gpus_per_task:
                    options["num_gpus"] = settings.gpus_per_task
                ref = task.options(**options).remote(job)
                pending[ref] = job
                submitted_at[ref] = time.perf_counter()
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    job = pending.pop(ref)
                    observer.job_started(finished, total, job)
                    try:
                        result = ray.get(ref)
                        outcome = JobOutcome(job, "exported", record=commit_job(workspace, store, job, result))
                    except Exception as exc:  # retries are spent: record it, go on
                        cause = getattr(exc, "cause", None) or exc
                        outcome = JobOutcome(job, "failed", error=first_line(cause)[:500])
                    outcome.wall_s = time.perf_counter() - submitted_at[ref]
                    summary.outcomes.append(outcome)
                    observer.job_finished(outcome)
                    finished += 1
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        if started_ray:
            ray.shutdown()
    return summary
