"""The text conditioning of GEN3C: T5-XXL embeddings ``(1, 512, 1024)`` of the prompt and of the negative prompt.

lyra3d does not run T5-XXL (11 B parameters). What the official image → 3D data generation passes
(``gen3c_single_image_sdg.py`` of nv-tlabs/lyra Lyra-1): the prompt ``""`` (no prompt, prompt upsampler off) and
the default negative prompt, both encoded by T5; with ``--disable_prompt_encoder`` the official code passes zeros
of that shape instead (``dummy_text_embedding``). lyra3d offers both, offline:

- no file: zeros for both (the official ``--disable_prompt_encoder``);
- a safetensors file (``text_embeddings.safetensors`` in the official weights folder) holding ``prompt`` and
  optionally ``negative_prompt``, each ``(1, L, D)`` or ``(L, D)``, computed once elsewhere with T5-XXL (e.g. of
  ``""`` and of the official negative prompt); a missing ``negative_prompt`` is zeros.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from lyra3d.errors import InputError

#: T5-XXL as Cosmos reads it: 512 tokens of 1024 numbers.
TEXT_LENGTH, TEXT_DIM = 512, 1024
KEYS = ("prompt", "negative_prompt")


def zero_text(dim: int = TEXT_DIM, length: int = TEXT_LENGTH) -> tuple[Tensor, Tensor]:
    """The official dummy embeddings: zeros ``(1, length, dim)`` for the prompt and the negative prompt."""
    return torch.zeros(1, length, dim), torch.zeros(1, length, dim)


def load_text_embeddings(path: str | Path | None, dim: int = TEXT_DIM) -> tuple[Tensor, Tensor]:
    """``(prompt, negative_prompt)`` embeddings ``(1, L, dim)`` float32 from ``path`` (see the module docstring), or
    zeros when ``path`` is ``None``. One-line errors for an unreadable file, a missing ``prompt`` or a wrong width."""
    if path is None:
        return zero_text(dim)
    path = Path(path)
    try:
        from safetensors.torch import load_file

        data = load_file(str(path))
    except Exception as e:  # noqa: BLE001 - any unreadable file is one line
        raise InputError(f"cannot read the text embeddings {path} ({type(e).__name__}); give a safetensors file "
                         "with 'prompt' (1, L, 1024) and optionally 'negative_prompt'") from None
    if "prompt" not in data:
        raise InputError(f"{path} holds no 'prompt' tensor (it has {', '.join(sorted(data)) or 'nothing'})")
    out = []
    for key in KEYS:
        t = data.get(key)
        if t is None:
            out.append(torch.zeros_like(out[0]))
            continue
        t = t[None] if t.ndim == 2 else t
        if t.ndim != 3 or t.shape[0] != 1 or t.shape[-1] != dim:
            raise InputError(f"{path}: '{key}' must be (1, L, {dim}), got {tuple(t.shape)}")
        out.append(t.float())
    return out[0], out[1]
