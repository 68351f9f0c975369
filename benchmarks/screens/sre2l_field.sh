#!/usr/bin/env bash
# Screen one sre2l config field on the validation split (never test): Fashion-MNIST, soft protocol,
# 2 models per set, the bench's teacher cache. The rule for adopting a value is written in the
# method's docstring before the run (see `methods/sre2l.py`).
# Usage: benchmarks/screens/sre2l_field.sh IPC FIELD VALUE [VALUE ...]   e.g. 1 tv_l2 0 1e-4
#        (SEEDS="0 1 2" by default; OUT=/tmp/sre2l_screen; EXTRA="k=v ..." sets more fields on every row)
# Resumable: a finished (field value, seed) leaves DIR/val.txt and is skipped.
set -euo pipefail
cd "$(dirname "$0")/../.."
DD=${DD:-.venv/bin/datadistill}
SEEDS=${SEEDS:-0 1 2}
ipc=$1; field=$2; shift 2
extra=(); tag=""
for kv in ${EXTRA:-}; do extra+=(--set "$kv"); tag+="_${kv//=/}"; done
for value in "$@"; do
  for s in $SEEDS; do
    dir=${OUT:-/tmp/sre2l_screen}/ipc${ipc}_${field}${value}${tag}_s${s}
    [ -f "$dir/val.txt" ] && { echo "ipc $ipc $field $value seed $s: $(cat "$dir/val.txt")"; continue; }
    if [ ! -f "$dir/synthetic.safetensors" ]; then
      $DD --quiet distill --dataset fashion-mnist --method sre2l --ipc "$ipc" --seed "$s" --set "$field=$value" "${extra[@]}" \
        --teacher-cache benchmarks/teachers --out "$dir" --force >/dev/null
    fi
    $DD --quiet evaluate "$dir" --split val --protocol soft --eval-set num_models=2 \
      --teacher-cache benchmarks/teachers | tail -1 > "$dir/val.tmp"
    mv "$dir/val.tmp" "$dir/val.txt"
    echo "ipc $ipc $field $value seed $s: $(cat "$dir/val.txt")"
  done
done
