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


def _weights(spec: TimeModelSpec, y: np.ndarray) -> np.ndarray:
    return 1.0 / y if spec.weighting == "relative" else np.ones_like(y)


def _design(features: np.ndarray) -> np.ndarray:
    return np.column_stack([np.ones(len(features)), features])


def fit_model(spec: TimeModelSpec, features: np.ndarray, times: np.ndarray) -> FittedModel:
    """Least squares on [1, features] with the spec's weights; intervals from the (weighted) residual
    variance and Student's t. With non-negative coefficients the intervals are those of the
    unconstrained problem around the constrained solution: a guide, not an exact interval."""
    from scipy import optimize, stats

    y = np.asarray(times, dtype=np.float64)
    a = _design(np.asarray(features, dtype=np.float64))
    n, p = a.shape
    if n < p + 2:
        raise UsageError(f"too few timed configs to fit '{spec.name}': {n}, need at least {p + 2}; time more models")
    w = _weights(spec, y)
    aw, yw = a * w[:, None], y * w
    scale = np.abs(aw).max(axis=0)
    if np.any(scale == 0) or np.linalg.matrix_rank(aw / scale) < p:
        raise UsageError(
            f"degenerate data for '{spec.name}': its features ({', '.join(spec.features)}) do not vary enough "
            "across the timed configs; time configs that differ in f, s, k and l (cpbench export --preset timing --untrained)"
        )
    scaled = aw / scale
    if spec.nonnegative:
        coef = optimize.lsq_linear(scaled, yw, bounds=(0, np.inf), method="bvls").x / scale
    else:
        coef = np.linalg.lstsq(scaled, yw, rcond=None)[0] / scale
    residual = yw - aw @ coef
    dof = n - p
    sigma2 = float(residual @ residual) / dof
    cov = sigma2 * np.linalg.pinv(scaled.T @ scaled) / np.outer(scale, scale)
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, dof) * np.sqrt(np.clip(np.diag(cov), 0, None))
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
    """Unconstrained weighted fits of both, so the F distribution applies."""
    from scipy import stats

    if not set(simple.features) <= set(richer.features):
        raise ValueError(f"{simple.name} is not nested in {richer.name}")
    w = 1.0 / times

    def rss(names: Sequence[str]) -> tuple[float, int]:
        a = _design(np.column_stack([columns[n] for n in names])) * w[:, None]
        scale = np.abs(a).max(axis=0)
        coef = np.linalg.lstsq(a / scale, times * w, rcond=None)[0]
        r = times * w - (a / scale) @ coef
        return float(r @ r), a.shape[1]

    rss1, p1 = rss(simple.features)
    rss2, p2 = rss(richer.features)
    n = len(times)
    f_stat = ((rss1 - rss2) / (p2 - p1)) / (rss2 / (n - p2))
    return NestedTest(simple.name, richer.name, float(f_stat), float(stats.f.sf(f_stat, p2 - p1, n - p2)), p2 - p1, n - p2)


def verdict(device: str, batch: int, law: PowerLaw, test: NestedTest | None, linear: Evaluation, best: Evaluation) -> str:
    """One sentence: is run time proportional to MACs on this device, and on what evidence."""
    proportional = law.ci_low <= 1.0 <= law.ci_high and linear.kfold.mape <= PAPER_000_ERROR
    nested = f"{test.richer} vs {test.simple} F = {test.f_statistic:.1f} (p = {test.p_value:.2g}), " if test else ""
    evidence = (
        f"power-law exponent b = {law.exponent:.2f} [{law.ci_low:.2f}, {law.ci_high:.2f}], {nested}"
        f"held-out MAPE of the linear model {linear.kfold.mape:.1%} vs paper 000's {PAPER_000_ERROR:.1%}"
    )
    if proportional:
        return f"On {device} at batch {batch}, run time is proportional to MACs as paper 000 claims: {evidence}."
    tail = f"; the {best.name} model predicts held-out configs to {best.kfold.mape:.1%} MAPE" if best.name != linear.name else ""
    return f"On {device} at batch {batch}, run time is not proportional to MACs (paper 003 holds here): {evidence}{tail}."
