#!/usr/bin/python3
"""Writes small hand-built ONNX models for cardinal's importer tests and fuzzer.

Usage: make_models.py ops OUTDIR      valid models exercising every supported op form, each with
                                      NAME.onnx, NAME.input.npy and NAME.output.npy (the expected
                                      output, computed with torch.nn.functional)
       make_models.py bad OUTDIR      models the importer must refuse with a clear message
       make_models.py corpus OUTDIR   the fuzzer's seed corpus: the `ops` models alone, and a tiny
                                      PyTorch export full of shape arithmetic

The `ops` models cover what torch.onnx.export does not produce: auto_pad, Clip with attribute
(opset 9) and Constant-node inputs, Gemm with transB=0 / alpha / beta, MatMul + Add, Pad and
AveragePool with asymmetric pads and count_include_pad, Reshape through a Shape/Gather/Unsqueeze/
Concat subgraph, negative Concat axes, a standalone BatchNormalization, Identity and Dropout.
Deterministic: the same files on every run. Needs Debian's /usr/bin/python3 (python3-onnx,
python3-torch, python3-numpy).
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

F32 = TensorProto.FLOAT


def rng(seed):
    return np.random.default_rng(seed)


def rand(r, *shape, lo=-1.0, hi=1.0):
    return r.uniform(lo, hi, size=shape).astype(np.float32)


def init(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def model(nodes, inputs, outputs, initializers, opset, name="test"):
    graph = helper.make_graph(nodes, name, inputs, outputs, initializers)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                          producer_name="cardinal-tests")
    m.ir_version = 7 if opset <= 15 else 8
    return m


def tensor_info(name, shape):
    # No shape given: rank 4, every dimension symbolic (ONNX requires a shape on graph outputs).
    return helper.make_tensor_value_info(name, F32, shape or ["d0", "d1", "d2", "d3"])


def same_pads(size, kernel, stride, dilation, upper):
    out = (size + stride - 1) // stride
    total = max(0, (out - 1) * stride + (kernel - 1) * dilation + 1 - size)
    small, large = total // 2, total - total // 2
    return (small, large) if upper else (large, small)


# ------------------------------------------------------------------------------------------------
# Valid models and their expected outputs


def conv_autopad():
    """Conv with auto_pad SAME_UPPER (stride 2, even kernel), SAME_LOWER (grouped), VALID
    (dilated), MaxPool with SAME_UPPER, no bias on one conv."""
    import torch
    import torch.nn.functional as F
    r = rng(1)
    x = rand(r, 1, 5, 13, 11)
    w1, b1 = rand(r, 6, 5, 4, 4), rand(r, 6)
    w2 = rand(r, 6, 3, 4, 3)
    w3, b3 = rand(r, 4, 6, 3, 3), rand(r, 4)
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="same_upper",
                         auto_pad="SAME_UPPER", strides=[2, 2], kernel_shape=[4, 4]),
        helper.make_node("Conv", ["c1", "w2"], ["c2"], name="same_lower", auto_pad="SAME_LOWER",
                         group=2),
        # No node name: the layer is named after its weight, as for older PyTorch exports.
        helper.make_node("Conv", ["c2", "head.conv.weight", "b3"], ["c3"], auto_pad="VALID",
                         dilations=[2, 1]),
        helper.make_node("MaxPool", ["c3"], ["y"], name="pool_same", auto_pad="SAME_UPPER",
                         kernel_shape=[3, 2], strides=[2, 2]),
    ]
    m = model(nodes, [tensor_info("x", [1, 5, 13, 11])], [tensor_info("y", None)],
              [init("w1", w1), init("b1", b1), init("w2", w2), init("head.conv.weight", w3),
               init("b3", b3)], 11)

    t = torch.from_numpy
    def pad_same(v, k, s, d, upper):
        ph = same_pads(v.shape[2], k[0], s[0], d[0], upper)
        pw = same_pads(v.shape[3], k[1], s[1], d[1], upper)
        return (pw[0], pw[1], ph[0], ph[1])
    v = t(x)
    v = F.conv2d(F.pad(v, pad_same(v, (4, 4), (2, 2), (1, 1), True)), t(w1), t(b1), stride=2)
    v = F.conv2d(F.pad(v, pad_same(v, (4, 3), (1, 1), (1, 1), False)), t(w2), groups=2)
    v = F.conv2d(v, t(w3), t(b3), dilation=(2, 1))
    v = F.max_pool2d(F.pad(v, pad_same(v, (3, 2), (2, 2), (1, 1), True), value=-np.inf),
                     (3, 2), stride=2)
    return m, x, v.numpy()


def clip_constants():
    """Clip with min from a Constant node and max from an initializer, max only, min only
    (a ReLU), then Identity and Dropout (opset 12: ratio input)."""
    import torch
    import torch.nn.functional as F
    r = rng(2)
    x = rand(r, 1, 3, 9, 9, lo=-3, hi=3)
    w = rand(r, 4, 3, 3, 3)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Constant", [], ["lo"], name="lo_const",
                         value=helper.make_tensor("lo", F32, [], [-0.75])),
        helper.make_node("Clip", ["c", "lo", "hi"], ["c1"], name="clip_both"),
        helper.make_node("Identity", ["c1"], ["c2"], name="identity"),
        helper.make_node("Conv", ["c2", "w2"], ["c3"], name="conv2"),
        helper.make_node("Clip", ["c3", "", "hi2"], ["c4"], name="clip_max"),
        helper.make_node("Dropout", ["c4", "ratio"], ["c5"], name="dropout"),
        helper.make_node("Conv", ["c5", "w3"], ["c6"], name="conv3"),
        helper.make_node("Clip", ["c6", "zero"], ["y"], name="clip_min"),
    ]
    w2, w3 = rand(r, 5, 4, 1, 1), rand(r, 3, 5, 3, 3)
    inits = [init("w", w), init("hi", np.array(0.5, np.float32)), init("w2", w2),
             init("hi2", np.array(0.25, np.float32)), init("ratio", np.array(0.5, np.float32)),
             init("w3", w3), init("zero", np.array(0.0, np.float32))]
    m = model(nodes, [tensor_info("x", [1, 3, 9, 9])], [tensor_info("y", None)], inits, 12)
    t = torch.from_numpy
    v = F.conv2d(t(x), t(w), padding=1).clamp(-0.75, 0.5)
    v = F.conv2d(v, t(w2)).clamp(max=0.25)
    v = F.relu(F.conv2d(v, t(w3)))
    return m, x, v.numpy()


def dense_forms():
    """Batch 2 (symbolic): Reshape through Shape/Gather/Unsqueeze/Concat, Gemm with transB=0,
    alpha, beta and a [1, N] bias, Gemm with transB=1 and a scalar bias, MatMul + Add,
    Softmax with opset 13's default axis."""
    import torch
    r = rng(3)
    x = rand(r, 2, 4, 3, 3)
    g1, c1 = rand(r, 36, 7), rand(r, 1, 7)
    g2, c2 = rand(r, 5, 7), rand(r, 1)
    mm, bias = rand(r, 5, 6), rand(r, 6)
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"], name="shape"),
        helper.make_node("Gather", ["shape", "zero"], ["n"], name="gather", axis=0),
        helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"], name="unsqueeze"),
        helper.make_node("Concat", ["n1", "minus_one"], ["target"], name="target", axis=0),
        helper.make_node("Reshape", ["x", "target"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "g1", "c1"], ["d1"], name="gemm_plain", alpha=0.5,
                         beta=2.0),
        helper.make_node("Gemm", ["d1", "g2", "c2"], ["d2"], name="gemm_transposed", transB=1),
        helper.make_node("MatMul", ["d2", "mm"], ["d3"], name="matmul"),
        helper.make_node("Add", ["d3", "bias"], ["d4"], name="matmul_bias"),
        helper.make_node("Softmax", ["d4"], ["y"], name="softmax"),
    ]
    inits = [init("zero", np.array(0, np.int64)), init("axes0", np.array([0], np.int64)),
             init("minus_one", np.array([-1], np.int64)), init("g1", g1), init("c1", c1),
             init("g2", g2), init("c2", c2), init("mm", mm), init("bias", bias)]
    m = model(nodes, [tensor_info("x", ["N", 4, 3, 3])], [tensor_info("y", ["N", 6])], inits, 13)
    t = torch.from_numpy
    v = t(x).reshape(2, -1)
    v = 0.5 * v @ t(g1) + 2.0 * t(c1)
    v = v @ t(g2).T + t(c2)
    v = torch.softmax(v @ t(mm) + t(bias), dim=-1)
    return m, x, v.numpy()


def pool_pad_forms():
    """Pad with asymmetric pads and a constant value (opset 11 inputs), AveragePool with
    count_include_pad and ceil_mode, AveragePool with asymmetric pads excluding padding,
    MaxPool with ceil_mode and padding."""
    import torch
    import torch.nn.functional as F
    r = rng(4)
    x = rand(r, 1, 3, 10, 9)
    nodes = [
        helper.make_node("Pad", ["x", "pads", "value"], ["p"], name="pad", mode="constant"),
        helper.make_node("AveragePool", ["p"], ["a1"], name="avg_ceil_incl", kernel_shape=[3, 3],
                         strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1, count_include_pad=1),
        helper.make_node("AveragePool", ["a1"], ["a2"], name="avg_asym_excl", kernel_shape=[2, 2],
                         pads=[1, 0, 0, 1]),
        helper.make_node("MaxPool", ["a2"], ["y"], name="max_ceil", kernel_shape=[3, 3],
                         strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1),
    ]
    inits = [init("pads", np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64)),
             init("value", np.array(0.5, np.float32))]
    m = model(nodes, [tensor_info("x", [1, 3, 10, 9])], [tensor_info("y", None)], inits, 11)
    t = torch.from_numpy
    v = F.pad(t(x), (2, 1, 1, 2), value=0.5)
    v = F.avg_pool2d(v, 3, 2, 1, ceil_mode=True, count_include_pad=True)
    # Asymmetric padding (top 1, left 0, bottom 0, right 1), dividing by the taps inside.
    padded = F.pad(v, (0, 1, 1, 0))
    ones = F.pad(torch.ones_like(v), (0, 1, 1, 0))
    v = F.avg_pool2d(padded, 2, 1) / F.avg_pool2d(ones, 2, 1)
    v = F.max_pool2d(v, 3, 2, 1, ceil_mode=True)
    return m, x, v.numpy()


def concat_bias_bn():
    """Opset 17: Concat with a negative axis, Add of a per-channel constant, a BatchNormalization
    that follows no conv, Relu."""
    import torch
    import torch.nn.functional as F
    r = rng(5)
    x = rand(r, 1, 4, 7, 7)
    wa, wb = rand(r, 3, 4, 1, 1), rand(r, 5, 4, 3, 3)
    shift = rand(r, 8, 1, 1)
    gamma, beta = rand(r, 8, lo=0.5, hi=1.5), rand(r, 8)
    mean, var = rand(r, 8), rand(r, 8, lo=0.5, hi=1.5)
    nodes = [
        helper.make_node("Conv", ["x", "wa"], ["a"], name="branch_a"),
        helper.make_node("Conv", ["x", "wb"], ["b"], name="branch_b", pads=[1, 1, 1, 1]),
        helper.make_node("Concat", ["a", "b"], ["c"], name="concat", axis=-3),
        helper.make_node("Add", ["shift", "c"], ["s"], name="shift"),
        helper.make_node("BatchNormalization", ["s", "gamma", "beta", "mean", "var"], ["bn"],
                         name="bn", epsilon=1e-3),
        helper.make_node("Relu", ["bn"], ["y"], name="relu"),
    ]
    inits = [init("wa", wa), init("wb", wb), init("shift", shift), init("gamma", gamma),
             init("beta", beta), init("mean", mean), init("var", var)]
    m = model(nodes, [tensor_info("x", [1, 4, 7, 7])], [tensor_info("y", None)], inits, 17)
    t = torch.from_numpy
    v = torch.cat([F.conv2d(t(x), t(wa)), F.conv2d(t(x), t(wb), padding=1)], 1) + t(shift)
    v = F.relu(F.batch_norm(v, t(mean), t(var), t(gamma), t(beta), eps=1e-3))
    return m, x, v.numpy()


def legacy_opset9():
    """Opset 9: Clip and Pad with attributes, BatchNormalization after a conv, Flatten, Gemm,
    Softmax over axis 1."""
    import torch
    import torch.nn.functional as F
    r = rng(6)
    x = rand(r, 1, 3, 8, 8)
    w = rand(r, 6, 3, 3, 3)
    gamma, beta = rand(r, 6, lo=0.5, hi=1.5), rand(r, 6)
    mean, var = rand(r, 6), rand(r, 6, lo=0.5, hi=1.5)
    fc, fb = rand(r, 4, 6 * 3 * 3, lo=-0.2, hi=0.2), rand(r, 4)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["bn"],
                         name="bn"),
        helper.make_node("Clip", ["bn"], ["clip"], name="clip", min=-0.5, max=1.5),
        helper.make_node("Pad", ["clip"], ["pad"], name="pad", pads=[0, 0, 1, 0, 0, 0, 0, 1],
                         value=-0.25),
        helper.make_node("MaxPool", ["pad"], ["pool"], name="pool", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Flatten", ["pool"], ["flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc", "fb"], ["logits"], name="fc", transB=1),
        helper.make_node("Softmax", ["logits"], ["y"], name="softmax", axis=1),
    ]
    inits = [init("w", w), init("gamma", gamma), init("beta", beta), init("mean", mean),
             init("var", var), init("fc", fc), init("fb", fb)]
    m = model(nodes, [tensor_info("x", [1, 3, 8, 8])], [tensor_info("y", None)], inits, 9)
    m.ir_version = 4
    t = torch.from_numpy
    v = F.batch_norm(F.conv2d(t(x), t(w)), t(mean), t(var), t(gamma), t(beta), eps=1e-5)
    v = F.pad(v.clamp(-0.5, 1.5), (0, 1, 1, 0), value=-0.25)
    v = F.max_pool2d(v, 2, 2).flatten(1)
    v = torch.softmax(v @ t(fc).T + t(fb), dim=1)
    return m, x, v.numpy()


OPS = [conv_autopad, clip_constants, dense_forms, pool_pad_forms, concat_bias_bn, legacy_opset9]


def torch_shape_arithmetic():
    """A tiny PyTorch network exported with a symbolic batch: F.pad and x.view(x.size(0), -1)
    export as constant subgraphs (ConstantOfShape, Slice, Transpose, Cast, Shape, Gather,
    Unsqueeze, Concat) that the importer folds. For the fuzz corpus."""
    import io
    import warnings
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 3, stride=2, groups=1)
            self.bn = nn.BatchNorm2d(2)
            self.fc = nn.Linear(2 * 3 * 4, 3)

        def forward(self, x):
            x = F.relu6(self.bn(self.conv(x)))
            x = F.avg_pool2d(F.pad(x, (1, 0, 0, 1), value=0.5), 2, 1)
            return torch.softmax(self.fc(x.view(x.size(0), -1)), 1)

    warnings.simplefilter("ignore")  # torch's notes about constant folding and Slice steps
    torch.manual_seed(0)
    net = Tiny().eval()
    buffer = io.BytesIO()
    torch.onnx.export(net, torch.zeros(1, 3, 7, 9), buffer, opset_version=13,
                      input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                      training=torch.onnx.TrainingMode.PRESERVE)
    return onnx.load_from_string(buffer.getvalue())


# ------------------------------------------------------------------------------------------------
# Models to refuse


def conv_model(x_shape, w_shape, group=1, opset=13, conv_inputs=("x", "w"), inits=True,
               extra_nodes=(), output="y", pad_node=None):
    r = rng(7)
    nodes = [helper.make_node("Conv", list(conv_inputs), ["y" if not extra_nodes else "c"],
                              name="conv", group=group)]
    nodes += list(extra_nodes)
    initializers = [init("w", rand(r, *w_shape))] if inits else []
    return model(nodes, [tensor_info("x", x_shape)], [tensor_info(output, None)], initializers,
                 opset)


def bad_models():
    r = rng(8)
    out = {}
    # Two unsupported op types, one of them on two nodes.
    lstm_w, lstm_r = rand(r, 1, 12, 16), rand(r, 1, 12, 3)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", strides=[2, 2]),
        helper.make_node("Sin", ["c"], ["s1"], name="sine_1"),
        helper.make_node("Sin", ["s1"], ["s2"], name="sine_2"),
        helper.make_node("Reshape", ["s2", "seq_shape"], ["seq"], name="to_sequence"),
        helper.make_node("LSTM", ["seq", "lstm_w", "lstm_r"], ["y"], name="lstm", hidden_size=3),
    ]
    inits = [init("w", rand(r, 4, 3, 3, 3)), init("seq_shape", np.array([1, 1, 16], np.int64)),
             init("lstm_w", lstm_w), init("lstm_r", lstm_r)]
    out["unsupported_ops"] = model(nodes, [tensor_info("x", [1, 3, 5, 5])],
                                   [tensor_info("y", None)], inits, 13)
    # A weight of [4, 6, 3, 3] for 6 input channels in 2 groups: must be [4, 3, 3, 3].
    out["group_mismatch"] = conv_model([1, 6, 8, 8], [4, 6, 3, 3], group=2)
    # The conv's weight is neither an initializer nor an input.
    out["missing_initializer"] = conv_model([1, 3, 8, 8], [4, 3, 3, 3], inits=False)
    # A rank-3 input (a 1-D convolution).
    out["wrong_rank"] = conv_model([1, 3, 16], [4, 3, 3])
    # A weight declared as a graph input without an initializer (old exporters): two inputs.
    m = conv_model([1, 3, 8, 8], [4, 3, 3, 3], inits=False)
    m.graph.input.append(tensor_info("w", [4, 3, 3, 3]))
    out["weight_as_input"] = m
    # Fixed batch 1 (imported with batch 2 by the test).
    out["fixed_batch"] = conv_model([1, 3, 8, 8], [4, 3, 3, 3])
    # Symbolic height.
    out["symbolic_height"] = conv_model([1, 3, "H", 8], [4, 3, 3, 3])
    # Reflect padding.
    pad = helper.make_node("Pad", ["c", "pads"], ["y"], name="reflect", mode="reflect")
    m = conv_model([1, 3, 8, 8], [4, 3, 3, 3], extra_nodes=[pad])
    m.graph.initializer.append(init("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)))
    out["reflect_pad"] = m
    # Opset 6 (cardinal imports 7 to 17).
    out["old_opset"] = conv_model([1, 3, 8, 8], [4, 3, 3, 3], opset=6)
    return out


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("ops", "bad", "corpus"):
        sys.exit(__doc__)
    what, outdir = sys.argv[1], sys.argv[2]
    os.makedirs(outdir, exist_ok=True)
    if what == "bad":
        for name, m in bad_models().items():
            onnx.save(m, os.path.join(outdir, name + ".onnx"))
        with open(os.path.join(outdir, "not_onnx.onnx"), "w") as f:
            f.write("This is a text file, not an ONNX model.\n")
        open(os.path.join(outdir, "empty.onnx"), "w").close()
        return
    if what == "corpus":
        onnx.save(torch_shape_arithmetic(), os.path.join(outdir, "torch_shape_arithmetic.onnx"))
    for make in OPS:
        m, x, y = make()
        # Declare the output's real shape (a symbolic batch stays symbolic).
        dims = m.graph.output[0].type.tensor_type.shape.dim
        del dims[:]
        for k, d in enumerate(y.shape):
            batch = m.graph.input[0].type.tensor_type.shape.dim[0]
            if k == 0 and batch.dim_param:
                dims.add().dim_param = batch.dim_param
            else:
                dims.add().dim_value = d
        onnx.checker.check_model(m)
        onnx.save(m, os.path.join(outdir, make.__name__ + ".onnx"))
        if what == "ops":
            np.save(os.path.join(outdir, make.__name__ + ".input.npy"), x)
            np.save(os.path.join(outdir, make.__name__ + ".output.npy"), y.astype(np.float32))


if __name__ == "__main__":
    main()
