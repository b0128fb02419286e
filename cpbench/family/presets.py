"""Named sets of configs to export, from seconds (smoke) to the whole paper-000 study (paper)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cpbench.family.config import Config, Space, grids_2d, random_from_grid, random_from_space, sweeps_1d, unique
from cpbench.errors import choose

TIMING_RANDOM = 160
PAPER_RANDOM = 50
QUICK_RANDOM = 4


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    build: Callable[[Space, int], list[Config]]
    recipe: str | None  # default training recipe; None = export untrained


def _smoke(space: Space, seed: int) -> list[Config]:
    # tiny, odd and even k, one to two layers: trains in seconds, still well above chance
    return [Config(8, 12, 3, 1), Config(8, 16, 2, 2), Config(6, 12, 3, 2)]


def _quick(space: Space, seed: int) -> list[Config]:
    sweeps = sweeps_1d(space)
    return unique(sweeps + random_from_grid(space, QUICK_RANDOM, seed, exclude=set(sweeps)))


def _paper(space: Space, seed: int) -> list[Config]:
    studied = unique(sweeps_1d(space) + grids_2d(space))
    return unique(studied + random_from_grid(space, PAPER_RANDOM, seed, exclude=set(studied)))


def _timing(space: Space, seed: int) -> list[Config]:
    sweeps = sweeps_1d(space)
    return unique(sweeps + random_from_space(space, TIMING_RANDOM, seed, exclude=set(sweeps)))


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("smoke", "3 tiny configs; seconds, for tests", _smoke, "smoke"),
        Preset("quick", f"the 1-D sweeps around the baseline + {QUICK_RANDOM} random configs; about 5 min on 2 cores", _quick, "quick"),
        Preset("paper", f"1-D sweeps, the (f,s), (f,k), (f,l) grids and {PAPER_RANDOM} random configs, as paper 000", _paper, "paper"),
        Preset("timing", f"1-D sweeps + {TIMING_RANDOM} random configs over the whole space, untrained, for time models", _timing, None),
    )
}


def get_preset(name: str) -> Preset:
    return choose(PRESETS, name, "preset")
