"""Judging the precision models: held-out and out-of-fold errors, the top region where targets
live, naive baselines and the seed spread beside them, and the report that ranks the models
(`fit_and_judge`, what `cpbench fit-precision` saves)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from cpbench.fitting.metrics import ErrorMetrics, error_metrics, kfold_indices, out_of_fold
from cpbench.family.config import Config
from cpbench.errors import UsageError
from cpbench.fitting.precision_models import INTEGRATED, MODELS, PARAMS, REFIT_STARTS, REGION, PrecisionFit, PrecisionModelSpec, fit_precision_model, normalise


def region_metrics(predicted: np.ndarray, measured: np.ndarray, floor: float = REGION) -> ErrorMetrics | None:
    keep = measured >= floor
    return error_metrics(predicted[keep], measured[keep]) if keep.sum() >= 2 else None


@dataclass
class PrecisionEvaluation:
    name: str
    description: str
    fit: PrecisionFit
    fit_set: ErrorMetrics
    held_out: ErrorMetrics | None  # None when too few configs to hold any out
    held_out_kind: str  # 'held-out set' (trained after the form was frozen) | 'k-fold'
    used: int  # configs the model was fitted on
    extrapolation: ErrorMetrics | None = None  # on the smallest f and s, left out (integrated models only)
    held_out_region: ErrorMetrics | None = None  # held out, where the measured precision is >= REGION
    kfold: ErrorMetrics | None = None  # cold-start k-fold over the fitted configs
    oof: np.ndarray | None = None  # the k-fold's out-of-fold prediction for each fitted config (nan: none)

    @property
    def judged(self) -> float:
        """What the integrated models are ranked by: the worse of the k-fold and extrapolation MAPE
        (never the final held-out set, which must not choose the model it judges)."""
        errors = [m.mape for m in (self.kfold, self.extrapolation) if m is not None] or [self.fit_set.mape]
        return max(errors)

    def as_dict(self) -> dict:
        return {
            "model": self.name, "description": self.description, "uses": list(self.fit.spec.uses), "n": self.used,
            "coefficients": self.fit.coefficients(), "on_bounds": self.fit.on_bounds(), "fit_set": self.fit_set.as_dict(),
            "held_out": self.held_out.as_dict() if self.held_out else None, "held_out_kind": self.held_out_kind,
            "held_out_region": self.held_out_region.as_dict() if self.held_out_region else None,
            "kfold": self.kfold.as_dict() if self.kfold else None,
            "extrapolation": self.extrapolation.as_dict() if self.extrapolation else None,
        }


def subset_for(spec: PrecisionModelSpec, configs: Sequence[Config], baseline: Config) -> np.ndarray:
    """Indices of the configs a 1-D or 2-D model is defined on: the others at their baseline values."""
    fixed = [p for p in PARAMS if p not in spec.uses]
    return np.array([i for i, c in enumerate(configs) if all(getattr(c, p) == getattr(baseline, p) for p in fixed)], dtype=int)


def _cold_refit(spec: PrecisionModelSpec, x: np.ndarray, p: np.ndarray, seed: int) -> Callable[[np.ndarray, np.ndarray], np.ndarray | None]:
    def predict(train: np.ndarray, test: np.ndarray) -> np.ndarray | None:
        if len(train) < len(spec.parameters) + 1:
            return None
        return fit_precision_model(spec, x[train], p[train], seed, starts=REFIT_STARTS).predict(x[test])
    return predict


def evaluate_precision(spec: PrecisionModelSpec, configs: Sequence[Config], precision: np.ndarray, baseline: Config,
                       holdout_mask: np.ndarray | None = None, folds: int = 5, seed: int = 0) -> PrecisionEvaluation:
    """Fit on the model's configs (the held-out set excluded); judge by a cold-start k-fold over
    them and, for integrated models, on the held-out set when it has 5 or more configs."""
    holdout_mask = np.zeros(len(configs), dtype=bool) if holdout_mask is None else np.asarray(holdout_mask, bool)
    index = subset_for(spec, configs, baseline) if len(spec.uses) < 4 else np.arange(len(configs))
    index = index[~holdout_mask[index]]
    x_all = normalise(configs, baseline)
    x, p = x_all[index], precision[index]
    fit = fit_precision_model(spec, x, p, seed)
    kfold, oof = None, np.full(len(p), np.nan)
    if len(p) >= len(spec.parameters) + 3:
        where, predicted = out_of_fold(len(p), kfold_indices(len(p), folds, seed), _cold_refit(spec, x, p, seed))
        if len(where):
            oof[where] = predicted
            kfold = error_metrics(predicted, p[where])
    held, region, kind = kfold, None, "k-fold"
    if len(spec.uses) == 4 and holdout_mask.sum() >= 5:
        predicted = fit.predict(x_all[holdout_mask])
        held = error_metrics(predicted, precision[holdout_mask])
        region = region_metrics(predicted, precision[holdout_mask])
        kind = "held-out set"
    extrapolation = extrapolation_error(spec, x, p, seed) if len(spec.uses) == 4 else None
    return PrecisionEvaluation(spec.name, spec.description, fit, error_metrics(fit.predict(x), p), held, kind, len(p),
                               extrapolation, region, kfold, oof)


def extrapolation_error(spec: PrecisionModelSpec, x: np.ndarray, p: np.ndarray, seed: int = 0) -> ErrorMetrics | None:
    """Errors on the smallest networks when they are left out of the fit: for f and then s, the
    configs below the parameter's 30 % quantile are predicted from a cold fit on the rest. The
    optimizer looks for small networks, so this is where a precision model must not promise too much."""
    predictions, truth = [], []
    for column in (PARAMS.index("f"), PARAMS.index("s")):
        cut = np.quantile(x[:, column], 0.3)
        test = np.flatnonzero(x[:, column] < cut)
        where, predicted = out_of_fold(len(p), [test], _cold_refit(spec, x, p, seed))
        if len(where):
            predictions.append(predicted)
            truth.append(p[where])
    if not predictions:
        return None
    return error_metrics(np.concatenate(predictions), np.concatenate(truth))


# --------------------------------------------------------------------------------------------
# Naive baselines: what a precision model must beat to be worth its parameters


def constant_baseline(p_train: np.ndarray, n_test: int) -> np.ndarray:
    return np.full(n_test, float(np.mean(p_train)))


def additive_baseline(configs: Sequence[Config], precision: np.ndarray, baseline: Config, test: Sequence[Config]) -> np.ndarray | None:
    """P(T) = P0 + sum_j [P_j(x_j) - P0], P_j the 1-D sweep of parameter j interpolated linearly:
    what the paper's eq. (2) curves give when their effects are simply added."""
    measured = {c: float(v) for c, v in zip(configs, precision)}
    if baseline not in measured:
        return None
    p0 = measured[baseline]
    curves = {}
    for name in PARAMS:
        points = sorted((getattr(c, name), v) for c, v in measured.items()
                        if all(getattr(c, o) == getattr(baseline, o) for o in PARAMS if o != name))
        if len(points) < 2:
            return None
        curves[name] = (np.array([v for v, _ in points], float), np.array([q for _, q in points]))
    out = np.full(len(test), p0)
    for i, c in enumerate(test):
        for name, (xs, ps) in curves.items():
            out[i] += float(np.interp(getattr(c, name), xs, ps)) - p0
    return out


@dataclass
class NaiveBaselines:
    """Errors of the naive predictors on the same held-out configs as the models."""

    constant: ErrorMetrics | None
    additive: ErrorMetrics | None
    kind: str

    def as_dict(self) -> dict:
        return {"constant": self.constant.as_dict() if self.constant else None,
                "additive": self.additive.as_dict() if self.additive else None, "kind": self.kind}


def naive_baselines(configs: Sequence[Config], precision: np.ndarray, baseline: Config, holdout_mask: np.ndarray,
                    folds: int = 5, seed: int = 0) -> NaiveBaselines:
    holdout_mask = np.asarray(holdout_mask, bool)
    train = np.flatnonzero(~holdout_mask)
    if holdout_mask.sum() >= 5:
        test = np.flatnonzero(holdout_mask)
        constant = error_metrics(constant_baseline(precision[train], len(test)), precision[test])
        add = additive_baseline([configs[i] for i in train], precision[train], baseline, [configs[i] for i in test])
        return NaiveBaselines(constant, None if add is None else error_metrics(add, precision[test]), "held-out set")
    where, predicted = out_of_fold(len(train), kfold_indices(len(train), folds, seed),
                                   lambda tr, te: constant_baseline(precision[train][tr], len(te)))
    return NaiveBaselines(error_metrics(predicted, precision[train][where]) if len(where) else None, None, "k-fold")


# --------------------------------------------------------------------------------------------
# Seed-to-seed spread


@dataclass
class SeedSpread:
    """How much one config's accuracy moves between training seeds: the floor of any precision error."""

    configs: int  # configs trained with 2 or more seeds
    runs: int
    sd: float  # pooled standard deviation over those configs (accuracy points as a fraction)
    per_config: dict[str, dict]  # config -> {"n", "mean", "sd"}

    def as_dict(self) -> dict:
        return asdict(self)


def seed_spread(groups: dict[Config, list[float]]) -> SeedSpread | None:
    repeated = {c: np.array(v, float) for c, v in groups.items() if len(v) >= 2}
    if not repeated:
        return None
    dof = sum(len(v) - 1 for v in repeated.values())
    pooled = float(np.sqrt(sum(((v - v.mean()) ** 2).sum() for v in repeated.values()) / dof))
    per = {c.as_csv(): {"n": len(v), "mean": float(v.mean()), "sd": float(v.std(ddof=1))} for c, v in repeated.items()}
    return SeedSpread(len(repeated), sum(len(v) for v in repeated.values()), pooled, per)


@dataclass
class PrecisionFitReport:
    """Every precision model that the trained configs support, and the integrated one to optimise with."""

    dataset: str
    recipe: str
    baseline: Config
    baseline_precision: float | None  # measured (mean over seeds), when the baseline was trained
    evaluations: dict[str, PrecisionEvaluation]
    best: str
    ranges: dict[str, tuple[int, int]]  # per parameter, the trained range
    n: int
    configs: list[Config] = field(default_factory=list)  # one per trained config (seeds averaged)
    precision: np.ndarray | None = None  # measured, aligned with configs
    holdout: np.ndarray | None = None  # True: in the held-out set, not fitted
    seeds: SeedSpread | None = None
    naive: NaiveBaselines | None = None
    skipped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        best = self.evaluations[self.best]
        fitted = np.flatnonzero(~self.holdout) if self.holdout is not None else np.arange(len(self.configs))
        oof = np.full(len(self.configs), np.nan)
        if best.oof is not None:
            oof[fitted] = best.oof
        points = [{"config": c.as_csv(), "precision": float(p), "held_out": bool(h),
                   "predicted": float(best.fit.predict(normalise([c], self.baseline))[0]),
                   "out_of_fold": None if np.isnan(o) else float(o)}
                  for c, p, h, o in zip(self.configs, self.precision, self.holdout, oof)] if self.configs else []
        return {
            "dataset": self.dataset, "recipe": self.recipe, "baseline": self.baseline.as_csv(),
            "baseline_precision": self.baseline_precision, "best": self.best, "n": self.n,
            "ranges": {k: list(v) for k, v in self.ranges.items()},
            "models": {k: v.as_dict() for k, v in self.evaluations.items()}, "skipped": self.skipped,
            "seeds": self.seeds.as_dict() if self.seeds else None, "naive": self.naive.as_dict() if self.naive else None,
            "points": points,
        }


def fit_and_judge(configs: Sequence[Config], precision: np.ndarray, baseline: Config, dataset: str, recipe: str,
          holdout_mask: np.ndarray | None = None, seed: int = 0, seeds: SeedSpread | None = None) -> PrecisionFitReport:
    """Fit every model the configs support; the integrated model with the lowest k-fold /
    extrapolation error is the one recommend uses (the held-out set only judges it)."""
    if len(configs) < 3:
        raise UsageError(f"too few trained configs for {dataset}/{recipe}: {len(configs)}; run 'cpbench export --preset quick'")
    holdout_mask = np.zeros(len(configs), dtype=bool) if holdout_mask is None else np.asarray(holdout_mask, bool)
    fitted = [c for c, h in zip(configs, holdout_mask) if not h]
    evaluations, skipped = {}, []
    for name, spec in MODELS.items():
        used = subset_for(spec, fitted, baseline) if len(spec.uses) < 4 else np.arange(len(fitted))
        distinct = {tuple(getattr(fitted[i], p) for p in spec.uses) for i in used}
        if len(distinct) < len(spec.parameters) + 1:
            skipped.append(f"{name}: {len(distinct)} distinct configs, needs {len(spec.parameters) + 1}")
            continue
        try:
            evaluations[name] = evaluate_precision(spec, configs, precision, baseline, holdout_mask, seed=seed)
        except UsageError as exc:
            skipped.append(f"{name}: {exc}")
    integrated = [evaluations[n] for n in INTEGRATED if n in evaluations]
    if not integrated:
        raise UsageError(
            f"too few trained configs for {dataset}/{recipe} to fit an integrated precision model "
            f"({len(fitted)}, need {len(MODELS['saturating'].parameters) + 1}); run 'cpbench export --preset quick'"
        )
    # recommend may only use a model that never favours a smaller network; eq. (6) is fitted and judged beside it
    eligible = [e for e in integrated if e.fit.spec.monotone] or integrated
    best = min(eligible, key=lambda e: e.judged).name
    measured = [p for c, p in zip(configs, precision) if c == baseline]
    ranges = {p: (min(getattr(c, p) for c in fitted), max(getattr(c, p) for c in fitted)) for p in PARAMS}
    return PrecisionFitReport(dataset, recipe, baseline, float(measured[0]) if measured else None, evaluations, best,
                          ranges, len(fitted), list(configs), np.asarray(precision, float), holdout_mask, seeds,
                          naive_baselines(configs, precision, baseline, holdout_mask, seed=seed), skipped)
