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
