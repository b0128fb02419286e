"""Which time model answers for a profile on this machine, in one rule (predict, recommend, report):

1. this machine's kernel calibration in the workspace (`cpbench calibrate`);
2. this machine's fit saved by `cpbench fit` (models/fits/<device>-<hardware id>.json), or a
   [fitted] table of this machine in a workspace profile (written there by older
   versions of cpbench; profiles now hold settings only);
3. the shipped reference calibration of the closest machine (package data, one per machine it
   was measured on), with a warning naming its CPU;
4. such a legacy [fitted] table of another machine, with a warning.
Another machine's times are never presented as this machine's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from cpbench.errors import UsageError, calibration_hint
from cpbench.fitting.device_fit import fit_record_path, hardware_mismatch, load_fit_record, predictor_from_profile
from cpbench.fitting.kernel_model import KernelPredictor, fit_kernel_model, load_table_cache
from cpbench.timing.calibration import calibration_path, load_calibration

REFERENCE_FITS = Path(__file__).resolve().parents[1] / "reference" / "fits"


@dataclass
class Chosen:
    predictor: object  # TimePredictor | KernelPredictor
    warning: str | None
    source: str


def _shipped(profile) -> bool:
    """A profile of cpbench's own profiles/ folder: its [fitted] table was measured elsewhere."""
    from cpbench.timing.profiles import SHIPPED

    return profile.path is not None and Path(profile.path).resolve().parent == Path(SHIPPED).resolve()


SUFFIX = ".calibration.json.gz"


def reference_calibrations(device: str) -> list[Path]:
    """The shipped calibrations of exactly this profile: files are <device>-<hardware id>.calibration.json.gz
    and a device name may hold dashes ('cpu-1thread' must not answer for 'cpu')."""
    return sorted(p for p in REFERENCE_FITS.glob(f"{device}-*{SUFFIX}") if p.name[: -len(SUFFIX)].rsplit("-", 1)[0] == device)


def _closest(paths: list[Path], hardware_id: str) -> Path:
    """The same hardware id if shipped, else the first (they name their CPU in the warning)."""
    same = [p for p in paths if p.name.endswith(f"-{hardware_id}{SUFFIX}")]
    return (same or paths)[0]


def kernel_predictor(path: Path, device: str | None = None, reference: bool = False) -> KernelPredictor:
    calibration = load_calibration(path)
    model = fit_kernel_model(calibration, completed=load_table_cache(path))
    return KernelPredictor(device or calibration.device, model, str(path), reference)


@dataclass
class Located:
    """Where a profile's time model on this machine comes from, found without fitting anything."""

    kind: str  # "calibration" | "fit" | "legacy-here" | "reference" | "legacy-elsewhere" | "none"
    path: Path | None
    label: str


def locate_time_model(profile, models_dir: Path, hardware_id: str) -> Located:
    """The rule of the module docstring, as a lookup: cheap enough for `profiles list`."""
    own = calibration_path(models_dir, profile.name, hardware_id)
    if own.exists():
        return Located("calibration", own, f"this machine's kernel calibration ({own})")
    record = fit_record_path(models_dir, profile.name, hardware_id)
    if record.is_file():
        return Located("fit", record, f"this machine's fit ({record})")
    fitted = profile.fitted or {}
    if fitted and (fitted.get("fingerprint") or {}).get("hardware_id") == hardware_id and not _shipped(profile):
        return Located("legacy-here", profile.path, f"the [fitted] table of profile '{profile.name}', measured here")
    shipped = reference_calibrations(profile.name)
    if shipped:
        path = _closest(shipped, hardware_id)
        return Located("reference", path, f"shipped reference calibration {path.name}")
    if fitted:
        return Located("legacy-elsewhere", profile.path, f"the [fitted] table of profile '{profile.name}'")
    return Located("none", None, "no time model")


RUN_SETTINGS = ("runtime", "provider", "device", "threads", "batch", "graph_optimization", "options", "clock")
SETTING_DEFAULTS = {"clock": "wall"}  # what a calibration made before the setting existed measured


def settings_changed(calibrated: dict, profile) -> list[str]:
    """The run settings in which a calibration's profile differs from the profile now (the times
    of one do not answer for the other)."""
    if not calibrated:
        return []
    now = profile.as_dict()
    return [key for key in RUN_SETTINGS if (key in calibrated or key in SETTING_DEFAULTS)
            and calibrated.get(key, SETTING_DEFAULTS.get(key)) != now.get(key)]


def _with_settings_check(chosen: Chosen, profile) -> Chosen:
    changed = settings_changed(chosen.predictor.kernel_model.calibration.profile or {}, profile)
    if not changed:
        return chosen
    note = (f"the calibration was measured with other '{profile.name}' settings ({', '.join(changed)} differ from the "
            f"profile now): recalibrate with 'cpbench calibrate --device {profile.name}'")
    return Chosen(chosen.predictor, f"{chosen.warning}; {note}" if chosen.warning else note, chosen.source)


def time_predictor(profile, models_dir: Path, hardware_id: str) -> Chosen:
    found = locate_time_model(profile, models_dir, hardware_id)
    if found.kind in ("calibration", "reference"):
        return _with_settings_check(_calibrated(found, profile, hardware_id), profile)
    return _fitted(found, profile, models_dir, hardware_id)


def _calibrated(found: Located, profile, hardware_id: str) -> Chosen:
    if found.kind == "calibration":
        return Chosen(kernel_predictor(found.path, profile.name, False), None, found.label)
    chosen = kernel_predictor(found.path, profile.name, True)
    calibration = chosen.kernel_model.calibration
    cpu = (calibration.fingerprint.get("hardware") or {}).get("cpu", "another CPU")
    same = "a machine of the same hardware id" if calibration.hardware_id == hardware_id else "another machine"
    return Chosen(chosen, f"times predicted from the shipped kernel calibration of {same} ({cpu}, hardware id "
                          f"{calibration.hardware_id}), not measured on this one: {calibration_hint(profile.name)}",
                  found.label)


def _fitted(found: Located, profile, models_dir: Path, hardware_id: str) -> Chosen:
    if found.kind == "fit":
        record = load_fit_record(models_dir, profile.name, hardware_id)
        if not isinstance(record.get("fitted"), dict):
            raise UsageError(f"{found.path} holds no fit; rerun 'cpbench fit --device {profile.name}'")
        return Chosen(predictor_from_profile(SimpleNamespace(name=profile.name, fitted=record["fitted"])), None, found.label)
    if found.kind == "legacy-here":
        return Chosen(predictor_from_profile(profile), None, found.label)
    chosen = predictor_from_profile(profile)  # "none" raises the no-time-model error here
    mismatch = hardware_mismatch(profile.fitted, hardware_id) or (
        "the profile's [fitted] table names no machine it was measured on")
    return Chosen(chosen, f"{mismatch}; its times are not this machine's: {calibration_hint(profile.name)}", found.label)


def named_model_predictor(profile, models_dir: Path, hardware_id: str, model: str):
    """One named model of this machine's fit (`predict --model layerwise`), or of a legacy [fitted]
    table in the profile; never another machine's record."""
    record = load_fit_record(models_dir, profile.name, hardware_id)
    if record is not None and isinstance(record.get("fitted"), dict):
        return predictor_from_profile(SimpleNamespace(name=profile.name, fitted=record["fitted"]), model)
    return predictor_from_profile(profile, model)


def other_time_predictors(profiles_dir: Path, models_dir: Path, hardware_id: str, exclude: str,
                          warnings: list[str] | None = None) -> dict[str, object]:
    """The time model of every other profile, chosen by the same rule: their picks go beside this
    one's. A profile with no time model at all is left out; one that does not load, or whose time
    model is damaged, is left out with a line in `warnings` (it never breaks this device's answer)."""
    from cpbench.timing.profiles import loadable_profiles

    out = {}
    profiles, skipped = loadable_profiles(profiles_dir)
    if warnings is not None:
        warnings.extend(skipped)
    for other in profiles:
        if other.name == exclude:
            continue
        try:
            out[other.name] = time_predictor(other, models_dir, hardware_id).predictor
        except UsageError as exc:
            if warnings is not None and locate_time_model(other, models_dir, hardware_id).kind != "none":
                warnings.append(f"skipped profile '{other.name}': {exc}")
    return out
