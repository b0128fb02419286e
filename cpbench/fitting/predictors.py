"""Which saved time model answers for a profile on this machine, in one rule (predict, recommend,
report, hardware), found and loaded without fitting anything:

1. this machine's kernel model, saved by `cpbench calibrate` (models/fits/<device>-<hardware id>.model.json.gz);
2. this machine's fit, saved by `cpbench fit` (models/fits/<device>-<hardware id>.json);
3. the shipped reference kernel model of the closest machine (package data, one per machine it was
   measured on), with a warning naming its CPU.
Another machine's times are never presented as this machine's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cpbench.errors import UsageError, calibration_hint
from cpbench.fitting.device_fit import fit_record_path, load_fit_record
from cpbench.fitting.fitted_time_model import from_record
from cpbench.fitting.kernel_model import KernelModel
from cpbench.fitting.time_model import TimeModel
from cpbench.timing.calibration_record import calibration_path

REFERENCE_FITS = Path(__file__).resolve().parents[1] / "reference" / "fits"
MODEL_FORMAT = 1
SUFFIX = ".model.json.gz"
# the saved kinds of time model: a new one is one entry (its class reads what its as_dict wrote)
MODEL_KINDS: dict[str, type[KernelModel]] = {"kernel": KernelModel}


def model_path(models_dir: Path, device: str, hardware_id: str) -> Path:
    return Path(models_dir) / "fits" / f"{device}-{hardware_id}{SUFFIX}"


def save_time_model(path: Path, model: TimeModel) -> Path:
    from cpbench.workspace.formats import write_json

    return write_json(Path(path), model.as_dict(), MODEL_FORMAT)


def load_time_model(path: Path, reference: bool = False) -> TimeModel:
    """A saved model as it was saved: no table is completed and no coefficient fitted here."""
    from cpbench.workspace.formats import read_versioned

    payload = read_versioned(Path(path), MODEL_FORMAT, "rerun 'cpbench calibrate --refit' to fit the saved calibration again")
    kind = MODEL_KINDS.get(payload.get("kind"))
    if kind is None:
        raise UsageError(f"{path} holds a time model of unknown kind {payload.get('kind')!r}; upgrade cpbench to read it")
    try:
        return kind.from_dict(payload, str(path), reference)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise UsageError(f"{path} is not a complete time model ({type(exc).__name__}: {exc}); "
                         "rerun 'cpbench calibrate --refit' to fit the saved calibration again") from None


def reference_models(device: str) -> list[Path]:
    """The shipped models of exactly this profile: files are <device>-<hardware id>.model.json.gz
    and a device name may hold dashes ('cpu-1thread' must not answer for 'cpu')."""
    return sorted(p for p in REFERENCE_FITS.glob(f"{device}-*{SUFFIX}") if p.name[: -len(SUFFIX)].rsplit("-", 1)[0] == device)


def _closest(paths: list[Path], hardware_id: str) -> Path:
    """The same hardware id if shipped, else the first (they name their CPU in the warning)."""
    same = [p for p in paths if p.name.endswith(f"-{hardware_id}{SUFFIX}")]
    return (same or paths)[0]


@dataclass
class Located:
    """Where a profile's time model on this machine comes from, found without reading it."""

    kind: str  # "kernel" | "unfitted-calibration" | "fit" | "reference" | "none"
    path: Path | None
    label: str


def locate_time_model(profile, models_dir: Path, hardware_id: str) -> Located:
    """The rule of the module docstring, as a lookup: cheap enough for `profiles list`."""
    own = model_path(models_dir, profile.name, hardware_id)
    if own.is_file():
        return Located("kernel", own, f"this machine's kernel model ({own})")
    calibration = calibration_path(models_dir, profile.name, hardware_id)
    if calibration.is_file():
        return Located("unfitted-calibration", calibration, f"this machine's calibration ({calibration}), not yet fitted")
    record = fit_record_path(models_dir, profile.name, hardware_id)
    if record.is_file():
        return Located("fit", record, f"this machine's fit ({record})")
    shipped = reference_models(profile.name)
    if shipped:
        path = _closest(shipped, hardware_id)
        return Located("reference", path, f"shipped reference model {path.name}")
    return Located("none", None, "no time model")


@dataclass
class Chosen:
    model: TimeModel
    warning: str | None
    source: str


def time_model(profile, models_dir: Path, hardware_id: str) -> Chosen:
    """The time model that answers for `profile` here, with the warning a user must see beside it."""
    found = locate_time_model(profile, models_dir, hardware_id)
    if found.kind == "none":
        raise UsageError(f"profile '{profile.name}' has no fitted time model; {calibration_hint(profile.name)}")
    if found.kind == "unfitted-calibration":
        raise UsageError(f"{found.path} has no fitted model beside it; run 'cpbench calibrate --device {profile.name} "
                         "--refit' to fit it (measures nothing), or move it away to answer from another time model")
    if found.kind == "fit":
        record = load_fit_record(models_dir, profile.name, hardware_id)
        return Chosen(from_record(record, profile.name, source=str(found.path)), None, found.label)
    model = load_time_model(found.path, reference=found.kind == "reference")
    warnings = []
    if found.kind == "reference":
        same = "a machine of the same hardware id" if model.provenance.hardware_id == hardware_id else "another machine"
        warnings.append(f"times predicted from the shipped kernel model of {same} ({model.cpu or 'another CPU'}, "
                        f"hardware id {model.provenance.hardware_id}), not measured on this one: {calibration_hint(profile.name)}")
    changed = model.provenance.settings_changed(profile.as_dict())
    if changed:
        warnings.append(f"the calibration was measured with other '{profile.name}' settings ({', '.join(changed)} differ "
                        f"from the profile now): recalibrate with 'cpbench calibrate --device {profile.name}'")
    return Chosen(model, "; ".join(warnings) or None, found.label)


def named_time_model(profile, models_dir: Path, hardware_id: str, name: str) -> TimeModel:
    """One named model of this machine's fit (`predict --model layerwise`); never another machine's."""
    record = load_fit_record(models_dir, profile.name, hardware_id)
    if record is None:
        raise UsageError(f"no fit of '{profile.name}' on this machine to take model {name!r} from; "
                         f"run 'cpbench fit --device {profile.name}'")
    return from_record(record, profile.name, name, str(fit_record_path(models_dir, profile.name, hardware_id)))


def other_time_models(profiles_dir: Path, models_dir: Path, hardware_id: str, exclude: str,
                      warnings: list[str] | None = None) -> dict[str, TimeModel]:
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
            out[other.name] = time_model(other, models_dir, hardware_id).model
        except UsageError as exc:
            if warnings is not None and locate_time_model(other, models_dir, hardware_id).kind != "none":
                warnings.append(f"skipped profile '{other.name}': {exc}")
    return out
