"""Atomic file writes: a file appears under its final name only once it is complete."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

from lyra3d.errors import InputError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``, on error removed.

    The new file gets the usual permissions (0666 less the umask), not mkstemp's private 0600.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise InputError(f"output folder does not exist: {path.parent}")
    if path.is_dir():
        raise InputError(f"output path is a folder: {path}")
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    except PermissionError:
        raise InputError(f"cannot write to {path.parent} (permission denied)") from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_json(path: str | Path, what: str = "file"):
    """Parse a JSON file, or raise a one-line :class:`InputError` naming ``what`` is missing or broken."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{what} {path} is not valid JSON ({e})") from None
