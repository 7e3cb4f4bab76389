"""Writes the optimizer and learning-rate schedule fixtures of OptimizerReferenceTests with real PyTorch.

Run from this folder with Debian's python3-torch (1.13) and python3-numpy:
    /usr/bin/python3 make_optimizer_fixtures.py

Writes
  optimizers.npz   A small network trained for 20 steps in float64 by torch.optim.SGD, Adam and AdamW (with and
                   without weight decay, AMSGrad, clip_grad_norm_, a OneCycleLR), from the same initial parameters
                   on the same batches:
                     x (20, 4, 6, 6, 1) NHWC images, one batch of 4 per step; labels (20, 4), as float64
                     init__<p>        the initial parameters
                     <run>__<p>       the parameters after the 20 steps of <run>
                   where <p> is conv_w (3, 3, 1, 2), conv_b (2), fc_w (8, 3), fc_b (3), held in LeNetSharp's layouts
                   (conv kernel (KH, KW, C, OC), linear weight (in, out)); the network runs on them through permuted
                   views: conv 3x3 1->2, ReLU, 2x2 max pool, flatten in NHWC order, x @ fc_w + fc_b, mean cross-entropy.
  schedules.npz    <schedule> (100,): the learning rate before each of 100 optimizer steps, the scheduler stepped
                   after each, for torch.optim.lr_scheduler's StepLR, ExponentialLR, CosineAnnealingLR, OneCycleLR
                   (cycle_momentum=False), MultiplicativeLR as the tutorial's decay, and SequentialLR of LinearLR in
                   front of them (the warm-up).
"""
import math
import os
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim import SGD, Adam, AdamW
from torch.optim import lr_scheduler as S

HERE = os.path.dirname(os.path.abspath(__file__))
STEPS, BATCH = 20, 4
NAMES = ["conv_w", "conv_b", "fc_w", "fc_b"]

rng = np.random.RandomState(2024)
x = rng.uniform(-1, 1, (STEPS, BATCH, 6, 6, 1))
labels = rng.randint(0, 3, (STEPS, BATCH))
init = {
    "conv_w": rng.normal(0, 0.5, (3, 3, 1, 2)),
    "conv_b": rng.normal(0, 0.1, 2),
    "fc_w": rng.normal(0, 0.5, (8, 3)),
    "fc_b": rng.normal(0, 0.1, 3),
}


def forward(p, images):
    """The LeNetSharp network on NHWC images, with parameters in LeNetSharp's layouts."""
    y = F.conv2d(images.permute(0, 3, 1, 2), p["conv_w"].permute(3, 2, 0, 1), p["conv_b"])
    y = F.max_pool2d(F.relu(y), 2)
    y = y.permute(0, 2, 3, 1).reshape(images.shape[0], -1)  # flatten as NHWC: (h, w, c)
    return y @ p["fc_w"] + p["fc_b"]


def train(make_optimizer, clip=None, schedule=None):
    p = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in init.items()}
    opt = make_optimizer([p[k] for k in NAMES])
    sched = schedule(opt) if schedule else None
    for s in range(STEPS):
        opt.zero_grad()
        images = torch.tensor(x[s], dtype=torch.float64)
        loss = F.cross_entropy(forward(p, images), torch.tensor(labels[s], dtype=torch.long))
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_([p[k] for k in NAMES], clip)
        opt.step()
        if sched:
            sched.step()
    return {k: p[k].detach().numpy().copy() for k in NAMES}


runs = {
    "sgd_momentum": lambda: train(lambda ps: SGD(ps, lr=0.05, momentum=0.9)),
    "sgd_nesterov": lambda: train(lambda ps: SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    "sgd_dampening": lambda: train(lambda ps: SGD(ps, lr=0.05, momentum=0.8, dampening=0.5, weight_decay=0.001)),
    "sgd_clip": lambda: train(lambda ps: SGD(ps, lr=0.1, momentum=0.9), clip=0.5),
    "adam": lambda: train(lambda ps: Adam(ps, lr=0.01)),
    "adam_decay": lambda: train(lambda ps: Adam(ps, lr=0.01, weight_decay=0.1)),
    "adam_clip": lambda: train(lambda ps: Adam(ps, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01), clip=0.5),
    "adam_amsgrad": lambda: train(lambda ps: Adam(ps, lr=0.01, amsgrad=True)),
    "adamw": lambda: train(lambda ps: AdamW(ps, lr=0.01, weight_decay=0.1)),
    "adamw_no_decay": lambda: train(lambda ps: AdamW(ps, lr=0.01, weight_decay=0)),
    "adamw_clip": lambda: train(lambda ps: AdamW(ps, lr=0.01), clip=0.5),
    "adamw_amsgrad_clip": lambda: train(lambda ps: AdamW(ps, lr=0.01, weight_decay=0.05, amsgrad=True), clip=0.3),
    "adamw_onecycle": lambda: train(lambda ps: AdamW(ps, lr=0.01, weight_decay=0.1),
                                    schedule=lambda o: S.OneCycleLR(o, max_lr=0.05, total_steps=STEPS, cycle_momentum=False)),
}

arrays = {"x": x, "labels": labels.astype(np.float64)}
arrays.update({f"init__{k}": v for k, v in init.items()})
for run, make in runs.items():
    for k, v in make().items():
        arrays[f"{run}__{k}"] = v
np.savez(os.path.join(HERE, "optimizers.npz"), **arrays)


def rates(base, make, periods=100):
    """The learning rate before each of `periods` steps, stepping the scheduler after each, as a training loop does."""
    opt = SGD([torch.zeros(1, requires_grad=True)], lr=base)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Detected call of lr_scheduler.step() before optimizer.step()", epoch args
        sched = make(opt)
        out = []
        for _ in range(periods):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
    return np.array(out)


def warm(start, periods, then):
    """LinearLR from `start` over `periods`, then `then` (SequentialLR with its milestone there)."""
    return lambda o: S.SequentialLR(o, [S.LinearLR(o, start_factor=start, total_iters=periods), then(o)], milestones=[periods])


schedules = {
    "constant": rates(0.1, lambda o: S.LambdaLR(o, lambda e: 1.0)),
    "tutorial": rates(0.01, lambda o: S.MultiplicativeLR(o, lambda e: 0.95 ** e)),
    "step": rates(0.1, lambda o: S.StepLR(o, step_size=30, gamma=0.1)),
    "step_7_half": rates(0.2, lambda o: S.StepLR(o, step_size=7, gamma=0.5)),
    "exponential": rates(0.1, lambda o: S.ExponentialLR(o, gamma=0.95)),
    "cosine": rates(0.1, lambda o: S.CosineAnnealingLR(o, T_max=30, eta_min=1e-4)),
    "cosine_to_zero": rates(0.1, lambda o: S.CosineAnnealingLR(o, T_max=100)),
    "onecycle": rates(0.1, lambda o: S.OneCycleLR(o, max_lr=0.1, total_steps=100, cycle_momentum=False)),
    "onecycle_linear_three_phase": rates(0.1, lambda o: S.OneCycleLR(
        o, max_lr=0.1, total_steps=100, pct_start=0.25, anneal_strategy="linear", div_factor=10.0,
        final_div_factor=100.0, three_phase=True, cycle_momentum=False)),
    "warmup_constant": rates(0.1, warm(0.1, 5, lambda o: S.LambdaLR(o, lambda e: 1.0))),
    # The tutorial's decay as a closed form (MultiplicativeLR would go on from the warm-up's last rate in SequentialLR).
    "warmup_tutorial": rates(0.01, warm(0.1, 5, lambda o: S.LambdaLR(o, lambda e: 0.95 ** (e * (e + 1) / 2)))),
    "warmup_step": rates(0.1, warm(0.25, 10, lambda o: S.StepLR(o, step_size=30, gamma=0.1))),
    "warmup_exponential": rates(0.1, warm(1.0 / 3, 8, lambda o: S.ExponentialLR(o, gamma=0.95))),
    "warmup_cosine": rates(0.1, warm(0.1, 5, lambda o: S.CosineAnnealingLR(o, T_max=30, eta_min=1e-4))),
    "warmup_onecycle": rates(0.1, warm(0.1, 10, lambda o: S.OneCycleLR(o, max_lr=0.1, total_steps=90, cycle_momentum=False))),
}
np.savez(os.path.join(HERE, "schedules.npz"), **schedules)
print("optimizer and schedule fixtures written with torch", torch.__version__, "numpy", np.__version__)
