"""The cross-hardware table: one row per (machine, profile) fit the workspace knows, each naming
the machine and where the fit comes from, with eq. (1)'s coefficients, the errors, the verdict,
the baseline's latency and the pick for a precision target on that machine."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from types import SimpleNamespace

from cpbench.errors import UsageError
from cpbench.fitting.device_fit import predictor_from_profile


@dataclass
class HardwareRow:
    cpu: str
    hardware_id: str
    profile: str
    source: str  # "this workspace's fit" | "this workspace's calibration" | "shipped reference calibration" | legacy [fitted]
    measured_here: bool
    alpha1: float | None
    alpha1_ci: tuple[float, float] | None
    alpha0: float | None
    alpha0_ci: tuple[float, float] | None
    affine_mape: float | None  # the affine model's k-fold held-out MAPE
    best: str | None
    best_mape: float | None
    best_error_kind: str  # nested k-fold, or the k-fold that chose it
    proportional: bool | None
    baseline_s: float | None
    pick: str | None
    pick_speedup: float | None  # predicted, on that machine
    runs: list[str]

    def as_dict(self) -> dict:
        return asdict(self)


def _pick(predictor, precision, target: float | None) -> tuple[str | None, float | None]:
    if precision is None or target is None:
        return None, None
    from cpbench.optimize.recommend import recommend
    from cpbench.optimize.search import Infeasible
    from cpbench.workspace.store import space_of

    try:
        result = recommend(space_of(precision.dataset, precision.space), predictor, precision, target,
                           f"precision >= {target:.4f}", 1)
    except (UsageError, Infeasible):
        return None, None
    return result.pick.config.as_csv(), result.pick.speedup


def _kernel_row(path, source: str, here: str, precision, target: float | None) -> HardwareRow | None:
    """A kernel calibration as a row: eq. (1) (alpha1 * MACs + alpha0, relative least squares) fitted
    on its calibration networks beside the kernel model, both judged by k-fold on those networks."""
    import numpy as np

    from cpbench.family.closed_form import FEATURES, Layers
    from cpbench.family.config import Config
    from cpbench.fitting.predictors import kernel_predictor
    from cpbench.timing.calibration import round_min
    from cpbench.fitting.time_models import MODELS, PAPER_000_ERROR, evaluate

    try:
        predictor = kernel_predictor(path, reference=source != "this workspace's calibration")
    except UsageError:
        return None
    calibration = predictor.kernel_model.calibration
    configs = [Config.parse(c) for c in calibration.networks]
    times = np.array([round_min(v) for v in calibration.networks.values()])
    macs = FEATURES["macs"](Layers.of(configs, calibration.in_channels))[:, None]
    linear = evaluate(MODELS["linear-rel"], macs, times, {})
    coefficients = linear.fitted.coefficients()
    a1, a0 = coefficients["alpha1"], coefficients["alpha0"]
    pick, speedup = _pick(predictor, precision, target)
    affine = linear.kfold.mape
    return HardwareRow(
        (calibration.fingerprint.get("hardware") or {}).get("cpu", "?"), calibration.hardware_id, calibration.device, source,
        calibration.hardware_id == here and source == "this workspace's calibration", a1["value"], (a1["ci_low"], a1["ci_high"]), a0["value"], (a0["ci_low"], a0["ci_high"]),
        affine, "kernel", predictor.kernel_model.kfold.mape, "k-fold over the calibration networks", affine <= PAPER_000_ERROR,
        float(predictor.predict_configs([Config.parse(predictor.fitted["baseline"])])[0]), pick, speedup,
        [f"calibration {calibration.started_at}"],
    )


def _row(fitted: dict, device: str, hardware_id: str, cpu: str, source: str, here: str, precision, target: float | None) -> HardwareRow:
    linear = fitted.get("models", {}).get("linear-rel", {})
    coefficients = linear.get("coefficients", {})
    a1, a0 = coefficients.get("alpha1"), coefficients.get("alpha0")
    best = fitted.get("best")
    honest = fitted.get("selection_honest")
    best_mape = honest["mape"] if honest else fitted.get("models", {}).get(best, {}).get("kfold", {}).get("mape")
    pick = speedup = None
    if precision is not None and target is not None:
        try:
            pick, speedup = _pick(predictor_from_profile(SimpleNamespace(name=device, fitted=fitted)), precision, target)
        except UsageError:
            pass
    verdict = fitted.get("verdict", "")
    return HardwareRow(
        cpu, hardware_id, device, source, hardware_id == here and source == "this workspace's fit",
        a1["value"] if a1 else None, (a1["ci_low"], a1["ci_high"]) if a1 else None,
        a0["value"] if a0 else None, (a0["ci_low"], a0["ci_high"]) if a0 else None,
        linear.get("kfold", {}).get("mape"), best, best_mape, "nested k-fold" if honest else "k-fold (the folds that chose it)",
        None if not verdict else ("is proportional" in verdict), fitted.get("baseline_time_s"), pick, speedup,
        list(fitted.get("runs", [])),
    )


def hardware_rows(ws, here: str, precision=None, target: float | None = None) -> list[HardwareRow]:
    """This workspace's calibrations and saved fits (models/fits, one per machine and profile), the
    shipped reference calibrations, then any legacy [fitted] table a workspace profile still holds
    (written by older versions of cpbench) for (machine, profile) pairs not already listed."""
    from cpbench.timing.profiles import loadable_profiles
    from cpbench.workspace.formats import check_format

    from cpbench.fitting.predictors import REFERENCE_FITS

    rows, seen = [], set()
    folder = ws.models_dir / "fits"
    calibrations = [(p, "this workspace's calibration") for p in sorted(folder.glob("*.calibration.json.gz"))] if folder.is_dir() else []
    calibrations += [(p, "shipped reference calibration") for p in sorted(REFERENCE_FITS.glob("*.calibration.json.gz"))]
    for path, source in calibrations:
        row = _kernel_row(path, source, here, precision, target)
        if row is not None and (row.hardware_id, row.profile, "kernel") not in seen:
            seen.add((row.hardware_id, row.profile, "kernel"))
            rows.append(row)
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            record = check_format(json.loads(path.read_text(encoding="utf-8")), 1, str(path), "rerun 'cpbench fit'")
        except (OSError, ValueError, UsageError):
            continue
        key = (record.get("hardware_id"), record["device"])
        if key in seen:
            continue
        seen.add(key)
        rows.append(_row(record["fitted"], record["device"], record.get("hardware_id") or "", record.get("machine", {}).get("cpu", "?"),
                         "this workspace's fit", here, precision, target))
    for profile in loadable_profiles(ws.profiles_dir)[0]:
        fitted = profile.fitted
        if not isinstance(fitted, dict) or not isinstance(fitted.get("models"), dict):
            continue
        try:
            predictor_from_profile(profile)  # a damaged legacy table is left out, never half-read
        except UsageError:
            continue
        fp = fitted.get("fingerprint", {})
        key = (fp.get("hardware_id"), profile.name)
        if key in seen:
            continue
        seen.add(key)
        rows.append(_row(fitted, profile.name, fp.get("hardware_id", ""), fp.get("cpu", "?"),
                         "a legacy [fitted] table in the profile (older cpbench; not verified here)", here, precision, target))
    return rows
