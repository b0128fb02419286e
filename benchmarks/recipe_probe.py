"""Recipe probe: does a change to the converged recipe lift the configs a 2x pick at 0.93 needs?

Trains each (variant, config, seed) once with 1 torch thread, appends one JSON line per training to
a results file (fsynced, so a stop loses at most the training in progress; rerunning resumes), and
prints each variant's mean, seed sd and lift over the unchanged recipe per config, side by side.
Several processes may share one results file (`--lane i/n` takes every n-th item).

A variant is NAME=FIELD:VALUE,FIELD:VALUE over the Recipe's fields; `distill` variants distil from
the baseline trained with the converged recipe (seed 0), trained first and kept beside the results.

    python benchmarks/recipe_probe.py --configs 48,28,4,3 64,28,3,3 --seeds 0 1 \
        --variant erase=erase:0.5 --variant kd=distill:0.5 [--lane 0/2]

The shipped results (benchmarks/results/recipe_probe.jsonl) are from a 2-core Intel Xeon (AMX); each line names its machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import NoReturn

import torch

from cpbench.export.data import DatasetSpec, prepare
from cpbench.export.train import Recipe, get_recipe, train_model
from cpbench.family.config import Config
from cpbench.family.network import build_family_model

RESULTS = Path(__file__).resolve().parent / "results" / "recipe_probe.jsonl"
TEACHER = Config(64, 28, 5, 3)


def fail(message: str) -> NoReturn:
    """Bad input: one line on stderr, exit code 2, as cpbench's own commands answer it."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def parse_variant(text: str) -> tuple[str, dict]:
    name, _, fields = text.partition("=")
    known = {f.name: f.type for f in dataclasses.fields(Recipe)}
    overrides: dict = {}
    for item in filter(None, fields.split(",")):
        key, _, value = item.partition(":")
        if key not in known:
            fail(f"unknown recipe field {key!r} in --variant {text!r}; use one of: {', '.join(known)}")
        kind = type(getattr(get_recipe("converged"), key))
        try:
            if kind is bool and value.lower() not in ("true", "false"):
                raise ValueError(value)
            overrides[key] = value.lower() == "true" if kind is bool else kind(value)
        except ValueError:
            fail(f"--variant {text!r}: {value!r} is not a value of the recipe field {key!r}; e.g. erase:0.5, batchnorm:true")
    return name, overrides


def read(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue  # a torn last line
    return rows


def train_one(config: Config, recipe: Recipe, teacher: torch.nn.Module | None) -> dict:
    data = prepare(DatasetSpec.parse("fashionmnist"), config.s)
    torch.manual_seed(recipe.seed)
    model = build_family_model(config, data.channels, data.num_classes)
    result = train_model(model, data.x_train, data.y_train, data.x_test, data.y_test, recipe, 1, teacher=teacher)
    return {"model": model, "accuracy": result.accuracy, "train_s": result.wall_s, "images_per_s": result.images_per_s,
            "autocast": result.autocast}


def teacher_model(results: Path) -> torch.nn.Module:
    """The baseline trained with the converged recipe, seed 0: trained once, then loaded."""
    weights = results.with_name("teacher-" + TEACHER.id + "-seed0.pt")
    model = build_family_model(TEACHER)
    if not weights.exists():
        trained = train_one(TEACHER, get_recipe("converged"), None)
        torch.save(trained["model"].state_dict(), weights)
        print(f"teacher {TEACHER.as_csv()} trained: {trained['accuracy']:.4f}", flush=True)
    model.load_state_dict(torch.load(weights))
    return model


def summarise(rows: list[dict], as_json: bool = False) -> None:
    by: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        by.setdefault((r["config"], r["variant"]), []).append(r["accuracy"])
    if as_json:
        print(json.dumps([{"config": c, "variant": v, "accuracies": a, "mean": statistics.mean(a),
                           "seed_sd": statistics.stdev(a) if len(a) > 1 else None} for (c, v), a in sorted(by.items())], indent=1))
        return
    print(f"{'config':<12}{'variant':<12}{'seeds':>6}{'mean':>9}{'seed sd':>9}{'lift':>9}")
    for (config, variant), accs in sorted(by.items()):
        base = by.get((config, "converged"))
        lift = f"{(statistics.mean(accs) - statistics.mean(base)) * 100:+.2f}" if base and variant != "converged" else ""
        sd = f"{statistics.stdev(accs) * 100:.2f}" if len(accs) > 1 else "-"
        print(f"{config:<12}{variant:<12}{len(accs):>6}{statistics.mean(accs):>9.4f}{sd:>9}{lift:>9}")
    print("(mean and lift in accuracy; seed sd and lift in points; 'converged' is the recipe unchanged)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["48,28,4,3", "64,28,3,3"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--variant", action="append", default=[], help="NAME=FIELD:VALUE,... (repeatable)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--lane", default="0/1", help="i/n: this process trains every n-th item")
    parser.add_argument("--summary", action="store_true", help="print the table of the results file and stop")
    parser.add_argument("--json", action="store_true", help="the summary as JSON")
    args = parser.parse_args()
    if args.summary:
        summarise(read(args.results), args.json)
        return
    lane, lanes = (int(v) for v in args.lane.split("/"))
    variants = [("converged", {})] + [parse_variant(v) for v in args.variant]
    items = [(name, overrides, Config.parse(c), seed) for name, overrides in variants for c in args.configs for seed in args.seeds]
    args.results.parent.mkdir(parents=True, exist_ok=True)
    for index, (name, overrides, config, seed) in enumerate(items):
        recipe = dataclasses.replace(get_recipe("converged"), seed=seed, **overrides)
        done = {(r["config"], r["recipe_hash"]) for r in read(args.results)}
        if index % lanes != lane or (config.as_csv(), recipe.hash) in done:
            continue
        teacher = teacher_model(args.results) if recipe.distill else None
        print(f"training {name} {config.as_csv()} seed {seed}", flush=True)
        trained = train_one(config, recipe, teacher)
        row = {"variant": name, "config": config.as_csv(), "seed": seed, "overrides": overrides, "recipe_hash": recipe.hash,
               **{k: v for k, v in trained.items() if k != "model"}, "threads": 1, "torch_version": torch.__version__,
               "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        with open(args.results, "a") as handle:
            handle.write(json.dumps(row, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    summarise(read(args.results), args.json)


if __name__ == "__main__":
    main()
