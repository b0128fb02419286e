"""The search space is stored with every model and resolved by one rule: an image-folder dataset
planned on the LFW space is fitted and recommended against the LFW baseline, never FashionMNIST's."""

import dataclasses
import json
import sqlite3

import numpy as np
import pytest

from cpbench.family.config import LFW, Config
from cpbench.fitting.precision_models import MODELS, normalise
from cpbench.timing.profiles import SHIPPED
from cpbench.workspace.store import MIGRATIONS, Store
from cpbench.workspace.folder import Workspace
from cpbench.family.config import default_space, space_of
from test_cli_fit import add_run, copy_hand_written, record, truth

DATASET = "imagefolder-faces"


def lfw_configs(n: int, seed: int) -> list[Config]:
    rng = np.random.default_rng(seed)
    out = {LFW.baseline}
    while len(out) < n:
        l = int(rng.integers(1, 4))  # noqa: E741
        out.add(Config(int(rng.integers(2, 65)), int(rng.integers(2**l + 4, 65)), int(rng.integers(1, 6)), l))
    return sorted(out)


def test_one_rule_for_the_default_space():
    assert default_space("fashionmnist") == "fashionmnist" and default_space(DATASET) == "lfw"
    assert space_of(DATASET).baseline == LFW.baseline
    assert space_of(DATASET, "fashionmnist").name == "fashionmnist"  # what was stored wins


def test_export_stores_the_space_it_planned_on(cli, tmp_path):
    from PIL import Image

    folder = tmp_path / "faces"
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (folder / label).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (20, 20), dtype=np.uint8)).save(folder / label / f"{i}.png")
    ws = tmp_path / "ws"
    done = cli("export", "--dataset", f"imagefolder:{folder}", "--config", "4,8,3,1", "--untrained", "-w", str(ws))
    assert done.returncode == 0, done.stderr
    done = cli("export", "--dataset", f"imagefolder:{folder}", "--space", "fashionmnist", "--config", "4,12,3,1",
               "--untrained", "-w", str(ws))
    assert done.returncode == 0, done.stderr
    models = {m["config_id"]: m for m in json.loads(cli("models", "-w", str(ws), "--json").stdout)}
    assert models["f4-s8-k3-l1"]["space"] == "lfw" and models["f4-s12-k3-l1"]["space"] == "fashionmnist"


def test_a_store_of_schema_3_gets_the_space_filled_by_the_rule(tmp_path):
    path = tmp_path / "cpbench.sqlite"
    db = sqlite3.connect(path)
    for number, script in enumerate(MIGRATIONS[:3]):
        db.executescript(script)
        db.execute(f"PRAGMA user_version = {number + 1}")
    for config, dataset in ((Config(4, 8, 3, 1), "fashionmnist"), (Config(8, 16, 3, 2), DATASET)):
        row = dataclasses.replace(record(config), name=f"family/{dataset}/{config.id}", dataset=dataset).to_row()
        row.pop("space")
        db.execute(f"INSERT INTO models ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)})", row)
    db.commit()
    db.close()
    with Store(path) as store:
        spaces = {r.dataset: r.space for r in store.models("family/*")}
    assert spaces == {"fashionmnist": "fashionmnist", DATASET: "lfw"}


@pytest.fixture
def lfw_workspace(tmp_path, cli):
    """Timings and trained accuracies of image-folder models planned on the LFW space."""
    ws = Workspace(tmp_path)
    ws.profiles_dir.mkdir(parents=True)
    copy_hand_written(SHIPPED / "cpu-1thread.toml", ws.profiles_dir / "cpu-1thread.toml")
    configs = lfw_configs(60, 0)
    add_run(ws, "cpu-1thread", configs, truth(configs))
    theta = np.array([0.93, 0.02, 0.03, 0.01, 0.015, 0.8, 0.9, 1.2, 0.7, 0.05, 2.0])
    accuracy = MODELS["saturating"](theta, normalise(configs, LFW.baseline))
    with ws.open_store() as store:
        for config in configs:  # rename the synthetic records as image-folder models planned on LFW
            store.db.execute("UPDATE models SET dataset = ?, space = 'lfw', recipe_name = 'smoke' WHERE config_id = ?",
                             (DATASET, config.id))
        for config, p in zip(configs, accuracy):
            store.db.execute("UPDATE models SET accuracy = ? WHERE config_id = ?", (float(p), config.id))
        store.db.commit()
    return ws


def test_fitting_and_recommending_use_the_stored_spaces_baseline(cli, lfw_workspace):
    root = str(lfw_workspace.root)
    fit = cli("fit", "--device", "cpu-1thread", "-w", root, "--json")
    assert fit.returncode == 0, fit.stderr
    assert json.loads(fit.stdout)["baseline"] == "64,64,5,3"
    precision = cli("fit-precision", "--dataset", DATASET, "-w", root, "--json")
    assert precision.returncode == 0, precision.stderr
    assert json.loads(precision.stdout)["baseline"] == "64,64,5,3"
    done = cli("recommend", "--device", "cpu-1thread", "--dataset", DATASET, "--max-drop", "0.01", "-w", root, "--json")
    assert done.returncode == 0, done.stderr
    r = json.loads(done.stdout)
    assert r["baseline"]["config"] == "64,64,5,3" and Config.parse(r["pick"]["config"]).s <= 64


def test_random_configs_of_a_small_space_stop_at_every_config_it_holds():
    """Asked for more than a space holds (calibrating a tiny space asks for a pool 50x its networks),
    random_from_space returns each of its configs once and returns, instead of drawing forever."""
    from cpbench.family.config import Config, Space, random_from_space

    space = Space("tiny", Config(4, 6, 2, 2), (), (), (), ())
    every = {Config(f, s, k, l) for l in (1, 2) for f in range(1, 5) for k in (1, 2) for s in range(2**l, 7)}
    drawn = random_from_space(space, 1000, seed=3, exclude={Config(1, 2, 1, 1), Config(8, 28, 3, 3)})  # the second lies outside
    assert len(drawn) == len(set(drawn)) == len(every) - 1
    assert set(drawn) == every - {Config(1, 2, 1, 1)}
