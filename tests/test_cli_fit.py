"""`cpbench fit`, `predict` and `profiles` as a user runs them, on a store holding synthetic timings
(the fitting is what is tested here; real timing is tested in test_cli_timing)."""

import json
from pathlib import Path

import numpy as np
import pytest

from cpbench.family.config import Config
from cpbench.timing.environment import fingerprint
from cpbench.family.closed_form import FEATURES, Layers
from cpbench.timing.profiles import SHIPPED, load_profile
from cpbench.timing.runner import ModelTiming, TimingRun
from cpbench.workspace.records import ModelRecord
from cpbench.workspace.folder import Workspace
from cpbench.timing.protocol import summarize
from test_cli import assert_one_line_error


def truth(configs: list[Config]) -> np.ndarray:
    """A device where time is per-layer work plus a per-layer constant, not proportional to MACs."""
    x = Layers.of(configs)
    return 8e-6 + 5e-6 * FEATURES["layers"](x) + 2e-12 * FEATURES["conv_macs"](x) + 1e-9 * FEATURES["conv_outputs"](x)


def record(config: Config) -> ModelRecord:
    macs = int(FEATURES["macs"](Layers.of([config]))[0])
    return ModelRecord(
        name=f"family/fashionmnist-untrained/{config.id}", kind="family", dataset="fashionmnist", input_shape=(1, config.s, config.s),
        num_classes=10, recipe_name="untrained", recipe_hash="0", recipe={}, params=1, file=f"models/{config.id}.onnx",
        sha256="0" * 64, opset=18, exporter="torchscript", parity_max_abs_diff=0.0, cpbench_version="test",
        config_id=config.id, f=config.f, s=config.s, k=config.k, l=config.l, macs=macs,
    )


def add_run(ws: Workspace, device: str, configs: list[Config], times: np.ndarray, hardware_id: str | None = None, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    profile = load_profile(device, ws.profiles_dir)
    env = fingerprint()
    if hardware_id:
        env["hardware_id"] = hardware_id
    run = TimingRun(f"{device}-synthetic-{seed}", device, profile, env, "2026-01-01T00:00:00+00:00")
    with ws.open_store() as store:
        store.start_run(run)
        for config, t in zip(configs, times):
            store.put_model(record(config))
            samples = (t * (1 + 0.01 * rng.standard_normal(30))).tolist()
            timing = ModelTiming(record(config).name, "ok", 1, macs=record(config).macs, stats=summarize(samples), times_s=samples)
            store.put_timing(run.id, timing)
        run.status = "done"
        store.finish_run(run)
    return run.id


def random_configs(n: int, seed: int) -> list[Config]:
    rng = np.random.default_rng(seed)
    out = set()
    while len(out) < n:
        l = int(rng.integers(1, 4))  # noqa: E741
        out.add(Config(int(rng.integers(1, 65)), int(rng.integers(2**l, 29)), int(rng.integers(1, 6)), l))
    return sorted(out)


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    ws = Workspace(tmp_path)
    ws.profiles_dir.mkdir(parents=True)
    copy_hand_written(SHIPPED / "cpu.toml", ws.profiles_dir / "cpu.toml")
    return ws


def copy_hand_written(source: Path, target: Path) -> None:
    """A user's own copy of a shipped profile (settings only, as every profile now is)."""
    assert "[fitted" not in source.read_text(), "shipped profiles hold settings only; fits live in models/fits"
    target.write_text(source.read_text())


def test_fit_gives_the_verdict_and_writes_the_profile_below_the_hand_written_part(cli, workspace):
    configs = random_configs(60, 0)
    add_run(workspace, "cpu", configs, truth(configs))
    hand_written = (workspace.profiles_dir / "cpu.toml").read_text()
    done = cli("fit", "--device", "cpu", "-w", str(workspace.root), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["n"] == 60 and result["batch"] == 1
    assert result["best"].startswith("layerwise")
    assert result["models"][result["best"]]["kfold"]["mape"] < 0.03 < result["models"]["linear-rel"]["kfold"]["mape"]
    assert result["power_law"]["ci_high"] < 1.0 and "not proportional" in result["verdict"]
    assert result["f_test"]["p_value"] < 1e-6
    assert set(result["models"]["linear"]["leave_one_family_out"]) == {"l", "k"}
    assert result["models"]["eq1"]["normalised"]["alpha1"] > 0

    # the fit is saved as this machine's, apart from the profile, which stays as the user wrote it
    assert (workspace.profiles_dir / "cpu.toml").read_text() == hand_written
    here = fingerprint()["hardware_id"]
    saved = workspace.models_dir / "fits" / f"cpu-{here}.json"
    assert result["written"] == str(saved)
    fitted = json.loads(saved.read_text())["fitted"]
    assert fitted["best"] == result["best"] and fitted["n"] == 60
    assert fitted["fingerprint"]["hardware_id"] == here
    assert {"date", "cpbench_version", "statistic", "runs"} <= set(fitted)
    # a second fit on this machine replaces this machine's record, says so, and still leaves the profile alone
    again = json.loads(cli("fit", "--device", "cpu", "-w", str(workspace.root), "--statistic", "p10", "--json").stdout)
    assert any("replaces the earlier fit" in w for w in again["warnings"])
    assert json.loads(saved.read_text())["fitted"]["statistic"] == "p10"
    assert (workspace.profiles_dir / "cpu.toml").read_text() == hand_written
    listed = json.loads(cli("profiles", "list", "-w", str(workspace.root), "--json").stdout)
    assert {r["name"]: r["time_model"] for r in listed}["cpu"] == "fit"

    shown = cli("profiles", "show", "cpu", "-w", str(workspace.root))
    assert shown.returncode == 0 and result["best"] in shown.stdout and "not proportional" in shown.stdout

    predicted = cli("predict", "--device", "cpu", "-c", "32,24,3,2", "-c", "f64-s28-k5-l3", "-w", str(workspace.root), "--json")
    assert predicted.returncode == 0, predicted.stderr
    rows = json.loads(predicted.stdout)["predictions"]
    expected = truth([Config(32, 24, 3, 2), Config(64, 28, 5, 3)])
    for row, want in zip(rows, expected):
        assert row["predicted_s"] == pytest.approx(want, rel=0.05)
        assert row["low_s"] <= row["predicted_s"] <= row["high_s"]


def test_a_fit_is_saved_per_machine_and_never_replaces_another_machines(cli, workspace):
    configs = random_configs(30, 1)
    add_run(workspace, "cpu", configs, truth(configs), hardware_id="another-machine")
    assert cli("fit", "--device", "cpu", "-w", str(workspace.root)).returncode == 0
    fits = workspace.models_dir / "fits"
    theirs = (fits / "cpu-another-machine.json").read_bytes()
    add_run(workspace, "cpu", configs, truth(configs), seed=1)
    done = cli("fit", "--device", "cpu", "-w", str(workspace.root), "--json", "--run", "cpu-synthetic-1")
    assert done.returncode == 0, done.stderr
    here = fingerprint()["hardware_id"]
    assert sorted(p.name for p in fits.glob("*.json")) == sorted(["cpu-another-machine.json", f"cpu-{here}.json"])
    assert (fits / "cpu-another-machine.json").read_bytes() == theirs
    # predict answers from this machine's fit, with no warning about another machine
    predicted = json.loads(cli("predict", "--device", "cpu", "-c", "8,12,3,1", "-w", str(workspace.root), "--json").stdout)
    assert predicted["warning"] is None and predicted["model"].startswith("layerwise")
    named = json.loads(cli("predict", "--device", "cpu", "-c", "8,12,3,1", "--model", "linear", "-w", str(workspace.root), "--json").stdout)
    assert named["model"] == "linear"  # a named model of this machine's saved fit
    default = json.loads(cli("fit", "--device", "cpu", "-w", str(workspace.root), "--json", "--no-write").stdout)
    assert default["hardware_ids"] == [fingerprint()["hardware_id"]]  # two machines' runs: this machine's, not both
    mixed = json.loads(cli("fit", "--device", "cpu", "-w", str(workspace.root), "--json", "--no-write",
                           "--run", "cpu-synthetic-0", "--run", "cpu-synthetic-1").stdout)
    assert any("different machines" in w for w in mixed["warnings"])  # asked for by run id: warned


def test_fit_bad_input(cli, workspace):
    root = str(workspace.root)
    assert_one_line_error(cli("fit", "--device", "cpu", "-w", root), "no store", "cpbench time --device cpu")
    few = random_configs(5, 2)
    add_run(workspace, "cpu", few, truth(few))
    assert_one_line_error(cli("fit", "--device", "cpu", "-w", root), "too few timed family configs", "--preset timing")
    assert_one_line_error(cli("fit", "--device", "openvino", "-w", root), "never timed", "cpbench time --device openvino")
    assert_one_line_error(cli("fit", "--device", "cpu", "--model", "nonsense", "-w", root), "unknown", "layerwise")
    assert_one_line_error(cli("fit", "--device", "cpu", "--statistic", "p99.9", "-w", root), "unknown statistic", "median")
    assert_one_line_error(cli("fit", "--device", "cpu", "--folds", "1", "-w", root), "--folds", ">= 2")
    assert_one_line_error(cli("predict", "--device", "cpu", "-c", "1,2", "-w", root), "invalid config", "64,28,5,3")
    assert_one_line_error(cli("predict", "--device", "cuda", "-c", "8,8,3,1", "-w", root), "no fitted time model", "cpbench fit --device cuda")
    assert_one_line_error(cli("profiles", "show", "nope", "-w", root), "no device profile 'nope'", "cpu")
    # nothing was written by the failed fits
    assert not list((workspace.models_dir / "fits").glob("*.json")) if (workspace.models_dir / "fits").exists() else True
    assert (workspace.profiles_dir / "cpu.toml").read_text() == (SHIPPED / "cpu.toml").read_text()


def test_degenerate_timings_are_a_usage_error():
    """Ten timings of one config (copies of a model) count as one config, and cannot say how time follows MACs."""
    from cpbench.fitting.device_fit import fit_device
    from cpbench.errors import UsageError
    from cpbench.fitting.observations import Observation, Observations

    config = Config(8, 16, 3, 2)
    points = [Observation(f"copy{i}", "family", 1e-4 * (1 + i / 100), 1000, "run", config) for i in range(10)]
    with pytest.raises(UsageError, match="too few timed family configs on 'cpu': 1, need at least 8"):
        fit_device(Observations("cpu", 1, "median", points))


def test_a_fit_never_mixes_the_wall_clock_with_the_runtimes_own_latency(workspace):
    """The same device's runs on two clocks measure two things: the points come from the latest
    run's clock only (a model timed only on the other clock is left out, not mixed in)."""
    from dataclasses import replace

    from cpbench.fitting.observations import load_observations

    configs = random_configs(12, 5)
    add_run(workspace, "openvino", configs[:8], truth(configs[:8]) * 1.3, seed=1)  # the shipped profile: clock runtime
    profile = load_profile("openvino", workspace.profiles_dir)
    wall = replace(profile, clock="wall", runtime_options=None)
    run = TimingRun("openvino-synthetic-wall", "openvino", wall, fingerprint(), "2026-01-02T00:00:00+00:00")
    with workspace.open_store() as store:
        store.start_run(run)
        for config, t in zip(configs[4:], truth(configs[4:])):
            store.put_model(record(config))
            timing = ModelTiming(record(config).name, "ok", 1, macs=record(config).macs, stats=summarize([t] * 30), times_s=[t] * 30)
            store.put_timing(run.id, timing)
        run.status = "done"
        store.finish_run(run)
        latest = load_observations(store, "openvino", statistic="min")
    assert latest.clock == "wall" and latest.runs == [run.id]
    assert sorted(p.config for p in latest.points) == sorted(configs[4:])
    expected = dict(zip(configs[4:], truth(configs[4:])))
    assert all(p.time_s == pytest.approx(expected[p.config]) for p in latest.points)


def test_fit_and_models_piped_to_a_file_keep_every_column_and_figure_whole(workspace):
    """A log of `make demo` or CI (stdout not a terminal, no COLUMNS): no figure cut to '…', no
    column dropped."""
    import os
    import subprocess
    import sys

    configs = random_configs(30, 1)
    add_run(workspace, "cpu", configs, truth(configs))
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    outputs = {}
    for args in (("fit", "--device", "cpu"), ("models",)):
        done = subprocess.run([sys.executable, "-m", "cpbench.cli", *args, "-w", str(workspace.root)],
                              capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr
        assert "…" not in done.stdout, done.stdout
        outputs[args[0]] = done.stdout
    assert all(column in outputs["models"] for column in ("name", "params", "MACs", "accuracy", "size"))
    assert "linear-rel" in outputs["fit"] and "layerwise" in outputs["fit"]
