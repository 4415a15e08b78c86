#!/usr/bin/python3
"""The PyTorch peer of `cardinal bench` (run by cardinal with Debian's /usr/bin/python3).

Builds the network cardinal exported (graph.json + weights.bin, see bench/peers/pytorch_peer.h),
loads cardinal's exact weights by layer name, compiles it the fastest way PyTorch 1.13 offers on a
CPU -- torch.jit.freeze + torch.jit.optimize_for_inference (oneDNN convolutions with fused
BatchNorm/ReLU/add) -- with torch.set_num_threads(N), warms up, then answers one command per line:

    run          -> "t SECONDS"  one forward pass timed here (time.perf_counter)
    output PATH  -> "ok"         the last output saved as .npy
    quit

Startup prints "ready DESCRIPTION", or "missing REASON" (torch or an equivalent model not
available); failures print "error MESSAGE" and exit 1. Everything else goes to stderr.

The model (--source zoo): the torchvision network of the same name (resnet50, resnet101,
resnext50_32x4d, resnext101_64x4d, resnext101_32x8d, mobilenet_v2; resnext101_32x4d through
torchvision's ResNet(Bottleneck, [3, 4, 23, 3], groups=32, width_per_group=4)), or, for xception,
the faithful PyTorch Xception below (Keras layer names and 'same' padding). With --source graph
(an ONNX import or any other graph) the module is built node by node from graph.json.
"""

import argparse
import json
import math
import os
import sys
import time

# The protocol gets a private copy of stdout; file descriptor 1 itself (and sys.stdout) go to
# stderr, so that nothing else -- a print, a library writing to fd 1 -- can corrupt it.
_PROTOCOL = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
sys.stdout = sys.stderr


def reply(line):
    _PROTOCOL.write(line.replace("\n", " ") + "\n")
    _PROTOCOL.flush()


class Missing(Exception):
    """The peer cannot run this network here (reported, not a failure)."""


TORCHVISION_MODELS = {
    "resnet50", "resnet101", "resnext50_32x4d", "resnext101_64x4d", "resnext101_32x8d",
    "mobilenet_v2",
}


def same_padding(size, kernel, stride):
    """TF/Keras 'same' padding along one axis: (before, after); the odd pixel goes after."""
    out = (size + stride - 1) // stride
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def build_xception(resolution, softmax=True):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class Xception(nn.Module):
        """keras.applications.Xception (include_top=True) in PyTorch, with Keras's layer names.

        SeparableConv2D is a depthwise 3x3 ('same', multiplier 1, no bias) then a pointwise 1x1
        (no bias): <name>_dw and <name>_pw, then BatchNormalization <name>_bn (epsilon 1e-3).
        The residual shortcuts are Keras's unnamed layers conv2d, conv2d_1, ... and
        batch_normalization, batch_normalization_1, .... MaxPooling2D(3, 2, 'same') pads
        asymmetrically when the size is even (block3_pool at 299): explicit F.pad with -inf.
        Without `softmax` the model ends at the logits (when cardinal's graph was cut there).
        """

        def __init__(self, resolution, softmax):
            super().__init__()
            self.softmax = softmax
            eps = 1e-3

            def conv(name, cin, cout, k, stride=1, groups=1, padding=0):
                self.add_module(name, nn.Conv2d(cin, cout, k, stride, padding, groups=groups,
                                                bias=False))

            def bn(name, c):
                self.add_module(name, nn.BatchNorm2d(c, eps=eps))

            def sep(name, cin, cout):
                conv(name + "_dw", cin, cin, 3, 1, cin, padding=1)
                conv(name + "_pw", cin, cout, 1)
                bn(name + "_bn", cout)

            conv("block1_conv1", 3, 32, 3, 2)
            bn("block1_conv1_bn", 32)
            conv("block1_conv2", 32, 64, 3)
            bn("block1_conv2_bn", 64)
            size = (resolution - 3) // 2 + 1 - 2

            self.pool_pads = []
            shortcut_index = [0]

            def shortcut(cin, cout):
                i = shortcut_index[0]
                shortcut_index[0] += 1
                suffix = "" if i == 0 else "_%d" % i
                conv("conv2d" + suffix, cin, cout, 1, 2)
                bn("batch_normalization" + suffix, cout)

            def pool():
                nonlocal size
                top, bottom = same_padding(size, 3, 2)
                self.pool_pads.append((top, bottom, top, bottom))  # square input
                size = (size + 1) // 2

            shortcut(64, 128)
            sep("block2_sepconv1", 64, 128)
            sep("block2_sepconv2", 128, 128)
            pool()
            cin = 128
            for block, cout in ((3, 256), (4, 728)):
                shortcut(cin, cout)
                sep("block%d_sepconv1" % block, cin, cout)
                sep("block%d_sepconv2" % block, cout, cout)
                pool()
                cin = cout
            for block in range(5, 13):
                for j in (1, 2, 3):
                    sep("block%d_sepconv%d" % (block, j), 728, 728)
            shortcut(728, 1024)
            sep("block13_sepconv1", 728, 728)
            sep("block13_sepconv2", 728, 1024)
            pool()
            sep("block14_sepconv1", 1024, 1536)
            sep("block14_sepconv2", 1536, 2048)
            self.predictions = nn.Linear(2048, 1000)

        def _sep(self, name, x):
            x = getattr(self, name + "_dw")(x)
            x = getattr(self, name + "_pw")(x)
            return getattr(self, name + "_bn")(x)

        def _pool(self, i, x):
            top, bottom, left, right = self.pool_pads[i]
            if top == bottom and left == right:
                return F.max_pool2d(x, 3, 2, (top, left))
            x = F.pad(x, (left, right, top, bottom), value=-math.inf)
            return F.max_pool2d(x, 3, 2)

        def forward(self, x):
            x = F.relu(self.block1_conv1_bn(self.block1_conv1(x)))
            x = F.relu(self.block1_conv2_bn(self.block1_conv2(x)))
            r = self.batch_normalization(self.conv2d(x))
            x = self._sep("block2_sepconv1", x)
            x = self._sep("block2_sepconv2", F.relu(x))
            x = self._pool(0, x) + r
            for i, block in enumerate((3, 4)):
                suffix = "_%d" % (i + 1)
                r = getattr(self, "batch_normalization" + suffix)(
                    getattr(self, "conv2d" + suffix)(x))
                x = self._sep("block%d_sepconv1" % block, F.relu(x))
                x = self._sep("block%d_sepconv2" % block, F.relu(x))
                x = self._pool(i + 1, x) + r
            for block in range(5, 13):
                r = x
                for j in (1, 2, 3):
                    x = self._sep("block%d_sepconv%d" % (block, j), F.relu(x))
                x = x + r
            r = self.batch_normalization_3(self.conv2d_3(x))
            x = self._sep("block13_sepconv1", F.relu(x))
            x = self._sep("block13_sepconv2", F.relu(x))
            x = self._pool(3, x) + r
            x = F.relu(self._sep("block14_sepconv1", x))
            x = F.relu(self._sep("block14_sepconv2", x))
            x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
            x = self.predictions(x)
            return F.softmax(x, dim=1) if self.softmax else x

    return Xception(resolution, softmax)


def build_graph_module(manifest):
    """A module computing the exported graph node by node (for ONNX imports and other graphs)."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    shapes = {manifest["input"]: manifest["input_shape"]}
    for n in manifest["nodes"]:
        shapes[n["output"]] = n["output_shape"]

    class GraphModule(nn.Module):
        def __init__(self):
            super().__init__()
            self.nodes = manifest["nodes"]
            self.by_name = {}
            for i, n in enumerate(self.nodes):
                op = n["op"]
                key = "n%d" % i
                m = None
                if op == "Conv2D":
                    cin = shapes[n["inputs"][0]][1]
                    t, l, b, r = n["pad"]
                    symmetric = t == b and l == r
                    m = nn.Conv2d(cin, n["out_channels"], tuple(n["kernel"]), tuple(n["stride"]),
                                  (t, l) if symmetric else 0, tuple(n["dilation"]), n["groups"],
                                  bias="bias" in n["tensors"])
                elif op == "BatchNorm":
                    m = nn.BatchNorm2d(shapes[n["inputs"][0]][1], eps=n["epsilon"])
                elif op == "Dense":
                    cin = shapes[n["inputs"][0]][1]
                    m = nn.Linear(cin, n["out_features"], bias="bias" in n["tensors"])
                elif op in ("MaxPool", "AveragePool"):
                    t, l, b, r = n["pad"]
                    kh, kw = n["kernel"]
                    if op == "AveragePool" and not (t == b and l == r and 2 * t <= kh
                                                    and 2 * l <= kw):
                        if not n["count_include_pad"] or n["ceil_mode"]:
                            raise Missing("layer %s: an average pool with asymmetric or large "
                                          "padding that excludes padding from its divisor has "
                                          "no PyTorch equivalent" % n["name"])
                elif op not in ("Relu", "Clip", "Add", "Pad", "GlobalAveragePool", "Flatten",
                                "Concat", "Softmax"):
                    raise Missing("layer %s: op %s has no PyTorch mapping here" % (n["name"], op))
                if m is not None:
                    self.add_module(key, m)
                    self.by_name[n["name"]] = key

        def forward(self, x):
            env = {manifest["input"]: x}
            for i, n in enumerate(self.nodes):
                op = n["op"]
                xs = [env[t] for t in n["inputs"]]
                if op == "Conv2D":
                    t, l, b, r = n["pad"]
                    y = xs[0]
                    if not (t == b and l == r):
                        y = F.pad(y, (l, r, t, b))
                    y = getattr(self, "n%d" % i)(y)
                elif op in ("BatchNorm", "Dense"):
                    y = getattr(self, "n%d" % i)(xs[0])
                elif op == "Relu":
                    y = F.relu(xs[0])
                elif op == "Clip":
                    y = F.hardtanh(xs[0], n["min"], n["max"])
                elif op == "Add":
                    y = xs[0] + xs[1]
                elif op == "MaxPool":
                    t, l, b, r = n["pad"]
                    (kh, kw), (sh, sw) = n["kernel"], n["stride"]
                    h, w = shapes[n["inputs"][0]][2:]
                    oh, ow = n["output_shape"][2:]
                    if t == b and l == r and 2 * t <= kh and 2 * l <= kw:
                        y = F.max_pool2d(xs[0], (kh, kw), (sh, sw), (t, l),
                                         ceil_mode=n["ceil_mode"])
                    else:
                        # Padding never wins; extend it on the far side to the IR's output size.
                        b = max(b, (oh - 1) * sh + kh - h - t)
                        r = max(r, (ow - 1) * sw + kw - w - l)
                        y = F.pad(xs[0], (l, r, t, b), value=-math.inf)
                        y = F.max_pool2d(y, (kh, kw), (sh, sw))
                elif op == "AveragePool":
                    t, l, b, r = n["pad"]
                    kh, kw = n["kernel"]
                    if t == b and l == r and 2 * t <= kh and 2 * l <= kw:
                        y = F.avg_pool2d(xs[0], tuple(n["kernel"]), tuple(n["stride"]), (t, l),
                                         ceil_mode=n["ceil_mode"],
                                         count_include_pad=n["count_include_pad"])
                    else:
                        y = F.avg_pool2d(F.pad(xs[0], (l, r, t, b)), tuple(n["kernel"]),
                                         tuple(n["stride"]), count_include_pad=True)
                elif op == "Pad":
                    t, l, b, r = n["pad"]
                    y = F.pad(xs[0], (l, r, t, b), value=n["value"])
                elif op == "GlobalAveragePool":
                    y = F.adaptive_avg_pool2d(xs[0], 1)
                elif op == "Flatten":
                    y = torch.flatten(xs[0], 1)
                elif op == "Concat":
                    y = torch.cat(xs, 1)
                elif op == "Softmax":
                    y = F.softmax(xs[0], dim=1)
                env[n["output"]] = y
            return env[manifest["output"]]

    return GraphModule()


def load_weights(model, manifest, weights, by_name=None):
    """Copies every weight of the exported graph into the module named like its layer."""
    import numpy as np
    import torch
    import torch.nn as nn

    modules = dict(model.named_modules())
    assigned = set()

    def set_param(module_name, attr, node, key, target):
        info = node["tensors"][key]
        values = weights[info["offset"]:info["offset"] + int(np.prod(info["shape"]))]
        tensor = torch.from_numpy(values.reshape(info["shape"]).copy())
        if tuple(tensor.shape) != tuple(target.shape):
            raise RuntimeError("layer %s: %s has shape %s in cardinal but %s in PyTorch" %
                               (node["name"], key, list(tensor.shape), list(target.shape)))
        with torch.no_grad():
            target.copy_(tensor)
        assigned.add(module_name + "." + attr)

    for n in manifest["nodes"]:
        if not n["tensors"]:
            continue
        name = by_name.get(n["name"], n["name"]) if by_name else n["name"]
        m = modules.get(name)
        if m is None:
            raise RuntimeError("layer %s (%s) has no module of that name in the PyTorch model" %
                               (n["name"], n["op"]))
        op = n["op"]
        if op == "Conv2D":
            if not isinstance(m, nn.Conv2d) or m.groups != n["groups"] or \
                    list(m.stride) != n["stride"] or list(m.kernel_size) != n["kernel"]:
                raise RuntimeError("layer %s: the PyTorch module %s differs from cardinal's "
                                   "convolution" % (n["name"], m))
            set_param(name, "weight", n, "weight", m.weight)
            if "bias" in n["tensors"]:
                if m.bias is None:
                    raise RuntimeError("layer %s has a bias in cardinal, not in PyTorch" %
                                       n["name"])
                set_param(name, "bias", n, "bias", m.bias)
        elif op == "BatchNorm":
            if not isinstance(m, nn.BatchNorm2d):
                raise RuntimeError("layer %s: %s is not a BatchNorm2d" % (n["name"], m))
            set_param(name, "weight", n, "gamma", m.weight)
            set_param(name, "bias", n, "beta", m.bias)
            set_param(name, "running_mean", n, "mean", m.running_mean)
            set_param(name, "running_var", n, "var", m.running_var)
            m.eps = float(n["epsilon"])
        elif op == "Dense":
            if not isinstance(m, nn.Linear):
                raise RuntimeError("layer %s: %s is not a Linear" % (n["name"], m))
            set_param(name, "weight", n, "weight", m.weight)
            if "bias" in n["tensors"]:
                set_param(name, "bias", n, "bias", m.bias)
    # Every parameter and statistic of the PyTorch model must come from cardinal.
    left = [k for k in model.state_dict()
            if not k.endswith("num_batches_tracked") and k not in assigned]
    if left:
        raise RuntimeError("%d PyTorch tensors have no counterpart in cardinal's graph, e.g. %s" %
                           (len(left), ", ".join(left[:3])))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--graph", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--source", choices=("zoo", "graph"), default="zoo")
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()

    try:
        import numpy as np
        import torch
    except Exception as e:  # noqa: BLE001 - any import failure means "not installed"
        reply("missing torch is not importable by %s (%s: %s); install python3-torch" %
              (sys.executable, type(e).__name__, e))
        return 0

    try:
        with open(args.graph) as f:
            manifest = json.load(f)
        weights = np.fromfile(os.path.join(os.path.dirname(args.graph), manifest["weights"]),
                              dtype="<f4")
        if weights.size != manifest["weights_floats"]:
            raise RuntimeError("weights.bin holds %d floats, graph.json says %d" %
                               (weights.size, manifest["weights_floats"]))
        x = torch.from_numpy(np.load(args.input).astype(np.float32))
        if list(x.shape) != manifest["input_shape"]:
            raise RuntimeError("input shape %s, graph wants %s" %
                               (list(x.shape), manifest["input_shape"]))

        torch.set_num_threads(max(1, args.threads))
        name = manifest["model"]
        by_name = None
        try:
            if args.source == "graph":
                model = build_graph_module(manifest)
                by_name = model.by_name
                what = "module built from cardinal's graph of %s" % name
                script = False
            elif name == "xception":
                nodes = manifest["nodes"]
                model = build_xception(manifest["input_shape"][2],
                                       softmax=bool(nodes) and nodes[-1]["op"] == "Softmax")
                what = "PyTorch Xception (Keras layout)"
                script = False
            else:
                try:
                    import torchvision
                    from torchvision.models.resnet import Bottleneck, ResNet
                except Exception as e:  # noqa: BLE001
                    raise Missing("torchvision is not importable (%s); install "
                                  "python3-torchvision" % e)
                if name == "resnext101_32x4d":
                    model = ResNet(Bottleneck, [3, 4, 23, 3], groups=32, width_per_group=4)
                elif name in TORCHVISION_MODELS and hasattr(torchvision.models, name):
                    model = getattr(torchvision.models, name)(weights=None)
                else:
                    raise Missing("torchvision %s has no model %s" % (torchvision.__version__,
                                                                       name))
                what = "torchvision %s %s" % (torchvision.__version__, name)
                script = True
        except Missing as e:
            reply("missing " + str(e))
            return 0
        load_weights(model, manifest, weights, by_name)
        model.eval()
        t_build = time.perf_counter()
        with torch.no_grad():
            eager = model(x)

            def compile_model(optimize):
                c = torch.jit.script(model) if script else torch.jit.trace(model, x)
                c = torch.jit.freeze(c.eval())
                return torch.jit.optimize_for_inference(c) if optimize else c

            def warm(c):
                y = None
                for _ in range(max(args.warmup, 3)):  # the profiling executor specializes first
                    y = c(x)
                return y

            # optimize_for_inference is checked against eager mode: PyTorch 1.13 computes some
            # in-place adds on oneDNN tensors whose channel count is not a multiple of 16 wrongly
            # (a ReLU output read by a conv and then added to its result). Then jit.freeze alone.
            mode = "jit.freeze + optimize_for_inference"
            compiled = compile_model(True)
            y = warm(compiled)
            wrong = float((y - eager).norm() / max(float(eager.norm()), 1e-30))
            if not wrong <= 1e-4:
                mode = ("jit.freeze only (optimize_for_inference disagreed with eager mode: "
                        "relative L2 %.2g)" % wrong)
                compiled = compile_model(False)
                y = warm(compiled)
        sys.stderr.write("pytorch_bench: built, compiled and warmed up in %.1f s\n" %
                         (time.perf_counter() - t_build))
        reply("ready torch %s, %s, %s, %d thread%s" %
              (torch.__version__, what, mode, torch.get_num_threads(),
               "" if torch.get_num_threads() == 1 else "s"))

        with torch.no_grad():
            for line in sys.stdin:
                command = line.strip()
                if command == "run":
                    t0 = time.perf_counter()
                    y = compiled(x)
                    reply("t %.9f" % (time.perf_counter() - t0))
                elif command.startswith("output "):
                    np.save(command[len("output "):], y.contiguous().numpy().astype(np.float32))
                    reply("ok")
                elif command == "quit":
                    break
                else:
                    reply("error unknown command '%s'" % command)
        return 0
    except Exception as e:  # noqa: BLE001 - reported to cardinal, which fails with it
        import traceback
        traceback.print_exc()
        reply("error %s: %s" % (type(e).__name__, e))
        return 1


if __name__ == "__main__":
    sys.exit(main())
