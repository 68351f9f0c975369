#!/usr/bin/env bash
# Screen of recovery against several teachers at once (`sre2l teachers=N`: the bench's teacher and
# N-1 more of its recipe, seeds 1..N-1) on the validation split (never test): Fashion-MNIST, soft
# protocol, 2 models per set, the bench's teacher cache (companions are trained into it).
# Usage: benchmarks/screens/sre2l_teachers.sh IPC N [N ...]   (1 = the paper's SRe2L)
# Rule, written before the run: adopt N > 1 only if the mean over seeds 0 / 1 gains >= 1.0 point over
# N = 1 and neither seed loses; stop after seed 0 if it gains < 0.5.
# Resumable: a finished (N, seed) leaves DIR/val.txt and is skipped.
set -euo pipefail
cd "$(dirname "$0")/../.."
DD=${DD:-.venv/bin/datadistill}
SEEDS=${SEEDS:-0 1}
ipc=$1; shift
for n in "$@"; do
  for s in $SEEDS; do
    dir=${OUT:-/tmp/sre2l_teachers}/ipc${ipc}_n${n}_s${s}
    [ -f "$dir/val.txt" ] && { echo "ipc $ipc teachers $n seed $s: $(cat "$dir/val.txt")"; continue; }
    if [ ! -f "$dir/synthetic.safetensors" ]; then
      $DD --quiet distill --dataset fashion-mnist --method sre2l --ipc "$ipc" --seed "$s" --set teachers="$n" \
        --teacher-cache benchmarks/teachers --out "$dir" --force >/dev/null
    fi
    $DD --quiet evaluate "$dir" --split val --protocol soft --eval-set num_models=2 \
      --teacher-cache benchmarks/teachers | tail -1 > "$dir/val.tmp"
    mv "$dir/val.tmp" "$dir/val.txt"
    echo "ipc $ipc teachers $n seed $s: $(cat "$dir/val.txt")"
  done
done
