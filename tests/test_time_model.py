"""The saved time models: a fresh clone answers from the shipped models with the figures they gave
when they were made, loading one never fits anything, and a model saved by `cpbench calibrate` is
read back to the same predictions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cpbench.family.config import Config

ANSWERS = json.loads((Path(__file__).parent / "data" / "shipped_answers.json").read_text())
PREDICTED = ["64,28,5,3", "3,9,1,1", "17,20,4,2", "32,24,3,2", "8,12,2,1"]
# relative: the shipped models hold the tables as completed and the coefficients as fitted, so the
# answers differ only by float rounding in the prediction, on any CPU and BLAS build
TOLERANCE = 1e-6


@pytest.mark.parametrize("device", ["cpu", "cpu-1thread", "openvino"])
def test_the_shipped_models_predict_what_they_predicted_when_made(cli, tmp_path, device):
    args = [a for c in PREDICTED for a in ("-c", c)]
    done = cli("predict", "--device", device, *args, "-w", str(tmp_path), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    expected = ANSWERS["predict"][device]
    assert result["model"] == expected["model"] == "kernel"
    for got, want in zip(result["predictions"], expected["rows"], strict=True):
        assert got["config"] == want["config"]
        for key in ("predicted_s", "low_s", "high_s"):
            assert got[key] == pytest.approx(want[key], rel=TOLERANCE), (device, got["config"], key)
    assert "not measured on this one" in result["warning"]  # another machine's model is never this machine's


@pytest.mark.parametrize("device", ["cpu", "cpu-1thread", "openvino"])
def test_the_shipped_models_recommend_the_picks_they_recommended_when_made(cli, tmp_path, device):
    for target in ("0.93", "0.92", "0.91"):
        done = cli("recommend", "--device", device, "--target", target, "-w", str(tmp_path), "--json")
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        want = ANSWERS["recommend"][f"{device}@{target}"]
        assert result["pick"]["config"] == want["config"]
        assert [a["config"] for a in result["alternatives"]] == want["alternatives"]
        for key in ("seconds", "seconds_low", "seconds_high", "speedup", "probability"):
            assert result["pick"][key] == pytest.approx(want[key], rel=TOLERANCE), (device, target, key)


def test_the_hardware_table_shows_the_shipped_models_as_before(cli, tmp_path):
    done = cli("hardware", "-w", str(tmp_path), "--json")
    assert done.returncode == 0, done.stderr
    rows = {r["profile"]: r for r in json.loads(done.stdout)}
    for want in ANSWERS["hardware"]:
        got = rows[want["profile"]]
        assert got["pick"] == want["pick"] and got["measured_here"] is False
        for key in ("alpha1", "alpha0", "affine_mape", "best_mape", "baseline_s", "pick_speedup"):
            assert got[key] == pytest.approx(want[key], rel=TOLERANCE), (want["profile"], key)


NO_FITTING = """
import sys
def refuse(*args, **kwargs):
    raise AssertionError("a fitting function ran while loading a saved model")
import cpbench.fitting.completion as completion, cpbench.fitting.kernel_table as kernel_table
import cpbench.fitting.kernel_model as kernel_model, cpbench.fitting.least_squares as least_squares
import cpbench.fitting.time_models as time_models, cpbench.fitting.device_fit as device_fit
import cpbench.fitting.precision_models as precision_models
for module, names in ((completion, ("complete", "denoises", "_als")), (kernel_table, ("complete", "denoises")),
                      (kernel_model, ("fit_kernel_model", "relative_fit", "_choose", "_affine")),
                      (least_squares, ("relative_least_squares",)),
                      (time_models, ("fit_model", "evaluate", "relative_least_squares")),
                      (device_fit, ("fit_device",)), (precision_models, ("fit_precision_model", "study"))):
    for name in names:
        setattr(module, name, refuse)
kernel_table.KernelTable.from_calibration = classmethod(refuse)
from cpbench.cli.app import main
sys.argv = ["cpbench", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("command", [
    ["predict", "--device", "cpu-1thread", "-c", "32,24,3,2"],
    ["recommend", "--device", "openvino", "--target", "0.93"],
    ["hardware"],
])
def test_predict_recommend_and_hardware_never_fit_on_load(tmp_path, command):
    done = subprocess.run([sys.executable, "-c", NO_FITTING, *command, "-w", str(tmp_path), "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "a fitting function ran" not in done.stderr
    json.loads(done.stdout)


def _calibration_here(workspace: Path) -> Path:
    """The shipped cpu-1thread calibration, saved as if measured on this machine."""
    from dataclasses import replace

    from cpbench.fitting.predictors import REFERENCE_FITS
    from cpbench.timing.calibration_record import load_calibration, save_calibration

    shipped = load_calibration(sorted(REFERENCE_FITS.glob("cpu-1thread-*.calibration.json.gz"))[0])
    here = replace(shipped, fingerprint={**shipped.fingerprint, "hardware_id": _hardware_id()})
    return save_calibration(workspace / "models", here)


def test_the_fitting_guard_catches_a_fit(tmp_path):
    """The guard above is live: a command that does fit (refitting a saved calibration) trips it."""
    _calibration_here(tmp_path)
    done = subprocess.run([sys.executable, "-c", NO_FITTING, "calibrate", "--device", "cpu-1thread", "--refit",
                           "-w", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "a fitting function ran" in done.stderr


def _hardware_id() -> str:
    from cpbench.timing.environment import fingerprint

    return fingerprint()["hardware_id"]


def test_a_saved_kernel_model_reads_back_to_the_same_answers(tmp_path):
    """save then load: the tables, composition, interval and provenance survive the file."""
    from cpbench.fitting.kernel_model import fit_kernel_model
    from cpbench.fitting.predictors import REFERENCE_FITS, load_time_model, save_time_model
    from cpbench.timing.calibration_record import load_calibration

    calibration = load_calibration(sorted(REFERENCE_FITS.glob("cpu-1thread-*.calibration.json.gz"))[0])
    model = fit_kernel_model(calibration)
    path = save_time_model(tmp_path / "m.model.json.gz", model)
    loaded = load_time_model(path)
    configs = [Config(64, 28, 5, 3), Config(3, 9, 1, 1), Config(17, 20, 4, 2)]
    assert np.array_equal(loaded.predict_configs(configs), model.predict_configs(configs))
    assert loaded.interval == model.interval and loaded.composition == model.composition
    assert loaded.held_out == model.held_out and loaded.provenance.hardware_id == calibration.hardware_id
    assert loaded.provenance.settings and "threads" in loaded.provenance.settings
    assert loaded.provenance.source == str(path) and not loaded.provenance.reference


def test_a_damaged_or_foreign_model_file_is_one_error_naming_the_fix(cli, tmp_path):
    from cpbench.fitting.predictors import model_path

    here = _hardware_id()
    path = model_path(tmp_path / "models", "cpu-1thread", here)
    path.parent.mkdir(parents=True)
    for content, expected in ((b"\x1f\x8b garbage", "not gzip-compressed"),
                              (_gz({"format": 1, "kind": "mystery"}), "unknown kind"),
                              (_gz({"format": 1, "kind": "kernel", "device": "cpu-1thread"}), "not a complete time model"),
                              (_gz({"format": 99, "kind": "kernel"}), "upgrade cpbench")):
        path.write_bytes(content)
        done = cli("predict", "--device", "cpu-1thread", "-c", "8,12,2,1", "-w", str(tmp_path))
        assert done.returncode == 2 and expected in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_a_calibration_without_its_model_says_to_refit(cli, tmp_path):
    _calibration_here(tmp_path)
    done = cli("predict", "--device", "cpu-1thread", "-c", "8,12,2,1", "-w", str(tmp_path))
    assert done.returncode == 2 and "--refit" in done.stderr, done.stderr
    refit = cli("calibrate", "--device", "cpu-1thread", "--refit", "-w", str(tmp_path), "--json")
    assert refit.returncode == 0, refit.stderr
    assert Path(json.loads(refit.stdout)["model_file"]).is_file()
    again = cli("predict", "--device", "cpu-1thread", "-c", "64,28,5,3", "-w", str(tmp_path), "--json")
    assert again.returncode == 0, again.stderr
    answer = json.loads(again.stdout)
    assert answer["warning"] is None  # this machine's own file now answers, with the settings it was measured with
    assert answer["predictions"][0]["predicted_s"] == pytest.approx(ANSWERS["predict"]["cpu-1thread"]["rows"][0]["predicted_s"], rel=0.05)


def _gz(payload: dict) -> bytes:
    import gzip

    return gzip.compress(json.dumps(payload).encode())
