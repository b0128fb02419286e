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


def features(kind: str, f: dict) -> list[float]:
    """The regressor's inputs for one kernel (logs of sizes; an op's name one-hot)."""
    if kind in ("conv", "dwconv"):
        return [_log(f["cin"]), _log(f["cout"]), _log(f["h"]), _log(f["oh"]), f["kh"], f["stride"], _log(f["groups"]),
                _log(work(kind, f)), _log(f["cin"] * f["h"] * f["w"]), _log(f["cout"] * f["oh"] * f["ow"]),
                _log(f["cout"] * f["cin"] // f["groups"] * f["kh"] * f["kw"])]
    if kind == "pool":
        return [float(f["op"] == "MaxPool"), _log(f["c"]), _log(f["h"]), _log(f["oh"]), f["k"], f["stride"]]
    if kind == "gap":
        return [_log(f["c"]), _log(f["h"] * f["w"])]
    if kind == "gemm":
        return [_log(f["n_in"]), _log(f["n_out"])]
    if kind == "concat":
        return [_log(f["elements"]), _log(f["c"]), f["inputs"]]
    op = f["op"]
    return [float(op == name) for name in ELEMENTWISE_OPS] + [_log(f["elements"]), _log(f.get("c", 1)), f["broadcast"]]


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
    interval: tuple[float, float]  # quantiles of log(measured / predicted) on held-out synthetic networks
    held_out: dict = field(default_factory=dict)
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

    def compose(self, kernel_sum: float, n_kernels: int) -> float:
        c = self.composition
        if c["form"] == "scaled":
            return c["scale"] * (self.empty_s + kernel_sum)
        if c["form"] == "affine":
            return self.empty_s + c["a"] * kernel_sum + c["b"] * n_kernels
        return self.empty_s + kernel_sum

    def predict_ops(self, ops: list[Op]) -> Prediction:
        from cpbench.anynet.ops import uncovered

        kernels = [k for k in group(ops, self.fusing) if k.head.kind not in (None, "free")]
        times = self.kernel_times(kernels)
        seconds = self.compose(float(times.sum()), len(kernels))
        rows = [{"kernel": k.label, "type": k.head.kind, "name": k.head.name, "macs": k.head.macs + sum(o.macs for o in k.fused),
                 "predicted_s": float(t)} for k, t in zip(kernels, times)]
        low, high = self.interval
        return Prediction(seconds, seconds * math.exp(low), seconds * math.exp(high), rows, uncovered(ops),
                          sum(op.macs for op in ops))

    def predict_file(self, path: Path, input_shape=None) -> Prediction:
        from cpbench.anynet.ops import simplify

        return self.predict_ops(read_ops(simplify(Path(path)), input_shape))


def _compose_forms(sums: np.ndarray, counts: np.ndarray, empty: float, measured: np.ndarray, train: np.ndarray) -> dict:
    """Each composition form's coefficients fitted on the `train` networks (relative least squares)."""
    s, n, y = sums[train], counts[train], measured[train]
    scale = float(np.exp(np.mean(np.log(y / (empty + s)))))
    A = np.column_stack([s / (y - 0 + 1e-12), n / (y + 1e-12)])
    coef, *_ = np.linalg.lstsq(A, (y - empty) / (y + 1e-12), rcond=None)
    return {"sum": {}, "scaled": {"scale": scale}, "affine": {"a": float(coef[0]), "b": float(coef[1])}}


def _apply(form: str, c: dict, sums, counts, empty):
    if form == "scaled":
        return c["scale"] * (empty + sums)
    if form == "affine":
        return empty + c["a"] * sums + c["b"] * counts
    return empty + sums


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

    empty = calibration.statistic(EMPTY_ID)
    times = {item: calibration.statistic(item) for item in calibration.times}
    rules = decide(times, empty)
    fits = fit_kernels(calibration.kernels, times, empty)
    model = AnyNetModel(calibration.profile, calibration.hardware_id, calibration.cpu, calibration.created, empty,
                        fits, rules, {"form": "sum"}, (0.0, 0.0))
    names = [n for n in calibration.networks if n in times]
    if len(names) < FOLDS:
        raise UsageError(f"only {len(names)} synthetic networks were timed; calibrate again with more networks")
    sums, counts = [], []
    for name in names:
        import onnx

        _, graph = random_network(calibration.networks[name])
        kernels = [k for k in group(read_ops(onnx.load_from_string(graph)), model.fusing)
                   if k.head.kind not in (None, "free")]
        sums.append(float(model.kernel_times(kernels).sum()))
        counts.append(len(kernels))
    sums_a, counts_a, measured = np.array(sums), np.array(counts, float), np.array([times[n] for n in names])
    oof: dict[str, np.ndarray] = {form: np.zeros(len(names)) for form in ("sum", "scaled", "affine")}
    for train, test in KFold(FOLDS, shuffle=True, random_state=0).split(names):
        coefs = _compose_forms(sums_a, counts_a, empty, measured, train)
        for form in oof:
            oof[form][test] = _apply(form, coefs[form], sums_a[test], counts_a[test], empty)
    kfold = {form: float(np.mean(np.abs(pred / measured - 1))) for form, pred in oof.items()}
    form = min(kfold, key=kfold.get)
    coefs = _compose_forms(sums_a, counts_a, empty, measured, np.arange(len(names)))[form]
    residuals = np.log(measured / oof[form])
    interval = (float(np.quantile(residuals, 0.025)), float(np.quantile(residuals, 0.975)))
    held = [float(np.quantile(np.delete(residuals, i), 0.025) <= r <= np.quantile(np.delete(residuals, i), 0.975))
            for i, r in enumerate(residuals)]
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
