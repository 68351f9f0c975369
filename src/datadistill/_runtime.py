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

import ctypes
import ctypes.util
import sys

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
