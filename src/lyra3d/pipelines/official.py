"""NVIDIA's released Lyra (Lyra-1) in lyra3d: the ``official`` preset of image → 3D (issue 24).

The weights folder (``lyra3d generate --preset official --weights DIR``; docs/official_lyra.md)::

    DIR/gen3c/       GEN3C-Cosmos-7B as a diffusers CosmosTransformer3DModel  (lyra3d convert gen3c model.pt DIR/gen3c)
    DIR/tokenizer/   the Cosmos 8x8x8 tokenizer as a diffusers AutoencoderKLCosmos folder
    DIR/decoder/     the Lyra-1 3DGS decoder  (lyra3d convert lyra1-decoder lyra_static.pt DIR/decoder)
    DIR/depth/       optional: a depth model (lyra3d's or a transformers one); default the shipped one
    DIR/text_embeddings.safetensors   optional: T5-XXL embeddings ``prompt`` / ``negative_prompt``
                     (:mod:`lyra3d.models.gen3c_text`); default zeros (the official ``--disable_prompt_encoder``)

The preset (:data:`OFFICIAL_PRESET`): 704×1280, 121 frames per trajectory, Lyra's six trajectories, the official
sampler (35 EDM Euler steps, guidance 1: :mod:`lyra3d.models.gen3c_sampling`), the decoder's own pruning (the
20 % most opaque kept) and nothing else (``keep_fraction`` 1, ``keep_input`` off). Memory
(:class:`OfficialMemory`, default: fits 24 GB): GEN3C with diffusers group offloading, the tokenizer in spatial
tiles, the decoder's head in chunks of 16 frames, bf16 on CUDA.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from lyra3d.errors import InputError
from lyra3d.pipelines.config import PRESETS, GenerateConfig, Preset
from lyra3d.pipelines.image_to_3d import ImageTo3DPipeline

#: The parts an official weights folder must hold, and what makes each.
PARTS = {"gen3c": "`lyra3d convert gen3c Gen3C-Cosmos-7B/model.pt DIR/gen3c`",
         "tokenizer": "the Cosmos-Tokenize1-CV8x8x8-720p tokenizer as a diffusers AutoencoderKLCosmos folder",
         "decoder": "`lyra3d convert lyra1-decoder lyra_static.pt DIR/decoder`"}
TEXT_FILE = "text_embeddings.safetensors"
OFFICIAL_PRESET: Preset = PRESETS["official"]


@dataclass(frozen=True)
class OfficialMemory:
    """Memory settings of the official run: ``offload`` (GEN3C's weights: ``none``, ``model`` or ``group``,
    :mod:`lyra3d.models.offload`), ``vae_tile``/``vae_overlap`` (the tokenizer's spatial tiles in latent pixels;
    0: whole frames), ``head_chunk_frames`` (the decoder head's frames per chunk), ``bf16`` (the weights of GEN3C,
    the tokenizer and the decoder in bf16 on CUDA)."""

    offload: str = "group"
    vae_tile: int = 48
    vae_overlap: int = 8
    head_chunk_frames: int = 16
    bf16: bool = True


def official_config(device: str = "cpu", **overrides) -> GenerateConfig:
    """The official preset's settings (each may be overridden)."""
    base = GenerateConfig(preset="official", steps=35, guidance=1.0, keep_fraction=1.0, keep_input="off",
                          device=str(device))
    return base.replace(**overrides)


def part(weights: Path, name: str) -> Path:
    """``weights/name`` if it is a folder, else a one-line error naming it and what makes it."""
    path = Path(weights) / name
    if not path.is_dir():
        raise InputError(f"{path} not found: the official weights folder needs {name}/ ({PARTS[name]}); see "
                         "docs/official_lyra.md")
    return path


def load_official_parts(weights: str | Path, device: str | torch.device = "cpu", memory: OfficialMemory | None = None,
                        depth: str | Path | None = None):
    """``(teacher, reconstructor, sources)`` from an official weights folder (module docstring); every part is
    checked before any weights load; nothing is downloaded."""
    from lyra3d.models.diffusers_vae import DiffusersVideoTokenizer
    from lyra3d.models.gen3c import load_gen3c_transformer, read_gen3c_config
    from lyra3d.models.gen3c_text import load_text_embeddings
    from lyra3d.models.hf_depth import load_depth
    from lyra3d.models.lyra1_decoder import Lyra1Decoder
    from lyra3d.models.vae_tiling import TiledTokenizer
    from lyra3d.pipelines.gen3c_teacher import Gen3CSettings, Gen3CTeacher
    from lyra3d.pipelines.lyra1_reconstructor import Lyra1Reconstructor

    memory = memory or OfficialMemory()
    root = Path(weights).expanduser()
    if not root.is_dir():
        raise InputError(f"official weights folder not found: {root}; give a folder holding gen3c/, tokenizer/ and "
                         "decoder/ (docs/official_lyra.md)")
    sources = {name: part(root, name) for name in PARTS}
    depth_dir = Path(depth) if depth is not None else root / "depth" if (root / "depth").is_dir() else None
    text_file = root / TEXT_FILE
    gen3c = read_gen3c_config(sources["gen3c"])  # configs first: a wrong folder fails before any weights load
    Lyra1Decoder.check_pretrained(sources["decoder"])
    device = torch.device(device)
    dtype = torch.bfloat16 if memory.bf16 and device.type == "cuda" else torch.float32
    estimator = load_depth(depth_dir, device)
    tok = DiffusersVideoTokenizer.from_pretrained(sources["tokenizer"], device, dtype=dtype, tiling=False)
    tok = TiledTokenizer(tok, memory.vae_tile, memory.vae_overlap) if memory.vae_tile else tok
    decoder = Lyra1Decoder.from_pretrained(sources["decoder"], device).to(dtype)
    decoder.config.head_chunk_frames = memory.head_chunk_frames
    text = load_text_embeddings(text_file if text_file.is_file() else None, gen3c.text_embed_dim)
    net = load_gen3c_transformer(sources["gen3c"], "cpu" if memory.offload != "none" else device, dtype)
    teacher = Gen3CTeacher(estimator, tok, net, text, device, settings=Gen3CSettings(offload=memory.offload))
    sources = {**sources, **({"depth": depth_dir} if depth_dir is not None else {}),
               **({"text": text_file} if text_file.is_file() else {})}
    return teacher, Lyra1Reconstructor(decoder, tok), sources


class OfficialImageTo3DPipeline(ImageTo3DPipeline):
    """Image → 3D with NVIDIA's released parts: GEN3C-Cosmos-7B teacher, Cosmos tokenizer, Lyra-1 decoder
    (:func:`load_official_parts`), at the :data:`OFFICIAL_PRESET` with :func:`official_config`'s settings."""

    decoder_name = "Lyra-1 3DGS decoder"
    decoder_training = "lyra3d convert lyra1-decoder"

    def _check_parts(self) -> None:  # the reconstructor checked the tokenizer against the decoder when made
        pass

    @classmethod
    def from_pretrained(cls, weights: str | Path | None = None, device: str | torch.device | None = None,
                        config: GenerateConfig | None = None, depth: str | Path | None = None,
                        video_model: str | Path | None = None, memory: OfficialMemory | None = None):
        """The parts of the official weights folder ``weights`` (required) on ``device``; ``config`` (default
        :func:`official_config`) sets every call's defaults; ``depth`` replaces the depth part."""
        if weights is None:
            raise InputError("the official preset needs --weights DIR holding gen3c/, tokenizer/ and decoder/ "
                             "(docs/official_lyra.md)")
        if video_model is not None:
            raise InputError("the official preset's video model is GEN3C (DIR/gen3c); leave out --video-model")
        t0 = time.perf_counter()
        config = config or official_config(str(device or "cpu"))
        if device is not None:
            config = dataclasses.replace(config, device=str(device)).validate()
        teacher, decoder, sources = load_official_parts(weights, config.device, memory, depth)
        pipe = cls(teacher, decoder, config)
        pipe.sources = sources
        pipe.load_seconds = time.perf_counter() - t0
        return pipe

    def check(self, config: GenerateConfig) -> GenerateConfig:
        """Frames ``1 + 8·m``, image sides multiples of 16 (the tokenizer's 8 × the decoder's 2-latent patches)."""
        from lyra3d.models.tokenizer import check_trajectory_frames

        p = config.resolution
        check_trajectory_frames(config.frames, self.teacher.tokenizer.temporal_factor)
        px = self.teacher.tokenizer.spatial_factor * self.decoder.config.patch_size
        if p.width % px or p.height % px:
            raise InputError(f"preset {p.name} ({p.width}×{p.height}) is not a multiple of the Lyra-1 decoder's "
                             f"{px}-pixel patches")
        if config.reconstruct != "decoder":
            raise InputError("the official preset reconstructs with the Lyra-1 decoder; leave out --reconstruct")
        return config

    def to(self, device):
        raise InputError("an official pipeline stays on the device it was loaded on; load it again with device=")

    def save_pretrained(self, directory):
        raise InputError("an official pipeline is its converted parts; copy the weights folder instead")

    def batch(self, *args, **kwargs):
        raise InputError("the official preset makes one scene per call; call the pipeline once per image")
