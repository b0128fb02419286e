"""The export sweep: for each config, train (or not), export to ONNX, and commit file + row.

A job's work (`job.run`) is pure: it returns the ONNX bytes and the facts to record, so it can run
in another process or on another machine. Only the driver (`commit_job`) touches the workspace:
the file is written atomically, then its row is committed in one transaction, so an interrupted
sweep keeps everything that finished and never leaves a half-written file or row.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch

from cpbench import __version__
from cpbench.family.config import Config
from cpbench.counting.count import GraphCount, count_model
from cpbench.export.data import DatasetSpec, dataset_shape, locate_fashion_mnist, prepare
from cpbench.errors import UsageError, first_line
from cpbench.export.onnx_export import ExportedModel, export_onnx
from cpbench.workspace.files import sha256_of, stable_hash, write_atomically
from cpbench.family.network import build_family_model, count_parameters
from cpbench.workspace.records import ModelRecord
from cpbench.workspace.store import Store
from cpbench.workspace.folder import Workspace
from cpbench.family.config import default_space
from cpbench.export.train import RECIPES, Recipe, TrainResult, train_model

UNTRAINED = "untrained"


def untrained_fields(seed: int) -> dict:
    """The identity of an untrained export: only the seed of its random weights matters."""
    return {"untrained": True, "seed": seed}


def model_file(name: str) -> str:
    """Where a model's ONNX file lives, relative to the workspace."""
    return f"models/{name}.onnx"


class Job(Protocol):
    """Anything the sweep can run: a family config (ExportJob) or a torchvision network (zoo.ZooJob)."""

    @property
    def name(self) -> str: ...
    @property
    def label(self) -> str: ...
    @property
    def recipe_name(self) -> str: ...
    @property
    def recipe_hash(self) -> str: ...
    @property
    def relative_file(self) -> str: ...
    def run(self, observer: "SweepObserver") -> "JobResult": ...
    def to_record(self, result: "JobResult") -> ModelRecord: ...


@dataclass(frozen=True)
class ExportJob:
    """One config to build, train with `recipe` (None: keep the random initialisation) and export."""

    config: Config
    dataset: DatasetSpec
    recipe: Recipe | None
    seed: int = 0
    threads: int = 1
    data_dir: Path | None = None
    exporter: str = "auto"
    train_device: str = "cpu"  # recorded with the model (training.device); the recipe, and so the name, is the same
    space: str | None = None  # the search space it was planned on; None: the dataset's default

    @property
    def recipe_name(self) -> str:
        return self.recipe.name if self.recipe else UNTRAINED

    @property
    def recipe_fields(self) -> dict:
        return self.recipe.fields() if self.recipe else untrained_fields(self.seed)

    @property
    def recipe_hash(self) -> str:
        if self.recipe:
            return self.recipe.hash
        return stable_hash(self.recipe_fields)

    @property
    def name(self) -> str:
        return f"family/{self.dataset.slug}-{self.recipe_name}/{self.config.id}"

    @property
    def relative_file(self) -> str:
        return model_file(self.name)

    @property
    def label(self) -> str:
        return self.config.id

    def run(self, observer: "SweepObserver") -> "JobResult":
        return run_family_job(self, observer)

    def to_record(self, result: "JobResult") -> ModelRecord:
        c = self.config
        return ModelRecord(
            name=self.name,
            kind="family",
            config_id=c.id,
            f=c.f, s=c.s, k=c.k, l=c.l,
            dataset=self.dataset.slug,
            input_shape=result.input_shape,
            num_classes=result.num_classes,
            recipe_name=self.recipe_name,
            recipe_hash=self.recipe_hash,
            recipe=self.recipe_fields,
            accuracy=None if result.train is None else result.train.accuracy,
            training=None if result.train is None else result.train.as_dict(),
            normalization=result.normalization,
            params=result.params,
            file=self.relative_file,
            sha256=result.exported.sha256,
            opset=result.exported.opset,
            exporter=result.exported.exporter,
            parity_max_abs_diff=result.exported.max_abs_diff,
            cpbench_version=__version__,
            space=self.space or default_space(self.dataset.slug),
        )


@dataclass
class JobResult:
    """What a finished job hands back to the driver."""

    exported: ExportedModel
    count: GraphCount
    params: int
    input_shape: tuple[int, ...]
    num_classes: int
    train: TrainResult | None = None
    normalization: dict | None = None
    wall_s: float = 0.0


@dataclass
class JobOutcome:
    job: Job
    status: str  # 'exported' | 'skipped' | 'failed'
    record: ModelRecord | None = None
    error: str | None = None
    wall_s: float = 0.0

    def as_dict(self) -> dict:
        record = self.record
        return {
            "name": self.job.name,
            "config": self.job.label,
            "status": self.status,
            "recipe": self.job.recipe_name,
            "accuracy": record.accuracy if record else None,
            "params": record.params if record else None,
            "macs": record.macs if record else None,
            "file": record.file if record else None,
            "train_s": (record.training or {}).get("wall_s") if record else None,
            "wall_s": round(self.wall_s, 3),
            "error": self.error,
        }


class SweepObserver(Protocol):
    def job_started(self, index: int, total: int, job: Job) -> None: ...
    def training_step(self, job: ExportJob, epoch: int, step: int, total_steps: int, loss: float) -> None: ...
    def job_finished(self, outcome: JobOutcome) -> None: ...


class SilentObserver:
    def job_started(self, index: int, total: int, job: Job) -> None:
        pass

    def training_step(self, job: ExportJob, epoch: int, step: int, total_steps: int, loss: float) -> None:
        pass

    def job_finished(self, outcome: JobOutcome) -> None:
        pass


def total_training_steps(job: ExportJob, train_size: int) -> int:
    if job.recipe is None:
        return 0
    n = min(train_size, job.recipe.train_subset or train_size)
    return -(-n // job.recipe.batch_size) * job.recipe.epochs


def run_family_job(job: ExportJob, observer: SweepObserver | None = None) -> JobResult:
    """Build, train if asked, and export one config. Touches no workspace state."""
    observer = observer or SilentObserver()
    started = time.perf_counter()
    torch.set_num_threads(job.threads)
    seed = job.recipe.seed if job.recipe else job.seed
    train_result = normalization = None
    if job.recipe is None:
        channels, classes = dataset_shape(job.dataset)
        torch.manual_seed(seed)
        model = build_family_model(job.config, channels, classes)
    else:
        data = prepare(job.dataset, job.config.s, job.data_dir)
        channels, classes = data.channels, data.num_classes
        torch.manual_seed(seed)
        model = build_family_model(job.config, channels, classes)
        steps = total_training_steps(job, len(data.x_train))
        train_result = train_model(
            model, data.x_train, data.y_train, data.x_test, data.y_test, job.recipe, job.threads,
            on_step=lambda epoch, step, loss: observer.training_step(job, epoch, step, steps, loss),
            device=job.train_device,
        )
        normalization = data.normalization()
    input_shape = (channels, job.config.s, job.config.s)
    metadata = {
        "cpbench.name": job.name,
        "cpbench.config": job.config.as_csv(),
        "cpbench.dataset": job.dataset.slug,
        "cpbench.recipe": job.recipe_name,
        "cpbench.normalization": json.dumps(normalization),
        "cpbench.accuracy": "" if train_result is None else f"{train_result.accuracy:.6f}",
        "cpbench.version": __version__,
    }
    exported = export_onnx(model, input_shape, metadata, exporter=job.exporter)
    return JobResult(
        exported=exported,
        count=count_model(exported.proto),
        params=count_parameters(model),
        input_shape=input_shape,
        num_classes=classes,
        train=train_result,
        normalization=normalization,
        wall_s=time.perf_counter() - started,
    )


def commit_job(workspace: Workspace, store: Store, job: Job, result: JobResult) -> ModelRecord:
    """Write the file atomically, then commit its row: the only place the workspace changes. Under
    the workspace lock, so the row and the file always come from the same process."""
    record = job.to_record(result)
    record.set_counts(result.count)
    with workspace.lock():
        write_atomically(workspace.root / job.relative_file, result.exported.data)
        store.put_model(record)
    return record


def already_done(workspace: Workspace, store: Store, job: Job) -> ModelRecord | None:
    """The stored model for this job if it was finished with the same recipe and its file is intact."""
    record = store.get_model(job.name)
    if record is None or record.recipe_hash != job.recipe_hash:
        return None
    path = workspace.root / record.file
    if not path.is_file() or sha256_of(path) != record.sha256:
        return None
    return record


def check_inputs(jobs: list[Job]) -> None:
    """Fail before any work when a dataset that training needs is missing or corrupt: each one is
    read once here (the read is cached, so the first job pays nothing more)."""
    checked = set()
    for job in jobs:
        if isinstance(job, ExportJob) and job.recipe is None and job.dataset.kind != "fashionmnist":
            dataset_shape(job.dataset)  # an untrained export still needs the folder's channels and classes
        if isinstance(job, ExportJob) and job.recipe is not None and (job.dataset, job.data_dir) not in checked:
            if job.dataset.kind == "fashionmnist":
                locate_fashion_mnist(job.data_dir)
            data = prepare(job.dataset, job.config.s, job.data_dir)
            checked.add((job.dataset, job.data_dir))
            available = len(data.x_train)
            # a named recipe's own subset (also under other overrides, '<name>-<hash>') means "up to": a small
            # dataset trains on all of it; only a --train-subset the user asked for beyond the data is an error
            named = RECIPES.get(job.recipe.name) or RECIPES.get(job.recipe.name.rsplit("-", 1)[0])
            asked = named is None or named.train_subset != job.recipe.train_subset
            if asked and job.recipe.train_subset is not None and job.recipe.train_subset > available:
                raise UsageError(f"--train-subset {job.recipe.train_subset} is more than the {available} training images of "
                                 f"{job.dataset.slug}; use at most {available}, or leave it out to train on all of them")


@dataclass
class SweepSummary:
    outcomes: list[JobOutcome] = field(default_factory=list)
    interrupted: bool = False

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)


def run_sweep(
    workspace: Workspace,
    jobs: list[Job],
    observer: SweepObserver | None = None,
    force: bool = False,
    summary: SweepSummary | None = None,
) -> SweepSummary:
    """Run jobs in order, skipping those already done; a failing job is recorded and the sweep goes on.

    Pass `summary` to keep what finished when the sweep is interrupted (KeyboardInterrupt propagates).
    """
    observer = observer or SilentObserver()
    summary = summary if summary is not None else SweepSummary()
    workspace.ensure_writable()
    check_inputs(jobs)
    with workspace.open_store() as store:
        for index, job in enumerate(jobs):
            observer.job_started(index, len(jobs), job)
            started = time.perf_counter()
            done = None if force else already_done(workspace, store, job)
            if done is not None:
                outcome = JobOutcome(job, "skipped", record=done)
            else:
                try:
                    result = job.run(observer)
                    outcome = JobOutcome(job, "exported", record=commit_job(workspace, store, job, result))
                except UsageError:
                    raise
                except Exception as exc:  # a failing model is recorded; the sweep goes on
                    outcome = JobOutcome(job, "failed", error=first_line(exc))
            outcome.wall_s = time.perf_counter() - started
            summary.outcomes.append(outcome)
            observer.job_finished(outcome)
    return summary
