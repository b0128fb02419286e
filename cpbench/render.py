"""Rich renderables for the terminal: sweep progress, plans, summaries and model lists."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from cpbench.store import ModelRecord, Workspace
from cpbench.sweep import ExportJob, JobOutcome, SweepSummary

STATUS_STYLE = {"exported": "green", "skipped": "dim", "failed": "bold red"}


def _fmt_acc(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _fmt_int(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


class SweepProgress:
    """Two bars: configs done of all, and the current config's training steps with its loss."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.overall = None
        self.current = None

    def __enter__(self) -> "SweepProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.overall is not None:
            self.progress.__exit__(*exc)

    def job_started(self, index: int, total: int, job: ExportJob) -> None:
        if self.overall is None:  # start the live display only once work begins
            self.progress.__enter__()
            self.overall = self.progress.add_task("configs", total=total)
        self.progress.update(self.overall, description=f"config {index + 1}/{total} {job.config.id}")
        if self.current is not None:
            self.progress.remove_task(self.current)
        what = "exporting" if job.recipe is None else f"training ({job.recipe.name})"
        self.current = self.progress.add_task(f"  {what}", total=None)

    def training_step(self, job: ExportJob, epoch: int, step: int, total_steps: int, loss: float) -> None:
        assert job.recipe is not None and self.current is not None
        self.progress.update(
            self.current, total=total_steps, completed=step,
            description=f"  epoch {epoch + 1}/{job.recipe.epochs} loss {loss:.3f}",
        )

    def job_finished(self, outcome: JobOutcome) -> None:
        if self.overall is not None:
            self.progress.advance(self.overall)
        if self.current is not None:
            self.progress.remove_task(self.current)
            self.current = None
        if outcome.status == "failed":
            self.progress.console.print(f"[red]failed[/red] {outcome.job.name}: {outcome.error}", markup=True)


def plan_table(jobs: list[ExportJob]) -> Table:
    table = Table("#", "config", "f", "s", "k", "l", "recipe", "model name", title=f"Export plan: {len(jobs)} configs")
    for i, job in enumerate(jobs, 1):
        c = job.config
        table.add_row(str(i), c.id, str(c.f), str(c.s), str(c.k), str(c.l), job.recipe_name, job.name)
    return table


def sweep_table(summary: SweepSummary) -> Table:
    counts = ", ".join(f"{summary.count(s)} {s}" for s in ("exported", "skipped", "failed") if summary.count(s))
    table = Table("config", "recipe", "status", "params", "accuracy", "train s", title=f"Export summary ({counts})")
    table.add_column("file or error", overflow="fold")
    for outcome in summary.outcomes:
        row = outcome.as_dict()
        train_s = row["train_s"]
        table.add_row(
            row["config"], row["recipe"], f"[{STATUS_STYLE[row['status']]}]{row['status']}[/]",
            _fmt_int(row["params"]), _fmt_acc(row["accuracy"]),
            "-" if train_s is None else f"{train_s:.1f}",
            row["file"] or (row["error"] or ""),
        )
    return table


def models_table(records: list[ModelRecord], workspace: Workspace) -> Table:
    table = Table(title=f"Models in {workspace.root}")
    table.add_column("name", overflow="fold", min_width=20)
    for column in ("f", "s", "k", "l", "dataset", "recipe", "params", "accuracy", "size"):
        table.add_column(column, justify="right" if column in "fskl params accuracy size" else "left")
    for r in records:
        path = workspace.root / r.file
        size = f"{path.stat().st_size / 1024:.0f} KiB" if path.exists() else "[red]missing[/]"
        table.add_row(
            r.name, *(str(v) if v is not None else "-" for v in (r.f, r.s, r.k, r.l)),
            r.dataset, r.recipe_name, _fmt_int(r.params), _fmt_acc(r.accuracy), size,
        )
    return table
