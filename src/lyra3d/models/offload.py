"""Where a large diffusers network's weights live while it runs (issue 24's memory settings), one of
:data:`OFFLOAD_MODES`:

- ``"none"``: on the device all the time;
- ``"model"``: on the CPU (pinned) between uses, copied to the device whole for a use and dropped there after it
  (:func:`onloaded`: one transfer per use; the CPU copy is kept, so nothing moves back);
- ``"group"``: diffusers' group offloading, block level, one block per group, with CUDA streams (the next block is
  prefetched from pinned CPU memory while one runs): only about two blocks on the device at a time. On a CPU
  device it is the same as ``"none"``.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from lyra3d.errors import InputError

OFFLOAD_MODES = ("none", "model", "group")


def _pin(model: nn.Module) -> None:
    if torch.cuda.is_available():
        for t in [*model.parameters(), *model.buffers()]:
            t.data = t.data.pin_memory()


def place(model: nn.Module, device: str | torch.device, mode: str) -> nn.Module:
    """Put ``model`` where ``mode`` keeps it between uses (on ``device``, or on the CPU, pinned)."""
    if mode not in OFFLOAD_MODES:
        raise InputError(f"offload must be one of {', '.join(OFFLOAD_MODES)}, got {mode!r}")
    device = torch.device(device)
    if mode == "none" or device.type != "cuda":
        return model.to(device)
    model.to("cpu")
    if mode == "group":
        model.enable_group_offload(onload_device=device, offload_device=torch.device("cpu"),
                                   offload_type="block_level", num_blocks_per_group=1, use_stream=True)
    else:
        _pin(model)
    return model


@contextmanager
def onloaded(model: nn.Module, device: str | torch.device, mode: str):
    """Within the block, ``model`` runs on ``device``: with ``"model"`` its tensors are copied there and point back at
    their (pinned) CPU copies after; the other modes leave it where :func:`place` put it."""
    device = torch.device(device)
    if mode != "model" or device.type != "cuda":
        yield model
        return
    tensors = [*model.parameters(), *model.buffers()]
    kept = [t.data for t in tensors]  # the (pinned) CPU copies: the weights do not change, so nothing moves back
    for t in tensors:
        t.data = t.data.to(device, non_blocking=True)
    try:
        yield model
    finally:
        for t, cpu in zip(tensors, kept):
            t.data = cpu
        torch.cuda.empty_cache()
