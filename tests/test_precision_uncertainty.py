"""What recommend relies on from a precision fit: monotone predictions, probabilities that mean
what they say, one baseline frame, and a support rule that follows the data."""

import json
from itertools import product

import numpy as np
import pytest

from cpbench.export.precision_study import StudyResult, append_result, plan_study, read_results
from cpbench.errors import UsageError
from cpbench.family.config import FASHION_MNIST, Config
from cpbench.fitting.precision_data import points_from_study
from cpbench.fitting.precision_models import MODELS, normalise
from cpbench.fitting.precision_eval import seed_spread, fit_and_judge
from cpbench.fitting.precision_predictor import predictor_from_file, save_study

BASE = FASHION_MNIST.baseline
TRUTH = np.array([0.94, 0.02, 0.03, 0.01, 0.015, 0.8, 0.9, 1.2, 0.7, 0.05, 2.0])
SEED_SD = 0.002


def truth(configs):
    return MODELS["saturating"](TRUTH, normalise(configs, BASE))


def synthetic_results(seed: int = 0) -> list[StudyResult]:
    """The study's own design, 'trained' on a known surface with seed noise of SEED_SD."""
    rng = np.random.default_rng(seed)
    out = []
    for item in plan_study(FASHION_MNIST):
        accuracy = float(truth([item.config])[0] + SEED_SD * rng.standard_normal())
        out.append(StudyResult(item.config.as_csv(), item.seed, item.role, "fashionmnist", "synthetic", "h", accuracy,
                               10000, 1.0, 1.0, "fp32", 1, "x", {"cpu": "test CPU", "hardware_id": "t"}, "2026-01-01"))
    return out


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    points = points_from_study(synthetic_results())
    result = fit_and_judge(points.configs, points.precision, BASE, "fashionmnist", "synthetic", points.holdout, 0, points.seeds)
    folder = tmp_path_factory.mktemp("fit")
    path = save_study(result, folder, {"cpu": "test CPU"}, space="fashionmnist")
    return result, predictor_from_file(path, reference=False)


def test_the_saturating_model_never_favours_a_network_smaller_in_every_parameter():
    rng = np.random.default_rng(1)
    for _ in range(200):
        theta = rng.uniform(np.array(MODELS["saturating"].lower), np.minimum(MODELS["saturating"].upper, 5.0))
        big = np.array([rng.uniform(0.1, 1.0, 4)])
        small = big * rng.uniform(0.2, 1.0, 4)
        assert MODELS["saturating"](theta, small)[0] <= MODELS["saturating"](theta, big)[0] + 1e-12


def test_the_shipped_fit_is_monotone_over_the_whole_grid():
    from cpbench.fitting.precision_predictor import REFERENCE, predictor_from_file as load

    shipped = sorted(REFERENCE.glob("*.json"))
    assert shipped, "no reference precision fit shipped"
    predictor = load(shipped[0], reference=True)
    grid = [Config(f, s, k, l) for f, s, k, l in product((4, 16, 32, 64), (8, 16, 28), (3, 5), (1, 2, 3)) if s >= 2**l]
    p = dict(zip(grid, predictor.predict(normalise(grid, predictor.baseline))))
    for a, b in product(grid, grid):
        if all(x <= y for x, y in zip(a.as_tuple(), b.as_tuple())):
            assert p[a] <= p[b] + 1e-12, (a, b)


def test_seed_spread_is_the_pooled_standard_deviation():
    spread = seed_spread({Config(8, 12, 3, 1): [0.80, 0.82], Config(4, 12, 3, 1): [0.70, 0.70, 0.73], Config(2, 8, 3, 1): [0.5]})
    assert spread.configs == 2 and spread.runs == 5
    expected = np.sqrt(((0.01**2 + 0.01**2) + (0.01**2 + 0.01**2 + 0.02**2)) / 3)
    assert spread.sd == pytest.approx(expected)


def test_targets_and_candidates_share_the_models_baseline(fitted):
    from cpbench.optimize.recommend import resolve_target

    result, predictor = fitted
    goal, rule, _ = resolve_target(None, 0.01, predictor)
    assert goal == pytest.approx(float(predictor.predict(np.ones((1, 4)))[0]) - 0.01)
    assert predictor.baseline_precision == pytest.approx(result.baseline_precision)  # kept for the record


def test_probabilities_are_calibrated_on_the_held_out_configs(fitted):
    """Of held-out configs predicted to reach a target with probability p, about p do (here on a
    known surface: every held-out config against targets spread around its own precision)."""
    result, predictor = fitted
    rng = np.random.default_rng(3)
    configs = [c for c, h in zip(result.configs, result.holdout) if h]
    x = normalise(configs, BASE)
    hits, predicted = [], []
    for _ in range(200):  # fresh trainings of the held-out configs: truth plus seed noise
        measured = truth(configs) + SEED_SD * rng.standard_normal(len(configs))
        targets = measured + rng.normal(0, 2 * SEED_SD, len(configs))
        for i, target in enumerate(targets):
            predicted.append(float(predictor.probability(x[i:i + 1], target)[0]))
            hits.append(measured[i] >= target)
    predicted, hits = np.array(predicted), np.array(hits)
    confident = predicted >= 0.9
    assert confident.sum() > 100
    assert hits[confident].mean() >= 0.85  # what --confidence 0.9 promises, within sampling error
    assert abs(predicted.mean() - hits.mean()) < 0.08


def test_support_follows_the_trained_configs(fitted):
    _, predictor = fitted
    inside = normalise([BASE, Config(48, 28, 5, 3)], BASE)
    outside = normalise([Config(1, 4, 1, 1)], BASE)
    assert predictor.supported(inside).all()
    assert not predictor.supported(outside).any()
    assert predictor.outside(Config(1, 4, 1, 1)) and not predictor.outside(BASE)


def test_study_file_resumes_after_a_torn_line_and_keeps_what_is_appended_after_it(tmp_path):
    path = tmp_path / "s.jsonl"
    rows = synthetic_results()[:4]
    for r in rows[:3]:
        append_result(path, r)
    with open(path, "a") as handle:
        handle.write('{"config": "64,28,5,3", "se')  # killed mid-write
    assert [r.key for r in read_results(path)] == [r.key for r in rows[:3]]
    append_result(path, rows[3])  # the next training after the restart: on a line of its own
    assert [r.key for r in read_results(path)] == [r.key for r in rows]
    future = dict(rows[0].__dict__, format=99)
    path.write_text(json.dumps(future) + "\n")
    with pytest.raises(UsageError, match="format 99"):
        read_results(path)


def test_a_precision_fit_of_an_unknown_format_is_refused(tmp_path, fitted):
    _, predictor = fitted
    payload = json.loads(predictor.source.read_text())
    payload["format"] = 1
    path = tmp_path / "fashionmnist-old.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(UsageError, match="format 1.*rerun 'cpbench fit-precision'"):
        predictor_from_file(path, reference=False)


def _fake_trainer(trained: list):
    def train(item):
        trained.append(item)
        return {"accuracy": 0.9, "test_size": 10, "wall_s": 0.0, "images_per_s": 1.0, "autocast": "fp32",
                "threads": 1, "torch_version": "x"}
    return train


def test_processes_sharing_a_study_file_never_train_the_same_item(tmp_path):
    import os
    import socket
    import subprocess
    import sys

    from cpbench.export.precision_study import StudyItem, claim, claims_folder, run_study

    path = tmp_path / "s.jsonl"
    items = [StudyItem(Config(c, 8, 3, 1), 0, "sweep") for c in (2, 4, 6, 8)]
    held = claim(path, items[0], "h")
    assert held is not None and claim(path, items[0], "h") is None  # held by a live process (this one)
    # a claim of another live process of this host, and one of another host, are both respected
    claims_folder(path).joinpath(held.name).write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))
    other_host = claim(path, items[1], "h")
    other_host.write_text(json.dumps({"pid": 1, "host": "elsewhere"}))
    # a claim left by a killed process of this host is taken over
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = claim(path, items[2], "h")
    dead.write_text(json.dumps({"pid": int(gone.stdout), "host": socket.gethostname()}))
    trained: list = []
    done = list(run_study(items, path, "fashionmnist", "r", "h", _fake_trainer(trained), {}))
    assert [i.config.f for i in trained] == [6, 8]
    assert [r.config for r in done] == ["6,8,3,1", "8,8,3,1"] == [r.config for r in read_results(path)]
    assert sorted(p.name for p in claims_folder(path).iterdir()) == sorted([held.name, other_host.name])


def test_the_shipped_probability_is_calibrated_on_the_studys_held_out_trainings():
    """Each of the shipped study's held-out trainings, scored by the predictive distribution built
    without its own residual: the share below the printed q-quantile lies in the binomial 95 % band
    of q, over all of them and where targets live (predicted >= 0.90)."""
    from pathlib import Path

    from scipy import stats

    from cpbench.fitting.precision_predictor import REFERENCE

    path = Path(REFERENCE) / "fashionmnist-converged-bn.json"
    payload = json.loads(path.read_text())
    full = predictor_from_file(path, True)
    residual_configs = [r["config"] for r in payload["uncertainty"]["residuals"]]
    held = [p for p in payload["points"] if p["held_out"]]
    pits = {}
    for point in held:
        keep = np.array([c != point["config"] for c in residual_configs])
        alone = predictor_from_file(path, True)
        alone.residual_x, alone.residuals = full.residual_x[keep], full.residuals[keep]
        x = normalise([Config.parse(point["config"])], full.baseline)
        bias, scale, k = alone.local_error(x)
        pits[point["config"]] = stats.t.cdf((point["precision"] - alone.predict(x)[0] - bias[0]) / scale[0], k - 1)
    top = [p["config"] for p in held if p["predicted"] >= 0.90]
    for population in (list(pits), top):
        u = np.array([pits[c] for c in population])
        for q in (0.1, 0.5):
            low, high = stats.binom.ppf([0.025, 0.975], len(u), q)
            assert low <= np.sum(u < q) <= high, (len(u), q, int(np.sum(u < q)))
