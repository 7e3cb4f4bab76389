"""One thread, real MNIST: the tutorial's numpy algorithm and PyTorch, on the networks LeNetSharp's bench times.

Usage: python3 peers.py DATA_DIR [--nets lenet,conv3x3,modern] [--numpy-batches N] [--torch-batches N]
                                 [--conv3x3-steps N] [--modern-steps N] [--conv3x3-infer-batch N] [--modern-infer-batch N]

lenet    the tutorial's LeNet at batch 3, plain SGD: the numpy algorithm and PyTorch each train N batches after a short
         warm-up, scaled to an epoch of 20,000 batches; PyTorch's inference at its best batch.
conv3x3  conv 3x3 pad 1 1->32, ReLU, max-pool 2, conv 3x3 pad 1 32->64, ReLU, max-pool 2, Linear 3136->10 (the network
         of conv3x3.onnx): SGD with momentum 0.9 at batch 32; inference at batch 256 and at --conv3x3-infer-batch.
modern   LeNetSharp's ModernCnn (--net modern): conv 5x5 pad 2 1->32, BatchNorm, ReLU, max-pool 2, conv 3x3 pad 1
         32->64, BatchNorm, ReLU, max-pool 2, Dropout 0.3, Linear 3136->10: AdamW (lr 0.01, weight decay 0.01) at
         batch 64; inference at batch 256 and at --modern-infer-batch.
Each line ends in a form ratios.py reads ("NAME: train batch B: R images/s", "NAME: infer batch B: R images/s").
"""
import argparse
import os
import struct
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
import numpy as np  # noqa: E402
from numpy.lib.stride_tricks import as_strided  # noqa: E402

BATCHES_PER_EPOCH = 60000 // 3


def read_idx(path):
    with open(path, "rb") as f:
        magic, = struct.unpack(">i", f.read(4))
        dims = struct.unpack(">" + "i" * (magic & 0xFF), f.read(4 * (magic & 0xFF)))
        return np.frombuffer(f.read(), dtype=np.uint8).reshape(dims)


def load(data_dir):
    x = read_idx(os.path.join(data_dir, "train-images-idx3-ubyte")).astype(np.float64)[..., None] / 255.0
    y = read_idx(os.path.join(data_dir, "train-labels-idx1-ubyte")).astype(np.int64)
    return x, y  # NHWC, as the tutorial


# ---- The tutorial's algorithm, in numpy (NHWC, im2col by strides, updates inside backward) -----------------------

def split_by_strides(x, kh, kw, s=1):
    n, h, w, c = x.shape
    oh, ow = (h - kh) // s + 1, (w - kw) // s + 1
    strides = (x.strides[0], s * x.strides[1], s * x.strides[2], x.strides[1], x.strides[2], x.strides[3])
    return as_strided(x, shape=(n, oh, ow, kh, kw, c), strides=strides)


class Conv:
    def __init__(self, kh, kw, cin, cout, rng):
        self.k = rng.normal(0, np.sqrt(2.0 / (kh * kw * cin)), (kh, kw, cin, cout))
        self.b = np.zeros(cout)

    def forward(self, x):
        self.x = x
        self.cols = split_by_strides(x, *self.k.shape[:2])
        return np.tensordot(self.cols, self.k, axes=([3, 4, 5], [0, 1, 2])) + self.b

    def backward(self, dy, lr):
        kh, kw = self.k.shape[:2]
        dk = np.tensordot(self.cols, dy, axes=([0, 1, 2], [0, 1, 2]))
        db = dy.sum(axis=(0, 1, 2))
        # input gradient: full convolution of the padded output gradient with the flipped kernel (stride 1, no padding)
        padded = np.pad(dy, ((0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1), (0, 0)))
        flipped = self.k[::-1, ::-1].swapaxes(2, 3)
        dx = np.tensordot(split_by_strides(padded, kh, kw), flipped, axes=([3, 4, 5], [0, 1, 2]))
        self.k -= lr * dk
        self.b -= lr * db
        return dx


class Relu:
    def forward(self, x):
        self.mask = x > 0
        return x * self.mask

    def backward(self, dy, lr):
        return dy * self.mask


class Pool:
    def forward(self, x):
        n, h, w, c = x.shape
        out = np.zeros((n, h // 2, w // 2, c))
        self.index = np.zeros_like(x)
        for b in range(n):  # the tutorial's Python loops
            for i in range(h // 2):
                for j in range(w // 2):
                    for ch in range(c):
                        window = x[b, 2 * i:2 * i + 2, 2 * j:2 * j + 2, ch]
                        out[b, i, j, ch] = window.max()
                        r, q = np.unravel_index(window.argmax(), (2, 2))
                        self.index[b, 2 * i + r, 2 * j + q, ch] = 1
        return out

    def backward(self, dy, lr):
        return np.repeat(np.repeat(dy, 2, axis=1), 2, axis=2) * self.index


class Linear:
    def __init__(self, n_in, n_out, rng):
        self.w = rng.normal(0, np.sqrt(2.0 / n_in), (n_in, n_out))
        self.b = np.zeros(n_out)

    def forward(self, x):
        self.shape = x.shape
        self.x = x.reshape(x.shape[0], -1)
        return self.x @ self.w + self.b

    def backward(self, dy, lr):
        dx = (dy @ self.w.T).reshape(self.shape)
        self.w -= lr * self.x.T @ dy
        self.b -= lr * dy.sum(axis=0)
        return dx


def numpy_seconds_per_epoch(x, y, batches):
    rng = np.random.default_rng(1)
    layers = [Conv(5, 5, 1, 6, rng), Relu(), Pool(), Conv(5, 5, 6, 16, rng), Relu(), Pool(), Linear(256, 10, rng)]

    def step(i):
        xb, yb = x[3 * i:3 * i + 3], y[3 * i:3 * i + 3]
        out = xb
        for layer in layers:
            out = layer.forward(out)
        p = np.exp(out - out.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(3), yb] -= 1
        grad = p / 3
        for layer in reversed(layers):
            grad = layer.backward(grad, 0.01)

    for i in range(5):
        step(i)
    start = time.perf_counter()
    for i in range(batches):
        step(i)
    return (time.perf_counter() - start) / batches * BATCHES_PER_EPOCH


# ---- PyTorch, the same network and settings -----------------------------------------------------------------------

def torch_seconds_per_epoch(x, y, batches):
    import torch
    from torch import nn
    torch.set_num_threads(1)
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(256, 10))
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    xt = torch.from_numpy(x[:3 * (batches + 50)].transpose(0, 3, 1, 2).astype(np.float32).copy())
    yt = torch.from_numpy(y[:3 * (batches + 50)])

    def step(i):
        opt.zero_grad()
        loss_fn(net(xt[3 * i:3 * i + 3]), yt[3 * i:3 * i + 3]).backward()
        opt.step()

    for i in range(50):
        step(i)
    start = time.perf_counter()
    for i in range(batches):
        step(i)
    return (time.perf_counter() - start) / batches * BATCHES_PER_EPOCH, torch.__version__


def torch_inference_images_per_second(x, images=10_000):
    """PyTorch inference (eval mode, no_grad, one thread) at several batch sizes: (best images/s, its batch, all)."""
    import torch
    from torch import nn
    torch.set_num_threads(1)
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(256, 10)).eval()
    xt = torch.from_numpy(x[:images].transpose(0, 3, 1, 2).astype(np.float32).copy())
    rates = {}
    with torch.no_grad():
        for batch in (1, 16, 64, 256, 1000):
            n = images if batch > 1 else min(images, 2000)  # batch 1 is slow: 2,000 images say enough
            for i in range(0, min(n, 20 * batch), batch):
                net(xt[i:i + batch])  # warm-up
            best = 0.0
            for _ in range(3):
                start = time.perf_counter()
                for i in range(0, n, batch):
                    net(xt[i:i + batch])
                best = max(best, n / (time.perf_counter() - start))
            rates[batch] = best
    batch = max(rates, key=rates.get)
    return rates[batch], batch, rates


# ---- The networks LeNetSharp's bench --arch / --net times, in PyTorch --------------------------------------------

def conv3x3_net():
    """The issue's 3x3 network (NCHW): about 22.8 MFLOP a training image and 7.74 an inferred one."""
    from torch import nn
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(3136, 10))


def modern_net():
    """LeNetSharp's ModernCnn for 28x28x1 images and 10 classes."""
    from torch import nn
    return nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Dropout(0.3), nn.Linear(3136, 10))


def torch_rates(x, y, net, make_optimizer, batch, steps, infer_batches, images=10_000):
    """Training images/s at `batch` over `steps` timed steps (after 20 of warm-up), then inference images/s (eval mode,
    no_grad) at each of `infer_batches`, the best of 3 passes over `images` images."""
    import torch
    from torch import nn
    torch.set_num_threads(1)
    n = min(len(x), batch * (steps + 20))
    xt = torch.from_numpy(x[:n].transpose(0, 3, 1, 2).astype(np.float32).copy())
    yt = torch.from_numpy(y[:n])
    opt = make_optimizer(net.parameters())
    loss_fn = nn.CrossEntropyLoss()
    net.train()

    def step(i):
        i = i * batch % (n - batch + 1)
        opt.zero_grad()
        loss_fn(net(xt[i:i + batch]), yt[i:i + batch]).backward()
        opt.step()

    for i in range(20):
        step(i)
    start = time.perf_counter()
    for i in range(steps):
        step(20 + i)
    train = steps * batch / (time.perf_counter() - start)

    net.eval()
    xi = torch.from_numpy(x[:images].transpose(0, 3, 1, 2).astype(np.float32).copy())
    infer = {}
    with torch.no_grad():
        for b in infer_batches:
            for i in range(0, min(len(xi), 20 * b), b):
                net(xi[i:i + b])  # warm-up
            best = 0.0
            for _ in range(3):
                start = time.perf_counter()
                for i in range(0, len(xi), b):
                    net(xi[i:i + b])
                best = max(best, len(xi) / (time.perf_counter() - start))
            infer[b] = best
    return train, infer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("--nets", default="lenet,conv3x3,modern")
    parser.add_argument("--numpy-batches", type=int, default=500)
    parser.add_argument("--torch-batches", type=int, default=5000)
    parser.add_argument("--conv3x3-steps", type=int, default=300)
    parser.add_argument("--modern-steps", type=int, default=150)
    parser.add_argument("--conv3x3-infer-batch", type=int, default=32)
    parser.add_argument("--modern-infer-batch", type=int, default=64)
    parser.add_argument("--infer-images", type=int, default=10_000)
    args = parser.parse_args()
    nets = args.nets.split(",")
    x, y = load(args.data)
    import torch
    version = torch.__version__
    if "lenet" in nets:
        np_s = numpy_seconds_per_epoch(x, y, args.numpy_batches)
        print(f"numpy {np.__version__} (tutorial algorithm): {np_s:.1f} s/epoch (from {args.numpy_batches} batches)")
        torch_s, _ = torch_seconds_per_epoch(x, y, args.torch_batches)
        print(f"pytorch {version}: {torch_s:.1f} s/epoch (from {args.torch_batches} batches)")
        rate, batch, rates = torch_inference_images_per_second(x, args.infer_images)
        print(f"pytorch {version} inference: {rate:.0f} images/s at batch {batch} (best of 3 passes; "
              + ", ".join(f"batch {b}: {r:.0f}" for b, r in rates.items()) + ")")
        sys.stdout.flush()
    runs = {
        "conv3x3": (conv3x3_net, lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9), 32, args.conv3x3_steps,
                    args.conv3x3_infer_batch, "sgd momentum 0.9"),
        "modern": (modern_net, lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.01), 64, args.modern_steps,
                   args.modern_infer_batch, "adamw weight decay 0.01"),
    }
    for name, (make, optimizer, batch, steps, infer_batch, settings) in runs.items():
        if name not in nets:
            continue
        torch.manual_seed(1)
        train, infer = torch_rates(x, y, make(), optimizer, batch, steps, sorted({infer_batch, 256}), args.infer_images)
        print(f"pytorch {version} {name}: train batch {batch}: {train:.0f} images/s ({settings}, {steps} timed steps)")
        for b, r in infer.items():
            print(f"pytorch {version} {name}: infer batch {b}: {r:.0f} images/s (best of 3 passes)")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
