import pytest
import torch

from cpbench.family.config import Config
from cpbench.family.network import build_family_model, count_parameters


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("s, l", [(28, 3), (9, 2), (12, 1), (8, 3)])
def test_output_shape_for_odd_and_even_kernels(k, s, l):
    config = Config(4, s, k, l)
    model = build_family_model(config, in_channels=1, num_classes=10).eval()
    with torch.no_grad():
        assert model(torch.randn(3, 1, s, s)).shape == (3, 10)
    # 'same' padding keeps the spatial size before each pooling, whatever k's parity
    x = torch.randn(1, 1, s, s)
    conv = model[0]
    assert conv(x).shape[-2:] == (s, s)


def test_parameter_count_matches_the_architecture():
    f, s, k, l = 64, 28, 5, 3
    model = build_family_model(Config(f, s, k, l), in_channels=1, num_classes=10)
    convs = (1 * k * k * f + f) + 2 * (f * k * k * f + f)
    linear = f * (s // 8) ** 2 * 10 + 10
    assert count_parameters(model) == convs + linear


def test_rgb_inputs_and_other_class_counts():
    model = build_family_model(Config(8, 16, 3, 2), in_channels=3, num_classes=2).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 16, 16)).shape == (2, 2)
