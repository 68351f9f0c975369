#!/usr/bin/env bash
# Decoupled methods with soft labels (issue 4), resumable: every cell is one JSON file; every set,
# and every sub-evaluation of the fair soft-label track, is kept in benchmarks/sets/; the teacher is
# trained once and cached in benchmarks/teachers/.
set -euo pipefail
cd "$(dirname "$0")/.."
DD=${DD:-.venv/bin/datadistill}
STAGE=${STAGE:-all}
if [ "$STAGE" = all ] || [ "$STAGE" = teacher ]; then
  $DD teacher --dataset fashion-mnist --teacher-cache benchmarks/teachers
fi
if [ "$STAGE" = all ] || [ "$STAGE" = soft ]; then
  # the soft-label track: rded / sre2l with their stored per-view soft labels, each beside a random
  # subset relabelled the same way, the same images with hard labels, and the bytes stored
  $DD bench --dataset fashion-mnist --protocol soft --methods rded,sre2l --ipc 10,1,50
fi
if [ "$STAGE" = all ] || [ "$STAGE" = xarch ]; then
  for m in mlp lenet alexnet vgg11 resnet18; do
    $DD bench --dataset fashion-mnist --protocol soft --methods rded,sre2l --ipc 10 --eval-set model=$m
  done
fi
