"""Rich renderables for precision studies and recommendations."""

from __future__ import annotations

from rich.console import Group
from rich.panel import Panel
from rich.table import Table

from cpbench.fitting.precision_models import PAPER_000_ERROR, REGION
from cpbench import units


def precision_study_view(result, written: str | None) -> Group:
    seeds = result.seeds
    spread = f"seed sd {seeds.sd * 100:.2f} points ({seeds.configs} configs, {seeds.runs} runs)" if seeds else "no repeated seeds"
    table = Table(title=f"Precision models for {result.dataset} / {result.recipe}: {result.n} fitted configs, "
                        f"baseline {result.baseline.as_csv()} measured "
                        f"{f'{result.baseline_precision:.4f} (mean of its seeds)' if result.baseline_precision is not None else '-'}; {spread}",
                  caption="MAE in accuracy points; k-fold refits start cold; the held-out set was trained after the model form was frozen")
    for column in ("model", "configs", "MAPE fit", "MAE k-fold", "MAE held out", f"MAE held out, P ≥ {REGION:.2f}", "MAPE held out", "held out by"):
        table.add_column(column, justify="left" if column == "model" else "right", no_wrap=column == "model")
    for name, e in result.evaluations.items():
        label = f"[bold green]{name}[/]" if name == result.best else name
        table.add_row(label, str(e.used), f"{e.fit_set.mape:.2%}", units.points(e.kfold.mae if e.kfold else None),
                      units.points(e.held_out.mae if e.held_out else None),
                      units.points(e.held_out_region.mae if e.held_out_region else None),
                      f"{e.held_out.mape:.2%}" if e.held_out else "-", e.held_out_kind if e.held_out else "-")
    if result.naive:
        for label, metrics in (("naive: constant", result.naive.constant), ("naive: additive 1-D sweeps", result.naive.additive)):
            if metrics is not None:
                table.add_row(f"[dim]{label}[/]", "", "", "", units.points(metrics.mae), "", f"{metrics.mape:.2%}", result.naive.kind)
    best = result.evaluations[result.best]
    lines = [f"integrated model used by recommend: [bold]{result.best}[/], the monotone one (eq. 6 is judged beside it)"]
    if best.held_out:
        lines.append(f"held out ({best.held_out_kind}, {best.held_out.n} configs): MAE {units.points(best.held_out.mae)} points, "
                     f"MAPE {best.held_out.mape:.2%} (paper 000 claims {PAPER_000_ERROR:.1%})")
    if best.held_out_region and seeds:
        ratio = best.held_out_region.mae / seeds.sd if seeds.sd > 0 else float("inf")
        lines.append(f"where P ≥ {REGION:.2f}: MAE {units.points(best.held_out_region.mae)} points = {ratio:.2f} × the seed sd")
    coefs = ", ".join(f"{k}={v:.4g}" for k, v in best.fit.coefficients().items())
    lines.append(f"[dim]{result.best}: {coefs}[/]")
    bounded = best.fit.on_bounds()
    if bounded:
        lines.append(f"[dim]on their bounds (not pinned down by the data): {', '.join(bounded)}[/]")
    lines += [f"[dim]not fitted: {s}[/]" for s in result.skipped]
    if written:
        lines.append(f"written to {written}")
    return Group(table, Panel("\n".join(lines), expand=False))


def _interval(low: float, high: float, fmt) -> str:
    return f"{fmt(low)} – {fmt(high)}"


def picks_table(title: str, picks: list, caption: str | None = None) -> Table:
    table = Table(title=title, caption=caption)
    for column in ("config f,s,k,l", "MACs", "precision (pred.)", "95 % interval", "P(≥ target)", "time (pred.)", "95 % interval", "speed-up (pred.)"):
        table.add_column(column, justify="left" if column.startswith("config") else "right")
    for p in picks:
        table.add_row(p.config.as_csv(), units.macs(p.macs), f"{p.precision:.4f}", _interval(p.precision_low, p.precision_high, lambda v: f"{v:.4f}"),
                      f"{p.probability:.2f}", units.seconds(p.seconds), _interval(p.seconds_low, p.seconds_high, units.seconds), f"{p.speedup:.2f}×")
    return table


def recommendation_view(result, verification=None) -> Group:
    pick, base = result.pick, result.baseline
    head = (f"[bold]{pick.config.as_csv()}[/] on '{result.device}': predicted precision {pick.precision:.4f} "
            f"[{pick.precision_low:.4f}, {pick.precision_high:.4f}], [bold]P(≥ {result.target:.4f}) = {pick.probability:.2f}[/], "
            f"predicted time ({result.statistic}) {units.seconds(pick.seconds)} "
            f"[{units.seconds(pick.seconds_low)}, {units.seconds(pick.seconds_high)}], "
            + (f"[bold]the baseline itself[/]: no cheaper config is {result.confidence:.0%} likely to reach the target "
               f"(precision {result.baseline_precision:.4f} by the model); lower --confidence or the target to trade"
               if pick.config == base.config else
               f"[bold]predicted {pick.speedup:.2f}× faster[/] than the baseline {base.config.as_csv()} "
               f"(predicted {units.seconds(base.seconds)}, precision {result.baseline_precision:.4f} by the model)"))
    lines = [head, f"target: {result.target_rule}, with probability ≥ {result.confidence:.2f} for one training",
             f"searched {result.candidates:,} configs ({result.grid} grid) in {result.evaluate_s * 1e3:.1f} ms "
             f"({result.configs_per_s:,.0f} configs/s); time model {result.time_model}, precision model {result.precision_model}"]
    for device, config in result.other_devices.items():
        lines.append(f"on '{device}' the pick for the same target is [bold]{config}[/] (from that profile's time model): the best network depends on the device")
    lines += [f"[yellow]warning:[/] {w}" for w in result.warnings]
    parts = [Panel("\n".join(lines), title="recommendation", expand=False),
             picks_table(f"The {1 + len(result.alternatives)} fastest configs at least {result.confidence:.0%} likely to reach {result.target:.4f}", [pick, *result.alternatives])]
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
        envelope.add_row(f"{row['precision']:.4f}", units.seconds(row["seconds"]), f"{row['seconds'] / base.seconds:.3f}")
    parts.append(envelope)
    if verification is not None:
        v = verification.as_dict()
        mark = "[green]reached[/]" if v["reached_target"] else "[bold red]missed[/]"
        inside = "inside" if v["speedup_in_interval"] else "[bold red]outside[/]"
        seeds = ", ".join(f"{p:.4f}" for p in v["measured_precisions"])
        parts.append(Panel(
            f"{v['config']} trained ({v['recipe']}, seeds {', '.join(map(str, v['seeds']))}) and timed beside the baseline "
            f"(run {v['run_id']}, rounds interleaved):\n"
            f"precision predicted {v['predicted_precision']:.4f} [{v['predicted_low']:.4f}, {v['predicted_high']:.4f}], "
            f"measured {v['measured_precision']:.4f} (mean of {seeds}); target {v['target']:.4f} "
            f"(tolerance one test-set SE, {v['tolerance']:.3f}) {mark}\n"
            f"speed-up predicted {v['predicted_speedup']:.2f}× [{v['predicted_speedup_low']:.2f}, {v['predicted_speedup_high']:.2f}], "
            f"measured {v['measured_speedup']:.2f}× ({v['statistic']}: {units.seconds(v['measured_pick_s'])} against "
            f"{units.seconds(v['measured_baseline_s'])}), {inside} the interval",
            title="verification: measured on this machine", expand=False,
        ))
    return Group(*parts)
