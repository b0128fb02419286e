"""Closed-form checks of each counting handler on tiny hand-built ONNX graphs."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from cpbench.counting.count import count_file, count_model
from cpbench.counting.graph import parse_input_shape
from cpbench.errors import UsageError


def graph_model(nodes, inputs, outputs, initializers=(), opset=18, value_info=()):
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs],
        initializer=[numpy_helper.from_array(np.zeros(shape, np.float32), name) for name, shape in initializers],
        value_info=list(value_info),
    )
    opsets = [helper.make_opsetid("", opset), helper.make_opsetid("com.example", 1)]
    return helper.make_model(graph, opset_imports=opsets)


def conv_model(cin, cout, hw, kernel, groups=1, strides=(1, 1), dilations=(1, 1), pads=(0, 0, 0, 0), bias=True):
    inits = [("W", (cout, cin // groups, *kernel))] + ([("B", (cout,))] if bias else [])
    node = helper.make_node(
        "Conv", ["x", "W"] + (["B"] if bias else []), ["y"],
        group=groups, strides=list(strides), dilations=list(dilations), pads=list(pads), kernel_shape=list(kernel),
    )
    return graph_model([node], [("x", (1, cin, *hw))], [("y", None)], inits)


def out_size(size, k, stride, dilation, pad_total):
    return (size + pad_total - dilation * (k - 1) - 1) // stride + 1


@pytest.mark.parametrize(
    "cin, cout, hw, kernel, groups, strides, dilations, pads",
    [
        (3, 8, (10, 10), (3, 3), 1, (1, 1), (1, 1), (0, 0, 0, 0)),  # plain
        (4, 8, (9, 9), (3, 3), 2, (1, 1), (1, 1), (1, 1, 1, 1)),  # grouped, padded
        (8, 8, (12, 12), (3, 3), 8, (2, 2), (1, 1), (1, 1, 1, 1)),  # depthwise, strided
        (2, 4, (16, 16), (3, 3), 1, (1, 1), (2, 2), (2, 2, 2, 2)),  # dilated
        (1, 6, (11, 7), (4, 2), 1, (2, 1), (1, 1), (1, 0, 2, 1)),  # even, rectangular, asymmetric pads
    ],
)
def test_conv(cin, cout, hw, kernel, groups, strides, dilations, pads):
    count = count_model(conv_model(cin, cout, hw, kernel, groups, strides, dilations, pads))
    ho = out_size(hw[0], kernel[0], strides[0], dilations[0], pads[0] + pads[2])
    wo = out_size(hw[1], kernel[1], strides[1], dilations[1], pads[1] + pads[3])
    assert count.macs_by_category["conv"] == cout * ho * wo * (cin // groups) * kernel[0] * kernel[1]
    assert count.macs_by_category["bias"] == cout * ho * wo
    assert count.params == cout * (cin // groups) * kernel[0] * kernel[1] + cout
    assert count.layers[0].output_shape == (1, cout, ho, wo)
    assert count.flops == 2 * count.total_macs


def test_conv_without_bias_has_no_bias_category():
    count = count_model(conv_model(3, 4, (5, 5), (3, 3), bias=False))
    assert "bias" not in count.macs_by_category and count.macs_by_category["conv"] == 4 * 9 * 27


def test_conv_transpose():
    node = helper.make_node("ConvTranspose", ["x", "W"], ["y"], strides=[2, 2], kernel_shape=[3, 3], group=2)
    model = graph_model([node], [("x", (1, 4, 5, 5))], [("y", None)], [("W", (4, 3, 3, 3))])
    count = count_model(model)
    assert count.macs_by_category["conv"] == 4 * 5 * 5 * 3 * 9  # every input element x (C_out/groups) x kernel
    assert count.layers[0].output_shape == (1, 6, 11, 11)


@pytest.mark.parametrize("trans_a, trans_b", [(0, 0), (0, 1), (1, 1)])
def test_gemm(trans_a, trans_b):
    m, k, n = 3, 5, 7
    a_shape = (k, m) if trans_a else (m, k)
    b_shape = (n, k) if trans_b else (k, n)
    node = helper.make_node("Gemm", ["a", "B", "C"], ["y"], transA=trans_a, transB=trans_b)
    model = graph_model([node], [("a", a_shape)], [("y", None)], [("B", b_shape), ("C", (n,))])
    count = count_model(model)
    assert count.macs_by_category == {"linear": m * n * k, "bias": m * n}


def test_batched_matmul_of_two_activations_is_matmul():
    node = helper.make_node("MatMul", ["q", "k"], ["y"])
    model = graph_model([node], [("q", (2, 4, 6, 8)), ("k", (2, 1, 8, 6))], [("y", None)])
    count = count_model(model)
    assert count.macs_by_category == {"matmul": 2 * 4 * 6 * 6 * 8}  # broadcast over the head axis


def test_matmul_against_a_weight_is_linear():
    node = helper.make_node("MatMul", ["x", "W"], ["y"])
    model = graph_model([node], [("x", (1, 10, 16))], [("y", None)], [("W", (16, 32))])
    assert count_model(model).macs_by_category == {"linear": 10 * 32 * 16}


def test_categories_for_norm_activation_pool_elementwise_softmax():
    nodes = [
        helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["bn"]),
        helper.make_node("Relu", ["bn"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Add", ["p", "p"], ["a"]),
        helper.make_node("GlobalAveragePool", ["a"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Softmax", ["f"], ["y"]),
    ]
    inits = [(n, (4,)) for n in "sbmv"]
    count = count_model(graph_model(nodes, [("x", (1, 4, 8, 8))], [("y", None)], inits))
    assert count.macs_by_category == {
        "norm": 256, "activation": 256, "pool": 64 * 4 + 64, "elementwise": 64, "softmax": 4,
    }
    assert count.uncounted == {}
    # activation bytes: every intermediate tensor, float32
    assert count.activation_bytes == 4 * (256 + 256 + 64 + 64 + 4 + 4 + 4)
    assert count.weight_bytes == 4 * 16 and count.params == 16


def test_custom_domain_op_is_listed_as_uncounted_not_zero():
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("FancyOp", ["r"], ["y"], domain="com.example"),
    ]
    value_info = [helper.make_tensor_value_info("y", TensorProto.FLOAT, (1, 4))]
    count = count_model(graph_model(nodes, [("x", (1, 4))], [("y", (1, 4))], value_info=value_info))
    assert count.uncounted == {"com.example::FancyOp": 1}
    assert [layer.counted for layer in count.layers] == [True, False]
    assert count.macs_by_category == {"activation": 4}


def test_dynamic_batch_is_one_and_other_dynamic_dims_need_input_shape():
    node = helper.make_node("Relu", ["x"], ["y"])
    model = graph_model([node], [("x", ("batch", 3, 4, 4))], [("y", None)])
    assert count_model(model).input_shapes == {"x": (1, 3, 4, 4)}
    assert count_model(model, (5, 3, 4, 4)).macs_by_category == {"activation": 5 * 48}
    dynamic = graph_model([node], [("x", ("batch", 3, "h", "w"))], [("y", None)])
    with pytest.raises(UsageError, match="input 'x' has a dynamic dimension 2.*--input-shape"):
        count_model(dynamic)
    assert count_model(dynamic, parse_input_shape("2x3x8x8")).macs_by_category == {"activation": 2 * 3 * 64}
    with pytest.raises(UsageError, match="has 3 dimensions but input 'x' has 4"):
        count_model(dynamic, (1, 3, 8))


def test_uninferable_shape_names_the_tensor():
    nodes = [
        helper.make_node("Mystery", ["x"], ["m"], domain="com.example"),
        helper.make_node("Conv", ["m", "W"], ["y"], kernel_shape=[3, 3]),
    ]
    model = graph_model(nodes, [("x", (1, 3, 8, 8))], [("y", None)], [("W", (4, 3, 3, 3))])
    with pytest.raises(UsageError, match="cannot infer the shape of tensor 'm'"):
        count_model(model)


@pytest.mark.parametrize("text", ["1x3x", "axb", "0x3x4x4", ""])
def test_bad_input_shape(text):
    with pytest.raises(UsageError, match="invalid --input-shape"):
        parse_input_shape(text)


def test_missing_truncated_and_garbage_files(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        count_file(tmp_path / "nope.onnx")
    good = conv_model(3, 4, (8, 8), (3, 3)).SerializeToString()
    (tmp_path / "cut.onnx").write_bytes(good[: len(good) // 2])
    with pytest.raises(UsageError, match="not a readable ONNX model"):
        count_file(tmp_path / "cut.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\xff\xfe junk" * 50)
    with pytest.raises(UsageError, match="not a readable ONNX model"):
        count_file(tmp_path / "junk.onnx")


def test_einsum_contraction():
    node = helper.make_node("Einsum", ["a", "b"], ["y"], equation="bhqd,bhkd->bhqk")
    model = graph_model([node], [("a", (2, 3, 5, 8)), ("b", (2, 3, 7, 8))], [("y", None)])
    assert count_model(model).macs_by_category == {"matmul": 2 * 3 * 5 * 7 * 8}
    node = helper.make_node("Einsum", ["a", "b"], ["y"], equation="...ij,jk->...ik")
    model = graph_model([node], [("a", (4, 5, 6))], [("y", None)], [("b", (6, 2))])
    assert count_model(model).macs_by_category == {"linear": 4 * 5 * 6 * 2}


def test_shapes_computed_at_run_time_are_resolved():
    """A channel split whose Slice bounds come from Shape -> Div (ShuffleNet's pattern)."""
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "one"], ["channels"], axis=0),
        helper.make_node("Div", ["channels", "two"], ["half"]),
        helper.make_node("Unsqueeze", ["half", "zero"], ["half1"]),
        helper.make_node("Slice", ["x", "start", "half1", "axes"], ["left"]),
        helper.make_node("Conv", ["left", "W"], ["y"], kernel_shape=[1, 1]),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, (1, 8, 4, 4))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[
            numpy_helper.from_array(np.array(1, np.int64), "one"),
            numpy_helper.from_array(np.array(2, np.int64), "two"),
            numpy_helper.from_array(np.array([0], np.int64), "zero"),
            numpy_helper.from_array(np.array([0], np.int64), "start"),
            numpy_helper.from_array(np.array([1], np.int64), "axes"),
            numpy_helper.from_array(np.zeros((6, 4, 1, 1), np.float32), "W"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    assert count_model(model).macs_by_category["conv"] == 6 * 16 * 4
