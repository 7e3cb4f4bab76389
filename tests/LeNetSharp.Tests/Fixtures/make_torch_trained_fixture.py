"""Writes the fixtures of PyTorchTrainedNetworkTests: a small CNN of the layers beyond the tutorial's, initialised and
trained in PyTorch on MNIST, exported with the real exporter (torch.onnx.export, PyTorch 1.13).

Run from this folder with Debian's python3-torch, python3-numpy and python3-onnx (MNIST in ../../../data/mnist):
    /usr/bin/python3 make_torch_trained_fixture.py     (about 4 minutes of one core; the figures are the same every run)

The network, NCHW (1, 28, 28) → 10 logits, 14,538 parameters:
    Conv 3x3 1→16 pad 1 → BatchNorm2d → ReLU → MaxPool2d(2)       (16, 14, 14)
    Conv 3x3 16→32 pad 1 → BatchNorm2d → ReLU → AvgPool2d(2)      (32, 7, 7)
    Conv 3x3 32→32 → BatchNorm2d → ReLU → AdaptiveAvgPool2d(1)    (32, 5, 5) → (32, 1, 1)
    Flatten → Dropout(0.3) → Linear 32→10
initialised by PyTorch's defaults after torch.manual_seed(0). The images are the IDX bytes times float32(1/255), in
float32, exactly what LeNetSharp's ImageDataset feeds a network (Mnist.Load applies no other normalisation).

The recipe, the one `train --arch torch_cnn_init.onnx --optimizer adam --lr 0.001 --batch 32 --epochs 2 --schedule
constant --seed S` runs: Adam (lr 1e-3, betas 0.9/0.999, eps 1e-8, no weight decay), batch 32 (the last batch of an
epoch smaller), mean cross-entropy, 2 epochs at a constant rate, the training set shuffled anew every epoch; for seed S
torch.manual_seed(S) draws the shuffles and the dropout masks. Every run starts from the same initial weights. It runs
  on all 60,000 training images for seeds 1, 2, 3, and
  on the first 6,000 (what `--limit 6000` trains on) for seeds 1 to 20,
each evaluated on the 10,000 test images. Those figures are spread wide by the seed, so the script also runs the
recipe in lockstep, with nothing left to chance: 60 Adam steps from the initial weights on training images 0–1,919 in
order (batch k = images 32k to 32k + 31), Dropout off (its module in eval(), the batch norms in train()), recording
every step's loss and the logits (eval()) of the first 16 test images after the last step. Float32 rounding alone
moves such a run: the script runs it twice more with the images of every batch in another order (reversed, and a
fixed permutation), the same arithmetic summed in another order, and records how far those land from it.

Both exports use opset 13, the model in eval(), training=TrainingMode.PRESERVE and do_constant_folding=False. With
training=TrainingMode.EVAL PyTorch 1.13 folds every BatchNorm that follows a Conv into the Conv's weights (whatever
do_constant_folding says), so PRESERVE on an eval() model is what keeps them as BatchNormalization nodes in their
inference form (with their running statistics, epsilon 1e-5 and ONNX's momentum 0.9 = 1 − PyTorch's 0.1). An eval()
export holds no Dropout node (in evaluation it is the identity and the exporter leaves it out); the initial network is
to be trained, so the script puts PyTorch's Dropout(0.3) back in front of the Gemm as ONNX's inference-form
Dropout(data, ratio) — the form LeNetSharp's own export writes, which imports as a Dropout layer.

Writes
  torch_cnn_init.onnx          the initial (untrained) network, with the Dropout node put back
  torch_cnn_init_logits.npy    (16, 10) float32: its logits in eval() for the first 16 test images
  torch_cnn_trained.onnx       the network after the full 60,000-image run of seed 1 (PyTorch's own export, no Dropout node)
  torch_cnn_trained_logits.npy (16, 10) float32: its logits for the first 16 test images
  torch_cnn_lockstep_losses.npy  (60,) float64: the lockstep run's loss at each step (computed in float32)
  torch_cnn_lockstep_logits.npy  (16, 10) float32: its logits for the first 16 test images after the last step
  torch_cnn.json               PyTorch's figures: the trained network's count of correct test images, the test
                               images whose top two logits differ by less than 1e-4 (where float rounding could flip
                               a prediction), the SHA-256 of its 10,000 predicted labels (uint8, 255 at those near
                               ties), how far the reordered lockstep runs land, and every run's count
Each .onnx is checked with onnx.checker and for its ops.
"""
import copy
import gzip
import hashlib
import json
import os
import time

import numpy as np
import onnx
from onnx import helper, numpy_helper
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
MNIST = os.path.join(HERE, "..", "..", "..", "data", "mnist")
FULL_SEEDS = [1, 2, 3]
SUBSET_SEEDS = list(range(1, 21))
LOCKSTEP = 60
SUBSET = 6000
EPOCHS, BATCH, LR, DROPOUT = 2, 32, 1e-3, 0.3
TIE = 1e-4


def idx(name):
    """Reads an IDX file (optionally .gz) as a uint8 array."""
    path = os.path.join(MNIST, name)
    opener = open if os.path.exists(path) else gzip.open
    with opener(path if os.path.exists(path) else path + ".gz", "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def images(name):
    """(N, 1, 28, 28) float32: each byte times float32(1/255), as LeNetSharp's ImageDataset scales them."""
    scale = np.float32(1) / np.float32(255)
    return torch.from_numpy(idx(name).astype(np.float32) * scale).unsqueeze(1)


def make_net():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(32, 32, 3), nn.BatchNorm2d(32), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Dropout(DROPOUT), nn.Linear(32, 10))


def export(net, name, put_dropout_back):
    path = os.path.join(HERE, name)
    net.eval()
    torch.onnx.export(
        net, torch.zeros(2, 1, 28, 28), path, opset_version=13, training=torch.onnx.TrainingMode.PRESERVE,
        do_constant_folding=False, input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    model = onnx.load(path)
    if put_dropout_back:
        graph = model.graph
        gemm = next(n for n in graph.node if n.op_type == "Gemm")
        ratio = numpy_helper.from_array(np.array(DROPOUT, np.float32), "dropout.ratio")
        graph.initializer.append(ratio)
        dropped = "/dropout/Dropout_output_0"
        node = helper.make_node("Dropout", [gemm.input[0], ratio.name], [dropped], name="/dropout/Dropout")
        gemm.input[0] = dropped
        graph.node.insert(list(graph.node).index(gemm), node)
        onnx.save(model, path)
    onnx.checker.check_model(model, full_check=True)
    ops = [n.op_type for n in model.graph.node]
    for op in ["BatchNormalization", "MaxPool", "AveragePool", "GlobalAveragePool", "Gemm"]:
        assert op in ops, f"{name}: no {op} in {ops}"
    assert ops.count("BatchNormalization") == 3, ops
    for n in model.graph.node:
        if n.op_type == "BatchNormalization":
            assert len([o for o in n.output if o]) == 1, f"{name}: {n.name} is in its training form"
        if n.op_type == "Dropout":
            assert len(n.input) == 2, f"{name}: {n.name} has a training_mode input"
    assert ops.count("Dropout") == (1 if put_dropout_back else 0), ops
    print(f"{name}: {os.path.getsize(path)} bytes, ops {ops}")


def evaluate(net, x, y):
    """(correct, logits (N, 10)) in eval()."""
    net.eval()
    with torch.no_grad():
        logits = torch.cat([net(x[i:i + 1000]) for i in range(0, len(x), 1000)])
    return int((logits.argmax(1) == y).sum()), logits


def train(init, seed, x, y):
    """The recipe above from the initial weights; returns the trained network."""
    net = make_net()
    net.load_state_dict(init)
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=LR)
    net.train()
    for _ in range(EPOCHS):
        order = torch.randperm(len(x))
        for start in range(0, len(order), BATCH):
            batch = order[start:start + BATCH]
            optimizer.zero_grad()
            nn.functional.cross_entropy(net(x[batch]), y[batch]).backward()
            optimizer.step()
    return net


def lockstep(init, x, y, order):
    """LOCKSTEP Adam steps, Dropout off, each batch's images in `order`; returns (losses, logits of the first 16 test images)."""
    net = make_net()
    net.load_state_dict(init)
    optimizer = torch.optim.Adam(net.parameters(), lr=LR)
    net.train()
    net[13].eval()
    losses = []
    for k in range(LOCKSTEP):
        batch = (32 * k + order)
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(net(x[batch]), y[batch])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    net.eval()
    with torch.no_grad():
        return np.array(losses), net(test_x[:16]).numpy()


def summary(counts):
    acc = [c / 100 for c in counts]
    return {"correct": counts, "mean_accuracy_percent": round(sum(acc) / len(acc), 3),
            "min_accuracy_percent": min(acc), "max_accuracy_percent": max(acc)}


torch.set_num_threads(1)
train_x, train_y = images("train-images-idx3-ubyte"), torch.from_numpy(idx("train-labels-idx1-ubyte").astype(np.int64))
test_x, test_y = images("t10k-images-idx3-ubyte"), torch.from_numpy(idx("t10k-labels-idx1-ubyte").astype(np.int64))

torch.manual_seed(0)
net = make_net()
init = copy.deepcopy(net.state_dict())
export(net, "torch_cnn_init.onnx", put_dropout_back=True)
init_correct, init_logits = evaluate(net, test_x, test_y)
np.save(os.path.join(HERE, "torch_cnn_init_logits.npy"), init_logits[:16].numpy())
parameters = sum(p.numel() for p in net.parameters())

losses, logits = lockstep(init, train_x, train_y, torch.arange(32))
np.save(os.path.join(HERE, "torch_cnn_lockstep_losses.npy"), losses)
np.save(os.path.join(HERE, "torch_cnn_lockstep_logits.npy"), logits)
reordered = [lockstep(init, train_x, train_y, order)
             for order in [torch.arange(31, -1, -1), torch.randperm(32, generator=torch.Generator().manual_seed(1))]]
drift = {"steps": LOCKSTEP,
         "reordered_max_loss_difference": max(float(np.abs(r[0] - losses).max()) for r in reordered),
         "reordered_max_logit_difference": max(float(np.abs(r[1] - logits).max()) for r in reordered),
         "largest_logit": float(np.abs(logits).max())}
print("lockstep", drift)

runs = {"full": {}, "subset": {}}
trained = None
for name, seeds, count in [("subset", SUBSET_SEEDS, SUBSET), ("full", FULL_SEEDS, len(train_x))]:
    for seed in seeds:
        started = time.time()
        run = train(init, seed, train_x[:count], train_y[:count])
        correct, logits = evaluate(run, test_x, test_y)
        runs[name][seed] = correct
        print(f"{name} seed {seed}: {correct}/10000 ({time.time() - started:.0f} s)")
        if name == "full" and seed == FULL_SEEDS[0]:
            trained, trained_correct, trained_logits = run, correct, logits

export(trained, "torch_cnn_trained.onnx", put_dropout_back=False)
np.save(os.path.join(HERE, "torch_cnn_trained_logits.npy"), trained_logits[:16].numpy())
labels = trained_logits.argmax(1).numpy().astype(np.uint8)
top2 = trained_logits.topk(2, dim=1).values
gaps = (top2[:, 0] - top2[:, 1]).numpy()
near_ties = [int(i) for i in np.nonzero(gaps < TIE)[0]]
labels[near_ties] = 255  # a near tie may round either way: left out of the hash

record = {
    "pytorch": torch.__version__,
    "parameters": parameters,
    "images": "IDX bytes times float32(1/255), no other normalisation",
    "recipe": f"Adam lr {LR}, batch {BATCH}, {EPOCHS} epochs, constant lr, shuffled every epoch; torch.manual_seed(S)",
    "init": {"file": "torch_cnn_init.onnx", "torch_seed": 0, "test_correct": init_correct},
    "trained": {
        "file": "torch_cnn_trained.onnx", "from": f"the full run of seed {FULL_SEEDS[0]}",
        "test_correct": trained_correct,
        "predicted_labels_sha256": hashlib.sha256(labels.tobytes()).hexdigest(),
        "near_tie_threshold": TIE, "near_ties": near_ties, "smallest_top2_gap": float(gaps.min()),
    },
    "lockstep": drift,
    "full": {"images": len(train_x), "seeds": FULL_SEEDS, **summary([runs["full"][s] for s in FULL_SEEDS])},
    "subset": {"images": SUBSET, "seeds": SUBSET_SEEDS, **summary([runs["subset"][s] for s in SUBSET_SEEDS])},
}
with open(os.path.join(HERE, "torch_cnn.json"), "w") as f:
    json.dump(record, f, indent=2)
    f.write("\n")
print(json.dumps(record, indent=2))
