"""Paper 000's scalable CNN: l blocks of [k x k conv, f filters, same padding -> ReLU -> 2x2 max-pool],
then one linear classifier."""

from __future__ import annotations

import warnings

from torch import nn

from cpbench.family.config import Config


# PyTorch warns that even-k 'same' padding may copy the input; that is the intended behaviour here.
warnings.filterwarnings("ignore", message="Using padding='same' with even kernel lengths")


def build_family_model(config: Config, in_channels: int = 1, num_classes: int = 10) -> nn.Sequential:
    """The network for `config`. Even k works: PyTorch pads 'same' asymmetrically (one more on the
    bottom/right), which the ONNX exporter writes as asymmetric Conv pads."""
    layers: list[nn.Module] = []
    channels = in_channels
    for _ in range(config.l):
        layers += [
            nn.Conv2d(channels, config.f, kernel_size=config.k, padding="same"),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=2),
        ]
        channels = config.f
    features = config.f * config.final_size**2
    layers += [nn.Flatten(), nn.Linear(features, num_classes)]
    return nn.Sequential(*layers)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
