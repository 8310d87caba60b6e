"""GEN3C-Cosmos-7B, the teacher of the official Lyra, as diffusers' ``CosmosTransformer3DModel`` (issue 24).

GEN3C fine-tunes the Cosmos-1.0 Video2World 7B network (NVIDIA's ``VideoExtendGeneralDIT`` with the
``faditv2_7b`` settings) with more input channels: per latent pixel the network reads

    [ x (16) | condition-video input mask (1) | buffer 1: warped rgb (16), warped mask (16) | buffer 2: ... ]

= 16 + 1 + 2 × (16 + 16) = 81 channels (the official ``in_channels=16 + 16 * 4 + 1`` with ``frame_buffer_max=2``),
then the padding mask (1, all zero at inference) that Cosmos concatenates itself: the patch embedding sees 82.
Each warped buffer and its mask are *latents*: the Cosmos tokenizer's encoding of the warped frames in [-1, 1]
(holes at -1) and of the mask video ``2·mask − 1`` repeated to 3 channels
(:mod:`lyra3d.models.gen3c_conditioning`). Everything else is the Cosmos-1.0 7B DiT: 28 blocks of width 4096
(32 heads of 128), AdaLN-LoRA of rank 256, T5-XXL (1024-d) cross-attention, 3D RoPE with temporal NTK factor 2,
learnable per-axis absolute embeddings, patch 1×2×2. diffusers' class holds exactly that, so the official weights
load key for key after renaming (:mod:`lyra3d.models.gen3c_convert`).

diffusers is optional (``pip install 'lyra3d[real]'``) and imported only when a model is built.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from lyra3d.errors import InputError


@dataclass(frozen=True)
class Gen3CConfig:
    """The GEN3C network's shape; the defaults are GEN3C-Cosmos-7B (``cosmos-1-diffusion-gen3c.py``)."""

    latent_channels: int = 16  # the Cosmos 8x8x8 tokenizer's
    frame_buffer_max: int = 2  # warped-cache buffers the network reads (unused ones are zero)
    num_attention_heads: int = 32
    attention_head_dim: int = 128
    num_layers: int = 28
    mlp_ratio: float = 4.0
    text_embed_dim: int = 1024  # T5-XXL
    adaln_lora_dim: int = 256
    max_size: tuple[int, int, int] = (128, 240, 240)  # max_frames, max_img_h, max_img_w (latent pixels)
    patch_size: tuple[int, int, int] = (1, 2, 2)
    rope_scale: tuple[float, float, float] = (2.0, 1.0, 1.0)  # rope_{t,h,w}_extrapolation_ratio
    concat_padding_mask: bool = True

    def __post_init__(self):
        for name in ("latent_channels", "frame_buffer_max", "num_attention_heads", "attention_head_dim", "num_layers",
                     "text_embed_dim", "adaln_lora_dim"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise InputError(f"GEN3C config: {name} must be a positive integer, got {getattr(self, name)!r}")
        if self.attention_head_dim % 2 or self.attention_head_dim < 8:  # the 3D RoPE: pairs of h, w and t dims
            raise InputError(f"GEN3C config: attention_head_dim must be even and at least 8, got "
                             f"{self.attention_head_dim}")

    @property
    def buffer_channels(self) -> int:
        """Channels of the warped buffers: per buffer the rgb latent and the mask latent."""
        return self.frame_buffer_max * 2 * self.latent_channels

    @property
    def in_channels(self) -> int:
        """diffusers' ``in_channels``: latent + condition mask + buffers (the padding mask comes on top)."""
        return self.latent_channels + 1 + self.buffer_channels

    @property
    def hidden_size(self) -> int:
        return self.num_attention_heads * self.attention_head_dim

    def diffusers_kwargs(self) -> dict:
        """The ``CosmosTransformer3DModel`` arguments of this config."""
        return dict(in_channels=self.in_channels, out_channels=self.latent_channels,
                    num_attention_heads=self.num_attention_heads, attention_head_dim=self.attention_head_dim,
                    num_layers=self.num_layers, mlp_ratio=self.mlp_ratio, text_embed_dim=self.text_embed_dim,
                    adaln_lora_dim=self.adaln_lora_dim, max_size=tuple(self.max_size),
                    patch_size=tuple(self.patch_size), rope_scale=tuple(self.rope_scale),
                    concat_padding_mask=self.concat_padding_mask, extra_pos_embed_type="learnable")

    @classmethod
    def from_diffusers(cls, cfg, frame_buffer_max: int | None = None) -> Gen3CConfig:
        """The GEN3C config of a ``CosmosTransformer3DModel`` config (a mapping); ``frame_buffer_max`` from the
        channel count (``in_channels = C + 1 + 2·C·buffers``) unless given. One-line error for any other layout."""
        c = int(cfg.get("out_channels", 16))
        extra = int(cfg["in_channels"]) - c - 1
        if frame_buffer_max is None:
            if extra <= 0 or extra % (2 * c):
                raise InputError(f"a Cosmos transformer with in_channels={cfg['in_channels']} is not a GEN3C network: "
                                 f"GEN3C reads {c} + 1 + 2·{c}·buffers channels (81 for GEN3C-Cosmos-7B)")
            frame_buffer_max = extra // (2 * c)
        if cfg.get("extra_pos_embed_type", "learnable") != "learnable":
            raise InputError("a Cosmos transformer without learnable position embeddings is not GEN3C (Cosmos-1.0)")
        return cls(latent_channels=c, frame_buffer_max=frame_buffer_max,
                   num_attention_heads=int(cfg["num_attention_heads"]),
                   attention_head_dim=int(cfg["attention_head_dim"]), num_layers=int(cfg["num_layers"]),
                   mlp_ratio=float(cfg.get("mlp_ratio", 4.0)), text_embed_dim=int(cfg["text_embed_dim"]),
                   adaln_lora_dim=int(cfg["adaln_lora_dim"]), max_size=tuple(cfg["max_size"]),
                   patch_size=tuple(cfg["patch_size"]), rope_scale=tuple(float(x) for x in cfg["rope_scale"]),
                   concat_padding_mask=bool(cfg.get("concat_padding_mask", True)))


#: GEN3C-Cosmos-7B (the released ``Gen3C-Cosmos-7B/model.pt``).
GEN3C_COSMOS_7B = Gen3CConfig()


def _diffusers():
    try:
        import diffusers
    except ImportError:
        raise InputError("the GEN3C teacher needs diffusers: pip install 'lyra3d[real]' (or pip install diffusers)") \
            from None
    if not hasattr(diffusers, "CosmosTransformer3DModel"):
        raise InputError(f"diffusers {diffusers.__version__} lacks CosmosTransformer3DModel; upgrade diffusers")
    return diffusers


def _nearest_resize(img: Tensor, size, interpolation=None, **_) -> Tensor:
    """torchvision's tensor ``resize`` with NEAREST (``interpolate(mode="nearest")``), for the padding mask."""
    return torch.nn.functional.interpolate(img, size=list(size), mode="nearest")


def ensure_padding_mask_resize() -> None:
    """diffusers' Cosmos forward resizes the padding mask with torchvision (nearest); where torchvision is not
    installed, give its module the same operation in plain torch (exactly what torchvision does for a tensor)."""
    import types

    from diffusers.models.transformers import transformer_cosmos as tc

    if getattr(tc, "transforms", None) is None:
        tc.transforms = types.SimpleNamespace(
            functional=types.SimpleNamespace(resize=_nearest_resize),
            InterpolationMode=types.SimpleNamespace(NEAREST="nearest"))


def build_gen3c_transformer(config: Gen3CConfig = GEN3C_COSMOS_7B, device: str | torch.device | None = None,
                            dtype: torch.dtype | None = None) -> nn.Module:
    """A randomly initialised diffusers ``CosmosTransformer3DModel`` of ``config``. Build the 7B one on the meta
    device (``device="meta"``, no memory) or directly on the GPU in bf16; never in fp32 on a CPU."""
    diffusers = _diffusers()
    ensure_padding_mask_resize()
    previous = torch.get_default_dtype()
    try:
        if dtype is not None and dtype.is_floating_point:
            torch.set_default_dtype(dtype)  # parameters are made in this dtype: no fp32 copy first
        with torch.device(device or "cpu"):
            model = diffusers.CosmosTransformer3DModel(**config.diffusers_kwargs())
    finally:
        torch.set_default_dtype(previous)
    return model.eval()


def read_gen3c_config(directory: str | Path) -> Gen3CConfig:
    """The :class:`Gen3CConfig` of a saved diffusers GEN3C transformer folder, from its ``config.json`` alone."""
    path = Path(directory) / "config.json"
    if not Path(directory).is_dir():
        raise InputError(f"GEN3C folder not found: {directory}; convert the official checkpoint first "
                         "(lyra3d convert gen3c model.pt DIR)")
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        raise InputError(f"{path} is missing or not JSON; give a folder written by `lyra3d convert gen3c`") from None
    if not isinstance(raw, dict) or raw.get("_class_name") != "CosmosTransformer3DModel":
        name = raw.get("_class_name") if isinstance(raw, dict) else None
        raise InputError(f"{directory} holds a {name or 'model of no class'}, not a diffusers CosmosTransformer3DModel")
    try:
        return Gen3CConfig.from_diffusers(raw)
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"{path}: not a complete Cosmos transformer config ({e})") from None


def load_gen3c_transformer(directory: str | Path, device: str | torch.device = "cpu",
                           dtype: torch.dtype | None = torch.bfloat16) -> nn.Module:
    """Load a GEN3C transformer saved by :func:`~lyra3d.models.gen3c_convert.convert_gen3c_checkpoint` (or any
    diffusers ``CosmosTransformer3DModel`` folder of GEN3C's channel layout). Local files only."""
    read_gen3c_config(directory)
    diffusers = _diffusers()
    ensure_padding_mask_resize()
    try:
        model = diffusers.CosmosTransformer3DModel.from_pretrained(str(directory), local_files_only=True,
                                                                    torch_dtype=dtype)
    except (OSError, ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"cannot load the GEN3C transformer in {directory}: {first}") from None
    return model.to(device).eval()


def gen3c_config_of(model: nn.Module) -> Gen3CConfig:
    """The :class:`Gen3CConfig` of a diffusers Cosmos transformer (one-line error if its channels are not GEN3C's)."""
    return Gen3CConfig.from_diffusers(dict(model.config))


def config_record(config: Gen3CConfig) -> dict:
    """The config as plain JSON values (for reports)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}
