"""Rich renderables for precision studies and recommendations."""

from __future__ import annotations

from rich.console import Group
from rich.panel import Panel
from rich.table import Table

from cpbench.precision import PAPER_000_ERROR
from cpbench.render import fmt_macs, fmt_seconds


def precision_study_view(result, written: str | None) -> Group:
    table = Table(title=f"Precision models for {result.dataset} / {result.recipe}: {result.n} trained configs, "
                        f"baseline {result.baseline.as_csv()} measured {result.baseline_precision if result.baseline_precision is not None else '-'}")
    table.add_column("model", no_wrap=True)
    table.add_column("configs", justify="right")
    table.add_column("R² fit", justify="right")
    table.add_column("MAPE fit", justify="right")
    table.add_column("MAPE held out", justify="right")
    table.add_column("held out by")
    table.add_column("coefficients")
    for name, e in result.evaluations.items():
        held = f"{e.held_out.mape:.2%}" if e.held_out else "-"
        coefs = ", ".join(f"{k}={v:.4g}" for k, v in e.fit.coefficients().items())
        label = f"[bold green]{name}[/]" if name == result.best else name
        table.add_row(label, str(e.used), f"{e.fit_set.r2:.3f}", f"{e.fit_set.mape:.2%}", held, e.held_out_kind if e.held_out else "-", coefs)
    best = result.evaluations[result.best]
    lines = [f"integrated model used by recommend: [bold]{result.best}[/] "
             f"(held-out MAPE {best.held_out.mape:.2%} vs paper 000's {PAPER_000_ERROR:.1%})" if best.held_out else
             f"integrated model used by recommend: [bold]{result.best}[/]"]
    lines += [f"[dim]not fitted: {s}[/]" for s in result.skipped]
    if written:
        lines.append(f"written to {written}")
    return Group(table, Panel("\n".join(lines), expand=False))


def _interval(low: float, high: float, fmt) -> str:
    return f"{fmt(low)} – {fmt(high)}"


def picks_table(title: str, picks: list, caption: str | None = None) -> Table:
    table = Table(title=title, caption=caption)
    for column in ("config f,s,k,l", "MACs", "precision", "95 % interval", "time", "95 % interval", "speed-up"):
        table.add_column(column, justify="left" if column.startswith("config") else "right")
    for p in picks:
        table.add_row(p.config, fmt_macs(p.macs), f"{p.precision:.4f}", _interval(p.precision_low, p.precision_high, lambda v: f"{v:.4f}"),
                      fmt_seconds(p.seconds), _interval(p.seconds_low, p.seconds_high, fmt_seconds), f"{p.speedup:.2f}×")
    return table


def recommendation_view(result, verification=None) -> Group:
    pick, base = result.pick, result.baseline
    head = (f"[bold]{pick.config}[/] on '{result.device}': predicted precision {pick.precision:.4f} "
            f"[{pick.precision_low:.4f}, {pick.precision_high:.4f}], time ({result.statistic}) {fmt_seconds(pick.seconds)} "
            f"[{fmt_seconds(pick.seconds_low)}, {fmt_seconds(pick.seconds_high)}], "
            f"[bold]{pick.speedup:.2f}× faster[/] than the baseline {base.config} ({fmt_seconds(base.seconds)}, precision {base.precision:.4f})")
    lines = [head, f"target: {result.target_rule}",
             f"searched {result.candidates:,} configs ({result.grid} grid) in {result.evaluate_s * 1e3:.1f} ms "
             f"({result.configs_per_s:,.0f} configs/s); time model {result.time_model}, precision model {result.precision_model}"]
    for device, config in result.other_devices.items():
        lines.append(f"on '{device}' the pick for the same target is [bold]{config}[/]: the best network depends on the device")
    lines += [f"[yellow]warning:[/] {w}" for w in result.warnings]
    parts = [Panel("\n".join(lines), title="recommendation", expand=False),
             picks_table(f"The {1 + len(result.alternatives)} fastest configs predicted to reach {result.target:.4f}", [pick, *result.alternatives])]
    front = result.pareto
    if len(front) > 12:  # the front can be long: show its spread
        keep = sorted({round(i * (len(front) - 1) / 11) for i in range(12)})
        front = [front[i] for i in keep]
    parts.append(picks_table(f"Pareto front ({len(result.pareto)} configs; nothing is both faster and more precise)", front))
    envelope = Table(title="Lower envelope C(P): the least time that reaches each precision")
    envelope.add_column("precision ≥", justify="right")
    envelope.add_column("least time", justify="right")
    envelope.add_column("× baseline time", justify="right")
    for row in result.envelope:
        envelope.add_row(f"{row['precision']:.4f}", fmt_seconds(row["seconds"]), f"{row['seconds'] / base.seconds:.3f}")
    parts.append(envelope)
    if verification is not None:
        v = verification.as_dict()
        mark = "[green]reached[/]" if v["reached_target"] else "[bold red]missed[/]"
        parts.append(Panel(
            f"{v['config']} trained ({v['recipe']}) and timed (run {v['run_id']}):\n"
            f"precision predicted {v['predicted_precision']:.4f}, measured {v['measured_precision']:.4f} "
            f"({v['precision_error']:+.2%}); target {v['target']:.4f} {mark}\n"
            f"time ({v['statistic']}) predicted {fmt_seconds(v['predicted_s'])}, measured {fmt_seconds(v['measured_s'])} ({v['time_error']:+.1%})",
            title="verification", expand=False,
        ))
    return Group(*parts)
