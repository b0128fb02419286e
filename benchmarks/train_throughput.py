"""Training throughput, measured side by side in one run (A B C A B C ...), same config, images,
optimiser, schedule and threads, so drift on a noisy machine hits all:

- a plain PyTorch loop over a DataLoader (what a user writes first),
- cpbench's in-memory loop in fp32 (the trainer before the converged recipe),
- cpbench's loop with the converged recipe's settings (bf16 autocast where the CPU has it natively,
  augmentation, label smoothing).

Prints images/s for each and the ratios (goals: cpbench fp32 / plain >= 1.0; converged / fp32 >= 2).
With --accuracy, also trains the fp32 and the bf16 variants of the converged recipe to the end on
the full training set and prints both test accuracies (goal: within 0.2 points; about 25 minutes
for the baseline on 2 cores).

    python benchmarks/train_throughput.py [--recipe converged-bn] [--config 64,28,5,3] [--images 6000] [--repeats 3] [--accuracy]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from cpbench.family.config import Config
from cpbench.export.data import DatasetSpec, prepare
from cpbench.family.network import build_family_model
import dataclasses

from cpbench.export.train import Recipe, cpu_has_native_bf16, get_recipe, train_model


def plain_loop(config: Config, x: torch.Tensor, y: torch.Tensor, recipe: Recipe) -> float:
    """What a PyTorch user writes first: TensorDataset + DataLoader(shuffle=True)."""
    torch.manual_seed(recipe.seed)
    model = build_family_model(config)
    loader = DataLoader(TensorDataset(x, y), batch_size=recipe.batch_size, shuffle=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.lr, total_steps=len(loader) * recipe.epochs)
    started = time.perf_counter()
    model.train()
    for _ in range(recipe.epochs):
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return len(x) * recipe.epochs / (time.perf_counter() - started)


def cpbench_loop(config: Config, x: torch.Tensor, y: torch.Tensor, recipe: Recipe, threads: int) -> float:
    torch.manual_seed(recipe.seed)
    model = build_family_model(config)
    empty = x[:0], y[:0]  # time training only; evaluation is not part of either loop here
    result = train_model(model, x, y, *empty, recipe, threads)
    return result.images_per_s


def accuracy_at_equal_epochs(config: Config, threads: int, name: str) -> None:
    converged = get_recipe(name)
    data = prepare(DatasetSpec.parse("fashionmnist"), config.s)
    for recipe in (dataclasses.replace(converged, autocast="fp32"), converged):
        torch.manual_seed(recipe.seed)
        model = build_family_model(config)
        result = train_model(model, data.x_train, data.y_train, data.x_test, data.y_test, recipe, threads)
        print(f"{name} recipe, {result.autocast}: test accuracy {result.accuracy:.4f}, "
              f"{result.images_per_s:.0f} images/s, {result.wall_s:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="64,28,5,3")
    parser.add_argument("--images", type=int, default=6000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--accuracy", action="store_true", help="also train fp32 and bf16 to the end and compare accuracy")
    parser.add_argument("--recipe", default="converged", help="the recipe set against the fp32 loop (converged, converged-bn)")
    args = parser.parse_args()
    config = Config.parse(args.config)
    torch.set_num_threads(args.threads)
    data = prepare(DatasetSpec.parse("fashionmnist"), config.s)
    x, y = data.x_train[: args.images], data.y_train[: args.images]
    recipe = Recipe("bench", epochs=1)
    fast = dataclasses.replace(get_recipe(args.recipe), epochs=1, name=f"{args.recipe}-1-epoch")
    plain, ours, converged = [], [], []
    for _ in range(args.repeats):
        plain.append(plain_loop(config, x, y, recipe))
        ours.append(cpbench_loop(config, x, y, recipe, args.threads))
        converged.append(cpbench_loop(config, x, y, fast, args.threads))
    p, o, c = statistics.median(plain), statistics.median(ours), statistics.median(converged)
    native = "native bf16 (AMX or AVX512-BF16)" if cpu_has_native_bf16() else "no native bf16: the recipe runs fp32 here"
    print(f"config {config.id}, {args.images} images x {args.repeats} alternating runs, {args.threads} threads; {native}")
    print(f"plain DataLoader loop         : {p:8.0f} images/s  (runs: {', '.join(f'{v:.0f}' for v in plain)})")
    print(f"cpbench loop, fp32            : {o:8.0f} images/s  (runs: {', '.join(f'{v:.0f}' for v in ours)})")
    print(f"{'cpbench loop, ' + args.recipe + ' recipe':<30}: {c:8.0f} images/s  (runs: {', '.join(f'{v:.0f}' for v in converged)})")
    print(f"ratio cpbench fp32 / plain    : {o / p:.2f}x  (goal >= 1.0)")
    print(f"{'ratio ' + args.recipe + ' / fp32':<30}: {c / o:.2f}x  (goal >= 2)")
    if args.accuracy:
        accuracy_at_equal_epochs(config, args.threads, args.recipe)


if __name__ == "__main__":
    main()
