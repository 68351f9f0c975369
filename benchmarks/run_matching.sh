#!/usr/bin/env bash
# Matching methods (issue 3), resumable: every cell is one JSON file, every distilled set is kept in
# benchmarks/sets/ and checkpoints there, so a killed run resumes mid-distillation.
# Standard protocol: ConvNet-3, 1000 epochs with DSA, 5 models, hard labels (`--protocol dsa`).
set -euo pipefail
cd "$(dirname "$0")/.."
DD=${DD:-.venv/bin/datadistill}
STAGE=${STAGE:-all}
fm() { $DD bench --dataset fashion-mnist --protocol dsa "$@"; }
if [ "$STAGE" = all ] || [ "$STAGE" = speed ]; then
  [ -f benchmarks/results/speed-dm-fashion-mnist-ipc10.json ] || $DD speed --what dm --ipc 10
  [ -f benchmarks/results/speed-dsa-fashion-mnist-ipc10.json ] || $DD speed --what dsa --ipc 10
  [ -f benchmarks/results/speed-dc-fashion-mnist-ipc1.json ] || \
    $DD speed --what dc --ipc 1 --set pool_size=64 --set refresh_every=10 --set iterations=1000
fi
if [ "$STAGE" = all ] || [ "$STAGE" = dm ]; then
  fm --methods random,dm --ipc 1,10
  fm --methods dm-multilayer --ipc 10,1
  for m in mlp lenet alexnet vgg11 resnet18; do fm --methods random,dm,dm-multilayer --ipc 10 --eval-set model=$m; done
  $DD bench --dataset mnist-5k --protocol dsa --methods random,dm,dm-multilayer --ipc 1,10
  fm --methods random,dm,dm-multilayer --ipc 50
fi
if [ "$STAGE" = all ] || [ "$STAGE" = dc ]; then
  # The defaults are the budget schedule (methods/dc.py): IPC 1 = 1,000 iterations from real images
  # with a pool of 64 views; IPC 10 = a DM start (the stored dm set's config: kept in <set>/init)
  # refined for 50 iterations; IPC 50 = a DM start refined for 10.
  fm --methods dc,dsa --ipc 1,10
  # variants, each its own row (chosen between on the validation split, never test)
  fm --methods dsa --ipc 1 --set dsa.init=dm
  fm --methods dsa --ipc 1 --set dsa.pool_size=64 --set dsa.refresh_every=10 --set dsa.init=kmeans
  fm --methods dsa --ipc 10 --set dsa.init=kmeans --set dsa.iterations=75
  fm --methods dsa --ipc 10 --set dsa.init=kmeans --set dsa.iterations=75 --set dsa.lr_img=0.3
  for m in mlp lenet alexnet vgg11 resnet18; do fm --methods dc,dsa --ipc 10 --eval-set model=$m; done
  $DD bench --dataset mnist-5k --protocol dsa --methods dc,dsa --ipc 1,10
  fm --methods dc,dsa --ipc 50
fi
