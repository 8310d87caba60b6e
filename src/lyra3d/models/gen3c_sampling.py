"""The official GEN3C sampler (``DiffusionV2WModel.generate_samples_from_batch`` with diffusers'
``EDMEulerScheduler(sigma_max=80, sigma_min=0.0002, sigma_data=0.5)``, Karras sigmas, rho 7, 35 steps), written
as small functions over tensors around a diffusers ``CosmosTransformer3DModel`` of GEN3C's channel layout:
:func:`edm_sigmas` (the schedule), :func:`denoise_step` (one step: condition frames, two guided passes, the
condition-frame replacement, the Euler update) and :func:`sample` (the loop). The conditioning is
:mod:`lyra3d.models.gen3c_conditioning`'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lyra3d.errors import InputError
from lyra3d.models.gen3c_conditioning import (
    AUGMENT_SIGMA,
    FPS,
    GUIDANCE,
    NUM_CONDITION_LATENT_FRAMES,
    NUM_STEPS,
    SIGMA_DATA,
    SIGMA_MAX,
    SIGMA_MIN,
    augment_condition_frames,
    buffer_pixel_noise,
    c_in,
    condition_indicator,
    condition_input_mask,
    condition_output,
    condition_video,
    encode_buffers,
    guided,
    network_input,
)

RHO = 7.0


@dataclass
class Gen3CCondition:
    """One trajectory's conditioning (batch ``B``): ``gt_latent (B, C, T', h, w)`` the condition video's latents
    (first latent frame used), ``indicator (1, 1, T', 1, 1)``, ``buffers (B, F·2·C, T', h, w)``
    (:func:`~lyra3d.models.gen3c_conditioning.encode_buffers`), the prompt's and the negative prompt's T5
    embeddings ``text``, ``negative_text (B, L, 1024)``, and the frame rate."""

    gt_latent: Tensor
    indicator: Tensor
    buffers: Tensor
    text: Tensor
    negative_text: Tensor
    fps: int = FPS


def build_condition(encode, image: Tensor, warped_rgb: Tensor, warped_mask: Tensor, text: Tensor,
                    negative_text: Tensor, frame_buffer_max: int = 2, noise_aug_strength: float = 0.0,
                    generator: torch.Generator | None = None, fps: int = FPS) -> Gen3CCondition:
    """One trajectory's :class:`Gen3CCondition` from lyra3d's conventions, as the official single-image scripts
    build it.

    Args:
        encode: the official ``encode``: ``(1, 3, T, H, W)`` in [-1, 1] → ``(1, C, T', h, w)`` × ``sigma_data``
            (:func:`~lyra3d.models.gen3c_conditioning.cosmos_encoder`).
        image: the input image ``(3, H, W)`` in [0, 1] (the condition: frame 0 of a ``T``-frame video, the rest 0).
        warped_rgb: the warped cache ``(T, N, 3, H, W)`` in [0, 1] (``N`` buffers; one for a single image).
        warped_mask: ``(T, N, 1, H, W)`` in {0, 1}; rgb outside the mask becomes -1 (``forward_warp``'s holes).
        text, negative_text: T5 embeddings ``(1, L, D)`` of the prompt and the negative prompt.
        noise_aug_strength: the official ``--noise_aug_strength`` (pixel noise on older buffers; default 0).
    """
    if warped_rgb.ndim != 5 or warped_mask.shape != (*warped_rgb.shape[:2], 1, *warped_rgb.shape[3:]):
        raise InputError(f"warped rgb (T, N, 3, H, W) and mask (T, N, 1, H, W) expected, got "
                         f"{tuple(warped_rgb.shape)} and {tuple(warped_mask.shape)}")
    if image.shape != warped_rgb.shape[2:]:
        raise InputError(f"image {tuple(image.shape)} does not match the warped frames {tuple(warped_rgb.shape[2:])}")
    pixels = (torch.where(warped_mask > 0, warped_rgb, torch.zeros_like(warped_rgb)) * 2 - 1)[None]
    pixels = buffer_pixel_noise(pixels, noise_aug_strength, generator) if noise_aug_strength else pixels
    buffers = encode_buffers(encode, pixels, warped_mask[None].to(pixels.dtype), frame_buffer_max)
    gt = encode(condition_video(image[None] * 2 - 1, warped_rgb.shape[0]))
    return Gen3CCondition(gt_latent=gt, indicator=condition_indicator(gt.shape[2], NUM_CONDITION_LATENT_FRAMES, gt),
                          buffers=buffers, text=text, negative_text=negative_text, fps=fps)


def edm_sigmas(num_steps: int = NUM_STEPS, sigma_min: float = SIGMA_MIN, sigma_max: float = SIGMA_MAX,
               rho: float = RHO) -> Tensor:
    """Karras sigmas from ``sigma_max`` to ``sigma_min``, then 0: ``num_steps + 1`` values (float32)."""
    ramp = torch.linspace(0, 1, num_steps, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sig = (hi + ramp * (lo - hi)) ** rho
    return torch.cat([sig, sig.new_zeros(1)]).float()


def noise_timestep(sigma: Tensor | float) -> Tensor:
    """EDM's ``c_noise = log(sigma) / 4``: the timestep the network is given."""
    return torch.log(torch.as_tensor(sigma, dtype=torch.float32)) / 4


def initial_latents(shape: tuple[int, ...], generator: torch.Generator | None = None, device=None,
                    sigma_max: float = SIGMA_MAX) -> Tensor:
    """Pure noise at the first sigma: ``randn · sqrt(sigma_max² + 1)`` (the scheduler's ``init_noise_sigma``)."""
    return torch.randn(shape, generator=generator, device=device) * math.sqrt(sigma_max ** 2 + 1)


def predict(model: nn.Module, x_in: Tensor, sigma: Tensor | float, text: Tensor, fps: int = FPS) -> Tensor:
    """One network pass: ``x_in (B, C_in, T', h, w)`` (:func:`network_input`), the timestep of ``sigma``, the
    text embedding; a zero padding mask; output ``(B, C, T', h, w)`` in the network's dtype."""
    dtype = next(model.parameters()).dtype
    b, _, _, h, w = x_in.shape
    t = noise_timestep(sigma).to(x_in.device).expand(b)
    out = model(hidden_states=x_in.to(dtype), timestep=t.to(dtype), encoder_hidden_states=text.to(dtype), fps=fps,
                padding_mask=x_in.new_zeros(1, 1, h, w, dtype=dtype), return_dict=False)[0]
    return out


def denoise_step(model: nn.Module, xt: Tensor, sigma: float, sigma_next: float, cond: Gen3CCondition,
                 guidance: float = GUIDANCE, augment_sigma: float = AUGMENT_SIGMA, noise: Tensor | None = None,
                 sigma_data: float = SIGMA_DATA) -> Tensor:
    """One official denoising step from ``sigma`` to ``sigma_next``: ``xt (B, C, T', h, w)`` float32 → the next.

    ``noise`` (the condition frames' augmentation noise, like ``xt``; the official code draws it once per seed and
    reuses it every step) defaults to zeros."""
    b, _, _, h, w = xt.shape
    noise = torch.zeros_like(cond.gt_latent) if noise is None else noise
    new_xt, ind = augment_condition_frames(xt, sigma, cond.gt_latent, cond.indicator, noise, augment_sigma,
                                           sigma_data)
    x_scaled = new_xt * c_in(sigma, sigma_data).to(xt.device)
    mask = condition_input_mask(cond.indicator, b, h, w)
    out_c = predict(model, network_input(x_scaled, mask, cond.buffers), sigma, cond.text, cond.fps).float()
    out_u = predict(model, network_input(x_scaled, mask, cond.buffers, drop_buffers=True), sigma,
                    cond.negative_text, cond.fps).float()
    out = guided(out_c, out_u, guidance)
    out = ind * condition_output(cond.gt_latent.float(), new_xt, sigma, sigma_data) + (1 - ind) * out
    s = torch.as_tensor(sigma, dtype=torch.float32, device=xt.device)
    c_skip = sigma_data ** 2 / (s ** 2 + sigma_data ** 2)
    c_out = s * sigma_data / (s ** 2 + sigma_data ** 2) ** 0.5
    denoised = c_skip * new_xt + c_out * out
    return new_xt + (new_xt - denoised) / s * (float(sigma_next) - s)


@torch.no_grad()
def sample(model: nn.Module, cond: Gen3CCondition, num_steps: int = NUM_STEPS, guidance: float = GUIDANCE,
           seed: int = 0, augment_sigma: float = AUGMENT_SIGMA, callback=None) -> Tensor:
    """The whole official loop: latents ``(B, C, T', h, w)`` float32 (the tokenizer's normalised latents ×
    ``sigma_data``: divide by it before decoding). ``callback(i, num_steps)`` after each step."""
    device = cond.buffers.device
    g = torch.Generator(device=device).manual_seed(seed)
    shape = tuple(cond.gt_latent.shape)
    xt = initial_latents(shape, g, device)
    noise = torch.randn(shape, generator=g, device=device)
    sigmas = edm_sigmas(num_steps).tolist()
    for i in range(num_steps):
        xt = denoise_step(model, xt, sigmas[i], sigmas[i + 1], cond, guidance, augment_sigma, noise)
        if callback is not None:
            callback(i + 1, num_steps)
    return xt
