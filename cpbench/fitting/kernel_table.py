"""The kernel tables of a calibration: for each conv kind and k, the times over the (f, s) matrix,
completed from the measured cells by low-rank factorisation (cpbench.fitting.completion), so the
jumps a runtime's kernels make at some channel counts are row factors learned from every f
measured, whatever they are on this CPU; the classifier interpolated over its input size; the
empty call. `terms` turns configs into the sums a composition combines (cpbench.fitting.kernel_model).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cpbench.errors import UsageError
from cpbench.family.closed_form import Layers
from cpbench.family.kernels import network_depth, network_kind
from cpbench.fitting.completion import complete, denoises
from cpbench.timing.calibration_record import Calibration, round_min

BLOCK_TERMS = ("constant", "first", "inner", "classifier", "boundaries")
COMPOSITION_TERMS = {"blocks": BLOCK_TERMS, "pairs": BLOCK_TERMS, "networks": ("constant", "network")}


def _measured(cells: list[dict]) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """One (kind, k)'s cells as (s_min, round-min over f x s, measured mask, per-round mins)."""
    f_max = max(e["f"] for e in cells)
    s_min, s_max = min(e["s"] for e in cells), max(e["s"] for e in cells)
    values = np.ones((f_max, s_max - s_min + 1))
    mask = np.zeros_like(values, dtype=bool)
    n_rounds = min(len(e["mins"]) for e in cells)
    rounds = np.ones((n_rounds,) + values.shape)
    for e in cells:
        values[e["f"] - 1, e["s"] - s_min] = round_min(e)
        mask[e["f"] - 1, e["s"] - s_min] = True
        rounds[:, e["f"] - 1, e["s"] - s_min] = e["mins"][:n_rounds]
    return s_min, values, mask, rounds


def _completion_groups(measured: dict) -> list[list[tuple[str, int]]]:
    """Which tables are completed together. Each block table alone; the whole-network tables of
    every depth and k as one matrix of f by (l, k, s), so a row's factor (what f costs, jumps at the
    runtime's channel counts included) is learned from every table at once. Why: a whole network
    is sampled at 3 s per f (10 minutes of compiles), too few to learn a row's factors from one
    table (docs/decisions/0006-openvino-whole-networks.md)."""
    whole = [key for key in measured if network_depth(key[0])]
    rows = {measured[key][1].shape[0] for key in whole}
    groups = [[key] for key in measured if key not in whole or len(rows) > 1]
    return groups + ([whole] if whole and len(rows) == 1 else [])


@dataclass
class ConvTable:
    """Completed times of one conv kind and k over f (rows, from 1) and s (columns, from s_min)."""

    kind: str
    k: int
    s_min: int
    times: np.ndarray
    measured: np.ndarray  # mask of measured cells
    rank: int
    cv_mape: float
    denoised: bool = False  # True: the measured cells are the low-rank fit's too, not the times as measured

    def as_dict(self) -> dict:
        return {"kind": self.kind, "k": self.k, "s_min": self.s_min, "rank": self.rank, "cv_mape": self.cv_mape,
                "denoised": self.denoised, "times": self.times.tolist(),
                "measured": ["".join("1" if m else "0" for m in row) for row in self.measured]}

    @classmethod
    def from_dict(cls, payload: dict) -> "ConvTable":
        measured = np.array([[c == "1" for c in row] for row in payload["measured"]], dtype=bool)
        return cls(payload["kind"], int(payload["k"]), int(payload["s_min"]), np.array(payload["times"], float), measured,
                   int(payload["rank"]), float(payload["cv_mape"]), bool(payload["denoised"]))

    def lookup(self, f: np.ndarray, s: np.ndarray) -> np.ndarray:
        rows, cols = self.times.shape
        fi, si = f.astype(int) - 1, s.astype(int) - self.s_min
        if (fi < 0).any() or (fi >= rows).any() or (si < 0).any() or (si >= cols).any():
            raise UsageError(f"a config needs a {self.kind} block outside the calibrated f in [1, {rows}], "
                             f"s in [{self.s_min}, {self.s_min + cols - 1}]; calibrate a larger space")
        return self.times[fi, si]


@dataclass
class KernelTable:
    convs: dict[tuple[str, int], ConvTable]
    classifier_n: np.ndarray
    classifier_t: np.ndarray
    empty_s: float

    @classmethod
    def from_calibration(cls, calibration: Calibration, denoise: bool = True) -> "KernelTable":
        """The completed tables of a calibration. denoise=False keeps every measured cell as timed
        (the reference `denoises` is judged against)."""
        entries = list(calibration.kernels.values())
        measured = {}  # (kind, k) -> (s_min, values, mask, rounds)
        for kind in sorted({e["kind"] for e in entries} - {"classifier", "empty"}):
            for k in sorted({e["k"] for e in entries if e["kind"] == kind}):
                measured[(kind, k)] = _measured([e for e in entries if e["kind"] == kind and e["k"] == k])
        convs = {}
        for group in _completion_groups(measured):
            # a group's tables side by side: one matrix of f by every column of every table in it
            values = np.hstack([measured[key][1] for key in group])
            mask = np.hstack([measured[key][2] for key in group])
            n_rounds = min(len(measured[key][3]) for key in group)
            rounds = np.concatenate([measured[key][3][:n_rounds] for key in group], axis=2)
            filled, rank, cv, ridge = complete(values, mask)
            denoised = denoise and denoises(rounds, mask, rank, ridge)
            filled = np.maximum(filled, values[mask].min() * 0.5)
            times = filled if denoised else np.where(mask, values, filled)
            at = 0
            for kind, k in group:
                s_min, own, own_mask, _ = measured[(kind, k)]
                width = own.shape[1]
                convs[(kind, k)] = ConvTable(kind, k, s_min, times[:, at:at + width], own_mask, rank, cv, denoised)
                at += width
        fc = sorted((e["features"], round_min(e)) for e in entries if e["kind"] == "classifier")
        empty = [round_min(e) for e in entries if e["kind"] == "empty"]
        if not fc or not empty:
            raise UsageError("the calibration lacks the classifier or the empty call; rerun 'cpbench calibrate'")
        return cls(convs, np.array([n for n, _ in fc], float), np.array([t for _, t in fc]), empty[0])

    def as_dict(self) -> dict:
        return {"convs": [t.as_dict() for _, t in sorted(self.convs.items())],
                "classifier_n": self.classifier_n.tolist(), "classifier_t": self.classifier_t.tolist(), "empty_s": self.empty_s}

    @classmethod
    def from_dict(cls, payload: dict) -> "KernelTable":
        convs = [ConvTable.from_dict(c) for c in payload["convs"]]
        return cls({(t.kind, t.k): t for t in convs}, np.array(payload["classifier_n"], float),
                   np.array(payload["classifier_t"], float), float(payload["empty_s"]))

    def conv(self, kind: str, k: np.ndarray, f: np.ndarray, s: np.ndarray) -> np.ndarray:
        out = np.zeros(len(f))
        for kk in np.unique(k.astype(int)):
            table = self.convs.get((kind, int(kk)))
            if table is None:
                raise UsageError(f"no {kind} blocks with k = {kk} were calibrated; calibrate a space with that k")
            at = k.astype(int) == kk
            out[at] = table.lookup(f[at], s[at])
        return out

    def classifier(self, n: np.ndarray) -> np.ndarray:
        return np.interp(np.log(np.maximum(n, 1)), np.log(self.classifier_n), self.classifier_t)

    @property
    def pairs(self) -> bool:
        """Whether consecutive blocks were timed as pairs (calibrations before pairs existed were not)."""
        return any(kind == "first-pair" for kind, _ in self.convs)

    @property
    def compositions(self) -> tuple[str, ...]:
        """The compositions this calibration's tables support, in the order that breaks k-fold ties."""
        have = {kind for kind, _ in self.convs}
        return tuple(name for name, needs in (("blocks", "first"), ("pairs", "first-pair"), ("networks", network_kind(1)))
                     if needs in have)

    def terms(self, layers: Layers, composition: str = "blocks") -> np.ndarray:
        """Per config, the composition's terms (COMPOSITION_TERMS; the module's docstring says what
        first and inner are, composed of pairs or of blocks alone)."""
        if composition not in self.compositions:
            fix = {"pairs": "--pairs", "networks": "--whole"}.get(composition, "without --whole")
            raise UsageError(f"this calibration timed no kernels for the composition of {composition}; "
                             f"rerun 'cpbench calibrate {fix}'")
        f, s, k, depth = layers.f, layers.s, layers.k, layers.l
        s = s.astype(np.int64)
        if composition == "networks":
            whole = np.zeros(len(f))
            for d in np.unique(depth.astype(int)):
                at = depth == d
                whole[at] = self.conv(network_kind(int(d)), k[at], f[at], s[at].astype(float))
            return np.column_stack([np.ones(len(f)), whole])
        pairs = composition == "pairs"
        if pairs:
            first = np.zeros(len(f))
            alone = depth == 1
            if alone.any():
                first[alone] = self.conv("first", k[alone], f[alone], s[alone].astype(float))
            if (~alone).any():
                first[~alone] = self.conv("first-pair", k[~alone], f[~alone], s[~alone].astype(float))
            first -= self.empty_s
        else:
            first = self.conv("first", k, f, s) - self.empty_s
        inner = np.zeros(len(f))
        side = s // 2
        for i in range(1, int(depth.max()) if len(depth) else 0):
            present = depth > i
            if pairs:  # block i + 1 joins the block i before it at side `side`
                present &= depth > i + 1
                if present.any():
                    at = (k[present], f[present], side[present].astype(float))
                    inner[present] += self.conv("inner-pair", *at) - self.conv("inner", *at)
            elif present.any():
                inner[present] += self.conv("inner", k[present], f[present], side[present].astype(float)) - self.empty_s
            side = side // 2
        fc = self.classifier(f * layers.final_side**2) - self.empty_s
        return np.column_stack([np.ones(len(f)), first, inner, fc, depth - 1])
