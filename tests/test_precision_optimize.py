"""Precision models and the optimizer: known answers on synthetic problems."""

import numpy as np
import pytest

from cpbench.family.config import FASHION_MNIST, Config, grids_2d, random_from_grid, sweeps_1d
from cpbench.errors import UsageError
from cpbench.family.closed_form import FEATURES, Layers
from cpbench.optimize.search import Infeasible, best_under, evaluate_space, integer_space, paper_grid
from cpbench.fitting.precision_models import MODELS, fit_precision_model, normalise
from cpbench.fitting.precision_eval import fit_and_judge, subset_for

BASE = FASHION_MNIST.baseline


def saturating_truth(x: np.ndarray) -> np.ndarray:
    return MODELS["saturating"](np.array([0.93, 0.02, 0.03, 0.01, 0.015, 0.8, 0.9, 1.2, 0.7, 0.05, 2.0]), x)


def test_normalised_baseline_is_one():
    assert normalise([BASE, Config(32, 14, 5, 3)], BASE).tolist() == [[1, 1, 1, 1], [0.5, 0.5, 1, 1]]


def test_eq6_and_saturating_recover_a_known_surface():
    configs = sweeps_1d(FASHION_MNIST) + grids_2d(FASHION_MNIST)
    x = normalise(configs, BASE)
    p = saturating_truth(x)
    fit = fit_precision_model(MODELS["saturating"], x, p)
    assert np.max(np.abs(fit.predict(x) - p) / p) < 1e-3
    held = random_from_grid(FASHION_MNIST, 30, 5, exclude=set(configs))
    xh = normalise(held, BASE)
    assert np.max(np.abs(fit.predict(xh) - saturating_truth(xh)) / saturating_truth(xh)) < 5e-3
    # eq. (6) with known coefficients is found again from its own values
    theta = np.array([0.3, -0.05, -0.1, -0.2, -0.05, 0.01, 0.02, 0.01, 0.005, 0.55])
    p6 = MODELS["eq6"](theta, x)
    fit6 = fit_precision_model(MODELS["eq6"], x, p6)
    assert np.max(np.abs(fit6.predict(xh) - MODELS["eq6"](theta, xh)) / MODELS["eq6"](theta, xh)) < 0.01


def test_the_monotone_model_weighs_a_point_of_error_rate_alike_at_the_top_and_the_bottom():
    from cpbench.fitting.precision_models import LOSSES

    # 10 % more errors is the same miss at 0.94 as at 0.70: the top of the surface, where targets
    # live, is not traded for the small networks' large absolute errors (relative residuals of P do)
    top, bottom = LOSSES["log-error"](np.array([0.934, 0.67]), np.array([0.94, 0.70]))
    assert top == pytest.approx(bottom, rel=1e-9)
    top, bottom = LOSSES["relative"](np.array([0.934, 0.67]), np.array([0.94, 0.70]))
    assert abs(top) < abs(bottom) / 5
    assert MODELS["saturating"].loss == "log-error"
    assert all(MODELS[name].loss == "relative" for name in MODELS if name != "saturating")  # the paper's eqs as the paper fits them


def test_one_and_two_d_models_use_only_their_slice():
    configs = sweeps_1d(FASHION_MNIST) + grids_2d(FASHION_MNIST) + [Config(8, 12, 3, 1)]
    f_only = [configs[i] for i in subset_for(MODELS["eq2-f"], configs, BASE)]
    assert {c.s for c in f_only} == {28} and {c.k for c in f_only} == {5} and len({c.f for c in f_only}) == 10
    fk = [configs[i] for i in subset_for(MODELS["eq4"], configs, BASE)]
    assert {c.s for c in fk} == {28} and {c.l for c in fk} == {3} and {c.k for c in fk} == {3, 4, 5}


def test_study_holds_out_the_held_out_set_and_picks_an_integrated_model():
    studied = sweeps_1d(FASHION_MNIST) + grids_2d(FASHION_MNIST)
    random = random_from_grid(FASHION_MNIST, 12, 1, exclude=set(studied))
    configs = studied + random
    rng = np.random.default_rng(0)
    p = saturating_truth(normalise(configs, BASE)) + 0.002 * rng.standard_normal(len(configs))
    mask = np.array([c in set(random) for c in configs])
    result = fit_and_judge(configs, p, BASE, "fashionmnist", "synthetic", mask)
    assert result.best in ("eq6", "saturating")
    best = result.evaluations[result.best]
    assert best.held_out_kind == "held-out set" and best.held_out.n == 12 and best.held_out.mape < 0.01
    assert best.used == len(configs) - 12  # the held-out set is never fitted
    assert best.kfold is not None and best.kfold.mae < 0.01
    # the naive baselines are judged on the same held-out configs, and the model beats the constant
    assert result.naive.kind == "held-out set" and result.naive.constant.mae > best.held_out.mae
    assert result.baseline_precision == pytest.approx(p[configs.index(BASE)])
    assert {"eq2-f", "eq2-s", "eq3", "eq4", "eq5"} <= set(result.evaluations)
    with pytest.raises(UsageError, match="too few"):
        fit_and_judge(configs[:2], p[:2], BASE, "fashionmnist", "synthetic")


def test_integer_space_is_every_buildable_config():
    space = integer_space(FASHION_MNIST)
    assert len(space) == sum(1 for f in range(1, 65) for s in range(1, 29) for k in range(1, 6) for l in range(1, 4) if s >= 2**l)
    assert np.all(space.s >= 2**space.l) and space.f.max() == 64 and space.f.min() == 1
    grid = paper_grid(FASHION_MNIST)
    assert len(grid) > 1000 and set(np.unique(grid.k)) == {1, 2, 3, 4, 5}


def test_optimizer_finds_the_known_optimum():
    """Precision rises with f and s only; time is MACs: the optimum is the least-MAC config whose f*s
    clears the bar, which brute force over plain Python finds too."""
    space = integer_space(FASHION_MNIST)

    def precision(x):
        return 1 - 0.1 / (x[:, 0] * x[:, 1] * 10)

    evaluated = evaluate_space(space, precision, lambda layers: FEATURES["macs"](layers), BASE)
    target = 0.95
    picked = evaluated.candidates.config(int(best_under(evaluated, target, 1)[0]))
    brute = min(
        (c for c in (space.config(i) for i in range(len(space))) if 1 - 0.1 / (c.f / 64 * c.s / 28 * 10) >= target),
        key=lambda c: (FEATURES["macs"](Layers.of([c]))[0], -c.f * c.s),
    )
    assert FEATURES["macs"](Layers.of([picked]))[0] == FEATURES["macs"](Layers.of([brute]))[0]
    top = best_under(evaluated, target, 5)
    assert np.all(np.diff(evaluated.seconds[top]) >= 0) and np.all(evaluated.precision[top] >= target)
    front = evaluated.pareto()
    assert np.all(np.diff(evaluated.seconds[front]) >= 0) and np.all(np.diff(evaluated.precision[front]) > 0)
    envelope = evaluated.lower_envelope(np.array([0.9, target, 0.999999]))
    assert envelope[1] == pytest.approx(evaluated.seconds[top[0]]) and envelope[0] <= envelope[1] and np.isnan(envelope[2])


def test_infeasible_target_names_the_best_reachable():
    space = integer_space(FASHION_MNIST)
    evaluated = evaluate_space(space, lambda x: 0.5 + 0.4 * x[:, 0] / x[:, 0].max(), lambda layers: FEATURES["macs"](layers), BASE)
    with pytest.raises(Infeasible, match=r"best reachable is 0\.9000") as caught:
        best_under(evaluated, 0.95)
    assert caught.value.exit_code == 2  # a target the space cannot reach is input to change, like any other


def test_the_pick_follows_the_device():
    """Two devices that cost the same configs differently get different picks for the same target."""
    space = integer_space(FASHION_MNIST)

    def precision(x):
        return 0.9 - 0.05 / x[:, 0] - 0.05 / x[:, 1]

    macs_bound = evaluate_space(space, precision, lambda layers: FEATURES["macs"](layers), BASE)
    layer_bound = evaluate_space(space, precision, lambda layers: 1e6 * layers.l + FEATURES["conv_outputs"](layers), BASE)
    a = macs_bound.candidates.config(int(best_under(macs_bound, 0.75, 1)[0]))
    b = layer_bound.candidates.config(int(best_under(layer_bound, 0.75, 1)[0]))
    assert a != b
