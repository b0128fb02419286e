import torch

from cpbench.family.config import Config
from cpbench.build.data import DatasetSpec, prepare
from cpbench.family.network import build_family_model
from cpbench.build.train import RECIPES, Recipe, augment_batch, train_model


def train_smoke(config: Config, subset: int = 3000):
    recipe = RECIPES["smoke"].with_overrides(train_subset=subset)
    data = prepare(DatasetSpec.parse("fashionmnist"), config.s)
    torch.manual_seed(recipe.seed)
    model = build_family_model(config)
    return train_model(model, data.x_train, data.y_train, data.x_test, data.y_test, recipe, threads=2)


def test_smoke_training_is_well_above_chance_on_the_full_test_set():
    result = train_smoke(Config(8, 12, 3, 1))
    assert result.accuracy > 0.5
    assert result.test_size == 10000 and result.train_size == 3000
    assert result.epochs == 1 and result.wall_s > 0 and result.final_loss < 2.3


def test_same_seed_and_threads_give_the_same_accuracy():
    first = train_smoke(Config(4, 8, 2, 2), subset=1500)
    second = train_smoke(Config(4, 8, 2, 2), subset=1500)
    assert first.accuracy == second.accuracy and first.final_loss == second.final_loss


def test_recipe_identity_ignores_the_name_and_overrides_rename():
    quick = RECIPES["quick"]
    assert quick.with_overrides(epochs=quick.epochs) is quick
    longer = quick.with_overrides(epochs=5)
    assert longer.epochs == 5 and longer.name.startswith("quick-") and longer.hash != quick.hash
    assert Recipe("other", **quick.fields()).hash == quick.hash


def test_augmentation_shifts_and_flips_each_sample():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).reshape(2, 1, 6, 6)
    out = augment_batch(x, torch.Generator().manual_seed(0), pad=2)
    assert out.shape == x.shape
    for _ in range(20):
        out = augment_batch(x, torch.Generator().manual_seed(_), pad=0)
        for i in range(2):  # with no padding, each sample is itself or its mirror image
            assert torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(-1))
