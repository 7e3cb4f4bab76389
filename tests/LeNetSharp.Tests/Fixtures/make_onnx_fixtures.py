"""Writes the ONNX import fixtures of OnnxImportTests with the real exporter (torch.onnx.export).

Run from this folder with Debian's python3-torch and python3-onnx (MNIST in ../../../data/mnist):
    /usr/bin/python3 make_onnx_fixtures.py

Writes
  lenet_random.onnx    LeNet with random weights; flattened by x.reshape(-1, 256), classifier as x @ W.T + b
                       (exported as Reshape and MatMul + Add)
  lenet_trained.onnx   LeNet trained for one epoch on MNIST; nn.Flatten and nn.Linear (exported as Flatten and Gemm)
  onnx_inputs.npy      (8, 28, 28) float32: the first 8 MNIST test images scaled to [0, 1]
  lenet_random_logits.npy, lenet_trained_logits.npy   (8, 10) float32: PyTorch's logits for those images
  lenet_trained_count.txt   how many of the 10,000 MNIST test images PyTorch classifies correctly (pixels / 255)
Every .onnx file is checked with onnx.checker.check_model.
"""
import gzip
import os

import numpy as np
import onnx
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
MNIST = os.path.join(HERE, "..", "..", "..", "data", "mnist")


def idx(name):
    """Reads an IDX file (optionally .gz) as a uint8 array."""
    path = os.path.join(MNIST, name)
    opener = open if os.path.exists(path) else gzip.open
    with opener(path if os.path.exists(path) else path + ".gz", "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


class LeNet(nn.Module):
    """The LeNetSharp LeNet in PyTorch's NCHW: conv 5x5 1->6, relu, pool, conv 5x5 6->16, relu, pool, linear 256->10."""

    def __init__(self, matmul):
        super().__init__()
        self.matmul = matmul
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2))
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(256, 10)

    def forward(self, x):
        x = self.features(x)
        if self.matmul:
            return x.reshape(-1, 256) @ self.fc.weight.t() + self.fc.bias
        return self.fc(self.flatten(x))


def export(model, name):
    path = os.path.join(HERE, name)
    model.eval()
    torch.onnx.export(
        model, torch.zeros(1, 1, 28, 28), path, opset_version=13,
        input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    onnx.checker.check_model(onnx.load(path), full_check=True)
    print(f"{name}: {os.path.getsize(path)} bytes, ops", [n.op_type for n in onnx.load(path).graph.node])


torch.manual_seed(11)
torch.set_num_threads(1)
test_x = torch.from_numpy(idx("t10k-images-idx3-ubyte").astype(np.float32) / 255).unsqueeze(1)
test_y = torch.from_numpy(idx("t10k-labels-idx1-ubyte").astype(np.int64))
inputs = test_x[:8]
np.save(os.path.join(HERE, "onnx_inputs.npy"), inputs.squeeze(1).numpy())

random_net = LeNet(matmul=True)
export(random_net, "lenet_random.onnx")
with torch.no_grad():
    np.save(os.path.join(HERE, "lenet_random_logits.npy"), random_net(inputs).numpy())

train_x = torch.from_numpy(idx("train-images-idx3-ubyte").astype(np.float32) / 255).unsqueeze(1)
train_y = torch.from_numpy(idx("train-labels-idx1-ubyte").astype(np.int64))
net = LeNet(matmul=False)
optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
order = torch.randperm(len(train_x))
net.train()
for start in range(0, len(order), 64):  # one epoch, batch 64
    batch = order[start:start + 64]
    optimizer.zero_grad()
    loss = nn.functional.cross_entropy(net(train_x[batch]), train_y[batch])
    loss.backward()
    optimizer.step()
net.eval()
export(net, "lenet_trained.onnx")
with torch.no_grad():
    np.save(os.path.join(HERE, "lenet_trained_logits.npy"), net(inputs).numpy())
    correct = sum(int((net(test_x[i:i + 1000]).argmax(1) == test_y[i:i + 1000]).sum()) for i in range(0, 10000, 1000))
with open(os.path.join(HERE, "lenet_trained_count.txt"), "w") as f:
    f.write(f"{correct}\n")
print(f"trained: {correct}/10000 correct ({correct / 100:.2f}%)")
