"""The kernel-level latency model: kernels are the exporter's own graph pieces, the table and the
composition recover known answers, and `cpbench calibrate` feeds predict and recommend."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cpbench.family.config import FASHION_MNIST, Config
from cpbench.family.kernels import (classifier, first, first_pair, inner, inner_pair, kernel_graph, kernels_of, network_depth,
                                    network_graph, whole_network)
from cpbench.fitting.completion import complete
from cpbench.fitting.kernel_model import fit_kernel_model
from cpbench.timing.calibration_record import Calibration, load_calibration, save_calibration
from cpbench.timing.calibration_design import CalibrationDesign, conv_axes, plan_kernels


def _ops(model) -> list[tuple]:
    from onnx import helper

    return [(n.op_type, sorted((a.name, str(helper.get_attribute_value(a))) for a in n.attribute)) for n in model.graph.node]


@pytest.mark.parametrize("config", [Config(6, 12, 4, 2), Config(3, 9, 3, 3), Config(5, 8, 1, 1)])
def test_the_network_built_from_kernels_is_the_exported_network(config, tmp_path):
    """Same nodes, attributes and output as the torch export, so kernels time what the family runs."""
    import onnx
    import onnxruntime as ort
    import torch

    from cpbench.export.onnx_export import export_onnx
    from cpbench.family.network import build_family_model

    net = build_family_model(config).eval()
    exported = export_onnx(net, (1, config.s, config.s)).proto
    ours = network_graph(config)
    assert _ops(ours) == _ops(exported)
    # and it computes the same function when given the same weights
    weights = {i.name: onnx.numpy_helper.to_array(i) for i in exported.graph.initializer}
    ordered = [weights[name] for name in sorted(weights, key=lambda n: [i.name for i in exported.graph.initializer].index(n))]
    for init, value in zip(ours.graph.initializer, ordered):
        init.CopyFrom(onnx.numpy_helper.from_array(value, init.name))
    x = np.random.default_rng(0).standard_normal((1, 1, config.s, config.s)).astype(np.float32)
    ref = net(torch.from_numpy(x)).detach().numpy()
    got = ort.InferenceSession(ours.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert np.allclose(got, ref, atol=1e-4)


def test_a_config_is_its_first_block_inner_blocks_and_classifier():
    assert kernels_of(Config(8, 28, 3, 3)) == [first(8, 28, 3), inner(8, 14, 3), inner(8, 7, 3), classifier(8 * 3 * 3)]
    assert kernels_of(Config(5, 9, 2, 1)) == [first(5, 9, 2), classifier(5 * 4 * 4)]
    for kernel in kernels_of(Config(4, 10, 5, 2)):
        kernel_graph(kernel)  # every kernel builds


def test_the_calibration_plan_covers_every_f_and_s_the_space_uses():
    kernels = plan_kernels(FASHION_MNIST, CalibrationDesign(pairs=True))
    for kind in ("first", "inner", "first-pair", "inner-pair"):
        fs, ss = conv_axes(FASHION_MNIST, kind)
        for k in range(1, 6):
            cells = {(x.f, x.s) for x in kernels if x.kind == kind and x.k == k}
            assert cells == {(f, s) for f in fs for s in ss}
    # every block of every config of the integer space is in the plan
    planned = {x for x in kernels}
    for config in [Config(1, 2, 1, 1), Config(64, 28, 5, 3), Config(37, 9, 4, 3), Config(2, 4, 2, 2)]:
        assert all(x in planned or x.kind == "classifier" for x in kernels_of(config))
        f, s, k = config.f, config.s, config.k
        pairs = [first_pair(f, s, k)] * (config.l >= 2) + [inner_pair(f, s // 2, k)] * (config.l >= 3)
        assert all(x in planned for x in pairs)  # and every pair of consecutive blocks it runs
    without = plan_kernels(FASHION_MNIST, CalibrationDesign())  # pairs are opt-in; the blocks' plan is the same either way
    assert not any(x.kind.endswith("-pair") for x in without)
    assert set(without) == {x for x in kernels if not x.kind.endswith("-pair")}


def test_a_pair_is_two_consecutive_blocks_of_the_network():
    """A pair's graph is the network's own first two blocks (first-pair) or two inner blocks."""
    net = network_graph(Config(6, 12, 3, 3))
    head = kernel_graph(first_pair(6, 12, 3))
    blocks = [n.op_type for n in net.graph.node]
    assert [n.op_type for n in head.graph.node] == blocks[:6] == ["Conv", "Relu", "MaxPool"] * 2
    assert _ops(head) == _ops(net)[:6]
    middle = kernel_graph(inner_pair(6, 6, 3))
    assert [d.dim_value for d in middle.graph.input[0].type.tensor_type.shape.dim] == [1, 6, 6, 6]
    assert _ops(middle) == _ops(net)[3:9]


def test_whole_networks_are_planned_over_every_f_and_s_of_each_depth_instead_of_blocks():
    """`--whole`: one (f, s) matrix per (k, l), s from 2**l (the first pooling's limit) to the
    baseline's; no blocks; a whole-network kernel's graph is the network's own."""
    from cpbench.errors import UsageError

    kernels = plan_kernels(FASHION_MNIST, CalibrationDesign(whole=True))
    assert not any(x.kind in ("first", "inner") or x.kind.endswith("-pair") for x in kernels)
    for depth in (1, 2, 3):
        for k in range(1, 6):
            cells = {(x.f, x.s) for x in kernels if network_depth(x.kind) == depth and x.k == k}
            assert cells == {(f, s) for f in range(1, 65) for s in range(2**depth, 29)}
    assert _ops(kernel_graph(whole_network(6, 12, 3, 3))) == _ops(network_graph(Config(6, 12, 3, 3)))
    with pytest.raises(UsageError, match="pick one"):
        CalibrationDesign(whole=True, pairs=True)


def test_calibrate_times_whole_networks_under_openvino_and_blocks_under_onnxruntime_by_default():
    """The designs `cpbench calibrate` runs when given no options, each sized for 10 minutes here,
    and what --pairs, --whole and --blocks change."""
    from cpbench.timing.calibration_design import default_design

    ort, ov = default_design("onnxruntime"), default_design("openvino")
    assert (ort.whole, ort.pairs, ort.share, ort.full_s, ort.rounds, ort.runs, ort.networks) == (False, False, 1.0, 4, 3, 50, 40)
    assert (ov.whole, ov.pairs, ov.share, ov.full_s, ov.rounds, ov.runs, ov.warmup_runs) == (True, False, 0.05, 3, 2, 200, 100)
    assert len(plan_kernels(FASHION_MNIST, ov)) < 5000  # two rounds of ~37 ms compiles and runs each: under 10 minutes
    blocks = default_design("openvino", whole=False)
    assert not blocks.whole and (blocks.share, blocks.full_s) == (0.1, 4)
    paired = default_design("openvino", pairs=True)  # --pairs under OpenVINO means pairs of blocks, not whole networks
    assert paired.pairs and not paired.whole and (paired.share, paired.full_s) == (0.05, 3)
    whole_ort = default_design("onnxruntime", whole=True, share=0.25)
    assert whole_ort.whole and whole_ort.share == 0.25


def test_the_calibration_networks_span_the_sizes_recommend_predicts():
    """The composition is learned on these networks and used from the smallest config up to the
    baseline (every speed-up divides by the baseline's time): every quarter of the log-MACs range
    from a 1-filter network to the baseline holds some of them, the largest near the baseline."""
    from cpbench.family.closed_form import Layers, total_macs
    from cpbench.timing.calibration_design import plan_networks

    networks = plan_networks(FASHION_MNIST, CalibrationDesign())
    assert len(set(networks)) == 40
    log_macs = np.log(total_macs(Layers.of(networks)))
    low, high = np.log(total_macs(Layers.of([Config(1, 2, 1, 1), FASHION_MNIST.baseline])))
    quarters = np.floor((log_macs - low) / (high - low) * 4).clip(0, 3)
    assert set(quarters.astype(int)) == {0, 1, 2, 3} and min(np.bincount(quarters.astype(int))) >= 6
    assert log_macs.max() >= high - np.log(2)  # within 2x of the baseline's MACs


def test_low_rank_completion_recovers_a_matrix_it_saw_a_third_of():
    rng = np.random.default_rng(1)
    a, b = rng.uniform(1, 3, 40), rng.uniform(0.5, 2, 40)
    shape = np.linspace(1, 9, 15) ** 2
    truth = a[:, None] * 5 + b[:, None] * shape[None, :]  # overhead(f) + work(f) * shape(s): rank 2
    mask = rng.random(truth.shape) < 0.35
    mask[:, [0, 7, 14]] = True
    mask[[3, 20], :] = True
    completed, rank, cv, _ = complete(truth, mask)
    assert rank >= 2 and cv < 0.02
    assert np.max(np.abs(completed[~mask] / truth[~mask] - 1)) < 0.02


def test_a_fully_timed_noisy_table_is_denoised_not_copied():
    # every cell timed, each with 10 % noise (a 2-thread kernel on 2 vCPUs spreads more): the
    # low-rank fit finds the truth's rank and lands about twice as close to it as the cells themselves
    rng = np.random.default_rng(2)
    a, b = rng.uniform(1, 3, 40), rng.uniform(0.5, 2, 40)
    truth = a[:, None] * 5 + b[:, None] * (np.linspace(1, 9, 15) ** 2)[None, :]  # rank 2
    noisy = truth * (1 + rng.normal(0, 0.1, truth.shape))
    fitted, rank, cv, _ = complete(noisy, np.ones(truth.shape, dtype=bool))
    raw_error = np.mean(np.abs(noisy / truth - 1))
    assert rank == 2 and cv > 0.05  # the held-out cells' error includes their own noise
    assert np.mean(np.abs(fitted / truth - 1)) < 0.6 * raw_error


def test_the_measured_cells_are_replaced_only_where_the_fit_predicts_a_fresh_round_better():
    from cpbench.fitting.completion import denoises

    rng = np.random.default_rng(3)
    a, b = rng.uniform(1, 3, 30), rng.uniform(0.5, 2, 30)
    low_rank = a[:, None] * 5 + b[:, None] * (np.linspace(1, 9, 12) ** 2)[None, :]
    mask = np.ones(low_rank.shape, dtype=bool)
    noisy_rounds = low_rank * (1 + rng.normal(0, 0.15, (5,) + low_rank.shape))
    assert denoises(noisy_rounds, mask, rank=2)  # noisy cells: the pooled fit predicts a new round better
    # steady cells of a table with more structure than two factors (a per-cell jump): the cells win
    structured = low_rank * rng.choice([1.0, 1.6], low_rank.shape)
    steady_rounds = structured * (1 + rng.normal(0, 0.005, (5,) + low_rank.shape))
    assert not denoises(steady_rounds, mask, rank=2)
    assert not denoises(noisy_rounds[:1], mask, rank=2)  # one round decides nothing


def _synthetic_calibration(noise: float, seed: int = 0, layout: float = 0.0, pairs: bool = True,
                           pair_noise: float | None = None, whole: bool = False) -> tuple[Calibration, callable]:
    """Kernel times from a known cost law, networks = a known composition of them plus noise.
    `layout`: seconds per tensor element a call pays to convert its input and its output (a runtime's
    own layout or precision), which inside a network only the network's input and output pay."""
    rng = np.random.default_rng(seed)
    empty = 4e-6

    def work(c_in: int, f: int, s: int, k: int) -> float:
        jump = 0.6 if f % 8 == 0 else 1.0  # a runtime's channel-count jumps, unknown to the model
        return 1e-6 + jump * c_in * f * k**2 * s**2 * 4e-12

    def cost(kernel) -> float:
        if kernel.kind == "empty":
            return empty
        if kernel.kind == "classifier":
            return empty + 0.5e-6 + kernel.features * 2e-10
        f, s, k, c_in = kernel.f, kernel.s, kernel.k, kernel.c_in
        if network_depth(kernel.kind):  # a whole network timed as a kernel: another protocol, another scale
            return 0.83 * network(Config(f, s, k, network_depth(kernel.kind))) - 0.2e-6
        if kernel.kind.endswith("-pair"):  # two blocks in one call: one conversion in, one out
            return empty + work(c_in, f, s, k) + work(f, f, s // 2, k) + layout * (c_in * s**2 + f * (s // 4) ** 2)
        return empty + work(c_in, f, s, k) + layout * (c_in * s**2 + f * (s // 2) ** 2)

    def network(config: Config) -> float:
        blocks = [work(1, config.f, config.s, config.k)]
        blocks += [work(config.f, config.f, config.s // 2**i, config.k) for i in range(1, config.l)]
        border = layout * (config.s**2 + config.f * config.final_size**2)
        fc = cost(kernels_of(config)[-1]) - empty
        return empty * 0.8 + (sum(blocks) + border + fc) * 1.05 - 0.3e-6 * (config.l - 1)

    def jitter(kernel) -> float:  # a slow pair only ever runs slower than its law (a round-min is a minimum)
        if pair_noise is not None and kernel.kind.endswith("-pair"):
            return 1 + abs(rng.normal(0, pair_noise))
        return 1 + rng.normal(0, noise)

    lines = 3 if whole else 4  # whole networks as `cpbench calibrate` samples them under OpenVINO
    design = CalibrationDesign(networks=40, pairs=pairs and not whole, whole=whole, share=0.05 if whole else 1.0,
                               full_s=lines, full_f=lines)
    kernels = plan_kernels(FASHION_MNIST, design)
    from cpbench.timing.calibration_design import plan_networks

    calibration = Calibration(
        device="sim", space="fashionmnist", in_channels=1, design={}, profile={}, fingerprint={"hardware_id": "sim", "hardware": {"cpu": "sim"}},
        started_at="", duration_s=0.0,
        kernels={k.id: {"kind": k.kind, "f": k.f, "s": k.s, "k": k.k, "c_in": k.c_in, "features": k.features,
                        "mins": [cost(k) * jitter(k) for _ in range(3)], "medians": [], "load_s": []} for k in kernels},
        networks={c.as_csv(): {"mins": [network(c) * (1 + rng.normal(0, noise)) for _ in range(3)], "medians": [], "load_s": []}
                  for c in plan_networks(FASHION_MNIST, design)},
    )
    return calibration, network


def test_without_denoising_every_measured_cell_keeps_its_time_as_timed():
    from cpbench.fitting.kernel_table import KernelTable
    from cpbench.timing.calibration_record import round_min

    calibration, _ = _synthetic_calibration(noise=0.2)
    denoised = KernelTable.from_calibration(calibration)
    as_timed = KernelTable.from_calibration(calibration, denoise=False)
    assert any(t.denoised for t in denoised.convs.values())  # 20 % noise per round: the fit wins somewhere
    assert not any(t.denoised for t in as_timed.convs.values())
    for e in calibration.kernels.values():
        if e["kind"] in ("first", "inner"):
            table = as_timed.convs[(e["kind"], e["k"])]
            assert table.times[e["f"] - 1, e["s"] - table.s_min] == round_min(e)


def test_the_kernel_model_predicts_unseen_networks_of_a_known_law_and_its_interval_covers():
    from cpbench.family.config import random_from_space

    calibration, network = _synthetic_calibration(noise=0.01)
    model = fit_kernel_model(calibration)
    unseen = random_from_space(FASHION_MNIST, 200, seed=5, exclude={Config.parse(c) for c in calibration.networks})
    truth = np.array([network(c) for c in unseen])
    predicted = model.predict_configs(unseen)
    ape = np.abs(predicted / truth - 1)
    assert ape.mean() < 0.02 and ape.max() < 0.06
    assert model.kfold.mape < 0.03
    assert model.interval_coverage >= 0.8


def test_pairs_recover_a_network_whose_blocks_alone_pay_conversions_the_network_pays_once():
    """A runtime that converts every call's input and output to its own layout (OpenVINO's bf16
    blocked tensors on AMX): blocks timed alone pay the conversions between blocks that a network
    never makes, in proportion to the tensor (f * s^2), which no linear function of the block sums
    recovers. Consecutive blocks timed as pairs carry the network's own inner borders."""
    from cpbench.family.config import random_from_space

    unseen = None
    errors = {}
    for pairs in (True, False):
        calibration, network = _synthetic_calibration(noise=0.01, layout=4e-9, pairs=pairs)
        unseen = unseen or random_from_space(FASHION_MNIST, 200, seed=5, exclude={Config.parse(c) for c in calibration.networks})
        truth = np.array([network(c) for c in unseen])
        model = fit_kernel_model(calibration)
        assert model.table.pairs == pairs and model.pairs == pairs  # where pairs were timed, k-fold chose them
        errors[pairs] = np.abs(model.predict_configs(unseen) / truth - 1)
    assert errors[True].mean() < 0.02 and errors[True].max() < 0.08
    assert errors[False].mean() > 2 * errors[True].mean() and errors[False].max() > 0.1


def test_the_composition_of_blocks_alone_is_kept_where_pairs_predict_worse():
    """No conversions to save, and pairs timed with 30 % noise: k-fold on the calibration networks
    keeps the blocks, and the quoted error is nested (each fold's choice made without it)."""
    calibration, _ = _synthetic_calibration(noise=0.01, pair_noise=0.3)
    model = fit_kernel_model(calibration)
    assert not model.pairs and model.choice_kfold["blocks"] < model.choice_kfold["pairs"]
    assert model.kfold.mape < 0.03


def test_whole_network_tables_completed_together_predict_unseen_networks_no_worse_than_each_table_alone(monkeypatch):
    """Whole networks sampled as `cpbench calibrate` samples them under OpenVINO (every f at 3 s,
    every s at 3 f, a twentieth of the rest: about a fifth of each (k, l)'s (f, s) matrix), timed
    17 % faster than `cpbench time` would (the map between the two is learned, whatever it is on a
    machine): the tables completed together as one matrix of f by (l, k, s), and the map, predict
    200 unseen networks within 2 %; each table completed alone does no better (with the ridge chosen
    by k-fold, a table alone is no longer far off, but pooling never costs)."""
    from cpbench.family.config import random_from_space
    from cpbench.fitting import kernel_table

    calibration, network = _synthetic_calibration(noise=0.01, whole=True)
    unseen = random_from_space(FASHION_MNIST, 200, seed=5, exclude={Config.parse(c) for c in calibration.networks})
    truth = np.array([network(c) for c in unseen])
    model = fit_kernel_model(calibration)
    assert model.table.compositions == ("networks",) and model.composition == "networks"
    assert set(model.summary()["coefficients"]) == {"constant", "network"}
    together = np.abs(model.predict_configs(unseen) / truth - 1)
    assert together.mean() < 0.02 and model.kfold.mape < 0.02
    monkeypatch.setattr(kernel_table, "_completion_groups", lambda measured: [[key] for key in measured])
    alone = np.abs(fit_kernel_model(calibration).predict_configs(unseen) / truth - 1)
    assert together.mean() <= alone.mean() * 1.05


def test_a_calibration_round_trips_through_its_file_and_refuses_another_format(tmp_path):
    import gzip

    from cpbench.errors import UsageError

    calibration, _ = _synthetic_calibration(noise=0.0)
    path = save_calibration(tmp_path, calibration)
    again = load_calibration(path)
    assert again.networks.keys() == calibration.networks.keys() and len(again.kernels) == len(calibration.kernels)
    payload = json.loads(gzip.decompress(path.read_bytes()))
    payload["format"] = 99
    path.write_bytes(gzip.compress(json.dumps(payload).encode()))
    with pytest.raises(UsageError, match="format 99"):
        load_calibration(path)
    path.write_bytes(b"not gzip")
    with pytest.raises(UsageError, match="not gzip-compressed"):
        load_calibration(path)


def test_calibrate_then_predict_and_recommend_use_this_machines_calibration(cli, tmp_path):
    ws = tmp_path / "ws"
    done = cli("calibrate", "--device", "cpu-1thread", "--rounds", "1", "--runs", "5", "--networks", "8",
               "--share", "0.02", "-w", str(ws), "--json", timeout=600)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["model"] == "kernel" and summary["networks"] == 8 and summary["statistic"] == "round-min"
    assert not any(t["denoised"] for t in summary["tables"].values())  # one round: nothing to tell noise from structure
    assert summary["kfold"]["n"] == 8 and summary["file"].endswith(".calibration.json.gz")
    assert summary["model_file"].endswith(".model.json.gz") and Path(summary["model_file"]).is_file()  # loaded, never refitted
    assert summary["verdict"]["advice"] and summary["verdict"]["n"] == 8  # the calibration judges itself
    done = cli("predict", "--device", "cpu-1thread", "-c", "16,20,3,2", "-w", str(ws), "--json")
    assert done.returncode == 0, done.stderr
    prediction = json.loads(done.stdout)
    assert prediction["calibration_verdict"] == summary["verdict"]  # every answer carries it
    assert prediction["model"] == "kernel" and prediction["warning"] is None
    assert 0 < prediction["predictions"][0]["low_s"] <= prediction["predictions"][0]["predicted_s"]
    done = cli("recommend", "--device", "cpu-1thread", "--target", "0.90", "-w", str(ws), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["time_model"] == "kernel"
    assert not any("calibration of" in w for w in result["warnings"])  # this machine's own: no other-machine warning


def test_a_calibration_with_pairs_times_them_on_the_runtime_and_fits_both_compositions():
    """`cpbench calibrate --pairs` on a tiny space, for real under ONNX Runtime: every pair of
    consecutive blocks the space runs is timed, and the model weighs both compositions."""
    from collections import Counter
    from dataclasses import replace

    from cpbench.family.config import Space
    from cpbench.timing.calibration import calibrate
    from cpbench.timing.profiles import SHIPPED, load_profile

    profile = load_profile("cpu-1thread", SHIPPED)
    profile = profile.with_overrides(measure=replace(profile.measure, min_runs=10, min_time_s=0.0, warmup_runs=2, warmup_time_s=0.0))
    space = Space("tiny", Config(4, 8, 2, 3), (), (), (), ())
    design = CalibrationDesign(rounds=1, runs=5, networks=8, share=1.0, pairs=True, classifier_points=4)
    calibration = calibrate(profile, space, design)
    kinds = Counter(e["kind"] for e in calibration.kernels.values())
    assert kinds["first-pair"] == 4 * len(range(4, 9)) * 2 and kinds["inner-pair"] == 4 * 1 * 2  # f x s x k
    model = fit_kernel_model(calibration)
    assert model.table.pairs and set(model.choice_kfold) == {f"{c}{form}" for c in ("blocks", "pairs")
                                                             for form in ("", " scaled", " sum")}
    predicted = model.predict_configs([Config(4, 8, 2, 3), Config(2, 8, 1, 2), Config(3, 5, 2, 1)])
    assert np.all(np.isfinite(predicted)) and np.all(predicted > 0)


def test_a_whole_network_calibration_times_every_network_of_a_tiny_space_and_predicts_from_them():
    """`cpbench calibrate --whole` for real under ONNX Runtime on a tiny space: every (f, s, k) of
    every depth is timed as one kernel, and the model is the map from that table."""
    from collections import Counter
    from dataclasses import replace

    from cpbench.family.config import Space
    from cpbench.timing.calibration import calibrate
    from cpbench.timing.profiles import SHIPPED, load_profile

    profile = load_profile("cpu-1thread", SHIPPED)
    profile = profile.with_overrides(measure=replace(profile.measure, min_runs=10, min_time_s=0.0, warmup_runs=2, warmup_time_s=0.0))
    space = Space("tiny", Config(4, 8, 2, 3), (), (), (), ())
    calibration = calibrate(profile, space, CalibrationDesign(rounds=2, runs=5, networks=8, whole=True, classifier_points=4))
    kinds = Counter(e["kind"] for e in calibration.kernels.values())
    assert (kinds["network-l1"], kinds["network-l2"], kinds["network-l3"]) == (4 * 7 * 2, 4 * 5 * 2, 4 * 1 * 2)  # f x s x k
    assert kinds["first"] == kinds["inner"] == 0
    model = fit_kernel_model(calibration)
    assert model.composition == "networks" and set(model.choice_kfold) == {"networks", "networks scaled", "networks sum"}
    predicted = model.predict_configs([Config(4, 8, 2, 3), Config(2, 8, 1, 2), Config(3, 5, 2, 1)])
    assert np.all(np.isfinite(predicted)) and np.all(predicted > 0)


def test_an_interrupted_calibration_keeps_what_it_measured_and_resumes(tmp_path):
    """Ctrl-C mid-calibration: every measurement so far is in the journal; the same call resumes,
    measures only the rest, keeps the journaled values, and removes the journal when complete."""
    from dataclasses import replace

    from cpbench.family.config import Space
    from cpbench.timing.calibration import calibrate
    from cpbench.timing.profiles import SHIPPED, load_profile

    profile = load_profile("cpu-1thread", SHIPPED)
    profile = profile.with_overrides(measure=replace(profile.measure, min_runs=10, min_time_s=0.0, warmup_runs=2, warmup_time_s=0.0))
    space = Space("tiny", Config(4, 6, 2, 2), (), (), (), ())
    design = CalibrationDesign(rounds=2, runs=5, networks=2, share=1.0, chunk=15, classifier_points=4, remeasure_share=0.0)
    journal = tmp_path / "fits" / "cpu-1thread-x.calibration.partial.jsonl"

    def interrupt(done: int, total: int) -> None:
        if done >= 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        calibrate(profile, space, design, observer=interrupt, journal_file=journal)
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    kept = {(r["round"], r["id"]): r["min"] for r in lines[1:] if "round" in r}
    assert len(kept) >= 20
    with journal.open("a") as handle:  # a kill in the middle of writing a line
        handle.write('{"round": 0, "id": "first-k3-f1-s2", "mi')
    seen = []
    calibration = calibrate(profile, space, design, observer=lambda done, total: seen.append((done, total)), journal_file=journal)
    assert seen[0][0] == len(kept) and seen[-1][0] == seen[-1][1]  # started from what was kept, ended complete
    assert journal.exists()  # removed by the caller only once the calibration is saved
    unreadable = []
    for line in journal.read_text().splitlines()[1:]:
        try:
            json.loads(line)
        except ValueError:
            unreadable.append(line)
    assert len(unreadable) == 1  # the cut line alone: what came after it starts on a line of its own
    journal.unlink()
    entries = {**{i: e for i, e in calibration.kernels.items()}, **{f"net:{c}": e for c, e in calibration.networks.items()}}
    assert all(len(e["mins"]) == 2 for e in entries.values())
    for (round_index, item), minimum in kept.items():
        assert entries[item]["mins"][round_index] == minimum
    # a journal of other settings is never mixed in
    calibrate_again = CalibrationDesign(rounds=2, runs=6, networks=2, share=1.0, chunk=15, classifier_points=4,
                                        remeasure_share=0.0)
    with pytest.raises(KeyboardInterrupt):
        calibrate(profile, space, design, observer=interrupt, journal_file=journal)
    from cpbench.errors import UsageError

    with pytest.raises(UsageError, match="other settings"):
        calibrate(profile, space, calibrate_again, journal_file=journal)


def test_a_calibration_under_other_run_settings_is_flagged(tmp_path):
    """A calibration answers for the settings it was measured with: once the profile's threads or
    options change, predictions from it carry a warning naming what changed."""
    from dataclasses import replace

    from cpbench.fitting.predictors import time_model
    from cpbench.timing.profiles import SHIPPED, load_profile

    profile = load_profile("cpu-1thread", SHIPPED)
    calibration, _ = _synthetic_calibration(noise=0.0)
    calibration = replace(calibration, device=profile.name, profile=profile.as_dict(), fingerprint={"hardware_id": "here"})
    _save_model(tmp_path, calibration)
    assert time_model(profile, tmp_path, "here").warning is None
    changed = time_model(profile.with_overrides(threads=2), tmp_path, "here")
    assert changed.warning and "threads differ" in changed.warning and "cpbench calibrate --device cpu-1thread" in changed.warning


def test_a_calibration_on_the_other_clock_is_flagged(tmp_path):
    """OpenVINO's shipped profile times the request's own latency; a calibration made on the wall
    clock (or before profiles had a clock) does not answer for it without a warning."""
    from dataclasses import replace

    from cpbench.fitting.predictors import time_model
    from cpbench.timing.profiles import SHIPPED, load_profile

    profile = load_profile("openvino", SHIPPED)
    assert profile.clock == "runtime"
    calibration, _ = _synthetic_calibration(noise=0.0)
    older = {k: v for k, v in profile.as_dict().items() if k != "clock"}  # written before the setting existed: wall
    _save_model(tmp_path, replace(calibration, device=profile.name, profile=older, fingerprint={"hardware_id": "here"}))
    flagged = time_model(profile, tmp_path, "here")
    assert flagged.warning and "clock differ" in flagged.warning
    _save_model(tmp_path, replace(calibration, device=profile.name, profile=profile.as_dict(), fingerprint={"hardware_id": "here"}))
    assert time_model(profile, tmp_path, "here").warning is None


def _save_model(models_dir: Path, calibration) -> Path:
    """A calibration and its fitted model, saved as `cpbench calibrate` saves them."""
    from cpbench.fitting.predictors import model_path, save_time_model

    save_calibration(models_dir, calibration)
    return save_time_model(model_path(models_dir, calibration.device, calibration.hardware_id), fit_kernel_model(calibration))
