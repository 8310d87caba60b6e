"""Where work runs: one check of a device name (a one-line error when it is unknown or its GPU is absent),
and the facts a report records about the run (versions, threads, peak memory)."""

from __future__ import annotations

import torch

from lyra3d.errors import InputError


def check_device(device: str | torch.device) -> torch.device:
    """The torch device, or a one-line error when it is unknown or its GPU is not there. ``"auto"``: the
    first CUDA GPU when torch sees one, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(f"unknown device {device!r}; use cpu, cuda or auto") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {device} asked for, but torch sees no CUDA GPU here; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(f"device {device} does not exist: {torch.cuda.device_count()} CUDA GPU(s) here")
    elif dev.type != "cpu":
        raise InputError(f"device {device} is not supported; use cpu, cuda or auto")
    return dev


def environment() -> dict:
    """Versions of lyra3d, Python and the main libraries, and the CPU threads torch uses."""
    import platform

    import numpy as np

    from lyra3d import __version__

    return {"lyra3d": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "torch_threads": torch.get_num_threads(),
            "cuda": torch.version.cuda if torch.cuda.is_available() else None}


def peak_memory_mb() -> float:
    """The process's peak resident memory so far (MB; ``ru_maxrss``)."""
    import resource
    import sys

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024
