#!/usr/bin/env bash
# Wall time of `make demo` on a fresh clone (install included), and of the training command alone.
# Usage: bash benchmarks/demo_time.sh   → benchmarks/results/demo_time.txt
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
git clone -q "$here/.." "$work/moe-tf"
cd "$work/moe-tf"
start=$(date +%s.%N)
make demo > "$work/demo.log" 2>&1
end=$(date +%s.%N)
start_train=$(date +%s.%N)
.venv/bin/moe-tf train --config configs/digits_mmoe.yaml --output-dir "$work/run2" > "$work/train.log" 2>&1
end_train=$(date +%s.%N)
mkdir -p "$here/results"
{
  printf 'make demo on a fresh clone (venv + pip install + train + export): %.1f s\n' "$(echo "$end - $start" | bc)"
  printf 'moe-tf train configs/digits_mmoe.yaml alone (process start to exit): %.1f s\n' "$(echo "$end_train - $start_train" | bc)"
  grep -E "steps in|digit |high " "$work/train.log" | sed 's/^/  /'
} | tee "$here/results/demo_time.txt"
rm -rf "$work"
