"""GEN3C's conditioning, as the official code builds it (``model_gen3c.py``, ``model_v2w.py``, ``cache_3d.py``,
``inference_utils.py`` of nv-tlabs/lyra Lyra-1), as pure functions over tensors.

What the network reads at every step (:func:`network_input`), in latent space (``(B, C, T', h, w)``):

- ``x``: the noisy latents scaled by EDM's ``c_in`` (the scheduler's ``scale_model_input``), with the
  *condition frames* (the first latent frame: the input image) replaced by their clean latents, augmented with
  noise of sigma :data:`AUGMENT_SIGMA` (0.001) and rescaled from ``c_in(0.001)`` to ``c_in(sigma)``
  (:func:`augment_condition_frames`); once ``sigma ≤ 0.001`` the replacement stops.
- the condition-video input mask (1 channel): 1 on the condition latent frames, 0 elsewhere
  (:func:`condition_input_mask`). The unconditional pass of classifier-free guidance gets the same mask.
- the warped buffers (:func:`encode_buffers`): for each buffer ``i`` (``frame_buffer_max = 2``; the cache's
  order, newest first) the tokenizer latents of the warped rgb video (``(B, 3, T, H, W)`` in [-1, 1], holes at
  -1, as ``forward_warp`` writes them) then of its mask video ``2·mask − 1`` repeated to 3 channels; buffers the
  cache does not have are zeros. The latents are the tokenizer's normalised ones times ``sigma_data`` (0.5), as
  the official ``encode``. The buffers enter the network *clean*: no noise, no sigma embedding
  (``add_augment_sigma_embedding`` is off). The unconditional pass gets zeros instead (``drop_out_latent``).
- optional pixel noise on the warped rgb before encoding (:func:`buffer_pixel_noise`), buffer ``i`` of ``N``
  with std ``(N − 1 − i)·noise_aug_strength`` (the official single-image scripts default to 0).

The network's output is replaced on the condition frames by the clean latents mapped to output space
(:func:`condition_output`), then the EDM Euler step. Guidance is ``cond + g·(cond − uncond)`` (two passes per
step, also at the official ``g = 1``; the negative prompt's T5 embedding conditions the unconditional pass).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from lyra3d.errors import InputError

#: EDM's data sigma (Cosmos-1.0): latents are the tokenizer's normalised latents times this.
SIGMA_DATA = 0.5
#: The noise sigma of the condition frames at inference (``DEFAULT_AUGMENT_SIGMA``).
AUGMENT_SIGMA = 0.001
#: The official sampler: diffusers' EDMEulerScheduler(sigma_max=80, sigma_min=0.0002, sigma_data=0.5), 35 steps.
SIGMA_MAX, SIGMA_MIN, NUM_STEPS = 80.0, 0.0002, 35
#: Guidance of the official GEN3C / Lyra SDG scripts (``--guidance`` default 1: still two passes per step).
GUIDANCE = 1.0
#: The official size: 121 frames of 704x1280 at 24 fps; one conditioning latent frame (the input image).
NUM_FRAMES, HEIGHT, WIDTH, FPS = 121, 704, 1280, 24
NUM_CONDITION_LATENT_FRAMES = 1


def mask_video(mask: Tensor) -> Tensor:
    """A warped validity mask ``(..., 1, H, W)`` in {0, 1} as the tokenizer's input: ``2·mask − 1`` on 3
    channels ``(..., 3, H, W)``."""
    if mask.shape[-3] != 1:
        raise InputError(f"a warped mask has one channel, got shape {tuple(mask.shape)}")
    return (mask * 2 - 1).expand(*mask.shape[:-3], 3, *mask.shape[-2:])


def buffer_pixel_noise(pixels: Tensor, strength: float, generator: torch.Generator | None = None) -> Tensor:
    """The official pixel noise on the warped rgb ``(B, T, N, 3, H, W)``: buffer ``i`` of ``N`` gets Gaussian
    noise of std ``(N − 1 − i)·strength`` (so one buffer, or ``strength = 0``, stays exact)."""
    n = pixels.shape[2]
    scale = torch.arange(n - 1, -1, -1, device=pixels.device, dtype=pixels.dtype) * strength
    noise = torch.randn(pixels.shape, generator=generator, device=pixels.device, dtype=pixels.dtype)
    return pixels + noise * scale.reshape(1, 1, n, 1, 1, 1)


def encode_buffers(encode: Callable[[Tensor], Tensor], pixels: Tensor, masks: Tensor,
                   frame_buffer_max: int = 2) -> Tensor:
    """The warped buffers as the network's extra channels.

    Args:
        encode: video ``(B, 3, T, H, W)`` in [-1, 1] → model latents ``(B, C, T', h, w)`` (the tokenizer's
            normalised latents × :data:`SIGMA_DATA`; :func:`cosmos_encoder`).
        pixels: warped rgb ``(B, T, N, 3, H, W)`` in [-1, 1], holes at -1 (``N ≤ frame_buffer_max`` buffers).
        masks: warped masks ``(B, T, N, 1, H, W)`` in {0, 1}.

    Returns:
        ``(B, frame_buffer_max·2·C, T', h, w)``: ``[rgb_0, mask_0, rgb_1, mask_1, ...]``, zeros for missing buffers.
    """
    if pixels.ndim != 6 or pixels.shape[3] != 3:
        raise InputError(f"warped buffers must be (B, T, N, 3, H, W), got {tuple(pixels.shape)}")
    if masks.shape != (*pixels.shape[:3], 1, *pixels.shape[4:]):
        raise InputError(f"warped masks must be (B, T, N, 1, H, W) = {(*pixels.shape[:3], 1, *pixels.shape[4:])}, "
                         f"got {tuple(masks.shape)}")
    n = pixels.shape[2]
    if not 1 <= n <= frame_buffer_max:
        raise InputError(f"GEN3C reads 1 to {frame_buffer_max} warped buffers, got {n}")
    mvid = mask_video(masks)
    parts = []
    for i in range(n):
        parts.append(encode(pixels[:, :, i].permute(0, 2, 1, 3, 4)))
        parts.append(encode(mvid[:, :, i].permute(0, 2, 1, 3, 4)))
    parts += [torch.zeros_like(parts[0])] * (2 * (frame_buffer_max - n))
    return torch.cat(parts, dim=1)


def cosmos_encoder(tokenizer, sigma_data: float = SIGMA_DATA) -> Callable[[Tensor], Tensor]:
    """A lyra3d tokenizer (e.g. :class:`~lyra3d.models.diffusers_vae.DiffusersVideoTokenizer` of an
    ``AutoencoderKLCosmos``: ``(B, T, 3, H, W)`` in [0, 1] → normalised ``(B, T', C, h, w)``) as the official
    ``encode``: ``(B, 3, T, H, W)`` in [-1, 1] → ``(B, C, T', h, w)`` × ``sigma_data``."""
    def encode(video: Tensor) -> Tensor:
        lat = tokenizer.encode(((video.float() + 1) / 2).permute(0, 2, 1, 3, 4))
        return lat.permute(0, 2, 1, 3, 4) * sigma_data
    return encode


def condition_video(image: Tensor, num_frames: int = NUM_FRAMES) -> Tensor:
    """The video whose encoding gives the condition latents: the input image ``(B, 3, H, W)`` in [-1, 1] as
    frame 0, then zero frames, ``(B, 3, num_frames, H, W)`` (the official code encodes one whole 121-frame chunk
    and keeps the first latent frame)."""
    if image.ndim != 4 or image.shape[1] != 3:
        raise InputError(f"the condition image must be (B, 3, H, W), got {tuple(image.shape)}")
    video = image.new_zeros(image.shape[0], 3, num_frames, *image.shape[-2:])
    video[:, :, 0] = image
    return video


def condition_indicator(latent_frames: int, num_condition_t: int = NUM_CONDITION_LATENT_FRAMES,
                        like: Tensor | None = None) -> Tensor:
    """``(1, 1, T', 1, 1)``: 1 on the first ``num_condition_t`` latent frames (the condition region), else 0."""
    if not 0 <= num_condition_t <= latent_frames:
        raise InputError(f"num_condition_t must be in [0, {latent_frames}], got {num_condition_t}")
    ind = torch.zeros(1, 1, latent_frames, 1, 1, dtype=like.dtype if like is not None else torch.float32,
                      device=like.device if like is not None else None)
    ind[:, :, :num_condition_t] = 1
    return ind


def condition_input_mask(indicator: Tensor, batch: int, height: int, width: int,
                         video_cond_bool: bool = True) -> Tensor:
    """The network's condition-mask channel ``(B, 1, T', h, w)``: the indicator broadcast (``video_cond_bool``),
    or zeros (the unconditional pass of ``add_input_frames_guidance``, off in the official scripts)."""
    shape = (batch, 1, indicator.shape[2], height, width)
    if not video_cond_bool:
        return indicator.new_zeros(shape)
    return indicator.expand(shape).clone()


def c_in(sigma: Tensor | float, sigma_data: float = SIGMA_DATA) -> Tensor:
    sigma = torch.as_tensor(sigma, dtype=torch.float32)
    return 1 / (sigma ** 2 + sigma_data ** 2) ** 0.5


def augment_condition_frames(xt: Tensor, sigma: Tensor | float, gt_latent: Tensor, indicator: Tensor, noise: Tensor,
                             augment_sigma: float = AUGMENT_SIGMA,
                             sigma_data: float = SIGMA_DATA) -> tuple[Tensor, Tensor]:
    """The official ``_augment_noise_with_latent``: the condition frames of ``xt (B, C, T', h, w)`` become
    ``(gt + noise·augment_sigma)·c_in(augment_sigma) / c_in(sigma)``; where ``augment_sigma ≥ sigma`` nothing is
    replaced (the indicator returned is then zero). Returns ``(new_xt, indicator)``."""
    sigma = torch.as_tensor(sigma, dtype=torch.float32)
    if augment_sigma >= float(sigma):
        indicator = torch.zeros_like(indicator)
    aug = (gt_latent.float() + noise.float() * augment_sigma) * c_in(augment_sigma, sigma_data)
    aug = aug / c_in(sigma, sigma_data).to(aug.device)
    new_xt = indicator * aug.to(xt.dtype) + (1 - indicator) * xt
    return new_xt, indicator


def condition_output(gt_latent: Tensor, xt: Tensor, sigma: Tensor | float, sigma_data: float = SIGMA_DATA) -> Tensor:
    """The network output that makes EDM's denoised estimate equal ``gt_latent`` (``_reverse_precondition_output``):
    ``(gt − c_skip·xt) / c_out``."""
    sigma = torch.as_tensor(sigma, dtype=torch.float32, device=xt.device)
    c_skip = sigma_data ** 2 / (sigma ** 2 + sigma_data ** 2)
    c_out = sigma * sigma_data / (sigma ** 2 + sigma_data ** 2) ** 0.5
    return (gt_latent - c_skip * xt) / c_out


def network_input(x_scaled: Tensor, input_mask: Tensor, buffers: Tensor, drop_buffers: bool = False) -> Tensor:
    """The network's input channels ``[x (C) | input mask (1) | buffers]`` (``drop_buffers``: zeros, the
    unconditional pass). The padding mask is added by the network itself."""
    if buffers.shape[0] != x_scaled.shape[0] or buffers.shape[2:] != x_scaled.shape[2:]:
        raise InputError(f"buffers {tuple(buffers.shape)} do not match the latents {tuple(x_scaled.shape)}")
    b = torch.zeros_like(buffers) if drop_buffers else buffers
    return torch.cat([x_scaled, input_mask.to(x_scaled.dtype), b.to(x_scaled.dtype)], dim=1)


def guided(cond: Tensor, uncond: Tensor, guidance: float = GUIDANCE) -> Tensor:
    """Cosmos' classifier-free guidance: ``cond + g·(cond − uncond)``."""
    return cond + guidance * (cond - uncond)
