"""Writes the BatchNorm fixtures of BatchNormTests with real PyTorch (float64 throughout).

Run from this folder with Debian's PyTorch and NumPy:  /usr/bin/python3 make_batchnorm_fixtures.py
Each case runs torch.nn.BatchNorm1d / BatchNorm2d (PyTorch 1.13) from given γ, β and running statistics through
several training steps (forward, then backward of a random upstream gradient; the running statistics after each
step), then one step in evaluation mode. Images are stored NHWC, as LeNetSharp lays them out: they are permuted to
PyTorch's NCHW for the layer and the results permuted back.

Arrays of batchnorm_<case>.npz:
  settings                      [eps, momentum, affine (1 or 0), steps]
  gamma, beta                   (C) the layer's weight and bias (1 and 0 when not affine)
  running_mean0, running_var0   (C) the running statistics before the first step
  x<k>, dy<k>                   step k's input and upstream gradient (k = 0 .. steps-1)
  y<k>, dx<k>                   its output and input gradient
  dgamma<k>, dbeta<k>           its weight and bias gradients (that step's alone; absent when not affine)
  running_mean<k+1>, running_var<k+1>   the running statistics after step k
  x_eval, dy_eval, y_eval, dx_eval, dgamma_eval, dbeta_eval   the same in evaluation mode, after the last step
"""
import numpy as np
import torch

torch.set_default_dtype(torch.float64)
rng = np.random.RandomState(20240613)


def to_torch(a):
    t = torch.tensor(a)
    return t.permute(0, 3, 1, 2).contiguous() if a.ndim == 4 else t


def to_numpy(t):
    a = t.detach().numpy()
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)) if a.ndim == 4 else a


def run(layer, x, dy):
    xt = to_torch(x).requires_grad_(True)
    if layer.affine:
        layer.weight.grad = None
        layer.bias.grad = None
    y = layer(xt)
    y.backward(to_torch(dy))
    out = {"y": to_numpy(y), "dx": to_numpy(xt.grad)}
    if layer.affine:
        out["dgamma"] = layer.weight.grad.numpy().copy()
        out["dbeta"] = layer.bias.grad.numpy().copy()
    return out


def case(name, kind, channels, train_shapes, eval_shape, eps, momentum, affine):
    layer = (torch.nn.BatchNorm2d if kind == 2 else torch.nn.BatchNorm1d)(channels, eps=eps, momentum=momentum, affine=affine)
    arrays = {"settings": np.array([eps, momentum, 1.0 if affine else 0.0, len(train_shapes)])}
    with torch.no_grad():
        if affine:
            layer.weight.copy_(torch.tensor(rng.uniform(0.5, 2.0, channels) * rng.choice([-1, 1], channels)))
            layer.bias.copy_(torch.tensor(rng.normal(0, 1, channels)))
        layer.running_mean.copy_(torch.tensor(rng.normal(0, 1, channels)))
        layer.running_var.copy_(torch.tensor(rng.uniform(0.5, 3.0, channels)))
    arrays["gamma"] = layer.weight.detach().numpy().copy() if affine else np.ones(channels)
    arrays["beta"] = layer.bias.detach().numpy().copy() if affine else np.zeros(channels)
    arrays["running_mean0"] = layer.running_mean.numpy().copy()
    arrays["running_var0"] = layer.running_var.numpy().copy()

    layer.train()
    for k, shape in enumerate(train_shapes):
        # Per-channel offsets and scales far from 0 and 1, so the statistics matter.
        x = rng.normal(0, 1, shape) * rng.uniform(0.5, 4.0, channels) + rng.normal(0, 3, channels)
        dy = rng.normal(0, 1, shape)
        out = run(layer, x, dy)
        arrays[f"x{k}"], arrays[f"dy{k}"] = x, dy
        for key, value in out.items():
            arrays[f"{key}{k}"] = value
        arrays[f"running_mean{k + 1}"] = layer.running_mean.numpy().copy()
        arrays[f"running_var{k + 1}"] = layer.running_var.numpy().copy()

    layer.eval()
    x = rng.normal(0, 1, eval_shape) * 2 + 1
    dy = rng.normal(0, 1, eval_shape)
    out = run(layer, x, dy)
    arrays["x_eval"], arrays["dy_eval"] = x, dy
    for key, value in out.items():
        arrays[f"{key}_eval"] = value
    assert all(a.dtype == np.float64 for a in arrays.values())
    np.savez(f"batchnorm_{name}.npz", **arrays)


# Odd sizes everywhere; the batch size changes between steps; evaluation of one example.
case("2d", 2, 3, [(3, 5, 7, 3), (2, 3, 5, 3), (3, 5, 7, 3)], (1, 3, 5, 3), 1e-5, 0.1, True)
case("2d_plain", 2, 5, [(2, 3, 1, 5), (1, 1, 3, 5)], (2, 1, 1, 5), 1e-3, 0.3, False)
case("1d", 1, 4, [(5, 4), (7, 4), (5, 4)], (1, 4), 1e-5, 0.1, True)
case("1d_two", 1, 3, [(2, 3), (2, 3)], (3, 3), 0.5, 1.0, True)
print("batchnorm fixtures written with torch", torch.__version__, "and numpy", np.__version__)
