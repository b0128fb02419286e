"""`cpbench report`: what the workspace measured and fitted, as a folder a person opens in a browser
(index.html with its PNG plots beside it, and the same as report.md). A section whose data is
missing says which command produces it instead of failing.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from cpbench import __version__
from cpbench.errors import UsageError

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
    claims: list[list[str]]  # claim, source, measured here, holds?

    def as_dict(self) -> dict:
        return {"folder": str(self.folder), "index": str(self.folder / "index.html"), "markdown": str(self.folder / "report.md"),
                "claims": self.claims, "sections": [s.as_dict() for s in self.sections]}


def _pct(value: float) -> str:
    return f"{value:.1%}"


def _us(value: float) -> str:
    return f"{value * 1e6:.1f} µs" if value < 1e-3 else f"{value * 1e3:.2f} ms"


# ---- sections ---------------------------------------------------------------------------------


def time_sections(ws, folder: Path, claims: list[list[str]]) -> list[Section]:
    from cpbench import plots
    from cpbench.complexity import MODELS, error_metrics, held_out_predictions, kfold_indices
    from cpbench.devicefit import fit_device
    from cpbench.features import FEATURES, Layers, feature_matrix
    from cpbench.observations import load_observations
    from cpbench.profiles import available_profiles, load_profile

    sections = []
    for name in available_profiles(ws.profiles_dir):
        profile = load_profile(name, ws.profiles_dir)
        section = Section(f"Time model: {name} ({profile.description or profile.runtime})")
        fitted = profile.fitted
        if not fitted or "models" not in fitted:
            section.missing.append(
                f"no fitted time model for '{name}': run 'cpbench export --preset timing --untrained', "
                f"'cpbench time --device {name}' and 'cpbench fit --device {name}'"
            )
            sections.append(section)
            continue
        fp = fitted.get("fingerprint", {})
        section.paragraphs.append(
            f"Fitted {fitted.get('date')} on {fp.get('cpu', '?')} ({fp.get('logical_cores', '?')} logical cores), "
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
                         f"{entry['fit_set']['r2']:.3f}", _pct(entry["kfold"]["mape"]), _pct(entry["kfold"]["max_ape"]),
                         _pct(entry["kfold"]["within_10"]), _pct(lofo["l"]["mape"]) if "l" in lofo else "-",
                         _pct(lofo["k"]["mape"]) if "k" in lofo else "-"])
        section.tables.append((["model", "weights", "α1 (s/MAC) [95 %]", "α0 (s) [95 %]", "R² fit", "MAPE held out",
                                "max error", "±10 %", "MAPE l out", "MAPE k out"], rows))
        linear = fitted["models"].get("linear-rel", {})
        if linear:
            law = fitted.get("power_law", {})
            claims.append(["run time proportional to complexity, error under 2.5 %", "paper 000",
                           f"{name}: linear model held-out MAPE {_pct(linear['kfold']['mape'])}, t ∝ MACs^{law.get('exponent', float('nan')):.2f}",
                           "no" if linear["kfold"]["mape"] > 0.025 else "yes"])
        observations = None
        if ws.store_path.exists():
            with ws.open_store() as store:
                try:
                    observations = load_observations(store, name, fitted.get("batch"), fitted.get("statistic", "min"))
                except UsageError:
                    observations = None
        if observations is None or len(observations.family) < 8:
            section.missing.append(f"no timings of '{name}' in this workspace to plot: run 'cpbench time --device {name}'")
            sections.append(section)
            continue
        result = fit_device(observations, ["linear-rel", fitted.get("best", "layerwise")] if fitted.get("best") in MODELS else ["linear-rel"])
        points = observations.family
        layers = Layers.of([p.config for p in points], result.in_channels)
        measured = np.array([p.time_s for p in points])
        macs = FEATURES["macs"](layers)
        folds = kfold_indices(len(points), 5)
        curves, residuals = {}, {}
        best_prediction = None
        for model in result.evaluations:
            features = feature_matrix(MODELS[model].features, layers)
            curves[model] = (macs, result.evaluations[model].fitted.predict(features))
            index, predicted = held_out_predictions(MODELS[model], features, measured, folds)
            rel = np.full(len(points), np.nan)
            rel[index] = (predicted - measured[index]) / measured[index]
            residuals[model] = rel
            if model == result.best:
                best_prediction = (measured[index], predicted, error_metrics(predicted, measured[index]))
        zoo = {}
        for p in observations.zoo:
            zoo.setdefault("classic networks (zoo)", ([], []))
            zoo["classic networks (zoo)"][0].append(p.macs)
            zoo["classic networks (zoo)"][1].append(p.time_s)
        zoo = {k: (np.array(v[0], float), np.array(v[1])) for k, v in zoo.items()}
        lines = {f"{k} (line)": v for k, v in curves.items() if MODELS[k].features == ("macs",)}
        if zoo:  # the family's line continued out to the classic networks
            reach = np.geomspace(macs.min(), max(macs.max(), max(v[0].max() for v in zoo.values())), 50)
            linear = result.evaluations["linear-rel"].fitted
            lines = {"linear-rel (line)": (reach, linear.predict(reach.reshape(-1, 1)))}
        others = {f"{k} (predicted)": v for k, v in curves.items() if MODELS[k].features != ("macs",)}
        section.images.append(plots.time_against_macs(folder / f"time-vs-macs-{name}.png", macs, measured, lines,
                                                      f"{name}: time against MACs (log-log)", zoo, others).name)
        section.images.append(plots.residuals_against_macs(folder / f"residuals-{name}.png", macs, residuals,
                                                           f"{name}: held-out relative errors (5-fold)").name)
        if best_prediction is not None:
            m, pr, metrics = best_prediction
            section.images.append(plots.predicted_vs_measured(
                folder / f"time-predicted-vs-measured-{name}.png", m, pr,
                f"{name}: {result.best} on held-out configs (MAPE {metrics.mape:.1%}, {metrics.within_10:.0%} within ±10 %)",
                "time (s)", 0.10).name)
        if result.zoo:
            ratios = [z.ratio for z in result.zoo]
            line = result.zoo_linear
            claims.append(["run time does not grow linearly with FLOPs for the classic networks", "paper 003",
                           f"{name}: measured / family line {min(ratios):.2f}–{max(ratios):.2f}"
                           + (f"; a line through the {len(ratios)} networks alone: R² {line.r2:.3f}, MAPE {line.mape:.1%}" if line else ""),
                           "yes" if (line and line.mape > 0.05) or max(ratios) / min(ratios) > 1.2 else "no"])
            section.tables.append((["classic network", "MACs", "measured", "family line", "measured / line"],
                                   [[z.model, f"{z.macs / 1e9:.2f} G", _us(z.measured_s), _us(z.family_line_s), f"{z.ratio:.2f}"]
                                    for z in sorted(result.zoo, key=lambda z: z.macs)]))
        sections.append(section)
    return sections


def precision_section(ws, folder: Path, claims: list[list[str]]) -> tuple[Section, object | None]:
    from cpbench import plots
    from cpbench.config import Config
    from cpbench.precision import MODELS, fit_precision_model, normalise
    from cpbench.precision_files import load_precision

    section = Section("Precision model P(T)")
    try:
        precision = load_precision(ws.models_dir / "precision", "fashionmnist", None)
    except UsageError as exc:
        section.missing.append(str(exc))
        return section, None
    payload = precision.payload
    origin = "shipped reference fit" if precision.reference else "this workspace's fit"
    section.paragraphs.append(
        f"{payload['dataset']} / recipe {payload['recipe']}: {payload['n']} trained configs ({origin}, {precision.source.name}); "
        f"baseline {payload['baseline']} measured {payload.get('baseline_precision')}. Integrated model used: **{payload['best']}**."
    )
    rows = []
    for name, entry in payload["models"].items():
        held = entry.get("held_out")
        rows.append([name, str(entry["n"]), f"{entry['fit_set']['r2']:.3f}", _pct(entry["fit_set"]["mape"]),
                     _pct(held["mape"]) if held else "-", entry.get("held_out_kind", "-") if held else "-"])
    section.tables.append((["model", "configs", "R² fit", "MAPE fit", "MAPE held out", "held out by"], rows))
    best = payload["models"][payload["best"]]
    if best.get("held_out"):
        claims.append(["precision model within 3.1 % on 50 random configs", "paper 000",
                       f"{payload['best']}: held-out MAPE {_pct(best['held_out']['mape'])} ({best['held_out_kind']})",
                       "yes" if best["held_out"]["mape"] <= 0.031 else "no"])
    eq6 = payload["models"].get("eq6", {}).get("held_out")
    if eq6 and payload["best"] != "eq6":
        claims.append(["eq. (6) as the precision model", "paper 000", f"eq6 held-out MAPE {_pct(eq6['mape'])}", "see table"])
    if not ws.store_path.exists():
        section.missing.append("no trained models in this workspace to plot against: run 'cpbench export --preset quick'")
        return section, precision
    with ws.open_store() as store:
        trained = [r for r in store.models("family/*") if r.accuracy is not None and r.dataset == payload["dataset"]
                   and r.recipe_name == payload["recipe"]]
    if len(trained) < 12:
        section.missing.append(f"fewer than 12 trained {payload['recipe']} models here to plot: run 'cpbench export --preset quick'")
        return section, precision
    configs = [Config.parse(r.config_id) for r in trained]
    x = normalise(configs, precision.baseline)
    p = np.array([r.accuracy for r in trained])
    spec = MODELS[payload["best"]]
    rng = np.random.default_rng(0)
    order = rng.permutation(len(p))
    predicted = np.empty(len(p))
    for part in np.array_split(order, 5):
        train = np.setdiff1d(order, part)
        predicted[part] = fit_precision_model(spec, x[train], p[train], initial=precision.theta, starts=3).predict(x[part])
    mape = float(np.mean(np.abs(predicted - p) / p))
    section.images.append(plots.predicted_vs_measured(
        folder / "precision-predicted-vs-measured.png", p, predicted,
        f"{payload['best']} on held-out configs (5-fold, MAPE {mape:.2%})", "precision", 0.02, log=False).name)
    return section, precision


def recommendation_section(ws, folder: Path, precision, claims: list[list[str]]) -> Section:
    from cpbench import plots
    from cpbench.config import SPACES
    from cpbench.devicefit import predictor_from_profile
    from cpbench.features import FEATURES
    from cpbench.optimize import Infeasible, best_under, evaluate_space, integer_space
    from cpbench.profiles import available_profiles, load_profile

    section = Section("Recommendations: the cheapest network per device (paper 000 eq. 7)")
    if precision is None:
        section.missing.append("no precision model: run 'cpbench export --preset quick' then 'cpbench fit-precision'")
        return section
    space = SPACES.get(precision.payload["dataset"], SPACES["fashionmnist"])
    reference = precision.baseline_precision or float(precision.predict(np.ones((1, 4)))[0])
    rows, curves = [], {}
    candidates = integer_space(space)
    macs = FEATURES["macs"](candidates.layers())
    base_index = int(np.flatnonzero((candidates.f == space.baseline.f) & (candidates.s == space.baseline.s)
                                    & (candidates.k == space.baseline.k) & (candidates.l == space.baseline.l))[0])
    for name in available_profiles(ws.profiles_dir):
        profile = load_profile(name, ws.profiles_dir)
        try:
            time_model = predictor_from_profile(profile)
        except UsageError:
            continue
        evaluated = evaluate_space(candidates, precision.predict, time_model.predict, space.baseline, time_model.in_channels)
        base_s = float(evaluated.seconds[base_index])
        targets, relative = [], []
        for drop in MAX_DROPS:
            target = reference - drop
            try:
                i = int(best_under(evaluated, target, 1)[0])
            except Infeasible:
                rows.append([name, f"−{drop:g} ({target:.4f})", "unreachable", "-", "-", "-"])
                continue
            rows.append([name, f"−{drop:g} ({target:.4f})", candidates.config(i).as_csv(), f"{evaluated.precision[i]:.4f}",
                         _us(float(evaluated.seconds[i])), f"{base_s / evaluated.seconds[i]:.1f}× time, {macs[base_index] / macs[i]:.1f}× MACs"])
            if drop == 0.02:
                claims.append(["2 points less precision for about 10× less complexity", "paper 000",
                               f"{name}: predicted {macs[base_index] / macs[i]:.0f}× fewer MACs, {base_s / evaluated.seconds[i]:.1f}× less time",
                               "yes" if base_s / evaluated.seconds[i] >= 5 else "partly: MACs yes, time no" if macs[base_index] / macs[i] >= 5 else "no"])
        grid = np.linspace(float(np.quantile(evaluated.precision, 0.5)), float(evaluated.precision.max()), 15)
        for level, least in zip(grid, evaluated.lower_envelope(grid)):
            targets.append(level)
            relative.append(least / base_s)
        curves[name] = (np.array(targets), np.array(relative))
        front = evaluated.pareto()
        pick_i = None
        try:
            pick_i = int(best_under(evaluated, reference - 0.01, 1)[0])
        except Infeasible:
            pass
        section.images.append(plots.time_precision_plane(
            folder / f"plane-{name}.png", evaluated.seconds, evaluated.precision, evaluated.seconds[front], evaluated.precision[front],
            f"{name}: every config, predicted (pick for −0.01 starred)",
            None if pick_i is None else (float(evaluated.seconds[pick_i]), float(evaluated.precision[pick_i])),
            (base_s, float(evaluated.precision[base_index]))).name)
    if not rows:
        section.missing.append("no device profile has a fitted time model: run 'cpbench fit --device cpu'")
        return section
    section.paragraphs.append(f"Targets relative to the baseline's precision {reference:.4f}; every integer config of the "
                              f"{space.name} space ({len(candidates):,}) evaluated exactly.")
    section.tables.append((["device", "precision drop (target)", "pick f,s,k,l", "predicted precision", "predicted time", "saving vs baseline"], rows))
    section.images.append(plots.least_time_for_target(folder / "least-time-for-target.png", curves,
                                                      "Least predicted time against target precision").name)
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
    report = Report(folder, sections, claims)
    (folder / "report.md").write_text(to_markdown(report))
    (folder / "index.html").write_text(to_html(report))
    return report


CLAIMS_HEADER = ["claim", "source", "measured here", "holds here?"]


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def to_markdown(report: Report) -> str:
    parts = [f"# cpbench report\n\ncpbench {__version__}, {datetime.now(timezone.utc).isoformat(timespec='seconds')}\n",
             "## The papers' claims against these measurements\n", _md_table(CLAIMS_HEADER, report.claims) if report.claims else "_no claims could be checked yet_"]
    for s in report.sections:
        parts.append(f"\n## {s.title}\n")
        parts += [p + "\n" for p in s.paragraphs]
        parts += [_md_table(h, r) + "\n" for h, r in s.tables]
        parts += [f"![{img}]({img})\n" for img in s.images]
        parts += [f"> missing: {m}\n" for m in s.missing]
    return "\n".join(parts)


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html_text(text: str) -> str:
    escaped = html.escape(text)
    while "**" in escaped:
        escaped = escaped.replace("**", "<strong>", 1).replace("**", "</strong>", 1)
    return escaped


STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}th{background:#f0f0f0}img{max-width:100%;margin:0.5em 0;border:1px solid #eee}
.missing{background:#fff4e0;border-left:4px solid #e0a030;padding:0.5em 1em}"""


def to_html(report: Report) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>cpbench report</title><style>{STYLE}</style></head><body>",
             f"<h1>cpbench report</h1><p>cpbench {__version__}, {datetime.now(timezone.utc).isoformat(timespec='seconds')}</p>",
             "<h2>The papers' claims against these measurements</h2>",
             _html_table(CLAIMS_HEADER, report.claims) if report.claims else "<p>No claims could be checked yet.</p>"]
    for s in report.sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2>")
        parts += [f"<p>{_html_text(p)}</p>" for p in s.paragraphs]
        parts += [_html_table(h, r) for h, r in s.tables]
        parts += [f"<img src='{html.escape(img)}' alt='{html.escape(img)}'>" for img in s.images]
        parts += [f"<p class='missing'>missing: {html.escape(m)}</p>" for m in s.missing]
    parts.append("</body></html>")
    return "\n".join(parts)
