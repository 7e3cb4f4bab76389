"""Writes the .npy/.npz fixtures of NumpyInteropTests with real NumPy.

Run from this folder with Debian's NumPy:  /usr/bin/python3 make_fixtures.py
The tutorial's forward pass below (NHWC, im2col by strides + tensordot, 2x2 max pooling, x @ w3 + b3) produces
the logits the imported network must reproduce.
"""
import numpy as np
from numpy.lib import format as npformat
from numpy.lib.stride_tricks import as_strided

np.save("f32_2x3.npy", (np.arange(6, dtype=np.float32).reshape(2, 3) / 4).astype(np.float32))
np.save("f64_vec.npy", np.array([1.5, -2.25, 3e-300, 1e300]))
np.save("scalar.npy", np.float64(7.5))
for version in [(2, 0), (3, 0)]:
    with open(f"v{version[0]}.npy", "wb") as f:
        npformat.write_array(f, np.linspace(-1, 1, 12).reshape(3, 4), version=version)
np.save("fortran.npy", np.asfortranarray(np.arange(6.0).reshape(2, 3)))
np.save("int32.npy", np.arange(4, dtype=np.int32))
np.save("bigendian.npy", np.arange(3, dtype=">f8"))

rng = np.random.RandomState(0)
weights = {
    "k1": rng.normal(0, np.sqrt(2 / 25), (5, 5, 1, 6)), "b1": rng.normal(0, 0.1, 6),
    "k2": rng.normal(0, np.sqrt(2 / 150), (5, 5, 6, 16)), "b2": rng.normal(0, 0.1, 16),
    "w3": rng.normal(0, np.sqrt(2 / 256), (256, 10)), "b3": rng.normal(0, 0.1, 10),
}
np.savez("tutorial.npz", **weights)
np.savez_compressed("tutorial_compressed.npz", **weights)


def split_by_strides(x, kh, kw):
    n, h, w, c = x.shape
    shape = (n, h - kh + 1, w - kw + 1, kh, kw, c)
    strides = (x.strides[0], x.strides[1], x.strides[2], x.strides[1], x.strides[2], x.strides[3])
    return as_strided(x, shape=shape, strides=strides)


def conv(x, k, b):
    return np.tensordot(split_by_strides(x, k.shape[0], k.shape[1]), k, axes=([3, 4, 5], [0, 1, 2])) + b


def pool(x):
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


inputs = rng.uniform(0, 1, (3, 28, 28, 1))
a = pool(np.maximum(conv(inputs, weights["k1"], weights["b1"]), 0))
a = pool(np.maximum(conv(a, weights["k2"], weights["b2"]), 0))
logits = a.reshape(3, -1) @ weights["w3"] + weights["b3"]
np.save("inputs.npy", inputs)
np.save("logits.npy", logits)
print("fixtures written with numpy", np.__version__)
