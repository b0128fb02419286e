"""Precision models P(T) of paper 000 (eqs. 2-6) and a monotone alternative, fitted to trained configs.

Parameters are normalised to the baseline (x = gamma / gamma_0, baseline = 1), as the paper's
optimisation does. Every model is non-linear, so it is fitted by bounded least squares from several
starting points, keeping the best. The paper's printed coefficients are not self-consistent
(../shared/DESIGN.md) and are never used here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from cpbench.complexity import ErrorMetrics, error_metrics, kfold_indices
from cpbench.config import Config
from cpbench.errors import UsageError

PARAMS = ("f", "s", "k", "l")
PAPER_000_ERROR = 0.031  # paper 000: eq. (6) predicts 50 random configs within 3.1 %
STARTS = 16
REFIT_STARTS = 3


def normalise(configs: Sequence[Config], baseline: Config) -> np.ndarray:
    """Rows of x = (f/f0, s/s0, k/k0, l/l0)."""
    raw = np.array([c.as_tuple() for c in configs], dtype=np.float64).reshape(-1, 4)
    return raw / np.array(baseline.as_tuple(), dtype=np.float64)


@dataclass(frozen=True)
class PrecisionModelSpec:
    """P = formula(theta, x) over the normalised parameters named in `uses` (columns of x)."""

    name: str
    uses: tuple[str, ...]
    parameters: tuple[str, ...]
    formula: Callable[[np.ndarray, np.ndarray], np.ndarray]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    description: str

    def columns(self, x: np.ndarray) -> np.ndarray:
        return x[:, [PARAMS.index(p) for p in self.uses]]

    def __call__(self, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
        return self.formula(np.asarray(theta, dtype=np.float64), self.columns(x))


def _exp_plus_linear(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Paper 000's family of forms: a * exp(sum_j b_j / x_j) + sum_j c_j x_j + d (eqs. 2-6)."""
    m = x.shape[1]
    a, b, c, d = theta[0], theta[1:1 + m], theta[1 + m:1 + 2 * m], theta[1 + 2 * m]
    exponent = np.clip((1.0 / x) @ b, -50, 50)
    return a * np.exp(exponent) + x @ c + d


BASELINE_LAYERS = 3  # l0 of both spaces; the classifier-width term below is written for it


def classifier_width(x: np.ndarray) -> np.ndarray:
    """f (s / 2^l)^2, the classifier's input width, relative to the baseline's (continuous in s)."""
    return x[:, 0] * x[:, 1] ** 2 * 4.0 ** (BASELINE_LAYERS * (1.0 - x[:, 3]))


def _saturating(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    """P = p_max - sum_j a_j / (1 + b_j x_j) - c / (1 + d w), a, b, c, d >= 0, w the classifier
    width: rises with f, s and k, levels off for large networks and stays bounded (at least
    p_max - sum a - c) for tiny ones, so it can neither collapse nor soar far from its data as
    eq. (6) does. The width term is the bottleneck that sinks the tiniest networks (f = 2 with a
    1x1 final map keeps 2 features for 10 classes), which no sum over single parameters can show."""
    m = 4
    p_max, a, b, c, d = theta[0], theta[1:1 + m], theta[1 + m:1 + 2 * m], theta[9], theta[10]
    return p_max - (1.0 / (1.0 + x * b)) @ a - c / (1.0 + d * classifier_width(x))


def _exp_spec(name: str, uses: tuple[str, ...], description: str) -> PrecisionModelSpec:
    m = len(uses)
    parameters = ("a",) + tuple(f"b_{p}" for p in uses) + tuple(f"c_{p}" for p in uses) + ("d",)
    return PrecisionModelSpec(name, uses, parameters, _exp_plus_linear, (-10.0,) + (-10.0,) * m + (-2.0,) * m + (-10.0,),
                              (10.0,) + (10.0,) * m + (2.0,) * m + (10.0,), description)


MODELS: dict[str, PrecisionModelSpec] = {
    s.name: s
    for s in (
        *(_exp_spec(f"eq2-{p}", (p,), f"paper 000 eq. (2): P({p}) on the 1-D sweep of {p}") for p in PARAMS),
        _exp_spec("eq3", ("f", "s"), "paper 000 eq. (3): P(f, s) on the (f, s) grid"),
        _exp_spec("eq4", ("f", "k"), "paper 000 eq. (4) read as P(f, k) on the (f, k) grid"),
        _exp_spec("eq5", ("f", "l"), "paper 000 eq. (5) read as P(f, l) on the (f, l) grid"),
        _exp_spec("eq6", PARAMS, "paper 000 eq. (6): the integrated model over f, s, k, l"),
        PrecisionModelSpec(
            "saturating", PARAMS,
            ("p_max",) + tuple(f"a_{p}" for p in PARAMS) + tuple(f"b_{p}" for p in PARAMS) + ("c_width", "d_width"),
            _saturating, (0.0,) * 11, (1.0,) + (5.0,) * 4 + (1000.0,) * 4 + (5.0, 1000.0),
            "saturating and bounded: p_max - sum_j a_j / (1 + b_j x_j) - c / (1 + d width), all >= 0",
        ),
    )
}
INTEGRATED = ("eq6", "saturating")


@dataclass
class PrecisionFit:
    spec: PrecisionModelSpec
    theta: np.ndarray
    n: int

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.spec(self.theta, x)

    def coefficients(self) -> dict[str, float]:
        return {name: float(v) for name, v in zip(self.spec.parameters, self.theta)}


def fit_precision_model(spec: PrecisionModelSpec, x: np.ndarray, p: np.ndarray, seed: int = 0,
                        initial: np.ndarray | None = None, starts: int = STARTS) -> PrecisionFit:
    """Bounded least squares on relative residuals from several starting points (a refit on a subset
    starts from the full fit's `initial` solution and fewer random points)."""
    from scipy import optimize  # here, not at import: predicting needs no scipy

    n, k = len(p), len(spec.parameters)
    if n < k + 1:
        raise UsageError(f"too few trained configs to fit '{spec.name}': {n}, need at least {k + 1}")
    lower, upper = np.array(spec.lower), np.array(spec.upper)
    rng = np.random.default_rng(seed)
    best, best_cost = None, np.inf

    def residual(theta: np.ndarray) -> np.ndarray:
        return (spec(theta, x) - p) / p

    points = [np.clip(np.zeros(k) + 0.01, lower, upper)] + [rng.uniform(np.maximum(lower, -1), np.minimum(upper, 1)) for _ in range(starts - 1)]
    if spec.formula is _saturating:
        points[0] = np.clip(np.r_[p.max(), np.full(4, 0.05), np.full(4, 5.0), 0.1, 10.0], lower, upper)
    if initial is not None:
        points[0] = np.clip(initial, lower, upper)
    for start in points:
        try:
            result = optimize.least_squares(residual, start, bounds=(lower, upper), method="trf", max_nfev=2000)
        except ValueError:
            continue
        if np.isfinite(result.cost) and result.cost < best_cost:
            best, best_cost = result.x, result.cost
    if best is None:
        raise UsageError(f"'{spec.name}' could not be fitted to these configs; train configs that vary {', '.join(spec.uses)}")
    return PrecisionFit(spec, best, n)


@dataclass
class PrecisionEvaluation:
    name: str
    description: str
    fit: PrecisionFit
    fit_set: ErrorMetrics
    held_out: ErrorMetrics | None  # None when too few configs to hold any out
    held_out_kind: str  # 'random configs' | 'k-fold'
    used: int  # configs the model was fitted on
    extrapolation: ErrorMetrics | None = None  # on the smallest f and s, left out (integrated models only)

    @property
    def judged(self) -> float:
        """What the integrated models are ranked by: the worse of the held-out and extrapolation MAPE."""
        errors = [m.mape for m in (self.held_out, self.extrapolation) if m is not None] or [self.fit_set.mape]
        return max(errors)

    def as_dict(self) -> dict:
        return {
            "model": self.name, "description": self.description, "uses": list(self.fit.spec.uses), "n": self.used,
            "coefficients": self.fit.coefficients(), "fit_set": self.fit_set.as_dict(),
            "held_out": self.held_out.as_dict() if self.held_out else None, "held_out_kind": self.held_out_kind,
            "extrapolation": self.extrapolation.as_dict() if self.extrapolation else None,
        }


def subset_for(spec: PrecisionModelSpec, configs: Sequence[Config], baseline: Config) -> np.ndarray:
    """Indices of the configs a 1-D or 2-D model is defined on: the others at their baseline values."""
    fixed = [p for p in PARAMS if p not in spec.uses]
    return np.array([i for i, c in enumerate(configs) if all(getattr(c, p) == getattr(baseline, p) for p in fixed)], dtype=int)


def evaluate_precision(spec: PrecisionModelSpec, configs: Sequence[Config], precision: np.ndarray, baseline: Config,
                       random_mask: np.ndarray | None = None, folds: int = 5, seed: int = 0) -> PrecisionEvaluation:
    """Fit on the model's configs; judge on the random configs held out of the fit when there are 10 or
    more of them (the paper's protocol), else by k-fold."""
    index = subset_for(spec, configs, baseline) if len(spec.uses) < 4 else np.arange(len(configs))
    x_all = normalise(configs, baseline)
    x, p = x_all[index], precision[index]
    fit = fit_precision_model(spec, x, p, seed)
    held, kind = None, "k-fold"
    if len(spec.uses) == 4 and random_mask is not None and random_mask.sum() >= 10:
        train = ~random_mask
        if train.sum() >= len(spec.parameters) + 1:
            held_fit = fit_precision_model(spec, x_all[train], precision[train], seed, fit.theta, REFIT_STARTS)
            held = error_metrics(held_fit.predict(x_all[random_mask]), precision[random_mask])
            kind = "random configs"
    if held is None and len(p) >= len(spec.parameters) + 3:
        predictions, truth = [], []
        for test in kfold_indices(len(p), folds, seed):
            train = np.setdiff1d(np.arange(len(p)), test)
            if len(train) < len(spec.parameters) + 1:
                continue
            predictions.append(fit_precision_model(spec, x[train], p[train], seed, fit.theta, REFIT_STARTS).predict(x[test]))
            truth.append(p[test])
        if predictions:
            held = error_metrics(np.concatenate(predictions), np.concatenate(truth))
    extrapolation = None
    if len(spec.uses) == 4:
        extrapolation = extrapolation_error(spec, x_all, precision, fit.theta, seed)
    return PrecisionEvaluation(spec.name, spec.description, fit, error_metrics(fit.predict(x), p), held, kind, len(p), extrapolation)


def extrapolation_error(spec: PrecisionModelSpec, x: np.ndarray, p: np.ndarray, initial: np.ndarray, seed: int = 0) -> ErrorMetrics | None:
    """Errors on the smallest networks when they are left out of the fit: for f and then s, the
    configs below the parameter's 30 % quantile are predicted from the rest. The optimizer looks for
    small networks, so this is where a precision model must not promise too much."""
    predictions, truth = [], []
    for column in (PARAMS.index("f"), PARAMS.index("s")):
        cut = np.quantile(x[:, column], 0.3)
        test = x[:, column] < cut
        if test.sum() == 0 or (~test).sum() < len(spec.parameters) + 1:
            continue
        fitted = fit_precision_model(spec, x[~test], p[~test], seed, initial, REFIT_STARTS)
        predictions.append(fitted.predict(x[test]))
        truth.append(p[test])
    if not predictions:
        return None
    return error_metrics(np.concatenate(predictions), np.concatenate(truth))


@dataclass
class PrecisionStudy:
    """Every precision model that the trained configs support, and the integrated one to optimise with."""

    dataset: str
    recipe: str
    baseline: Config
    baseline_precision: float | None  # measured, when the baseline was trained
    evaluations: dict[str, PrecisionEvaluation]
    best: str
    ranges: dict[str, tuple[int, int]]  # per parameter, the trained range: outside it is extrapolation
    n: int
    skipped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "dataset": self.dataset, "recipe": self.recipe, "baseline": self.baseline.as_csv(),
            "baseline_precision": self.baseline_precision, "best": self.best, "n": self.n,
            "ranges": {k: list(v) for k, v in self.ranges.items()},
            "models": {k: v.as_dict() for k, v in self.evaluations.items()}, "skipped": self.skipped,
        }


def study(configs: Sequence[Config], precision: np.ndarray, baseline: Config, dataset: str, recipe: str,
          random_mask: np.ndarray | None = None, seed: int = 0) -> PrecisionStudy:
    if len(configs) < 3:
        raise UsageError(f"too few trained configs for {dataset}/{recipe}: {len(configs)}; run 'cpbench export --preset quick'")
    evaluations, skipped = {}, []
    for name, spec in MODELS.items():
        if spec.formula is _saturating and baseline.l != BASELINE_LAYERS:
            skipped.append(f"{name}: written for a baseline with l = {BASELINE_LAYERS}, this one has l = {baseline.l}")
            continue
        used = subset_for(spec, configs, baseline) if len(spec.uses) < 4 else np.arange(len(configs))
        distinct = {tuple(getattr(configs[i], p) for p in spec.uses) for i in used}
        if len(distinct) < len(spec.parameters) + 1:
            skipped.append(f"{name}: {len(distinct)} distinct configs, needs {len(spec.parameters) + 1}")
            continue
        try:
            evaluations[name] = evaluate_precision(spec, configs, precision, baseline, random_mask, seed=seed)
        except UsageError as exc:
            skipped.append(f"{name}: {exc}")
    integrated = [evaluations[n] for n in INTEGRATED if n in evaluations]
    if not integrated:
        raise UsageError(
            f"too few trained configs for {dataset}/{recipe} to fit an integrated precision model "
            f"({len(configs)}, need {len(MODELS['saturating'].parameters) + 1}); run 'cpbench export --preset quick'"
        )
    best = min(integrated, key=lambda e: e.judged).name
    measured = [p for c, p in zip(configs, precision) if c == baseline]
    ranges = {p: (min(getattr(c, p) for c in configs), max(getattr(c, p) for c in configs)) for p in PARAMS}
    return PrecisionStudy(dataset, recipe, baseline, float(measured[0]) if measured else None, evaluations, best,
                          ranges, len(configs), skipped)
