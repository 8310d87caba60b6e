"""The camera-controlled latent video diffusion model (GEN3C-style; docs/design.md §3 ``video_model``).

A diffusion transformer over the latents of one trajectory, ``(T', C, h, w)``, trained by flow matching
(rectified flow: ``x_s = (1 − s)·x₀ + s·ε``, the network predicts the velocity ``ε − x₀``). Flow matching
because its straight paths sample well in few Euler steps, which is what a CPU default needs.

Conditioning, per token (docs/design.md §3): the tokenizer latents of the warped cache renders and of their
masks (the mask as a 3-channel image in [-1, 1], encoded by the same tokenizer), concatenated to the noisy
latents along channels; the input image's latent at frame 0 (replaced into the sample at every step,
so the first frame is the input); Plücker rays of every frame, embedded per token by a zero-initialised
space-time patch embedding. Classifier-free guidance drops the cache and ray conditions together.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lyra3d.errors import InputError
from lyra3d.models.configs import VideoModelConfig  # noqa: F401 (the config lives in a torch-free module)
from lyra3d.models.flow import euler_sample
from lyra3d.models.layers import _Block, positions_3d, ray_patch_tokens, timestep_embedding
from lyra3d.models.modeling import Pretrained


class VideoDiffusionModel(Pretrained):
    """Velocity network ``v(x_s, s, conditions)`` over one trajectory's latents."""

    config_class = VideoModelConfig
    model_type = "lyra3d-video-dit"
    part = "video_model"

    def __init__(self, config: VideoModelConfig):
        super().__init__()
        self.config = config
        c, p, d = config.latent_channels, config.patch_size, config.dim
        # noisy latents, cache latents, mask latents, first-frame latent, first-frame indicator
        self.latent_in = nn.Linear((4 * c + 1) * p * p, d)
        ray_patch = config.spatial_factor * p
        self.ray_in = nn.Linear(6 * ray_patch * ray_patch, d)
        nn.init.zeros_(self.ray_in.weight)  # Lyra zero-initialises the ray embedding
        nn.init.zeros_(self.ray_in.bias)
        self.time = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.blocks = nn.ModuleList(_Block(d, config.heads, config.mlp_ratio) for _ in range(config.depth))
        self.norm_out = nn.LayerNorm(d, elementwise_affine=False)
        self.mod_out = nn.Linear(d, 2 * d)
        self.out = nn.Linear(d, c * p * p)
        for layer in (self.mod_out, self.out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def _tokens(self, x: Tensor) -> Tensor:
        """``(B, T', C', h, w)`` → ``(B, T'·h/p·w/p, C'·p·p)``."""
        b, t, c, h, w = x.shape
        p = self.config.patch_size
        x = x.reshape(b, t, c, h // p, p, w // p, p).permute(0, 1, 3, 5, 2, 4, 6)
        return x.reshape(b, t * (h // p) * (w // p), c * p * p)

    def ray_tokens(self, rays: Tensor, latent_frames: int) -> Tensor:
        return ray_patch_tokens(rays, latent_frames, self.config.temporal_factor,
                                self.config.spatial_factor * self.config.patch_size)

    def forward(self, x: Tensor, s: Tensor, cache: Tensor, mask: Tensor, first: Tensor, rays: Tensor,
                drop: Tensor | None = None) -> Tensor:
        """Velocity ``(B, T', C, h, w)``.

        Args:
            x: noisy latents ``(B, T', C, h, w)``; s: flow times ``(B,)`` (1 = noise).
            cache, mask: latents of the warped renders and of their masks ``(B, T', C, h, w)``.
            first: the input image's latent ``(B, C, h, w)``.
            rays: Plücker rays of every frame ``(B, T, 6, H, W)``.
            drop: ``(B,)`` bool, True drops cache, mask and rays (the unconditional branch of CFG).
        """
        b, t, c, h, w = x.shape
        p = self.config.patch_size
        if h % p or w % p:
            raise InputError(f"latent size {h}x{w} must be a multiple of the patch size {p}")
        if drop is not None:
            keep = (~drop).to(x.dtype)[:, None, None, None, None]
            cache, mask, rays = cache * keep, mask * keep, rays * keep
        first_map = torch.zeros_like(x)
        first_map[:, 0] = first
        indicator = torch.zeros(b, t, 1, h, w, device=x.device, dtype=x.dtype)
        indicator[:, 0] = 1
        tokens = self.latent_in(self._tokens(torch.cat([x, cache, mask, first_map, indicator], 2)))
        tokens = tokens + self.ray_in(self.ray_tokens(rays, t)) + positions_3d(t, h // p, w // p, tokens.shape[-1],
                                                                              x.device).to(tokens.dtype)
        cond = self.time(timestep_embedding(s, tokens.shape[-1]).to(tokens.dtype))
        for block in self.blocks:
            tokens = block(tokens, cond)
        shift, scale = self.mod_out(F.silu(cond))[:, None].chunk(2, -1)
        out = self.out(self.norm_out(tokens) * (1 + scale) + shift)
        out = out.reshape(b, t, h // p, w // p, c, p, p).permute(0, 1, 4, 2, 5, 3, 6)
        return out.reshape(b, t, c, h, w)


def flow_matching_loss(model: VideoDiffusionModel, x0: Tensor, cache: Tensor, mask: Tensor, rays: Tensor,
                       drop_prob: float = 0.1, generator: torch.Generator | None = None) -> Tensor:
    """Rectified-flow loss on clean latents ``x0 (B, T', C, h, w)``; frame 0 is given (not denoised)."""
    b = x0.shape[0]
    dev = x0.device
    s = torch.rand(b, generator=generator).to(dev)
    noise = torch.randn(x0.shape, generator=generator).to(dev, x0.dtype)
    xs = (1 - s)[:, None, None, None, None] * x0 + s[:, None, None, None, None] * noise
    xs[:, 0] = x0[:, 0]
    drop = torch.rand(b, generator=generator).to(dev) < drop_prob
    v = model(xs, s, cache, mask, x0[:, 0], rays, drop)
    return F.mse_loss(v[:, 1:], (noise - x0)[:, 1:])


def seeded_noise(shape: tuple[int, ...], seed: int | Sequence[int]) -> Tensor:
    """Standard normal noise of ``shape`` (on the CPU, float32). One ``seed``: one draw of the whole shape. A
    sequence of ``n`` seeds (a batch of ``n`` scenes, each ``shape[0] / n`` rows): each scene's rows are the draw
    its seed gives alone, so a scene sampled in a batch gets the noise of its single call."""
    if isinstance(seed, int):
        return torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    seeds = list(seed)
    if not seeds or shape[0] % len(seeds):
        raise InputError(f"{len(seeds)} seeds do not split a batch of {shape[0]} evenly")
    per = (shape[0] // len(seeds), *shape[1:])
    return torch.cat([torch.randn(per, generator=torch.Generator().manual_seed(s)) for s in seeds])


@torch.no_grad()
def sample(model: VideoDiffusionModel, first: Tensor, cache: Tensor, mask: Tensor, rays: Tensor, steps: int = 8,
           guidance: float = 2.0, seed: int | Sequence[int] = 0, noise: Tensor | None = None) -> Tensor:
    """Latents ``(B, T', C, h, w)`` by Euler steps from noise (s = 1) to data (s = 0) with classifier-free
    guidance ``v = v_u + guidance · (v_c − v_u)``; frame 0 is the input's latent. Deterministic per seed; a
    sequence of seeds gives each scene of a batch its own (:func:`seeded_noise`). ``noise``: that draw, already
    made (e.g. on a thread while the caches were encoded), instead of ``seed``'s."""
    if noise is None:
        noise = seeded_noise(tuple(cache.shape), seed)
    elif noise.shape != cache.shape:
        raise InputError(f"noise {tuple(noise.shape)} does not match the latents {tuple(cache.shape)}")
    noise = noise.to(cache.device, cache.dtype)

    def velocity(x: Tensor, s: Tensor, drop: Tensor | None) -> Tensor:
        if drop is None:
            return model(x, s, cache, mask, first, rays)
        both = lambda t: torch.cat([t, t])  # noqa: E731  (the conditioned and the unconditional half)
        return model(x, s, both(cache), both(mask), both(first), both(rays), drop)

    def pin(x: Tensor) -> Tensor:
        x[:, 0] = first
        return x

    return euler_sample(noise, velocity, steps, guidance, pin)
