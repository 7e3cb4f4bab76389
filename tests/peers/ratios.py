"""The ratio table of run.sh: PyTorch's images/s (peers.py's lines) beside LeNetSharp's (bench's last lines).

Usage: python3 ratios.py DIR
DIR holds pytorch.txt (peers.py's output) and lenet.txt, conv3x3.txt, modern.txt (LeNetSharp bench's output for
each network; any may be missing). Prints one row per measure: both rates and LeNetSharp / PyTorch.
"""
import os
import re
import sys

# LeNet's epoch: what peers.py's and bench's s/epoch figures count.
LENET_EPOCH = 60_000


def lenetsharp(path):
    """(train images/s, infer images/s, infer batch, train batch) from a bench output, or None if it is missing."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        lines = f.read().splitlines()
    last = re.match(r"train: (\d+) images/s \(.*\), infer: (\d+) images/s", lines[-1]) if lines else None
    if last is None:
        sys.exit(f"{path}: no 'train: N images/s (S s/epoch), infer: M images/s' line at the end")
    head = next((l for l in lines if l.startswith("bench: ")), "")
    infer = re.search(r"inference batch (\d+)", head)
    batch = re.search(r", batch (\d+),", head)
    return float(last[1]), float(last[2]), int(infer[1]) if infer else 16, int(batch[1]) if batch else 3


def pytorch(path):
    """{(network, 'train'|'infer', batch): images/s} and LeNet's numpy and PyTorch figures from peers.py's lines."""
    rates, numpy_epoch = {}, None
    with open(path) as f:
        for line in f:
            if m := re.match(r"numpy .*: ([\d.]+) s/epoch", line):
                numpy_epoch = float(m[1])
            elif m := re.match(r"pytorch \S+: ([\d.]+) s/epoch", line):
                rates[("lenet", "train", 3)] = LENET_EPOCH / float(m[1])
            elif m := re.match(r"pytorch \S+ inference: (\d+) images/s at batch (\d+)", line):
                rates[("lenet", "infer", int(m[2]))] = float(m[1])
            elif m := re.match(r"pytorch \S+ (\w+): (train|infer) batch (\d+): (\d+) images/s", line):
                rates[(m[1], m[2], int(m[3]))] = float(m[4])
    return rates, numpy_epoch


def main():
    folder = sys.argv[1]
    torch, numpy_epoch = pytorch(os.path.join(folder, "pytorch.txt"))
    rows = []
    for net in ("lenet", "conv3x3", "modern"):
        ours = lenetsharp(os.path.join(folder, f"{net}.txt"))
        if ours is None:
            continue
        train, infer, infer_batch, batch = ours
        if (net, "train", batch) in torch:
            rows.append((net, f"train, batch {batch}", torch[(net, "train", batch)], train))
        for (n, kind, b), rate in sorted(torch.items()):
            if n == net and kind == "infer":
                what = f"infer, batch {b}" if b == infer_batch else f"infer, PyTorch batch {b}, LeNetSharp {infer_batch}"
                rows.append((net, what, rate, infer))
        if net == "lenet" and numpy_epoch:
            rows.append((net, "train, batch 3: numpy (tutorial)", LENET_EPOCH / numpy_epoch, train))
    print(f"{'network':<9} {'measure':<42} {'PyTorch':>12} {'LeNetSharp':>12}  LeNetSharp / PyTorch")
    for net, what, theirs, ours in rows:
        print(f"{net:<9} {what:<42} {theirs:>12,.0f} {ours:>12,.0f}  {ours / theirs:.2f}x")
    print("(images/s, one thread each on the same core; the numpy row's first column is the tutorial's numpy code)")


if __name__ == "__main__":
    main()
