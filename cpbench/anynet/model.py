"""The any-network latency model of one device: a gradient-boosted regressor per kernel type
(scikit-learn) over the sampled kernels' times, the fusion rules, and how kernels compose into a
network, learned on the synthetic networks. A network's prediction is the per-inference cost plus
its kernels' predictions, composed; its 95 % interval comes from the composed predictions' errors
on synthetic networks the composition was not fitted on."""

from __future__ import annotations

import gzip
import math
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cpbench.anynet.calibration import EMPTY_ID, AnyCalibration
from cpbench.anynet.fusion import FusionRule, Kernel, decide, group
from cpbench.anynet.ops import Op, read_ops
from cpbench.anynet.sampling import ELEMENTWISE_OPS
from cpbench.anynet.synthetic import random_network
from cpbench.errors import UsageError

FORMAT = 1
FLOOR_S = 1e-7  # a kernel's own time is never predicted below this
FOLDS = 5


def _log(x: float) -> float:
    return math.log(max(float(x), 1.0))


def work(kind: str, f: dict) -> float:
    """The size a kernel's time scales with: MACs for convs and matrix products, elements read or
    written for the rest. Regressors learn seconds per unit of work, which levels off for large
    kernels, so a kernel larger than any sampled one is predicted as proportional to its work."""
    if kind in ("conv", "dwconv"):
        return f["cout"] * f["oh"] * f["ow"] * f["cin"] // f["groups"] * f["kh"] * f["kw"]
    if kind == "gemm":
        return f["n_in"] * f["n_out"]
    if kind == "pool":
        return f["c"] * f["oh"] * f["ow"] * f["k"] * f["k"] + f["c"] * f["h"] * f["w"]
    if kind == "gap":
        return f["c"] * f["h"] * f["w"]
    return f["elements"]


def _blocks(*channels: int) -> list[float]:
    """Whether channel counts fill the vector blocks runtimes lay tensors out in (8 or 16 lanes):
    where they do not, runtimes take slower paths. The regressor learns per machine how much."""
    return [float(c % b == 0) for c in channels for b in (8, 16)]


def features(kind: str, f: dict) -> list[float]:
    """The regressor's inputs for one kernel (logs of sizes, channel blocking; an op's name one-hot)."""
    if kind in ("conv", "dwconv"):  # with the dimensions of the matrix product a conv lowers to: M, N, K
        depth = f["cin"] // f["groups"] * f["kh"] * f["kw"]
        return ([_log(f["cin"]), _log(f["cout"]), _log(f["h"]), _log(f["oh"]), f["kh"], f["stride"], _log(f["groups"]),
                 _log(work(kind, f)), _log(f["cin"] * f["h"] * f["w"]), _log(f["cout"] * f["oh"] * f["ow"]),
                 _log(f["cout"] * depth), _log(f["oh"] * f["ow"]), _log(depth), _log(f["cout"] // f["groups"])]
                + _blocks(f["cin"], f["cout"]))
    if kind == "pool":
        return [float(f["op"] == "MaxPool"), _log(f["c"]), _log(f["h"]), _log(f["oh"]), f["k"], f["stride"]] + _blocks(f["c"])
    if kind == "gap":
        return [_log(f["c"]), _log(f["h"] * f["w"])] + _blocks(f["c"])
    if kind == "gemm":
        return [_log(f["n_in"]), _log(f["n_out"])] + _blocks(f["n_in"], f["n_out"])
    if kind == "concat":
        return [_log(f["elements"]), _log(f["c"]), f["inputs"]] + _blocks(f["c"])
    op = f["op"]
    return ([float(op == name) for name in ELEMENTWISE_OPS] + [_log(f["elements"]), _log(f.get("c", 1)), f["broadcast"]]
            + _blocks(f.get("c", 1)))


def _regressor():
    from sklearn.ensemble import GradientBoostingRegressor

    return GradientBoostingRegressor(n_estimators=300, max_depth=3, learning_rate=0.05, subsample=0.8, random_state=0)


@dataclass
class KernelFit:
    kind: str
    regressor: object
    samples: int
    kfold_mape: float  # out-of-fold, on the kernels' own times (the per-inference cost taken off)

    def predict(self, rows: list[dict]) -> np.ndarray:
        if not rows:
            return np.zeros(0)
        X = np.array([features(self.kind, f) for f in rows])
        units = np.array([max(work(self.kind, f), 1) for f in rows], float)
        return np.exp(self.regressor.predict(X)) * units


@dataclass
class Prediction:
    """A network's predicted latency, its interval, and what it is made of."""

    seconds: float
    low_s: float
    high_s: float
    kernels: list[dict]
    uncovered: list[dict]
    macs: int

    def by_kernel_type(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for k in self.kernels:
            out[k["type"]] = out.get(k["type"], 0.0) + k["predicted_s"]
        return out


@dataclass
class AnyNetModel:
    profile: str
    hardware_id: str
    cpu: str
    created: str
    empty_s: float
    fits: dict[str, KernelFit]
    rules: list[FusionRule]
    composition: dict  # form, coefficients, k-fold MAPE of every form
    interval: tuple[float, float]  # split-conformal bounds of log(measured / predicted), held-out synthetic networks
    held_out: dict = field(default_factory=dict)
    statistic: str = ""  # what a prediction predicts: the calibration's per-item statistic
    format: int = FORMAT

    @property
    def fusing(self) -> set[tuple[str, str]]:
        return {(r.producer, r.follower) for r in self.rules if r.fuses}

    def kernel_times(self, kernels: list[Kernel]) -> np.ndarray:
        times = np.zeros(len(kernels))
        by_kind: dict[str, list[int]] = {}
        for index, kernel in enumerate(kernels):
            if kernel.head.kind in self.fits:
                by_kind.setdefault(kernel.head.kind, []).append(index)
        for kind, indices in by_kind.items():
            times[indices] = self.fits[kind].predict([kernels[i].head.features for i in indices])
        return times

    def compose(self, kernels: list[Kernel], times: np.ndarray) -> float:
        """The network's time from its kernels' predicted times, by the chosen composition form."""
        X, offset = composition_terms(self.composition["form"], kernel_sums(kernels, times)[None, :], self.empty_s)
        return float(offset[0] + X[0] @ np.asarray(self.composition["coef"]))

    def predict_ops(self, ops: list[Op]) -> Prediction:
        from cpbench.anynet.ops import uncovered

        kernels = [k for k in group(ops, self.fusing) if k.head.kind not in (None, "free")]
        times = self.kernel_times(kernels)
        seconds = self.compose(kernels, times)
        rows = [{"kernel": k.label, "type": k.head.kind, "name": k.head.name, "macs": k.head.macs + sum(o.macs for o in k.fused),
                 "predicted_s": float(t)} for k, t in zip(kernels, times)]
        low, high = self.interval
        return Prediction(seconds, seconds * math.exp(low), seconds * math.exp(high), rows, uncovered(ops),
                          sum(op.macs for op in ops))

    def predict_file(self, path: Path, input_shape=None) -> Prediction:
        from cpbench.anynet.ops import simplify

        return self.predict_ops(read_ops(simplify(Path(path)), input_shape))


COMPOSED_KINDS = ("conv", "dwconv", "pool", "gap", "gemm", "elementwise", "concat")
FORMS = ("sum", "scaled", "affine", "per-type", "traffic", "weights")


def _traffic(kernel: Kernel) -> float:
    """Elements a conv-like kernel reads and writes: what a runtime converts between its blocked
    layout and the plain one when the kernel is timed alone, and not between kernels of a network."""
    f = kernel.head.features
    if kernel.head.kind in ("conv", "dwconv"):
        return f["cin"] * f["h"] * f["w"] + f["cout"] * f["oh"] * f["ow"]
    if kernel.head.kind == "pool":
        return f["c"] * (f["h"] * f["w"] + f["oh"] * f["ow"])
    return 0.0


def _weights(kernel: Kernel) -> float:
    """Weights a kernel reads: in a network each layer's evict the last one's from the caches,
    while a kernel repeated alone keeps its own there."""
    f = kernel.head.features
    if kernel.head.kind in ("conv", "dwconv"):
        return f["cout"] * f["cin"] // f["groups"] * f["kh"] * f["kw"]
    if kernel.head.kind == "gemm":
        return f["n_in"] * f["n_out"]
    return 0.0


def kernel_sums(kernels: list[Kernel], times: np.ndarray) -> np.ndarray:
    """A network's predicted kernel time per kernel type (COMPOSED_KINDS), then the weights its
    kernels read, the elements its conv-like kernels read and write, and its kernel count."""
    sums = np.zeros(len(COMPOSED_KINDS) + 3)
    for kernel, t in zip(kernels, times):
        if kernel.head.kind in COMPOSED_KINDS:
            sums[COMPOSED_KINDS.index(kernel.head.kind)] += t
        sums[-3] += _weights(kernel)
        sums[-2] += _traffic(kernel)
    sums[-1] = len(kernels)
    return sums


def composition_terms(form: str, Z: np.ndarray, empty: float) -> tuple[np.ndarray, np.ndarray]:
    """The columns a composition form weighs and the offset it adds, for networks Z (kernel_sums
    rows): the plain sum (weight 1), one factor on it, the sum with a factor plus a cost per kernel,
    one factor per kernel type, the affine form less a cost per element of layout traffic, or that
    plus a cost per weight read."""
    kinds = len(COMPOSED_KINDS)
    total = Z[:, :kinds].sum(axis=1)
    offset = np.full(len(Z), empty)
    if form == "scaled":
        return (empty + total)[:, None], np.zeros(len(Z))
    if form == "affine":
        return np.column_stack([total, Z[:, -1]]), offset
    if form == "per-type":
        return Z[:, :kinds], offset
    if form == "traffic":
        return np.column_stack([total, -Z[:, -2], Z[:, -1]]), offset
    if form == "weights":
        return np.column_stack([total, -Z[:, -2], Z[:, -3], Z[:, -1]]), offset
    return total[:, None], offset


def fit_composition(form: str, Z: np.ndarray, empty: float, measured: np.ndarray) -> list[float]:
    """Non-negative weights minimising the relative error on the networks given."""
    from scipy.optimize import nnls

    if form == "sum":
        return [1.0]
    X, offset = composition_terms(form, Z, empty)
    coef, _ = nnls(X / measured[:, None], (measured - offset) / measured)
    return [float(c) for c in coef]


def conformal_bounds(residuals: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Split-conformal bounds on out-of-fold log errors: the order statistics that hold a new
    network's error with at least `confidence` (each tail at half the rest), the extremes when
    there are too few networks for that guarantee."""
    r = np.sort(np.asarray(residuals, float))
    n = len(r)
    tail = (1 - confidence) / 2
    high = min(n, math.ceil((n + 1) * (1 - tail)))
    low = max(1, math.floor((n + 1) * tail))
    return float(r[low - 1]), float(r[high - 1])


def fit_kernels(kernels: dict[str, dict], times: dict[str, float], empty: float) -> dict[str, KernelFit]:
    """A regressor per kernel type over the timed kernels, each with its 5-fold MAPE."""
    from sklearn.model_selection import KFold, cross_val_predict

    fits: dict[str, KernelFit] = {}
    for kind in sorted({k["kind"] for k in kernels.values()}):
        ids = [i for i, k in kernels.items() if k["kind"] == kind and i in times]
        if len(ids) < FOLDS:
            continue
        rows = [kernels[i]["features"] for i in ids]
        X = np.array([features(kind, f) for f in rows])
        own = np.array([max(times[i] - empty, FLOOR_S) for i in ids])
        units = np.array([max(work(kind, f), 1) for f in rows], float)
        y = np.log(own / units)
        oof = cross_val_predict(_regressor(), X, y, cv=KFold(FOLDS, shuffle=True, random_state=0))
        mape = float(np.mean(np.abs(np.exp(oof - y) - 1)))
        fits[kind] = KernelFit(kind, _regressor().fit(X, y), len(ids), mape)
    return fits


def fit_any_model(calibration: AnyCalibration) -> AnyNetModel:
    """Fit the model of a calibration (kernels, rules, composition, interval); the synthetic networks
    are rebuilt from their seeds."""
    from sklearn.model_selection import KFold

    empty = calibration.fastest(EMPTY_ID)
    times = {item: calibration.statistic(item) for item in calibration.times}
    rules = decide({item: calibration.fastest(item) for item in calibration.times if item.startswith("fuse:")}, empty)
    fits = fit_kernels(calibration.kernels, times, empty)
    from cpbench.anynet.calibration import AnyDesign

    model = AnyNetModel(calibration.profile, calibration.hardware_id, calibration.cpu, calibration.created, empty,
                        fits, rules, {"form": "sum"}, (0.0, 0.0),
                        statistic=AnyDesign(**calibration.design).statistic)
    names = [n for n in calibration.networks if n in times]
    if len(names) < FOLDS:
        raise UsageError(f"only {len(names)} synthetic networks were timed; calibrate again with more networks")
    import onnx

    rows = []
    for name in names:
        _, graph = random_network(calibration.networks[name])
        kernels = [k for k in group(read_ops(onnx.load_from_string(graph)), model.fusing)
                   if k.head.kind not in (None, "free")]
        rows.append(kernel_sums(kernels, model.kernel_times(kernels)))
    Z, measured = np.array(rows), np.array([times[n] for n in names])
    oof: dict[str, np.ndarray] = {form: np.zeros(len(names)) for form in FORMS}
    for train, test in KFold(FOLDS, shuffle=True, random_state=0).split(names):
        for form in FORMS:
            coef = fit_composition(form, Z[train], empty, measured[train])
            X, offset = composition_terms(form, Z[test], empty)
            oof[form][test] = offset + X @ np.asarray(coef)
    kfold = {form: float(np.mean(np.abs(pred / measured - 1))) for form, pred in oof.items()}
    form = min(kfold, key=kfold.get)
    coefs = {"coef": fit_composition(form, Z, empty, measured)}
    residuals = np.log(measured / oof[form])
    interval = conformal_bounds(residuals)
    held = []
    for i, r in enumerate(residuals):
        low, high = conformal_bounds(np.delete(residuals, i))
        held.append(float(low <= r <= high))
    model.composition = {"form": form, **coefs, "kfold_mape": kfold}
    model.interval = interval
    model.held_out = {"networks": len(names), "mape": kfold[form],
                      "within_10": float(np.mean(np.abs(oof[form] / measured - 1) <= 0.10)),
                      "interval_coverage": float(np.mean(held)),
                      "kernels_kfold_mape": {k: f.kfold_mape for k, f in fits.items()}}
    return model


def model_file(models_dir: Path, profile: str, hardware_id: str) -> Path:
    return models_dir / "fits" / f"{profile}-{hardware_id}.anynet.model.pkl.gz"


def save_any_model(path: Path, model: AnyNetModel) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    with gzip.open(temporary, "wb") as handle:
        pickle.dump({"format": FORMAT, "model": model}, handle)
    temporary.replace(path)
    return path


def load_any_model(path: Path) -> AnyNetModel:
    try:
        with gzip.open(path, "rb") as handle:
            data = pickle.load(handle)
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ModuleNotFoundError) as exc:
        raise UsageError(f"{path} is not a readable any-network model ({type(exc).__name__}); "
                         "calibrate again with 'cpbench calibrate --kernels any'") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UsageError(f"{path} is an any-network model of another format; calibrate again with "
                         "'cpbench calibrate --kernels any'")
    return data["model"]
