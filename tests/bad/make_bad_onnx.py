#!/usr/bin/python3
"""Writes the malformed ONNX models of tests/bad/onnx (committed; run by a developer
with Debian's python3-onnx). Each is small and broken in one way; test_onnx.c holds
the message kiln must give for each. A few well-formed ones check the features next to
the broken ones (external data, old-opset Softmax)."""
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
