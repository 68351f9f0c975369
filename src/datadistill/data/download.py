"""Opt-in download of public dataset files into a directory the caller names."""
from __future__ import annotations

import hashlib
import logging
import urllib.error
import urllib.request
from pathlib import Path
from typing import Mapping, Sequence

from .._io import atomic_write_bytes
from ..errors import DataError

log = logging.getLogger(__name__)
TIMEOUT_S = 30


def _fetch_one(name: str, mirrors: Sequence[str], md5: str | None) -> bytes:
    """The bytes of `name` from the first mirror that serves it with the right checksum."""
    failures = []
    for base in mirrors:
        url = base.rstrip("/") + "/" + name
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
                data = response.read()
        except (urllib.error.URLError, OSError, ValueError) as e:
            failures.append(f"{url}: {e}")
            continue
        if md5 is None or hashlib.md5(data).hexdigest() == md5:
            return data
        failures.append(f"{url}: checksum mismatch")
    raise OSError("; ".join(failures))


def fetch_files(
    names: Sequence[str],
    directory: Path,
    mirrors: Sequence[str],
    md5: Mapping[str, str],
    *,
    what: str,
) -> None:
    """Download each of `names` into `directory` (atomically), trying `mirrors` in order.
    Raises DataError, in one line, saying where to put the files by hand when all mirrors fail."""
    for name in names:
        log.info("downloading %s into %s", name, directory)
        try:
            data = _fetch_one(name, mirrors, md5.get(name))
        except OSError as e:
            log.debug("download of %s failed: %s", name, e)
            raise DataError(
                f"could not download {what} file {name} (offline?); "
                f"put {', '.join(names)} into {directory} by hand"
            ) from None
        atomic_write_bytes(directory / name, data)
