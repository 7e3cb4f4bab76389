"""Test accuracy of a tutorial weight file (.npz) computed by the tutorial's own numpy forward pass.

Usage (from the repository root): /usr/bin/python3 tests/peers/numpy_eval.py WEIGHTS.npz [DATA_DIR]
Make WEIGHTS.npz from a LeNetSharp model with: dotnet run -c Release --project samples/LeNetSharp.Trainer -- export --model lenet.model --to WEIGHTS.npz
"""
import struct
import sys

import numpy as np
from numpy.lib.stride_tricks import as_strided

data = sys.argv[2] if len(sys.argv) > 2 else "data/mnist"
def read_idx(p):
    with open(p, "rb") as f:
        m, = struct.unpack(">i", f.read(4)); d = struct.unpack(">" + "i" * (m & 0xff), f.read(4 * (m & 0xff)))
        return np.frombuffer(f.read(), np.uint8).reshape(d)
x = read_idx(f"{data}/t10k-images-idx3-ubyte")[..., None] / 255.0
y = read_idx(f"{data}/t10k-labels-idx1-ubyte")
w = np.load(sys.argv[1])
def sbs(x, kh, kw):
    n, h, ww, c = x.shape
    return as_strided(x, (n, h-kh+1, ww-kw+1, kh, kw, c), (x.strides[0], x.strides[1], x.strides[2], x.strides[1], x.strides[2], x.strides[3]))
def conv(x, k, b): return np.tensordot(sbs(x, 5, 5), k, axes=([3,4,5],[0,1,2])) + b
def pool(x):
    n, h, ww, c = x.shape
    return x.reshape(n, h//2, 2, ww//2, 2, c).max(axis=(2, 4))
correct = 0
for i in range(0, 10000, 500):
    a = pool(np.maximum(conv(x[i:i+500], w["k1"], w["b1"]), 0))
    a = pool(np.maximum(conv(a, w["k2"], w["b2"]), 0))
    correct += ((a.reshape(len(a), -1) @ w["w3"] + w["b3"]).argmax(1) == y[i:i+500]).sum()
print(f"numpy forward of the exported weights: {correct / 100:.2f}% ({correct}/10000)")
