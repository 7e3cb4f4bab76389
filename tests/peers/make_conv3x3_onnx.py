"""Writes conv3x3.onnx, the 3x3 network that run.sh times with LeNetSharp's `bench --arch` and peers.py in PyTorch.

Run with Debian's python3-torch and python3-onnx:
    /usr/bin/python3 tests/peers/make_conv3x3_onnx.py

conv 3x3 pad 1 1->32, ReLU, max-pool 2, conv 3x3 pad 1 32->64, ReLU, max-pool 2, Flatten, Linear 3136->10: PyTorch's
default initialisation from seed 1, exported by torch.onnx.export (opset 13, NCHW input "input" (N, 1, 28, 28),
output "logits" (N, 10)) and checked with onnx.checker. Only its shape matters to the timing; the weights are there
so that LeNetSharp can train it from them.
"""
import os

import onnx
import torch

from peers import conv3x3_net

HERE = os.path.dirname(os.path.abspath(__file__))
PATH = os.path.join(HERE, "conv3x3.onnx")

torch.manual_seed(1)
model = conv3x3_net().eval()
torch.onnx.export(
    model, torch.zeros(1, 1, 28, 28), PATH, opset_version=13,
    input_names=["input"], output_names=["logits"],
    dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
onnx.checker.check_model(onnx.load(PATH), full_check=True)
print(f"conv3x3.onnx: {os.path.getsize(PATH)} bytes, ops", [n.op_type for n in onnx.load(PATH).graph.node])
