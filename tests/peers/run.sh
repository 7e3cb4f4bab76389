#!/usr/bin/env bash
# Side by side, one thread each, pinned to the same core, at the same batches, on MNIST: the tutorial's numpy
# algorithm, PyTorch and LeNetSharp on LeNet (batch 3), on the 3x3 network of conv3x3.onnx (SGD with momentum 0.9,
# batch 32) and on the modern CNN (batch norm, AdamW, batch 64); one ratio table at the end.
# Environment: PEERS_CPU (the core, default 0), PEERS_DATA (default data/mnist, fetched when missing), PEERS_OUT (where
# each side's output is kept, default /tmp/lenetsharp-peers), LENET_STEPS, CONV3X3_STEPS, MODERN_STEPS (bench's timed
# steps); arguments go to peers.py (e.g. --torch-batches 2000).
set -euo pipefail
cd "$(dirname "$0")/../.."
# Every peer on the same core, one after the other, so the ratios compare like with like.
pin=(taskset -c "${PEERS_CPU:-0}")
command -v taskset >/dev/null || pin=()
py=/usr/bin/python3
data=${PEERS_DATA:-data/mnist}
out=${PEERS_OUT:-/tmp/lenetsharp-peers}
conv3x3_infer=32 modern_infer=64
if ! "$py" -c 'import numpy, torch' 2>/dev/null; then
  apt-get update -qq && apt-get install -y -qq python3-numpy python3-torch >/dev/null
fi
dotnet build -c Release samples/LeNetSharp.Trainer -nologo -v quiet
[ "$data" != data/mnist ] || dotnet run -c Release --no-build --project samples/LeNetSharp.Trainer -- fetch >/dev/null
mkdir -p "$out"
grep -m1 'model name' /proc/cpuinfo || true
"${pin[@]}" "$py" tests/peers/peers.py "$data" --conv3x3-infer-batch "$conv3x3_infer" --modern-infer-batch "$modern_infer" "$@" | tee "$out/pytorch.txt"
bench=("${pin[@]}" dotnet samples/LeNetSharp.Trainer/bin/Release/net10.0/LeNetSharp.Trainer.dll bench --data "$data" --threads 1)
# The networks asked for with --nets (all three by default).
nets=lenet,conv3x3,modern
for ((i = 1; i <= $#; i++)); do
  if [ "${!i}" = --nets ]; then j=$((i + 1)); nets=${!j}; fi
  case "${!i}" in --nets=*) nets=${!i#--nets=} ;; esac
done
wanted() { [[ ",$nets," == *",$1,"* ]]; }
wanted lenet && "${bench[@]}" --steps "${LENET_STEPS:-20000}" | tee "$out/lenet.txt" | grep -E '^(peak|train|infer)'
wanted conv3x3 && "${bench[@]}" --arch tests/peers/conv3x3.onnx --batch 32 --optimizer sgd --momentum 0.9 --infer-batch "$conv3x3_infer" \
  --steps "${CONV3X3_STEPS:-1000}" | tee "$out/conv3x3.txt" | grep -E '^(train|infer)'
wanted modern && "${bench[@]}" --net modern --batch 64 --optimizer adamw --infer-batch "$modern_infer" --steps "${MODERN_STEPS:-500}" \
  | tee "$out/modern.txt" | grep -E '^(train|infer)'
"$py" tests/peers/ratios.py "$out"
