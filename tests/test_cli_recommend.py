"""`cpbench recommend` and `fit-precision` as a user runs them."""

import json
from pathlib import Path

import numpy as np
import pytest

from cpbench.family.config import FASHION_MNIST, grids_2d, sweeps_1d
from cpbench.fitting.precision_models import MODELS, normalise
from cpbench.fitting.precision_eval import fit_and_judge
from cpbench.fitting.precision_predictor import REFERENCE, save_study
from cpbench.timing.profiles import SHIPPED
from cpbench.workspace.folder import Workspace
from test_cli import assert_one_line_error
from test_cli_fit import add_run, copy_hand_written, random_configs, truth


def synthetic_precision(ws: Workspace, recipe: str = "smoke") -> None:
    configs = sweeps_1d(FASHION_MNIST) + grids_2d(FASHION_MNIST)
    theta = np.array([0.93, 0.02, 0.03, 0.01, 0.015, 0.8, 0.9, 1.2, 0.7, 0.05, 2.0])
    p = MODELS["saturating"](theta, normalise(configs, FASHION_MNIST.baseline))
    result = fit_and_judge(configs, p, FASHION_MNIST.baseline, "fashionmnist", recipe)
    save_study(result, ws.models_dir / "precision", {"cpu": "synthetic", "hardware_id": "synthetic"})


@pytest.fixture
def calibrated(tmp_path: Path, cli) -> Workspace:
    """A workspace whose cpu-1thread profile and precision model were fitted here (synthetic data)."""
    ws = Workspace(tmp_path)
    ws.profiles_dir.mkdir(parents=True)
    copy_hand_written(SHIPPED / "cpu-1thread.toml", ws.profiles_dir / "cpu-1thread.toml")
    configs = random_configs(60, 0)
    add_run(ws, "cpu-1thread", configs, truth(configs))
    assert cli("fit", "--device", "cpu-1thread", "-w", str(ws.root)).returncode == 0
    synthetic_precision(ws)
    return ws


def test_recommend_json_answers_with_intervals_and_alternatives(cli, calibrated):
    done = cli("recommend", "--device", "cpu-1thread", "--target", "0.85", "--top", "4", "-w", str(calibrated.root), "--json")
    assert done.returncode == 0, done.stderr
    r = json.loads(done.stdout)
    pick = r["pick"]
    assert pick["precision"] >= 0.85 and pick["precision_low"] <= pick["precision"] <= pick["precision_high"]
    assert pick["seconds_low"] <= pick["seconds"] <= pick["seconds_high"] and pick["speedup"] > 1
    assert pick["probability"] >= 0.9 and r["confidence"] == 0.9 and pick["speedup_kind"] == "predicted"
    assert len(r["alternatives"]) == 3 and all(a["seconds"] >= pick["seconds"] for a in r["alternatives"])
    assert r["baseline"]["config"] == "64,28,5,3" and r["candidates"] > 1000 and r["configs_per_s"] > 0
    assert r["pareto"] and r["envelope"] and r["time_model"].startswith("layerwise")
    shown = cli("recommend", "--device", "cpu-1thread", "--max-drop", "0.01", "-w", str(calibrated.root))
    assert shown.returncode == 0 and "faster than the baseline" in shown.stdout and "Pareto front" in shown.stdout
    strict = json.loads(cli("recommend", "--device", "cpu-1thread", "--target", "0.85", "--confidence", "0.99",
                            "-w", str(calibrated.root), "--json").stdout)
    assert strict["pick"]["probability"] >= 0.99 and strict["pick"]["seconds"] >= pick["seconds"]


def test_recommend_bad_targets(cli, calibrated):
    root = str(calibrated.root)
    for bad in ("0", "1.5", "-0.2"):
        assert_one_line_error(cli("recommend", "--device", "cpu-1thread", "--target", bad, "-w", root), "--target must be in (0, 1]")
    assert_one_line_error(cli("recommend", "--device", "cpu-1thread", "-w", root), "exactly one of --target")
    assert_one_line_error(cli("recommend", "--device", "cpu-1thread", "--max-drop", "1.2", "-w", root), "--max-drop must be in [0, 1)")
    # a target the space cannot reach is answered with the nearest it comes, never an arbitrary config
    assert_one_line_error(cli("recommend", "--device", "cpu-1thread", "--target", "0.93", "--confidence", "0.9999999",
                              "-w", root), "probability 0.9999999", "the highest predicted precision is")
    assert_one_line_error(cli("recommend", "--device", "cpu-1thread", "--target", "0.9999999", "-w", root),
                          "the highest predicted precision is")
    assert_one_line_error(cli("recommend", "--device", "cuda", "--target", "0.8", "-w", root),
                          "no fitted time model", "cpbench time --device cuda", "cpbench fit --device cuda")
    assert_one_line_error(cli("recommend", "--device", "cpu-1thread", "--target", "0.8", "--grid", "hex", "-w", root), "unknown grid")


def test_a_profile_fitted_elsewhere_is_flagged(cli, calibrated):
    for record in (calibrated.models_dir / "fits").glob("cpu-1thread-*.json"):  # the saved fit: another machine's too
        record.rename(record.with_name("cpu-1thread-elsewhere.json"))
    done = cli("recommend", "--device", "cpu-1thread", "--target", "0.85", "-w", str(calibrated.root), "--json")
    assert done.returncode == 0, done.stderr
    r = json.loads(done.stdout)
    # this machine has no fit of its own now: the closest shipped kernel model answers, and says whose it is
    assert r["time_model"] == "kernel"
    assert any("shipped kernel model" in w and "not measured on this one" in w
               and "cpbench calibrate --device cpu-1thread" in w for w in r["warnings"])


def test_fresh_clone_answers_from_the_shipped_reference_fits(cli, tmp_path):
    """No models, no timings: the shipped kernel models and reference precision model answer,
    and say they were measured on another machine."""
    assert list(REFERENCE.glob("fashionmnist-*.json")), "the repository must ship a reference precision fit"
    for device in ("cpu", "cpu-1thread", "openvino"):
        done = cli("recommend", "--device", device, "--target", "0.85", "-w", str(tmp_path), "--json")
        assert done.returncode == 0, done.stderr
        r = json.loads(done.stdout)
        assert r["pick"]["precision"] >= 0.85 and "shipped reference" in r["precision_source"]
        assert r["time_model"] == "kernel"
        assert any("shipped kernel model" in w and "not measured on this one" in w for w in r["warnings"])
    from cpbench.fitting.predictors import reference_models, time_model
    from cpbench.timing.profiles import SHIPPED, load_profile

    for device in ("cpu", "cpu-1thread", "openvino"):  # each profile answers from its own calibration, not a namesake's
        assert [p.name.rsplit("-", 1)[0] for p in reference_models(device)] == [device]
        chosen = time_model(load_profile(device, SHIPPED), tmp_path / "models", "elsewhere").model
        assert chosen.device == device and chosen.provenance.reference


def test_verify_trains_exports_and_times_the_pick(cli, calibrated):
    done = cli("recommend", "--device", "cpu-1thread", "--target", "0.6", "--verify", "--verify-seeds", "2",
               "-w", str(calibrated.root), "--json", timeout=600)
    assert done.returncode == 0, done.stderr
    v = json.loads(done.stdout)["verification"]
    assert v["config"] == json.loads(done.stdout)["pick"]["config"] and v["recipe"] == "smoke" and v["seeds"] == [100, 101]  # never a seed the study trained
    assert len(v["measured_precisions"]) == 2 and v["measured_precision"] == pytest.approx(np.mean(v["measured_precisions"]))
    assert v["measured_pick_s"] > 0 and v["measured_baseline_s"] > 0 and v["run_id"].startswith("cpu-1thread-")
    assert v["measured_speedup"] == pytest.approx(v["measured_baseline_s"] / v["measured_pick_s"])
    assert isinstance(v["reached_target"], bool) and isinstance(v["speedup_in_interval"], bool)
    models = {m["name"]: m for m in json.loads(cli("models", "-w", str(calibrated.root), "--json").stdout)}
    assert [models[name]["accuracy"] for name in v["models"]] == v["measured_precisions"]
    # pick and baseline were timed in one run, so their rounds interleave
    runs = json.loads(cli("runs", "-w", str(calibrated.root), "--json").stdout)
    timed = [r for r in runs if r["id"] == v["run_id"]]
    assert timed and timed[0]["ok"] == 2


def test_fit_precision_on_trained_models(cli, tmp_path):
    ws = str(tmp_path)
    assert_one_line_error(cli("fit-precision", "-w", ws), "no store", "cpbench export --preset quick")
    done = cli("export", "--preset", "smoke", "--train-subset", "600", "-w", ws)
    assert done.returncode == 0, done.stderr
    assert_one_line_error(cli("fit-precision", "-w", ws), "too few trained configs", "--preset quick")


def test_refitting_the_shipped_study_reproduces_the_shipped_fit(cli, tmp_path):
    """`fit-precision --study reference` refits the study the shipped fit names, to the same model."""
    (shipped,) = REFERENCE.glob("fashionmnist-*.json")
    done = cli("fit-precision", "--study", "reference", "--out", str(tmp_path / "out"), "-w", str(tmp_path), "--json")
    assert done.returncode == 0, done.stderr
    refit = json.loads((tmp_path / "out" / shipped.name).read_text())
    original = json.loads(shipped.read_text())
    assert refit["source"] == original["source"] and refit["best"] == original["best"]
    for name in ("saturating", original["best"]):
        # a bounded multistart fit on another CPU vendor or BLAS build lands within rounding of it, not bit-equal
        assert refit["models"][name]["coefficients"] == pytest.approx(original["models"][name]["coefficients"], rel=1e-4)
