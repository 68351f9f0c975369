"""Process-level speed settings the command line applies at start (Python users may call them).

glibc's malloc serves every allocation above its mmap threshold (128 KiB, adapting up to 32 MiB)
with a fresh mmap and returns it to the kernel on free. A training step allocates activations of
tens of MiB, so every step paid page faults and zeroing of fresh pages: ConvNet-3 training on
Fashion-MNIST spent a third of its CPU time in the kernel. Keeping freed memory in the heap
(mmap threshold 1 GiB, no trimming) removes that: 2 epochs on 20k images took 28 s instead of 51 s
on our 2-core machine, with the same results bit for bit (only where memory comes from changes).
Small batches gain little: one IPC 10 evaluation (300 epochs) took 24.3 s instead of 25.9 s.
The cost is that the process keeps its peak heap until it exits.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import sys
import warnings
from typing import Iterator

from .errors import SlowPathWarning

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def tune_allocator(mmap_threshold: int = 1 << 30, trim_threshold: int = 2**31 - 1) -> bool:
    """Raise glibc malloc's mmap and trim thresholds; True when applied (Linux with glibc only)."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # another C library (musl): leave it alone
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(M_TRIM_THRESHOLD, trim_threshold))


def machine() -> dict:
    """What a timing was measured on: CPU count, threads, platform, the CPU model and its bf16
    path ('amx' for AMX-BF16 tiles, 'avx512_bf16' for the vector instructions alone, 'none').
    Our sessions land on different CPUs: a 2048x2048 bf16 matrix product ran at 799-880 GFLOP/s in
    some sessions and at 418-475 in others (an AMD EPYC without AMX), and the compiled bf16
    evaluation's speed-up over the plain eager fp32 loop was 4.4x in an earlier session (CPU not
    recorded) against 2.6x on the AMD EPYC. A time or a speed-up means little without its CPU."""
    import os
    import platform

    import torch

    model, flags = "", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not model:
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
                if model and flags:
                    break
    except OSError:  # not Linux
        pass
    bf16 = "amx" if "amx_bf16" in flags else "avx512_bf16" if "avx512_bf16" in flags else "none"
    return {"cpus": os.cpu_count(), "threads": torch.get_num_threads(), "platform": platform.platform(),
            "processor": model or platform.processor(), "bf16": bf16 if flags else "unknown"}


def machine_text(m: dict | None) -> str:
    """One line for a table: 'AMD EPYC (AVX512-BF16, no AMX), 2 threads'; 'not recorded'."""
    if not m or not m.get("processor"):
        return "not recorded" if not m else f"CPU not recorded, {m.get('threads', '?')} threads"
    bf16 = {"amx": "AMX-BF16", "avx512_bf16": "AVX512-BF16, no AMX", "none": "no bf16 instructions"}.get(
        m.get("bf16", ""), "bf16 path not recorded")
    return f"{m['processor']} ({bf16}), {m.get('threads', '?')} threads"


@functools.cache
def native_bf16(device_type: str = "cpu") -> bool:
    """Whether bf16 autocast on `device_type` runs on kernels made for it. On a CPU: oneDNN's own
    answer (on x86 its bf16 kernels need AVX-512), else the CPU flags (AMX-BF16 or AVX512-BF16).
    Other devices answer True (not measured here: no warning without evidence).
    On a CPU with AVX2 only, bf16 autocast falls back to slow generic code. On an AMD EPYC with AVX2
    (2 threads), compiled training steps took 7x to 14x as long as in fp32: at batch 10 (AdamW, soft
    targets; benchmarks/screens/bf16_steps.py) ConvNet-3 0.46 s against 0.042 s, VGG-11 1.68 against
    0.23, AlexNet 2.21 against 0.18, ResNet-18 4.50 against 0.36; one ConvNet-3 evaluation (IPC 10,
    50 epochs, DSA) 226.7 s against 15.7 s (`datadistill speed --epochs 50 --paths
    fast-fp32,fast,eager-fp32`)."""
    import torch

    if device_type != "cpu":
        return True
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without the check: read the CPU's flags
        return machine()["bf16"] in ("amx", "avx512_bf16", "unknown")


def warn_if_slow_bf16(precision: str, device_type: str) -> None:
    """A `SlowPathWarning` when `precision` is 'bf16' and `device_type` has no native bf16 kernels.
    Python's default filter shows it once per process: its text and the line it is raised from
    never change."""
    if precision != "bf16" or native_bf16(device_type):
        return
    warnings.warn(
        "this CPU has no bf16 kernels (as with AVX2 without AVX-512): bf16 autocast trains 7-14x slower "
        "than fp32 here; train in fp32 with --eval-set precision=fp32 (evaluation), --set precision=fp32 "
        "(a matching method), --teacher-set precision=fp32 (a teacher) or --set feature_precision=fp32 "
        "(a coreset's features); results under another precision are another protocol",
        SlowPathWarning)


@contextlib.contextmanager
def exact_fp32(device_type: str, enabled: bool = True) -> Iterator[None]:
    """fp32 work in fp32 on a CUDA device: there PyTorch runs convolutions in TF32 by default
    (cuDNN's `allow_tf32`, a 10-bit mantissa), so an evaluation labelled fp32 would round as TF32
    on a GPU and as fp32 on a CPU. Inside, TF32 is off for convolutions and matrix products; the
    flags are restored on exit. No effect elsewhere or when not `enabled`."""
    if not enabled or device_type != "cuda":
        yield
        return
    import torch

    conv, matmul = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = conv, matmul
