"""The measurement protocol and its statistics, on synthetic timings."""

import numpy as np
import pytest

from cpbench.errors import UsageError
from cpbench.timing.protocol import MeasureSettings, geometric_mean, measure, median_confidence_interval, summarize


def test_summary_statistics_of_known_samples():
    times = [float(x) for x in range(1, 101)]  # 1..100
    s = summarize(times, timer_resolution_s=1e-9)
    assert s.n == 100 and s.median_s == 50.5 and s.mean_s == 50.5 and s.min_s == 1 and s.max_s == 100
    assert s.p90_s == pytest.approx(90.1) and s.p99_s == pytest.approx(99.01)
    assert s.iqr_s == pytest.approx(49.5)
    assert s.median_ci_low_s < 50.5 < s.median_ci_high_s
    assert s.stdev_pct == pytest.approx(100 * np.std(times, ddof=1) / 50.5)


def test_median_interval_covers_the_true_median_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    true_median = np.exp(0.0)  # lognormal(0, 0.3)
    hits = 0
    for _ in range(400):
        sample = np.sort(rng.lognormal(0.0, 0.3, 60))
        lo, hi = median_confidence_interval(sample)
        hits += lo <= true_median <= hi
    assert 0.92 <= hits / 400 <= 0.995


def test_warnings_when_the_spread_is_too_wide_or_runs_too_few():
    steady = summarize([1.0 + 0.001 * (i % 5) for i in range(100)], timer_resolution_s=1e-9)
    assert steady.warnings == []
    noisy = summarize([1.0] * 80 + [5.0] * 20, timer_resolution_s=1e-9)
    assert any("unstable" in w for w in noisy.warnings) and any("outliers" in w for w in noisy.warnings)
    few = summarize([1.0, 1.1, 1.2], timer_resolution_s=1e-9)
    assert any("only 3 runs" in w for w in few.warnings)
    tiny = summarize([1e-8] * 20, timer_resolution_s=1e-9)
    assert any("timer resolution" in w for w in tiny.warnings)


class FakeClock:
    def __init__(self, step: float):
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_stop_rule_needs_both_duration_and_count():
    calls = []
    # each clock read advances 1 ms: a run costs 1 ms between its two reads
    by_count = measure(lambda: calls.append(1), MeasureSettings(warmup_runs=3, warmup_time_s=0, min_time_s=0.01, min_runs=50), FakeClock(0.001))
    assert len(by_count.times_s) == 50  # 50 runs take 0.1 s > 0.01 s: the count decides
    by_time = measure(lambda: None, MeasureSettings(warmup_runs=0, warmup_time_s=0, min_time_s=1.0, min_runs=5), FakeClock(0.001))
    assert 400 <= len(by_time.times_s) <= 600  # ~2 ms per iteration: the duration decides
    capped = measure(lambda: None, MeasureSettings(warmup_runs=0, warmup_time_s=0, min_time_s=100, min_runs=5, max_runs=20), FakeClock(0.001))
    assert len(capped.times_s) == 20
    assert by_count.warmup_runs == 3 and by_count.first_s == pytest.approx(0.001)


def test_runtime_clock_measures_the_runtimes_own_latency_and_keeps_the_wall_time():
    own = iter(range(1, 10_000))
    settings = MeasureSettings(warmup_runs=2, warmup_time_s=0, min_time_s=0, min_runs=30)
    raw = measure(lambda: None, settings, FakeClock(0.001), own_latency=lambda: next(own) * 1e-6, timer="runtime")
    assert raw.clock == "runtime" and len(raw.times_s) == 30 == len(raw.wall_times_s)
    assert raw.times_s == pytest.approx([i * 1e-6 for i in range(1, 31)])  # read after each timed run only
    assert raw.wall_times_s == pytest.approx([0.001] * 30) and raw.own_times_s is None
    wall = measure(lambda: None, settings, FakeClock(0.001), own_latency=lambda: 5e-6)
    assert wall.clock == "wall" and wall.times_s == pytest.approx([0.001] * 30) and wall.own_times_s == pytest.approx([5e-6] * 30)
    with pytest.raises(UsageError, match="reports its own request latency"):
        measure(lambda: None, settings, FakeClock(0.001), timer="runtime")
    with pytest.raises(UsageError, match="every run"):
        measure(lambda: None, settings, FakeClock(0.001), own_latency=lambda: None, timer="runtime")


def test_measure_settings_validation():
    with pytest.raises(UsageError, match="min_runs"):
        MeasureSettings(min_runs=0)
    with pytest.raises(UsageError, match="max_runs"):
        MeasureSettings(min_runs=100, max_runs=10)


def test_geometric_mean():
    assert geometric_mean([0.5, 2.0]) == pytest.approx(1.0)


def test_a_comparison_says_when_its_runs_timed_different_clocks():
    """OpenVINO's own latency against a wall time is not like for like: the comparison carries both
    clocks and its table says so (an older run without a clock timed the wall)."""
    from types import SimpleNamespace

    from rich.console import Console

    from cpbench.cli.views.common import compare_table
    from cpbench.timing.compare import compare_runs

    def run(name, clock, median):
        profile = {"clock": clock} if clock else {}
        model = SimpleNamespace(model="m", status="ok", median_s=median, rounds=[])
        return SimpleNamespace(id=name, profile=profile, measurements=[model], hardware_id="h")

    mixed = compare_runs(run("a", None, 10e-6), run("b", "runtime", 8e-6))
    assert mixed.clocks == ("wall", "runtime") and mixed.as_dict()["clocks"] == ["wall", "runtime"]
    console = Console(width=400, record=True)
    console.print(compare_table(mixed))
    assert "A timed the wall clock, B the runtime clock" in console.export_text()
    same = compare_runs(run("a", "runtime", 10e-6), run("b", "runtime", 8e-6))
    console = Console(width=400, record=True)
    console.print(compare_table(same))
    assert same.clocks == ("runtime", "runtime") and "clock" not in console.export_text()
