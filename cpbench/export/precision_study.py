"""The precision study behind `recommend`: which configs to train, with which seeds, and the
resumable runner that appends one raw result per trained (config, seed) to a versioned JSONL file.

The design samples where precision targets live: the 1-D sweeps around the baseline, a
space-filling (Sobol) design over the Omega grid made denser near the baseline, repeated seeds on
the baseline and on other configs to measure the seed-to-seed spread, and a final held-out set
drawn with another seed, trained last so the model form is frozen before it is seen.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path


from cpbench.family.config import Config, Space, space_of, sweeps_1d, unique
from cpbench.errors import UsageError
from cpbench.workspace.files import pid_alive

STUDY_FORMAT = 1
REFERENCE_DIR = Path(__file__).resolve().parents[1] / "reference"  # package data: shipped studies and the fit made from one
DESIGN_SIZE = 16
HOLDOUT_SIZE = 10
DESIGN_SEED = 7
HOLDOUT_SEED = 1001
HOLDOUT_2_SEED = 2002  # a fresh held-out set, drawn and trained after the saturating model's loss was changed
HOLDOUT_3_SEED = 3003  # a third fresh set, drawn and trained after the shipped fit was frozen
SEEDS = (0, 1, 2)
NEAR_BASELINE_POWER = 1.6  # > 1 concentrates the design near the baseline's end of each Omega

ROLES = ("sweep", "design", "seed", "holdout", "holdout-2", "holdout-3")
HOLDOUT_ROLES = ("holdout", "holdout-2", "holdout-3")  # never fitted: they judge a model form frozen before they were trained
# The held-out sets trained after the shipped form (saturating on the log error rate) was frozen in
# commit b5b0632: they judge it blind. "holdout" was trained, and its errors seen, before that change.
BLIND_HOLDOUT_ROLES = ("holdout-2", "holdout-3")


@dataclass(frozen=True)
class StudyItem:
    """One training to do: a config, a seed and why it is in the study."""

    config: Config
    seed: int
    role: str


@dataclass(frozen=True)
class StudyResult:
    """One trained (config, seed): what the precision models are fitted to."""

    config: str  # f,s,k,l
    seed: int
    role: str
    dataset: str
    recipe: str
    recipe_hash: str
    accuracy: float
    test_size: int
    train_s: float
    images_per_s: float
    autocast: str
    threads: int
    torch_version: str
    machine: dict
    date: str
    format: int = STUDY_FORMAT

    @property
    def parsed(self) -> Config:
        return Config.parse(self.config)

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.config, self.seed, self.recipe_hash)


def shipped_study(dataset: str, recipe: str | None = None) -> Path:
    """A study shipped as package data: the named recipe's, else the one the shipped precision fit of
    `dataset` was made from (its fit names it), so `fit-precision --study reference` refits what ships."""
    if recipe:
        return REFERENCE_DIR / f"{dataset}-{recipe}.study.jsonl"
    for fit in sorted(REFERENCE_DIR.glob(f"{dataset}-*.json")):
        try:
            name = (json.loads(fit.read_text(encoding="utf-8")).get("source") or {}).get("study")
        except (OSError, ValueError, AttributeError):
            continue
        if name:
            return REFERENCE_DIR / name
    raise UsageError(f"no shipped precision study for {dataset}; pass the study's file with --study FILE")


def biased_design(space: Space, n: int, seed: int, exclude: Iterable[Config] = ()) -> list[Config]:
    """n distinct configs of the Omega grid from a scrambled Sobol sequence, each coordinate bent
    by u**power so that values next to the baseline's are drawn more often than the smallest."""
    from scipy.stats import qmc  # here: the runner needs scipy, predicting does not

    omegas = [sorted(getattr(space, f"omega_{p}"), key=lambda v: abs(v - getattr(space.baseline, p))) for p in "fskl"]
    taken = set(exclude)
    out: list[Config] = []
    sampler = qmc.Sobol(d=4, scramble=True, seed=seed)
    while len(out) < n:
        for u in sampler.random(64):
            values = [omega[min(len(omega) - 1, int(len(omega) * ui**NEAR_BASELINE_POWER))] for omega, ui in zip(omegas, u)]
            f, s, k, l = values  # noqa: E741
            if s < 2**l:
                continue
            config = Config(f, s, k, l)
            if config not in taken:
                taken.add(config)
                out.append(config)
                if len(out) == n:
                    break
    return out


def seed_configs(space: Space) -> list[Config]:
    """The baseline and five others, from near the baseline to small: where seed spread is measured."""
    b = space.baseline
    return unique([b, space.replace_baseline(f=b.f // 2), space.replace_baseline(s=space.omega_s[3]),
                   space.replace_baseline(k=space.omega_k[-1]), Config(b.f // 2, space.omega_s[2], 4, 2),
                   Config(b.f // 4, space.omega_s[2], 4, 2)])


def plan_study(space: Space) -> list[StudyItem]:
    """Everything the study trains, in the order it is trained (held-out set last)."""
    sweeps = sweeps_1d(space)
    items = [StudyItem(c, SEEDS[0], "sweep") for c in sweeps]
    items += [StudyItem(space.baseline, seed, "seed") for seed in SEEDS[1:]]
    design = biased_design(space, DESIGN_SIZE, DESIGN_SEED, exclude=sweeps)
    items += [StudyItem(c, SEEDS[0], "design") for c in design]
    holdout = biased_design(space, HOLDOUT_SIZE, HOLDOUT_SEED, exclude=set(sweeps) | set(design))
    items += [StudyItem(c, SEEDS[0], "holdout") for c in holdout]
    trained_once = {i.config for i in items if i.seed == SEEDS[0]}
    items += [StudyItem(c, SEEDS[0], "seed") for c in seed_configs(space) if c not in trained_once]
    for seed in SEEDS[1:]:
        items += [StudyItem(c, seed, "seed") for c in seed_configs(space) if c != space.baseline]
    fresh = biased_design(space, HOLDOUT_SIZE, HOLDOUT_2_SEED, exclude={i.config for i in items})
    items += [StudyItem(c, SEEDS[0], "holdout-2") for c in fresh]
    third = biased_design(space, HOLDOUT_SIZE, HOLDOUT_3_SEED, exclude={i.config for i in items})
    items += [StudyItem(c, SEEDS[0], "holdout-3") for c in third]
    return items


def _checked(row: dict, where: str) -> StudyResult:
    """A study line as a StudyResult, every field of the right type and range; else one line naming
    the line and the field. An accuracy of 1.7 or a seed "zero" would move every fit made from it."""
    fix = "correct or delete that line (each line is one training; deleting it trains that item again)"
    names = set(StudyResult.__dataclass_fields__)
    missing, extra = sorted(names - set(row) - {"format"}), sorted(set(row) - names)
    if missing or extra:
        raise UsageError(f"{where} is not a study result ({'missing ' + ', '.join(missing) if missing else 'unknown ' + ', '.join(extra)}); {fix}")

    def bad(field: str, want: str) -> UsageError:
        return UsageError(f"{where}: {field} is {row[field]!r}, not {want}; {fix}")

    def number(field: str, low: float, high: float = math.inf) -> None:
        value = row[field]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (low <= value <= high):
            raise bad(field, f"a number in [{low}, {high}]")

    for field in ("seed", "test_size", "threads"):
        value = row[field]
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if field == "seed" else 1):
            raise bad(field, "a whole number" + (" >= 0" if field == "seed" else " >= 1"))
    number("accuracy", 0.0, 1.0)
    number("train_s", 0.0)
    number("images_per_s", 0.0)
    for field in ("config", "role", "dataset", "recipe", "recipe_hash", "autocast", "torch_version", "date"):
        if not isinstance(row[field], str):
            raise bad(field, "a string")
    if row["role"] not in ROLES:
        raise bad("role", f"one of {', '.join(ROLES)}")
    if not isinstance(row["machine"], dict):
        raise bad("machine", "an object")
    try:
        config = Config.parse(row["config"])
    except (UsageError, ValueError):
        raise bad("config", "f,s,k,l of a valid config") from None
    b = space_of(row["dataset"]).baseline
    if not (config.f <= b.f and config.s <= b.s and config.k <= b.k and config.l <= b.l):
        raise bad("config", f"a config of the {row['dataset']} space (each of f, s, k, l at most its baseline {b.as_csv()})")
    return StudyResult(**row)


def read_results(path: Path) -> list[StudyResult]:
    """Every complete line of a study file, each checked; a line cut short by a kill is skipped."""
    from cpbench.workspace.formats import check_format, read_jsonl

    if not path.exists():
        return []
    out, seen = [], set()
    for number, row in read_jsonl(path, "correct or delete the damaged line"):
        where = f"{path}:{number}"
        check_format(row, STUDY_FORMAT, where, "upgrade cpbench or train the study again")
        result = _checked(row, where)
        if result.key in seen:
            continue  # two processes trained the same item: the first result counts, once
        seen.add(result.key)
        out.append(result)
    return out


def append_result(path: Path, result: StudyResult) -> None:
    """One line, flushed and fsynced: a stop at any moment loses at most the training in progress."""
    from cpbench.workspace.formats import append_jsonl

    append_jsonl(path, asdict(result))


Trainer = Callable[[StudyItem], dict]  # returns the TrainResult fields of one training


def pending(items: list[StudyItem], done: list[StudyResult], recipe_hash: str) -> list[StudyItem]:
    keys = {r.key for r in done}
    return [i for i in items if (i.config.as_csv(), i.seed, recipe_hash) not in keys]


def claims_folder(path: Path) -> Path:
    return path.with_name(path.name + ".claims")


def claim(path: Path, item: StudyItem, recipe_hash: str) -> Path | None:
    """Mark `item` as being trained by this process, so that other processes sharing the study file
    (with or without --shard) take the next item instead of the same one. None: another live process
    holds it. A claim left by a process of this host that is gone (killed) is taken over."""
    folder = claims_folder(path)
    folder.mkdir(parents=True, exist_ok=True)
    mine = folder / f"{item.config.id}-seed{item.seed}-{recipe_hash}"
    payload = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()})
    for _ in range(3):
        try:
            fd = os.open(mine, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                seen = mine.read_text()
                holder = json.loads(seen)
                stale = holder.get("host") == socket.gethostname() and not pid_alive(int(holder.get("pid", -1)))
            except FileNotFoundError:
                continue  # released meanwhile: try again
            except (OSError, ValueError, TypeError, AttributeError):
                seen, stale = None, True  # unreadable: a claim cut by a kill while being written
            if not stale:
                return None
            # only one process wins the rename of a stale claim; it then claims afresh
            aside = folder / f".stale-{os.getpid()}-{mine.name}"
            try:
                os.rename(mine, aside)
            except FileNotFoundError:
                return None
            if seen is not None and aside.read_text() != seen:
                os.rename(aside, mine)  # a fresh claim landed between the read and the rename: not ours to take
                return None
            aside.unlink()
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(payload)
        return mine
    return None


def run_study(items: list[StudyItem], path: Path, dataset: str, recipe_name: str, recipe_hash: str,
              train: Trainer, machine: dict) -> Iterator[StudyResult]:
    """Train what is not in `path` yet, appending each result as soon as it exists. Any number of
    processes may share one file: each claims an item before training it and skips items claimed by another."""
    for item in pending(items, read_results(path), recipe_hash):
        held = claim(path, item, recipe_hash)
        if held is None:
            continue  # another process is training it
        try:
            if not pending([item], read_results(path), recipe_hash):
                continue  # another process trained it meanwhile
            facts = train(item)
            result = StudyResult(
                config=item.config.as_csv(), seed=item.seed, role=item.role, dataset=dataset, recipe=recipe_name,
                recipe_hash=recipe_hash, accuracy=facts["accuracy"], test_size=facts["test_size"],
                train_s=facts["wall_s"], images_per_s=facts["images_per_s"], autocast=facts["autocast"],
                threads=facts["threads"], torch_version=facts["torch_version"], machine=machine,
                date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            )
            append_result(path, result)
        finally:
            held.unlink(missing_ok=True)
        yield result
    try:
        claims_folder(path).rmdir()  # the last process out removes the (then empty) folder
    except OSError:
        pass


def family_trainer(dataset_text: str, recipe_name: str, threads: int, data_dir: Path | None = None,
                   weights_dir: Path | None = None) -> Trainer:
    """Train one study item with the named recipe (its seed replaced by the item's)."""
    import torch

    from cpbench.export.data import DatasetSpec, prepare
    from cpbench.family.network import build_family_model
    from cpbench.export.train import get_recipe, train_model

    spec = DatasetSpec.parse(dataset_text)
    base = get_recipe(recipe_name)

    def train(item: StudyItem) -> dict:
        recipe = base if item.seed == base.seed else base.__class__(**{**asdict(base), "seed": item.seed})
        data = prepare(spec, item.config.s, data_dir)
        torch.manual_seed(recipe.seed)
        model = build_family_model(item.config, data.channels, data.num_classes)
        started = time.perf_counter()
        result = train_model(model, data.x_train, data.y_train, data.x_test, data.y_test, recipe, threads)
        if weights_dir is not None:
            weights_dir.mkdir(parents=True, exist_ok=True)
            torch.save(model.state_dict(), weights_dir / f"{item.config.id}-seed{item.seed}.pt")
        facts = result.as_dict()
        facts["wall_s"] = round(time.perf_counter() - started, 3)
        return facts

    return train

