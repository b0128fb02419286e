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
    source: str  # "this workspace's fit" | "profile's [fitted] table (reference)"
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


def _row(fitted: dict, device: str, hardware_id: str, cpu: str, source: str, here: str, precision, target: float | None) -> HardwareRow:
    linear = fitted.get("models", {}).get("linear-rel", {})
    coefficients = linear.get("coefficients", {})
    a1, a0 = coefficients.get("alpha1"), coefficients.get("alpha0")
    best = fitted.get("best")
    honest = fitted.get("selection_honest")
    best_mape = honest["mape"] if honest else fitted.get("models", {}).get(best, {}).get("kfold", {}).get("mape")
    pick = speedup = None
    if precision is not None and target is not None:
        from cpbench.optimize.recommend import recommend
        from cpbench.optimize.search import Infeasible
        from cpbench.workspace.store import space_of

        try:
            predictor = predictor_from_profile(SimpleNamespace(name=device, fitted=fitted))
            result = recommend(space_of(precision.dataset, precision.space), predictor, precision, target,
                               f"precision >= {target:.4f}", 1)
            pick, speedup = result.pick.config.as_csv(), result.pick.speedup
        except (UsageError, Infeasible):
            pass
    verdict = fitted.get("verdict", "")
    return HardwareRow(
        cpu, hardware_id, device, source, hardware_id == here,
        a1["value"] if a1 else None, (a1["ci_low"], a1["ci_high"]) if a1 else None,
        a0["value"] if a0 else None, (a0["ci_low"], a0["ci_high"]) if a0 else None,
        linear.get("kfold", {}).get("mape"), best, best_mape, "nested k-fold" if honest else "k-fold (the folds that chose it)",
        None if not verdict else ("is proportional" in verdict), fitted.get("baseline_time_s"), pick, speedup,
        list(fitted.get("runs", [])),
    )


def hardware_rows(ws, here: str, precision=None, target: float | None = None) -> list[HardwareRow]:
    """This workspace's saved fits (models/fits, one per machine and profile), then the profiles'
    [fitted] tables for (machine, profile) pairs not already listed."""
    from cpbench.timing.profiles import loadable_profiles
    from cpbench.workspace.formats import check_format

    rows, seen = [], set()
    folder = ws.models_dir / "fits"
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
        if not isinstance(fitted, dict) or "models" not in fitted:
            continue
        fp = fitted.get("fingerprint", {})
        key = (fp.get("hardware_id"), profile.name)
        if key in seen:
            continue
        seen.add(key)
        rows.append(_row(fitted, profile.name, fp.get("hardware_id", ""), fp.get("cpu", "?"),
                         "profile's [fitted] table (reference)", here, precision, target))
    return rows
