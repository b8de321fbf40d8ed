"""FLOPs and parameter counting against hand-worked formulas and a torchvision-free reference."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from tracegen.models.builtin import BUILTIN_MODELS, build_spec
from tracegen.models.flops import count_model


def weight(name: str, *shape: int):
    return numpy_helper.from_array(np.zeros(shape, np.float32), name)


def one_node_model(node, input_shape, initializers=(), extra_inputs=()):
    """A model of one node with input ``x`` (shape may hold symbolic dims) and output ``y``."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(input_shape))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph([node], "g", [x, *extra_inputs], [y], list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def conv(cin=3, cout=64, k=7, stride=2, group=1, bias=False, input_shape=("N", 3, 224, 224)):
    inits = [weight("w", cout, cin // group, k, k)] + ([weight("b", cout)] if bias else [])
    node = helper.make_node("Conv", ["x", "w"] + (["b"] if bias else []), ["y"], kernel_shape=[k, k],
                            strides=[stride, stride], pads=[k // 2] * 4, group=group)
    return one_node_model(node, input_shape, inits)


def test_resnet_stem_conv_reference():
    # Conv 3->64, 7x7, stride 2 on 224x224 -> 64x112x112 outputs, 3*49 multiply-adds each.
    stats = count_model(conv())
    assert stats.flops_per_image == 2 * 64 * 3 * 49 * 112 * 112
    assert stats.params == 64 * 3 * 49
    assert stats.complete
    assert (stats.input_name, stats.input_shape, stats.input_dtype) == ("x", ("N", 3, 224, 224), "float32")


def test_bias_adds_params_not_flops():
    with_bias = count_model(conv(bias=True))
    assert with_bias.flops_per_image == count_model(conv()).flops_per_image
    assert with_bias.params == 64 * 3 * 49 + 64


def test_grouped_and_depthwise_conv():
    grouped = conv(cin=16, cout=32, k=3, stride=1, group=4, input_shape=(1, 16, 10, 10))
    assert count_model(grouped).flops_per_image == 2 * (32 * 10 * 10) * (16 // 4) * 9
    depthwise = conv(cin=32, cout=32, k=3, stride=1, group=32, input_shape=(1, 32, 10, 10))
    assert count_model(depthwise).flops_per_image == 2 * (32 * 10 * 10) * 9


def test_conv_transpose_counts_per_input_element():
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], kernel_shape=[3, 3], strides=[2, 2])
    model = one_node_model(node, ("N", 8, 5, 5), [weight("w", 8, 4, 3, 3)])
    assert count_model(model).flops_per_image == 2 * (8 * 5 * 5) * 4 * 9


def test_gemm():
    node = helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)
    stats = count_model(one_node_model(node, ("N", 512), [weight("w", 1000, 512), weight("b", 1000)]))
    assert stats.flops_per_image == 2 * 1000 * 512
    assert stats.params == 1000 * 512 + 1000


def test_gemm_with_transposed_input():
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0]),
             helper.make_node("Gemm", ["xt", "w"], ["y"], transA=1)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 512])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [weight("w", 512, 1000)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert count_model(model).flops_per_image == 2 * 1000 * 512


def test_batched_matmul():
    node = helper.make_node("MatMul", ["x", "w"], ["y"])
    model = one_node_model(node, ("N", 8, 16), [weight("w", 16, 32)])
    assert count_model(model).flops_per_image == 2 * 8 * 32 * 16


def test_pooling_and_elementwise_are_cheap_estimates():
    pool = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    assert count_model(one_node_model(pool, ("N", 64, 112, 112))).flops_per_image == 64 * 56 * 56 * 9
    gap = helper.make_node("GlobalAveragePool", ["x"], ["y"])
    assert count_model(one_node_model(gap, ("N", 512, 7, 7))).flops_per_image == 512 * 7 * 7
    relu = helper.make_node("Relu", ["x"], ["y"])
    assert count_model(one_node_model(relu, ("N", 64, 8, 8))).flops_per_image == 64 * 8 * 8
    flatten = helper.make_node("Flatten", ["x"], ["y"])
    stats = count_model(one_node_model(flatten, ("N", 64, 8, 8)))
    assert stats.flops_per_image == 0 and stats.complete


def test_fixed_batch_is_divided_out():
    assert count_model(conv(input_shape=(4, 3, 224, 224))).flops_per_image == \
        count_model(conv()).flops_per_image


def test_unknown_dims_are_reported_not_guessed():
    stats = count_model(conv(input_shape=("N", 3, "H", "W")))
    assert stats.flops_per_image == 0
    assert (stats.uncounted_nodes, stats.uncounted_ops, stats.complete) == (1, ("Conv",), False)
    assert stats.input_shape == ("N", 3, "H", "W")
    assert stats.params == 64 * 3 * 49  # still known


def test_unknown_op_is_reported_and_the_rest_counted():
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Mystery", ["r"], ["y"], domain="custom")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 10])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("custom", 1)])
    stats = count_model(model)
    assert stats.flops_per_image == 10
    assert stats.uncounted_ops == ("Mystery",)


def test_initializers_listed_as_inputs_are_not_the_input():
    # Models from before IR 4 list every weight among the graph inputs as well.
    w_info = helper.make_tensor_value_info("w", TensorProto.FLOAT, [64, 3, 7, 7])
    model = conv()
    model.graph.input.insert(0, w_info)
    assert count_model(model).input_name == "x"


def test_no_input_is_a_clear_error():
    model = conv()
    del model.graph.input[:]
    with pytest.raises(ValueError, match="no input"):
        count_model(model)


@pytest.mark.parametrize("name, macs_224, params", [
    # torchvision's ResNet-18 / ResNet-34 at 224x224: 1.81 and 3.66 GMACs of conv and fc (its
    # docs' "GFLOPS"); parameters are torchvision's less one per batch-norm channel (scale and
    # shift fold into one conv bias): 11,689,512 - 4,800 and 21,797,672 - 8,512.
    ("small", 1.814e9, 11_684_712),
    ("large", 3.664e9, 21_789_160),
])
def test_builtins_match_resnet_reference(name, macs_224, params):
    spec = dataclasses.replace(BUILTIN_MODELS[name], height=224, width=224)
    stats = count_model(build_spec(spec))
    assert stats.params == params
    # Pooling, ReLU and Add add a fraction of a percent on top of the multiply-adds.
    assert 1.0 <= stats.flops_per_image / (2 * macs_224) < 1.005
