"""Which ops a runtime fuses into the kernel before them, learned per device as nn-Meter does: a
candidate pair (a producer, then an op reading only its output) is timed as the producer alone, the
follower alone and the two together; the pair fuses where the follower's own cost mostly vanishes in
the pair. The rules then group a graph's ops into the kernels the runtime executes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cpbench.anynet.builders import op_graph
from cpbench.anynet.ops import Op

ACTIVATIONS = ("Relu", "Clip", "Sigmoid", "HardSigmoid", "Swish", "HardSwish")
# (producer, follower): a producer is a kernel type, or an elementwise op by name
CANDIDATES: tuple[tuple[str, str], ...] = (
    *(("conv", a) for a in ACTIVATIONS), ("conv", "Add"),
    *(("dwconv", a) for a in ACTIVATIONS),
    ("gemm", "Relu"), ("Add", "Relu"), ("BatchNormalization", "Relu"), ("pool", "Relu"),
)
SAVED_SHARE = 0.5  # fused: the pair saves more than half of what the follower costs alone
# the (channels, side) each candidate is tested at: few channels on large maps, so that the follower
# (work per element) weighs as much as the producer (work per element and channel) and shows above noise
TEST_SHAPES = ((8, 112), (16, 56), (32, 28))


def producer_key(op: Op) -> str:
    return op.features.get("op", op.kind) if op.kind == "elementwise" else (op.kind or op.op_type)


def _producer_features(producer: str, c: int, side: int) -> tuple[str, dict]:
    if producer in ("conv", "dwconv"):  # a cheap producer, so the follower's share of the pair is large
        groups, k = (c, 3) if producer == "dwconv" else (1, 1)
        return producer, {"cin": c, "cout": c, "h": side, "w": side, "kh": k, "kw": k, "stride": 1, "dilation": 1,
                          "groups": groups, "oh": side, "ow": side}
    if producer == "gemm":
        return "gemm", {"n_in": c * 8, "n_out": c * 8}
    if producer == "pool":
        return "pool", {"op": "MaxPool", "c": c, "h": side, "w": side, "k": 3, "stride": 1, "oh": side, "ow": side}
    return "elementwise", {"op": producer, "elements": c * side * side, "c": c, "broadcast": 0}


def _follower_features(follower: str, producer_kind: str, c: int, side: int) -> dict:
    if producer_kind == "gemm":
        return {"op": follower, "elements": c * 8, "c": c * 8, "broadcast": 0}
    return {"op": follower, "elements": c * side * side, "c": c, "broadcast": 0}


def test_items(candidates=CANDIDATES) -> list[tuple[str, bytes]]:
    """The graphs that decide the candidates: per test size the producer alone, the follower alone
    and the pair, ids fuse:<producer>><follower>:<c>x<side>:<part>."""
    items = []
    for producer, follower in candidates:
        for c, side in TEST_SHAPES:
            kind, pf = _producer_features(producer, c, side)
            ff = _follower_features(follower, kind, c, side)
            base = f"fuse:{producer}>{follower}:{c}x{side}"
            items.append((f"{base}:first", op_graph(kind, pf)))
            items.append((f"{base}:second", op_graph("elementwise", ff)))
            items.append((f"{base}:pair", op_graph(kind, pf, [("elementwise", ff)])))
    return items


@dataclass(frozen=True)
class FusionRule:
    producer: str
    follower: str
    saved_share: float  # median over the test sizes of (first + second - pair - empty) / (second - empty)

    @property
    def fuses(self) -> bool:
        return self.saved_share > SAVED_SHARE


def decide(times: dict[str, float], empty_s: float, candidates=CANDIDATES) -> list[FusionRule]:
    """The rules from the timed test items (`times`: id -> seconds)."""
    rules = []
    for producer, follower in candidates:
        shares = []
        for c, side in TEST_SHAPES:
            base = f"fuse:{producer}>{follower}:{c}x{side}"
            parts = [times.get(f"{base}:{p}") for p in ("first", "second", "pair")]
            if None in parts:
                continue
            first, second, pair = parts
            own = max(second - empty_s, 1e-9)
            shares.append((first + second - pair - empty_s) / own)
        if shares:
            rules.append(FusionRule(producer, follower, float(np.median(shares))))
    return rules


@dataclass
class Kernel:
    """Ops the runtime executes as one kernel: the head, predicted by its kernel type, and the
    followers fused into it."""

    head: Op
    fused: list[Op]

    @property
    def label(self) -> str:
        return "+".join([self.head.op_type] + [op.op_type for op in self.fused])


def group(ops: list[Op], fusing: set[tuple[str, str]]) -> list[Kernel]:
    """The graph's kernels: an op joins the kernel before it where (that kernel's head, the op) is
    a fusing rule, or (the last fused op, the op) is one, and it is the only reader of that kernel's
    output. Free ops (reshapes) are kernels of their own that cost nothing."""
    readers: dict[str, int] = {}
    for op in ops:
        for name in op.inputs:
            readers[name] = readers.get(name, 0) + 1
    kernels: list[Kernel] = []
    by_output: dict[str, Kernel] = {}
    for op in ops:
        joined = None
        if op.kind == "elementwise":
            for name in op.inputs:
                owner = by_output.get(name)
                if owner is None or readers.get(name, 0) != 1 or name != _output(owner):
                    continue
                last = owner.fused[-1] if owner.fused else owner.head
                follower = op.features.get("op", op.op_type)
                if (producer_key(owner.head), follower) in fusing or (producer_key(last), follower) in fusing:
                    joined = owner
                    break
        if joined is not None:
            joined.fused.append(op)
        else:
            joined = Kernel(op, [])
            kernels.append(joined)
        for name in op.outputs:
            by_output[name] = joined
    return kernels


def _output(kernel: Kernel) -> str:
    last = kernel.fused[-1] if kernel.fused else kernel.head
    return last.outputs[0] if last.outputs else ""
