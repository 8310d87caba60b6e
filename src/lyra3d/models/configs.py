"""The config dataclasses of the models (issue 26), torch-free: a checkpoint's ``config.json`` is checked against
its class (:mod:`lyra3d.models.checks`) before torch is imported, so a bad weights folder is refused at once.
Each model module imports its config from here (``from lyra3d.models.decoder import DecoderConfig`` still works).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from lyra3d.errors import InputError

#: The text-to-image vocabulary's first two words: padding and unknown.
PAD, UNK = "<pad>", "<unk>"


@dataclass
class DecoderConfig:
    latent_channels: int = 16
    spatial_factor: int = 8  # tokenizer's pixels per latent pixel
    temporal_factor: int = 4  # tokenizer's frames per latent frame after the first
    patch_size: int = 2  # latent pixels per token side
    gaussian_stride: int = 4  # pixels per Gaussian side (1 = a Gaussian per pixel; Lyra: 8)
    dim: int = 256
    depth: int = 6
    heads: int = 4
    mlp_ratio: float = 4.0
    max_views: int = 8  # learned trajectory embeddings
    near: float = 0.1
    far: float = 100.0
    distance_shift: float = -2.9  # sigmoid(-2.9)·100 ≈ 5 m at start: a procedural scene's centre
    scale_cap: float = 0.03  # relative to the distance
    mamba: bool = False  # Mamba2 blocks (mamba-ssm, CUDA) in place of the global attention blocks
    # a fact about training, not the architecture: frames per trajectory (4D: per clip) of the data it was
    # trained on, recorded by `lyra3d train decoder`; other counts decode rougher (empty: not recorded)
    trained_frames: list[int] = field(default_factory=list)

    @property
    def patch_px(self) -> int:
        return self.spatial_factor * self.patch_size

    @property
    def blocks_per_patch(self) -> int:
        if self.patch_px % self.gaussian_stride:
            raise InputError(f"gaussian_stride {self.gaussian_stride} must divide the token's {self.patch_px} pixels")
        return self.patch_px // self.gaussian_stride

    def reads(self, shape) -> bool:
        """Whether this decoder reads latents of ``shape`` (anything with ``latent_channels``, ``spatial_factor``,
        ``temporal_factor``: a tokenizer, :class:`lyra3d.models.diffusers_vae.LatentShape`)."""
        return (self.latent_channels, self.spatial_factor, self.temporal_factor) == \
            (shape.latent_channels, shape.spatial_factor, shape.temporal_factor)

    def for_latents(self, shape):
        """This config for a tokenizer's latent ``shape`` (as in :meth:`reads`): its channels and factors, and
        the patch size that keeps a token's pixel side (``patch_px``: 16 by default) where the spatial factor
        allows (LTX-Video's 32: one latent pixel per token, 32 px). The Gaussian stride stays (it must divide
        the token's pixels)."""
        s = int(shape.spatial_factor)
        out = replace(self, latent_channels=int(shape.latent_channels), spatial_factor=s,
                      temporal_factor=int(shape.temporal_factor), patch_size=max(1, self.patch_px // s))
        out.blocks_per_patch  # noqa: B018 (raises the one-line error when the stride does not divide the token)
        return out


@dataclass
class Decoder4DConfig(DecoderConfig):
    # seconds → the time code's unit range: [0, 1] over the 4 s that the procedural clips span
    # (lyra3d.data.worlds.DYNAMIC_HORIZON; a test checks the two agree)
    time_scale: float = 0.25
    input_view: bool = False  # the input video's own latents join as the last view (decode's input_latents)


@dataclass
class Lyra1DecoderConfig:
    """Lyra-1's official 3DGS decoder (``LatentRecon``, issue 24); defaults: the released checkpoints' settings
    (Lyra-1 configs/training/default.yaml + 3dgs_res_704_1280_views_121_multi_6[_dynamic]_prune.yaml). The
    official option names are in the comments."""

    latent_channels: int = 16  # num_latent_c
    temporal_compression: int = 8  # latent_time_compression: the tokenizer's frames per latent frame
    spatial_compression: int = 8  # latent_spat_compression
    patch_size: int = 2  # latent pixels per token side
    patch_size_temporal: int = 1
    dim: int = 512  # enc_embed_dim
    depth: int = 16  # enc_depth
    heads: int = 8  # enc_num_heads
    mlp_ratio: float = 4.0
    use_mamba: bool = True  # use_mamba (+ llrm_7m1t): Mamba2 blocks with a transformer block every ...
    transformer_every: int = 8  # llrm_7m1t_index: block i is a transformer block when (i + 1) % 8 == 0
    mamba_d_state: int = 256
    mamba_d_conv: int = 4
    mamba_expand: int = 2
    mamba_headdim: int = 64
    mamba_chunk_size: int = 256
    mamba_directions: int = 2  # scan_type "bi": forward and reversed
    output_factor: list[int] = field(default_factory=lambda: [1, 8, 8])  # patch_size_out_factor: pixels/Gaussian
    output_dims: int = 12  # distance 1, rgb 3, scale 3, rotation 4, opacity 1
    plucker_from_latents: bool = True  # plucker_embedding_vae: the rays (o×d, d) encoded by the tokenizer
    time_embedding: bool = True  # the time embeddings exist (both released checkpoints hold them) ...
    dynamic: bool = False  # use_time_embedding: ... and are used (lyra_dynamic.pt)
    near: float = 0.1  # dnear
    far: float = 500.0  # dfar
    distance_shift: float = -1.65  # pre_sigmoid_distance_shift
    scale_cap: float = 0.3  # gaussian_scale_cap (metres: not relative to the distance)
    prune_ratio: float = 0.8  # gaussians_prune_ratio: drop this share, the least opaque (Long-LRM pruning)
    random_ratio: float = 0.0  # gaussians_random_ratio: share of the kept ones drawn at random from the rest
    head_chunk_frames: int = 16  # decoded frames per chunk of the transposed-convolution head (memory bound)

    @property
    def gaussian_stride(self) -> int:
        """Pixels per Gaussian side."""
        return self.output_factor[1]


@dataclass
class DepthNetConfig:
    base_channels: int = 32
    levels: int = 4
    min_depth: float = 0.05
    max_depth: float = 100.0
    height: int = 176  # inference resolution (inputs are resized to it, outputs back)
    width: int = 320


@dataclass
class TextToImageConfig:
    vocab: list[str] = field(default_factory=lambda: [PAD, UNK])  # training sets the words it reads
    max_tokens: int = 96
    text_dim: int = 128
    text_depth: int = 2
    text_heads: int = 4
    latent_channels: int = 16
    latent_height: int = 22  # image height / the tokenizer's spatial factor (176 / 8)
    latent_width: int = 40
    spatial_factor: int = 8
    patch_size: int = 2
    dim: int = 256
    depth: int = 8
    heads: int = 4
    mlp_ratio: float = 4.0
    # per-channel statistics of the training latents (the model works on (latent - mean) / std)
    latent_mean: list[float] = field(default_factory=lambda: [0.0] * 16)
    latent_std: list[float] = field(default_factory=lambda: [1.0] * 16)


@dataclass
class TokenizerConfig:
    latent_channels: int = 16
    base_channels: int = 32
    temporal_factor: int = 4  # k: frames per latent frame after the first
    spatial_factor: int = 8  # fixed by the three 2x stages


@dataclass
class VideoModelConfig:
    latent_channels: int = 16
    patch_size: int = 2  # latent pixels per token side
    spatial_factor: int = 8  # tokenizer's: pixels per latent pixel
    temporal_factor: int = 4  # tokenizer's: frames per latent frame after the first
    dim: int = 256
    depth: int = 8
    heads: int = 4
    mlp_ratio: float = 4.0


#: Each checkpoint's ``model_type`` → its config class (the model classes say the same in ``config_class``; a
#: test checks the two agree).
CONFIGS: dict[str, type] = {
    "lyra3d-3dgs-decoder": DecoderConfig,
    "lyra3d-4dgs-decoder": Decoder4DConfig,
    "lyra3d-depth-unet": DepthNetConfig,
    "lyra3d-text-to-image": TextToImageConfig,
    "lyra3d-video-tokenizer": TokenizerConfig,
    "lyra3d-video-dit": VideoModelConfig,
    "lyra1-3dgs-decoder": Lyra1DecoderConfig,
}
