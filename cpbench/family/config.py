"""Configurations T = (f, s, k, l) of paper 000's scalable CNN, its baselines and candidate sets.

A Config is a value: validated on construction, hashable, with a stable id string that names
its files and store rows. A Space bundles a dataset's baseline T0 with the candidate sets Omega
the paper sweeps over.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass

from cpbench.errors import UsageError, check_choice

MAX_F, MAX_S, MAX_K, MAX_L = 4096, 4096, 64, 16  # far beyond any useful network; keeps arithmetic in int64
_ID_PATTERN = re.compile(r"^f(\d+)-s(\d+)-k(\d+)-l(\d+)$")


@dataclass(frozen=True, order=True)
class Config:
    """One member of the family: f filters per conv, s x s input, k x k kernels, l conv blocks."""

    f: int
    s: int
    k: int
    l: int  # noqa: E741 - the paper's name for the number of layers

    def __post_init__(self) -> None:
        problem = self.problem()
        if problem:
            raise UsageError(f"invalid config '{self.as_csv()}': {problem}")

    def problem(self) -> str | None:
        """What makes this config unbuildable (or absurdly large), or None."""
        for name, value, meaning in (("f", self.f, "filters"), ("k", self.k, "kernel size"), ("l", self.l, "layers")):
            if not isinstance(value, int) or value < 1:
                return f"{name} ({meaning}) must be an integer >= 1, got {value!r}"
        if not isinstance(self.s, int) or self.s < 1:
            return f"s (input size) must be an integer >= 1, got {self.s!r}"
        for name, value, limit in (("f", self.f, MAX_F), ("s", self.s, MAX_S), ("k", self.k, MAX_K), ("l", self.l, MAX_L)):
            if value > limit:
                return f"{name}={value} is above cpbench's limit of {limit}; use a smaller value"
        if self.s < 2**self.l:
            return (
                f"s={self.s} is too small for l={self.l} 2x2 max-poolings; "
                f"use s >= {2**self.l} or fewer layers"
            )
        return None

    @property
    def id(self) -> str:
        """Stable, file-name-safe identifier, e.g. 'f64-s28-k5-l3'."""
        return f"f{self.f}-s{self.s}-k{self.k}-l{self.l}"

    def as_csv(self) -> str:
        return f"{self.f},{self.s},{self.k},{self.l}"

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.f, self.s, self.k, self.l)

    @property
    def final_size(self) -> int:
        """Spatial size of the feature map that reaches the classifier."""
        return self.s // 2**self.l

    @classmethod
    def parse(cls, text: str) -> "Config":
        """Parse 'f,s,k,l' (as typed on the command line) or an id such as 'f64-s28-k5-l3'."""
        raw = text.strip()
        match = _ID_PATTERN.match(raw)
        parts = list(match.groups()) if match else [p.strip() for p in raw.split(",")]
        if len(parts) != 4 or not all(re.fullmatch(r"-?\d+", p) for p in parts):
            raise UsageError(
                f"invalid config {text!r}: expected four integers f,s,k,l such as 64,28,5,3"
            )
        return cls(*(int(p) for p in parts))


@dataclass(frozen=True)
class Space:
    """A dataset's baseline T0 and the candidate sets Omega of paper 000 section 2.3."""

    name: str
    baseline: Config
    omega_f: tuple[int, ...]
    omega_s: tuple[int, ...]
    omega_k: tuple[int, ...]
    omega_l: tuple[int, ...]

    def replace_baseline(self, **changes: int) -> Config:
        values = dict(f=self.baseline.f, s=self.baseline.s, k=self.baseline.k, l=self.baseline.l)
        values.update(changes)
        return Config(**values)

    def grid(self) -> list[Config]:
        """Every valid config of the Omega product."""
        out = []
        for f in self.omega_f:
            for s in self.omega_s:
                for k in self.omega_k:
                    for l in self.omega_l:  # noqa: E741
                        if s >= 2**l:
                            out.append(Config(f, s, k, l))
        return out


OMEGA_F = (64, 48, 40, 32, 24, 16, 12, 8, 4, 2)
OMEGA_K = (5, 4, 3)
OMEGA_L = (3, 2, 1)

LFW = Space(
    name="lfw",
    baseline=Config(64, 64, 5, 3),
    omega_f=OMEGA_F,
    omega_s=(64, 56, 48, 40, 32, 24, 20, 12),
    omega_k=OMEGA_K,
    omega_l=OMEGA_L,
)

FASHION_MNIST = Space(
    name="fashionmnist",
    baseline=Config(64, 28, 5, 3),
    omega_f=OMEGA_F,
    omega_s=(28, 24, 20, 16, 12, 8),
    omega_k=OMEGA_K,
    omega_l=OMEGA_L,
)

SPACES = {space.name: space for space in (FASHION_MNIST, LFW)}


def unique(configs: list[Config]) -> list[Config]:
    """Drop repeats, keeping first occurrences in order."""
    seen: set[Config] = set()
    out = []
    for config in configs:
        if config not in seen:
            seen.add(config)
            out.append(config)
    return out


def sweeps_1d(space: Space) -> list[Config]:
    """The baseline, then each parameter varied over its Omega with the others at baseline (eq. 2)."""
    configs = [space.baseline]
    configs += [space.replace_baseline(f=v) for v in space.omega_f]
    configs += [space.replace_baseline(s=v) for v in space.omega_s]
    configs += [space.replace_baseline(k=v) for v in space.omega_k]
    configs += [space.replace_baseline(l=v) for v in space.omega_l]
    return unique(configs)


def grids_2d(space: Space) -> list[Config]:
    """The (f, s), (f, k) and (f, l) grids of eqs. (3)-(5), others at baseline."""
    configs = []
    for f in space.omega_f:
        configs += [space.replace_baseline(f=f, s=v) for v in space.omega_s]
        configs += [space.replace_baseline(f=f, k=v) for v in space.omega_k]
        configs += [space.replace_baseline(f=f, l=v) for v in space.omega_l]
    return unique(configs)


def random_from_grid(space: Space, n: int, seed: int, exclude: set[Config] | None = None) -> list[Config]:
    """n distinct configs drawn uniformly from the Omega product (the paper's 50 random configs)."""
    pool = [c for c in space.grid() if not exclude or c not in exclude]
    rng = random.Random(seed)
    return rng.sample(pool, min(n, len(pool)))


def random_from_space(space: Space, n: int, seed: int, exclude: set[Config] | None = None) -> list[Config]:
    """n distinct integer configs spread over the whole search space, not only the Omega grid.

    f is drawn log-uniformly in [1, f0] (small nets are where fixed overheads show), s uniformly
    over the sizes that allow l poolings up to s0, k in [1, k0], l in [1, l0]. Used to calibrate
    and to test time models on configs the Omega sets never visit.
    """
    b = space.baseline
    rng = random.Random(seed)

    def inside(c: Config) -> bool:
        return 1 <= c.f <= b.f and 1 <= c.k <= b.k and 1 <= c.l <= b.l and 2**c.l <= c.s <= b.s

    taken = {c for c in exclude or () if inside(c)}
    out: list[Config] = []
    capacity = sum(b.f * b.k * max(0, b.s - 2**l + 1) for l in range(1, b.l + 1))  # every config there is
    while len(out) < n and len(taken) < capacity:
        l = rng.randint(1, b.l)  # noqa: E741
        f = min(b.f, max(1, round(math.exp(rng.uniform(0.0, math.log(b.f))))))
        s = rng.randint(2**l, b.s)
        k = rng.randint(1, b.k)
        config = Config(f, s, k, l)
        if config not in taken:
            taken.add(config)
            out.append(config)
    return out


def default_space(dataset: str) -> str:
    """The one rule for a dataset's search space when none was chosen: FashionMNIST's own, else
    paper 000's LFW space (64 x 64 inputs), which image folders are planned on."""
    return "fashionmnist" if dataset == "fashionmnist" else "lfw"


def space_of(dataset: str, stored: str | None = None):
    """The search space of a dataset's models: the one stored with them, else the default rule."""
    name = stored or default_space(dataset)
    check_choice(name, SPACES, "space")
    return SPACES[name]
