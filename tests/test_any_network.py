"""The any-network latency model: graphs read into kernel types, fusion rules decided from timings
and applied, uncovered ops named with their MAC share, a prediction that is the sum it says it is,
a saved model that loads to the same answers, and the calibrate-then-predict path a user runs."""

from __future__ import annotations

import json
import random

import numpy as np
import onnx
import pytest

from cpbench.anynet.builders import Builder
from cpbench.anynet.fusion import CANDIDATES, TEST_SHAPES, FusionRule, decide, group
from cpbench.anynet.model import AnyNetModel, KernelFit, features, load_any_model, save_any_model, work
from cpbench.anynet.ops import read_ops, uncovered
from cpbench.anynet.synthetic import STYLES, random_network


def _conv_relu_pool() -> onnx.ModelProto:
    b = Builder((1, 8, 16, 16))
    y = b.pool(b.unary(b.conv("x", 16, 3), "Relu"), "MaxPool", 2, 2)
    return onnx.load_from_string(b.model([y]))


def test_a_graph_is_read_into_kernel_types_with_their_features():
    ops = read_ops(_conv_relu_pool())
    assert [(op.op_type, op.kind) for op in ops] == [("Conv", "conv"), ("Relu", "elementwise"), ("MaxPool", "pool")]
    conv = ops[0].features
    assert (conv["cin"], conv["cout"], conv["h"], conv["kh"], conv["oh"]) == (8, 16, 16, 3, 16)
    assert ops[0].macs == 8 * 16 * 9 * 16 * 16 + 16 * 16 * 16  # the bias add counted too


def test_swish_written_as_x_times_sigmoid_is_one_activation():
    b = Builder((1, 8, 8, 8))
    y = b.unary(b.conv("x", 8, 1), "Swish")
    ops = read_ops(onnx.load_from_string(b.model([y])))
    assert [op.features.get("op", op.op_type) for op in ops] == ["Conv", "Swish"]


def _times(fused: bool) -> dict[str, float]:
    """Timings of the fusion test items: the follower costs 40 µs alone and vanishes in the pair
    when `fused`, adds its full cost otherwise (a 10 µs per-inference cost in each)."""
    times = {}
    for producer, follower in CANDIDATES:
        for c, side in TEST_SHAPES:
            base = f"fuse:{producer}>{follower}:{c}x{side}"
            times[f"{base}:first"] = 110e-6
            times[f"{base}:second"] = 50e-6
            times[f"{base}:pair"] = 111e-6 if fused else 150e-6
    return times


def test_a_fusion_is_detected_where_the_followers_cost_vanishes_in_the_pair():
    fused = {(r.producer, r.follower) for r in decide(_times(True), 10e-6) if r.fuses}
    apart = {(r.producer, r.follower) for r in decide(_times(False), 10e-6) if r.fuses}
    assert ("conv", "Relu") in fused and len(fused) == len(CANDIDATES)
    assert apart == set()


def test_fusion_rules_group_a_conv_and_its_activation_into_one_kernel():
    ops = read_ops(_conv_relu_pool())
    assert [k.label for k in group(ops, {("conv", "Relu")})] == ["Conv+Relu", "MaxPool"]
    assert [k.label for k in group(ops, set())] == ["Conv", "Relu", "MaxPool"]


def test_an_uncovered_op_is_named_with_its_share_of_the_macs():
    b = Builder((1, 4, 8, 8))
    y = b.conv("x", 4, 3)
    w = b._weight((4, 4, 2, 2))
    y = b._node("ConvTranspose", [y, w], (1, 4, 16, 16), kernel_shape=[2, 2], strides=[2, 2])
    ops = read_ops(onnx.load_from_string(b.model([y])))
    missing = uncovered(ops)
    conv_macs, transposed_macs = ops[0].macs, ops[1].macs
    assert [m["op_type"] for m in missing] == ["ConvTranspose"]
    assert transposed_macs > 0
    assert missing[0]["mac_share"] == pytest.approx(transposed_macs / (conv_macs + transposed_macs))


class _Constant:
    """A regressor answering log(seconds per unit of work) = a constant."""

    def __init__(self, value: float) -> None:
        self.value = value

    def predict(self, X):
        return np.full(len(X), self.value)


def _model() -> AnyNetModel:
    fits = {"conv": KernelFit("conv", _Constant(np.log(1e-11)), 10, 0.0),
            "pool": KernelFit("pool", _Constant(np.log(2e-10)), 10, 0.0)}
    return AnyNetModel("cpu-1thread", "abc", "a CPU", "2026-01-01", 5e-6, fits,
                       [FusionRule("conv", "Relu", 1.0)], {"form": "sum", "coef": [1.0]}, (-0.1, 0.1), {"interval_coverage": 0.95})


def test_a_two_kernel_prediction_is_the_sum_the_model_says_it_is():
    ops = read_ops(_conv_relu_pool())
    prediction = _model().predict_ops(ops)
    conv, pool = ops[0].features, ops[2].features
    expected_conv = 1e-11 * work("conv", conv)
    expected_pool = 2e-10 * work("pool", pool)
    assert [k["kernel"] for k in prediction.kernels] == ["Conv+Relu", "MaxPool"]
    assert [k["predicted_s"] for k in prediction.kernels] == pytest.approx([expected_conv, expected_pool])
    assert prediction.seconds == pytest.approx(5e-6 + expected_conv + expected_pool)
    assert prediction.low_s == pytest.approx(prediction.seconds * np.exp(-0.1))


def test_a_saved_model_loads_to_the_same_predictions(tmp_path):
    from sklearn.ensemble import GradientBoostingRegressor

    rng = np.random.default_rng(0)
    rows = [{"cin": int(c), "cout": 16, "h": 16, "w": 16, "kh": 3, "kw": 3, "stride": 1, "dilation": 1, "groups": 1,
             "oh": 16, "ow": 16} for c in rng.integers(2, 64, 40)]
    X = np.array([features("conv", f) for f in rows])
    regressor = GradientBoostingRegressor(n_estimators=20).fit(X, rng.normal(-23, 0.1, len(rows)))
    model = _model()
    model.fits["conv"] = KernelFit("conv", regressor, len(rows), 0.1)
    path = save_any_model(tmp_path / "m.pkl.gz", model)
    again = load_any_model(path)
    ops = read_ops(_conv_relu_pool())
    assert again.predict_ops(ops).seconds == model.predict_ops(ops).seconds
    assert again.rules == model.rules and again.interval == model.interval


def test_a_damaged_model_file_is_a_clear_error(tmp_path):
    from cpbench.errors import UsageError

    path = tmp_path / "m.pkl.gz"
    path.write_bytes(b"not a model")
    with pytest.raises(UsageError, match="calibrate again"):
        load_any_model(path)


@pytest.mark.parametrize("seed", range(8))
def test_synthetic_networks_are_valid_graphs_every_op_covered(seed):
    name, graph = random_network(seed)
    model = onnx.load_from_string(graph)
    onnx.checker.check_model(model, full_check=True)
    assert name.split(":")[2] in STYLES
    assert uncovered(read_ops(model)) == []


@pytest.mark.slow
def test_calibrate_any_then_predict_a_network_it_never_saw(tmp_path, cli):
    done = cli("calibrate", "--device", "cpu-1thread", "--kernels", "any", "--scale", "0.05", "--networks", "6",
               "--rounds", "1", "--seed", "3", "-w", str(tmp_path), "--json", timeout=600)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["seed"] == 3 and summary["networks"] == 6
    b = Builder((1, 3, 32, 32), seed=random.randint(0, 100))
    y = b.gemm(b.flatten(b.gap(b.unary(b.conv("x", 16, 3, 2), "Relu"))), 10)
    net = tmp_path / "net.onnx"
    net.write_bytes(b.model([y]))
    done = cli("predict", "--device", "cpu-1thread", "--model", str(net), "--by-kernel", "-w", str(tmp_path), "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    row = answer["predictions"][0]
    assert row["low_s"] < row["predicted_s"] < row["high_s"]
    assert {k["type"] for k in row["kernels"]} >= {"conv", "gap", "gemm"}
    assert row["uncovered"] == [] and answer["warning"] is None
    assert 0 <= answer["interval_coverage"] <= 1


def _simulated_calibration(noise: float, networks: int, seed: int):
    """A calibration whose times follow a known law: each kernel costs (its work) x (a per-type rate)
    plus 2 µs, a network the per-inference cost plus its kernels' costs, times lognormal noise."""
    from cpbench.anynet.calibration import EMPTY_ID, AnyCalibration, AnyDesign, plan_items
    from cpbench.anynet.fusion import test_items

    design = AnyDesign(seed=seed, scale=0.3, networks=networks)
    _, kernels, nets = plan_items(design)
    rng = np.random.default_rng(seed)
    rate = {"conv": 2e-11, "dwconv": 3e-10, "pool": 1e-10, "gap": 1e-10, "gemm": 5e-11, "elementwise": 2e-10,
            "concat": 3e-10}

    def kernel_time(kind: str, f: dict) -> float:
        return rate[kind] * work(kind, f) + 2e-6

    times = {EMPTY_ID: [5e-6], **{item: [5e-5] for item, _ in test_items()}}
    for item, k in kernels.items():
        times[item] = [kernel_time(k["kind"], k["features"]) * float(np.exp(rng.normal(0, noise))) + 5e-6]

    def network_time(net_seed: int) -> float:
        _, graph = random_network(net_seed)
        heads = [op for op in read_ops(onnx.load_from_string(graph)) if op.kind not in (None, "free")]
        return (5e-6 + sum(kernel_time(op.kind, op.features) for op in heads)) * float(np.exp(rng.normal(0, noise)))

    for item, net_seed in nets.items():
        times[item] = [network_time(net_seed)]
    calibration = AnyCalibration("cpu-1thread", "sim", "simulated", design.as_dict(), "", 0.0, times, kernels, nets)
    return calibration, network_time


@pytest.mark.slow
def test_the_any_network_interval_covers_held_out_networks_as_often_as_it_says():
    """On a law the model can learn, with 4 % noise on every time, the printed 95 % interval holds
    between 88 % and 100 % of 60 fresh networks (the binomial band around 95 % at n = 60), and the
    leave-one-out coverage the model reports agrees with it within that band."""
    from cpbench.anynet.model import fit_any_model

    calibration, network_time = _simulated_calibration(0.04, 60, seed=11)
    model = fit_any_model(calibration)
    held = 0
    for net_seed in range(900_000, 900_060):
        _, graph = random_network(net_seed)
        prediction = model.predict_ops(read_ops(onnx.load_from_string(graph)))
        held += prediction.low_s <= network_time(net_seed) <= prediction.high_s
    assert 53 <= held <= 60
    assert 0.85 <= model.held_out["interval_coverage"] <= 1.0


def test_zoo_table_with_a_device_needs_this_machines_any_network_model(tmp_path, cli):
    from test_cli import assert_one_line_error

    assert_one_line_error(cli("zoo", "table", "--device", "cpu-1thread", "-w", str(tmp_path)),
                          "no any-network model of 'cpu-1thread'", "--kernels any")


@pytest.mark.parametrize("extra, fragments", [
    (["--pairs"], ["--pairs apply to the family's kernels", "drop them"]),
    (["--runs", "20", "--share", "0.5"], ["--runs, --share apply to the family's kernels"]),
    (["--rounds", "0"], ["--rounds is 0", "[1, 10]"]),
    (["--networks", "3"], ["--networks is 3", "[5, 500]"]),
    (["--scale", "50"], ["--scale is 50", "[0.05, 10]"]),
])
def test_calibrate_any_refuses_options_it_does_not_use_or_out_of_range(tmp_path, cli, extra, fragments):
    from test_cli import assert_one_line_error

    assert_one_line_error(cli("calibrate", "--device", "cpu-1thread", "--kernels", "any", *extra, "-w", str(tmp_path)),
                          *fragments)
