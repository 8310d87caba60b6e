"""Video VAEs from diffusers as lyra3d's tokenizer (issue 22): ``AutoencoderKLWan`` (Wan 2.1),
``AutoencoderKLCogVideoX``, ``AutoencoderKLLTXVideo``, ``AutoencoderKLHunyuanVideo`` and ``AutoencoderKLCosmos``,
each behind the :class:`~lyra3d.models.tokenizer.Tokenizer` interface: videos ``(B, T, 3, H, W)`` in [0, 1] with
``T = 1 + k·m`` become latents ``(B, 1 + m, C, H/s, W/s)`` and back.

One :class:`VAEFamily` per class (the table :data:`FAMILIES`) says what differs: the latent channels and the
spatial (``s``) and temporal (``k``) factors, read from the VAE's ``config.json`` (so a folder's shape is
known before its weights load, :func:`vae_latent_shape`), and the latent normalisation that makes the
latents roughly unit-scale, as each model's own diffusers pipeline does before its transformer:

- Wan: ``(z − latents_mean) / latents_std`` (per channel, from the config);
- LTX-Video: ``(z − latents_mean) · scaling_factor / latents_std`` (the VAE's buffers);
- CogVideoX, HunyuanVideo: ``z · scaling_factor``;
- Cosmos: ``(z − latents_mean) / latents_std`` per channel and latent frame (the config's ``C × 16`` tables;
  frames past the table use its last), or ``z`` where the config has none.

All five take frames in [-1, 1], compress causally (the first frame alone) and are encoded deterministically
(the latent distribution's mode). Slicing (``enable_slicing``: the batch one video at a time) is on by default;
tiling (``enable_tiling``: overlapping spatial tiles, blended) is ``"auto"``: on for frames with a side over
:data:`AUTO_TILE_SIDE` pixels (480×832 is tiled; lyra3d's 320×176 is encoded whole, exactly), or forced on or
off. Nothing is downloaded: folders load with ``local_files_only=True``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from lyra3d.errors import InputError
from lyra3d.models.latents import LatentShape, causal_latent_frames


def _ratio(key: str) -> Callable[[Mapping], int]:
    return lambda cfg: int(cfg[key])


def _wan_spatial(cfg: Mapping) -> int:  # one 2x stage per level but the last, then the optional patchify
    return 2 ** (len(cfg.get("dim_mult", [1, 2, 4, 4])) - 1) * int(cfg.get("patch_size") or 1)


def _ltx_spatial(cfg: Mapping) -> int:
    if cfg.get("spatial_compression_ratio"):
        return int(cfg["spatial_compression_ratio"])
    return int(cfg.get("patch_size", 4)) * 2 ** sum(map(bool, cfg.get("spatio_temporal_scaling", (1, 1, 1, 0))))


def _ltx_temporal(cfg: Mapping) -> int:
    if cfg.get("temporal_compression_ratio"):
        return int(cfg["temporal_compression_ratio"])
    return int(cfg.get("patch_size_t", 1)) * 2 ** sum(map(bool, cfg.get("spatio_temporal_scaling", (1, 1, 1, 0))))


def _no_shift(vae: nn.Module, frames: int) -> tuple[Tensor | float, Tensor | float]:
    return 0.0, 1.0 / float(vae.config.scaling_factor)


def _wan_stats(vae: nn.Module, frames: int) -> tuple[Tensor, Tensor]:
    cfg = vae.config
    return torch.tensor(cfg.latents_mean)[:, None], torch.tensor(cfg.latents_std)[:, None]


def _ltx_stats(vae: nn.Module, frames: int) -> tuple[Tensor, Tensor]:
    std = vae.latents_std.float().cpu()[:, None] / float(vae.config.scaling_factor)
    return vae.latents_mean.float().cpu()[:, None], std


def _cosmos_stats(vae: nn.Module, frames: int) -> tuple[Tensor | float, Tensor | float]:
    cfg = vae.config
    if cfg.get("latents_mean") is None or cfg.get("latents_std") is None:
        return 0.0, 1.0
    mean = torch.tensor(cfg.latents_mean).reshape(cfg.latent_channels, -1)
    std = torch.tensor(cfg.latents_std).reshape(cfg.latent_channels, -1)
    idx = torch.arange(frames).clamp(max=mean.shape[1] - 1)  # frames past the table: its last column
    return mean[:, idx], std[:, idx]


#: ``tiling="auto"`` tiles frames with a side longer than this (pixels).
AUTO_TILE_SIDE = 512


@dataclass(frozen=True)
class VAEFamily:
    """One diffusers video VAE class: how its config gives the latent shape, and its latent normalisation
    ``stats(vae, latent_frames) -> (shift, std)``, broadcastable to ``(C, T')``: lyra3d's latents are
    ``(z − shift) / std``."""

    class_name: str
    channels: Callable[[Mapping], int]
    spatial: Callable[[Mapping], int]
    temporal: Callable[[Mapping], int]
    stats: Callable[[nn.Module, int], tuple]
    normalisation: str  # in words, for reports

    def latent_shape(self, cfg: Mapping) -> LatentShape:
        return LatentShape(self.channels(cfg), self.spatial(cfg), self.temporal(cfg))


FAMILIES: dict[str, VAEFamily] = {f.class_name: f for f in (
    VAEFamily("AutoencoderKLWan", _ratio("z_dim"), _wan_spatial,
              lambda cfg: 2 ** sum(map(bool, cfg.get("temperal_downsample", (False, True, True)))),
              _wan_stats, "(z - latents_mean) / latents_std"),
    VAEFamily("AutoencoderKLCogVideoX", _ratio("latent_channels"),
              lambda cfg: 2 ** (len(cfg.get("block_out_channels", (128, 256, 256, 512))) - 1),
              lambda cfg: int(cfg.get("temporal_compression_ratio", 4)), _no_shift, "z * scaling_factor"),
    VAEFamily("AutoencoderKLLTXVideo", _ratio("latent_channels"), _ltx_spatial, _ltx_temporal, _ltx_stats,
              "(z - latents_mean) * scaling_factor / latents_std"),
    VAEFamily("AutoencoderKLHunyuanVideo", _ratio("latent_channels"), _ratio("spatial_compression_ratio"),
              _ratio("temporal_compression_ratio"), _no_shift, "z * scaling_factor"),
    VAEFamily("AutoencoderKLCosmos", _ratio("latent_channels"), _ratio("spatial_compression_ratio"),
              _ratio("temporal_compression_ratio"), _cosmos_stats, "(z - latents_mean) / latents_std per frame"),
)}


def read_vae_config(directory: str | Path) -> tuple[VAEFamily, dict]:
    """The family and the raw config of the diffusers video VAE saved in ``directory`` (one-line errors for a
    missing folder, an unreadable config, or a class that is not one of :data:`FAMILIES`)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"tokenizer folder not found: {directory}; give a folder holding a saved diffusers video VAE "
                         f"(config.json + weights) or a lyra3d tokenizer")
    path = directory / "config.json"
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(f"{path} is missing or not JSON; give a folder holding a saved diffusers video VAE") from None
    name = raw.get("_class_name", "") if isinstance(raw, dict) else ""
    family = FAMILIES.get(name)
    if family is None:
        raise InputError(f"{directory} holds a diffusers {name or 'model of no class'}, not a video VAE lyra3d reads; "
                         f"use a folder of {', '.join(FAMILIES)}")
    try:
        family.latent_shape(raw)
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{path}: a {name} config without its latent channels or compression factors") from None
    return family, raw


def vae_latent_shape(directory: str | Path) -> LatentShape:
    """The latent shape of the diffusers video VAE in ``directory``, from its ``config.json`` alone."""
    family, raw = read_vae_config(directory)
    return family.latent_shape(raw)


class DiffusersVideoTokenizer:
    """Adapter: a diffusers video VAE of :data:`FAMILIES` (taking ``(B, 3, T, H, W)`` in [-1, 1]) as a lyra3d
    :class:`~lyra3d.models.tokenizer.Tokenizer` (``(B, T, 3, H, W)`` in [0, 1], latents ``(B, T', C, h, w)``,
    normalised to roughly unit scale). Latents are the distribution's mode, so encoding is deterministic.

    Args:
        vae: the diffusers VAE.
        tiling: the VAE's tiled encoding and decoding: ``True``, ``False`` or ``"auto"`` (frames with a side over
            :data:`AUTO_TILE_SIDE` px).
        slicing: the VAE's batch-sliced encoding and decoding (one video at a time).
    """

    def __init__(self, vae: nn.Module, tiling: bool | str = "auto", slicing: bool = True):
        name = type(vae).__name__
        if name not in FAMILIES:
            raise InputError(f"a diffusers {name} is not a video VAE lyra3d reads; use one of {', '.join(FAMILIES)}")
        self.vae, self.family = vae.eval(), FAMILIES[name]
        shape = self.family.latent_shape(vae.config)
        self.latent_channels, self.spatial_factor, self.temporal_factor = \
            shape.latent_channels, shape.spatial_factor, shape.temporal_factor
        if tiling not in (True, False, "auto"):
            raise InputError(f"tiling must be true, false or auto, got {tiling!r}")
        self.tiling, self.slicing = tiling, slicing
        (vae.enable_tiling if tiling is True else vae.disable_tiling)()
        (vae.enable_slicing if slicing else vae.disable_slicing)()

    def _tile_for(self, height: int, width: int) -> None:
        """``tiling="auto"``: tile frames of this size (pixels) if a side is over :data:`AUTO_TILE_SIDE`."""
        if self.tiling == "auto":
            self.vae.use_tiling = max(height, width) > AUTO_TILE_SIDE

    @property
    def latent_shape(self) -> LatentShape:
        return LatentShape(self.latent_channels, self.spatial_factor, self.temporal_factor)

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu",
                        dtype: torch.dtype | None = None, tiling: bool | str = "auto",
                        slicing: bool = True) -> DiffusersVideoTokenizer:
        """Load the diffusers VAE saved in ``directory`` (its ``config.json`` names the class). Local only."""
        family, _ = read_vae_config(directory)
        try:
            import diffusers
        except ImportError:
            raise InputError(f"{directory} holds a diffusers VAE: install diffusers (pip install 'lyra3d[real]', "
                             "or pip install diffusers)") from None
        vae_cls = getattr(diffusers, family.class_name, None)
        if vae_cls is None:
            raise InputError(f"{directory} holds a diffusers {family.class_name}, which diffusers "
                             f"{diffusers.__version__} lacks; upgrade diffusers")
        try:
            vae = vae_cls.from_pretrained(str(directory), local_files_only=True, torch_dtype=dtype)
        except (OSError, ValueError, RuntimeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise InputError(f"cannot load the {family.class_name} in {directory}: {first}") from None
        return cls(vae.to(device), tiling=tiling, slicing=slicing)

    # -- shapes ---------------------------------------------------------------------------------------------------
    def latent_frames(self, num_frames: int) -> int:
        return causal_latent_frames(num_frames, self.temporal_factor)

    def _stats(self, frames: int, like: Tensor) -> tuple[Tensor, Tensor]:
        shift, std = self.family.stats(self.vae, frames)
        as_t = lambda x: torch.as_tensor(x, dtype=torch.float32, device=like.device)  # noqa: E731
        shift, std = as_t(shift), as_t(std)
        view = lambda x: x.reshape(1, *x.shape, 1, 1) if x.ndim else x  # noqa: E731
        return view(shift), view(std)  # (1, C, T' or 1, 1, 1) or scalars: the VAE's (B, C, T', h, w) layout

    def normalise(self, z: Tensor) -> Tensor:
        """The VAE's raw latents ``(B, C, T', h, w)`` → lyra3d's (unit-scale), same layout, float32."""
        shift, std = self._stats(z.shape[2], z)
        return (z.float() - shift) / std

    def denormalise(self, latents: Tensor) -> Tensor:
        """lyra3d's latents ``(B, C, T', h, w)`` → the VAE's raw latents, float32."""
        shift, std = self._stats(latents.shape[2], latents)
        return latents.float() * std + shift

    @property
    def _dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    # -- encode / decode ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, video: Tensor) -> Tensor:
        """``video (B, T, 3, H, W)`` in [0, 1], ``T = 1 + k·m`` → latents ``(B, 1 + m, C, H/s, W/s)`` float32."""
        if video.ndim != 5 or video.shape[2] != 3:
            raise InputError(f"video must be (B, T, 3, H, W), got {tuple(video.shape)}")
        self.latent_frames(video.shape[1])
        s = self.spatial_factor
        if video.shape[-1] % s or video.shape[-2] % s:
            raise InputError(f"this {self.family.class_name} takes frames whose sides are multiples of {s}, got "
                             f"{video.shape[-1]}x{video.shape[-2]}")
        self._tile_for(*video.shape[-2:])
        x = (video.permute(0, 2, 1, 3, 4) * 2 - 1).to(self._dtype)
        dist = self.vae.encode(x).latent_dist
        z = dist.mode() if hasattr(dist, "mode") else dist.mean
        return self.normalise(z).permute(0, 2, 1, 3, 4).contiguous()

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        """``latents (B, T', C, h, w)`` → video ``(B, 1 + k(T'−1), 3, s·h, s·w)`` in [0, 1] (clamped), float32."""
        if latents.ndim != 5 or latents.shape[2] != self.latent_channels:
            raise InputError(f"latents must be (B, T', {self.latent_channels}, h, w), got {tuple(latents.shape)}")
        self._tile_for(latents.shape[-2] * self.spatial_factor, latents.shape[-1] * self.spatial_factor)
        z = self.denormalise(latents.permute(0, 2, 1, 3, 4)).to(self._dtype)
        out = self.vae.decode(z).sample
        return ((out.float().permute(0, 2, 1, 3, 4) + 1) / 2).clamp(0, 1)

