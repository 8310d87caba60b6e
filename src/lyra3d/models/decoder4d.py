"""The time-conditioned 3DGS decoder (docs/design.md §4 "Dynamic", issue 9): the latents of a video teacher's
trajectories + their rays + **two times** → the Gaussians of the scene at a requested target time.

It is :class:`~lyra3d.models.decoder.GaussianDecoder` with two time embeddings joining the tokens, right where the
latent, ray, position and trajectory embeddings are summed (before the first transformer block):

* the **source time** of each token: the time of the frames its latent frame covers (frame 0 alone, then
  the mean over each group of ``k`` frames, as the ray tokens average their rays), so the decoder knows
  which moment every token shows, whatever the clip's frame rate or direction (reversed clips);
* the **target time**: one per sample, added to every token, so every block knows which moment to output.

With ``input_view`` (:class:`Decoder4DConfig`), the input video itself joins as one more view after the
trajectories: its latents (the tokenizer's, :attr:`lyra3d.pipelines.teacher.VideoTeacherSample.input_latents`), its
cameras and its frame times, marked by the last trajectory embedding (``max_views − 1``, which no trajectory
uses). The trajectories show every time only as the video model imagined it; the input video is the one
view seen as it was, at every time: its pixels get Gaussians like every other view's.

Each is a sinusoidal code of the time in units of ``1 / time_scale`` seconds (default the 4 s horizon of
the procedural dynamic worlds) through a two-layer MLP whose last layer starts at zero: a freshly built
(or :meth:`GaussianDecoder4D.from_static`) model is exactly the static decoder, and training teaches it
time from there. The head, activations and pixel alignment are the static decoder's: every decoded frame's
pixels still get one Gaussian each on their ray in that frame's camera, now placed where the surface along
that ray is at the target time. :meth:`GaussianDecoder4D.decode` stamps the target time on the Gaussians
(``Gaussians.times``).

Checkpoints: ``config.json`` + ``model.safetensors`` with ``model_type = "lyra3d-4dgs-decoder"``.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from lyra3d.core.cameras import Cameras, plucker_rays
from lyra3d.core.gaussians import Gaussians
from lyra3d.errors import InputError
from lyra3d.models.configs import Decoder4DConfig  # noqa: F401 (the config lives in a torch-free module)
from lyra3d.models.decoder import GaussianDecoder
from lyra3d.models.layers import timestep_embedding


def _time_mlp(dim: int) -> nn.Sequential:
    mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))
    nn.init.zeros_(mlp[2].weight)  # starts as the static decoder
    nn.init.zeros_(mlp[2].bias)
    return mlp


def latent_frame_times(times: Tensor, temporal_factor: int) -> Tensor:
    """Frame times ``(..., T)`` → the time each latent frame covers ``(..., T')``: frame 0 alone, then the
    mean of each group of ``temporal_factor`` frames (``T = 1 + k·(T' − 1)``)."""
    t, k = times.shape[-1], temporal_factor
    if (t - 1) % k:
        raise InputError(f"{t} frame times do not fit a causal tokenizer with temporal factor {k} (1 + {k}·m)")
    rest = times[..., 1:].reshape(*times.shape[:-1], (t - 1) // k, k).mean(-1)
    return torch.cat([times[..., :1], rest], -1)


def append_input_view(latents: Tensor, cameras: Cameras, input_latents: Tensor | None,
                      input_cameras: Cameras | None) -> tuple[Tensor, Cameras]:
    """``latents (V, T', C, h, w)`` and ``cameras`` (V·T) with the input video appended as view ``V``."""
    t = len(cameras) // latents.shape[0]
    if input_latents is None or input_cameras is None:
        raise InputError("this 4D decoder also reads the input video: pass input_latents (T', C, h, w) and "
                         "input_cameras (T) (lyra3d.pipelines.teacher.video_teacher returns both)")
    if tuple(input_latents.shape) != tuple(latents.shape[1:]) or len(input_cameras) != t:
        raise InputError(f"the input video's latents {tuple(input_latents.shape)} and {len(input_cameras)} "
                         f"cameras do not match one trajectory's {tuple(latents.shape[1:])} and {t}")
    if (input_cameras.width, input_cameras.height) != (cameras.width, cameras.height):
        raise InputError(f"input cameras of {input_cameras.width}x{input_cameras.height} do not match the "
                         f"trajectories' {cameras.width}x{cameras.height}")
    both = Cameras.cat([cameras, input_cameras.to(cameras.world_to_camera.device)])
    return torch.cat([latents, input_latents[None].to(latents)]), both


class GaussianDecoder4D(GaussianDecoder):
    """Latents of ``V`` trajectories of a video + their cameras + frame times + a target time → the
    pixel-aligned Gaussians of every decoded frame, showing the scene at the target time."""

    config_class = Decoder4DConfig
    model_type = "lyra3d-4dgs-decoder"
    part = "decoder4d"

    def __init__(self, config: Decoder4DConfig):
        super().__init__(config)
        self.source_time = _time_mlp(config.dim)
        self.target_time = _time_mlp(config.dim)

    @classmethod
    def from_static(cls, decoder: GaussianDecoder, **options) -> "GaussianDecoder4D":
        """A 4D decoder that starts as ``decoder`` (its weights; the time embeddings at zero). ``options``:
        :class:`Decoder4DConfig` fields beyond the static config's (e.g. ``time_scale``)."""
        config = Decoder4DConfig(**dataclasses.asdict(decoder.config), **options)
        model = cls(config)
        missing, unexpected = model.load_state_dict(decoder.state_dict(), strict=False)
        if unexpected or any(not k.startswith(("source_time.", "target_time.")) for k in missing):
            raise InputError(f"the static decoder does not fit: missing {missing[:3]}, unexpected {unexpected[:3]}")
        p = next(decoder.parameters())
        return model.to(p.device, p.dtype).train(decoder.training)

    def _time_code(self, mlp: nn.Module, times: Tensor, dtype: torch.dtype) -> Tensor:
        """``times (...)`` seconds → ``(..., D)``."""
        code = timestep_embedding(times.reshape(-1).float() * self.config.time_scale, self.config.dim)
        return mlp(code.to(dtype)).reshape(*times.shape, self.config.dim)

    def forward(self, latents: Tensor, rays: Tensor, times: Tensor | None = None,
                target_time: Tensor | None = None, input_view: bool = False) -> Tensor:
        """Raw Gaussian parameters ``(B, V, T, H/g, W/g, 12)`` for every decoded frame, at ``target_time``.

        Args:
            latents: ``(B, V, T', C, h, w)`` the trajectories' latents.
            rays: ``(B, V, T, 6, H, W)`` Plücker rays of every decoded frame, ``T = 1 + k(T' − 1)``.
            times: seconds shown by every decoded frame, ``(B, V, T)``, or ``(B, T)`` shared by the
                trajectories (frame ``t`` of every trajectory shows input frame ``t``). Default zeros.
            target_time: ``(B,)`` seconds to output. Default zeros (with the default ``times``: a static scene).
            input_view: the last of the ``V`` views is the input video (its own trajectory embedding).
        """
        return super().forward(latents, rays, times, target_time, input_view)

    def embed(self, latents: Tensor, rays: Tensor, times: Tensor | None = None,
              target_time: Tensor | None = None, input_view: bool = False) -> Tensor:
        """The static decoder's tokens plus the two time embeddings: per latent frame (source) and per sample
        (target)."""
        cfg = self.config
        b, v, tl, _, h, w = latents.shape
        views = torch.cat([torch.arange(v - 1), torch.tensor([cfg.max_views - 1])]) if input_view else None
        k, n = cfg.temporal_factor, (h // cfg.patch_size) * (w // cfg.patch_size)
        t = 1 + k * (tl - 1)
        times = torch.zeros(b, t, device=latents.device) if times is None else times.to(latents.device)
        if times.shape == (b, t):
            times = times[:, None].expand(b, v, t)
        if times.shape != (b, v, t):
            raise InputError(f"times must be (B, V, T) = {(b, v, t)} or (B, T), got {tuple(times.shape)}")
        target = torch.zeros(b, device=latents.device) if target_time is None else \
            torch.as_tensor(target_time, device=latents.device, dtype=torch.float32).reshape(-1).expand(b)
        tokens = super().embed(latents, rays, views)
        src = self._time_code(self.source_time, latent_frame_times(times.float(), k), tokens.dtype)  # (B, V, T', D)
        tgt = self._time_code(self.target_time, target, tokens.dtype)  # (B, D)
        tokens = tokens.reshape(b, v, tl, n, cfg.dim) + src[:, :, :, None] + tgt[:, None, None, None]
        return tokens.reshape(b, -1, cfg.dim)

    def decode(self, latents: Tensor, cameras: Cameras, times: Tensor | None = None,
               target_time: float = 0.0, input_latents: Tensor | None = None,
               input_cameras: Cameras | None = None) -> Gaussians:
        """One scene at ``target_time``: ``latents (V, T', C, h, w)``, all frames' ``cameras`` (V·T,
        trajectory-major), ``times`` ``(T,)`` or ``(V, T)`` seconds of the frames → the union of every frame's
        Gaussians, each stamped with ``target_time``.

        ``input_latents (T', C, h, w)`` and ``input_cameras`` (T): the input video's latents and cameras, read
        as the last view by a decoder with ``config.input_view`` (which needs them; others ignore them); with
        ``times (V, T)`` the input view takes the first trajectory's times (frame ``t`` of every trajectory
        shows input frame ``t``)."""
        v, t = latents.shape[0], len(cameras) // max(1, latents.shape[0])
        if len(cameras) != v * t:
            raise InputError(f"{len(cameras)} cameras are not {v} trajectories of equal length")
        if times is not None:
            times = torch.as_tensor(times, dtype=torch.float32)
            if times.shape not in ((t,), (v, t)):
                raise InputError(f"times must be (T,) = ({t},) or (V, T) = ({v}, {t}), got {tuple(times.shape)}")
        with_input = self.config.input_view
        if with_input:
            latents, cameras = append_input_view(latents, cameras, input_latents, input_cameras)
            if times is not None and times.ndim == 2:
                times = torch.cat([times, times[:1]])
            v += 1
        rays = plucker_rays(cameras).reshape(1, v, t, 6, cameras.height, cameras.width)
        raw = self(latents[None], rays.to(latents.dtype), None if times is None else times[None],
                   torch.tensor([float(target_time)]), with_input)[0]
        gaussians = self.activate(raw.reshape(v * t, *raw.shape[2:]), cameras)
        gaussians.times = torch.full((len(gaussians),), float(target_time), device=gaussians.device)
        return gaussians
