"""The zoo: torchvision networks exported untrained, counted against torchvision's published MACs."""

import pytest

from cpbench.errors import UsageError
from cpbench.export.zoo import ZooJob, classification_models, count_zoo_model, published, table_1

MAX_PARAMS = 100e6


def eligible_models() -> list[str]:
    out = []
    for name in classification_models():
        figures = published(name)
        if figures.gmacs is not None and figures.params is not None and figures.params < MAX_PARAMS:
            out.append(name)
    return out


def test_the_eligible_list_is_the_whole_zoo_under_100m_params():
    names = eligible_models()
    assert len(names) >= 60
    assert {"alexnet", "googlenet", "resnet18", "densenet121", "mobilenet_v3_small", "vit_b_16", "swin_t"} <= set(names)
    assert "vgg16" not in names  # 138 M parameters


@pytest.mark.slow
@pytest.mark.parametrize("name", eligible_models())
def test_core_macs_match_torchvision_published_value(name):
    figures = published(name)
    count = count_zoo_model(name)
    ours = count.core_macs / 1e9
    # published values carry 3 decimals (shufflenet_v2_x0_5: 0.04): allow that rounding too
    assert abs(ours - figures.gmacs) <= max(0.01 * figures.gmacs, 0.0005 + 1e-9), (ours, figures.gmacs)
    assert count.uncounted == {}


def test_one_channel_small_input_export_is_counted_and_stored_shape(tmp_path):
    job = ZooJob("resnet18", input_size=32, channels=1, num_classes=10)
    result = job.run()
    assert job.name == "zoo/resnet18-c1-s32-n10"
    assert result.input_shape == (1, 32, 32)
    assert result.exported.max_abs_diff <= 1e-3
    # the first conv now reads one channel: 7x7x1x64 weights, 16x16 outputs
    first = next(layer for layer in result.count.layers if layer.op_type == "Conv")
    assert first.macs["conv"] == 64 * 16 * 16 * 7 * 7 * 1


def test_zoo_input_errors():
    with pytest.raises(UsageError, match="unknown torchvision classification model 'resnet19'.*resnet18"):
        ZooJob("resnet19")
    with pytest.raises(UsageError, match="alexnet needs inputs of at least 63x63"):
        ZooJob("alexnet", input_size=28)


def test_table_1_flags_the_densenet_row():
    core = {"alexnet": 0.7142, "vgg16": 15.47, "googlenet": 1.4984, "resnet18": 1.8141, "densenet121": 2.8342,
            "densenet161": 7.7279, "densenet169": 3.3598, "densenet201": 4.2914}
    rows = {r.model: r for r in table_1(core)}
    assert all(rows[m].agrees for m in ("alexnet", "vgg16", "googlenet", "resnet18"))
    dense = rows["densenet121"]
    assert not dense.agrees and "matches no torchvision densenet" in dense.note and "densenet121: 5.67" in dense.note
