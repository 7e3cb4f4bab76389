#!/usr/bin/env bash
# Side by side, one thread each, batch 3, real MNIST: the tutorial's numpy algorithm, PyTorch, and LeNetSharp.
set -euo pipefail
cd "$(dirname "$0")/../.."
# Every peer on the same core (PEERS_CPU, default 0), one after the other, so the ratios compare like with like.
pin=(taskset -c "${PEERS_CPU:-0}")
command -v taskset >/dev/null || pin=()
py=/usr/bin/python3
if ! "$py" -c 'import numpy, torch' 2>/dev/null; then
  apt-get update -qq && apt-get install -y -qq python3-numpy python3-torch >/dev/null
fi
dotnet build -c Release samples/LeNetSharp.Trainer -nologo -v quiet
dotnet run -c Release --no-build --project samples/LeNetSharp.Trainer -- fetch >/dev/null
"${pin[@]}" "$py" tests/peers/peers.py data/mnist "$@" | tee /tmp/lenetsharp-peers.txt
"${pin[@]}" dotnet samples/LeNetSharp.Trainer/bin/Release/net10.0/LeNetSharp.Trainer.dll bench --steps 20000 | tee /tmp/lenetsharp-bench.txt | grep -E '^(peak|train|infer)'
ours=$(tail -n 1 /tmp/lenetsharp-bench.txt)
echo "lenetsharp: $ours"
ls=$(sed -n 's/.*(\([0-9.]*\) s\/epoch).*/\1/p' <<<"$ours")
li=$(sed -n 's/.*infer: \([0-9.]*\) images\/s.*/\1/p' <<<"$ours")
while read -r line; do
  s=$(sed -n 's/.*: \([0-9.]*\) s\/epoch.*/\1/p' <<<"$line")
  [ -n "$s" ] && printf '%-45s %8.1f s/epoch  = %6.1fx LeNetSharp (%s s/epoch)\n' "${line%%:*}" "$s" "$(awk -v a="$s" -v b="$ls" 'BEGIN { print a / b }')" "$ls"
  r=$(sed -n 's/.*inference: \([0-9.]*\) images\/s.*/\1/p' <<<"$line")
  [ -n "$r" ] && printf '%-45s %8.0f images/s = LeNetSharp (%s images/s) / %.2f\n' "${line%%:*}" "$r" "$li" "$(awk -v a="$li" -v b="$r" 'BEGIN { print a / b }')"
done </tmp/lenetsharp-peers.txt
