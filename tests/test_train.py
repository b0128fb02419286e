import torch

from cpbench.family.config import Config
from cpbench.export.data import DatasetSpec, prepare
from cpbench.family.network import build_family_model
from cpbench.export.train import RECIPES, Recipe, augment_batch, erase_batch, train_model


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


def test_recipes_from_before_a_field_existed_keep_their_hash():
    # the shipped study is keyed by this hash: adding a recipe field must not orphan its results
    from cpbench.export.precision_study import REFERENCE_DIR, read_results

    studies = sorted(REFERENCE_DIR.glob("*.study.jsonl"))
    assert studies
    shipped = set()
    for path in studies:  # each shipped study is keyed by the hash of the recipe it names
        rows = read_results(path)
        assert {r.recipe for r in rows} == {path.name.split("-", 1)[1].removesuffix(".study.jsonl")}
        assert {r.recipe_hash for r in rows} == {RECIPES[rows[0].recipe].hash}
        shipped |= {r.recipe_hash for r in rows}
    assert RECIPES["converged"].with_overrides(erase=0.5).hash not in shipped


def test_random_erasing_zeroes_one_rectangle_in_about_p_of_the_samples():
    x = torch.ones(4000, 1, 20, 20)
    out = erase_batch(x, torch.Generator().manual_seed(0), p=0.5)
    zeroed = (out == 0).squeeze(1)
    erased = zeroed.flatten(1).any(1)
    assert 0.45 < erased.float().mean() < 0.55
    for mask in zeroed[erased][:200]:  # each erased region is one full rectangle of 2-25 % of the image
        rows, cols = mask.any(1).nonzero().squeeze(1), mask.any(0).nonzero().squeeze(1)
        assert int(mask.sum()) == len(rows) * len(cols)
        assert rows.max() - rows.min() + 1 == len(rows) and cols.max() - cols.min() + 1 == len(cols)
        assert 0.01 <= mask.float().mean() <= 0.27
    assert torch.equal(erase_batch(x, torch.Generator().manual_seed(0), p=0.0), x)


def _tiny_run(recipe: Recipe, labels_shuffled: bool = False, teacher=None):
    data = prepare(DatasetSpec.parse("fashionmnist"), 8)
    x, y = data.x_train[:512], data.y_train[:512]
    if labels_shuffled:
        y = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(5))]
    torch.manual_seed(recipe.seed)
    model = build_family_model(Config(4, 8, 3, 1))
    train_model(model, x, y, data.x_test[:256], data.y_test[:256], recipe, threads=1, teacher=teacher)
    return model


def test_ema_exports_the_moving_average_of_the_trajectory():
    recipe = Recipe("t", epochs=2, batch_size=64, lr=1e-2)
    trajectory: list[list[torch.Tensor]] = []
    from torch.optim.optimizer import register_optimizer_step_post_hook

    hook = register_optimizer_step_post_hook(
        lambda opt, *_: trajectory.append([p.detach().clone() for g in opt.param_groups for p in g["params"]]))
    try:
        plain = _tiny_run(recipe)
    finally:
        hook.remove()
    torch.manual_seed(recipe.seed)
    averaged = [p.detach().clone() for p in build_family_model(Config(4, 8, 3, 1)).parameters()]
    for step, params in enumerate(trajectory):
        decay = min(0.95, (1 + step) / (10 + step))
        averaged = [decay * a + (1 - decay) * p for a, p in zip(averaged, params)]
    ema = _tiny_run(recipe.with_overrides(ema=0.95))
    for got, want, last in zip(ema.parameters(), averaged, plain.parameters()):
        assert torch.allclose(got, want, atol=1e-6)
        assert not torch.allclose(got, last)  # not the last weights: the average


def test_full_distillation_learns_from_the_teacher_not_the_labels():
    teacher = build_family_model(Config(4, 8, 3, 1))
    recipe = Recipe("t", epochs=1, batch_size=64, distill=1.0)
    true_labels = _tiny_run(recipe, teacher=teacher)
    shuffled = _tiny_run(recipe, labels_shuffled=True, teacher=teacher)
    for a, b in zip(true_labels.parameters(), shuffled.parameters()):
        assert torch.equal(a, b)
    half = _tiny_run(recipe.with_overrides(distill=0.5), labels_shuffled=True, teacher=teacher)
    assert not all(torch.equal(a, b) for a, b in zip(true_labels.parameters(), half.parameters()))


def test_a_distilling_recipe_without_a_teacher_is_a_usage_error():
    import pytest
    from cpbench.errors import UsageError

    with pytest.raises(UsageError, match="teacher"):
        _tiny_run(Recipe("t", epochs=1, distill=0.5))
    with pytest.raises(UsageError, match="erase"):
        Recipe("t", epochs=1, erase=1.5)


def test_folding_batchnorm_keeps_the_eval_outputs_and_the_family_layout():
    from cpbench.family.network import fold_batchnorm, insert_batchnorm

    config = Config(6, 12, 3, 2)
    torch.manual_seed(0)
    model = insert_batchnorm(build_family_model(config))
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model) == config.l
    for m in model:  # statistics and affine parameters far from the identity, so a wrong fold shows
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.2, 3)
            m.weight.data.uniform_(0.5, 2), m.bias.data.uniform_(-1, 1)
    model.eval()
    x = torch.randn(5, 1, 12, 12)
    before = model(x)
    fold_batchnorm(model)
    assert torch.allclose(model(x), before, atol=1e-5)
    assert list(model.state_dict()) == list(build_family_model(config).state_dict())


def test_a_batchnorm_recipe_exports_the_family_network_and_reports_its_accuracy():
    from cpbench.export.train import evaluate

    config = Config(4, 8, 3, 2)
    recipe = RECIPES["smoke"].with_overrides(train_subset=6000, batchnorm=True)
    assert recipe.hash != RECIPES["smoke"].hash and recipe.name.startswith("smoke-")
    data = prepare(DatasetSpec.parse("fashionmnist"), config.s)
    torch.manual_seed(recipe.seed)
    model = build_family_model(config)
    result = train_model(model, data.x_train, data.y_train, data.x_test, data.y_test, recipe, threads=2)
    assert list(model.state_dict()) == list(build_family_model(config).state_dict())  # no BatchNorm left
    assert result.accuracy > 0.5
    assert evaluate(model, data.x_test, data.y_test) == result.accuracy


def test_ema_with_batchnorm_is_refused():
    import pytest

    from cpbench.errors import UsageError

    with pytest.raises(UsageError, match="batchnorm"):
        RECIPES["smoke"].with_overrides(ema=0.99, batchnorm=True)


def test_a_batchnorm_recipe_exports_the_same_graph_as_the_plain_recipe(cli, tmp_path):
    """BatchNorm is folded before export: the ONNX file has the family's nodes only, no BatchNormalization."""
    import json

    import onnx

    graphs = {}
    for recipe in ("converged", "converged-bn"):
        done = cli("export", "--config", "4,8,3,2", "--recipe", recipe, "--epochs", "1", "--train-subset", "2000",
                   "-w", str(tmp_path), "--json")
        assert done.returncode == 0, done.stderr
        (model,) = json.loads(done.stdout)["models"]
        assert model["status"] == "exported"
        graph = onnx.load(tmp_path / model["file"]).graph
        graphs[recipe] = ([n.op_type for n in graph.node], [tuple(i.dims) for i in graph.initializer])
    assert graphs["converged-bn"] == graphs["converged"]
    assert graphs["converged"][0].count("Conv") == 2 and "BatchNormalization" not in graphs["converged-bn"][0]
