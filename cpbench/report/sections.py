"""`cpbench report`: what the workspace measured and fitted, as a folder a person opens in a browser
(index.html with its PNG plots beside it, and the same as report.md). A section whose data is
missing says which command produces it instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from cpbench import units
from cpbench.errors import UsageError, calibration_hint
from cpbench.report.writers import to_html, to_markdown

MAX_DROPS = (0.005, 0.01, 0.02, 0.05)


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[tuple[list[str], list[list[str]]]] = field(default_factory=list)  # (header, rows)
    images: list[str] = field(default_factory=list)  # file names relative to the report folder
    missing: list[str] = field(default_factory=list)  # what is missing and the command that makes it

    def as_dict(self) -> dict:
        return {"title": self.title, "paragraphs": self.paragraphs, "tables": [{"header": h, "rows": r} for h, r in self.tables],
                "images": self.images, "missing": self.missing}


@dataclass
class Report:
    folder: Path
    sections: list[Section]
    claims: list[list[str]]  # claim, source, evidence naming its machine, holds?

    def as_dict(self) -> dict:
        return {"folder": str(self.folder), "index": str(self.folder / "index.html"), "markdown": str(self.folder / "report.md"),
                "claims": self.claims, "sections": [s.as_dict() for s in self.sections]}


# ---- sections ---------------------------------------------------------------------------------


def time_sections(ws, folder: Path, claims: list[list[str]]) -> list[Section]:
    """Reads this machine's saved fit record of each profile (`cpbench fit`): no refit. Other
    machines' fits and the shipped calibrations are in the hardware section, named as theirs."""
    from cpbench.fitting.device_fit import load_fit_record
    from cpbench.fitting.metrics import error_metrics
    from cpbench.fitting.time_models import MODELS
    from cpbench.report import plots
    from cpbench.timing.environment import fingerprint
    from cpbench.timing.profiles import loadable_profiles

    here = fingerprint()["hardware_id"]
    sections = []
    for profile in loadable_profiles(ws.profiles_dir)[0]:
        name = profile.name
        section = Section(f"Time model: {name} ({profile.description or profile.runtime})")
        try:
            record = load_fit_record(ws.models_dir, name, here)
        except UsageError as exc:
            record = None
            section.missing.append(str(exc))
        fitted = (record or {}).get("fitted")
        if not isinstance(fitted, dict) or "models" not in fitted:
            section.missing.append(
                f"no fit of '{name}' was made on this machine ({here}); the hardware section lists other machines' "
                f"fits and calibrations, named as theirs: {calibration_hint(name)}"
            )
            sections.append(section)
            continue
        fp = fitted.get("fingerprint", {})
        section.paragraphs.append(
            f"Fitted {fitted.get('date')} on {fp.get('cpu', '?')} ({fp.get('logical_cores', '?')} logical cores; measured on this machine), "
            f"batch {fitted.get('batch')}, {fitted.get('n')} configs, statistic: {fitted.get('statistic')} of each model's runs."
        )
        section.paragraphs.append(f"**Verdict.** {fitted.get('verdict', '')}")
        rows = []
        for model, entry in fitted["models"].items():
            c = entry["coefficients"]
            alphas = (f"{c['alpha1']['value']:.3g} [{c['alpha1']['ci_low']:.3g}, {c['alpha1']['ci_high']:.3g}]",
                      f"{c['alpha0']['value']:.3g} [{c['alpha0']['ci_low']:.3g}, {c['alpha0']['ci_high']:.3g}]") if "alpha1" in c else ("-", "-")
            lofo = entry.get("leave_one_family_out", {})
            rows.append([model + (" (best)" if model == fitted.get("best") else ""), entry["weighting"], *alphas,
                         f"{entry['fit_set']['r2']:.3f}", units.percent(entry["kfold"]["mape"]), units.percent(entry["kfold"]["max_ape"]),
                         units.percent(entry["kfold"]["within_10"]), units.percent(lofo["l"]["mape"]) if "l" in lofo else "-",
                         units.percent(lofo["k"]["mape"]) if "k" in lofo else "-"])
        section.tables.append((["model", "weights", "α1 (s/MAC) [95 %]", "α0 (s) [95 %]", "R² fit", "MAPE held out",
                                "max error", "±10 %", "MAPE l out", "MAPE k out"], rows))
        # the per-machine claim rows come from hardware_section, one per (machine, profile) fit
        points = record["points"]
        macs = np.array([p["macs"] for p in points], float)
        measured = np.array([p["measured_s"] for p in points])
        models = list(points[0]["predicted"]) if points else []
        curves = {m: (macs, np.array([p["predicted"][m]["fit"] for p in points])) for m in models}
        residuals = {}
        for m in models:
            held = np.array([np.nan if p["predicted"][m]["out_of_fold"] is None else p["predicted"][m]["out_of_fold"] for p in points])
            residuals[m] = (held - measured) / measured
        zoo = {}
        if record.get("zoo"):
            zoo["classic networks (zoo)"] = (np.array([z["macs"] for z in record["zoo"]], float),
                                             np.array([z["measured_s"] for z in record["zoo"]]))
        lines = {f"{k} (line)": v for k, v in curves.items() if MODELS[k].features == ("macs",)}
        others = {f"{k} (predicted)": v for k, v in curves.items() if MODELS[k].features != ("macs",)}
        section.paragraphs.append(f"Plots from this machine's saved fit ({record['machine'].get('cpu', 'this CPU')}, "
                                  f"{len(points)} timed configs, runs {', '.join(record['fitted'].get('runs', []))}).")
        section.images.append(plots.time_against_macs(folder / f"time-vs-macs-{name}.png", macs, measured, lines,
                                                      f"{name}: time against MACs (log-log), this machine", zoo, others).name)
        section.images.append(plots.residuals_against_macs(folder / f"residuals-{name}.png", macs, residuals,
                                                           f"{name}: out-of-fold relative errors (5-fold), this machine").name)
        best = record["fitted"].get("best")
        if best in models:
            held = residuals[best]
            keep = ~np.isnan(held)
            if keep.any():
                predicted = measured[keep] * (1 + held[keep])
                metrics = error_metrics(predicted, measured[keep])
                section.images.append(plots.predicted_vs_measured(
                    folder / f"time-predicted-vs-measured-{name}.png", measured[keep], predicted,
                    f"{name}: {best} out of fold (MAPE {metrics.mape:.1%}, {metrics.within_10:.0%} within ±10 %)",
                    "time (s)", 0.10).name)
        zoo_points = record.get("zoo") or []
        if zoo_points:
            ratios = [z["measured_over_line"] for z in zoo_points]
            line = record.get("zoo_linear")
            claims.append(["run time does not grow linearly with FLOPs for the classic networks", "paper 003",
                           f"{name} on {record['machine'].get('cpu', 'this CPU')}: measured / family line {min(ratios):.2f}–{max(ratios):.2f}"
                           + (f"; a line through the {len(ratios)} networks alone: R² {line['r2']:.3f}, MAPE {line['mape']:.1%}" if line else ""),
                           "yes" if (line and line["mape"] > 0.05) or max(ratios) / min(ratios) > 1.2 else "no"])
            section.tables.append((["classic network", "MACs", "measured", "family line", "measured / line"],
                                   [[z["model"], f"{z['macs'] / 1e9:.2f} G", units.seconds(z["measured_s"]), units.seconds(z["family_line_s"]),
                                     f"{z['measured_over_line']:.2f}"] for z in sorted(zoo_points, key=lambda z: z["macs"])]))
        sections.append(section)
    return sections


def precision_section(ws, folder: Path, claims: list[list[str]]) -> tuple[Section, object | None]:
    """Reads the saved precision fit (its out-of-fold and held-out predictions included): no refit."""
    from cpbench.fitting.precision_predictor import PRECISION_FORMAT, REFIT_HINT, load_precision
    from cpbench.report import plots
    from cpbench.workspace.formats import read_versioned

    section = Section("Precision model P(T)")
    try:
        precision = load_precision(ws.models_dir / "precision", "fashionmnist", None)
    except UsageError as exc:
        section.missing.append(str(exc))
        return section, None
    payload = read_versioned(precision.source, PRECISION_FORMAT, REFIT_HINT)
    from cpbench.timing.environment import fingerprint

    trained_on = payload.get("trained_on", {})
    machine = ("this machine" if trained_on.get("hardware_id") == fingerprint()["hardware_id"] else "another machine")
    origin = (f"{'shipped reference fit' if precision.reference else 'this workspace' + chr(39) + 's fit'}, trained on {machine} "
              f"({trained_on.get('cpu', 'unknown CPU')}, {trained_on.get('hardware_id', '?')})")
    seeds = payload.get("seeds")
    spread = f"seed-to-seed sd {seeds['sd'] * 100:.2f} points over {seeds['configs']} configs" if seeds else "no repeated seeds"
    section.paragraphs.append(
        f"{payload['dataset']} / recipe {payload['recipe']}: {payload['n']} fitted configs ({origin}, {precision.source.name}); "
        f"baseline {payload['baseline']} measured {units.accuracy(payload.get('baseline_precision'))}; {spread}. "
        f"Integrated model used: **{payload['best']}**, the monotone one (never more precision for a smaller network); eq. (6) is judged beside it with cold-start refits."
    )
    rows = []
    for name, entry in payload["models"].items():
        held, kfold = entry.get("held_out"), entry.get("kfold")
        rows.append([name, str(entry["n"]), units.percent(entry["fit_set"]["mape"]), units.points(kfold["mae"]) if kfold else "-",
                     units.points(held["mae"]) if held else "-", units.percent(held["mape"]) if held else "-",
                     entry.get("held_out_kind", "-") if held else "-"])
    naive = payload.get("naive") or {}
    for label in ("constant", "additive"):
        if naive.get(label):
            rows.append([f"naive: {label}", "", "", "", units.points(naive[label]["mae"]), units.percent(naive[label]["mape"]), naive["kind"]])
    section.tables.append((["model", "configs", "MAPE fit", "MAE k-fold (points)", "MAE held out (points)", "MAPE held out", "held out by"], rows))
    best = payload["models"][payload["best"]]
    if best.get("held_out"):
        claims.append(["precision model within 3.1 % on 50 random configs", "paper 000",
                       f"{payload['best']}: held-out MAPE {units.percent(best['held_out']['mape'])} ({best['held_out_kind']}, "
                       f"{best['held_out']['n']} configs, {origin})",
                       "yes" if best["held_out"]["mape"] <= 0.031 else "no"])
    points = payload.get("points") or []
    judged = [(p["precision"], p["predicted"] if p["held_out"] else p["out_of_fold"]) for p in points
              if p["held_out"] or p["out_of_fold"] is not None]
    if len(judged) >= 5:
        measured, predicted = (np.array(v) for v in zip(*judged))
        section.images.append(plots.predicted_vs_measured(
            folder / "precision-predicted-vs-measured.png", measured, predicted,
            f"{payload['best']}: out-of-fold and held-out predictions (as saved by fit-precision)", "precision", 0.02, log=False).name)
    return section, precision


def recommendation_section(ws, folder: Path, precision, claims: list[list[str]]) -> Section:
    """Every fitted profile's pick for a few precision drops, through the same recommend as the CLI."""
    from cpbench.family.closed_form import FEATURES, Layers
    from cpbench.fitting.predictors import other_time_models
    from cpbench.optimize.recommend import recommend, resolve_target
    from cpbench.timing.environment import machine_summary
    from cpbench.optimize.search import Infeasible
    from cpbench.report import plots
    from cpbench.family.config import space_of

    section = Section("Recommendations: the fastest network per device likely to reach a target (paper 000 eq. 7)")
    if precision is None:
        section.missing.append("no precision model: run 'cpbench study run' then 'cpbench fit-precision --study FILE'")
        return section
    space = space_of(precision.dataset, precision.space)
    skipped: list[str] = []
    predictors = other_time_models(ws.profiles_dir, ws.models_dir, machine_summary()["hardware_id"], "", skipped)
    section.missing.extend(skipped)
    rows, curves = [], {}
    base_macs = float(FEATURES["macs"](Layers.of([space.baseline]))[0])
    for name, time_model in predictors.items():
        for drop in MAX_DROPS:
            goal, rule, _ = resolve_target(None, drop, precision)
            try:
                result = recommend(space, time_model, precision, goal, rule, 1)
            except Infeasible:
                rows.append([name, f"−{drop:g} ({goal:.4f})", "unreachable", "-", "-", "-", "-"])
                continue
            pick = result.pick
            macs_ratio = base_macs / pick.macs
            rows.append([name, f"−{drop:g} ({goal:.4f})", pick.config.as_csv(), f"{pick.precision:.4f}", f"{pick.probability:.2f}",
                         units.seconds(pick.seconds), f"{pick.speedup:.1f}× time (predicted), {macs_ratio:.1f}× MACs"])
            if drop == 0.02:
                claims.append(["2 points less precision for about 10× less complexity", "paper 000",
                               f"{name}: {macs_ratio:.0f}× fewer MACs, {pick.speedup:.1f}× less time (predicted by its "
                               f"{time_model.name} model from {time_model.cpu or 'an unknown CPU'})",
                               "yes" if macs_ratio >= 5 and pick.speedup >= 5 else "MACs yes, time no" if macs_ratio >= 5 else "no"])
            if drop == MAX_DROPS[-1]:
                front = result.pareto
                curves[name] = (np.array([p.precision for p in front]), np.array([p.seconds / result.baseline.seconds for p in front]))
    measured = [p for p in (precision.measured_points or []) if p[1] >= (precision.baseline_value - 0.02)]
    if measured:
        smallest = min(measured, key=lambda p: float(FEATURES["macs"](Layers.of([p[0]]))[0]))
        ratio = base_macs / float(FEATURES["macs"](Layers.of([smallest[0]]))[0])
        claims.append(["2 points less precision for about 10× less complexity (trained configs)", "paper 000",
                       f"{smallest[0].as_csv()} measured {smallest[1]:.4f} (baseline {precision.baseline_value:.4f}) with {ratio:.0f}× fewer MACs",
                       "yes" if ratio >= 5 else "no"])
    if not rows:
        section.missing.append("no device profile has a fitted time model: run 'cpbench fit --device cpu'")
        return section
    section.paragraphs.append(
        f"Targets relative to the baseline's precision {precision.baseline_value:.4f} (the model's, the frame of every candidate). "
        f"Each pick is the fastest config of the {space.name} space, inside the support of the trained configs, whose predicted "
        f"chance of reaching the target in one training is at least 0.9: the same rule as 'cpbench recommend'.")
    section.tables.append((["device", "precision drop (target)", "pick f,s,k,l", "predicted precision", "P(≥ target)",
                            "predicted time", "saving vs baseline"], rows))
    if curves:
        section.images.append(plots.least_time_for_target(folder / "least-time-for-target.png", curves,
                                                          "Pareto front: predicted time (× baseline) against predicted precision").name)
    return section


def hardware_section(ws, folder: Path, precision, claims: list[list[str]]) -> Section:
    """Every machine's fits side by side, as 'cpbench hardware' lists them, each naming its machine."""
    from cpbench.report import plots
    from cpbench.report.hardware import hardware_rows
    from cpbench.timing.environment import fingerprint

    section = Section("Across machines: every (machine, profile) fit")
    rows = hardware_rows(ws, fingerprint()["hardware_id"], precision, 0.93)
    if not rows:
        section.missing.append("no fitted profile: run 'cpbench fit --device cpu'")
        return section
    table, lines = [], {}
    for r in rows:
        where = ("this machine" if r.measured_here else "not measured here: a machine of this hardware id"
                 if r.hardware_id == fingerprint()["hardware_id"] else "not measured here: another machine")
        table.append([f"{r.cpu} ({r.hardware_id}, {where})", r.profile, r.source,
                      "-" if r.alpha1 is None else f"{r.alpha1:.3g}", "-" if r.alpha0 is None else units.seconds(r.alpha0),
                      "-" if r.affine_mape is None else units.percent(r.affine_mape),
                      "-" if r.best_mape is None else f"{r.best} {units.percent(r.best_mape)} ({r.best_error_kind})",
                      "-" if r.baseline_s is None else units.seconds(r.baseline_s),
                      "-" if r.pick is None else f"{r.pick} ({r.pick_speedup:.2f}× predicted)"])
        if r.alpha1 is not None:
            lines[f"{r.profile} on {r.cpu} ({r.hardware_id})"] = (r.alpha1, r.alpha0)
        if r.affine_mape is not None:
            claims.append(["run time proportional to complexity, error under 2.5 %", "paper 000",
                           f"{r.profile} on {r.cpu} ({r.hardware_id}, {where}; {r.source}, runs {', '.join(r.runs[:3]) or '-'}): "
                           f"affine held-out MAPE {units.percent(r.affine_mape)}",
                           "yes" if r.proportional else "no"])
    section.tables.append((["machine", "profile", "source", "α1 (s/MAC)", "α0", "affine MAPE", "best (error)", "baseline",
                            "pick for 0.93"], table))
    if lines:
        section.images.append(plots.machine_lines(folder / "machines.png", lines, "eq. (1) as fitted on each machine").name)
    return section


# ---- writing ------------------------------------------------------------------------------------


def build_report(ws, name: str | None = None) -> Report:
    folder = ws.reports_dir / (name or datetime.now(timezone.utc).strftime("report-%Y%m%d-%H%M%S"))
    folder.mkdir(parents=True, exist_ok=True)
    claims: list[list[str]] = []
    sections = time_sections(ws, folder, claims)
    precision_part, precision = precision_section(ws, folder, claims)
    sections.append(precision_part)
    sections.append(recommendation_section(ws, folder, precision, claims))
    sections.append(hardware_section(ws, folder, precision, claims))
    report = Report(folder, sections, claims)
    (folder / "report.md").write_text(to_markdown(report), encoding="utf-8")
    (folder / "index.html").write_text(to_html(report), encoding="utf-8")
    return report
