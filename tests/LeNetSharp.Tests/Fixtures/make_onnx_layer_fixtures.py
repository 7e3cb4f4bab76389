"""Writes the ONNX import fixtures of OnnxLayerImportTests with the real exporter (torch.onnx.export, PyTorch 1.13).

Run from this folder with Debian's python3-torch, python3-numpy and python3-onnx:
    /usr/bin/python3 make_onnx_layer_fixtures.py

Two small random networks in evaluation mode, every BatchNorm given random γ, β and running statistics:

  layers_gap      (N, 3, 12, 10) → Conv 3x3 pad 1 → BatchNorm2d → LeakyReLU(0.1) → MaxPool2d(3, stride 2, pad 1)
                  → Dropout(0.3) → Conv 3x3 pad 1 → BatchNorm2d(eps 1e-3, momentum 0.2, affine=False) → Tanh
                  → AvgPool2d(3, stride 1, pad 1) → Sigmoid → AvgPool2d(2) → MaxPool2d(2, stride 1)
                  → AdaptiveAvgPool2d(1) → Flatten → Linear → BatchNorm1d → Tanh → Dropout(0.5) → Linear → 5 logits
  layers_flatten  (N, 2, 9, 11) → Conv 3x3 stride 2 pad 1 → BatchNorm2d → ReLU → AvgPool2d(2, stride 1)
                  → Flatten (80 features in PyTorch's (c, h, w) order) → BatchNorm1d(80) → LeakyReLU(0.2)
                  → Dropout(0.25) → Linear → Sigmoid → Linear → 3 logits

Both are exported with opset 13, training=TrainingMode.PRESERVE and do_constant_folding=False: with the default (EVAL) PyTorch folds a
BatchNorm that follows a Conv into the Conv's weights, and PRESERVE on a model in eval() keeps every batch norm as a
BatchNormalization node in its inference form. What PyTorch writes for the other layers:
  AvgPool2d (count_include_pad=True)  a Pad (zeros, from a Constant) followed by AveragePool with pads 0
  MaxPool2d                           MaxPool with kernel_shape, strides and pads
  AdaptiveAvgPool2d(1)                GlobalAveragePool, then Flatten
  Dropout                             nothing: in evaluation it is the identity and the exporter leaves it out
                                      (an eval-mode PyTorch export never holds a Dropout node)
  BatchNorm2d(affine=False)           BatchNormalization with constant scale 1 and bias 0

Writes
  layers_gap.onnx, layers_flatten.onnx             the exports (checked with onnx.checker.check_model)
  layers_gap_inputs.npy, layers_flatten_inputs.npy (6, H, W, C) float32: random inputs, stored NHWC as LeNetSharp
                                                   takes them (PyTorch ran on their NCHW transpose)
  layers_gap_logits.npy, layers_flatten_logits.npy (6, classes) float32: PyTorch's own logits for those inputs
  layers_gap_training.onnx                         layers_gap exported in training mode (TrainingMode.TRAINING):
                                                   BatchNormalization with its running-statistics outputs and Dropout
                                                   with training_mode true, which an import must refuse
"""
import os

import numpy as np
import onnx
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))


def randomise_batch_norms(net):
    """Random running statistics (and γ, β where affine) so that evaluation mode differs from the identity."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c) * 0.5)
                m.running_var.copy_(torch.rand(c) * 1.7 + 0.3)
                if m.affine:
                    m.weight.copy_(torch.rand(c) + 0.5)
                    m.bias.copy_(torch.randn(c) * 0.3)


def export(net, name, shape, training=torch.onnx.TrainingMode.PRESERVE):
    path = os.path.join(HERE, f"{name}.onnx")
    torch.onnx.export(
        net, torch.zeros(2, *shape), path, opset_version=13, training=training, do_constant_folding=False,
        input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    print(f"{name}.onnx: {os.path.getsize(path)} bytes, ops", [n.op_type for n in model.graph.node])


def fixture(net, name, shape):
    """Exports the network in evaluation mode and saves random inputs (NHWC) with PyTorch's logits for them."""
    randomise_batch_norms(net)
    net.eval()
    export(net, name, shape)
    x = torch.randn(6, *shape)
    with torch.no_grad():
        logits = net(x)
    np.save(os.path.join(HERE, f"{name}_inputs.npy"), x.permute(0, 2, 3, 1).contiguous().numpy())
    np.save(os.path.join(HERE, f"{name}_logits.npy"), logits.numpy())
    print(f"{name}: logits {tuple(logits.shape)}, |max| {logits.abs().max():.3f}")


torch.manual_seed(13)
torch.set_num_threads(1)

gap = nn.Sequential(
    nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.LeakyReLU(0.1),
    nn.MaxPool2d(3, stride=2, padding=1),                                   # (8, 6, 5)
    nn.Dropout(0.3),
    nn.Conv2d(8, 12, 3, padding=1), nn.BatchNorm2d(12, eps=1e-3, momentum=0.2, affine=False), nn.Tanh(),
    nn.AvgPool2d(3, stride=1, padding=1),                                   # (12, 6, 5)
    nn.Sigmoid(),
    nn.AvgPool2d(2),                                                        # (12, 3, 2)
    nn.MaxPool2d(2, stride=1),                                              # (12, 2, 1)
    nn.AdaptiveAvgPool2d(1), nn.Flatten(),                                  # (12)
    nn.Linear(12, 16), nn.BatchNorm1d(16), nn.Tanh(), nn.Dropout(0.5),
    nn.Linear(16, 5))
fixture(gap, "layers_gap", (3, 12, 10))

flatten = nn.Sequential(
    nn.Conv2d(2, 4, 3, stride=2, padding=1), nn.BatchNorm2d(4), nn.ReLU(),  # (4, 5, 6)
    nn.AvgPool2d(2, stride=1),                                              # (4, 4, 5)
    nn.Flatten(),                                                           # 80, in (c, h, w) order
    nn.BatchNorm1d(80), nn.LeakyReLU(0.2), nn.Dropout(0.25),
    nn.Linear(80, 6), nn.Sigmoid(),
    nn.Linear(6, 3))
fixture(flatten, "layers_flatten", (2, 9, 11))

gap.train()
export(gap, "layers_gap_training", (3, 12, 10), training=torch.onnx.TrainingMode.TRAINING)
