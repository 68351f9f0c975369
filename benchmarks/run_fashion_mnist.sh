#!/usr/bin/env bash
# The Fashion-MNIST grid of BENCHMARKS.md: every coreset baseline at IPC 1 / 10 / 50 under the 'dc'
# protocol (ConvNet-3, 300 epochs, no augmentation, 5 models), then the full-data reference.
# Resumable: finished cells (one JSON each in benchmarks/results/) are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
DD=${DD:-.venv/bin/datadistill}
METHODS=random,herding,kcenter,kmeans,class-mean,best-of-random
$DD bench --dataset fashion-mnist --methods $METHODS --ipc 1,10 --protocol dc
$DD bench --dataset fashion-mnist --methods $METHODS --ipc 50 --protocol dc
$DD bench --dataset fashion-mnist --methods random --ipc 1 --protocol dc --full-data
