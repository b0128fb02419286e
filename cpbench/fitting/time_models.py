"""Time models C(T) per device: paper 000's linear eq. (1) and richer ones, fitted, judged on
held-out configs, and the FLOPs-time linearity verdict with its evidence.

Every model here is linear in its coefficients over closed-form features of the config
(cpbench.features), fitted by least squares, either ordinary (OLS: what R^2 rewards, large models
dominate) or relative (1/t weighted: what a user predicting a small model's latency needs).
A new model is one entry in MODELS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from cpbench.errors import UsageError, choose
from cpbench.fitting.least_squares import relative_least_squares
from cpbench.fitting.metrics import ErrorMetrics, error_metrics, kfold_indices, out_of_fold

# scipy is imported inside the fitting functions: predicting from a fitted profile (recommend,
# predict) then never pays its import time.

PAPER_000_ERROR = 0.025  # paper 000: run time proportional to complexity within 2.5 %
CONFIDENCE = 0.95
LINEAR = ("eq1", "eq1-rel", "linear", "linear-rel")


@dataclass(frozen=True)
class TimeModelSpec:
    name: str
    features: tuple[str, ...]
    weighting: str  # 'ols' | 'relative'
    description: str
    nonnegative: bool = False  # keep every coefficient >= 0, so extrapolation never predicts negative costs

    @property
    def coefficient_names(self) -> list[str]:
        return ["alpha0"] + (["alpha1"] if self.features in (("conv_macs",), ("macs",)) else list(self.features))


MODELS: dict[str, TimeModelSpec] = {
    s.name: s
    for s in (
        TimeModelSpec("eq1", ("conv_macs",), "ols", "paper 000 eq. (1): alpha1 * sum f_{i-1} k^2 f_i s_i^2 + alpha0, OLS"),
        TimeModelSpec("eq1-rel", ("conv_macs",), "relative", "paper 000 eq. (1), relative-error (1/t weighted) least squares"),
        TimeModelSpec("linear", ("macs",), "ols", "alpha1 * MACs counted from the ONNX graph + alpha0, OLS"),
        TimeModelSpec("linear-rel", ("macs",), "relative", "alpha1 * counted MACs + alpha0, relative-error least squares"),
        TimeModelSpec(
            "layerwise",
            ("conv_macs", "conv_inputs", "conv_outputs", "conv_weights", "fc_macs", "layers"),
            "relative",
            "per-layer additive: conv MACs, unfolded inputs, outputs and weights, classifier MACs and a "
            "constant per layer, non-negative, relative-error least squares",
            nonnegative=True,
        ),
        *(
            TimeModelSpec(
                f"layerwise-simd{lanes}",
                (f"conv_macs_aligned{lanes}", f"conv_macs_unaligned{lanes}", f"conv_outputs_aligned{lanes}",
                 f"conv_outputs_unaligned{lanes}", "conv_inputs", "conv_weights", "fc_macs", "layers"),
                "relative",
                f"layerwise, with conv MACs and outputs costed apart when f is a multiple of {lanes} "
                f"(whole {lanes * 32}-bit SIMD registers of fp32)",
                nonnegative=True,
            )
            for lanes in (8, 16)
        ),
    )
}


def get_model_spec(name: str) -> TimeModelSpec:
    return choose(MODELS, name, "time model")


@dataclass
class FittedModel:
    """Coefficients (intercept first) with 95 % intervals; predicts seconds from a feature matrix."""

    spec: TimeModelSpec
    coef: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    n: int

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.coef[0] + features @ self.coef[1:]

    def coefficients(self) -> dict[str, dict[str, float]]:
        return {
            name: {"value": float(v), "ci_low": float(lo), "ci_high": float(hi)}
            for name, v, lo, hi in zip(self.spec.coefficient_names, self.coef, self.ci_low, self.ci_high)
        }


REWEIGHTS = 2  # relative fits: weights 1/fitted after a first pass with 1/measured (observed-time weights are biased)
LACK_OF_FIT_ALPHA = 0.01


def _design(features: np.ndarray) -> np.ndarray:
    return np.column_stack([np.ones(len(features)), features])


def _solve(spec: TimeModelSpec, aw: np.ndarray, yw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(coef, scaled weighted design, column scale) of one least-squares pass on the weighted design."""
    from scipy import optimize

    scale = np.abs(aw).max(axis=0)
    if np.any(scale == 0) or np.linalg.matrix_rank(aw / scale) < aw.shape[1]:
        raise UsageError(
            f"degenerate data for '{spec.name}': its features ({', '.join(spec.features)}) do not vary enough "
            "across the timed configs; time configs that differ in f, s, k and l (cpbench export --preset timing --untrained)"
        )
    scaled = aw / scale
    if spec.nonnegative:
        coef = optimize.lsq_linear(scaled, yw, bounds=(0, np.inf), method="bvls").x / scale
    else:
        coef = np.linalg.lstsq(scaled, yw, rcond=None)[0] / scale
    return coef, scaled, scale


def fit_model(spec: TimeModelSpec, features: np.ndarray, times: np.ndarray) -> FittedModel:
    """Least squares on [1, features]. Relative fits weight by 1/fitted time (iterated from
    1/measured), which is unbiased where 1/measured is not. Intervals are heteroscedasticity-robust
    (HC3 sandwich, Student's t): they hold under multiplicative noise, where the textbook OLS
    intervals covered the true slope a quarter of the time. With non-negative coefficients the
    intervals are those of the unconstrained problem around the constrained solution: a guide."""
    from scipy import stats

    y = np.asarray(times, dtype=np.float64)
    a = _design(np.asarray(features, dtype=np.float64))
    n, p = a.shape
    if n < p + 2:
        raise UsageError(f"too few timed configs to fit '{spec.name}': {n}, need at least {p + 2}; time more models")
    if spec.weighting == "relative":
        _, w = relative_least_squares(a, y, lambda aw, yw: _solve(spec, aw, yw)[0], passes=1 + REWEIGHTS)
    else:
        w = np.ones_like(y)
    coef, scaled, scale = _solve(spec, a * w[:, None], y * w)
    residual = y * w - scaled @ (coef * scale)
    bread = np.linalg.pinv(scaled.T @ scaled)
    leverage = np.clip(np.einsum("ij,jk,ik->i", scaled, bread, scaled), 0, 1 - 1e-9)
    meat = scaled.T @ (scaled * (residual / (1 - leverage))[:, None] ** 2)
    cov = bread @ meat @ bread / np.outer(scale, scale)
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - p) * np.sqrt(np.clip(np.diag(cov), 0, None))
    return FittedModel(spec, coef, coef - half, coef + half, n)


def held_out_predictions(spec: TimeModelSpec, features: np.ndarray, times: np.ndarray, test_sets: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Predictions for every point of every test set from a fit on the remaining points.
    Test sets whose remainder is too small to fit are skipped. Returns (indices, predictions)."""

    def predict(train: np.ndarray, test: np.ndarray) -> np.ndarray | None:
        try:
            return fit_model(spec, features[train], times[train]).predict(features[test])
        except UsageError:  # the remainder lacks variety (e.g. one l left): this split cannot judge the model
            return None

    return out_of_fold(len(times), test_sets, predict, minimum=len(spec.features) + 3)


def group_test_sets(values: np.ndarray) -> list[np.ndarray]:
    """Leave-one-group-out: one test set per distinct value (every config with l = 1, ...)."""
    return [np.flatnonzero(values == v) for v in np.unique(values)]


@dataclass
class Evaluation:
    """A model fitted on all points, and its errors on the fitting set and on held-out configs."""

    name: str
    description: str
    fitted: FittedModel
    fit_set: ErrorMetrics
    kfold: ErrorMetrics
    held_out: dict[str, ErrorMetrics] = field(default_factory=dict)  # 'l', 'k', ...: leave-one-family-out

    def as_dict(self) -> dict:
        return {
            "model": self.name, "description": self.description, "features": list(self.fitted.spec.features),
            "weighting": self.fitted.spec.weighting, "n": self.fitted.n, "coefficients": self.fitted.coefficients(),
            "fit_set": self.fit_set.as_dict(), "kfold": self.kfold.as_dict(),
            "leave_one_family_out": {k: v.as_dict() for k, v in self.held_out.items()},
        }


def evaluate(spec: TimeModelSpec, features: np.ndarray, times: np.ndarray, groups: dict[str, np.ndarray],
             folds: int = 5, seed: int = 0) -> Evaluation:
    fitted = fit_model(spec, features, times)
    index, predicted = held_out_predictions(spec, features, times, kfold_indices(len(times), folds, seed))
    if not len(index):
        raise UsageError(f"'{spec.name}' cannot be judged on held-out configs: no fold leaves enough varied configs to fit it")
    kfold = error_metrics(predicted, times[index])
    held_out = {}
    for name, values in groups.items():
        index, predicted = held_out_predictions(spec, features, times, group_test_sets(values))
        if len(index):
            held_out[name] = error_metrics(predicted, times[index])
    return Evaluation(spec.name, spec.description, fitted, error_metrics(fitted.predict(features), times), kfold, held_out)


@dataclass
class PowerLaw:
    """t ~ a * MACs^b, fitted on logs: b = 1 is proportionality, b < 1 means small models cost more
    than their MACs say."""

    exponent: float
    ci_low: float
    ci_high: float
    r2: float

    def as_dict(self) -> dict:
        return asdict(self)


def power_law(macs: np.ndarray, times: np.ndarray) -> PowerLaw:
    from scipy import stats

    fit = stats.linregress(np.log(macs), np.log(times))
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, len(times) - 2) * fit.stderr
    return PowerLaw(float(fit.slope), float(fit.slope - half), float(fit.slope + half), float(fit.rvalue**2))


@dataclass
class NestedTest:
    """F-test of the linear eq. (1) model nested in a richer one, both with relative weights."""

    simple: str
    richer: str
    f_statistic: float
    p_value: float
    df_extra: int
    df_resid: int

    def as_dict(self) -> dict:
        return asdict(self)


def nested_f_test(simple: TimeModelSpec, richer: TimeModelSpec, columns: dict[str, np.ndarray], times: np.ndarray) -> NestedTest:
    """Unconstrained weighted fits of both, so the F distribution applies. The richer model is fitted
    with the simple one's columns added, so the simple law is nested by construction whether or not
    its feature is among the richer one's names (total MACs lie in the span of conv and classifier
    MACs); the degrees of freedom are the designs' ranks."""
    from scipy import stats

    rich_features = np.column_stack([columns[n] for n in richer.features])
    fitted = _design(rich_features) @ fit_model(richer, rich_features, times).coef
    w = 1.0 / np.where(fitted > 0, fitted, times)  # both models weighted alike, by the richer model's fitted times

    def rss(names: Sequence[str]) -> tuple[float, int]:
        a = _design(np.column_stack([columns[n] for n in names])) * w[:, None]
        scale = np.abs(a).max(axis=0)
        coef = np.linalg.lstsq(a / scale, times * w, rcond=None)[0]
        r = times * w - (a / scale) @ coef
        return float(r @ r), int(np.linalg.matrix_rank(a / scale))

    rss1, p1 = rss(simple.features)
    rss2, p2 = rss(list(dict.fromkeys([*simple.features, *richer.features])))
    n = len(times)
    if rss1 <= n * 1e-18:  # relative residuals below 1e-9: the simple model fits exactly, nothing to add
        return NestedTest(simple.name, richer.name, 0.0, 1.0, p2 - p1, n - p2)
    f_stat = max(0.0, ((rss1 - rss2) / (p2 - p1)) / (rss2 / (n - p2)))
    return NestedTest(simple.name, richer.name, float(f_stat), float(stats.f.sf(f_stat, p2 - p1, n - p2)), p2 - p1, n - p2)


def verdict(device: str, batch: int, law: PowerLaw, test: NestedTest | None, linear: Evaluation, best: Evaluation,
            selected: ErrorMetrics | None = None) -> str:
    """One sentence: does eq. (1), t = alpha1 * MACs + alpha0, hold on this device, and on what
    evidence. Judged by the affine model's held-out error and a lack-of-fit test against the richer
    per-layer model, never by the power-law exponent: with alpha0 > 0 an exactly affine law has a
    log-log slope well below 1, so the exponent cannot confirm eq. (1)."""
    no_lack_of_fit = test is None or test.p_value >= LACK_OF_FIT_ALPHA
    proportional = linear.kfold.mape <= PAPER_000_ERROR and no_lack_of_fit
    nested = (f"lack-of-fit F-test {test.richer} (with {test.simple}'s columns) vs {test.simple}: F = {test.f_statistic:.1f} "
              f"(p = {test.p_value:.2g}), " if test else "")
    evidence = (
        f"held-out (5-fold) MAPE of the affine model {linear.kfold.mape:.1%} vs paper 000's {PAPER_000_ERROR:.1%}, {nested}"
        f"power-law exponent b = {law.exponent:.2f} [{law.ci_low:.2f}, {law.ci_high:.2f}] (descriptive only)"
    )
    if proportional:
        return (f"On {device} at batch {batch}, run time is proportional to MACs as paper 000 claims "
                f"(affine, t = a1 MACs + a0): {evidence}.")
    tail = ""
    if best.name != linear.name:
        quoted = (f"{selected.mape:.1%} MAPE in a nested k-fold (the choice of model inside each fold)" if selected
                  else f"{best.kfold.mape:.1%} k-fold MAPE (the same folds chose it)")
        tail = f"; the {best.name} model predicts held-out configs to {quoted}"
    return f"On {device} at batch {batch}, run time is not proportional to MACs: {evidence}{tail}."


@dataclass
class SelectionHonest:
    """The error of 'choose the best model by k-fold, then predict': each outer fold's test configs
    are predicted by the model its own training part chose (nested k-fold), so the quoted error
    comes from configs that did not choose the model; and how often the chosen model's 95 %
    prediction interval (the inner folds' relative-error quantiles) held the measured time."""

    errors: ErrorMetrics
    interval_coverage: float
    chosen: dict[str, int]  # model -> outer folds that chose it

    def as_dict(self) -> dict:
        return {"errors": self.errors.as_dict(), "interval_coverage": self.interval_coverage, "chosen": self.chosen,
                "kind": "nested k-fold (outer 5, inner 5)"}


def selection_honest(specs: Sequence[TimeModelSpec], columns: dict[str, np.ndarray], times: np.ndarray,
                     folds: int = 5, seed: int = 0) -> SelectionHonest | None:
    predictions, truth, covered, chosen = [], [], [], {}
    everything = np.arange(len(times))
    for test in kfold_indices(len(times), folds, seed):
        train = np.setdiff1d(everything, test)
        best, best_mape, best_rel = None, np.inf, None
        for spec in specs:
            features = np.column_stack([columns[n] for n in spec.features])
            index, held = held_out_predictions(spec, features[train], times[train], kfold_indices(len(train), folds, seed + 1))
            if not len(index):
                continue
            rel = (held - times[train][index]) / times[train][index]
            mape = float(np.mean(np.abs(rel)))
            if mape < best_mape:
                best, best_mape, best_rel = spec, mape, rel
        if best is None:
            continue
        features = np.column_stack([columns[n] for n in best.features])
        try:
            predicted = fit_model(best, features[train], times[train]).predict(features[test])
        except UsageError:
            continue
        low, high = np.quantile(best_rel, 0.025), np.quantile(best_rel, 0.975)
        measured = times[test]
        covered.extend((predicted / (1 + high) <= measured) & (measured <= predicted / (1 + low)))
        predictions.append(predicted)
        truth.append(measured)
        chosen[best.name] = chosen.get(best.name, 0) + 1
    if not predictions:
        return None
    return SelectionHonest(error_metrics(np.concatenate(predictions), np.concatenate(truth)), float(np.mean(covered)), chosen)
