"""Pipelines (DESIGN §3): one image, or one text prompt, to a 3D Gaussian scene, in the style of diffusers.

::

    from lyra3d.pipelines import ImageTo3DPipeline

    pipe = ImageTo3DPipeline.from_pretrained()            # the shipped models (or a weights folder)
    scene = pipe("photo.jpg", seed=0)                     # a path, or an image tensor (3, H, W) in [0, 1]
    save_ply(scene.gaussians, "scene.ply")
    print(scene.input_view_psnr, scene.timings)

:class:`ImageTo3DPipeline` runs the teacher (depth → 3D cache → the camera-controlled video model along
every trajectory → latents, :mod:`lyra3d.teacher`) and the 3DGS decoder (latents + Plücker rays →
Gaussians, :mod:`lyra3d.decoder`), prunes the Gaussians by opacity rank (DESIGN §4) and renders them at the
input camera to measure how faithfully they reproduce the input (PSNR). :class:`TextTo3DPipeline` first
turns a prompt into the input image with the text-to-image model (:mod:`lyra3d.text_to_image`).

Settings are a typed :class:`GenerateConfig`; the image size and frames per trajectory come from a
resolution :class:`Preset` (:data:`PRESETS`; the shipped models know one, ``"default"``: 320×176, 17
frames). A weights folder holds one sub-folder per part (every part optional; a missing one is the
shipped default)::

    WEIGHTS/depth/          config.json + model.safetensors (lyra3d train depth)
    WEIGHTS/tokenizer/      (lyra3d train tokenizer, or a diffusers video VAE)
    WEIGHTS/video_model/    (lyra3d train video-model)
    WEIGHTS/decoder/        (lyra3d train decoder)
    WEIGHTS/decoder4d/      (lyra3d train decoder --dynamic 1; VideoTo4DPipeline only, lyra3d.pipelines4d)
    WEIGHTS/text_to_image/  (lyra3d train text-to-image; TextTo3DPipeline only)
    WEIGHTS/pipeline.json   the GenerateConfig defaults (written by save_pretrained; optional)

A folder that is itself one part's checkpoint (e.g. ``runs/decoder/model``) is taken as that part.

:class:`TeacherPipeline` is what the pipelines share (loading, saving, devices, settings); video → 4D
(:class:`lyra3d.pipelines4d.VideoTo4DPipeline`) is one too, and writes its folder with the helpers here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from lyra3d.cameras import LYRA_TRAJECTORIES, TRAJECTORY_NAMES, Cameras, default_camera
from lyra3d.checkpoint import CONFIG_NAME, WEIGHTS_NAME, Pretrained, shipped_weights
from lyra3d.errors import InputError
from lyra3d.gaussians import Gaussians
from lyra3d.inputs import FITS, MIN_IMAGE_SIDE, ImageInfo
from lyra3d.timing import StageClock
from lyra3d.tokenizer import check_trajectory_frames

__all__ = ["Preset", "PRESETS", "register_preset", "GenerateConfig", "Scene", "TeacherPipeline", "ImageTo3DPipeline",
           "TextTo3DPipeline", "PARTS", "MAX_OUTPUT_TIMES", "IMAGE_STAGES", "OUTPUT_FILES", "parse_trajectories",
           "load_input_image", "fit_image_tensor", "resolve_weights", "save_scene", "check_flythrough",
           "flythrough_cameras", "film_path", "write_png", "write_teacher_videos", "finish_report", "json_ready",
           "check_device", "environment", "peak_memory_mb"]

#: The parts of a weights folder, in the order they are loaded.
PARTS = ("depth", "tokenizer", "video_model", "decoder", "decoder4d", "text_to_image")
#: ``model_type`` of each part's own checkpoint (a folder that is one part's checkpoint is taken as that part).
_PART_MODEL_TYPES = {"lyra3d-depth-unet": "depth", "lyra3d-video-tokenizer": "tokenizer",
                     "lyra3d-video-dit": "video_model", "lyra3d-3dgs-decoder": "decoder",
                     "lyra3d-4dgs-decoder": "decoder4d", "lyra3d-text-to-image": "text_to_image"}
PIPELINE_CONFIG_NAME = "pipeline.json"
_LAYOUT = "depth/, tokenizer/, video_model/, decoder/, decoder4d/ or text_to_image/"

#: Most output times of one video → 4D call (each is a full decoder pass and a scene in memory).
MAX_OUTPUT_TIMES = 128
#: Stages of the image → 3D pipeline, in order (``progress(stage)`` is called as each one ends).
IMAGE_STAGES = ("depth", "cache", "encode", "sample", "decoder", "input_view")


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


@dataclass
class GenerateConfig:
    """Everything that shapes a generated scene (the pipelines' defaults; each call may override fields).

    Attributes:
        preset: resolution preset (:data:`PRESETS`).
        trajectories: camera trajectories the teacher generates and the decoder reads (DESIGN §3: Lyra's six).
        movement_factor: scale of the trajectories' camera motion (Lyra's ``movement_factor``).
        steps: Euler steps of the video model's sampler.
        guidance: classifier-free guidance of the video model (1 = off, half the cost).
        seed: the noise of the video model (and of the text-to-image model); same seed, same scene.
        device: ``"cpu"`` or ``"cuda"`` (``"cuda:1"``...).
        keep_frames: also decode the teacher's RGB frames (``Scene.frames``; costs a tokenizer decode).
        keep_fraction: opacity-rank pruning: keep this share of the Gaussians, the most opaque (1 = all).
        fit: an image of another aspect is center-cropped (``"crop"``) or padded (``"pad"``).
        num_frames: frames per trajectory; ``None``: the preset's.
        backend: rasterizer for the input-view render (:func:`lyra3d.render.rasterize`).
        text_steps, text_guidance: sampler steps and guidance of the text-to-image model.
        output_times: video → 4D (:mod:`lyra3d.pipelines4d`): the scene at this many times spread evenly
            from the first to the last frame used (1: the middle); ``None``: one per frame used.
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
                and self.movement_factor > 0):
            raise InputError(f"movement factor must be a positive number, got {self.movement_factor}")
        for name, lo in (("steps", 1), ("text_steps", 1)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise InputError(f"{name} must be a whole number >= {lo}, got {v!r}")
        for name in ("guidance", "text_guidance"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise InputError(f"{name} must be a number >= 0, got {v!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not 0 <= self.seed < 2**63:
            raise InputError(f"seed must be a whole number in [0, 2^63), got {self.seed!r}")
        if not (isinstance(self.keep_fraction, (int, float)) and 0 < self.keep_fraction <= 1):
            raise InputError(f"keep fraction must be in (0, 1], got {self.keep_fraction}")
        if self.fit not in FITS:
            raise InputError(f"fit must be {' or '.join(FITS)}, got {self.fit!r}")
        if self.num_frames is not None and (not isinstance(self.num_frames, int) or self.num_frames < 1):
            raise InputError(f"num_frames must be a whole number >= 1, got {self.num_frames!r}")
        if self.output_times is not None and (not isinstance(self.output_times, int)
                                              or not 1 <= self.output_times <= MAX_OUTPUT_TIMES):
            raise InputError(f"output times must be a whole number from 1 to {MAX_OUTPUT_TIMES}, "
                             f"got {self.output_times!r}")
        check_device(self.device)
        return self

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


def check_device(device: str | torch.device) -> torch.device:
    """The torch device, or a one-line error when it is unknown or its GPU is not there."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(f"unknown device {device!r}; use cpu or cuda") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {device} asked for, but torch sees no CUDA GPU here; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(f"device {device} does not exist: {torch.cuda.device_count()} CUDA GPU(s) here")
    elif dev.type != "cpu":
        raise InputError(f"device {device} is not supported; use cpu or cuda")
    return dev


# -- inputs -----------------------------------------------------------------------------------------------------
def load_input_image(path: str | Path, preset: str | Preset = "default", fit: str = "crop"
                     ) -> tuple[Tensor, ImageInfo]:
    """An image file at the preset's size (:func:`lyra3d.inputs.load_image`: one-line errors)."""
    from lyra3d.inputs import load_image

    p = PRESETS[preset] if isinstance(preset, str) else preset
    return load_image(path, p.width, p.height, fit)


def fit_image_tensor(image: Tensor, width: int, height: int, fit: str = "crop") -> tuple[Tensor, ImageInfo]:
    """An image tensor ``(3, H, W)`` in [0, 1] brought to ``width × height`` like :func:`load_input_image`
    does for files: center-cropped or padded (with its edges' mean colour) to the aspect, then resampled
    (bilinear, antialiased). The :class:`ImageInfo` says what was done.

    A video ``(T, 3, H, W)`` is fitted frame by frame alike (padding with the first frame's edge colour, as
    :func:`lyra3d.inputs.load_video` does) and comes back as ``(T, 3, height, width)``."""
    from lyra3d.inputs import _plan_fit

    if not isinstance(image, Tensor):
        raise InputError(f"image must be a tensor (3, H, W) or a file path, got {type(image).__name__}")
    if image.ndim not in (3, 4) or image.shape[-3] != 3:
        raise InputError(f"image must be (3, H, W) RGB, got shape {tuple(image.shape)}")
    if not image.is_floating_point():
        raise InputError(f"image must be floats in [0, 1], got {image.dtype}")
    h, w = image.shape[-2:]
    if w < MIN_IMAGE_SIDE or h < MIN_IMAGE_SIDE:
        raise InputError(f"image is {w}×{h} px, too small (at least {MIN_IMAGE_SIDE}×{MIN_IMAGE_SIDE} px)")
    if not bool(torch.isfinite(image).all()):
        raise InputError("image has NaN or infinite values")
    lo, hi = float(image.min()), float(image.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise InputError(f"image values must be in [0, 1], got [{lo:.3g}, {hi:.3g}] (divide 8-bit values by 255)")
    batch = image.float().clamp(0, 1).reshape(-1, 3, h, w)
    plan = _plan_fit(w, h, width, height, fit)
    l, t, r, b = plan.box
    pad = None
    if plan.fit == "crop":
        batch = batch[..., t:b, l:r]
    elif plan.fit == "pad":
        first = batch[0]
        edges = torch.cat([first[:, 0], first[:, -1], first[:, :, 0], first[:, :, -1]], 1)
        pad = tuple(round(float(v), 4) for v in edges.mean(1))
        canvas = torch.tensor(pad, dtype=batch.dtype, device=batch.device)[:, None, None]
        canvas = canvas.expand(batch.shape[0], 3, b - t, r - l).clone()
        canvas[..., -t:-t + h, -l:-l + w] = batch
        batch = canvas
    if tuple(batch.shape[-2:]) != (height, width):
        batch = F.interpolate(batch, size=(height, width), mode="bilinear", antialias=True,
                              align_corners=False).clamp(0, 1)
    info = ImageInfo(path="<tensor>", format=None, size=(w, h), mode="RGB", bit_depth=32, exif_orientation=1,
                     upright_size=(w, h), alpha_background=None, conversions=(), fit=plan.fit, box=plan.box,
                     pad_color=pad, scale=round(plan.scale, 6), output_size=(width, height))
    return (batch if image.ndim == 4 else batch[0]).contiguous(), info


# -- the result -------------------------------------------------------------------------------------------------
@dataclass
class Scene:
    """One generated scene.

    Attributes:
        gaussians: the 3D Gaussians (world = the input camera's OpenCV frame), pruned by opacity rank.
        cameras: every trajectory frame's camera, trajectory-major ``(V·T)``.
        trajectories: the ``V`` trajectory names.
        input_camera: the input view's camera (one).
        input_image: the input image ``(3, H, W)`` as the models saw it (after crop/pad and resampling).
        center_depth: the scene centre's depth in front of the input camera (the trajectories' scale).
        input_view_psnr: PSNR (dB) of the Gaussians rendered at the input camera against the input image.
        timings: seconds per stage (``depth``, ``cache``, ``encode``, ``sample``, ``decoder``,
            ``input_view``, [``text_to_image``, ``teacher_frames``], ``total``).
        seed: the seed used.
        config: the settings used.
        info: what was done to the input image (file or tensor; for a generated image, how it was fitted
            to the preset, or ``None`` when it had the preset's size).
        prompt: the text prompt (text → 3D), else ``None``.
        frames: the teacher's RGB frames ``(V, T, 3, H, W)`` when ``keep_frames``, else ``None``.
        gaussians_before_pruning: the decoder's Gaussian count before opacity-rank pruning.
        unknown_words: words of the prompt the text-to-image model does not know.
        preset: the resolution preset used.
    """

    gaussians: Gaussians
    cameras: Cameras
    trajectories: tuple[str, ...]
    input_camera: Cameras
    input_image: Tensor
    center_depth: float
    input_view_psnr: float
    timings: dict[str, float]
    seed: int
    config: GenerateConfig
    info: ImageInfo | None = None
    prompt: str | None = None
    frames: Tensor | None = None
    gaussians_before_pruning: int = 0
    unknown_words: tuple[str, ...] = ()
    preset: Preset | None = None

    @property
    def frames_per_trajectory(self) -> int:
        return len(self.cameras) // len(self.trajectories)

    def trajectory_cameras(self) -> dict[str, Cameras]:
        t = self.frames_per_trajectory
        return {name: self.cameras[i * t:(i + 1) * t] for i, name in enumerate(self.trajectories)}

    def cameras_record(self) -> dict:
        """The ``cameras.json`` record: every trajectory frame's camera (:meth:`Cameras.to_dict`, which
        :meth:`Cameras.load_json`, the viewer and the sim-ready export read) plus the trajectory names,
        frames per trajectory, the input camera and the centre depth."""
        return {**self.cameras.to_dict(), "trajectory_names": list(self.trajectories),
                "frames_per_trajectory": self.frames_per_trajectory, "center_depth": self.center_depth,
                "input_camera": self.input_camera.to_dict()}

    def input_record(self) -> dict:
        """What the input was and what was done to it (for a report)."""
        if self.prompt is not None:
            out = {"kind": "text", "prompt": self.prompt,
                   "description": f"generated from the prompt {self.prompt!r} by the text-to-image model"}
            if self.unknown_words:
                out["unknown_words"] = list(self.unknown_words)
            return out
        if self.info is None:
            return {"kind": "image"}
        return {"kind": "tensor" if self.info.path == "<tensor>" else "image", "description": self.info.describe(),
                **self.info.to_dict()}

    def report(self) -> dict:
        """A JSON-ready summary: input, settings, counts, input-view PSNR, timings."""
        p = self.preset or self.config.resolution
        return json_ready({
            "input": self.input_record(),
            "seed": self.seed,
            "preset": {"name": p.name, "width": p.width, "height": p.height, "fov_y_degrees": p.fov_y_degrees},
            "trajectories": list(self.trajectories),
            "frames_per_trajectory": self.frames_per_trajectory,
            "center_depth": round(self.center_depth, 6),
            "gaussians": len(self.gaussians),
            "gaussians_before_pruning": self.gaussians_before_pruning,
            "input_view_psnr": round(self.input_view_psnr, 4),
            "timings_s": {k: round(v, 4) for k, v in self.timings.items()},
            "config": self.config.to_dict(),
        })


def json_ready(record: dict) -> dict:
    """JSON types only (tuples become lists), as the record reads back from a file."""
    return json.loads(json.dumps(record))


#: Files of a generate output folder (besides ``teacher/<trajectory>.mp4`` with ``keep_frames``).
OUTPUT_FILES = ("scene.ply", "flythrough.mp4", "input_view.png", "cameras.json", "report.json")


def environment() -> dict:
    """Versions of lyra3d, Python and the main libraries, and the CPU threads torch uses."""
    import platform

    import numpy as np

    from lyra3d import __version__

    return {"lyra3d": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "torch_threads": torch.get_num_threads(),
            "cuda": torch.version.cuda if torch.cuda.is_available() else None}


def peak_memory_mb() -> float:
    """The process's peak resident memory so far (MB; ``ru_maxrss``)."""
    import resource
    import sys

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def save_scene(scene: Scene, out: str | Path, force: bool = False, flythrough_frames: int = 48,
               flythrough_path: str = "flythrough", fps: float = 24.0, report: dict | None = None,
               progress: Callable[[str, int, int], None] | None = None, started: float | None = None) -> dict:
    """Write a generate output folder, whole or not at all (:func:`lyra3d.files.staged_dir`):
    ``scene.ply`` (standard 3DGS PLY), ``flythrough.mp4`` (the Gaussians rendered along a smooth camera path
    from the input camera), ``input_view.png`` (the input image as the models saw it), ``cameras.json``
    (:meth:`Scene.cameras_record`), ``report.json`` (:meth:`Scene.report` + ``report``, timings of the
    fly-through and the writing, file sizes) and, when the scene kept them, ``teacher/<trajectory>.mp4``.

    An existing ``out`` is refused unless ``force``. ``progress(what, done, total)`` is told about the
    fly-through frames as they render (``what="flythrough"``) and each file written (``what="write"``).
    ``started`` (a ``time.perf_counter()`` value) adds ``end_to_end`` seconds from then to the timings.
    Returns the report."""
    from lyra3d.export import export_gaussians
    from lyra3d.files import staged_dir

    check_flythrough(flythrough_path, flythrough_frames)
    say = progress or (lambda what, done, total: None)
    files = ["scene.ply", "flythrough.mp4", "input_view.png", "cameras.json"]
    if scene.frames is not None:
        files += [f"teacher/{name}.mp4" for name in scene.trajectories]
    record = scene.report()
    record.update(report or {})
    timings = dict(record.get("timings_s", {}))
    with staged_dir(out, force=force) as tmp:
        t0 = time.perf_counter()
        cams = flythrough_cameras(scene, flythrough_path, flythrough_frames)
        film_path([scene.gaussians], [0] * len(cams), cams, tmp / "flythrough.mp4", fps, scene.config.backend,
                  lambda done: say("flythrough", done, len(cams)))
        timings["flythrough"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        export_gaussians(scene.gaussians.detach().to("cpu"), tmp / "scene.ply")
        say("write", 1, len(files))
        write_png(scene.input_image, tmp / "input_view.png")
        say("write", 2, len(files))
        (tmp / "cameras.json").write_text(json.dumps(scene.cameras_record(), indent=1) + "\n")
        say("write", 3, len(files))
        write_teacher_videos(scene, tmp, fps, lambda i: say("write", 4 + i, len(files)))
        timings["write"] = time.perf_counter() - t0
        record["flythrough"] = {"path": flythrough_path, "frames": flythrough_frames, "fps": fps}
        record = finish_report(tmp, record, timings, files, started)
    return record


# -- pieces of an output folder (shared with lyra3d.pipelines4d) --------------------------------------------------
def check_flythrough(path: str, frames: int) -> None:
    """A one-line error for an unknown fly-through camera path or fewer than 2 frames."""
    from lyra3d import flythrough as fly

    if path not in fly.PATHS:
        raise InputError(f"unknown fly-through path {path!r}; choose from {', '.join(fly.PATHS)}")
    if not isinstance(frames, int) or frames < 2:
        raise InputError(f"a fly-through needs at least 2 frames, got {frames}")


def flythrough_cameras(scene: Scene, path: str, frames: int) -> Cameras:
    """The ``frames`` cameras of a fly-through along ``path`` from the scene's input camera, at its size
    (:func:`lyra3d.flythrough.camera_path`; the ``"flythrough"`` path is seeded by the scene's seed)."""
    from lyra3d import flythrough as fly

    p = scene.preset or scene.config.resolution
    config = fly.FlythroughConfig(path=path, num_frames=frames, width=p.width, height=p.height,
                                  fov_y_degrees=p.fov_y_degrees, backend=scene.config.backend, seed=scene.seed)
    return fly.camera_path(scene.input_camera.to("cpu"), scene.center_depth, config)


def film_path(scenes: Sequence[Gaussians], which: Sequence[int], cameras: Cameras, out: Path, fps: float,
              backend: str = "auto", on_frames: Callable[[int], None] | None = None) -> Path:
    """Render frame ``i`` of a video from ``scenes[which[i]]`` at ``cameras[i]`` and write it to ``out``: one
    scene throughout (a fly-through) or a scene per time (the time runs while the camera moves).
    ``on_frames(done)`` after each batch of frames."""
    from lyra3d import flythrough as fly
    from lyra3d.video import write_video

    if len(which) != len(cameras):
        raise InputError(f"{len(which)} scene indices for {len(cameras)} cameras")
    done, parts, i = [0], [], 0

    def frames_done(n: int) -> None:
        done[0] += n
        if on_frames is not None:
            on_frames(done[0])

    while i < len(which):
        j = i
        while j < len(which) and which[j] == which[i]:
            j += 1
        g = scenes[which[i]]
        parts.append(fly.render_frames(g, cameras[i:j].to(g.device), backend=backend, on_frames=frames_done))
        i = j
    return write_video(torch.cat(parts), out, fps=fps)


def write_png(image: Tensor, path: Path) -> None:
    """``image (3, H, W)`` in [0, 1] as an 8-bit PNG."""
    import imageio.v3 as iio

    from lyra3d.video import to_uint8

    iio.imwrite(path, to_uint8(image[None])[0])


def write_teacher_videos(scene, tmp: Path, fps: float, written: Callable[[int], None]) -> None:
    """``teacher/<trajectory>.mp4`` from ``scene.frames (V, T, 3, H, W)``, when the scene kept them."""
    from lyra3d.video import write_video

    if scene.frames is None:
        return
    (tmp / "teacher").mkdir()
    for i, name in enumerate(scene.trajectories):
        write_video(scene.frames[i], tmp / "teacher" / f"{name}.mp4", fps=fps)
        written(i)


def finish_report(tmp: Path, record: dict, timings: dict[str, float], files: Sequence[str],
                  started: float | None = None) -> dict:
    """Complete an output folder's report (timings, with ``end_to_end`` from ``started``; each file's size;
    the process's peak memory) and write it as ``tmp/report.json``. Returns it as it reads back."""
    if started is not None:
        timings["end_to_end"] = time.perf_counter() - started
    record["timings_s"] = {k: round(v, 4) for k, v in timings.items()}
    record["files"] = {f: (tmp / f).stat().st_size for f in files}
    record["peak_memory_mb"] = round(peak_memory_mb(), 1)
    record = json_ready(record)
    (tmp / "report.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


# -- loading parts ----------------------------------------------------------------------------------------------
def _model_type(folder: Path) -> str | None:
    try:
        raw = json.loads((folder / CONFIG_NAME).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return raw.get("model_type") if isinstance(raw, dict) else None


def resolve_weights(weights: str | Path | None) -> tuple[dict[str, Path], dict | None]:
    """The folder of each part found in a weights folder (missing parts are left out: the shipped default
    applies) and its ``pipeline.json`` settings, if any. ``None``: no parts (all shipped)."""
    if weights is None:
        return {}, None
    root = Path(weights).expanduser()
    fix = (f"give a folder holding {_LAYOUT} (a saved pipeline), or leave out --weights for the shipped models")
    if not root.exists():
        raise InputError(f"weights folder not found: {root}; {fix}")
    if not root.is_dir():
        raise InputError(f"--weights must be a folder, but {root} is a file; {fix}")
    own = _PART_MODEL_TYPES.get(_model_type(root) or "")
    if own is not None:  # the folder is one part's checkpoint
        return {own: root}, None
    parts = {name: root / name for name in PARTS if (root / name).is_dir()}
    for name, folder in parts.items():
        if not (folder / CONFIG_NAME).is_file():
            raise InputError(f"{folder} has no {CONFIG_NAME}; put a saved {name} model there (config.json + "
                             f"{WEIGHTS_NAME}) or remove the folder to use the shipped one")
    settings = None
    if (root / PIPELINE_CONFIG_NAME).is_file():
        from lyra3d.files import read_json

        settings = read_json(root / PIPELINE_CONFIG_NAME, "pipeline config")
        if not isinstance(settings, dict):
            raise InputError(f"{root / PIPELINE_CONFIG_NAME} is not a JSON object; remove it or re-save the pipeline")
    if not parts:
        raise InputError(f"{root} holds none of the model folders {_LAYOUT}; save a pipeline there "
                         "(save_pretrained), or leave out --weights for the shipped models")
    return parts, settings


def _missing_text_to_image() -> InputError:
    return InputError("no text-to-image weights: train with `lyra3d train text-to-image` or pass --weights DIR "
                      "holding DIR/text_to_image")


def _file_digest(folder: Path) -> str | None:
    f = folder / WEIGHTS_NAME
    if not f.is_file():
        return None
    h = hashlib.sha256()
    with f.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def _save_part(model, folder: Path, source: Path | None) -> None:
    extra = {}
    if source is not None and (source / "MODEL_CARD.md").is_file():
        extra["MODEL_CARD.md"] = (source / "MODEL_CARD.md").read_text()
    if isinstance(model, Pretrained):
        model.save_pretrained(folder, extra_files=extra)
    elif hasattr(model, "vae") and hasattr(model.vae, "save_pretrained"):  # a diffusers VAE as tokenizer
        model.vae.save_pretrained(str(folder))
    else:
        raise InputError(f"cannot save the {folder.name} part ({type(model).__name__} has no save_pretrained)")


# -- what the pipelines share -------------------------------------------------------------------------------------
class TeacherPipeline:
    """The teacher (depth → 3D cache → video model) plus one Gaussian decoder, with default settings: loading
    from a weights folder or the shipped models, saving, moving to a device, checking settings against the
    models, provenance. :class:`ImageTo3DPipeline` and :class:`lyra3d.pipelines4d.VideoTo4DPipeline` are
    this with their own ``__call__``.

    Args:
        teacher: depth estimator + tokenizer + video model (:class:`lyra3d.teacher.Teacher`).
        decoder: the pipeline's decoder (a :class:`lyra3d.decoder.GaussianDecoder` or subclass).
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
        from lyra3d.decoder import GaussianDecoder

        return GaussianDecoder

    @classmethod
    def from_pretrained(cls, weights: str | Path | None = None, device: str | torch.device | None = None,
                        config: GenerateConfig | None = None):
        """The shipped models (``weights=None``) or a weights folder (see the module docstring); parts the
        folder lacks are the shipped ones. ``config`` (default: the folder's ``pipeline.json``, else
        :class:`GenerateConfig`'s defaults) sets every call's defaults; ``device`` overrides its device.

        Raises:
            InputError: the folder is missing, holds no part, a part is broken or does not fit the others, or
                no decoder exists (none in the folder and none shipped)."""
        t0 = time.perf_counter()
        parts, settings = resolve_weights(weights)
        reads = {"depth", "tokenizer", "video_model", cls.decoder_part}
        if parts and not (reads | {"text_to_image"}) & set(parts):  # e.g. a 4D decoder given for an image
            raise InputError(f"{weights} holds only {', '.join(p + '/' for p in parts)}, which this pipeline does "
                             f"not read; it reads {', '.join(sorted(p + '/' for p in reads))}")
        config = cls._config(config, settings, device)
        teacher, decoder, sources = cls._load_parts(parts, config.device)
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
    def _load_parts(cls, parts: dict[str, Path], device: str):
        from lyra3d.depth import DEFAULT_DEPTH_WEIGHTS
        from lyra3d.teacher import DEFAULT_TOKENIZER_WEIGHTS, DEFAULT_VIDEO_MODEL_WEIGHTS, Teacher

        shipped = {"depth": DEFAULT_DEPTH_WEIGHTS, "tokenizer": DEFAULT_TOKENIZER_WEIGHTS,
                   "video_model": DEFAULT_VIDEO_MODEL_WEIGHTS, cls.decoder_part: cls.decoder_part}
        sources = {k: parts.get(k, shipped_weights(v)) for k, v in shipped.items()}
        if not (sources[cls.decoder_part] / CONFIG_NAME).is_file():
            raise InputError(f"no {cls.decoder_name} weights: the shipped one ({shipped_weights(cls.decoder_part)}) "
                             f"is not there; train one with `{cls.decoder_training}` and pass --weights DIR holding "
                             f"DIR/{cls.decoder_part}")
        teacher = Teacher.from_pretrained(sources["tokenizer"], sources["video_model"], sources["depth"], device)
        decoder = cls._decoder_class().from_pretrained(sources[cls.decoder_part], device)
        return teacher, decoder, sources

    def _check_parts(self) -> None:
        tok, dc = self.teacher.tokenizer, self.decoder.config
        spatial = getattr(tok, "spatial_factor", getattr(getattr(tok, "config", None), "spatial_factor", 8))
        have = (tok.latent_channels, tok.temporal_factor, spatial)
        want = (dc.latent_channels, dc.temporal_factor, dc.spatial_factor)
        if have != want:
            raise InputError(f"the decoder reads {want[0]}-channel latents with temporal factor {want[1]} and spatial "
                             f"factor {want[2]}; the tokenizer gives {have[0]}, {have[1]} and {have[2]}: use a decoder "
                             "trained on this tokenizer's latents")

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
        depth = getattr(t.depth, "model", None)
        if depth is None:
            raise InputError(f"cannot save the depth part: {type(t.depth).__name__} is not a trained network")
        for name, model in (("depth", depth), ("tokenizer", t.tokenizer), ("video_model", t.video_model),
                            (self.decoder_part, self.decoder)):
            _save_part(model, directory / name, self.sources.get(name))
        self._write_pipeline_config(directory)
        return directory

    def _write_pipeline_config(self, directory: Path) -> None:
        from lyra3d.files import atomic_path

        record = self.config.to_dict()
        record.pop("device")  # where to run is the loader's choice
        with atomic_path(directory / PIPELINE_CONFIG_NAME) as tmp:
            tmp.write_text(json.dumps(record, indent=1) + "\n")

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
        """The teacher's settings for a call: ``cfg``'s sampler and trajectories, ``num_frames`` per trajectory."""
        from lyra3d.teacher import TeacherConfig

        self.teacher.config = TeacherConfig(num_frames=num_frames, steps=cfg.steps, guidance=cfg.guidance,
                                            movement_factor=cfg.movement_factor, trajectories=cfg.trajectories)

    # -- provenance -----------------------------------------------------------------------------------------------
    def model_versions(self) -> dict[str, dict]:
        """Each part's folder, model type and the SHA-256 (first 16 hex) of its weights."""
        out = {}
        for name, folder in self.sources.items():
            out[name] = {"path": str(folder), "model_type": _model_type(folder), "sha256": _file_digest(folder),
                         "shipped": folder.resolve() == shipped_weights(name).resolve()}
        return out


# -- image → 3D ---------------------------------------------------------------------------------------------------
class ImageTo3DPipeline(TeacherPipeline):
    """Image → 3D Gaussians: the teacher's multi-trajectory latents, then the 3DGS decoder
    (:class:`lyra3d.decoder.GaussianDecoder`). Loading, saving and settings: :class:`TeacherPipeline`."""

    def prepare_image(self, image: Tensor | str | Path, config: GenerateConfig | None = None
                      ) -> tuple[Tensor, ImageInfo]:
        """A path or tensor → ``(3, H, W)`` at the preset's size and what was done to it."""
        cfg = config or self.config
        p = cfg.resolution
        if isinstance(image, (str, Path)):
            return load_input_image(image, p, cfg.fit)
        return fit_image_tensor(image, p.width, p.height, cfg.fit)

    @torch.no_grad()
    def __call__(self, image: Tensor | str | Path, seed: int | None = None,
                 progress: Callable[[str], None] | None = None, *, camera: Cameras | None = None,
                 depth: Tensor | None = None, info: ImageInfo | None = None, **overrides) -> Scene:
        """Generate the scene of one image.

        Args:
            image: a file path, or a tensor ``(3, H, W)`` in [0, 1] (another size is cropped/padded and
                resampled to the preset's).
            seed: the sampler's seed (default ``config.seed``); the same seed gives the same scene.
            progress: called with each stage's name (:meth:`stages`) as the stage ends.
            camera: the input camera (one, at the preset's size); default: identity pose, the preset's
                field of view.
            depth: ``(1, H, W)`` z-depth of the input to use instead of the depth network's.
            info: what was done to an already prepared image tensor (kept in the scene's report).
            **overrides: any :class:`GenerateConfig` field for this call (``trajectories``, ``steps``,
                ``keep_frames``, ...).
        """
        cfg = self._call_config(seed, overrides)
        clock = StageClock(self.device, progress)
        img, fitted = self.prepare_image(image, cfg)
        return self._generate(img, info or fitted, cfg, clock, camera, depth)

    def _generate(self, image: Tensor, info: ImageInfo | None, cfg: GenerateConfig, clock: StageClock,
                  camera: Cameras | None = None, depth: Tensor | None = None, prompt: str | None = None,
                  unknown_words: tuple[str, ...] = ()) -> Scene:
        from lyra3d.metrics import psnr
        from lyra3d.render import rasterize

        p, dev = cfg.resolution, self.device
        self.check(cfg)
        if camera is None:
            camera = default_camera(p.width, p.height, p.fov_y_degrees)
        self._set_teacher(cfg, cfg.frames)
        gen = self.teacher(image, camera, depth=depth, seed=cfg.seed, progress=clock.mark)
        raw = self.decoder.decode(gen.latents, gen.cameras)
        before = len(raw)
        g = raw.prune_by_opacity(keep_fraction=cfg.keep_fraction) if cfg.keep_fraction < 1 else raw
        del raw
        clock.mark("decoder")
        cam = camera.to(dev)
        render = rasterize(g, cam, backend=cfg.backend).rgb[0]
        score = float(psnr(render.clamp(0, 1), gen.image.to(render)))
        clock.mark("input_view")
        frames = None
        if cfg.keep_frames:
            frames = self.teacher.decode(gen.latents).cpu()
            clock.mark("teacher_frames")
        timings = clock.total()
        return Scene(gaussians=g, cameras=gen.cameras, trajectories=tuple(gen.names), input_camera=cam,
                     input_image=gen.image, center_depth=float(gen.center_depth), input_view_psnr=score,
                     timings=timings, seed=cfg.seed, config=cfg, info=info, prompt=prompt, frames=frames,
                     gaussians_before_pruning=before, unknown_words=unknown_words, preset=p)

# -- text → 3D ----------------------------------------------------------------------------------------------------
class TextTo3DPipeline:
    """Text → image (the text-to-image model, decoded by the teacher's tokenizer) → :class:`ImageTo3DPipeline`."""

    def __init__(self, text_to_image, image_to_3d: ImageTo3DPipeline):
        self.text_to_image, self.image_to_3d = text_to_image.eval(), image_to_3d
        tok = image_to_3d.teacher.tokenizer
        if text_to_image.config.latent_channels != tok.latent_channels:
            raise InputError(f"the text-to-image model makes {text_to_image.config.latent_channels}-channel latents; "
                             f"the tokenizer reads {tok.latent_channels}: use the tokenizer it was trained with")

    @property
    def config(self) -> GenerateConfig:
        return self.image_to_3d.config

    @property
    def sources(self) -> dict[str, Path]:
        return self.image_to_3d.sources

    @classmethod
    def from_pretrained(cls, weights: str | Path | None = None, device: str | torch.device | None = None,
                        config: GenerateConfig | None = None) -> "TextTo3DPipeline":
        """The shipped models or a weights folder (as :meth:`ImageTo3DPipeline.from_pretrained`) plus the
        text-to-image model (``WEIGHTS/text_to_image``, else the shipped one)."""
        from lyra3d.text_to_image import TextToImageModel

        t0 = time.perf_counter()
        parts, settings = resolve_weights(weights)
        folder = parts.get("text_to_image", shipped_weights("text_to_image"))
        if not (folder / CONFIG_NAME).is_file():
            raise _missing_text_to_image()
        config = ImageTo3DPipeline._config(config, settings, device)
        teacher, decoder, sources = ImageTo3DPipeline._load_parts(parts, config.device)
        inner = ImageTo3DPipeline(teacher, decoder, config)
        inner.sources = {**sources, "text_to_image": folder}
        pipe = cls(TextToImageModel.from_pretrained(folder, config.device), inner)
        inner.load_seconds = time.perf_counter() - t0
        return pipe

    @property
    def load_seconds(self) -> float:
        return self.image_to_3d.load_seconds

    @property
    def device(self) -> torch.device:
        return self.image_to_3d.device

    def to(self, device: str | torch.device) -> "TextTo3DPipeline":
        self.image_to_3d.to(device)
        self.text_to_image.to(check_device(device))
        return self

    def save_pretrained(self, directory: str | Path) -> Path:
        directory = Path(directory)
        self.image_to_3d.save_pretrained(directory)
        _save_part(self.text_to_image, directory / "text_to_image", self.sources.get("text_to_image"))
        return directory

    def stages(self, **overrides) -> tuple[str, ...]:
        return ("text_to_image",) + self.image_to_3d.stages(**overrides)

    def model_versions(self) -> dict[str, dict]:
        return self.image_to_3d.model_versions()

    def unknown_words(self, prompt: str) -> tuple[str, ...]:
        """Words of ``prompt`` outside the model's vocabulary (they reach it as ``<unk>``)."""
        words = self.text_to_image.words
        return tuple(dict.fromkeys(w for w in words.split(prompt) if w not in words.index))

    @torch.no_grad()
    def __call__(self, prompt: str, seed: int | None = None, progress: Callable[[str], None] | None = None,
                 **overrides) -> Scene:
        """Generate the scene of a text prompt (the image is ``scene.input_image``)."""
        from lyra3d.inputs import validate_prompt

        prompt = validate_prompt(prompt)
        pipe = self.image_to_3d
        cfg = pipe._call_config(seed, overrides)
        clock = StageClock(pipe.device, progress)
        image = self.text_to_image.generate(prompt, pipe.teacher.tokenizer, steps=cfg.text_steps,
                                            guidance=cfg.text_guidance, seed=cfg.seed)[0]
        p = cfg.resolution
        info = None
        if tuple(image.shape[-2:]) != (p.height, p.width):
            image, info = fit_image_tensor(image.float().clamp(0, 1), p.width, p.height, cfg.fit)
        clock.mark("text_to_image")
        return pipe._generate(image.clamp(0, 1), info, cfg, clock, prompt=prompt,
                              unknown_words=self.unknown_words(prompt))

