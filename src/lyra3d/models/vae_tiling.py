"""Spatially tiled decoding (and encoding) for a video VAE whose diffusers class does not tile
(``AutoencoderKLCosmos`` in diffusers 0.42 records ``enable_tiling`` but decodes whole): overlapping tiles of
latent pixels are decoded one at a time and blended linearly over their overlap, so the decoder's activations are
those of one tile. Each tile sees only its own latents (plus the overlap), so the result differs from a whole
decode near tile seams by what the decoder's receptive field (and attention) would have seen beyond them; a
decoder acting per latent pixel gives exactly the whole decode. Encoding tiles the same way in pixel space and
blends the tiles' latents (:func:`encode_spatial_tiles`); :class:`TiledTokenizer` puts both behind lyra3d's
tokenizer interface."""

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


def encode_spatial_tiles(encode: Callable[[Tensor], Tensor], video: Tensor, spatial_factor: int, tile: int = 48,
                         overlap: int = 8) -> Tensor:
    """Encode ``video (B, T, 3, H, W)`` tile by tile: ``encode`` maps a pixel tile ``(B, T, 3, th·s, tw·s)`` to
    latents ``(B, T', C, th, tw)``; tiles of ``tile`` latent pixels (``tile·s`` pixels) overlap by ``overlap`` latent
    pixels and their latents are blended linearly there. Returns ``(B, T', C, H/s, W/s)`` float32."""
    if video.ndim != 5:
        raise InputError(f"video must be (B, T, 3, H, W), got {tuple(video.shape)}")
    if not 0 <= overlap < tile:
        raise InputError(f"tile overlap must be in [0, tile), got tile {tile}, overlap {overlap}")
    s = spatial_factor
    h, w = video.shape[-2] // s, video.shape[-1] // s
    out = weight = None
    for y0 in tile_starts(h, tile, overlap):
        for x0 in tile_starts(w, tile, overlap):
            th, tw = min(tile, h), min(tile, w)
            z = encode(video[..., y0 * s:(y0 + th) * s, x0 * s:(x0 + tw) * s]).float()
            if out is None:
                out = z.new_zeros(*z.shape[:3], h, w)
                weight = z.new_zeros(1, 1, 1, h, w)
            wt = (_ramp(th, y0, h, overlap, z.device)[:, None] * _ramp(tw, x0, w, overlap, z.device)[None, :])
            out[..., y0:y0 + th, x0:x0 + tw] += z * wt
            weight[..., y0:y0 + th, x0:x0 + tw] += wt
            del z
    return out / weight


class TiledTokenizer:
    """A lyra3d tokenizer (``(B, T, 3, H, W)`` in [0, 1] ↔ latents ``(B, T', C, h, w)``) that encodes and decodes in
    overlapping spatial tiles of ``tile`` latent pixels (:func:`encode_spatial_tiles`, :func:`decode_spatial_tiles`),
    one video of the batch at a time: the tokenizer's activations are those of one tile. Frames no larger than a
    tile go through whole. Everything else (``normalise``, ``vae``, ...) is the wrapped tokenizer's."""

    def __init__(self, tokenizer, tile: int = 48, overlap: int = 8):
        if not 0 <= overlap < tile:
            raise InputError(f"tile overlap must be in [0, tile), got tile {tile}, overlap {overlap}")
        self.tokenizer, self.tile, self.overlap = tokenizer, tile, overlap
        self.latent_channels = tokenizer.latent_channels
        self.temporal_factor, self.spatial_factor = tokenizer.temporal_factor, tokenizer.spatial_factor

    def __getattr__(self, name):  # the wrapped tokenizer's other attributes (vae, normalise, latent_shape, ...)
        if name == "tokenizer":
            raise AttributeError(name)
        return getattr(self.tokenizer, name)

    def latent_frames(self, num_frames: int) -> int:
        return self.tokenizer.latent_frames(num_frames)

    @torch.no_grad()
    def encode(self, video: Tensor) -> Tensor:
        s = self.spatial_factor
        if max(video.shape[-2], video.shape[-1]) <= self.tile * s:
            return self.tokenizer.encode(video)
        return torch.cat([encode_spatial_tiles(self.tokenizer.encode, video[i:i + 1], s, self.tile, self.overlap)
                          for i in range(video.shape[0])])

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        if max(latents.shape[-2], latents.shape[-1]) <= self.tile:
            return self.tokenizer.decode(latents)

        def one(z: Tensor) -> Tensor:  # (1, C, T', th, tw) → (1, 3, T, ·, ·)
            return self.tokenizer.decode(z.permute(0, 2, 1, 3, 4)).permute(0, 2, 1, 3, 4)

        return torch.cat([decode_spatial_tiles(one, latents[i:i + 1].permute(0, 2, 1, 3, 4), self.spatial_factor,
                                               self.tile, self.overlap).permute(0, 2, 1, 3, 4)
                          for i in range(latents.shape[0])])
