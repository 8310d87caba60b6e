"""Typed settings of the pipelines: :class:`GenerateConfig` (everything that shapes a generated scene;
each call may override fields) and the resolution presets (:data:`PRESETS`)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Sequence

from lyra3d.core.device import check_device
from lyra3d.core.limits import (  # noqa: F401
    MAX_FRAMES,
    MAX_GUIDANCE,
    MAX_MOVEMENT_FACTOR,
    MAX_OPTIMIZE_STEPS,
    MAX_OUTPUT_TIMES,
    MAX_STEPS,
    TRAINED_MOVEMENT,
)
from lyra3d.core.trajectories import LYRA_TRAJECTORIES, TRAJECTORY_NAMES
from lyra3d.errors import InputError
from lyra3d.io.images import FITS, MIN_IMAGE_SIDE

#: ``keep_input`` values (:mod:`lyra3d.pipelines.keep_input`).
KEEP_INPUT_MODES = ("on", "off")
#: ``reconstruct`` values: the feed-forward 3DGS decoder, or per-scene optimisation (:mod:`lyra3d.pipelines.optimize`).
RECONSTRUCTORS = ("decoder", "optimize")


# -- settings -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Preset:
    """A resolution preset: the input image size, its camera's field of view and the frames per trajectory
    the teacher generates (``1 + k·m`` for the tokenizer's temporal factor ``k``)."""

    name: str
    width: int
    height: int
    num_frames: int
    fov_y_degrees: float = 50.0
    description: str = ""


#: Presets by name. Only the shipped models' native size exists now; bigger models register their own.
PRESETS: dict[str, Preset] = {
    "default": Preset("default", 320, 176, 17, 50.0,
                      "the shipped models' native size: 320×176, 17 frames per trajectory"),
    "official": Preset("official", 1280, 704, 121, 50.0,
                       "NVIDIA's released Lyra (GEN3C-Cosmos-7B + Lyra-1 decoder): 1280×704, 121 frames per "
                       "trajectory; needs --weights DIR (docs/official_lyra.md)"),
}


def register_preset(preset: Preset, replace: bool = False) -> Preset:
    """Add a resolution preset (e.g. for a bigger set of models); an existing name needs ``replace``."""
    if preset.name in PRESETS and not replace:
        raise InputError(f"preset {preset.name!r} exists; pass replace=True to change it")
    if preset.width < MIN_IMAGE_SIDE or preset.height < MIN_IMAGE_SIDE or preset.num_frames < 1:
        raise InputError(f"preset {preset.name!r} needs a size of at least {MIN_IMAGE_SIDE} px and >= 1 frame")
    PRESETS[preset.name] = preset
    return preset


def parse_trajectories(text: str | Sequence[str] | int) -> tuple[str, ...]:
    """Trajectory names from ``"left,right"``, a sequence of names, or a count ``N`` (the first N of Lyra's
    six: left, right, up, zoom_out, zoom_in, spiral)."""
    if isinstance(text, int) or (isinstance(text, str) and text.strip().isdigit()):
        n = int(text)
        if not 1 <= n <= len(LYRA_TRAJECTORIES):
            raise InputError(f"--trajectories N takes 1 to {len(LYRA_TRAJECTORIES)} (the first N of "
                             f"{', '.join(LYRA_TRAJECTORIES)}), got {n}")
        return LYRA_TRAJECTORIES[:n]
    names = text.split(",") if isinstance(text, str) else list(text)
    return tuple(str(n).strip() for n in names if str(n).strip())


#: ``GenerateConfig.video_memory``: a Wan VACE video model's memory settings (lyra3d.models.vace_memory).
VIDEO_MEMORY = ("auto", "none", "model_offload", "group_offload")
#: ``GenerateConfig.vae_tiling``.
VAE_TILING = ("auto", "on", "off")


@dataclass
class GenerateConfig:
    """Everything that shapes a generated scene (the pipelines' defaults; each call may override fields).

    Attributes:
        preset: resolution preset (:data:`PRESETS`).
        trajectories: camera trajectories the teacher generates and the decoder reads (docs/design.md §3: Lyra's six).
        movement_factor: scale of the trajectories' camera motion (Lyra's ``movement_factor``).
        steps: Euler steps of the video model's sampler.
        guidance: classifier-free guidance of the video model (1 = off, half the cost).
        seed: the noise of the video model (and of the text-to-image model); same seed, same scene.
        device: ``"cpu"`` or ``"cuda"`` (``"cuda:1"``...).
        keep_frames: also decode the teacher's RGB frames (``Scene.frames``; costs a tokenizer decode).
        keep_fraction: opacity-rank pruning: keep this share of the Gaussians, the most opaque (1 = all).
        fit: an image of another aspect is center-cropped (``"crop"``) or padded (``"pad"``).
        num_frames: frames per trajectory; ``None``: the preset's.
        backend: rasterizer for the input-view render (:func:`lyra3d.core.render.rasterize`).
        text_steps, text_guidance: sampler steps and guidance of the text-to-image model.
        output_times: video → 4D (:mod:`lyra3d.pipelines.video_to_4d`): the scene at this many times spread evenly
            from the first to the last frame used (1: the middle); ``None``: one per frame used.
        keep_input: image → 3D: ``"on"`` puts the input's own Gaussians (one per pixel at its depth, the
            photo's colours) into the scene and drops the decoder's Gaussians in front of or on the surface
            the input sees, so the scene shows what the input shows; ``"off"``: the decoder's Gaussians
            alone (:mod:`lyra3d.pipelines.keep_input`).
        reconstruct: image → 3D: ``"decoder"``, the 3DGS decoder reads the teacher's latents (one pass), or
            ``"optimize"``, 3D Gaussians fitted to the teacher's decoded frames from the input's own
            (:mod:`lyra3d.pipelines.optimize`; ``keep_input`` and ``keep_fraction`` do not apply).
        optimize_steps: ``"optimize"``: the step budget.
        optimize_seconds: ``"optimize"``: a time budget in seconds (``None``: none); it stops at the step that
            runs out of it.
        precision: the video model's sampler and the 3DGS decoder: ``"auto"`` (bf16 autocast on CUDA, where
            attention runs as flash attention; fp32 elsewhere), ``"bf16"`` or ``"fp32"``.
        video_memory: a diffusers Wan VACE video model: where its parts live, ``"auto"`` (the fastest setting that
            fits the GPU's free memory), ``"none"``, ``"model_offload"`` or ``"group_offload"`` (the least GPU memory;
            :mod:`lyra3d.models.vace_memory`). Read when the models load.
        vae_tiling: a Wan VACE video model's VAE encodes and decodes in tiles: ``"auto"`` (frames with a side over 512
            px, and always under group offloading), ``"on"`` or ``"off"``. Read when the models load.
    """

    preset: str = "default"
    trajectories: tuple[str, ...] = LYRA_TRAJECTORIES
    movement_factor: float = 1.0
    steps: int = 4
    guidance: float = 1.0
    seed: int = 0
    device: str = "cpu"
    keep_frames: bool = False
    keep_fraction: float = 0.5
    fit: str = "crop"
    num_frames: int | None = None
    backend: str = "auto"
    text_steps: int = 8
    text_guidance: float = 3.0
    output_times: int | None = None
    keep_input: str = "on"
    reconstruct: str = "decoder"
    optimize_steps: int = 300
    optimize_seconds: float | None = None
    precision: str = "auto"
    video_memory: str = "auto"
    vae_tiling: str = "auto"

    def validate(self) -> "GenerateConfig":
        """Check every field; raise a one-line :class:`InputError` naming the fix. Returns self."""
        if self.preset not in PRESETS:
            raise InputError(f"unknown preset {self.preset!r}; choose from {', '.join(PRESETS)}")
        self.trajectories = parse_trajectories(self.trajectories)
        if not self.trajectories:
            raise InputError("no trajectories given; name at least one, e.g. --trajectories left,right")
        bad = [t for t in self.trajectories if t not in TRAJECTORY_NAMES]
        if bad:
            raise InputError(f"unknown trajectory {bad[0]!r}; choose from {', '.join(TRAJECTORY_NAMES)}")
        if len(set(self.trajectories)) != len(self.trajectories):
            raise InputError(f"trajectories repeat: {','.join(self.trajectories)}; name each once")
        if not (isinstance(self.movement_factor, (int, float)) and math.isfinite(self.movement_factor)
                and 0 < self.movement_factor <= MAX_MOVEMENT_FACTOR):
            raise InputError(f"movement factor must be a number in (0, {MAX_MOVEMENT_FACTOR:g}], got "
                             f"{self.movement_factor} (the models were trained on {TRAINED_MOVEMENT[0]} to "
                             f"{TRAINED_MOVEMENT[1]})")
        for name in ("steps", "text_steps"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= MAX_STEPS:
                raise InputError(f"{name} must be a whole number from 1 to {MAX_STEPS}, got {v!r}")
        for name in ("guidance", "text_guidance"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and 0 <= v <= MAX_GUIDANCE):
                raise InputError(f"{name} must be a number from 0 to {MAX_GUIDANCE:g}, got {v!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not 0 <= self.seed < 2**63:
            raise InputError(f"seed must be a whole number in [0, 2^63), got {self.seed!r}")
        if not (isinstance(self.keep_fraction, (int, float)) and 0 < self.keep_fraction <= 1):
            raise InputError(f"keep fraction must be in (0, 1], got {self.keep_fraction}")
        if self.fit not in FITS:
            raise InputError(f"fit must be {' or '.join(FITS)}, got {self.fit!r}")
        if self.num_frames is not None and (not isinstance(self.num_frames, int) or isinstance(self.num_frames, bool)
                                            or not 1 <= self.num_frames <= MAX_FRAMES):
            raise InputError(f"frames per trajectory must be a whole number from 1 to {MAX_FRAMES}, got "
                             f"{self.num_frames!r} (the shipped models use 9 or 17)")
        if self.output_times is not None and (not isinstance(self.output_times, int)
                                              or not 1 <= self.output_times <= MAX_OUTPUT_TIMES):
            raise InputError(f"output times must be a whole number from 1 to {MAX_OUTPUT_TIMES}, "
                             f"got {self.output_times!r}")
        if self.keep_input not in KEEP_INPUT_MODES:
            raise InputError(f"keep_input must be {' or '.join(KEEP_INPUT_MODES)}, got {self.keep_input!r}")
        if self.reconstruct not in RECONSTRUCTORS:
            raise InputError(f"reconstruct must be {' or '.join(RECONSTRUCTORS)}, got {self.reconstruct!r}")
        if (not isinstance(self.optimize_steps, int) or isinstance(self.optimize_steps, bool)
                or not 1 <= self.optimize_steps <= MAX_OPTIMIZE_STEPS):
            raise InputError(f"optimize steps must be a whole number from 1 to {MAX_OPTIMIZE_STEPS}, "
                             f"got {self.optimize_steps!r}")
        if self.optimize_seconds is not None and not (
                isinstance(self.optimize_seconds, (int, float)) and not isinstance(self.optimize_seconds, bool)
                and math.isfinite(self.optimize_seconds) and self.optimize_seconds > 0):
            raise InputError(f"optimize seconds must be a number of seconds > 0, got {self.optimize_seconds!r}")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise InputError(f"precision must be auto, bf16 or fp32, got {self.precision!r}")
        if self.video_memory not in VIDEO_MEMORY:
            raise InputError(f"video memory must be {', '.join(VIDEO_MEMORY)}, got {self.video_memory!r}")
        if self.vae_tiling not in VAE_TILING:
            raise InputError(f"vae tiling must be {', '.join(VAE_TILING)}, got {self.vae_tiling!r}")
        check_device(self.device)
        return self

    def warnings(self) -> list[str]:
        """Settings that are valid but far from what the models were trained on: one line each."""
        lo, hi = TRAINED_MOVEMENT
        if not lo <= self.movement_factor <= hi:
            return [f"movement factor {self.movement_factor:g} is outside {lo:g} to {hi:g}, the range the models "
                    "were trained on: expect a poor scene"]
        return []

    @property
    def resolution(self) -> Preset:
        return PRESETS[self.preset]

    @property
    def frames(self) -> int:
        return self.num_frames if self.num_frames is not None else self.resolution.num_frames

    def replace(self, **overrides) -> "GenerateConfig":
        """A copy with ``overrides`` (names of fields; ``None`` values are ignored), validated."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise InputError(f"unknown generate setting {unknown[0]!r}; choose from {', '.join(sorted(names))}")
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None}).validate()

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["trajectories"] = list(self.trajectories)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "GenerateConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InputError(f"unknown generate setting {unknown[0]!r} in a pipeline config")
        data = dict(data)
        if "trajectories" in data:
            data["trajectories"] = parse_trajectories(data["trajectories"])
        return cls(**data).validate()
