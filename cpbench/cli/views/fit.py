"""Rich renderables for time models: the fit summary, the linearity verdict, paper 003's zoo and profiles."""

from __future__ import annotations

from rich.console import Group
from rich.panel import Panel
from rich.table import Table

from cpbench import units


def models_fit_table(result) -> Table:
    table = Table(title=f"Time models on '{result.device}', batch {result.batch}, {result.n} configs, statistic: {result.statistic}")
    table.add_column("model", no_wrap=True)
    table.add_column("weights")
    for column in ("R² fit", "MAPE", "max", "RMSPE", "±10%", "±5%", "MAPE l-out", "MAPE k-out"):
        table.add_column(column, justify="right")
    for name, e in result.evaluations.items():
        held = [units.percent(e.held_out[g].mape) if g in e.held_out else "-" for g in ("l", "k")]
        style = "bold green" if name == result.best else ""
        table.add_row(
            f"[{style}]{name}[/]" if style else name, e.fitted.spec.weighting, f"{e.fit_set.r2:.3f}", units.percent(e.kfold.mape),
            units.percent(e.kfold.max_ape), units.percent(e.kfold.rmspe), units.percent(e.kfold.within_10), units.percent(e.kfold.within_5), *held,
        )
    table.caption = (f"errors on configs left out of each fit ({result.folds}-fold; l-out/k-out: every config with one l "
                     f"or one k held out); best: {result.best}")
    return table


def coefficients_table(result, names: tuple[str, ...] = ("eq1", "eq1-rel", "linear", "linear-rel")) -> Table:
    table = Table(title=f"Paper 000 eq. (1) C = α1·complexity + α0 (95 % intervals); baseline {result.baseline.as_csv()} = 1.0")
    for column in ("model", "α1 (s per MAC)", "α0 (s)", "α1 normalised", "α0 normalised"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for name in names:
        if name not in result.evaluations:
            continue
        c = result.evaluations[name].fitted.coefficients()
        norm = result.normalised(name) or {}
        a1, a0 = c["alpha1"], c["alpha0"]
        table.add_row(
            name, f"{a1['value']:.3g} [{a1['ci_low']:.3g}, {a1['ci_high']:.3g}]",
            f"{a0['value']:.3g} [{a0['ci_low']:.3g}, {a0['ci_high']:.3g}]",
            f"{norm.get('alpha1', float('nan')):.3f}", f"{norm.get('alpha0', float('nan')):.3f}",
        )
    source = "measured" if result.baseline_measured else "predicted by the best model"
    table.caption = f"baseline time {units.seconds(result.baseline_time_s)} ({source})"
    return table


def zoo_table(result) -> Table | None:
    if not result.zoo:
        return None
    table = Table(title="Paper 003: classic networks against the family's line (linear, OLS)")
    for column in ("model", "MACs", "measured", "family line", "measured / line"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for z in sorted(result.zoo, key=lambda z: z.macs):
        table.add_row(z.model, units.macs(z.macs), units.seconds(z.measured_s), units.seconds(z.family_line_s), f"{z.ratio:.2f}")
    if result.zoo_linear:
        m = result.zoo_linear
        table.caption = f"a line through the zoo alone: R² {m.r2:.3f}, MAPE {m.mape:.1%}, max error {m.max_ape:.0%} (on its own points)"
    return table


def fit_summary(result, written: str | None) -> Group:
    parts = [models_fit_table(result), coefficients_table(result)]
    zoo = zoo_table(result)
    if zoo is not None:
        parts.append(zoo)
    law = result.power_law
    lines = [f"[bold]{result.verdict}[/]", f"power law t ∝ MACs^b: b = {law.exponent:.3f} [{law.ci_low:.3f}, {law.ci_high:.3f}], R² of logs {law.r2:.3f}"]
    if result.selection:
        sel = result.selection
        lines.append(f"best model as chosen, judged on configs that did not choose it (nested k-fold): MAPE {sel.errors.mape:.1%}, "
                     f"{sel.errors.within_10:.0%} within ±10 %; its 95 % prediction interval held {sel.interval_coverage:.0%} of them")
    if result.f_test:
        t = result.f_test
        lines.append(f"F-test {t.richer} against {t.simple}: F({t.df_extra}, {t.df_resid}) = {t.f_statistic:.2f}, p = {t.p_value:.3g}")
    lines += [f"[yellow]warning:[/] {w}" for w in result.warnings]
    if written:
        lines.append(f"fit saved to {written} (the profile is settings only and is not written)")
    parts.append(Panel("\n".join(lines), title="verdict", expand=False))
    return Group(*parts)


def profile_panel(profile, fitted: dict | None, source: str) -> Group:
    """The hand-written settings, then this machine's saved fit (`cpbench fit`) if there is one."""
    settings = Table.grid(padding=(0, 2))
    settings.add_column(style="bold")
    settings.add_column()
    for key, value in profile.as_dict().items():
        if key in ("measure", "options"):
            value = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
        settings.add_row(key, str(value))
    parts = [Panel(settings, title=f"profile '{profile.name}' (hand-written)", expand=False)]
    parts.append(f"time model on this machine: {source}")
    if not fitted:
        return Group(*parts)
    fp = fitted.get("fingerprint", {})
    head = (f"fitted {fitted.get('date', '?')} by cpbench {fitted.get('cpbench_version', '?')} on {fp.get('cpu', '?')} "
            f"({fp.get('logical_cores', '?')} logical cores), batch {fitted.get('batch')}, {fitted.get('n')} configs, "
            f"statistic {fitted.get('statistic')}; best model: {fitted.get('best')}")
    table = Table(title=head, title_justify="left")
    for column in ("model", "coefficients (value [95 % interval])", "MAPE k-fold", "±10 %", "R² (fit)"):
        table.add_column(column, justify="right" if "MAPE" in column or "±" in column or "R²" in column else "left")
    for name, entry in fitted.get("models", {}).items():
        coefs = "\n".join(f"{k} = {v['value']:.3g} [{v['ci_low']:.3g}, {v['ci_high']:.3g}]" for k, v in entry.get("coefficients", {}).items())
        table.add_row(name, coefs, units.percent(entry["kfold"]["mape"]), units.percent(entry["kfold"]["within_10"]), f"{entry['fit_set']['r2']:.3f}")
    parts.append(table)
    if fitted.get("verdict"):
        parts.append(Panel(fitted["verdict"], title="verdict", expand=False))
    return Group(*parts)
