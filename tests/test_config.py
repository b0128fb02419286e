import re

import pytest

from cpbench.family.config import FASHION_MNIST, LFW, Config, grids_2d, sweeps_1d
from cpbench.errors import UsageError
from cpbench.family.presets import PRESETS, get_preset


def test_parse_and_id_round_trip():
    config = Config.parse("64,28,5,3")
    assert config == Config(64, 28, 5, 3)
    assert config.id == "f64-s28-k5-l3"
    assert Config.parse(config.id) == config
    assert Config.parse(" 32, 24 ,3,2 ") == Config(32, 24, 3, 2)


@pytest.mark.parametrize(
    "text, message",
    [
        ("64,28,5", "expected four integers"),
        ("64,28,5,3,1", "expected four integers"),
        ("a,b,c,d", "expected four integers"),
        ("0,28,5,3", "f (filters) must be an integer >= 1"),
        ("64,28,0,3", "k (kernel size) must be an integer >= 1"),
        ("64,28,5,0", "l (layers) must be an integer >= 1"),
        ("64,2,5,3", "s=2 is too small for l=3"),
        ("64,-28,5,3", "s (input size) must be an integer >= 1"),
    ],
)
def test_malformed_configs_are_rejected_with_the_reason(text, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        Config.parse(text)


def test_smallest_input_for_l_poolings():
    assert Config(1, 8, 1, 3).final_size == 1
    with pytest.raises(UsageError):
        Config(1, 7, 1, 3)


def test_baselines_and_candidate_sets():
    assert LFW.baseline == Config(64, 64, 5, 3)
    assert FASHION_MNIST.baseline == Config(64, 28, 5, 3)
    assert FASHION_MNIST.omega_s == (28, 24, 20, 16, 12, 8)
    assert LFW.omega_f == (64, 48, 40, 32, 24, 16, 12, 8, 4, 2)
    assert LFW.omega_k == (5, 4, 3) and LFW.omega_l == (3, 2, 1)


def test_sweeps_vary_one_parameter_at_a_time():
    configs = sweeps_1d(FASHION_MNIST)
    b = FASHION_MNIST.baseline
    assert configs[0] == b
    assert len(configs) == 1 + 9 + 5 + 2 + 2
    for c in configs:
        assert sum(x != y for x, y in zip(c.as_tuple(), b.as_tuple())) <= 1


def test_grids_cover_the_three_pairs():
    grid = set(grids_2d(FASHION_MNIST))
    assert len(grid) == 60 + 20 + 20  # (f,s) + (f,k) + (f,l), sharing the baseline rows
    assert Config(2, 8, 5, 3) in grid and Config(2, 28, 3, 3) in grid and Config(2, 28, 5, 1) in grid


def test_presets_are_deterministic_and_sized_as_documented():
    for preset in PRESETS.values():
        assert preset.build(FASHION_MNIST, 0) == preset.build(FASHION_MNIST, 0)
    quick = get_preset("quick").build(FASHION_MNIST, 0)
    assert set(sweeps_1d(FASHION_MNIST)) <= set(quick) and len(quick) == 23
    paper = get_preset("paper").build(FASHION_MNIST, 0)
    assert set(grids_2d(FASHION_MNIST)) <= set(paper) and len(paper) == 150
    timing = get_preset("timing").build(FASHION_MNIST, 0)
    assert len(timing) >= 150 and len(set(timing)) == len(timing)
    assert {c.l for c in timing} == {1, 2, 3} and {c.k for c in timing} == {1, 2, 3, 4, 5}
    assert min(c.f for c in timing) == 1 and max(c.f for c in timing) == 64
    assert get_preset("timing").build(FASHION_MNIST, 1) != timing


def test_unknown_preset():
    with pytest.raises(UsageError, match="unknown preset 'nope'"):
        get_preset("nope")
