"""Spatially tiled VAE decoding (lyra3d.models.vae_tiling)."""

from __future__ import annotations

import pytest
import torch

from lyra3d.errors import InputError
from lyra3d.models.vae_tiling import decode_spatial_tiles, tile_starts


def _per_pixel_decoder(z):
    """A decoder acting per latent pixel: 8x8 nearest upsampling, first frame then 8 frames per latent frame."""
    rgb = torch.tanh(z[:, :3])
    px = rgb.repeat_interleave(8, -1).repeat_interleave(8, -2)
    return torch.cat([px[:, :, :1], px[:, :, 1:].repeat_interleave(8, 2)], dim=2)


def test_tile_starts_cover_with_overlap():
    assert tile_starts(88, 48, 8) == [0, 40]
    assert tile_starts(160, 48, 8) == [0, 40, 80, 112]
    assert tile_starts(30, 48, 8) == [0]


def test_tiled_decode_equals_the_whole_decode_for_a_per_pixel_decoder():
    z = torch.randn(1, 4, 2, 20, 30, generator=torch.Generator().manual_seed(0))
    calls = []

    def decode(t):
        calls.append(tuple(t.shape[-2:]))
        return _per_pixel_decoder(t)

    tiled = decode_spatial_tiles(decode, z, 8, tile=12, overlap=4)
    assert tiled.shape == (1, 3, 9, 160, 240)
    assert torch.allclose(tiled, _per_pixel_decoder(z), atol=1e-6)
    assert len(calls) == len(tile_starts(20, 12, 4)) * len(tile_starts(30, 12, 4)) and max(calls) == (12, 12)


def test_tiled_decode_blends_neighbours_linearly():
    z = torch.zeros(1, 3, 1, 4, 8)
    def decode(t):  # each tile decodes to its own constant: the seam shows the blend
        return torch.full((1, 3, 1, t.shape[-2] * 2, t.shape[-1] * 2), float(len(calls)))
    calls = []
    def counted(t):
        out = decode(t)
        calls.append(1)
        return out
    out = decode_spatial_tiles(counted, z, 2, tile=6, overlap=4)[0, 0, 0, 0]
    assert out[0] == 0 and out[-1] == 1  # tile 0 alone at the left, tile 1 alone at the right
    inner = out[4:12]
    assert torch.all(inner[1:] >= inner[:-1]) and 0 < inner[3] < 1  # a monotone ramp over the overlap
    with pytest.raises(InputError, match="overlap"):
        decode_spatial_tiles(counted, z, 2, tile=4, overlap=4)


def _per_block_encoder(video):
    """An encoder acting per 8x8 pixel block: (B, T, 3, H, W) → (B, 1 + (T-1)/8, 3, H/8, W/8)."""
    pooled = torch.nn.functional.avg_pool2d(video.flatten(0, 1), 8).unflatten(0, video.shape[:2])
    return torch.cat([pooled[:, :1], pooled[:, 1::8]], 1) * 2 + 0.5


def test_tiled_encode_equals_the_whole_encode_for_a_per_block_encoder():
    from lyra3d.models.vae_tiling import encode_spatial_tiles

    video = torch.rand(2, 9, 3, 160, 240, generator=torch.Generator().manual_seed(0))
    calls = []

    def encode(v):
        calls.append(tuple(v.shape[-2:]))
        return _per_block_encoder(v)

    tiled = encode_spatial_tiles(encode, video, 8, tile=12, overlap=4)
    assert torch.allclose(tiled, _per_block_encoder(video), atol=1e-6)
    assert set(calls) == {(96, 96)} and len(calls) == 2 * 4  # tiles of 12 latent px: 2 rows x 4 columns


def test_tiled_tokenizer_tiles_only_large_frames_one_video_at_a_time():
    from types import SimpleNamespace

    from lyra3d.models.vae_tiling import TiledTokenizer

    seen = []

    def encode(v):
        seen.append(tuple(v.shape))
        return _per_block_encoder(v)

    inner = SimpleNamespace(latent_channels=3, temporal_factor=8, spatial_factor=8, encode=encode,
                            decode=lambda z: z, latent_frames=lambda n: 1 + (n - 1) // 8, marker=7)
    tok = TiledTokenizer(inner, tile=12, overlap=4)
    video = torch.rand(2, 9, 3, 96, 192, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(tok.encode(video), _per_block_encoder(video), atol=1e-6)
    assert all(s[0] == 1 and s[-2:] == (96, 96) for s in seen)
    seen.clear()
    tok.encode(video[..., :96, :96])  # one tile: whole
    assert seen == [(2, 9, 3, 96, 96)] and tok.marker == 7
    with pytest.raises(InputError, match="overlap"):
        TiledTokenizer(inner, tile=4, overlap=4)
