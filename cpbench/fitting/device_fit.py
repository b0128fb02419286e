"""`cpbench fit`: every time model fitted to one device's observations, judged on held-out configs,
the linearity verdict, paper 003's zoo against the family's line, saved as the fit record that
cpbench.fitting.fitted_time_model reads back."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from cpbench import __version__
from cpbench.fitting.time_models import (
    held_out_predictions,
    LINEAR, MODELS, ErrorMetrics, Evaluation, FittedModel, NestedTest, PowerLaw, error_metrics,
    SelectionHonest, evaluate, fit_model, nested_f_test, power_law, selection_honest, verdict,
)
from cpbench.family.config import Config
from cpbench.family.config import space_of
from cpbench.errors import UsageError, calibration_hint, check_choice
from cpbench.fitting.fitted_time_model import FITTED_FORMAT
from cpbench.family.closed_form import FEATURES, Layers, feature_matrix
from cpbench.fitting.metrics import kfold_indices
from cpbench.fitting.observations import Observations, runtime_summary

MIN_POINTS = 8
GROUPS = ("l", "k")  # leave-one-family-out: hold out every config with l = v (then k = v)


@dataclass
class ZooPoint:
    """A classic network against the family's line (paper 003's experiment)."""

    model: str
    macs: int
    measured_s: float
    family_line_s: float  # what the family's linear fit predicts from its MACs

    @property
    def ratio(self) -> float:
        return self.measured_s / self.family_line_s if self.family_line_s > 0 else float("inf")

    def as_dict(self) -> dict:
        return {"model": self.model, "macs": self.macs, "measured_s": self.measured_s,
                "family_line_s": self.family_line_s, "measured_over_line": self.ratio}


@dataclass
class DeviceFit:
    device: str
    batch: int
    statistic: str
    n: int
    evaluations: dict[str, Evaluation]
    best: str
    power_law: PowerLaw
    f_test: NestedTest | None
    verdict: str
    baseline: Config
    baseline_time_s: float  # measured if the baseline was timed, else the best model's prediction
    baseline_measured: bool
    in_channels: int
    folds: int
    fingerprint: dict
    runs: list[str]
    hardware_ids: list[str]
    zoo: list[ZooPoint] = field(default_factory=list)
    zoo_linear: ErrorMetrics | None = None  # a line through the zoo alone, judged on its own points
    warnings: list[str] = field(default_factory=list)
    selection: SelectionHonest | None = None  # the best model's error and interval coverage, from configs that did not choose it

    def normalised(self, name: str) -> dict[str, float] | None:
        """A linear model relative to the baseline (baseline = 1.0), as paper 000 reports eq. (1)."""
        if name not in LINEAR:
            return None
        model = self.evaluations[name].fitted
        c0 = float(FEATURES[model.spec.features[0]](Layers.of([self.baseline], self.in_channels))[0])
        return {"alpha1": float(model.coef[1]) * c0 / self.baseline_time_s, "alpha0": float(model.coef[0]) / self.baseline_time_s}

    def as_dict(self) -> dict:
        return {
            "device": self.device, "batch": self.batch, "statistic": self.statistic, "n": self.n, "best": self.best,
            "verdict": self.verdict, "power_law": self.power_law.as_dict(),
            "f_test": self.f_test.as_dict() if self.f_test else None,
            "baseline": self.baseline.as_csv(), "baseline_time_s": self.baseline_time_s,
            "baseline_measured": self.baseline_measured,
            "models": {k: {**e.as_dict(), "normalised": self.normalised(k)} for k, e in self.evaluations.items()},
            "zoo": [z.as_dict() for z in self.zoo], "zoo_linear": self.zoo_linear.as_dict() if self.zoo_linear else None,
            "runs": self.runs, "hardware_ids": self.hardware_ids, "warnings": self.warnings,
            "selection_honest": self.selection.as_dict() if self.selection else None,
        }


def one_per_config(points: list) -> list:
    """One point per config (the latest measured): a trained and an untrained copy of one config
    must not fall on both sides of a fold, which would judge a model on a config it has seen."""
    latest = {}
    for p in points:
        latest[p.config] = p
    return list(latest.values())


def fit_device(observations: Observations, models: list[str] | None = None, folds: int = 5, seed: int = 0) -> DeviceFit:
    points = one_per_config(observations.family)
    if len(points) < MIN_POINTS:
        raise UsageError(
            f"too few timed family configs on '{observations.device}': {len(points)}, need at least {MIN_POINTS}; "
            f"{calibration_hint(observations.device)}"
        )
    channels = {p.in_channels for p in points}
    if len(channels) > 1:
        raise UsageError("the timed family models mix input channels; fit one dataset at a time (--models)")
    in_channels = channels.pop()
    configs = [p.config for p in points]
    times = np.array([p.time_s for p in points])
    layers = Layers.of(configs, in_channels)
    macs = FEATURES["macs"](layers)
    if np.ptp(macs) == 0:
        raise UsageError("degenerate data: every timed config has the same MACs; time configs of different sizes")
    names = models or list(MODELS)
    for name in names:
        check_choice(name, MODELS, "time model")
    names = list(dict.fromkeys(["linear-rel", *names]))  # the verdict always needs the linear model
    groups = {g: np.array([getattr(c, g) for c in configs]) for g in GROUPS}
    evaluations, skipped = {}, []
    for name in names:
        spec = MODELS[name]
        try:
            evaluations[name] = evaluate(spec, feature_matrix(spec.features, layers), times, groups, folds, seed)
        except UsageError as exc:
            if models and name in models:  # asked for by name: say why it cannot be fitted
                raise
            skipped.append(f"{name} not fitted: {exc}")
    best = min(evaluations.values(), key=lambda e: e.kfold.mape)
    columns = {name: fn(layers) for name, fn in FEATURES.items()}
    f_test = None
    if "layerwise" in evaluations and len(points) > len(MODELS["layerwise"].features) + 2:
        f_test = nested_f_test(MODELS["linear-rel"], MODELS["layerwise"], columns, times)  # the law the MAPE judges
    law = power_law(macs, times)
    baseline = space_of(points[0].dataset or "fashionmnist", points[0].space).baseline
    measured_baseline = [p.time_s for p in points if p.config == baseline]
    if measured_baseline:
        baseline_time = measured_baseline[0]
    else:
        baseline_time = float(best.fitted.predict(feature_matrix(best.fitted.spec.features, Layers.of([baseline], in_channels)))[0])
    result = DeviceFit(
        observations.device, observations.batch, observations.statistic, len(points), evaluations, best.name, law,
        f_test, "", baseline, baseline_time, bool(measured_baseline), in_channels, folds, observations.fingerprint,
        observations.runs, observations.hardware_ids,
    )
    result.selection = selection_honest([MODELS[n] for n in evaluations], columns, times, folds, seed)
    result.verdict = verdict(observations.device, observations.batch, law, f_test, evaluations["linear-rel"], best,
                             result.selection.errors if result.selection else None)
    result.warnings.extend(skipped)
    if len(observations.hardware_ids) > 1:
        result.warnings.append(
            f"the runs fitted were measured on {len(observations.hardware_ids)} different machines; pass --run to fit one"
        )
    _add_zoo(result, observations, evaluations.get("linear") or fit_model(MODELS["linear"], macs.reshape(-1, 1), times))
    return result


def _add_zoo(result: DeviceFit, observations: Observations, linear: Evaluation | FittedModel) -> None:
    fitted = linear.fitted if isinstance(linear, Evaluation) else linear
    zoo = observations.zoo
    for p in zoo:
        line = float(fitted.predict(np.array([[float(p.macs)]]))[0])
        result.zoo.append(ZooPoint(p.model, int(p.macs), p.time_s, line))
    if len(zoo) >= 3:
        macs = np.array([float(p.macs) for p in zoo])
        times = np.array([p.time_s for p in zoo])
        if np.ptp(macs) > 0:
            a = np.column_stack([np.ones_like(macs), macs])
            coef = np.linalg.lstsq(a, times, rcond=None)[0]
            result.zoo_linear = error_metrics(a @ coef, times)


# ---- the fit's full record: what the report reads instead of fitting again -----------------------

FIT_FORMAT = 1


def fit_record(result: DeviceFit, observations: Observations) -> dict:
    """Everything a report shows of one fit: the [fitted] table, and per timed config its MACs, the
    measured time, each model's in-fit and out-of-fold (k-fold) prediction."""
    points = observations.family
    layers = Layers.of([p.config for p in points], result.in_channels)
    measured = np.array([p.time_s for p in points])
    rows = [{"config": p.config.as_csv(), "model": p.model, "macs": int(m), "measured_s": float(t)}
            for p, m, t in zip(points, FEATURES["macs"](layers), measured)]
    folds = kfold_indices(len(points), result.folds)
    for name, evaluation in result.evaluations.items():
        features = feature_matrix(evaluation.fitted.spec.features, layers)
        fitted = evaluation.fitted.predict(features)
        index, held = held_out_predictions(evaluation.fitted.spec, features, measured, folds)
        out_of_fold = np.full(len(points), np.nan)
        out_of_fold[index] = held
        for row, f, o in zip(rows, fitted, out_of_fold):
            row.setdefault("predicted", {})[name] = {"fit": float(f), "out_of_fold": None if np.isnan(o) else float(o)}
    return {"device": result.device, "hardware_id": result.fingerprint.get("hardware_id"),
            "machine": runtime_summary(result.fingerprint), "fitted": fitted_table(result),
            "points": rows, "zoo": [z.as_dict() for z in result.zoo],
            "zoo_linear": result.zoo_linear.as_dict() if result.zoo_linear else None}


def fit_record_path(models_dir, device: str, hardware_id: str):
    return models_dir / "fits" / f"{device}-{hardware_id}.json"


def save_fit_record(models_dir, result: DeviceFit, observations: Observations):
    from cpbench.workspace.formats import write_json

    record = fit_record(result, observations)
    return write_json(fit_record_path(models_dir, result.device, record["hardware_id"] or "unknown"), record, FIT_FORMAT)


def load_fit_record(models_dir, device: str, hardware_id: str) -> dict | None:
    """This machine's saved fit of `device`, or None when it was never fitted here."""
    from cpbench.workspace.formats import read_versioned

    path = fit_record_path(models_dir, device, hardware_id)
    if not path.is_file():
        return None
    return read_versioned(path, FIT_FORMAT, f"rerun 'cpbench fit --device {device}'")


# ---- the fitted table: what the time model is read back from (fitted_time_model) ------------------


def fitted_table(result: DeviceFit) -> dict:
    """The "fitted" table of the fit record: every model's coefficients and errors, the verdict."""
    models = {}
    for name, e in result.evaluations.items():
        entry = {
            "description": e.description, "features": list(e.fitted.spec.features), "weighting": e.fitted.spec.weighting,
            "coefficients": e.fitted.coefficients(), "fit_set": e.fit_set.as_dict(), "kfold": e.kfold.as_dict(),
            "leave_one_family_out": {
                k: {"n": v.n, "mape": v.mape, "max_ape": v.max_ape, "within_10": v.within_10} for k, v in e.held_out.items()
            },
        }
        normalised = result.normalised(name)
        if normalised:
            entry["normalised_to_baseline"] = normalised
        models[name] = entry
    table = {
        "format": FITTED_FORMAT, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cpbench_version": __version__,
        "batch": result.batch, "statistic": result.statistic, "n": result.n, "in_channels": result.in_channels,
        "best": result.best, "verdict": result.verdict, "baseline": result.baseline.as_csv(),
        "baseline_time_s": result.baseline_time_s, "baseline_measured": result.baseline_measured, "runs": result.runs,
        "fingerprint": runtime_summary(result.fingerprint),
        "power_law": result.power_law.as_dict(), "models": models,
    }
    if result.f_test:
        table["f_test"] = result.f_test.as_dict()
    if result.selection:
        table["selection_honest"] = {"mape": result.selection.errors.mape, "within_10": result.selection.errors.within_10,
                                     "max_ape": result.selection.errors.max_ape,
                                     "interval_coverage": result.selection.interval_coverage, "kind": "nested k-fold"}
    return table
