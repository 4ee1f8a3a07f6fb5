#!/usr/bin/python3
"""Writes tests/models/opsets: one small model per older ONNX form of an op that kiln's
importer rewrites (attributes that later became inputs, Softmax's 2-D coercion before
opset 13, Upsample, opset-10 Resize, ...), with inputs and outputs computed independently
with numpy, in the ONNX backend-test layout that tests/onnx/conformance reads. Run by a
developer with Debian's python3-onnx; the outputs are committed."""
import os

import numpy as np
from onnx import TensorProto, helper, mapping, numpy_helper

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "opsets")
rng = np.random.default_rng(7)
names = []


def case(name, opset, nodes, inputs, outputs, initializers=(), graph_inputs=None):
    """inputs/outputs: lists of (name, array); graph_inputs: extra ValueInfos (weights)."""
    def vi(n, a):
        return helper.make_tensor_value_info(n, mapping.NP_TYPE_TO_TENSOR_TYPE[a.dtype], a.shape)
    g_inputs = [vi(n, a) for n, a in inputs] + list(graph_inputs or [])
    graph = helper.make_graph(nodes, name, g_inputs, [vi(n, a) for n, a in outputs],
                              initializer=[numpy_helper.from_array(a, n) for n, a in initializers])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="kiln-tests")
    model.ir_version = 7
    folder = os.path.join(root, name)
    os.makedirs(os.path.join(folder, "test_data_set_0"), exist_ok=True)
    with open(os.path.join(folder, "model.onnx"), "wb") as f:
        f.write(model.SerializeToString())
    for kind, items in (("input", inputs), ("output", outputs)):
        for i, (n, a) in enumerate(items):
            with open(os.path.join(folder, "test_data_set_0", f"{kind}_{i}.pb"), "wb") as f:
                f.write(numpy_helper.from_array(a, n).SerializeToString())
    names.append(name)


def f32(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def softmax2d(x, axis):
    m = x.reshape(int(np.prod(x.shape[:axis])), -1).astype(np.float64)
    e = np.exp(m - m.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).reshape(x.shape).astype(np.float32)


x = f32(2, 3, 4)
case("softmax_opset11_axis1", 11, [helper.make_node("Softmax", ["x"], ["y"], axis=1)], [("x", x)], [("y", softmax2d(x, 1))])
case("logsoftmax_opset9_default", 9, [helper.make_node("LogSoftmax", ["x"], ["y"])], [("x", x)], [("y", np.log(softmax2d(x, 1)))])
case("softmax_opset1_axis0", 1, [helper.make_node("Softmax", ["x"], ["y"], axis=0)], [("x", x)], [("y", softmax2d(x, 0))])
flat = x.reshape(2, 12)
hard = np.zeros_like(flat)
hard[np.arange(2), flat.argmax(axis=1)] = 1
case("hardmax_opset11_axis1", 11, [helper.make_node("Hardmax", ["x"], ["y"], axis=1)], [("x", x)], [("y", hard.reshape(x.shape))])
case("clip_opset6_attrs", 6, [helper.make_node("Clip", ["x"], ["y"], min=-0.5, max=0.5)], [("x", x)], [("y", np.clip(x, -0.5, 0.5))])
case("slice_opset9_attrs", 9, [helper.make_node("Slice", ["x"], ["y"], starts=[1, -3], ends=[3, 100], axes=[2, 1])],
     [("x", x)], [("y", x[:, -3:, 1:3])])
case("pad_opset2_attrs", 2, [helper.make_node("Pad", ["x"], ["y"], pads=[0, 1, 2, 0, 0, 1], value=1.5)],
     [("x", x)], [("y", np.pad(x, ((0, 0), (1, 0), (2, 1)), constant_values=1.5))])
order = np.argsort(-x, axis=-1, kind="stable")[..., :2]
case("topk_opset1_attr", 1, [helper.make_node("TopK", ["x"], ["v", "i"], k=2)], [("x", x)],
     [("v", np.take_along_axis(x, order, -1)), ("i", order.astype(np.int64))])
case("reducesum_opset11_axes_attr", 11, [helper.make_node("ReduceSum", ["x"], ["y"], axes=[0, 2], keepdims=0)],
     [("x", x)], [("y", x.sum(axis=(0, 2)))])
case("split_opset11_attr", 11, [helper.make_node("Split", ["x"], ["a", "b"], axis=2, split=[1, 3])],
     [("x", x)], [("a", x[:, :, :1]), ("b", x[:, :, 1:])])
case("unsqueeze_squeeze_opset11_attrs", 11, [helper.make_node("Unsqueeze", ["x"], ["u"], axes=[0, 3]),
                                            helper.make_node("Squeeze", ["u"], ["y"], axes=[0])],
     [("x", x)], [("y", x[:, :, None, :])])
case("dropout_opset10_ratio", 10, [helper.make_node("Dropout", ["x"], ["y"], ratio=0.3)], [("x", x)], [("y", x)])
img = f32(1, 2, 2, 3)
case("upsample_opset7_nearest", 7, [helper.make_node("Upsample", ["x"], ["y"], mode="nearest", scales=[1.0, 1.0, 2.0, 3.0])],
     [("x", img)], [("y", img.repeat(2, axis=2).repeat(3, axis=3))])
case("upsample_opset9_nearest", 9, [helper.make_node("Upsample", ["x", "s"], ["y"], mode="nearest")],
     [("x", img)], [("y", img.repeat(2, axis=2).repeat(2, axis=3))],
     initializers=[("s", np.array([1, 1, 2, 2], np.float32))])
case("resize_opset10_nearest", 10, [helper.make_node("Resize", ["x", "s"], ["y"], mode="nearest")],
     [("x", img)], [("y", img.repeat(3, axis=2))], initializers=[("s", np.array([1, 1, 3, 1], np.float32))])
row = np.array([[[[1, 3, 7]]]], np.float32)
# asymmetric linear, scale 2: x_orig = x / 2, clamped at the edge
case("upsample_opset9_linear", 9, [helper.make_node("Upsample", ["x", "s"], ["y"], mode="linear")],
     [("x", row)], [("y", np.array([[[[1, 2, 3, 5, 7, 7]]]], np.float32))],
     initializers=[("s", np.array([1, 1, 1, 2], np.float32))])
w = f32(4, 3)
case("initializer_also_input", 13, [helper.make_node("MatMul", ["x", "w"], ["y"])], [("x", x)],
     [("y", (x.astype(np.float64) @ w).astype(np.float32))], initializers=[("w", w)],
     graph_inputs=[helper.make_tensor_value_info("w", TensorProto.FLOAT, [4, 3])])
c = 3
bn = [f32(c), f32(c), f32(c), np.abs(f32(c)) + 0.5]
xb = f32(2, c, 2, 2)
ref = (xb - bn[2][None, :, None, None]) / np.sqrt(bn[3][None, :, None, None] + 1e-5) * bn[0][None, :, None, None] + bn[1][None, :, None, None]
case("batchnorm_opset7_spatial", 7, [helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], spatial=1)],
     [("x", xb)], [("y", ref.astype(np.float32))],
     initializers=[("s", bn[0]), ("b", bn[1]), ("m", bn[2]), ("v", bn[3])])

with open(os.path.join(root, "scope.txt"), "w") as f:
    f.write("# older ONNX forms (tests/models/make_opset_models.py) against numpy\n" + "\n".join(names) + "\n")
