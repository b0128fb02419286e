"""Paper 000's scalable CNN: l blocks of [k x k conv, f filters, same padding -> ReLU -> 2x2 max-pool],
then one linear classifier."""

from __future__ import annotations

import warnings

import torch
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


def insert_batchnorm(model: nn.Sequential) -> nn.Sequential:
    """Put a BatchNorm2d after every Conv2d of `model`, in place: a training-time reparametrisation
    that `fold_batchnorm` removes again, so the exported network is unchanged in shape and cost."""
    index = 0
    while index < len(model):
        if isinstance(model[index], nn.Conv2d):
            model.insert(index + 1, nn.BatchNorm2d(model[index].out_channels))
            index += 1
        index += 1
    return model


@torch.no_grad()
def fold_batchnorm(model: nn.Sequential) -> nn.Sequential:
    """Fold every Conv2d -> BatchNorm2d pair of `model` into the conv (its running statistics and
    affine parameters become the conv's weights and bias) and remove the BatchNorm, in place.
    In eval mode the folded model computes what the unfolded one did, up to rounding."""
    index = 0
    while index < len(model) - 1:
        conv, norm = model[index], model[index + 1]
        if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
            scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
            bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
            conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
            if conv.bias is None:
                conv.bias = nn.Parameter(torch.zeros_like(norm.running_mean))
            conv.bias.copy_((bias - norm.running_mean) * scale + norm.bias)
            del model[index + 1]
        index += 1
    return model
