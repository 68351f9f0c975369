"""Seconds per training step in bf16 autocast and in fp32, per architecture and batch, on this CPU.

A screen, not a test or a bench cell: it tells whether bf16 pays on the machine at hand. Each row
trains a fresh model (AdamW, soft targets at temperature 4, as the soft protocol) for one warm-up
epoch (the compile), then times two epochs. Usage:

    .venv/bin/python benchmarks/screens/bf16_steps.py [--models convnet,vgg11,alexnet,resnet18] [--batches 10,256] [--eager]

On an AMD EPYC with AVX2 only (2 threads, 2026-12-03), `--batches 10` printed bf16-steps/amd-epyc-avx2.txt.
"""
from __future__ import annotations

import argparse
import time

import torch

from datadistill._runtime import machine, machine_text
from datadistill.evaluation.train import fit
from datadistill.models import get_model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="convnet,vgg11,alexnet,resnet18")
    ap.add_argument("--batches", default="10,256")
    ap.add_argument("--eager", action="store_true", help="no torch.compile")
    args = ap.parse_args()
    print(machine_text(machine()), flush=True)
    for arch in args.models.split(","):
        for bs in (int(b) for b in args.batches.split(",")):
            for prec in ("bf16", "fp32"):
                torch.manual_seed(0)
                m = get_model(arch, channels=1, num_classes=10, image_size=(28, 28))
                n = 100 if bs <= 100 else 2 * bs
                x = torch.randn(n, 1, 28, 28)
                y = torch.softmax(torch.randn(n, 10), 1)
                g = torch.Generator().manual_seed(0)
                kw = dict(lr=1e-3, generator=g, batch_size=bs, compile=not args.eager, precision=prec,
                          optimizer="adamw", schedule="cosine", temperature=4.0)
                fit(m, x, y, epochs=1, **kw)
                t = time.perf_counter()
                r = fit(m, x, y, epochs=2, **kw)
                print(f"{arch} batch {bs} {prec}: {(time.perf_counter() - t) / r.steps:.4f} s/step", flush=True)


if __name__ == "__main__":
    main()
