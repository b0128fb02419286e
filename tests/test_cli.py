"""The commands as a user runs them: results, JSON, and one-line errors with exit code 2."""

import json
import sqlite3

import pytest


def assert_one_line_error(done, *fragments):
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr and done.stdout.strip() == ""
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--config", "64,28,5"], ["'64,28,5'", "four integers"]),
        (["--config", "0,28,5,3"], ["f (filters)"]),
        (["--config", "64,2,5,3"], ["s=2", "l=3"]),
        (["--preset", "nope"], ["unknown preset 'nope'", "quick"]),
        (["--preset", "smoke", "--recipe", "fast"], ["unknown recipe 'fast'"]),
        ([], ["nothing to export"]),
        (["--preset", "smoke", "--threads", "abc"], ["--threads"]),
        (["--preset", "smoke", "--dataset", "imagefolder:/no/such/dir"], ["does not exist"]),
    ],
)
def test_bad_input(cli, tmp_path, args, fragments):
    assert_one_line_error(cli("export", "-w", str(tmp_path), *args), *fragments)


def test_missing_dataset_keeps_the_workspace_untouched(cli, tmp_path):
    done = cli("export", "--preset", "smoke", "-w", str(tmp_path / "ws"), "--data-dir", str(tmp_path / "none"))
    assert_one_line_error(done, "FashionMNIST not found", "dataset-fashion-mnist", "--data-dir")
    assert not (tmp_path / "ws" / "models").exists() or not any((tmp_path / "ws" / "models").rglob("*.onnx"))


def test_unwritable_workspace(cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert_one_line_error(cli("export", "--config", "4,8,3,1", "--untrained", "-w", str(blocker / "ws")), "not writable", "--workspace")


def test_untrained_export_models_listing_and_skip_on_rerun(cli, tmp_path):
    first = cli("export", "--config", "4,8,3,1", "--config", "3,9,4,2", "--untrained", "-w", str(tmp_path), "--json")
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert [m["status"] for m in summary["models"]] == ["exported", "exported"]
    assert summary["models"][0]["name"] == "family/fashionmnist-untrained/f4-s8-k3-l1"
    assert (tmp_path / summary["models"][1]["file"]).is_file()

    listing = cli("models", "-w", str(tmp_path), "--json")
    models = json.loads(listing.stdout)
    assert {m["config_id"] for m in models} == {"f4-s8-k3-l1", "f3-s9-k4-l2"}
    assert all(m["accuracy"] is None and m["recipe_name"] == "untrained" for m in models)
    assert all(len(m["sha256"]) == 64 and m["params"] > 0 for m in models)

    again = cli("export", "--config", "4,8,3,1", "--config", "3,9,4,2", "--untrained", "-w", str(tmp_path), "--json")
    assert [m["status"] for m in json.loads(again.stdout)["models"]] == ["skipped", "skipped"]

    table = cli("models", "-w", str(tmp_path))
    assert "f4-s8-k3-l1" in table.stdout and "untrained" in table.stdout


def test_trained_export_records_accuracy_recipe_and_normalisation(cli, tmp_path):
    done = cli("export", "--config", "8,12,3,1", "--recipe", "smoke", "--train-subset", "2000", "-w", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "Export summary" in done.stdout and "f8-s12-k3-l1" in done.stdout
    db = sqlite3.connect(tmp_path / "cpbench.sqlite")
    name, accuracy, recipe, training, norm = db.execute(
        "SELECT name, accuracy, recipe, training, normalization FROM models"
    ).fetchone()
    assert name.startswith("family/fashionmnist-smoke-") and accuracy > 0.5
    assert json.loads(recipe)["train_subset"] == 2000
    facts = json.loads(training)
    assert facts["train_size"] == 2000 and facts["test_size"] == 10000 and facts["seed"] == 0
    assert {"epochs", "threads", "wall_s", "final_loss", "torch_version"} <= set(facts)
    assert len(json.loads(norm)["mean"]) == 1


def test_dry_run_lists_the_plan(cli, tmp_path):
    done = cli("export", "--preset", "timing", "--dry-run", "--json", "-w", str(tmp_path))
    plan = json.loads(done.stdout)
    assert len(plan) >= 150 and all(p["recipe"] == "untrained" for p in plan)
    quick = json.loads(cli("export", "--preset", "quick", "--dry-run", "--json").stdout)
    assert len(quick) == 23 and quick[0]["config"] == "f64-s28-k5-l3" and quick[0]["recipe"] == "quick"


def test_data_and_presets_commands(cli):
    data = json.loads(cli("data", "--json").stdout)
    assert data["dataset"] == "fashionmnist" and data["folder"]
    presets = {p["name"]: p for p in json.loads(cli("presets", "--json").stdout)}
    assert set(presets) == {"smoke", "quick", "paper", "timing"} and presets["timing"]["configs"] >= 150


def test_export_help_names_every_recipe(cli):
    """The help is where a user learns the recipes' names: a recipe added to train.RECIPES must be in it."""
    from cpbench.export.train import RECIPES

    done = cli("export", "--help")
    assert done.returncode == 0
    line = next(l for l in done.stdout.splitlines() if "--recipe" in l)
    assert all(name in line for name in RECIPES), line


def test_tables_piped_to_a_file_are_not_cut_to_80_columns(tmp_path):
    """A log of `make demo` or a CI run (stdout not a terminal, no COLUMNS) keeps whole table rows."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    done = subprocess.run([sys.executable, "-m", "cpbench.cli", "presets"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("│ smoke")]
    assert len(rows) == 1 and "3 tiny configs; seconds, for tests" in rows[0] and len(rows[0]) > 80


def test_every_option_help_is_short_enough_to_read():
    """An option's help says what it does and its default in at most 200 characters; the reasoning
    lives in docs/."""
    import typer

    from cpbench.cli.app import app

    long = []

    def walk(command, path):
        for param in getattr(command, "params", []):
            if len(getattr(param, "help", None) or "") > 200:
                long.append(f"{path} {param.name}")
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}")

    walk(typer.main.get_command(app), "cpbench")
    assert not long, long


def test_the_demos_time_left_follows_this_machines_pace():
    from cpbench.cli.demo import STAGES, Stage, remaining_s

    stages = (Stage(("a",), 100), Stage(("b",), 300))
    assert remaining_s(stages, 0, 0.0, 0.0) == 400  # before anything ran: the expected times
    assert remaining_s(stages, 1, 0.0, 200.0) == 600  # the first took twice as long: so will the rest
    assert remaining_s(stages, 1, 0.5, 175.0) == pytest.approx(105)  # 250 s of work done in 175 s: 150 left x 0.7
    assert remaining_s(stages, 2, 0.0, 500.0) == 0
    assert all(stage.args[0] in {"export", "models", "zoo", "time", "fit", "fit-precision", "recommend", "report"}
               for stage in STAGES)
