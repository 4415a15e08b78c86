#!/usr/bin/python3
"""Exports a PyTorch network to ONNX with seeded random weights and runs it on a seeded input.

Usage: export_torchvision.py MODEL OUT.onnx [--input-npy IN.npy] [--output-npy OUT.npy]
                             [--batch N] [--resolution R] [--seed S] [--opset V]
                             [--fold-bn] [--fixed-batch]

MODEL is a torchvision classification model (resnet50, resnext50_32x4d, mobilenet_v2, googlenet,
inception_v3, ...) or `oddnet`, a small network with shapes no zoo model has. Weights are random
(nothing is downloaded): torchvision's own initialization under a fixed seed, then every
BatchNorm gets random running statistics and affine parameters far from identity, so a wrong
BatchNorm import cannot go unnoticed. The model is exported in eval mode; by default BatchNorm
nodes are kept (torch folds them into the convs in TrainingMode.EVAL exports; --fold-bn keeps
that behaviour). The batch dimension is symbolic unless --fixed-batch.

Must run with Debian's /usr/bin/python3 (python3-torch, python3-torchvision, python3-onnx).
"""
import argparse
import sys
import warnings

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision


class OddNet(nn.Module):
    """Shapes no zoo model has: groups with an odd number of channels each (3 groups of 5 and 7
    channels), dilation, stride 2 on an odd spatial size, a residual add, ReLU6, ceil-mode max
    pooling, average pooling counting padding, an asymmetric constant Pad, a Concat and a
    flatten through x.view(x.size(0), -1)."""

    def __init__(self, classes=10):
        super().__init__()
        self.stem = nn.Conv2d(3, 15, 3, stride=2, padding=1, bias=False)   # 15 = 3 groups of 5
        self.stem_bn = nn.BatchNorm2d(15)
        self.grouped = nn.Conv2d(15, 21, 3, padding=2, dilation=2, groups=3)  # 21 = 3 groups of 7
        self.grouped_bn = nn.BatchNorm2d(21)
        self.depthwise = nn.Conv2d(21, 21, (1, 5), padding=(0, 2), groups=21)
        self.project = nn.Conv2d(21, 15, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(15)
        self.branch_a = nn.Conv2d(15, 9, (3, 1), stride=2, padding=(1, 0))
        self.branch_b = nn.Conv2d(15, 6, 3, stride=2, padding=1, groups=3)
        self.pool = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.avg = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=True)
        self.fc = nn.Linear(15 * 4 * 5, classes)

    def forward(self, x):
        x = F.relu6(self.stem_bn(self.stem(x)))
        y = F.relu(self.grouped_bn(self.grouped(x)))
        y = F.relu6(self.depthwise(y))
        y = self.project_bn(self.project(y))
        x = F.relu(x + y)                                                     # residual add
        x = torch.cat([F.relu(self.branch_a(x)), F.relu6(self.branch_b(x))], 1)
        x = F.pad(x, (0, 2, 1, 0), value=0.25)                                # asymmetric Pad
        x = self.avg(self.pool(x))
        return self.fc(x.view(x.size(0), -1))


def build(name):
    if name == "oddnet":
        return OddNet(), 29
    kwargs = {"weights": None}
    resolution = 224
    if name == "googlenet":
        kwargs.update(aux_logits=False, transform_input=False, init_weights=True)
    elif name == "inception_v3":
        kwargs.update(aux_logits=False, transform_input=False, init_weights=True)
        resolution = 299
    return torchvision.models.get_model(name, **kwargs), resolution


def randomize_batch_norms(model, generator):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            with torch.no_grad():
                m.running_mean.copy_(torch.rand(c, generator=generator) * 0.4 - 0.2)
                m.running_var.copy_(torch.rand(c, generator=generator) + 0.5)
                m.weight.copy_(torch.rand(c, generator=generator) + 0.5)
                m.bias.copy_(torch.rand(c, generator=generator) * 0.4 - 0.2)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model")
    p.add_argument("out")
    p.add_argument("--input-npy")
    p.add_argument("--output-npy")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--resolution", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--opset", type=int, default=14)
    p.add_argument("--fold-bn", action="store_true")
    p.add_argument("--fixed-batch", action="store_true")
    a = p.parse_args()

    torch.manual_seed(a.seed)
    model, resolution = build(a.model)
    resolution = a.resolution or resolution
    randomize_batch_norms(model, torch.Generator().manual_seed(a.seed + 1))
    model.eval()

    x = torch.rand(a.batch, 3, resolution, resolution,
                   generator=torch.Generator().manual_seed(a.seed + 2)) * 2 - 1
    with torch.no_grad():
        y = model(x)
    # PRESERVE on a model in eval mode exports inference BatchNorms; the warning about constant
    # folding concerns models in training mode.
    warnings.filterwarnings("ignore", message="It is recommended that constant folding")
    dynamic = None if a.fixed_batch else {"input": {0: "batch"}, "output": {0: "batch"}}
    torch.onnx.export(
        model, x, a.out, opset_version=a.opset, input_names=["input"], output_names=["output"],
        dynamic_axes=dynamic,
        training=torch.onnx.TrainingMode.EVAL if a.fold_bn else torch.onnx.TrainingMode.PRESERVE,
        do_constant_folding=True)
    onnx.checker.check_model(onnx.load(a.out))
    if a.input_npy:
        np.save(a.input_npy, x.numpy().astype(np.float32))
    if a.output_npy:
        np.save(a.output_npy, y.numpy().astype(np.float32))


if __name__ == "__main__":
    sys.exit(main())
