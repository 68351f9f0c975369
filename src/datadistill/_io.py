"""Atomic file and directory writes: nothing already on disk is lost if a write is interrupted."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable


def _default_mode() -> int:
    """The mode `open()` would give a new file (0o666 less the umask); mkstemp's files are 0o600,
    which would keep a shared distilled set unreadable to anyone else."""
    try:  # Linux: read it without changing it (os.umask would, briefly, for every thread)
        line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("Umask:"))
        umask = int(line.split()[1], 8)
    except (OSError, StopIteration, ValueError, IndexError):
        umask = os.umask(0)
        os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _default_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_write_with(path: Path, writer: Callable[[Path], None]) -> None:
    """Call `writer(tmp_path)` then move the temporary file onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        writer(Path(tmp))
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def replace_dir(tmp_dir: Path, target: Path) -> None:
    """Move a fully written `tmp_dir` onto `target`, replacing it only once the new one is complete."""
    target = Path(target)
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(target, old)
        os.replace(tmp_dir, target)
        shutil.rmtree(old)
    else:
        os.replace(tmp_dir, target)


def tensor_digest(tensors: dict[str, Any]) -> str:
    """A short hash of named tensors' bytes (any dtype, any device): which set, which teacher."""
    import torch

    h = hashlib.sha256()
    for name, t in sorted(tensors.items()):
        h.update(name.encode())
        h.update(t.detach().contiguous().cpu().flatten().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:12]
