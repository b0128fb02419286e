"""What a calibration measures: how much (CalibrationDesign, each runtime's defaults) and which
kernels and networks of a space (the plan). For each conv kind (first block, inner block, and the
pairs of consecutive blocks a network runs: first then inner, inner then inner; or, with `whole`,
the whole network of each depth) and kernel size k, the (f, s) matrix of the space is sampled, not
swept: every f at a few s, every s at a few f, and a random share of the other cells (the model
completes the matrix from its low-rank structure), plus the classifier at log-spaced input sizes
and the empty call."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np

from cpbench.errors import UsageError
from cpbench.family.config import Config, Space, random_from_space
from cpbench.family.kernels import (EMPTY, Kernel, classifier, first, first_pair, inner, inner_pair, network_depth, network_kind, whole_network)


NETWORK_SEED = 7001  # calibration networks; benchmarks draw their test configs with other seeds and exclude these
NETWORK_POOL = 50  # random configs per calibration network, to pick them from across the log-MACs range


@dataclass(frozen=True)
class CalibrationDesign:
    """How much to measure. Defaults sized for <= 10 minutes on a 2-core VM under ONNX Runtime."""

    full_s: int = 4  # every f at this many s values (spread over the range)
    full_f: int = 4  # every s at this many f values (random, plus the largest)
    share: float = 1.0  # and this share of the remaining cells, at random (1: every cell; the rest is completed)
    pairs: bool = False  # time consecutive blocks as pairs too (a composition of pairs is then fitted beside that of blocks)
    whole: bool = False  # time whole networks over each (k, l)'s (f, s) matrix instead of blocks (see conv_kinds)
    classifier_points: int = 24
    networks: int = 40  # timed as `cpbench time` times a model (the profile's measure settings), one per round
    rounds: int = 3
    runs: int = 50  # timed runs per kernel per round (the fixed count of the round statistic)
    warmup_runs: int = 10
    chunk: int = 400  # kernels per worker process
    seed: int = 0
    budget_s: float = 0.0  # > 0: plan the kernels to this many seconds and spend what is left on rounds that disagree
    reference_every: int = 10  # the reference kernel is timed after every this many items of a worker (and first)
    remeasure_share: float = 0.2  # at most this share of a round's items re-measured for a reference off its level
    max_extra_rounds: int = 3  # rounds an item may get beyond `rounds` where its rounds disagree (with a budget)

    def __post_init__(self) -> None:
        for name, (low, high) in DESIGN_BOUNDS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                option = ("--budget" if name == "budget_s" else f"--{name}") if name in OPTIONS else f"the design's {name}"
                raise UsageError(f"{option} is {value!r}; it must lie in [{low:g}, {high:g}]")
        if self.pairs and self.whole:
            raise UsageError("--pairs and --whole are two ways to time the family (pairs of blocks, or whole networks "
                             "instead of blocks); pick one")


# what the design may ask for; the upper bounds keep planning and the run within a day on a laptop
DESIGN_BOUNDS: dict[str, tuple[float, float]] = {
    "rounds": (1, 20), "runs": (5, 10_000), "share": (0.0, 1.0), "networks": (0, 2_000), "full_s": (1, 1_000),
    "full_f": (1, 1_000), "chunk": (1, 100_000), "classifier_points": (1, 1_000), "warmup_runs": (0, 10_000),
    "budget_s": (0, 86_400), "seed": (0, 2**31 - 1), "reference_every": (1, 10_000), "remeasure_share": (0.0, 1.0), "max_extra_rounds": (0, 20),
}
OPTIONS = ("rounds", "runs", "share", "networks", "budget_s", "seed")  # the ones `cpbench calibrate` takes as options
MIN_NETWORKS = 7  # the composition fit's five terms and two degrees of freedom to judge it


def default_design(runtime: str, *, rounds: int | None = None, runs: int | None = None, networks: int | None = None,
                   share: float | None = None, pairs: bool = False, whole: bool | None = None,
                   budget_s: float = 600.0, seed: int = 0) -> CalibrationDesign:
    """`cpbench calibrate`'s design for a runtime, each None taking the runtime's default. Sized for
    10 minutes on a 2-core VM: under ONNX Runtime 12,824 blocks x 3 rounds (15,344 with pairs);
    under OpenVINO, which compiles every kernel (~25 ms), 4,839 whole networks x 2 rounds (437-452 s;
    4,184 blocks, 5,794 with pairs), whose kernels need many runs: after a compile OpenVINO's first
    hundred or so runs are slow (here the minimum of 50 runs after 10 warm-up ones sat 25 % above
    that of 500 after 110, and moved by up to 30 % between compiles). Whole networks are the
    OpenVINO default (docs/decisions/0006-openvino-whole-networks.md); under ONNX Runtime they scored worse than blocks."""
    if networks is not None and networks < MIN_NETWORKS:
        raise UsageError(f"--networks is {networks}; the latency model learns how kernels compose from at least "
                         f"{MIN_NETWORKS} networks: pass --networks {MIN_NETWORKS} or more")
    compiles = runtime != "onnxruntime"
    whole = (compiles and not pairs) if whole is None else whole
    sampled = pairs or whole
    return CalibrationDesign(
        rounds=rounds if rounds is not None else (2 if compiles else 3),
        runs=runs if runs is not None else (200 if compiles else 50),
        networks=networks if networks is not None else (30 if compiles else 40),
        share=share if share is not None else ((0.05 if sampled else 0.1) if compiles else (0.5 if sampled else 1.0)),
        pairs=pairs, whole=whole, full_s=3 if compiles and sampled else 4, full_f=3 if compiles and sampled else 4,
        warmup_runs=100 if compiles else 10, budget_s=budget_s, seed=seed)


def _spread(values: list[int], n: int) -> list[int]:
    """n values spread evenly over a sorted list, ends included."""
    if n >= len(values):
        return list(values)
    return sorted({values[round(i * (len(values) - 1) / (n - 1))] for i in range(n)}) if n > 1 else [values[-1]]


def conv_axes(space: Space, kind: str) -> tuple[list[int], list[int]]:
    """The f and s values a conv kind takes in the integer space up to the baseline: a first block
    sees s in [2, s0] (s >= 2**l), an inner block s // 2 or s // 4 ... >= 2; a pair starts where its
    first block does and needs s >= 4 (its second block runs at s // 2 >= 2); a whole network of
    depth l takes s in [2**l, s0]."""
    b = space.baseline
    fs = list(range(1, b.f + 1))
    if network_depth(kind):
        return fs, list(range(2 ** network_depth(kind), b.s + 1))
    low = 4 if kind.endswith("-pair") else 2
    high = b.s if kind.startswith("first") else b.s // 2
    return fs, list(range(low, high + 1))


def conv_kinds(space: Space, design: "CalibrationDesign") -> tuple[str, ...]:
    """The conv kinds a space's networks run: inner blocks from l = 2, pairs of them from l = 3; with
    `whole`, instead, the whole network at each depth up to the baseline's. Why whole networks: under
    OpenVINO on AMX a block timed alone converts its input and output to bf16 and back, which a
    network does once, and the composition of pairs needs four tables that 10 minutes of compiles
    (~25 ms each) sample too sparsely; a whole network is one compile (~37 ms a network-round with
    its 300 runs), and its border conversions are the network's own
    (docs/decisions/0006-openvino-whole-networks.md)."""
    depth = space.baseline.l
    if design.whole:
        return tuple(network_kind(d) for d in range(1, depth + 1))
    kinds = ["first"] + (["inner"] if depth > 1 else [])
    if design.pairs:
        kinds += (["first-pair"] if depth > 1 else []) + (["inner-pair"] if depth > 2 else [])
    return tuple(kinds)


def classifier_sizes(space: Space, points: int) -> list[int]:
    b = space.baseline
    largest = b.f * (b.s // 2) ** 2
    return sorted({max(1, round(math.exp(v))) for v in np.linspace(0.0, math.log(largest), points)})


def plan_kernels(space: Space, design: CalibrationDesign, in_channels: int = 1) -> list[Kernel]:
    """Every kernel the design times when its budget allows all of them."""
    core, extra = plan_kernel_tiers(space, design, in_channels)
    return core + extra


def plan_kernel_tiers(space: Space, design: CalibrationDesign, in_channels: int = 1) -> tuple[list[Kernel], list[Kernel]]:
    """The kernels a calibration always times (the empty call, the classifier, and per conv table
    every f at `full_s` values of s and every s at `full_f` values of f: the rows and columns from
    which the completion learns each row's and column's factor), and the random share of the other
    cells, in the order a budget drops them last to first (the completion predicts those)."""
    rng = random.Random(design.seed)
    core: list[Kernel] = [EMPTY]
    extra: list[Kernel] = []
    makers = {"first": lambda f, s, k: first(f, s, k, in_channels), "inner": inner,
              "first-pair": lambda f, s, k: first_pair(f, s, k, in_channels), "inner-pair": inner_pair}
    for depth in range(1, space.baseline.l + 1):
        makers[network_kind(depth)] = lambda f, s, k, depth=depth: whole_network(f, s, k, depth, in_channels)
    if space.baseline.l >= 1:
        for kind in conv_kinds(space, design):
            fs, ss = conv_axes(space, kind)
            for k in range(1, space.baseline.k + 1):
                cells = {(f, s) for f in fs for s in _spread(ss, design.full_s)}
                some_f = set(rng.sample(fs[:-1], min(design.full_f - 1, len(fs) - 1))) | {fs[-1]}
                cells |= {(f, s) for f in some_f for s in ss}
                rest = sorted({(f, s) for f in fs for s in ss} - cells)
                core += [makers[kind](f, s, k) for f, s in sorted(cells)]
                extra += [makers[kind](f, s, k) for f, s in sorted(rng.sample(rest, round(design.share * len(rest))))]
    core += [classifier(n) for n in classifier_sizes(space, design.classifier_points)]
    random.Random(design.seed + 1).shuffle(extra)
    return core, extra


def plan_networks(space: Space, design: CalibrationDesign) -> list[Config]:
    """`design.networks` configs spread evenly over the space's log-MACs range, one per equal-width
    bin, drawn from a random pool. Why: the composition is used from the smallest network up to the
    baseline (recommend divides the baseline's time by the pick's), so it must be learned there too.
    Plain random configs (f log-uniform) put almost every network among the smallest, and the
    composition learned on them over-predicted the large ones (docs/decisions/0004-networks-over-log-macs.md)."""
    from cpbench.family.closed_form import Layers, total_macs

    n = design.networks
    pool = random_from_space(space, NETWORK_POOL * n, seed=NETWORK_SEED)
    if n == 0 or len(pool) <= n:
        return pool[:n]
    log_macs = np.log(total_macs(Layers.of(pool)))
    edges = np.linspace(log_macs.min(), log_macs.max(), n + 1)
    rng = random.Random(NETWORK_SEED)
    free = set(range(len(pool)))
    chosen: list[int] = []
    for low, high in zip(edges[:-1], edges[1:]):
        inside = [i for i in sorted(free) if low <= log_macs[i] <= high]
        centre = (low + high) / 2
        pick = rng.choice(inside) if inside else min(free, key=lambda i: (abs(log_macs[i] - centre), i))
        free.discard(pick)
        chosen.append(pick)
    return [pool[i] for i in chosen]


