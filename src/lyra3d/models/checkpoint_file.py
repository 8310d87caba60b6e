"""Reading a PyTorch checkpoint file that someone else wrote (the official Lyra-1 and GEN3C releases) safely:
``torch.load(weights_only=True)`` (no code in the file runs), memory-mapped where the format allows, and every
way the file can fail to load turned into one line. What the loaded object must hold is the caller's to check."""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path

import torch

from lyra3d.errors import InputError


def load_checkpoint_file(path: str | Path):
    """The object in the checkpoint file ``path`` (which must exist), tensors on the CPU.

    Raises:
        InputError: the file is no PyTorch checkpoint, or it names code (a class or function) to run."""
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if found is None:
            raise InputError(f"{path} is not a PyTorch checkpoint (it does not unpickle)") from None
        raise InputError(f"{path} holds more than tensors and plain data (it names {found.group(1)}); it is not "
                         "loaded with code: if you trust the file, save its network's state dict alone with "
                         "torch.save and convert that") from None
    except Exception as e:  # noqa: BLE001 - any file torch cannot read (a text file fails with a KeyError) is one line
        raise InputError(f"{path} is not a PyTorch checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:160]})"
                         ) from None
