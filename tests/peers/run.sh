#!/usr/bin/env bash
# Side by side, one thread each, batch 3, real MNIST: the tutorial's numpy algorithm, PyTorch, and LeNetSharp.
set -euo pipefail
cd "$(dirname "$0")/../.."
py=/usr/bin/python3
if ! "$py" -c 'import numpy, torch' 2>/dev/null; then
  apt-get update -qq && apt-get install -y -qq python3-numpy python3-torch >/dev/null
fi
dotnet build -c Release samples/LeNetSharp.Trainer -nologo -v quiet
dotnet run -c Release --no-build --project samples/LeNetSharp.Trainer -- fetch >/dev/null
"$py" tests/peers/peers.py data/mnist "$@" | tee /tmp/lenetsharp-peers.txt
ours=$(dotnet run -c Release --no-build --project samples/LeNetSharp.Trainer -- bench --steps 20000 | tail -n 1)
echo "lenetsharp: $ours"
ls=$(sed -n 's/.*(\([0-9.]*\) s\/epoch).*/\1/p' <<<"$ours")
while read -r line; do
  s=$(sed -n 's/.*: \([0-9.]*\) s\/epoch.*/\1/p' <<<"$line")
  [ -n "$s" ] && printf '%-45s %8.1f s/epoch  = %6.1fx LeNetSharp (%s s/epoch)\n' "${line%%:*}" "$s" "$(awk -v a="$s" -v b="$ls" 'BEGIN { print a / b }')" "$ls"
done </tmp/lenetsharp-peers.txt
