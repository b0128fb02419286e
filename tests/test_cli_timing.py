"""`cpbench time`, `runs` and `compare` as a user runs them (short measurements: seconds, not minutes)."""

import json

import pytest

from test_cli import assert_one_line_error

QUICK = ["--min-time", "0.05", "--min-runs", "20", "--warmup", "2", "--rounds", "1"]  # tests pass --rounds after QUICK


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    from conftest import run_cli

    ws = tmp_path_factory.mktemp("timing")
    done = run_cli("export", "--config", "4,8,3,1", "--config", "8,12,3,2", "--untrained", "-w", str(ws))
    assert done.returncode == 0, done.stderr
    return ws


def test_cuda_without_a_gpu_is_an_error_with_no_numbers(cli, workspace):
    done = cli("time", "--device", "cuda", "-w", str(workspace))
    assert_one_line_error(done, "asked for CUDAExecutionProvider", "no timings were taken")
    runs = json.loads(cli("runs", "-w", str(workspace), "--json").stdout)
    assert all(r["device"] != "cuda" for r in runs)


def test_time_json_schema_and_stored_run(cli, workspace):
    done = cli("time", "--device", "cpu-1thread", "-w", str(workspace), "--json", *QUICK)
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert run["device"] == "cpu-1thread" and run["status"] == "done" and run["run_id"].startswith("cpu-1thread-")
    assert run["profile"]["threads"] == 1 and run["profile"]["measure"]["min_runs"] == 20
    assert {"hardware", "hardware_id", "libraries", "python", "os"} <= set(run["fingerprint"])
    assert len(run["models"]) == 2
    for model in run["models"]:
        assert model["status"] == "ok" and model["macs"] > 0
        stats = model["stats"]
        assert stats["n"] >= 20
        assert stats["min_s"] <= stats["median_s"] <= stats["p90_s"] <= stats["p99_s"] <= stats["max_s"]
        assert stats["median_ci_low_s"] <= stats["median_s"] <= stats["median_ci_high_s"]
        assert model["load_s"] > 0 and model["first_s"] > 0 and model["gmacs_per_s"] > 0
        assert model["runtime"]["providers_in_use"][0] == "CPUExecutionProvider"
        assert model["runtime"]["intra_op_num_threads"] == 1 and model["runtime"]["pinned_cpus"] is None
        assert all(len(r["reference"]) == 2 and min(r["reference"]) > 0 for r in model["rounds"])  # bracketed
    assert run["reference"]["n"] == 2 * len(run["models"]) and run["reference"]["quiet_s"] > 0
    listed = json.loads(cli("runs", "-w", str(workspace), "--json").stdout)
    assert any(r["id"] == run["run_id"] and r["ok"] == 2 for r in listed)


def test_a_profile_with_pin_threads_times_with_each_thread_on_a_cpu_of_its_own(cli, workspace, tmp_path):
    """`options.pin_threads = true` reaches the timing worker: the run records the CPUs its threads
    were pinned to, one per intra-op thread, and ONNX Runtime ran with that many threads."""
    import os

    allowed = sorted(os.sched_getaffinity(0))
    threads = min(2, len(allowed))
    profile = tmp_path / "pinned.toml"
    profile.write_text(f'runtime = "onnxruntime"\nprovider = "CPUExecutionProvider"\nthreads = {threads}\n'
                       '[options]\npin_threads = true\n[options.config]\n"session.intra_op.allow_spinning" = "0"\n')
    done = cli("time", "--device", str(profile), "--models", "*f4-s8*", "-w", str(workspace), "--json", *QUICK)
    assert done.returncode == 0, done.stderr
    runtime = json.loads(done.stdout)["models"][0]["runtime"]
    assert runtime["pinned_cpus"] == allowed[:threads] and runtime["intra_op_num_threads"] == threads
    # more threads than this machine lets the process use: the profile cannot run here, one line, exit 2, no run kept
    profile.write_text(f'runtime = "onnxruntime"\nprovider = "CPUExecutionProvider"\nthreads = {len(allowed) + 1}\n'
                       '[options]\npin_threads = true\n')
    before = json.loads(cli("runs", "-w", str(workspace), "--json").stdout)
    done = cli("time", "--device", str(profile), "--models", "*f4-s8*", "-w", str(workspace), *QUICK)
    assert_one_line_error(done, f"{len(allowed) + 1} intra-op threads", f"may run on {len(allowed)} CPUs", "lower 'threads'")
    assert json.loads(cli("runs", "-w", str(workspace), "--json").stdout) == before


def test_a_model_the_runtime_cannot_run_is_recorded_and_the_sweep_goes_on(cli, workspace, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    good = next((workspace / "models").rglob("*.onnx"))
    graph = helper.make_graph([helper.make_node("NoSuchOp", ["x"], ["y"], domain="com.example")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.example", 1)], ir_version=9)
    broken = tmp_path / "unrunnable.onnx"
    onnx.save(model, broken)  # a valid ONNX file that no runtime here can execute
    done = cli("time", "--device", "cpu-1thread", "--model", str(broken), "--model", str(good), "-w", str(workspace), "--json", *QUICK)
    assert done.returncode == 1, done.stderr
    models = json.loads(done.stdout)["models"]
    assert [m["status"] for m in models] == ["failed", "ok"]
    assert models[0]["error"]


def test_openvino_and_throughput_batch(cli, workspace):
    done = cli("time", "--device", "openvino", "--models", "*f4-s8*", "--batch", "4", "-w", str(workspace), "--json", *QUICK)
    assert done.returncode == 0, done.stderr
    model = json.loads(done.stdout)["models"][0]
    assert model["batch"] == 4 and model["throughput_ips"] == pytest.approx(4 / model["stats"]["median_s"])
    assert model["runtime"]["runtime"] == "openvino" and model["runtime"]["device"] == "CPU"
    # the shipped profile's clock is the request's own latency (benchmark_app's figure); the call's wall time is beside it
    assert model["runtime"]["clock"] == "runtime" and "own_latency" not in model["runtime"]
    wall = model["runtime"]["wall_time"]
    assert wall["n"] == model["stats"]["n"] and 0 < model["stats"]["median_s"] <= wall["median_s"] * 1.05


def test_rounds_measure_every_model_again_in_later_passes(cli, workspace):
    done = cli("time", "--device", "cpu-1thread", "-w", str(workspace), "--json", *QUICK, "--rounds", "2")
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert run["profile"]["measure"]["rounds"] == 2 and len(run["models"]) == 2
    for model in run["models"]:
        assert len(model["rounds"]) == 2 and all(r["n"] >= 20 for r in model["rounds"])
        assert model["stats"]["n"] == sum(r["n"] for r in model["rounds"])
        assert model["stats"]["min_s"] == pytest.approx(min(r["min_s"] for r in model["rounds"]))
    assert_one_line_error(cli("time", "--device", "cpu-1thread", "--rounds", "0", "-w", str(workspace)), "rounds")


def test_compare_two_runs(cli, workspace):
    ids = []
    for _ in range(2):
        done = cli("time", "--device", "cpu-1thread", "-w", str(workspace), "--json", *QUICK, "--rounds", "3")
        ids.append(json.loads(done.stdout)["run_id"])
    result = cli("compare", *ids, "-w", str(workspace), "--json")
    assert result.returncode == 0, result.stderr
    comparison = json.loads(result.stdout)
    assert comparison["run_a"] == ids[0] and len(comparison["models"]) == 2 and comparison["same_hardware"]
    assert comparison["clocks"] == ["wall", "wall"]
    for model in comparison["models"]:
        assert model["ratio"] == pytest.approx(model["median_b_s"] / model["median_a_s"])
        assert 0 <= model["p_value"] <= 1 and model["verdict"] in ("faster", "slower", "same")
        assert model["rounds_a"] == model["rounds_b"] == 3
        if abs(model["ratio"] - 1) < 0.03:
            assert model["verdict"] == "same"  # under the effect-size threshold, whatever the p-value
    assert comparison["geometric_mean_ratio"] > 0
    table = cli("compare", *ids, "-w", str(workspace))
    assert "geometric mean" in table.stdout


def test_time_bad_input(cli, workspace, tmp_path):
    assert_one_line_error(cli("time", "--device", "tpu", "-w", str(workspace)), "no device profile 'tpu'")
    assert_one_line_error(cli("time", "--device", "cpu", "-w", str(tmp_path)), "no models")
    assert_one_line_error(cli("time", "--device", "cpu", "--model", str(tmp_path / "x.onnx"), "-w", str(workspace)), "does not exist")
    assert_one_line_error(cli("time", "--device", "cpu", "--batch", "0", "-w", str(workspace)), "--batch must be in 1..1024")
    assert_one_line_error(cli("time", "--device", "cpu", "--threads", "100000", "-w", str(workspace)), "--threads must be in 0..1024")
    assert_one_line_error(cli("compare", "nope-a", "nope-b", "-w", str(workspace)), "no run 'nope-a'")
    bad = tmp_path / "bad.toml"
    bad.write_text('runtime = "onnxruntime"\nprovider = "CPUExecutionProvider"\nthreds = 1\n')
    assert_one_line_error(cli("time", "--device", str(bad), "-w", str(workspace)), "unknown key 'threds'")
    runs_before = json.loads(cli("runs", "-w", str(workspace), "--json").stdout)
    for text, message in (
        ('runtime = "onnxruntime"\nprovider = "CPUExecutionProvider"\n[options]\ninter_op_threads = 1\n', "'options.inter_op_threads'"),
        ('runtime = "openvino"\n[options]\nNUM_STREAM = "1"\n', "unknown OpenVINO property 'options.NUM_STREAM'"),
    ):
        bad.write_text(text)
        assert_one_line_error(cli("time", "--device", str(bad), "-w", str(workspace)), message)
    assert json.loads(cli("runs", "-w", str(workspace), "--json").stdout) == runs_before  # refused before any run began


def test_a_changed_model_file_is_refused_and_nothing_is_stored(cli, workspace, tmp_path):
    import shutil

    runs_before = json.loads(cli("runs", "-w", str(workspace), "--json").stdout)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model at all")
    assert_one_line_error(cli("time", "--device", "cpu", "--model", str(junk), "-w", str(workspace)), "not a readable ONNX model")
    model = workspace / "models" / "family" / "fashionmnist-untrained" / "f4-s8-k3-l1.onnx"
    kept = tmp_path / "kept.onnx"
    shutil.copy(model, kept)
    try:
        shutil.copy(workspace / "models" / "family" / "fashionmnist-untrained" / "f8-s12-k3-l2.onnx", model)
        assert_one_line_error(cli("time", "--device", "cpu", *QUICK, "-w", str(workspace)), "has changed since model", "--force")
    finally:
        shutil.copy(kept, model)
    assert json.loads(cli("runs", "-w", str(workspace), "--json").stdout) == runs_before
    done = cli("time", "--device", "cpu", "--model", str(kept), *QUICK, "-w", str(workspace), "--json")
    assert done.returncode == 0, done.stderr
    import hashlib
    timed = json.loads(done.stdout)["models"][0]
    assert timed["sha256"] == hashlib.sha256(kept.read_bytes()).hexdigest()  # the hash of the bytes timed


def test_more_rounds_until_the_best_rounds_agree_with_fixed_count_round_statistics(cli, workspace):
    done = cli("time", "--device", "cpu-1thread", "--models", "*f4-s8*", "--max-rounds", "4",
               "-w", str(workspace), "--json", *QUICK, "--rounds", "2")
    assert done.returncode == 0, done.stderr
    model = json.loads(done.stdout)["models"][0]
    rounds = model["rounds"]
    assert 2 <= len(rounds) <= 4
    fixed = json.loads(done.stdout)["profile"]["measure"]["round_runs"]
    assert all(r["fixed_n"] == min(r["n"], fixed) and r["fixed_min_s"] >= r["min_s"] for r in rounds)
    values = sorted(r["fixed_min_s"] for r in rounds)
    agreed = (values[1] - values[0]) / values[0] * 100 <= 1.0
    if len(rounds) < 4:
        assert agreed  # it stopped early only because its two best rounds agreed
    else:
        assert agreed or any("never agreed" in w for w in model["stats"]["warnings"])


def test_rounds_agree_and_round_statistic():
    from cpbench.timing.protocol import round_statistic, round_summary, rounds_agree

    a, b, c = (round_summary([t, t * 1.1, t * 1.2], 2) for t in (1.0, 1.005, 1.3))
    assert a["fixed_n"] == 2 and a["fixed_min_s"] == 1.0
    assert rounds_agree([a, c], 1.0) is False and rounds_agree([a, b, c], 1.0) is True
    assert round_statistic([a, b, c]) == pytest.approx(1.005)


def test_a_model_with_two_inputs_is_timed_with_the_batch_only_where_it_is_symbolic(cli, workspace, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])
    bias = helper.make_tensor_value_info("bias", TensorProto.FLOAT, [1, 8])  # a static second input
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])
    graph = helper.make_graph([helper.make_node("Add", ["x", "bias"], ["y"])], "two", [x, bias], [y])
    path = tmp_path / "two_inputs.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9), path)
    done = cli("time", "--device", "cpu-1thread", "--model", str(path), "--batch", "4", "-w", str(workspace), "--json", *QUICK)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["models"][0]["status"] == "ok"


def test_a_model_file_replaced_between_rounds_is_never_timed_under_the_old_name(workspace, monkeypatch):
    """Every round loads the bytes whose sha256 is stored, even when the file is replaced mid-run."""
    import hashlib
    import shutil

    from cpbench.timing import runner
    from cpbench.timing.profiles import SHIPPED, load_profile
    from cpbench.workspace.folder import Workspace

    folder = workspace / "models" / "family" / "fashionmnist-untrained"
    small, large = folder / "f4-s8-k3-l1.onnx", folder / "f8-s12-k3-l2.onnx"
    original = small.read_bytes()
    loaded = []
    real = runner.time_in_worker

    def spy(target, profile, seed=0):
        loaded.append((target.name, hashlib.sha256(target.path.read_bytes()).hexdigest()))
        return real(target, profile, seed)

    class ReplaceAfterFirst:
        def model_started(self, index, total, target):
            pass

        def model_finished(self, timing):
            shutil.copy(large, small)  # another process overwrites the model after its first round

    monkeypatch.setattr(runner, "time_in_worker", spy)
    profile = load_profile("cpu-1thread", SHIPPED)
    from dataclasses import replace
    profile = profile.with_overrides(measure=replace(profile.measure, rounds=2, min_runs=5, min_time_s=0.0, warmup_runs=1,
                                                     warmup_time_s=0.0))
    try:
        with Workspace(workspace).open_store() as store:
            targets = [t for t in runner.targets_for(workspace, store, None, []) if t.path == small]
            run = runner.run_timing(store, "cpu-1thread", profile, targets, ReplaceAfterFirst())
    finally:
        small.write_bytes(original)
    stored = hashlib.sha256(original).hexdigest()
    assert [h for _, h in loaded] == [stored, stored]  # both rounds timed the bytes that were checked
    assert run.timings[0].sha256 == stored and len(run.timings[0].rounds) == 2
