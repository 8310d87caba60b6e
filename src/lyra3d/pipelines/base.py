"""What the pipelines share (:class:`TeacherPipeline`): the teacher (depth → 3D cache → video model) plus
one Gaussian decoder, loaded from a weights folder or the shipped models, saved back, moved between
devices, and the settings of each call checked against the models before any work."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import ClassVar

import torch

from lyra3d.core.device import check_device
from lyra3d.errors import InputError
from lyra3d.models.modeling import CONFIG_NAME, shipped_weights
from lyra3d.models.tokenizer import check_trajectory_frames
from lyra3d.pipelines.config import GenerateConfig
from lyra3d.pipelines.weights import (
    _file_digest,
    _model_type,
    _save_part,
    is_diffusers_pipeline,
    resolve_weights,
    write_pipeline_json,
)

def with_depth(parts: dict[str, Path], depth: str | Path | None, video_model: str | Path | None = None
               ) -> dict[str, Path]:
    """A weights folder's parts with the depth part replaced by ``depth`` and the video model by ``video_model``
    (``None``: kept)."""
    if video_model is not None:
        parts = {**parts, "video_model": Path(video_model).expanduser()}
    return parts if depth is None else {**parts, "depth": Path(depth).expanduser()}


#: Stages of the image → 3D pipeline, in order (``progress(stage, 1, 1)`` is called as each one ends).
IMAGE_STAGES = ("depth", "cache", "encode", "sample", "decoder", "input_view")


# -- what the pipelines share -------------------------------------------------------------------------------------
class TeacherPipeline:
    """The teacher (depth → 3D cache → video model) plus one Gaussian decoder, with default settings: loading
    from a weights folder or the shipped models, saving, moving to a device, checking settings against the
    models, provenance. :class:`ImageTo3DPipeline` and :class:`lyra3d.pipelines.video_to_4d.VideoTo4DPipeline` are
    this with their own ``__call__``.

    Args:
        teacher: depth estimator + tokenizer + video model (:class:`lyra3d.pipelines.teacher.Teacher`).
        decoder: the pipeline's decoder (a :class:`lyra3d.models.decoder.GaussianDecoder` or subclass).
        config: default settings of every call.
    """

    #: The weights-folder part that holds this pipeline's decoder, its name in messages, how to train one.
    decoder_part: ClassVar[str] = "decoder"
    decoder_name: ClassVar[str] = "3DGS decoder"
    decoder_training: ClassVar[str] = "lyra3d train decoder"
    #: The stages a call reports to ``progress``, in order (plus ``teacher_frames`` with ``keep_frames``).
    STAGES: ClassVar[tuple[str, ...]] = IMAGE_STAGES

    def __init__(self, teacher, decoder, config: GenerateConfig | None = None):
        self.teacher, self.decoder = teacher, decoder.eval()
        self.config = (config or GenerateConfig()).validate()
        self.sources: dict[str, Path] = {}  # part → the folder it was loaded from
        self.load_seconds = 0.0
        self._check_parts()

    # -- construction ---------------------------------------------------------------------------------------------
    @classmethod
    def _decoder_class(cls) -> type:
        from lyra3d.models.decoder import GaussianDecoder

        return GaussianDecoder

    @classmethod
    def from_pretrained(cls, weights: str | Path | None = None, device: str | torch.device | None = None,
                        config: GenerateConfig | None = None, depth: str | Path | None = None,
                        video_model: str | Path | None = None):
        """The shipped models (``weights=None``) or a weights folder (see the module docstring); parts the
        folder lacks are the shipped ones. ``config`` (default: the folder's ``pipeline.json``, else
        :class:`GenerateConfig`'s defaults) sets every call's defaults; ``device`` overrides its device.
        ``depth`` (a lyra3d depth network or a local transformers depth-estimation folder) replaces the depth part;
        ``video_model`` (a lyra3d video model or a local diffusers Wan VACE folder) the video model part.

        Raises:
            InputError: the folder is missing, holds no part, a part is broken or does not fit the others, or
                no decoder exists (none in the folder and none shipped)."""
        t0 = time.perf_counter()
        parts, settings = resolve_weights(weights)
        parts = with_depth(parts, depth, video_model)
        reads = {"depth", "tokenizer", "video_model", cls.decoder_part}
        if parts and not (reads | {"text_to_image"}) & set(parts):  # e.g. a 4D decoder given for an image
            raise InputError(f"{weights} holds only {', '.join(p + '/' for p in parts)}, which this pipeline does "
                             f"not read; it reads {', '.join(sorted(p + '/' for p in reads))}")
        config = cls._config(config, settings, device)
        teacher, decoder, sources = cls._load_parts(parts, config.device, config)
        pipe = cls(teacher, decoder, config)
        pipe.sources = sources
        pipe.load_seconds = time.perf_counter() - t0
        return pipe

    @staticmethod
    def _config(config: GenerateConfig | None, settings: dict | None, device) -> GenerateConfig:
        if config is None:
            config = GenerateConfig.from_dict(settings) if settings else GenerateConfig()
        if device is not None:
            config = dataclasses.replace(config, device=str(device))
        return config.validate()

    @classmethod
    def _load_parts(cls, parts: dict[str, Path], device: str, config: GenerateConfig | None = None):
        from lyra3d.models.depth import DEFAULT_DEPTH_WEIGHTS
        from lyra3d.pipelines.teacher import DEFAULT_TOKENIZER_WEIGHTS, DEFAULT_VIDEO_MODEL_WEIGHTS, Teacher, \
            TeacherConfig

        shipped = {"depth": DEFAULT_DEPTH_WEIGHTS, "tokenizer": DEFAULT_TOKENIZER_WEIGHTS,
                   "video_model": DEFAULT_VIDEO_MODEL_WEIGHTS, cls.decoder_part: cls.decoder_part}
        sources = {k: parts.get(k, shipped_weights(v)) for k, v in shipped.items()}
        vace = is_diffusers_pipeline(sources["video_model"])  # a Wan VACE folder: its VAE is the tokenizer
        if vace and "tokenizer" not in parts:
            sources["tokenizer"] = sources["video_model"] / "vae"
        if not (sources[cls.decoder_part] / CONFIG_NAME).is_file():
            raise InputError(f"no {cls.decoder_name} weights: the shipped one ({shipped_weights(cls.decoder_part)}) "
                             f"is not there; train one with `{cls.decoder_training}` and pass --weights DIR holding "
                             f"DIR/{cls.decoder_part}")
        memory = None if config is None else TeacherConfig(video_memory=config.video_memory,  # load-time settings
                                                           vae_tiling=config.vae_tiling)
        teacher = Teacher.from_pretrained(parts.get("tokenizer") if vace else sources["tokenizer"],
                                          sources["video_model"], sources["depth"], device, memory)
        decoder = cls._decoder_class().from_pretrained(sources[cls.decoder_part], device)
        return teacher, decoder, sources

    def _check_parts(self) -> None:
        from lyra3d.models.tokenizer import latent_shape_of

        tok, dc = self.teacher.tokenizer, self.decoder.config
        if not dc.reads(latent_shape_of(tok)):
            have = latent_shape_of(tok)
            raise InputError(f"the decoder reads {dc.latent_channels}-channel latents with temporal factor "
                             f"{dc.temporal_factor} and spatial factor {dc.spatial_factor}; the tokenizer gives "
                             f"{have.latent_channels}, {have.temporal_factor} and {have.spatial_factor}: train a "
                             "decoder on this tokenizer's latents (`lyra3d sdg` with it, then "
                             f"`{self.decoder_training} --tokenizer DIR`) and put it in --weights DIR/{self.decoder_part}")

    def to(self, device: str | torch.device):
        dev = check_device(device)
        self.teacher.depth.model.to(dev)
        if isinstance(self.teacher.tokenizer, torch.nn.Module):
            self.teacher.tokenizer.to(dev)
        elif hasattr(self.teacher.tokenizer, "vae"):
            self.teacher.tokenizer.vae.to(dev)
        self.teacher.video_model.to(dev)
        self.decoder.to(dev)
        self.config = dataclasses.replace(self.config, device=str(device))
        return self

    @property
    def device(self) -> torch.device:
        return next(self.decoder.parameters()).device

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write every part into ``directory`` (the weights-folder layout) plus ``pipeline.json`` (the
        default settings); ``from_pretrained(directory)`` loads it back."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        t = self.teacher
        depth = t.depth if hasattr(t.depth, "save_pretrained") else getattr(t.depth, "model", None)
        if depth is None:
            raise InputError(f"cannot save the depth part: {type(t.depth).__name__} is not a trained network")
        parts = {"depth": depth, "tokenizer": t.tokenizer, "video_model": t.video_model,
                 self.decoder_part: self.decoder}
        if getattr(t, "takes_prompt", False):  # a Wan VACE teacher: its VAE (the tokenizer) is saved with video_model
            del parts["tokenizer"]
        for name, model in parts.items():
            _save_part(model, directory / name, self.sources.get(name))
        write_pipeline_json(directory, type(self).__name__, parts, self.config)
        return directory

    # -- settings -------------------------------------------------------------------------------------------------
    def _call_config(self, seed: int | None, overrides: dict) -> GenerateConfig:
        if overrides.get("device") is not None:
            raise InputError("the device is the pipeline's: move it with pipe.to(device) instead of device=")
        return self.config.replace(**{**overrides, **({"seed": seed} if seed is not None else {})})

    def check(self, config: GenerateConfig) -> GenerateConfig:
        """Refuse settings these models cannot run (frames per trajectory, trajectory count, image size)."""
        p, k = config.resolution, self.teacher.tokenizer.temporal_factor
        check_trajectory_frames(config.frames, k)
        if len(config.trajectories) > self.decoder.config.max_views:
            raise InputError(f"the decoder reads at most {self.decoder.config.max_views} trajectories, "
                             f"got {len(config.trajectories)}")
        px = self.decoder.config.patch_px
        if p.width % px or p.height % px:
            raise InputError(f"preset {p.name} ({p.width}×{p.height}) is not a multiple of the decoder's "
                             f"{px}-pixel patches")
        return config

    def stages(self, **overrides) -> tuple[str, ...]:
        """The stage names a call with these settings reports to ``progress``, in order (the settings are
        checked against the models first)."""
        cfg = self.check(self._call_config(None, overrides))
        return self.STAGES + (("teacher_frames",) if cfg.keep_frames else ())

    def _set_teacher(self, cfg: GenerateConfig, num_frames: int) -> None:
        """The teacher's settings for a call: ``cfg``'s sampler and trajectories, ``num_frames`` per trajectory.
        Only these fields change: what else a user set on ``teacher.config`` (``encode_precision``,
        ``far_ratio``, ...) stays."""
        self.teacher.config = dataclasses.replace(
            self.teacher.config, num_frames=num_frames, steps=cfg.steps, guidance=cfg.guidance,
            movement_factor=cfg.movement_factor, trajectories=tuple(cfg.trajectories), sample_precision=cfg.precision)

    # -- provenance -----------------------------------------------------------------------------------------------
    def model_versions(self) -> dict[str, dict]:
        """Each part's folder, model type and the SHA-256 (first 16 hex) of its weights."""
        out = {}
        for name, folder in self.sources.items():
            out[name] = {"path": str(folder), "model_type": _model_type(folder), "sha256": _file_digest(folder),
                         "shipped": folder.resolve() == shipped_weights(name).resolve()}
        return out
