"""The 3DGS decoder (docs/design.md §4): the latents of all trajectories + their Plücker rays → one set of 3D
Gaussians, in a single forward pass.

Tokens: each trajectory's latents ``(T', C, h, w)`` are cut into ``1×p×p`` latent patches (linear patch
embedding); the rays of the decoded frames into the space-time blocks those patches cover (zero-initialised
embedding, as in Lyra); the two are summed with a fixed space-time position code and a learned trajectory
embedding. All trajectories' tokens form one sequence through a transformer whose blocks alternate between
attention within each trajectory and global attention over all of them (which fuses the views at a third
of the cost of global attention everywhere); on CUDA, Mamba2 blocks from ``mamba-ssm`` may replace the
global blocks where installed.

Head: a per-token linear map to every decoded frame of its latent frame (frame 0 alone, then ``k`` frames)
and every ``g×g`` pixel block of its ``8p×8p`` patch (a transposed 3D convolution with kernel = stride),
12 numbers per Gaussian: distance along the ray through the block's centre in *that frame's* camera (1),
rgb (3), scale (3), rotation (4), opacity (1). Activations follow Lyra (§4): distance
``near + (far − near)·sigmoid(x + shift)``, opacity ``sigmoid(x − 2)``, rotation normalised, rgb sigmoid,
scale ``min(exp(x − (1 − ln cap)), cap)`` — here multiplied by the distance (a cap relative to depth):
procedural scenes reach from 1 m to a far sky, where a fixed metric cap leaves holes.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lyra3d.core.cameras import Cameras, pixel_rays, plucker_rays
from lyra3d.core.gaussians import Gaussians, rgb_to_sh
from lyra3d.errors import InputError
from lyra3d.models.configs import DecoderConfig  # noqa: F401 (the config lives in a torch-free module)
from lyra3d.models.layers import positions_3d, ray_patch_tokens
from lyra3d.models.modeling import Pretrained, shipped_weights

DEFAULT_DECODER_WEIGHTS = "decoder"


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))

    def forward(self, x: Tensor, views: int = 1) -> Tensor:
        """``x (B, N, D)``; ``views > 1`` attends within each of ``views`` equal parts of the sequence only."""
        b0, n0, d = x.shape
        x = x.reshape(b0 * views, n0 // views, d)
        b, n, _ = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        x = x + self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d))
        return (x + self.mlp(self.norm2(x))).reshape(b0, n0, d)


class _Mamba(nn.Module):
    """A Mamba2 mixer (``mamba-ssm``) with pre-norm and residual, then an MLP."""

    def __init__(self, dim: int, mlp_ratio: float):
        super().__init__()
        from mamba_ssm import Mamba2

        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.mixer = Mamba2(d_model=dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))

    def forward(self, x: Tensor, views: int = 1) -> Tensor:
        x = x + self.mixer(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def mamba_available() -> bool:
    try:
        import mamba_ssm  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available()


class GaussianDecoder(Pretrained):
    """Latents of ``V`` trajectories + their cameras → pixel-aligned Gaussians of every decoded frame."""

    config_class = DecoderConfig
    model_type = "lyra3d-3dgs-decoder"
    part = "decoder"

    def __init__(self, config: DecoderConfig):
        super().__init__()
        self.config = config
        c, p, d, px = config.latent_channels, config.patch_size, config.dim, config.patch_px
        g = config.blocks_per_patch
        if config.mamba and not mamba_available():
            raise InputError("this decoder uses Mamba2 blocks: install mamba-ssm and run on CUDA, or use mamba=false")
        self.latent_in = nn.Linear(c * p * p, d)
        self.ray_in = nn.Linear(6 * px * px, d)
        nn.init.zeros_(self.ray_in.weight)  # Lyra zero-initialises the ray embedding
        nn.init.zeros_(self.ray_in.bias)
        self.view = nn.Embedding(config.max_views, d)
        nn.init.normal_(self.view.weight, std=0.02)
        self.blocks = nn.ModuleList(
            _Mamba(d, config.mlp_ratio) if config.mamba and i % 2 == 1 else _Attention(d, config.heads, config.mlp_ratio)
            for i in range(config.depth))
        self.norm_out = nn.LayerNorm(d)
        self.head = nn.Linear(d, config.temporal_factor * g * g * 12)
        nn.init.zeros_(self.head.weight)  # start from the activations' defaults: 5 m, grey, small, half-opaque
        nn.init.zeros_(self.head.bias)

    def forward(self, latents: Tensor, rays: Tensor, *conditions) -> Tensor:
        """Raw Gaussian parameters ``(B, V, T, H/g, W/g, 12)`` for every decoded frame.

        Args:
            latents: ``(B, V, T', C, h, w)`` the trajectories' latents.
            rays: ``(B, V, T, 6, H, W)`` Plücker rays of every decoded frame, ``T = 1 + k(T' − 1)``.
            conditions: whatever else a subclass's :meth:`embed` takes (the 4D decoder's times).
        """
        b, v, tl, _, h, w = self.check(latents, rays)
        tokens = self.embed(latents, rays, *conditions)  # (B, V·T'·hp·wp, D)
        return self.run_blocks(tokens, b, v, tl, h, w)

    def check(self, latents: Tensor, rays: Tensor) -> tuple[int, ...]:
        """Check the shapes of ``latents`` and ``rays``; returns ``latents.shape``."""
        cfg = self.config
        if latents.ndim != 6 or latents.shape[3] != cfg.latent_channels:
            raise InputError(f"latents must be (B, V, T', {cfg.latent_channels}, h, w), got {tuple(latents.shape)}")
        b, v, tl, c, h, w = latents.shape
        k, p = cfg.temporal_factor, cfg.patch_size
        t = 1 + k * (tl - 1)
        if rays.shape != (b, v, t, 6, h * cfg.spatial_factor, w * cfg.spatial_factor):
            raise InputError(f"rays must be {(b, v, t, 6, h * cfg.spatial_factor, w * cfg.spatial_factor)} for these "
                             f"latents, got {tuple(rays.shape)}")
        if h % p or w % p:
            raise InputError(f"latent size {h}x{w} must be a multiple of the patch size {p}")
        if v > cfg.max_views:
            raise InputError(f"at most {cfg.max_views} trajectories, got {v}")
        return tuple(latents.shape)

    def embed(self, latents: Tensor, rays: Tensor, views: Tensor | None = None) -> Tensor:
        """The input tokens ``(B, V·T'·hp·wp, D)``: latent patch + ray block + space-time position + trajectory
        embeddings (shapes already :meth:`check` ed). ``views (V,)``: which trajectory embedding each view
        gets (default ``0..V−1``). Subclasses add their conditions here."""
        cfg = self.config
        b, v, tl, c, h, w = latents.shape
        k, p = cfg.temporal_factor, cfg.patch_size
        hp, wp = h // p, w // p
        x = latents.reshape(b * v, tl, c, hp, p, wp, p).permute(0, 1, 3, 5, 2, 4, 6).reshape(b * v, tl * hp * wp, -1)
        tokens = self.latent_in(x) + self.ray_in(ray_patch_tokens(rays.flatten(0, 1), tl, k, cfg.patch_px))
        tokens = tokens + positions_3d(tl, hp, wp, cfg.dim, latents.device).to(tokens.dtype)
        codes = self.view.weight[:v] if views is None else self.view.weight[views.to(latents.device)]
        tokens = tokens.reshape(b, v, -1, cfg.dim) + codes[:, None].to(tokens.dtype)
        return tokens.reshape(b, -1, cfg.dim)

    def run_blocks(self, tokens: Tensor, b: int, v: int, tl: int, h: int, w: int) -> Tensor:
        """Transformer blocks and head: tokens ``(B, V·T'·hp·wp, D)`` → raw ``(B, V, T, H/g, W/g, 12)``."""
        cfg = self.config
        k, p, g = cfg.temporal_factor, cfg.patch_size, cfg.blocks_per_patch
        hp, wp = h // p, w // p
        for i, block in enumerate(self.blocks):  # even blocks within each trajectory, odd blocks across all
            tokens = block(tokens, 1 if i % 2 else v)
        out = self.head(self.norm_out(tokens))  # (B, V·T'·hp·wp, k·g·g·12)
        out = out.reshape(b, v, tl, hp, wp, k, g, g, 12).permute(0, 1, 2, 5, 3, 6, 4, 7, 8)
        out = out.reshape(b, v, tl * k, hp * g, wp * g, 12)
        # Latent frame 0 covers frame 0 alone: keep its first slot, then the k frames of each later latent.
        return torch.cat([out[:, :, :1], out[:, :, k:]], 2)

    def activate(self, raw: Tensor, cameras: Cameras) -> Gaussians:
        """Raw parameters ``(V·T, H/g, W/g, 12)`` of frames seen by ``cameras`` (V·T) → Gaussians (world)."""
        cfg, s = self.config, self.config.gaussian_stride
        n, hg, wg, _ = raw.shape
        if len(cameras) != n or cameras.width != wg * s or cameras.height != hg * s:
            raise InputError(f"{len(cameras)} cameras of {cameras.width}x{cameras.height} do not fit {n} frames "
                             f"of {wg}x{hg} Gaussian blocks (stride {s})")
        origins, dirs = pixel_rays(cameras.resized(wg, hg))  # through each block's centre, (N, hg, wg, 3)
        raw = raw.float()
        depth = cfg.near + (cfg.far - cfg.near) * torch.sigmoid(raw[..., 0] + cfg.distance_shift)
        means = origins + dirs * depth[..., None]
        cap = cfg.scale_cap
        scales = torch.clamp(torch.exp(raw[..., 4:7] - (1 - math.log(cap))), max=cap) * depth[..., None]
        quats = F.normalize(raw[..., 7:11] + torch.tensor([1.0, 0, 0, 0], device=raw.device), dim=-1)
        return Gaussians(means=means.reshape(-1, 3), scales=scales.reshape(-1, 3).log(),
                         quats=quats.reshape(-1, 4), opacities=(raw[..., 11] - 2).reshape(-1),
                         sh=rgb_to_sh(torch.sigmoid(raw[..., 1:4])).reshape(-1, 1, 3))

    def _network(self, latents: Tensor, rays: Tensor, bf16: bool) -> Tensor:
        """The forward pass, under bf16 autocast when ``bf16`` (the rays, the activation and the Gaussians'
        geometry stay fp32)."""
        with torch.autocast(latents.device.type, dtype=torch.bfloat16, enabled=bf16):
            return self(latents, rays.to(latents.dtype))

    def decode(self, latents: Tensor, cameras: Cameras, bf16: bool = False) -> Gaussians:
        """One scene: ``latents (V, T', C, h, w)`` and all frames' ``cameras`` (V·T, trajectory-major, at the
        decoded resolution) → the union of every frame's Gaussians. ``bf16``: the network under bf16 autocast."""
        v, t = latents.shape[0], len(cameras) // max(1, latents.shape[0])
        if len(cameras) != v * t:
            raise InputError(f"{len(cameras)} cameras are not {v} trajectories of equal length")
        rays = plucker_rays(cameras).reshape(1, v, t, 6, cameras.height, cameras.width)
        raw = self._network(latents[None], rays, bf16)[0]
        return self.activate(raw.reshape(v * t, *raw.shape[2:]), cameras)

    def decode_batch(self, latents: Tensor, cameras: Sequence[Cameras], bf16: bool = False) -> list[Gaussians]:
        """Many scenes in one forward pass: ``latents (B, V, T', C, h, w)`` and each scene's cameras (V·T,
        trajectory-major) → each scene's Gaussians, as :meth:`decode` gives them one by one."""
        b, v = latents.shape[:2]
        if len(cameras) != b:
            raise InputError(f"{len(cameras)} camera sets for {b} scenes")
        t = len(cameras[0]) // max(1, v)
        if any(len(c) != v * t for c in cameras):
            raise InputError(f"every scene needs {v} trajectories of {t} cameras")
        rays = torch.stack([plucker_rays(c).reshape(v, t, 6, c.height, c.width) for c in cameras])
        raw = self._network(latents, rays, bf16)
        return [self.activate(raw[i].reshape(v * t, *raw.shape[3:]), cameras[i]) for i in range(b)]

    @torch.no_grad()
    def with_stride(self, stride: int) -> "GaussianDecoder":
        """This decoder at a finer ``gaussian_stride`` (a divisor of the current one), for fine-tuning: each
        new ``stride×stride`` block starts as the old block it lies in (the head's rows repeated) with its
        scale shrunk by the stride ratio, so the scene starts the same at ratio² as many Gaussians. Works
        for subclasses (the 4D decoder) alike; returns ``self`` when the stride is already ``stride``."""
        old = self.config.gaussian_stride
        if stride == old:
            return self
        if stride < 1 or old % stride:
            raise InputError(f"gaussian_stride {stride} must divide the decoder's current stride {old}")
        r = old // stride
        finer = type(self)(dataclasses.replace(self.config, gaussian_stride=stride))
        state = {k: v for k, v in self.state_dict().items() if not k.startswith("head.")}
        k, g, d = self.config.temporal_factor, self.config.blocks_per_patch, self.config.dim
        w = self.head.weight.reshape(k, g, g, 12, d).repeat_interleave(r, 1).repeat_interleave(r, 2)
        b = self.head.bias.reshape(k, g, g, 12).repeat_interleave(r, 1).repeat_interleave(r, 2).clone()
        b[..., 4:7] -= math.log(r)  # scales: half the block, half the size
        state.update({"head.weight": w.reshape(-1, d), "head.bias": b.reshape(-1)})
        finer.load_state_dict(state)
        return finer.to(self.head.weight.device).train(self.training)

    @classmethod
    def default(cls, device: str | torch.device = "cpu") -> "GaussianDecoder":
        return cls.from_pretrained(shipped_weights(DEFAULT_DECODER_WEIGHTS), device)
