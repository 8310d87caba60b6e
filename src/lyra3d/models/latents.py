"""The shape of a video tokenizer's latents, which every part downstream reads (the video model, the 3DGS
decoder, SDG, training): ``T = 1 + k·m`` frames ``(T, 3, H, W)`` become ``1 + m`` latent frames ``(C, H/s, W/s)``,
the first frame alone and every following group of ``k`` frames (causal)."""

from __future__ import annotations

from dataclasses import dataclass

from lyra3d.errors import InputError


@dataclass(frozen=True)
class LatentShape:
    """What a decoder must know of a tokenizer's latents: channels, pixels per latent pixel (``spatial_factor``)
    and frames per latent frame after the first (``temporal_factor``)."""

    latent_channels: int
    spatial_factor: int
    temporal_factor: int

    def describe(self) -> str:
        return (f"{self.latent_channels}-channel latents with temporal factor {self.temporal_factor} and spatial "
                f"factor {self.spatial_factor}")


def causal_latent_frames(num_frames: int, k: int) -> int:
    """Latent frames of a causal tokenizer with temporal factor ``k``: ``1 + (T - 1) / k``."""
    if num_frames < 1 or (num_frames - 1) % k:
        raise InputError(f"the tokenizer takes 1 + {k}·m frames (1, {1 + k}, {1 + 2 * k}, ...), got {num_frames}")
    return 1 + (num_frames - 1) // k


def check_trajectory_frames(num_frames: int, k: int, name: str = "frames per trajectory") -> None:
    """A one-line error unless ``num_frames`` is ``1 + k·m`` with ``m >= 1``: a trajectory of a causal
    tokenizer with temporal factor ``k`` (one frame is an image, not a trajectory)."""
    if num_frames < 1 + k or (num_frames - 1) % k:
        raise InputError(f"{name} must be 1 + {k}·m with m >= 1 for this tokenizer (e.g. {1 + k}, {1 + 2 * k}, "
                         f"{1 + 4 * k}), got {num_frames}")
