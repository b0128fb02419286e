"""Rich renderables for the terminal: sweep progress, plans, summaries and model lists."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cpbench import units
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

if TYPE_CHECKING:  # annotations only: importing the sweep would import torch, which a table does not need
    from cpbench.counting.count import GraphCount
    from cpbench.workspace.records import ModelRecord
    from cpbench.workspace.folder import Workspace
    from cpbench.export.sweep import ExportJob, Job, JobOutcome, SweepSummary

STATUS_STYLE = {"exported": "green", "skipped": "dim", "failed": "bold red"}


def bar_progress(console: Console, transient: bool = False) -> Progress:
    """The one progress layout: spinner, what is running, bar, i/N, elapsed, ETA."""
    return Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console, transient=transient,
    )


class LazyProgress:
    """A live display that appears only once work begins, so an early error prints nothing else."""

    def __init__(self, console: Console, transient: bool = False) -> None:
        self.progress = bar_progress(console, transient)
        self.started = False

    def __enter__(self) -> "LazyProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop(*exc)

    def start(self) -> None:
        if not self.started:
            self.progress.__enter__()
            self.started = True

    def stop(self, *exc: object) -> None:
        """End the live display (once), so that another one may follow inside the same command."""
        if self.started:
            self.progress.__exit__(*(exc or (None, None, None)))
            self.started = False


class SweepProgress(LazyProgress):
    """Two bars: configs done of all, and the current config's training steps with its loss."""

    def __init__(self, console: Console) -> None:
        super().__init__(console)
        self.overall = None
        self.current = None
        self.finished, self.total = 0, 0

    def job_started(self, index: int, total: int, job: Job) -> None:
        self.total = total
        if self.overall is None:
            self.start()
            self.overall = self.progress.add_task("configs", total=total)
        self.progress.update(self.overall, description=f"model {index + 1}/{total} {job.label}")
        if self.current is not None:
            self.progress.remove_task(self.current)
        recipe = getattr(job, "recipe", None)
        what = "exporting" if recipe is None else f"training ({recipe.name})"
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
        self.finished += 1
        if self.overall is not None and self.finished >= self.total:
            self.stop()  # the last config is done: free the terminal for what follows (timing, in --verify)


def plan_table(jobs: list[ExportJob]) -> Table:
    table = Table("#", "config", "f", "s", "k", "l", "recipe", "model name", title=f"Export plan: {len(jobs)} configs")
    for i, job in enumerate(jobs, 1):
        c = job.config
        table.add_row(str(i), c.id, str(c.f), str(c.s), str(c.k), str(c.l), job.recipe_name, job.name)
    return table


def sweep_table(summary: SweepSummary) -> Table:
    counts = ", ".join(f"{summary.count(s)} {s}" for s in ("exported", "skipped", "failed") if summary.count(s))
    table = Table("config", "recipe", "status", "params", "MACs", "accuracy", "train s", title=f"Export summary ({counts})")
    table.add_column("file or error", overflow="fold")
    for outcome in summary.outcomes:
        row = outcome.as_dict()
        train_s = row["train_s"]
        table.add_row(
            row["config"], row["recipe"], f"[{STATUS_STYLE[row['status']]}]{row['status']}[/]",
            units.count(row["params"]), units.macs(row["macs"]), units.accuracy(row["accuracy"]),
            "-" if train_s is None else f"{train_s:.1f}",
            row["file"] or (row["error"] or ""),
        )
    return table


def models_table(records: list[ModelRecord], workspace: Workspace) -> Table:
    table = Table(title=f"Models in {workspace.root}")
    table.add_column("name", overflow="fold", min_width=20)
    for column in ("f", "s", "k", "l", "dataset", "recipe", "params", "MACs", "accuracy", "size"):
        table.add_column(column, justify="left" if column in ("dataset", "recipe") else "right")
    for r in records:
        path = workspace.root / r.file
        size = f"{path.stat().st_size / 1024:.0f} KiB" if path.exists() else "[red]missing[/]"
        table.add_row(
            r.name, *(str(v) if v is not None else "-" for v in (r.f, r.s, r.k, r.l)),
            r.dataset, r.recipe_name, units.count(r.params), units.macs(r.macs), units.accuracy(r.accuracy), size,
        )
    return table


def count_tables(count: "GraphCount", title: str, all_layers: bool = False) -> list[Table]:
    """Totals by category, then one row per layer (zero-cost layers only with all_layers)."""
    from cpbench.counting.handlers import CATEGORIES, CORE

    totals = Table("category", "MACs", "share", title=f"{title}: {units.macs(count.total_macs)} MACs = {units.macs(count.flops)} FLOPs")
    for category in CATEGORIES:
        macs = count.macs_by_category.get(category, 0)
        if macs:
            share = macs / count.total_macs if count.total_macs else 0
            totals.add_row(category + (" (core)" if category in CORE else ""), f"{macs:,}", f"{share:.1%}")
    totals.add_row("[bold]core: conv + linear + matmul[/]", f"[bold]{count.core_macs:,}[/]", "")
    totals.add_row("[bold]all counted[/]", f"[bold]{count.total_macs:,}[/]", "")
    totals.add_row("parameters", f"{count.params:,}", "")
    totals.add_row("weight bytes", f"{count.weight_bytes:,}", "")
    totals.add_row("activation bytes", f"{count.activation_bytes:,}", "")
    inputs = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in count.input_shapes.items())
    totals.caption = f"inputs: {inputs}. MACs = multiply-accumulates; FLOPs = 2 x MACs."
    if count.uncounted:
        totals.caption += " [red]Uncounted ops (cost unknown): " + ", ".join(f"{op} x{n}" for op, n in count.uncounted.items()) + "[/]"
    layers = Table("#", "layer", "op", "output", "MACs", "category", "params", title="Per layer")
    for i, layer in enumerate(count.layers):
        if not all_layers and layer.counted and not layer.total_macs:
            continue
        shape = "x".join(map(str, layer.output_shape)) if layer.output_shape else "?"
        macs = f"{layer.total_macs:,}" if layer.counted else "[red]uncounted[/]"
        category = "+".join(layer.macs) if layer.macs else ("-" if layer.counted else "?")
        layers.add_row(str(i), layer.name, layer.op_type if not layer.domain else f"{layer.domain}::{layer.op_type}", shape, macs, category, f"{layer.params:,}" if layer.params else "")
    return [totals, layers]


def table1_table(rows: list) -> Table:
    table = Table("paper row", "torchvision model", "paper GFLOPs", "cpbench GFLOPs", "torchvision GMACs", "agrees", "note",
                  title="Paper 003, Table 1: FLOPs at 224x224x3 (FLOPs = 2 x conv+linear MACs)")
    for r in rows:
        mark = "[green]yes[/]" if r.agrees else "[bold red]no[/]"
        table.add_row(r.label, r.model, f"{r.paper_gflops:.2f}", f"{r.cpbench_gflops:.2f}",
                      "-" if r.torchvision_gmacs is None else f"{r.torchvision_gmacs:.3f}", mark, r.note)
    return table


class TimingProgress(LazyProgress):
    """One bar over the models of a run, naming the one being measured."""

    def __init__(self, console: Console) -> None:
        super().__init__(console, transient=True)
        self.task = None

    def model_started(self, index: int, total: int, target) -> None:
        if self.task is None:
            self.start()
            self.task = self.progress.add_task("timing", total=total)
        self.progress.update(self.task, description=f"timing {index + 1}/{total} {target.name}")

    def model_finished(self, timing) -> None:
        self.progress.advance(self.task)
        if not timing.final:
            return
        if timing.status != "ok":
            self.progress.console.print(f"[red]failed[/red] {timing.model}: {timing.error}")
        else:
            for warning in timing.stats.warnings:
                self.progress.console.print(f"[yellow]warning[/yellow] {timing.model}: {warning}")


def timing_table(run) -> Table:
    batch = run.profile.batch
    clock = "the runtime's own request latency" if run.profile.clock == "runtime" else "wall time of the call"
    title = f"Run {run.id} on '{run.device}' ({run.profile.description or run.profile.runtime}), batch {batch}; times: {clock}"
    table = Table(title=title)
    table.add_column("model", overflow="fold", min_width=20)
    for column in ("MACs", "load", "first", "median", "p90", "stdev %", "n", "GMAC/s") + (("img/s",) if batch > 1 else ()) + ("notes",):
        table.add_column(column, justify="left" if column == "notes" else "right")
    for t in run.timings:
        if t.status != "ok":
            table.add_row(t.model, units.macs(t.macs), "-", "-", "-", "-", "-", "-", "-", *(("-",) if batch > 1 else ()), f"[red]{t.error}[/]")
            continue
        st = t.stats
        gmacs = "-" if t.gmacs_per_s is None else f"{t.gmacs_per_s:.1f}"
        notes = "[yellow]" + "; ".join(st.warnings) + "[/]" if st.warnings else ""
        table.add_row(
            t.model, units.macs(t.macs), units.seconds(t.load_s), units.seconds(t.first_s), units.seconds(st.median_s),
            units.seconds(st.p90_s), f"{st.stdev_pct:.1f}", str(st.n), gmacs,
            *((f"{t.throughput_ips:,.0f}",) if batch > 1 else ()), notes,
        )
    return table


def compare_table(comparison) -> Table:
    table = Table(title=f"{comparison.run_b} against {comparison.run_a} (ratio = B / A; above 1: B is slower)")
    table.add_column("model", overflow="fold", min_width=20)
    for column in ("median A", "median B", "ratio", "rounds A/B", "p (Welch, round medians)", "verdict"):
        table.add_column(column, justify="right")
    styles = {"faster": "green", "slower": "red", "same": "dim", "untested": "yellow"}
    for m in comparison.models:
        table.add_row(m.model, units.seconds(m.median_a_s), units.seconds(m.median_b_s), f"{m.ratio:.3f}",
                      f"{m.rounds_a}/{m.rounds_b}", "-" if m.p_value is None else f"{m.p_value:.3g}",
                      f"[{styles[m.verdict]}]{m.verdict}[/]")
    table.caption = (f"geometric mean of ratios: {comparison.geometric_mean_ratio:.3f} over {len(comparison.models)} models; "
                     "differences under 3 % are 'same'; 'untested': one round a side (time with --rounds 3 to test)")
    if not comparison.same_hardware:
        table.caption += " [yellow](the runs come from different hardware)[/]"
    if comparison.clocks[0] != comparison.clocks[1]:
        table.caption += (f" [yellow](A timed the {comparison.clocks[0]} clock, B the {comparison.clocks[1]} clock: "
                          "the ratios include the Python call's cost, not only the runtime's)[/]")
    return table
