"""A calibration on a noisy machine: networks interleaved with kernels, a co-measured reference that
sends what ran during interference to be re-measured, a budget that plans the optional kernels and
adds rounds where rounds disagree, a composition that cannot be pulled away from the plain sum by
noisy networks, and a verdict that says when the result is poor."""

from __future__ import annotations

import zlib
from collections import deque

import numpy as np
import pytest

from cpbench.family.config import Config, Space
from cpbench.fitting.intervals import bootstrap_mean, clopper_pearson
from cpbench.fitting.verdict import judge
from cpbench.timing import calibration as calibration_module
from cpbench.timing.calibration import _budget_plan, calibrate
from cpbench.timing.calibration_design import CalibrationDesign
from cpbench.timing.profiles import SHIPPED, load_profile
from cpbench.timing.reference import ReferenceLevel

TINY = Space("tiny", Config(4, 8, 2, 3), (), (), (), ())


def _true_time(item_id: str) -> float:
    """A fixed time per item, the same in every round on a quiet machine."""
    return 1e-6 * (5 + zlib.crc32(item_id.encode()) % 50)


class FakeMachine:
    """Stands in for the worker process: sends what `_calibration_worker` sends (a reference first,
    then each item with the reference after every few), on a machine that is slowed by `slow` while
    its clock (one tick per timing) is inside `noisy`; `flaky` items vary from round to round."""

    def __init__(self, noisy: range = range(0), slow: float = 1.5, flaky: set[str] | None = None) -> None:
        self.tick, self.noisy, self.slow, self.flaky = 0, noisy, slow, flaky or set()
        self.chunks: list[list[str]] = []
        self.rng = np.random.default_rng(0)

    def _time(self, seconds: float) -> float:
        self.tick += 1
        return seconds * (self.slow if self.tick in self.noisy else 1.0)

    def worker(self, target, items, profile, settings, network_settings, reference, every):
        machine = self
        self.chunks.append([i for i, _ in items])

        class Worker:
            def __init__(self) -> None:
                self.messages = deque([("ref", machine._time(10e-6))])
                for index, (item_id, _) in enumerate(items):
                    t = _true_time(item_id) * (1 + abs(machine.rng.normal(0, 0.2)) if item_id in machine.flaky else 1)
                    t = machine._time(t)
                    self.messages.append(("ok", item_id, t, t, 0.001))
                    if (index + 1) % every == 0 or index + 1 == len(items):
                        self.messages.append(("ref", machine._time(10e-6)))
                self.messages.append(("end",))

            def receive(self, timeout_s):
                return self.messages.popleft() if self.messages else None

            def stop(self):
                return 0

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                pass

        return Worker()


@pytest.fixture
def profile():
    return load_profile("cpu-1thread", SHIPPED)


def test_networks_are_timed_among_the_kernels_in_a_new_order_every_round(monkeypatch, profile):
    machine = FakeMachine()
    monkeypatch.setattr(calibration_module, "Worker", machine.worker)
    design = CalibrationDesign(rounds=2, runs=5, networks=8, classifier_points=4, chunk=40)
    calibration = calibrate(profile, TINY, design)
    per_round = len(calibration.kernels) + len(calibration.networks)
    timed = [i for chunk in machine.chunks for i in chunk]
    first, second = timed[:per_round], timed[per_round:2 * per_round]
    mixed = [chunk for chunk in machine.chunks if any(i.startswith("net:") for i in chunk)
             and any(not i.startswith("net:") for i in chunk)]
    assert len(mixed) >= 2  # networks share worker processes with kernels instead of coming after them
    positions = [[k for k, i in enumerate(order) if i.startswith("net:")] for order in (first, second)]
    assert positions[0] != positions[1] and positions[0][-1] < per_round - 8  # not all at the end, not the same slots


def test_what_ran_while_the_reference_was_slow_is_measured_again_and_the_quiet_time_kept(monkeypatch, profile):
    machine = FakeMachine(noisy=range(40, 90), slow=1.5)
    monkeypatch.setattr(calibration_module, "Worker", machine.worker)
    design = CalibrationDesign(rounds=2, runs=5, networks=8, classifier_points=4, chunk=60, reference_every=5,
                               remeasure_share=0.6)
    calibration = calibrate(profile, TINY, design)
    entries = {**calibration.kernels, **{f"net:{c}": e for c, e in calibration.networks.items()}}
    slow = [i for i, e in entries.items() if any(m > _true_time(i) * 1.01 for m in e["mins"])]
    assert calibration.reference["remeasured"] >= 40  # the noisy stretch: 50 ticks, less its references
    assert not slow, f"{len(slow)} items kept a time measured during interference"
    assert calibration.reference["spread"] < 0.05 and calibration.reference["quiet_s"] == pytest.approx(10e-6)


def test_re_measurements_stay_within_their_share_of_a_round(monkeypatch, profile):
    machine = FakeMachine(noisy=range(40, 80), slow=1.5)
    monkeypatch.setattr(calibration_module, "Worker", machine.worker)
    design = CalibrationDesign(rounds=1, runs=5, networks=8, classifier_points=4, reference_every=5, remeasure_share=0.2)
    calibration = calibrate(profile, TINY, design)
    assert 0.1 * calibration.reference["items"] < calibration.reference["remeasured"] <= 0.2 * calibration.reference["items"]


def test_without_a_reference_off_its_level_nothing_is_measured_twice(monkeypatch, profile):
    monkeypatch.setattr(calibration_module, "Worker", FakeMachine().worker)
    calibration = calibrate(profile, TINY, CalibrationDesign(rounds=2, runs=5, networks=8, classifier_points=4))
    assert calibration.reference["remeasured"] == 0 and calibration.reference["off_share"] == 0


def test_a_budget_adds_rounds_only_where_rounds_disagree(monkeypatch, profile):
    design = CalibrationDesign(rounds=2, runs=5, networks=8, classifier_points=4, budget_s=60, max_extra_rounds=3)
    from cpbench.timing.calibration_design import plan_kernel_tiers

    core, _ = plan_kernel_tiers(TINY, design)
    flaky = {k.id for k in core[5:15]}
    monkeypatch.setattr(calibration_module, "Worker", FakeMachine(flaky=flaky).worker)
    calibration = calibrate(profile, TINY, design)
    rounds = {i: len(e["mins"]) for i, e in calibration.kernels.items()}
    steady = [i for i in rounds if i not in flaky]
    assert all(rounds[i] == 2 for i in steady)  # quiet items keep the design's rounds
    assert sum(rounds[i] > 2 for i in flaky) >= len(flaky) // 2  # most flaky ones get more
    assert all(rounds[i] <= 5 for i in flaky) and calibration.plan["extra_rounds"] > 0


def test_the_budget_keeps_the_optional_kernels_that_fit_and_says_when_even_the_core_does_not():
    design = CalibrationDesign(rounds=2, budget_s=600, remeasure_share=0.2)
    plenty = _budget_plan(design, n_core=1000, n_extra=2000, n_networks=40, cost_kernel_s=0.01, cost_network_s=0.3)
    assert plenty["extra_kept"] == 2000 and not plenty["over_budget"]
    tight = _budget_plan(design, n_core=1000, n_extra=20000, n_networks=40, cost_kernel_s=0.01, cost_network_s=0.3)
    assert 0 < tight["extra_kept"] < 20000 and tight["projected_base_s"] <= 0.7 * 600
    hopeless = _budget_plan(design, n_core=50000, n_extra=100, n_networks=40, cost_kernel_s=0.01, cost_network_s=0.3)
    assert hopeless["extra_kept"] == 0 and hopeless["over_budget"]


def test_a_reference_bracket_is_off_only_beyond_its_own_spread():
    level = ReferenceLevel.of([10e-6 * (1 + 0.002 * (i % 5)) for i in range(50)])
    assert not level.off((10.0e-6, 10.1e-6)) and level.off((10e-6, 13e-6))
    noisy = ReferenceLevel.of([10e-6 * (1 + 0.05 * (i % 5)) for i in range(50)])
    assert noisy.tolerance > level.tolerance and not noisy.off((10e-6, 11e-6))


def test_noisy_networks_cannot_pull_the_composition_away_from_the_plain_sum():
    """Networks slowed at random by a host phase (the kernels not): the fitted composition chases the
    noise, the plain sum does not; the nested choice must not lose to the plain sum."""
    from test_kernels import _synthetic_calibration

    from cpbench.fitting.kernel_model import fit_kernel_model

    calibration, _ = _synthetic_calibration(noise=0.0, pairs=False)
    rng = np.random.default_rng(3)
    for entry in calibration.networks.values():
        entry["mins"] = [m * (1 + abs(rng.normal(0, 0.25))) for m in entry["mins"]]
    model = fit_kernel_model(calibration)
    assert model.kfold.mape <= model.raw_sum.mape * 1.05
    assert {"blocks", "blocks scaled", "blocks sum"} <= set(model.choice_kfold)


def test_the_verdict_names_the_machine_when_it_was_noisy_and_the_design_when_it_was_not():
    assert judge(0.03, 0.97, 40, {"network_spread_median": 0.01}, "cpu").good
    noisy = judge(0.12, 0.4, 40, {"network_spread_median": 0.05}, "cpu")
    assert not noisy.good and noisy.noisy and "quieter hour" in noisy.advice and "--budget" in noisy.advice
    quiet = judge(0.12, 0.4, 40, {"network_spread_median": 0.005, "reference_off_share": 0.01}, "cpu")
    assert not quiet.good and not quiet.noisy and "--whole" in quiet.advice
    assert "POOR" in quiet.line() and "12.0%" in quiet.line()


def test_clopper_pearson_and_bootstrap_intervals_cover_the_truth_as_promised():
    rng = np.random.default_rng(1)
    p, n, trials = 0.9, 20, 400
    hits = sum(lo <= p <= hi for lo, hi in (clopper_pearson(int(rng.binomial(n, p)), n) for _ in range(trials)))
    assert hits / trials >= 0.93  # exact: at least 95 % by construction, less only by chance
    mean = 0.05
    covered = 0
    for seed in range(150):
        sample = rng.exponential(mean, 40)
        lo, hi = bootstrap_mean(sample, seed=seed, resamples=1000)
        covered += lo <= mean <= hi
    assert 0.85 <= covered / 150 <= 0.99


def test_a_budget_that_is_no_duration_is_refused_in_one_line(cli, tmp_path):
    done = cli("calibrate", "--device", "cpu-1thread", "--budget", "ten minutes", "-w", str(tmp_path))
    assert done.returncode == 2 and "--budget" in done.stderr and "10m" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_unfinished_calibration_resumes_with_its_own_seed_and_a_new_one_draws_another(tmp_path):
    import json

    from cpbench.cli.calibrate import journal_seed

    journal = tmp_path / "cpu-1thread-x.calibration.partial.jsonl"
    journal.write_text(json.dumps({"format": 2, "design": {"seed": 1234}}) + "\n")
    assert journal_seed(journal) == 1234
    drawn = {journal_seed(tmp_path / "none.jsonl") for _ in range(5)}
    assert len(drawn) > 1  # a fresh calibration is not the same design every time


def test_calibrations_with_other_seeds_sample_other_cells():
    from cpbench.family.config import FASHION_MNIST
    from cpbench.timing.calibration_design import default_design, plan_kernels

    one, other = (set(plan_kernels(FASHION_MNIST, default_design("openvino", seed=s))) for s in (1, 2))
    assert one != other and len(one) == len(other)


def test_a_shipped_models_verdict_never_tells_this_machine_to_act_on_it():
    verdict = judge(0.02, 1.0, 40, {}, "openvino", shipped=True)
    assert "not this one" in verdict.advice and "cpbench calibrate --device openvino" in verdict.advice
    assert "acted on" not in verdict.line()


def test_a_budget_too_small_for_the_rounds_leaves_items_short_of_rounds_but_never_unmeasured(monkeypatch, profile):
    """Every item gets its first round; later rounds stop where the budget (at the measured cost per
    kernel) cannot pay for the next chunk, and the calibration says how many items fell short."""
    from types import SimpleNamespace

    machine = FakeMachine()
    monkeypatch.setattr(calibration_module, "Worker", machine.worker)
    monkeypatch.setattr(calibration_module, "time", SimpleNamespace(perf_counter=lambda: machine.tick * 0.5))
    real_plan = calibration_module._budget_plan
    monkeypatch.setattr(calibration_module, "_budget_plan",
                        lambda *a: {**real_plan(*a), "cost_kernel_s": 1.0, "cost_network_s": 1.0})
    design = CalibrationDesign(rounds=3, runs=5, networks=8, classifier_points=4, chunk=10, budget_s=60)
    calibration = calibrate(profile, TINY, design)
    rounds = [len(e["mins"]) for e in [*calibration.kernels.values(), *calibration.networks.values()]]
    assert min(rounds) >= 1 and calibration.plan["short_of_rounds"] > 0
    assert sum(rounds) < 3 * len(rounds)
