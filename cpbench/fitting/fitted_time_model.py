"""The time model `cpbench fit` saved for one device on one machine (its fit record,
models/fits/<device>-<hardware id>.json), read back as a TimeModel: the coefficients as fitted,
never fitted again."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cpbench.errors import UsageError, first_line
from cpbench.family.closed_form import Layers, feature_matrix
from cpbench.family.config import Config
from cpbench.fitting.observations import DEFAULT_STATISTIC
from cpbench.fitting.time_model import HeldOut, Provenance, TimeModel
from cpbench.fitting.time_models import MODELS, FittedModel

FITTED_FORMAT = 1  # of the "fitted" table inside a fit record


@dataclass(kw_only=True)
class FittedTimeModel(TimeModel):
    """One model of a device fit (the best one unless named): seconds from the config's features."""

    model: FittedModel

    kind = "fit"

    @property
    def name(self) -> str:
        return self.model.spec.name

    def predict(self, layers: Layers) -> np.ndarray:
        return self.model.predict(feature_matrix(self.model.spec.features, layers))

    def as_dict(self) -> dict:
        raise NotImplementedError("a device fit is saved whole, as its fit record (device_fit.save_fit_record)")


def from_record(record: dict, device: str, model: str | None = None, source: str = "") -> FittedTimeModel:
    """The named model (default: the fit's best) of a fit record, as it was fitted; a damaged record
    is one error naming the fix."""
    fix = f"rerun 'cpbench fit --device {device}'"
    fitted = record.get("fitted") if isinstance(record, dict) else None
    if not isinstance(fitted, dict) or "models" not in fitted:
        raise UsageError(f"{source or 'the fit record'} holds no fit; {fix}")
    try:
        return _from_fitted(fitted, device, model, source)
    except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:
        raise UsageError(f"{source or 'the fit record'} is malformed ({first_line(exc)}); {fix}") from None


def _from_fitted(fitted: dict, device: str, model: str | None, source: str) -> FittedTimeModel:
    from cpbench.workspace.formats import check_format

    fix = f"rerun 'cpbench fit --device {device}'"
    check_format(fitted, FITTED_FORMAT, f"the fit of '{device}' in {source}", fix)
    name = model or fitted.get("best")
    entry = fitted["models"].get(name)
    if entry is None:
        raise UsageError(f"the fit of '{device}' has no model {name!r}; fitted: {', '.join(fitted['models'])}")
    spec = MODELS.get(name)
    if spec is None or list(spec.features) != list(entry.get("features", [])):
        raise UsageError(f"the fit of '{device}' holds model {name!r} from another cpbench version; {fix}")
    values = [entry["coefficients"][c] for c in spec.coefficient_names]
    fitted_model = FittedModel(spec, np.array([v["value"] for v in values]), np.array([v["ci_low"] for v in values]),
                               np.array([v["ci_high"] for v in values]), int(fitted.get("n", 0)))
    kfold = entry["kfold"]
    honest = fitted.get("selection_honest") if name == fitted.get("best") else None
    if honest:
        held_out = HeldOut(honest["mape"], honest["within_10"], honest["max_ape"], honest["interval_coverage"],
                           int(fitted.get("n", 0)), "nested k-fold over the timed configs (nor chose the model)")
    else:
        held_out = HeldOut(kfold["mape"], kfold["within_10"], kfold["max_ape"], float("nan"), int(kfold.get("n", 0)),
                           "k-fold over the timed configs (the folds that chose the model)")
    fingerprint = fitted.get("fingerprint") or {}
    provenance = Provenance(str(fingerprint.get("hardware_id", "")), fingerprint.get("cpu"), fingerprint, {},
                            str(fitted.get("date", "")), str(fitted.get("cpbench_version", "")), source)
    return FittedTimeModel(
        device=device, statistic=str(fitted.get("statistic", DEFAULT_STATISTIC)), batch=int(fitted.get("batch", 1)),
        in_channels=int(fitted.get("in_channels", 1)), interval=(float(kfold["rel_q025"]), float(kfold["rel_q975"])),
        provenance=provenance, held_out=held_out, baseline=Config.parse(fitted["baseline"]),
        baseline_time_s=float(fitted["baseline_time_s"]),
        baseline_time_kind="measured" if fitted.get("baseline_measured") else "predicted", model=fitted_model)
