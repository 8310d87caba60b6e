"""Building blocks the models share: sinusoidal time embeddings, 3D (frame, row, column) position
embeddings, Plücker-ray patch tokens aligned with the latent grid, and the adaLN transformer block."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lyra3d.errors import InputError


def timestep_embedding(s: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding ``(B, dim)`` of flow times ``s (B,)`` in [0, 1]."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000) * torch.arange(half, device=s.device, dtype=torch.float32) / half)
    angles = 1000 * s.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], -1)


def positions_3d(t: int, h: int, w: int, dim: int, device) -> Tensor:
    """Fixed sinusoidal position code ``(t·h·w, dim)``: a third of the channels each for time, row, column."""
    d = (dim // 6) * 2
    freqs = torch.exp(-math.log(10_000) * torch.arange(d // 2, device=device, dtype=torch.float32) / (d // 2))
    out = []
    for size in (t, h, w):
        pos = torch.arange(size, device=device, dtype=torch.float32)[:, None] * freqs
        out.append(torch.cat([pos.sin(), pos.cos()], -1))
    tt, hh, ww = torch.meshgrid(torch.arange(t, device=device), torch.arange(h, device=device),
                                torch.arange(w, device=device), indexing="ij")
    code = torch.cat([out[0][tt.flatten()], out[1][hh.flatten()], out[2][ww.flatten()]], -1)
    return F.pad(code, (0, dim - code.shape[-1]))


def ray_patch_tokens(rays: Tensor, latent_frames: int, temporal_factor: int, patch_px: int) -> Tensor:
    """Plücker rays ``(B, T, 6, H, W)`` → ``(B, T'·H/P·W/P, 6·P·P)`` on the latent token grid: each latent
    frame takes the mean ray map of its frames (frame 0 alone, then groups of ``temporal_factor``), cut into
    ``P = patch_px`` pixel patches (the space-time block one latent token covers)."""
    b, t, _, hh, ww = rays.shape
    k = temporal_factor
    if t != 1 + k * (latent_frames - 1):
        raise InputError(f"{t} ray frames do not match {latent_frames} latent frames (1 + {k}·(T'-1))")
    first = rays[:, :1]
    rest = rays[:, 1:].reshape(b, latent_frames - 1, k, 6, hh, ww).mean(2) if latent_frames > 1 else rays[:, :0]
    r = torch.cat([first, rest], 1)
    px = patch_px
    r = r.reshape(b, latent_frames, 6, hh // px, px, ww // px, px).permute(0, 1, 3, 5, 2, 4, 6)
    return r.reshape(b, -1, 6 * px * px)


class _Block(nn.Module):
    """Transformer block with adaLN-Zero modulation by the flow-time embedding."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))
        self.mod = nn.Linear(dim, 6 * dim)
        nn.init.zeros_(self.mod.weight)
        nn.init.zeros_(self.mod.bias)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.mod(F.silu(c))[:, None].chunk(6, -1)
        h = self.norm1(x) * (1 + scale1) + shift1
        b, n, d = h.shape
        q, k, v = self.qkv(h).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d)
        x = x + gate1 * self.proj(a)
        return x + gate2 * self.mlp(self.norm2(x) * (1 + scale2) + shift2)
