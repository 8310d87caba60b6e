"""Lyra-1's official 3DGS decoder (:class:`~lyra3d.models.lyra1_decoder.Lyra1Decoder`, converted by
``lyra3d convert lyra1-decoder``) as the reconstructor of the image → 3D pipeline: the teacher's latents of every
trajectory and every decoded frame's camera → pruned lyra3d :class:`~lyra3d.core.gaussians.Gaussians`.

What it reads, as the official code feeds it (nv-tlabs/lyra Lyra-1 ``sample.py``, ``src/models/data/provider.py``,
``src/models/utils/model.py``): the tokenizer's *raw* latents (the generated latents denormalised:
``latents / sigma_data · std + mean``; lyra3d's teacher returns the normalised ones, so only ``· std + mean``
remains), and the Plücker rays ``(o × d, d)`` of every frame, each 3-channel half passed to the tokenizer's encoder
*as a video* (unnormalised values, raw latents out). The decoder's own activations and its pruning (keep the
most opaque 20 %, ``gaussians_prune_ratio`` 0.8, no random share) are in the model and its config.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from lyra3d.core.cameras import Cameras
from lyra3d.core.gaussians import Gaussians
from lyra3d.errors import InputError
from lyra3d.models.lyra1_decoder import Lyra1Decoder


def raw_encoder(tokenizer) -> Callable[[Tensor], Tensor]:
    """The official recon model's ``encode``: a video ``(N, T, 3, H, W)`` of values as they are (the tokenizer's
    [-1, 1] range) → the tokenizer's raw latents ``(N, T', C, h, w)`` (not normalised), float32."""
    def encode(video: Tensor) -> Tensor:
        lat = tokenizer.encode((video.float() + 1) / 2)
        return tokenizer.denormalise(lat.permute(0, 2, 1, 3, 4)).permute(0, 2, 1, 3, 4)
    return encode


class Lyra1Reconstructor(nn.Module):
    """The pipeline's decoder part: :class:`Lyra1Decoder` plus the tokenizer it encodes the rays with."""

    def __init__(self, model: Lyra1Decoder, tokenizer):
        super().__init__()
        self.model, self.tokenizer = model.eval(), tokenizer
        if tokenizer.latent_channels != model.config.latent_channels or \
                tokenizer.spatial_factor != model.config.spatial_compression or \
                tokenizer.temporal_factor != model.config.temporal_compression:
            raise InputError(f"the Lyra-1 decoder reads {model.config.latent_channels}-channel latents of an "
                             f"{model.config.temporal_compression}x{model.config.spatial_compression}x"
                             f"{model.config.spatial_compression} tokenizer; the tokenizer gives "
                             f"{tokenizer.latent_channels}, {tokenizer.temporal_factor}x{tokenizer.spatial_factor}: "
                             "use the Cosmos 8x8x8 tokenizer")

    @property
    def config(self):
        return self.model.config

    def frames(self, latent_frames: int) -> int:
        return self.model.frames(latent_frames)

    @torch.no_grad()
    def decode(self, latents: Tensor, cameras: Cameras, bf16: bool = False) -> Gaussians:
        """``latents (V, T', C, h, w)`` (the tokenizer's normalised latents, as the teacher gives them) and the
        ``V·T`` cameras of every decoded frame → the official decoder's Gaussians, pruned as configured.

        The network runs in its weights' dtype (bf16 weights for bf16, as the official inference; ``bf16`` is
        accepted for the pipeline's interface and not used): no autocast, so the rays and the Gaussians' positions
        are computed in float32 and the Plücker rays cast to the weights' dtype, as the official code does."""
        dev = next(self.model.parameters()).device
        raw = self.tokenizer.denormalise(latents.to(dev).permute(0, 2, 1, 3, 4)).permute(0, 2, 1, 3, 4)
        return self.model.decode(raw, cameras, encode=raw_encoder(self.tokenizer), prune=True)
