#!/usr/bin/python3
"""Writes the malformed-input corpus of tests/bad (committed; run by a developer with
Debian's python3-onnx and python3-numpy): broken ONNX models (onnx/), .npy arrays (npy/)
and .npz archives (npz/), each small and broken in one way. tests/bad/expected.txt holds
the exact message kiln must give for each (checked by tests/frontend/test_bad_corpus.c,
also under ASan+UBSan). A few well-formed ones check the features next to the broken
ones (external data, old-opset Softmax). The .kiln cases are written by hand in kiln/."""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "onnx")
os.makedirs(out, exist_ok=True)


def save(name, graph, opset=17, raw=None):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="kiln-tests")
    data = model.SerializeToString() if raw is None else raw(model.SerializeToString())
    with open(os.path.join(out, name + ".onnx"), "wb") as f:
        f.write(data)


def vi(name, shape, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def relu_graph(**kw):
    return helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "g", [vi("x", [2])], [vi("y", [2])], **kw)


save("ok_relu", relu_graph())
save("truncated", relu_graph(), raw=lambda b: b[: len(b) // 2])
save("garbage", relu_graph(), raw=lambda b: bytes(range(256)) * 4)
save("attr_wrong_type", helper.make_graph(
    [helper.make_node("Softmax", ["x"], ["y"], name="sm", axis=1.5)], "g", [vi("x", [2, 3])], [vi("y", [2, 3])]))
save("unknown_op", helper.make_graph(
    [helper.make_node("Frobnicate", ["x"], ["y"], name="frob")], "g", [vi("x", [2])], [vi("y", [2])]))
save("unknown_domain", helper.make_graph(
    [helper.make_node("Relu", ["x"], ["y"], name="relu", domain="com.example")], "g", [vi("x", [2])], [vi("y", [2])]))
save("missing_initializer", helper.make_graph(
    [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "g", [vi("x", [2, 2])], [vi("y", [2, 2])]))
save("cycle", helper.make_graph(
    [helper.make_node("Add", ["x", "b"], ["a"], name="first"), helper.make_node("Relu", ["a"], ["b"], name="second")],
    "g", [vi("x", [2])], [vi("b", [2])]))
save("negative_dim", helper.make_graph(
    [helper.make_node("Relu", ["x"], ["y"], name="relu")], "g", [vi("x", [-3, 2])], [vi("y", [2])]))
big = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[1 << 40, 1 << 40])
save("overflowing_dims", relu_graph(initializer=[big]))
short = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2], raw_data=b"\0\0\0\0")
save("raw_data_short", helper.make_graph(
    [helper.make_node("Add", ["x", "w"], ["y"], name="add")], "g", [vi("x", [2])], [vi("y", [2])], initializer=[short]))
save("no_graph", relu_graph(), raw=lambda b: onnx.ModelProto(ir_version=8, opset_import=[helper.make_opsetid("", 17)]).SerializeToString())
save("string_input", helper.make_graph(
    [helper.make_node("Identity", ["x"], ["y"], name="id")], "g", [vi("x", [2], TensorProto.STRING)], [vi("y", [2], TensorProto.STRING)]))
save("cast_to_complex", helper.make_graph(
    [helper.make_node("Cast", ["x"], ["y"], name="cast", to=TensorProto.COMPLEX64)], "g", [vi("x", [2])], [vi("y", [2], TensorProto.COMPLEX64)]))
save("duplicate_output", helper.make_graph(
    [helper.make_node("Relu", ["x"], ["y"], name="one"), helper.make_node("Neg", ["x"], ["y"], name="two")],
    "g", [vi("x", [2])], [vi("y", [2])]))
save("gather_out_of_range", helper.make_graph(
    [helper.make_node("Gather", ["x", "i"], ["y"], name="gather")], "g", [vi("x", [3])], [vi("y", [1])],
    initializer=[numpy_helper.from_array(np.array([5], dtype=np.int64), "i")]))


def external(name, location, offset=0, length=8):
    t = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2], data_location=TensorProto.EXTERNAL)
    for k, v in (("location", location), ("offset", str(offset)), ("length", str(length))):
        e = t.external_data.add()
        e.key, e.value = k, v
    save(name, helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"], name="add")], "g", [vi("x", [2])],
                                 [vi("y", [2])], initializer=[t]))


with open(os.path.join(out, "weights.bin"), "wb") as f:
    f.write(np.array([0, 0, 1.5, -2], dtype=np.float32).tobytes())
external("external_ok", "weights.bin", offset=8)
external("external_dotdot", "../onnx/weights.bin")
external("external_absolute", "/etc/hostname")
external("external_past_end", "weights.bin", offset=12)
link = os.path.join(out, "escape.bin")
if not os.path.lexists(link):
    os.symlink("/etc/hostname", link)
external("external_symlink", "escape.bin")

# Softmax before opset 13 normalizes over all axes from `axis` on (2-D coercion).
save("softmax_opset11", helper.make_graph(
    [helper.make_node("Softmax", ["x"], ["y"], name="sm", axis=1)], "g", [vi("x", [2, 2, 2])], [vi("y", [2, 2, 2])]),
    opset=11)

# found by tests/fuzz/fuzz_onnx.c: an attribute without a name, an empty string attribute
nameless = helper.make_node("Relu", ["x"], ["y"], name="relu")
nameless.attribute.add().type = onnx.AttributeProto.INT
save("attr_no_name", helper.make_graph([nameless], "g", [vi("x", [2])], [vi("y", [2])]))
save("einsum_empty_equation", helper.make_graph(
    [helper.make_node("Einsum", ["x"], ["y"], name="e", equation="")], "g", [vi("x", [2, 2])], [vi("y", [2, 2])]))


# ---- the protobuf wire format itself ---------------------------------------------------
def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def field(number, wire, payload=b""):
    return varint(number << 3 | wire) + payload


def raw(name, data):
    with open(os.path.join(out, name + ".onnx"), "wb") as f:
        f.write(data)


ok = helper.make_model(relu_graph(), opset_imports=[helper.make_opsetid("", 17)], producer_name="kiln-tests")
ok_bytes = ok.SerializeToString()
raw("empty", b"")
raw("pb_varint_truncated", field(1, 0) + b"\xff\xff")
raw("pb_varint_too_long", field(1, 0) + b"\xff" * 10 + b"\x01")
raw("pb_graph_as_varint", field(1, 0, varint(8)) + field(7, 0, varint(1)))
raw("pb_group_start", field(1, 0, varint(8)) + field(7, 3))
raw("pb_wire_type_6", field(1, 0, varint(8)) + field(9, 6))
raw("pb_length_4gib", field(1, 0, varint(8)) + field(7, 2, varint(0xFFFFFFFF)))
raw("pb_fixed64_truncated", field(1, 0, varint(8)) + field(99, 1, b"\x01\x02"))
raw("pb_trailing_tag", ok_bytes + b"\x80")
raw("pb_field_zero", ok_bytes + b"\x00")
g = ok.graph.SerializeToString()
def sub(number, payload):
    """A length-delimited field: a submessage or a string."""
    return field(number, 2, varint(len(payload)) + payload)


header = field(1, 0, varint(8)) + sub(8, field(2, 0, varint(17)))  # ir_version, opset_import
# a node whose input (NodeProto field 1, a string) comes as a varint
raw("pb_node_input_as_varint", header + sub(7, sub(1, field(1, 0, varint(5)))))
# a packed repeated int64 (TensorProto.dims) whose last varint runs past the field
dims = field(1, 2, varint(2) + b"\x02\xff")
tensor = dims + field(2, 0, varint(1)) + field(8, 2, varint(1) + b"w")
raw("pb_packed_dims_truncated", header + sub(7, sub(5, tensor)))


def nested(depth):
    """If nodes within If nodes: each level one more GraphProto inside an AttributeProto."""
    inner = relu_graph()
    for level in range(depth):
        node = helper.make_node("If", ["c"], ["y"], name=f"if{level}", then_branch=inner, else_branch=relu_graph())
        inner = helper.make_graph([node], f"g{level}", [vi("c", [], TensorProto.BOOL), vi("x", [2])], [vi("y", [2])])
    return inner


save("deep_subgraphs", nested(40))
save("if_subgraph", nested(1))

# ---- the model and its opsets ----------------------------------------------------------
save("opset_future", relu_graph(), opset=99)
save("opset_zero", relu_graph(), opset=0)
m = helper.make_model(relu_graph(), producer_name="kiln-tests")
del m.opset_import[:]
raw("no_opset_import", m.SerializeToString())
save("ml_domain", helper.make_graph(
    [helper.make_node("Normalizer", ["x"], ["y"], name="norm", domain="ai.onnx.ml", norm="L2")],
    "g", [vi("x", [1, 2])], [vi("y", [1, 2])]))
save("empty_graph", helper.make_graph([], "g", [vi("x", [2])], []))
save("output_undefined", helper.make_graph(
    [helper.make_node("Relu", ["x"], ["y"], name="relu")], "g", [vi("x", [2])], [vi("z", [2])]))
save("duplicate_input", helper.make_graph(
    [helper.make_node("Relu", ["x"], ["y"], name="relu")], "g", [vi("x", [2]), vi("x", [2])], [vi("y", [2])]))
w = numpy_helper.from_array(np.ones(2, np.float32), "w")
save("duplicate_initializer", helper.make_graph(
    [helper.make_node("Add", ["x", "w"], ["y"], name="add")], "g", [vi("x", [2])], [vi("y", [2])], initializer=[w, w]))
save("output_is_input", helper.make_graph(
    [helper.make_node("Relu", ["x"], ["x"], name="relu")], "g", [vi("x", [2])], [vi("x", [2])]))
save("output_is_initializer", helper.make_graph(
    [helper.make_node("Relu", ["x"], ["w"], name="relu")], "g", [vi("x", [2])], [vi("w", [2])], initializer=[w]))
save("self_loop", helper.make_graph(
    [helper.make_node("Add", ["x", "y"], ["y"], name="loop")], "g", [vi("x", [2])], [vi("y", [2])]))
save("three_cycle", helper.make_graph(
    [helper.make_node("Add", ["x", "c"], ["a"], name="n1"), helper.make_node("Relu", ["a"], ["b"], name="n2"),
     helper.make_node("Neg", ["b"], ["c"], name="n3")], "g", [vi("x", [2])], [vi("c", [2])]))
save("required_input_empty", helper.make_graph(
    [helper.make_node("Add", ["x", ""], ["y"], name="add")], "g", [vi("x", [2])], [vi("y", [2])]))
save("too_many_inputs", helper.make_graph(
    [helper.make_node("Relu", ["x", "x"], ["y"], name="relu")], "g", [vi("x", [2])], [vi("y", [2])]))
save("too_few_inputs", helper.make_graph(
    [helper.make_node("Add", ["x"], ["y"], name="add")], "g", [vi("x", [2])], [vi("y", [2])]))
save("too_many_outputs", helper.make_graph(
    [helper.make_node("Relu", ["x"], ["y", "z"], name="relu")], "g", [vi("x", [2])], [vi("y", [2])]))
save("node_without_outputs", helper.make_graph(
    [helper.make_node("Relu", ["x"], [], name="relu")], "g", [vi("x", [2])], [vi("x", [2])]))
save("input_unnamed", helper.make_graph(
    [helper.make_node("Relu", [""], ["y"], name="relu")], "g", [vi("", [2])], [vi("y", [2])]))
untyped = onnx.ValueInfoProto(name="x")
save("input_untyped", helper.make_graph(
    [helper.make_node("Relu", ["x"], ["y"], name="relu")], "g", [untyped], [vi("y", [2])]))
save("input_dtype_undefined", helper.make_graph(
    [helper.make_node("Relu", ["x"], ["y"], name="relu")], "g", [vi("x", [2], TensorProto.UNDEFINED)], [vi("y", [2])]))
save("input_dtype_999", helper.make_graph(
    [helper.make_node("Relu", ["x"], ["y"], name="relu")], "g", [vi("x", [2], 999)], [vi("y", [2])]))
seq = helper.make_tensor_sequence_value_info("x", TensorProto.FLOAT, [2])
save("input_sequence", helper.make_graph(
    [helper.make_node("Identity", ["x"], ["y"], name="id")], "g", [seq], [vi("y", [2])]))
save("input_no_shape", helper.make_graph(
    [helper.make_node("Relu", ["x"], ["y"], name="relu")], "g", [vi("x", None)], [vi("y", None)]))
save("output_dtype_differs", helper.make_graph(
    [helper.make_node("Relu", ["x"], ["y"], name="relu")], "g", [vi("x", [2])], [vi("y", [2], TensorProto.INT64)]))
save("output_shape_differs", helper.make_graph(
    [helper.make_node("Relu", ["x"], ["y"], name="relu")], "g", [vi("x", [2])], [vi("y", [3])]))

# ---- dimensions and shapes -------------------------------------------------------------
save("input_dims_overflow", helper.make_graph(
    [helper.make_node("Relu", ["x"], ["y"], name="relu")], "g", [vi("x", [1 << 40, 1 << 40])], [vi("y", None)]))
save("input_over_cap", helper.make_graph(
    [helper.make_node("Relu", ["x"], ["y"], name="relu")], "g", [vi("x", [1 << 31, 1 << 31])], [vi("y", None)]))
save("input_rank_100", helper.make_graph(
    [helper.make_node("Relu", ["x"], ["y"], name="relu")], "g", [vi("x", [1] * 100)], [vi("y", [2])]))
r9 = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[1] * 9, float_data=[1.0])
save("initializer_rank_9", relu_graph(initializer=[r9]))


def const_i64(name, values):
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def shaped(name, op, shape_values, inputs=None, x_shape=(2,), extra=(), **attrs):
    inputs = inputs or ["x", "s"]
    save(name, helper.make_graph([helper.make_node(op, inputs, ["y"], name=op.lower(), **attrs)], "g",
                                 [vi("x", list(x_shape))], [vi("y", None)],
                                 initializer=[const_i64("s", shape_values), *extra]))


shaped("reshape_overflow", "Reshape", [1 << 40, 1 << 40])
shaped("reshape_count_differs", "Reshape", [3])
shaped("reshape_two_minus_one", "Reshape", [-1, -1])
shaped("reshape_minus_one_zero_size", "Reshape", [-1, 0], x_shape=(0, 2), allowzero=1)
shaped("reshape_negative", "Reshape", [-2])
shaped("expand_over_cap", "Expand", [1 << 20, 1 << 20, 1 << 20], x_shape=(1,))
shaped("expand_incompatible", "Expand", [3], x_shape=(2,))
shaped("tile_over_cap", "Tile", [1 << 62])
shaped("tile_negative", "Tile", [-1])
shaped("tile_wrong_length", "Tile", [1, 1])
save("constant_of_shape_over_cap", helper.make_graph(
    [helper.make_node("ConstantOfShape", ["s"], ["y"], name="cos")], "g", [], [vi("y", None)],
    initializer=[const_i64("s", [1 << 30, 1 << 30])]))
save("constant_of_shape_negative", helper.make_graph(
    [helper.make_node("ConstantOfShape", ["s"], ["y"], name="cos")], "g", [], [vi("y", None)],
    initializer=[const_i64("s", [-4])]))
save("range_over_cap", helper.make_graph(
    [helper.make_node("Range", ["a", "b", "c"], ["y"], name="range")], "g", [], [vi("y", None)],
    initializer=[const_i64("a", 0), const_i64("b", 1 << 62), const_i64("c", 1)]))
save("range_zero_delta", helper.make_graph(
    [helper.make_node("Range", ["a", "b", "c"], ["y"], name="range")], "g", [], [vi("y", None)],
    initializer=[const_i64("a", 0), const_i64("b", 5), const_i64("c", 0)]))
shaped("pad_over_cap", "Pad", [0, 1 << 40])
shaped("pad_below_zero", "Pad", [-2, -1])
shaped("pad_wrong_length", "Pad", [1, 1, 1])
save("onehot_depth_over_cap", helper.make_graph(
    [helper.make_node("OneHot", ["i", "d", "v"], ["y"], name="onehot")], "g", [vi("i", [2], TensorProto.INT64)],
    [vi("y", None)], initializer=[const_i64("d", [1 << 40]), numpy_helper.from_array(np.array([0, 1], np.float32), "v")]))
save("unsqueeze_rank_9", helper.make_graph(
    [helper.make_node("Unsqueeze", ["x", "a"], ["y"], name="unsqueeze")], "g", [vi("x", [2])], [vi("y", None)],
    initializer=[const_i64("a", list(range(1, 9)))]))
for name, factor in (("resize_over_cap", 1e5), ("resize_scale_too_large", 1e9), ("resize_scale_negative", -2)):
    save(name, helper.make_graph(
        [helper.make_node("Resize", ["x", "", "sc"], ["y"], name="resize")], "g", [vi("x", [1, 1, 2, 2])], [vi("y", None)],
        initializer=[numpy_helper.from_array(np.array([1, 1, factor, factor], np.float32), "sc")]))


def binary(name, op, a, b, **attrs):
    save(name, helper.make_graph([helper.make_node(op, ["a", "b"], ["y"], name=op.lower(), **attrs)], "g",
                                 [vi("a", a), vi("b", b)], [vi("y", None)]))


binary("add_broadcast_mismatch", "Add", [2, 3], [4])
binary("matmul_inner_mismatch", "MatMul", [2, 3], [4, 5])
binary("matmul_scalar", "MatMul", [], [2])
binary("gemm_inner_mismatch", "Gemm", [2, 3], [4, 5])
binary("gemm_rank_3", "Gemm", [2, 3, 4], [4, 5])
binary("conv_channels_mismatch", "Conv", [1, 3, 8, 8], [4, 2, 3, 3])
binary("conv_kernel_too_big", "Conv", [1, 1, 2, 2], [1, 1, 5, 5])
binary("conv_group_not_dividing", "Conv", [1, 3, 8, 8], [4, 1, 3, 3], group=2)
binary("conv_rank_mismatch", "Conv", [1, 1, 8, 8], [1, 1, 3])
binary("conv_zero_kernel", "Conv", [1, 1, 8, 8], [1, 1, 0, 0])
binary("conv_strides_zero", "Conv", [1, 1, 8, 8], [1, 1, 3, 3], strides=[0, 1])
binary("conv_dilations_negative", "Conv", [1, 1, 8, 8], [1, 1, 3, 3], dilations=[-1, 1])
binary("conv_pads_count", "Conv", [1, 1, 8, 8], [1, 1, 3, 3], pads=[1, 1])
binary("conv_pads_negative", "Conv", [1, 1, 8, 8], [1, 1, 3, 3], pads=[-1, 0, 0, 0])
binary("conv_auto_pad_unknown", "Conv", [1, 1, 8, 8], [1, 1, 3, 3], auto_pad="SOMETIMES")
binary("concat_shapes_mismatch", "Concat", [2, 3], [2, 4], axis=0)
binary("concat_axis_out_of_range", "Concat", [2, 3], [2, 3], axis=2)
save("add_dtype_mismatch", helper.make_graph([helper.make_node("Add", ["a", "b"], ["y"], name="add")], "g",
                                            [vi("a", [2]), vi("b", [2], TensorProto.INT64)], [vi("y", None)]))


def unary(name, op, x, **attrs):
    save(name, helper.make_graph([helper.make_node(op, ["x"], ["y"], name=op.lower(), **attrs)], "g",
                                 [vi("x", x)], [vi("y", None)]))


# ---- attributes ------------------------------------------------------------------------
unary("transpose_perm_repeated", "Transpose", [2, 3], perm=[0, 0])
unary("transpose_perm_short", "Transpose", [2, 3, 4], perm=[1, 0])
unary("transpose_perm_out_of_range", "Transpose", [2, 3], perm=[0, 5])
unary("maxpool_no_kernel", "MaxPool", [1, 1, 4, 4])
unary("maxpool_zero_kernel", "MaxPool", [1, 1, 4, 4], kernel_shape=[0, 0])
unary("maxpool_kernel_rank", "MaxPool", [1, 1, 4, 4], kernel_shape=[2])
unary("maxpool_input_rank_2", "MaxPool", [4, 4], kernel_shape=[2, 2])
unary("averagepool_kernel_too_big", "AveragePool", [1, 1, 4, 4], kernel_shape=[5, 5])
unary("cast_to_999", "Cast", [2], to=999)
unary("cast_to_string", "Cast", [2], to=TensorProto.STRING)
unary("relu_unknown_attribute", "Relu", [2], alpha=1.0)
unary("leakyrelu_alpha_string", "LeakyRelu", [2], alpha="big")
unary("leakyrelu_alpha_list", "LeakyRelu", [2], alpha=[1.0, 2.0])
unary("softmax_axis_out_of_range", "Softmax", [2, 3], axis=2)
unary("softmax_axis_too_negative", "Softmax", [2, 3], axis=-3)
unary("flatten_axis_out_of_range", "Flatten", [2, 3], axis=3)
unary("argmax_axis_out_of_range", "ArgMax", [2, 3], axis=2)
unary("reducesum_axes_out_of_range", "ReduceMax", [2, 3], axes=[2])
unary("reducemax_axes_repeated", "ReduceMax", [2, 3], axes=[1, 1])
save("layernorm_axis_out_of_range", helper.make_graph(
    [helper.make_node("LayerNormalization", ["x", "s"], ["y"], name="ln", axis=4)], "g", [vi("x", [2, 3])], [vi("y", None)],
    initializer=[numpy_helper.from_array(np.ones(3, np.float32), "s")]))
unary("depth_to_space_zero", "DepthToSpace", [1, 4, 2, 2], blocksize=0)
unary("depth_to_space_not_dividing", "DepthToSpace", [1, 3, 2, 2], blocksize=2)
unary("space_to_depth_not_dividing", "SpaceToDepth", [1, 1, 3, 3], blocksize=2)
save("split_sizes_sum", helper.make_graph(
    [helper.make_node("Split", ["x", "s"], ["y", "z"], name="split", axis=0)], "g", [vi("x", [6])], [vi("y", None)],
    initializer=[const_i64("s", [2, 3])]))
save("split_axis_out_of_range", helper.make_graph(
    [helper.make_node("Split", ["x"], ["y", "z"], name="split", axis=1)], "g", [vi("x", [6])], [vi("y", None)]))
save("squeeze_non_one", helper.make_graph(
    [helper.make_node("Squeeze", ["x", "a"], ["y"], name="squeeze")], "g", [vi("x", [2, 3])], [vi("y", None)],
    initializer=[const_i64("a", [1])]))
save("unsqueeze_axes_repeated", helper.make_graph(
    [helper.make_node("Unsqueeze", ["x", "a"], ["y"], name="unsqueeze")], "g", [vi("x", [2])], [vi("y", None)],
    initializer=[const_i64("a", [0, 0])]))
save("topk_k_too_big", helper.make_graph(
    [helper.make_node("TopK", ["x", "k"], ["v", "i"], name="topk")], "g", [vi("x", [3])], [vi("v", None)],
    initializer=[const_i64("k", [5])]))
save("topk_k_negative", helper.make_graph(
    [helper.make_node("TopK", ["x", "k"], ["v", "i"], name="topk")], "g", [vi("x", [3])], [vi("v", None)],
    initializer=[const_i64("k", [-1])]))
save("slice_step_zero", helper.make_graph(
    [helper.make_node("Slice", ["x", "b", "e", "a", "st"], ["y"], name="slice")], "g", [vi("x", [4])], [vi("y", None)],
    initializer=[const_i64("b", [0]), const_i64("e", [4]), const_i64("a", [0]), const_i64("st", [0])]))
save("slice_axis_out_of_range", helper.make_graph(
    [helper.make_node("Slice", ["x", "b", "e", "a"], ["y"], name="slice")], "g", [vi("x", [4])], [vi("y", None)],
    initializer=[const_i64("b", [0]), const_i64("e", [4]), const_i64("a", [3])]))
save("cumsum_axis_out_of_range", helper.make_graph(
    [helper.make_node("CumSum", ["x", "a"], ["y"], name="cumsum")], "g", [vi("x", [4])], [vi("y", None)],
    initializer=[const_i64("a", 2)]))
twice = helper.make_node("Softmax", ["x"], ["y"], name="sm", axis=0)
twice.attribute.extend([helper.make_attribute("axis", 1)])
save("attribute_twice", helper.make_graph([twice], "g", [vi("x", [2, 3])], [vi("y", None)]))
save("gemm_transa_graph", helper.make_graph(
    [helper.make_node("Gemm", ["a", "b"], ["y"], name="gemm", transA=relu_graph())], "g",
    [vi("a", [2, 2]), vi("b", [2, 2])], [vi("y", None)]))
save("einsum_bad_syntax", helper.make_graph(
    [helper.make_node("Einsum", ["a", "b"], ["y"], name="e", equation="ij,jk->i!")], "g",
    [vi("a", [2, 2]), vi("b", [2, 2])], [vi("y", None)]))
save("einsum_term_count", helper.make_graph(
    [helper.make_node("Einsum", ["a", "b"], ["y"], name="e", equation="ij->ji")], "g",
    [vi("a", [2, 2]), vi("b", [2, 2])], [vi("y", None)]))
save("constant_without_value", helper.make_graph(
    [helper.make_node("Constant", [], ["y"], name="c")], "g", [], [vi("y", None)]))
save("constant_two_values", helper.make_graph(
    [helper.make_node("Constant", [], ["y"], name="c", value_float=1.0, value_int=2)], "g", [], [vi("y", None)]))
save("constant_sparse", helper.make_graph(
    [helper.make_node("Constant", [], ["y"], name="c", sparse_value=helper.make_sparse_tensor(
        helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0]), helper.make_tensor("i", TensorProto.INT64, [1], [0]), [2]))],
    "g", [], [vi("y", None)]))
save("batchnorm_scale_length", helper.make_graph(
    [helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], name="bn")], "g", [vi("x", [1, 3, 2, 2])],
    [vi("y", None)], initializer=[numpy_helper.from_array(np.ones(n, np.float32), k) for k, n in
                                  (("s", 2), ("b", 3), ("m", 3), ("v", 3))]))

# ---- indices ---------------------------------------------------------------------------
save("gather_too_negative", helper.make_graph(
    [helper.make_node("Gather", ["x", "i"], ["y"], name="gather")], "g", [vi("x", [3])], [vi("y", [1])],
    initializer=[const_i64("i", [-4])]))
save("gather_axis_out_of_range", helper.make_graph(
    [helper.make_node("Gather", ["x", "i"], ["y"], name="gather", axis=1)], "g", [vi("x", [3])], [vi("y", [1])],
    initializer=[const_i64("i", [0])]))
save("gather_float_indices", helper.make_graph(
    [helper.make_node("Gather", ["x", "i"], ["y"], name="gather")], "g", [vi("x", [3])], [vi("y", [1])],
    initializer=[numpy_helper.from_array(np.array([0.0], np.float32), "i")]))
save("gather_elements_out_of_range", helper.make_graph(
    [helper.make_node("GatherElements", ["x", "i"], ["y"], name="ge")], "g", [vi("x", [3])], [vi("y", [1])],
    initializer=[const_i64("i", [3])]))
save("gather_nd_out_of_range", helper.make_graph(
    [helper.make_node("GatherND", ["x", "i"], ["y"], name="gnd")], "g", [vi("x", [3, 2])], [vi("y", None)],
    initializer=[const_i64("i", [[7]])]))
save("scatter_elements_out_of_range", helper.make_graph(
    [helper.make_node("ScatterElements", ["x", "i", "u"], ["y"], name="se")], "g", [vi("x", [3])], [vi("y", None)],
    initializer=[const_i64("i", [9]), numpy_helper.from_array(np.array([1.0], np.float32), "u")]))

# ---- tensor data -----------------------------------------------------------------------
long_raw = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2], raw_data=b"\0" * 12)
floats3 = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2], float_data=[1, 2, 3])
wrong_field = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2], int64_data=[1, 2])
both = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2], float_data=[1, 2], raw_data=b"\0" * 8)
nameless_t = TensorProto(data_type=TensorProto.FLOAT, dims=[2], float_data=[1, 2])
undef_t = TensorProto(name="w", data_type=TensorProto.UNDEFINED, dims=[2])
string_t = TensorProto(name="w", data_type=TensorProto.STRING, dims=[1], string_data=[b"a"])
t999 = TensorProto(name="w", data_type=999, dims=[2])
segment = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2], float_data=[1, 2])
segment.segment.begin, segment.segment.end = 0, 1
for name, t in (("raw_data_long", long_raw), ("float_data_count", floats3), ("data_wrong_field", wrong_field),
                ("data_two_fields", both), ("initializer_unnamed", nameless_t), ("initializer_dtype_undefined", undef_t),
                ("initializer_string", string_t), ("initializer_dtype_999", t999), ("initializer_segment", segment)):
    save(name, helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"], name="add")], "g", [vi("x", [2])],
                                 [vi("y", [2])], initializer=[t]))
sparse_init = helper.make_sparse_tensor(helper.make_tensor("w", TensorProto.FLOAT, [1], [1.0]),
                                        helper.make_tensor("i", TensorProto.INT64, [1], [0]), [2])
save("sparse_initializer", helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"], name="add")], "g",
                                             [vi("x", [2])], [vi("y", [2])], sparse_initializer=[sparse_init]))
save("constant_raw_short", helper.make_graph(
    [helper.make_node("Constant", [], ["y"], name="c", value=TensorProto(
        name="v", data_type=TensorProto.FLOAT, dims=[4], raw_data=b"\0" * 4))], "g", [], [vi("y", None)]))

# ---- external data ---------------------------------------------------------------------
external("external_negative_offset", "weights.bin", offset=-8)
external("external_length_differs", "weights.bin", length=4)
external("external_missing_file", "nothere.bin")
external("external_folder", ".")
external("external_empty_location", "")
external("external_bad_offset", "weights.bin", offset="8x")
t = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2], data_location=TensorProto.EXTERNAL)
save("external_no_location", helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"], name="add")], "g",
                                               [vi("x", [2])], [vi("y", [2])], initializer=[t]))
external("external_inner_dotdot", "sub/../../onnx/weights.bin")


# ---- .npy arrays -----------------------------------------------------------------------
npy_dir = os.path.join(os.path.dirname(out), "npy")
os.makedirs(npy_dir, exist_ok=True)


def npy(name, header, data=b"", magic=b"\x93NUMPY", version=b"\x01\x00", pad=True):
    h = header.encode()
    if pad:
        h += b" " * ((64 - (10 + len(h) + 1) % 64) % 64) + b"\n"
    with open(os.path.join(npy_dir, name + ".npy"), "wb") as f:
        f.write(magic + version + len(h).to_bytes(2, "little") + h + data)


f32x2 = np.array([1, 2], np.float32).tobytes()
npy("ok_f32_2", "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", f32x2)
npy("bad_magic", "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", f32x2, magic=b"\x93NUMPX")
npy("version_9", "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", f32x2, version=b"\x09\x00")
with open(os.path.join(npy_dir, "header_past_end.npy"), "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + (4000).to_bytes(2, "little") + b"{'descr': '<f4'")
with open(os.path.join(npy_dir, "empty.npy"), "wb") as f:
    pass
with open(os.path.join(npy_dir, "truncated_preamble.npy"), "wb") as f:
    f.write(b"\x93NUM")
npy("header_not_dict", "['descr', '<f4']", f32x2)
npy("no_descr", "{'fortran_order': False, 'shape': (2,), }", f32x2)
npy("no_shape", "{'descr': '<f4', 'fortran_order': False, }", f32x2)
npy("descr_complex", "{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", f32x2 * 2)
npy("descr_object", "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", f32x2)
npy("descr_unknown", "{'descr': '<q9', 'fortran_order': False, 'shape': (2,), }", f32x2)
npy("fortran_order", "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 1), }", f32x2)
npy("shape_negative", "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", f32x2)
npy("shape_overflow", "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4), }", f32x2)
npy("shape_over_cap", "{'descr': '<f4', 'fortran_order': False, 'shape': (1073741824,), }", f32x2)
npy("shape_not_int", "{'descr': '<f4', 'fortran_order': False, 'shape': (2.5,), }", f32x2)
npy("shape_rank_9", "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1, 1, 1, 1, 2), }", f32x2)
npy("data_short", "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", f32x2)
npy("data_long", "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", f32x2)
npy("header_unterminated", "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), ", f32x2)
npy("descr_not_string", "{'descr': 4, 'fortran_order': False, 'shape': (2,), }", f32x2)
npy("big_endian_i64", "{'descr': '>i8', 'fortran_order': False, 'shape': (1,), }", b"\0" * 8)
# well-formed inputs for the run-time cases of expected.txt
np.save(os.path.join(npy_dir, "ok_f32_3.npy"), np.array([1, -2, 3], np.float32))
np.save(os.path.join(npy_dir, "ok_f32_3x2.npy"), np.arange(6, dtype=np.float32).reshape(3, 2))
np.save(os.path.join(npy_dir, "ok_i64_2.npy"), np.array([1, 2], np.int64))

# ---- .npz archives ---------------------------------------------------------------------
npz_dir = os.path.join(os.path.dirname(out), "npz")
os.makedirs(npz_dir, exist_ok=True)
good = os.path.join(npz_dir, "ok.npz")
np.savez(good, x=np.array([1, 2], np.float32))
np.savez_compressed(os.path.join(npz_dir, "ok_deflated.npz"), x=np.array([1, 2], np.float32))
stored = open(good, "rb").read()
deflated = open(os.path.join(npz_dir, "ok_deflated.npz"), "rb").read()


def npz(name, data):
    with open(os.path.join(npz_dir, name + ".npz"), "wb") as f:
        f.write(data)


def patch(data, offset, value, size=4):
    return data[:offset] + value.to_bytes(size, "little") + data[offset + size:]


eocd = stored.rindex(b"PK\x05\x06")
cd = int.from_bytes(stored[eocd + 16:eocd + 20], "little")
npz("not_zip", b"this is not a zip archive at all, only text" * 2)
npz("truncated", stored[: len(stored) // 2])
npz("cd_offset_past_end", patch(stored, eocd + 16, len(stored) + 100))
npz("cd_bad_signature", patch(stored, cd, 0x12345678))
npz("zip64_marker", patch(stored, eocd + 16, 0xFFFFFFFF))
npz("local_offset_past_end", patch(stored, cd + 42, len(stored) * 2))
npz("member_past_end", patch(stored, cd + 20, 1 << 20))
npz("method_bzip2", patch(stored, cd + 10, 12, 2))
d_cd = int.from_bytes(deflated[deflated.rindex(b"PK\x05\x06") + 16:][:4], "little")
d_local = int.from_bytes(deflated[d_cd + 42:d_cd + 46], "little")
d_data = d_local + 30 + int.from_bytes(deflated[d_local + 26:d_local + 28], "little") + \
    int.from_bytes(deflated[d_local + 28:d_local + 30], "little")
npz("inflated_over_cap", patch(deflated, d_cd + 24, 0xFFFFFFF0))  # a zip bomb's claim: 4 GiB from 60 bytes
npz("deflate_corrupt", deflated[:d_data] + bytes(b ^ 0x5A for b in deflated[d_data:d_data + 8]) + deflated[d_data + 8:])
np.savez(os.path.join(npz_dir, "no_member_x.npz"), y=np.array([1, 2], np.float32))
inner = stored.index(b"\x93NUMPY")
npz("member_bad_npy", stored[:inner] + b"\x93NUMPX" + stored[inner + 6:])
