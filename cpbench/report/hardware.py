"""The cross-hardware table: one row per (machine, profile) fit the workspace knows, each naming
the machine and where the fit comes from, with eq. (1)'s coefficients, the errors, the verdict,
the baseline's latency and the pick for a precision target on that machine."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from cpbench.errors import UsageError, first_line
from cpbench.fitting.fitted_time_model import from_record


@dataclass
class HardwareRow:
    cpu: str
    hardware_id: str
    profile: str
    source: str  # "this workspace's fit" | "this workspace's calibration" | "shipped reference calibration"
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
    from cpbench.family.config import space_of

    try:
        result = recommend(space_of(precision.dataset, precision.space), predictor, precision, target,
                           f"precision >= {target:.4f}", 1)
    except (UsageError, Infeasible):
        return None, None
    return result.pick.config.as_csv(), result.pick.speedup


def _kernel_row(path, source: str, here: str, precision, target: float | None) -> HardwareRow | None:
    """A saved kernel model as a row, with eq. (1) (alpha1 * MACs + alpha0, relative least squares)
    as it was fitted on the same calibration networks, both judged by k-fold on those networks."""
    from cpbench.fitting.predictors import load_time_model
    from cpbench.fitting.time_models import PAPER_000_ERROR

    model = load_time_model(path, reference=source != "this workspace's calibration")  # damaged: an error, never skipped
    coefficients = model.affine["coefficients"]
    a1, a0 = coefficients["alpha1"], coefficients["alpha0"]
    pick, speedup = _pick(model, precision, target)
    affine = model.affine["kfold_mape"]
    hardware_id = model.provenance.hardware_id
    return HardwareRow(
        model.cpu or "?", hardware_id, model.device, source,
        hardware_id == here and source == "this workspace's calibration", a1["value"], (a1["ci_low"], a1["ci_high"]),
        a0["value"], (a0["ci_low"], a0["ci_high"]), affine, "kernel", model.kfold.mape,
        "k-fold over the calibration networks", affine <= PAPER_000_ERROR, model.baseline_time_s, pick, speedup,
        [f"calibration {model.calibration.get('started_at')}"],
    )


def _row(record: dict, device: str, hardware_id: str, cpu: str, source: str, here: str, precision, target: float | None) -> HardwareRow:
    fitted = record["fitted"]
    linear = fitted.get("models", {}).get("linear-rel", {})
    coefficients = linear.get("coefficients", {})
    a1, a0 = coefficients.get("alpha1"), coefficients.get("alpha0")
    best = fitted.get("best")
    honest = fitted.get("selection_honest")
    best_mape = honest["mape"] if honest else fitted.get("models", {}).get(best, {}).get("kfold", {}).get("mape")
    pick = speedup = None
    if precision is not None and target is not None:
        try:
            pick, speedup = _pick(from_record(record, device), precision, target)
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
    """This workspace's kernel models and saved fits (models/fits, one per machine and profile),
    then the shipped reference models, for (machine, profile) pairs not already listed."""
    from cpbench.fitting.device_fit import FIT_FORMAT
    from cpbench.fitting.predictors import REFERENCE_FITS, SUFFIX
    from cpbench.workspace.formats import read_versioned

    rows, seen = [], set()
    folder = ws.models_dir / "fits"
    for calibration in sorted(folder.glob("*.calibration.json.gz")) if folder.is_dir() else []:
        stem = calibration.name.removesuffix(".calibration.json.gz")
        if not (folder / f"{stem}{SUFFIX}").is_file():
            device = stem.rsplit("-", 1)[0]
            raise UsageError(f"{calibration} has no saved model beside it, so its machine cannot be listed; run "
                             f"'cpbench calibrate --device {device} --refit' to fit it, or move the file away")
    models = [(p, "this workspace's calibration") for p in sorted(folder.glob(f"*{SUFFIX}"))] if folder.is_dir() else []
    models += [(p, "shipped reference calibration") for p in sorted(REFERENCE_FITS.glob(f"*{SUFFIX}"))]
    for path, source in models:
        row = _kernel_row(path, source, here, precision, target)
        if row is not None and (row.hardware_id, row.profile, "kernel") not in seen:
            seen.add((row.hardware_id, row.profile, "kernel"))
            rows.append(row)
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        record = read_versioned(path, FIT_FORMAT, "rerun 'cpbench fit'")  # damaged: an error, never skipped
        try:
            key = (record.get("hardware_id"), record["device"])
            if key in seen:
                continue
            from_record(record, record["device"], source=str(path))  # the whole fit readable, or one error naming it
            seen.add(key)
            rows.append(_row(record, record["device"], record.get("hardware_id") or "", record.get("machine", {}).get("cpu", "?"),
                             "this workspace's fit", here, precision, target))
        except (KeyError, TypeError, AttributeError) as exc:
            raise UsageError(f"{path} is not a complete fit record ({first_line(exc)}); rerun 'cpbench fit' or move it away") from None
    return rows
