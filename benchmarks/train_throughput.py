"""Training throughput: cpbench's in-memory loop against a plain PyTorch loop over a DataLoader.

Same config, same images, same optimiser and schedule, same threads; the runs alternate
(A B A B ...) so that drift on a noisy machine hits both. Prints images/s for each and the ratio
(goal: cpbench / plain >= 1.0).

    python benchmarks/train_throughput.py [--config 64,28,5,3] [--images 6000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from cpbench.config import Config
from cpbench.data import DatasetSpec, prepare
from cpbench.family import build_family_model
from cpbench.train import Recipe, train_model


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
    return len(x) * recipe.epochs / result.wall_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="64,28,5,3")
    parser.add_argument("--images", type=int, default=6000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    config = Config.parse(args.config)
    torch.set_num_threads(args.threads)
    data = prepare(DatasetSpec.parse("fashionmnist"), config.s)
    x, y = data.x_train[: args.images], data.y_train[: args.images]
    recipe = Recipe("bench", epochs=1)
    plain, ours = [], []
    for _ in range(args.repeats):
        plain.append(plain_loop(config, x, y, recipe))
        ours.append(cpbench_loop(config, x, y, recipe, args.threads))
    p, o = statistics.median(plain), statistics.median(ours)
    print(f"config {config.id}, {args.images} images x {args.repeats} alternating runs, {args.threads} threads")
    print(f"plain DataLoader loop : {p:8.0f} images/s  (runs: {', '.join(f'{v:.0f}' for v in plain)})")
    print(f"cpbench loop          : {o:8.0f} images/s  (runs: {', '.join(f'{v:.0f}' for v in ours)})")
    print(f"ratio cpbench / plain : {o / p:.2f}x  (goal >= 1.0)")


if __name__ == "__main__":
    main()
