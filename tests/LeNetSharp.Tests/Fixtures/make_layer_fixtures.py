"""Writes layers.npz, PyTorch's forward and backward of the layers beyond the tutorial's, for LayerFixtureTests.

Run from this folder with Debian's python3-torch and python3-numpy:  /usr/bin/python3 make_layer_fixtures.py

Every case is computed in float64 by torch.nn.functional on NCHW tensors, with autograd for the backward, and stored in
LeNetSharp's NHWC layout (x.permute(0, 2, 3, 1)); the element-wise layers and GlobalAvgPool2d's output need no
transposing beyond that. For case <name> the archive holds
  <name>_x    the input (NHWC)
  <name>_dy   a random upstream gradient, shaped as the output
  <name>_y    PyTorch's output
  <name>_dx   PyTorch's input gradient: d(sum(y * dy)) / dx
and for the dropout case also <name>_keep (1 where PyTorch kept the element, 0 where it dropped it), which the C# test
hands to its layer as a fixed mask. Sizes are odd and the pools' strides and paddings varied; one input of each pool
holds small integers only, so windows tie and the argmax rule (the first maximum) is exercised.
"""
import numpy as np
import torch
import torch.nn.functional as F

rng = np.random.RandomState(21)
torch.manual_seed(21)
arrays = {}


def nchw(a):
    return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))


def nhwc(t):
    return t.detach().permute(0, 2, 3, 1).contiguous().numpy()


def save(name, x, dy, y, dx):
    for key, value in (("x", x), ("dy", dy), ("y", y), ("dx", dx)):
        assert value.dtype == np.float64, (name, key, value.dtype)
        arrays[f"{name}_{key}"] = np.ascontiguousarray(value)


def elementwise(name, x, f):
    """An element-wise layer: layout does not matter, the NHWC array is used as is."""
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    y = f(xt)
    dy = rng.uniform(-1, 1, y.shape)
    y.backward(torch.from_numpy(dy))
    save(name, x, dy, y.detach().numpy(), xt.grad.numpy())


def image(name, x, f):
    """A layer over images: x is NHWC, PyTorch runs on NCHW, the output is NHWC again (or (N, C) when 2-D)."""
    xt = nchw(x).requires_grad_(True)
    y = f(xt)
    y_out = nhwc(y) if y.dim() == 4 else y.detach().numpy()
    dy = rng.uniform(-1, 1, y_out.shape)
    y.backward(nchw(dy) if y.dim() == 4 else torch.from_numpy(dy))
    save(name, x, dy, y_out, nhwc(xt.grad))


# Element-wise activations: wide inputs (up to ±800, where e^|x| overflows: sigmoid as e^x / (1 + e^x) would give
# inf/inf = NaN at 800), exact zeros for leaky ReLU's derivative at 0.
wide = rng.normal(0, 4, (2, 3, 5, 3))
wide.flat[:6] = [-800.0, 800.0, -40.0, 40.0, 0.0, -0.0]
elementwise("tanh", wide, torch.tanh)
elementwise("sigmoid", wide, torch.sigmoid)
leaky = rng.normal(0, 1, (3, 7, 5))
leaky.flat[:3] = 0.0
elementwise("leakyrelu_default", leaky, lambda t: F.leaky_relu(t))             # negative_slope=0.01
elementwise("leakyrelu_0.2", leaky, lambda t: F.leaky_relu(t, 0.2))
elementwise("leakyrelu_-0.3", leaky, lambda t: F.leaky_relu(t, -0.3))

# Dropout in training mode, p = 0.3: PyTorch's own mask, recovered from the output (x is never 0).
x = rng.uniform(0.5, 1.5, (3, 5, 7, 2)) * rng.choice([-1, 1], (3, 5, 7, 2))
xt = torch.from_numpy(x.copy()).requires_grad_(True)
y = F.dropout(xt, p=0.3, training=True)
dy = rng.uniform(-1, 1, x.shape)
y.backward(torch.from_numpy(dy))
save("dropout_0.3", x, dy, y.detach().numpy(), xt.grad.numpy())
arrays["dropout_0.3_keep"] = (y.detach().numpy() != 0).astype(np.float64)

# Pools: (kernel, stride, padding) on odd image sizes; stride None is PyTorch's default (the kernel).
pools = [
    ("k2", 2, None, 0, (2, 5, 7, 3)),      # MaxPool2x2's geometry on odd sizes: the last row and column dropped
    ("k3_s2_p1", 3, 2, 1, (2, 7, 9, 3)),   # overlapping windows, padded
    ("k3_s1_p1", 3, 1, 1, (1, 6, 5, 2)),   # "same" size, heavy overlap
    ("k3", 3, None, 0, (2, 7, 8, 2)),      # remainder dropped
    ("k4_s2_p2", 4, 2, 2, (1, 5, 6, 3)),   # padding = kernel/2, windows of the padding's corner
    ("k5_s3_p2", 5, 3, 2, (2, 9, 7, 1)),
    ("k1_s2", 1, 2, 0, (1, 5, 5, 2)),      # 1x1 windows: subsampling
    ("k3_s2_p1_ties", 3, 2, 1, (2, 7, 9, 3)),
]
for name, k, s, p, shape in pools:
    if name.endswith("_ties"):
        x = rng.randint(0, 3, shape).astype(np.float64)   # many equal maxima per window
    else:
        x = rng.normal(0, 1, shape)
    image(f"maxpool_{name}", x, lambda t: F.max_pool2d(t, k, s, p))
    image(f"avgpool_{name}", x, lambda t: F.avg_pool2d(t, k, s, p))   # count_include_pad=True, PyTorch's default

image("globalavgpool", rng.normal(0, 1, (2, 5, 7, 3)), lambda t: F.adaptive_avg_pool2d(t, 1).flatten(1))
image("globalavgpool_1x1", rng.normal(0, 1, (3, 1, 1, 4)), lambda t: F.adaptive_avg_pool2d(t, 1).flatten(1))

np.savez("layers.npz", **arrays)
print(f"layers.npz: {len(arrays)} arrays, torch {torch.__version__}, numpy {np.__version__}")
