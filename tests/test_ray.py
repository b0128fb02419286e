"""`cpbench export --executor ray` in Ray's local mode with 2 workers: same results as the local
executor, resumable, failures recorded without stopping the sweep."""

import json
from dataclasses import replace

import pytest

from test_cli import assert_one_line_error

SMOKE = ["--preset", "smoke", "--train-subset", "600", "--threads", "1"]


def accuracies(done) -> dict:
    assert done.returncode == 0, done.stderr
    return {m["config"]: (m["status"], m["accuracy"]) for m in json.loads(done.stdout)["models"]}


def test_ray_sweep_matches_the_local_executor_and_resumes(cli, tmp_path):
    local = accuracies(cli("export", *SMOKE, "-w", str(tmp_path / "local"), "--json"))
    on_ray = accuracies(cli("export", *SMOKE, "--executor", "ray", "-w", str(tmp_path / "ray"), "--json"))
    assert set(on_ray) == set(local)
    for config, (status, accuracy) in on_ray.items():
        assert status == "exported" and accuracy == pytest.approx(local[config][1], abs=1e-4)
    again = accuracies(cli("export", *SMOKE, "--executor", "ray", "-w", str(tmp_path / "ray"), "--json"))
    assert {status for status, _ in again.values()} == {"skipped"}
    models = json.loads(cli("models", "-w", str(tmp_path / "ray"), "--json").stdout)
    assert all((tmp_path / "ray" / m["file"]).is_file() for m in models) and len(models) == 3


def test_a_failing_task_is_retried_then_recorded_and_the_sweep_goes_on(tmp_path):
    from cpbench.export.plan import plan_export
    from cpbench.export.ray_executor import RaySettings, run_sweep_ray
    from cpbench.workspace.folder import Workspace

    good, other = plan_export(None, ["4,8,3,1", "5,8,3,1"], untrained=True, threads=1)
    bad = replace(other, exporter="no-such-exporter")  # fails inside the worker, every time
    summary = run_sweep_ray(Workspace(tmp_path), [bad, good], RaySettings(max_retries=1, num_cpus=2))
    outcomes = {o.job.label: o for o in summary.outcomes}
    assert outcomes["f4-s8-k3-l1"].status == "exported"
    assert outcomes["f5-s8-k3-l1"].status == "failed" and "no-such-exporter" in outcomes["f5-s8-k3-l1"].error


def test_without_ray_installed_the_error_says_how_to_install_it(cli, tmp_path):
    fake = tmp_path / "site" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    done = cli("export", "--preset", "smoke", "--executor", "ray", "-w", str(tmp_path), env={"PYTHONPATH": str(tmp_path / "site")})
    assert_one_line_error(done, "--executor ray needs Ray", "pip install 'cpbench[ray]'")
    assert not (tmp_path / "models").exists()


def test_ray_bad_input(cli, tmp_path):
    assert_one_line_error(cli("export", "--preset", "smoke", "--executor", "spark", "-w", str(tmp_path)), "unknown executor")
    assert_one_line_error(cli("export", "--preset", "smoke", "--address", "auto", "-w", str(tmp_path)), "--address is for --executor ray")
    assert_one_line_error(cli("export", "--preset", "smoke", "--train-device", "cuda", "-w", str(tmp_path)), "no CUDA GPU")
    assert_one_line_error(cli("export", "--preset", "smoke", "--train-device", "tpu", "--executor", "ray", "-w", str(tmp_path)),
                          "unknown training device")


def test_time_on_every_ray_node_gives_one_run_per_node_tagged_with_its_fingerprint(cli, tmp_path):
    ws = str(tmp_path)
    assert cli("export", "--config", "4,8,3,1", "--config", "6,12,3,2", "--untrained", "-w", ws).returncode == 0
    done = cli("time", "--device", "cpu-1thread", "--executor", "ray", "--min-time", "0.05", "--min-runs", "10",
               "--warmup", "1", "-w", ws, "--json", timeout=600)
    assert done.returncode == 0, done.stderr
    runs = json.loads(done.stdout)["runs"]
    assert len(runs) == 1  # Ray's local mode: one node
    run = runs[0]
    assert run["fingerprint"]["ray_node"] and run["fingerprint"]["hardware_id"]
    assert {m["status"] for m in run["models"]} == {"ok"} and len(run["models"]) == 2
    listed = json.loads(cli("runs", "-w", ws, "--json").stdout)
    assert [r["id"] for r in listed] == [run["run_id"]] and listed[0]["hardware_id"] == run["fingerprint"]["hardware_id"]
    assert_one_line_error(cli("time", "--device", "cpu-1thread", "--resource", "gpu-node", "-w", ws), "--executor ray")
    bad = cli("time", "--device", "cpu-1thread", "--executor", "ray", "--resource", "no-such-label", "-w", ws)
    assert bad.returncode == 2 and "no live Ray node has the resource 'no-such-label'" in bad.stderr  # Ray adds its own banner
    assert "Traceback" not in bad.stderr and len(json.loads(cli("runs", "-w", ws, "--json").stdout)) == 1
