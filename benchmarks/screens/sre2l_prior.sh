#!/usr/bin/env bash
# Screen of DeepInversion's total-variation prior for sre2l on the validation split (never test):
# Fashion-MNIST, soft protocol, 2 models per set, distillation seeds 0-2, the bench's teacher cache.
# Usage: benchmarks/screens/sre2l_prior.sh IPC TV_L2 [TV_L2 ...]   (0 = the paper's SRe2L)
# Resumable: a finished (config, seed) leaves DIR/val.txt and is skipped.
set -euo pipefail
cd "$(dirname "$0")/../.."
DD=${DD:-.venv/bin/datadistill}
SEEDS=${SEEDS:-0 1 2}
ipc=$1; shift
for tv in "$@"; do
  for s in $SEEDS; do
    dir=${OUT:-/tmp/sre2l_prior}/ipc${ipc}_tv${tv}_s${s}
    [ -f "$dir/val.txt" ] && { echo "ipc $ipc tv_l2 $tv seed $s: $(cat "$dir/val.txt")"; continue; }
    $DD --quiet distill --dataset fashion-mnist --method sre2l --ipc "$ipc" --seed "$s" --set tv_l2="$tv" \
      --teacher-cache benchmarks/teachers --out "$dir" --force >/dev/null
    $DD --quiet evaluate "$dir" --split val --protocol soft --eval-set num_models=2 \
      --teacher-cache benchmarks/teachers | tail -1 > "$dir/val.tmp"
    mv "$dir/val.tmp" "$dir/val.txt"
    echo "ipc $ipc tv_l2 $tv seed $s: $(cat "$dir/val.txt")"
  done
done
