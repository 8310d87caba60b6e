"""Spatially tiled decoding for a video VAE whose diffusers class does not tile (``AutoencoderKLCosmos`` in
diffusers 0.42 records ``enable_tiling`` but decodes whole): overlapping tiles of latent pixels are decoded one at a
time and blended linearly over their overlap, so the decoder's activations are those of one tile. Each tile sees
only its own latents (plus the overlap), so the result differs from a whole decode near tile seams by what the
decoder's receptive field (and attention) would have seen beyond them; a decoder acting per latent pixel gives
exactly the whole decode.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from lyra3d.errors import InputError


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of ``tile`` covering ``size`` with at least ``overlap`` shared between neighbours."""
    if size <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride))
    return starts + [size - tile]


def _ramp(length: int, start: int, total: int, blend: int, device) -> Tensor:
    """1D blending weights of a tile at ``start`` (pixels) of ``length`` in ``total``: ramps over ``blend`` pixels
    at the sides that have a neighbour, 1 elsewhere (never 0)."""
    w = torch.ones(length, device=device)
    if blend > 0:
        r = (torch.arange(blend, device=device, dtype=torch.float32) + 0.5) / blend
        if start > 0:
            w[:blend] = torch.minimum(w[:blend], r)
        if start + length < total:
            w[-blend:] = torch.minimum(w[-blend:], r.flip(0))
    return w


def decode_spatial_tiles(decode: Callable[[Tensor], Tensor], z: Tensor, spatial_factor: int, tile: int = 48,
                         overlap: int = 8) -> Tensor:
    """Decode latents ``z (B, C, T', h, w)`` tile by tile: ``decode`` maps a latent tile ``(B, C, T', th, tw)`` to
    pixels ``(B, 3, T, th·s, tw·s)``; tiles of ``tile`` latent pixels overlap by ``overlap`` and are blended
    linearly there. Returns ``(B, 3, T, h·s, w·s)`` float32 on ``z``'s device."""
    if z.ndim != 5:
        raise InputError(f"latents must be (B, C, T', h, w), got {tuple(z.shape)}")
    if not 0 <= overlap < tile:
        raise InputError(f"tile overlap must be in [0, tile), got tile {tile}, overlap {overlap}")
    s = spatial_factor
    h, w = z.shape[-2:]
    out = weight = None
    for y0 in tile_starts(h, tile, overlap):
        for x0 in tile_starts(w, tile, overlap):
            th, tw = min(tile, h), min(tile, w)
            px = decode(z[..., y0:y0 + th, x0:x0 + tw]).float()
            if out is None:
                out = px.new_zeros(*px.shape[:3], h * s, w * s)
                weight = px.new_zeros(1, 1, 1, h * s, w * s)
            wy = _ramp(th * s, y0 * s, h * s, overlap * s, px.device)
            wx = _ramp(tw * s, x0 * s, w * s, overlap * s, px.device)
            wt = (wy[:, None] * wx[None, :])[None, None, None]
            out[..., y0 * s:(y0 + th) * s, x0 * s:(x0 + tw) * s] += px * wt
            weight[..., y0 * s:(y0 + th) * s, x0 * s:(x0 + tw) * s] += wt
            del px
    return out / weight
