"""The video tokenizer: a causal video autoencoder (docs/design.md §3 ``tokenizer``), and :func:`load_tokenizer`,
which also puts a diffusers video VAE (Wan 2.1, CogVideoX, LTX-Video, HunyuanVideo, Cosmos: the adapter of
:mod:`lyra3d.models.diffusers_vae`) behind the same interface.

``T = 1 + k·m`` frames ``(B, T, 3, H, W)`` in [0, 1] become latents ``(B, 1 + m, C, H/8, W/8)``: the first
frame is encoded on its own (so an image is a one-frame video), every following group of ``k`` frames
(``temporal_factor``) shares one latent frame, and a latent frame depends only on its own frames and none
after them (causal). ``C = 16`` channels, as the Cosmos tokenizer Lyra uses. Deterministic (no sampling).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lyra3d.errors import InputError
from lyra3d.models.configs import TokenizerConfig  # noqa: F401 (the config lives in a torch-free module)
from lyra3d.models.diffusers_vae import DiffusersVideoTokenizer, vae_latent_shape
from lyra3d.models.latents import LatentShape, causal_latent_frames, check_trajectory_frames  # noqa: F401
from lyra3d.models.modeling import Pretrained


@runtime_checkable
class Tokenizer(Protocol):
    """What the rest of lyra3d needs of a tokenizer: videos ``(B, T, 3, H, W)`` in [0, 1] to latents
    ``(B, T', C, h, w)`` and back."""

    latent_channels: int
    temporal_factor: int
    spatial_factor: int

    def latent_frames(self, num_frames: int) -> int: ...

    def encode(self, video: Tensor) -> Tensor: ...

    def decode(self, latents: Tensor) -> Tensor: ...


class _Res(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.GroupNorm(8, c), nn.SiLU(), nn.Conv2d(c, c, 3, padding=1),
                                  nn.GroupNorm(8, c), nn.SiLU(), nn.Conv2d(c, c, 3, padding=1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class VideoTokenizer(Pretrained):
    """Per-frame 2D encoder (8× down) → causal temporal grouping → ``C`` latent channels, and back."""

    config_class = TokenizerConfig
    model_type = "lyra3d-video-tokenizer"
    part = "tokenizer"

    def __init__(self, config: TokenizerConfig):
        super().__init__()
        if config.spatial_factor != 8:
            raise InputError("this tokenizer compresses space by 8 (spatial_factor must be 8)")
        self.config = config
        c, k, z = config.base_channels, config.temporal_factor, config.latent_channels
        c4 = 4 * c
        self.enc = nn.Sequential(
            nn.Conv2d(3, c, 3, padding=1), _Res(c), nn.Conv2d(c, 2 * c, 4, stride=2, padding=1),
            _Res(2 * c), nn.Conv2d(2 * c, c4, 4, stride=2, padding=1),
            _Res(c4), nn.Conv2d(c4, c4, 4, stride=2, padding=1), _Res(c4))
        self.enc_first = nn.Sequential(_Res(c4), nn.GroupNorm(8, c4), nn.SiLU(), nn.Conv2d(c4, z, 3, padding=1))
        self.enc_group = nn.Sequential(nn.Conv2d(k * c4, c4, 1), _Res(c4), nn.GroupNorm(8, c4), nn.SiLU(),
                                       nn.Conv2d(c4, z, 3, padding=1))
        self.dec_first = nn.Sequential(nn.Conv2d(z, c4, 3, padding=1), _Res(c4))
        self.dec_group = nn.Sequential(nn.Conv2d(z, c4, 3, padding=1), _Res(c4), nn.Conv2d(c4, k * c4, 1))
        up = lambda cin, cout: nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),  # noqa: E731
                                             nn.Conv2d(cin, cout, 3, padding=1))
        self.dec = nn.Sequential(
            _Res(c4), _Res(c4), up(c4, c4), _Res(c4), up(c4, 2 * c), _Res(2 * c), up(2 * c, c), _Res(c),
            nn.GroupNorm(8, c), nn.SiLU(), nn.Conv2d(c, 3, 3, padding=1))

    # -- shapes -------------------------------------------------------------------------------------------
    @property
    def latent_channels(self) -> int:
        return self.config.latent_channels

    @property
    def temporal_factor(self) -> int:
        return self.config.temporal_factor

    @property
    def spatial_factor(self) -> int:
        return self.config.spatial_factor

    def latent_frames(self, num_frames: int) -> int:
        return causal_latent_frames(num_frames, self.config.temporal_factor)

    def _check(self, video: Tensor) -> None:
        if video.ndim != 5 or video.shape[2] != 3:
            raise InputError(f"video must be (B, T, 3, H, W), got {tuple(video.shape)}")
        if video.shape[-1] % 8 or video.shape[-2] % 8:
            raise InputError(f"frame size must be a multiple of 8, got {video.shape[-1]}x{video.shape[-2]}")
        self.latent_frames(video.shape[1])

    # -- encode / decode -----------------------------------------------------------------------------------
    def encode(self, video: Tensor) -> Tensor:
        """``video (B, T, 3, H, W)`` in [0, 1] → latents ``(B, 1 + (T-1)/k, C, H/8, W/8)``."""
        self._check(video)
        b, t, _, h, w = video.shape
        k = self.config.temporal_factor
        f = self.__dict__.get("_compiled_frames", self.encode_frames)(video.reshape(b * t, 3, h, w))
        f = f.reshape(b, t, *f.shape[1:])
        first = self.enc_first(f[:, 0])[:, None]
        if t == 1:
            return first
        groups = f[:, 1:].reshape(b * ((t - 1) // k), k * f.shape[2], *f.shape[3:])
        rest = self.enc_group(groups).reshape(b, (t - 1) // k, -1, *f.shape[3:])
        return torch.cat([first, rest], 1)

    def encode_frames(self, frames: Tensor) -> Tensor:
        """The per-frame 2D encoder, the bulk of :meth:`encode`'s work: ``frames (N, 3, H, W)`` in [0, 1] →
        features ``(N, 4·base_channels, H/8, W/8)``."""
        return self.enc(frames * 2 - 1)

    def compile_encoder(self) -> None:
        """``torch.compile`` :meth:`encode_frames` as one graph, once (the weights and their names stay as they are;
        each new frame count compiles anew, up to torch's limit, then runs eagerly). GroupNorm, SiLU and the residual
        adds fuse around the convolutions: on an H200 in bf16 autocast about 3x faster (``benchmarks/encoder.py``)."""
        if "_compiled_frames" not in self.__dict__:
            self.__dict__["_compiled_frames"] = torch.compile(self.encode_frames, dynamic=False)

    def uncompile_encoder(self) -> None:
        """Back to the eager :meth:`encode_frames` (e.g. where no compiler is installed)."""
        self.__dict__.pop("_compiled_frames", None)

    @property
    def encoder_compiled(self) -> bool:
        return "_compiled_frames" in self.__dict__

    def decode(self, latents: Tensor) -> Tensor:
        """``latents (B, T', C, h, w)`` → video ``(B, 1 + k(T'-1), 3, 8h, 8w)`` in [0, 1] (clamped)."""
        return ((self.decode_raw(latents) + 1) / 2).clamp(0, 1)

    def decode_raw(self, latents: Tensor) -> Tensor:
        """Decoder output in [-1, 1] space, unclamped (for training losses)."""
        if latents.ndim != 5 or latents.shape[2] != self.config.latent_channels:
            raise InputError(f"latents must be (B, T', {self.config.latent_channels}, h, w), got {tuple(latents.shape)}")
        b, tl, _, h, w = latents.shape
        k = self.config.temporal_factor
        first = self.dec_first(latents[:, 0])[:, None]
        feats = [first]
        if tl > 1:
            g = self.dec_group(latents[:, 1:].reshape(b * (tl - 1), -1, h, w))
            feats.append(g.reshape(b, (tl - 1) * k, -1, h, w))
        f = torch.cat(feats, 1)
        t = f.shape[1]
        out = self.dec(f.reshape(b * t, *f.shape[2:]))
        return out.reshape(b, t, 3, 8 * h, 8 * w)

    def forward(self, video: Tensor) -> Tensor:
        return self.decode_raw(self.encode(video))


def _read_config(directory: Path) -> dict:
    if not directory.is_dir():
        raise InputError(f"tokenizer folder not found: {directory}; give a folder holding a lyra3d tokenizer or a "
                         "saved diffusers video VAE")
    config = directory / "config.json"
    if not config.is_file():
        raise InputError(f"no tokenizer in {directory}: config.json is missing")
    try:
        raw = json.loads(config.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(f"{config} is not JSON; give a folder holding a lyra3d tokenizer or a diffusers video "
                         "VAE") from None
    if not isinstance(raw, dict) or (raw.get("model_type") != VideoTokenizer.model_type and "_class_name" not in raw):
        raise InputError(f"{config} describes neither a lyra3d tokenizer nor a diffusers video VAE")
    return raw


def load_tokenizer(directory: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
                   tiling: bool | str = "auto", slicing: bool = True) -> Tokenizer:
    """A tokenizer from a folder: lyra3d's own (``model_type`` in config.json) or a diffusers video VAE
    (``_class_name``: Wan 2.1, CogVideoX, LTX-Video, HunyuanVideo or Cosmos, :mod:`lyra3d.models.diffusers_vae`;
    ``dtype``, ``tiling`` and ``slicing`` apply to those)."""
    directory = Path(directory)
    raw = _read_config(directory)
    if raw.get("model_type") == VideoTokenizer.model_type:
        return VideoTokenizer.from_pretrained(directory, device)
    return DiffusersVideoTokenizer.from_pretrained(directory, device, dtype=dtype, tiling=tiling, slicing=slicing)


def tokenizer_latent_shape(directory: str | Path) -> LatentShape:
    """The latent shape of the tokenizer in ``directory`` from its ``config.json`` alone (no weights load)."""
    directory = Path(directory)
    raw = _read_config(directory)
    if raw.get("model_type") == VideoTokenizer.model_type:
        cfg = TokenizerConfig(**{k: v for k, v in raw.items() if k in TokenizerConfig.__dataclass_fields__})
        return LatentShape(cfg.latent_channels, cfg.spatial_factor, cfg.temporal_factor)
    return vae_latent_shape(directory)


def latent_shape_of(tokenizer: Tokenizer) -> LatentShape:
    """A loaded tokenizer's latent shape (channels, spatial factor, temporal factor)."""
    return LatentShape(int(tokenizer.latent_channels), int(tokenizer.spatial_factor), int(tokenizer.temporal_factor))


def reconstruction_loss(pred_raw: Tensor, video: Tensor) -> Tensor:
    """L1 in [-1, 1] space plus 0.2 × (1 − SSIM) on the frames (both differentiable)."""
    from lyra3d.core.metrics import ssim

    target = video * 2 - 1
    l1 = F.l1_loss(pred_raw, target)
    frames = lambda x: ((x.float() + 1) / 2).reshape(-1, *x.shape[-3:])  # noqa: E731
    return l1 + 0.2 * (1 - ssim(frames(pred_raw), frames(target)).mean())
