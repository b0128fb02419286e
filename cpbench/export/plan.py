"""Turn the export command's arguments into a validated list of jobs, before any work starts."""

from __future__ import annotations

from pathlib import Path

import torch

from cpbench.family.config import SPACES, Config, unique
from cpbench.export.data import DatasetSpec
from cpbench.errors import UsageError, check_choice
from cpbench.export.onnx_export import EXPORTERS
from cpbench.family.presets import get_preset
from cpbench.export.sweep import ExportJob
from cpbench.export.train import TRAINING_DEVICES, Recipe, get_recipe, training_device
from cpbench.family.config import default_space


def resolve_recipe(
    preset_recipe: str | None, preset_given: bool, untrained: bool, recipe: str | None,
    epochs: int | None, train_subset: int | None, seed: int,
) -> Recipe | None:
    """--untrained wins; else --recipe, else the preset's own, else 'quick'; then the overrides."""
    if untrained:
        if recipe or epochs or train_subset:
            raise UsageError("--untrained exports random weights; drop --recipe/--epochs/--train-subset or --untrained")
        return None
    if recipe is None and preset_given and preset_recipe is None:
        if epochs or train_subset:
            raise UsageError("this preset exports untrained models; add --recipe NAME to train them")
        return None
    base = get_recipe(recipe or preset_recipe or "quick")
    return base.with_overrides(epochs=epochs, train_subset=train_subset, seed=seed)


def plan_export(
    preset: str | None,
    configs: list[str],
    untrained: bool = False,
    recipe: str | None = None,
    epochs: int | None = None,
    train_subset: int | None = None,
    seed: int = 0,
    threads: int | None = None,
    dataset: str = "fashionmnist",
    space: str | None = None,
    data_dir: Path | None = None,
    exporter: str = "auto",
    train_device: str = "cpu",
    check_device: bool = True,
) -> list[ExportJob]:
    """check_device=False leaves the training device to be checked where the job runs (a Ray
    worker may have the GPU the driver lacks)."""
    if preset is None and not configs:
        raise UsageError("nothing to export; pass --preset NAME (smoke, quick, paper, timing) or --config f,s,k,l")
    check_choice(exporter, EXPORTERS, "exporter")
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be >= 1, got {threads}")
    if check_device:
        training_device(train_device)
    else:
        check_choice(train_device.split(":")[0], TRAINING_DEVICES, "training device")
    spec = DatasetSpec.parse(dataset)
    space_name = space or default_space(spec.slug)
    check_choice(space_name, SPACES, "space")
    chosen = get_preset(preset) if preset else None
    planned = [Config.parse(text) for text in configs]
    if chosen:
        planned = chosen.build(SPACES[space_name], seed) + planned
    resolved = resolve_recipe(
        chosen.recipe if chosen else None, chosen is not None, untrained, recipe, epochs, train_subset, seed
    )
    return [
        ExportJob(
            config=c, dataset=spec, recipe=resolved, seed=seed,
            threads=threads or torch.get_num_threads(), data_dir=data_dir, exporter=exporter, train_device=train_device,
            space=space_name,
        )
        for c in unique(planned)
    ]
