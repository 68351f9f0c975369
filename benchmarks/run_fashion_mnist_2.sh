#!/usr/bin/env bash
# Second stage of the Fashion-MNIST benchmarks (resumable): the evaluation-speed comparison, the
# full-data reference, more random subsets (IPC 1: 10 in all; IPC 10: 5), then the IPC 50 cells.
set -euo pipefail
cd "$(dirname "$0")/.."
DD=${DD:-.venv/bin/datadistill}
if [ "${SKIP_SPEED:-0}" != 1 ]; then
  $DD speed --dataset fashion-mnist --ipc 10 --epochs 1000
fi
$DD bench --dataset fashion-mnist --methods random --ipc 1 --protocol dc --full-data
$DD bench --dataset fashion-mnist --methods random --ipc 1,10 --seeds 0,1,2,3,4 --protocol dc
$DD bench --dataset fashion-mnist --methods random --ipc 1 --seeds 5,6,7,8,9 --protocol dc
$DD bench --dataset fashion-mnist --methods random,herding,kcenter,kmeans,class-mean,best-of-random --ipc 50 --protocol dc
