"""The teacher: depth → 3D cache → the camera-controlled video model along several trajectories → latents
(docs/design.md §1). It is what synthetic data generation runs and what the image-to-3D pipeline runs before the
3DGS decoder. The RGB decoder (the tokenizer's ``decode``) turns its latents into the teacher's frames.

A :class:`Teacher` holds three swappable parts: a depth estimator, a tokenizer and a video model, each
loaded from a folder (``from_pretrained``) or the shipped defaults. :func:`video_teacher` is the same
teacher for a video (video → 4D): one 3D cache per input frame, each lifted with its own depth and warped
into the camera at the same index of every trajectory, so frame ``t`` of each trajectory shows the scene at
the time of input frame ``t``. :class:`VACETeacher` is the teacher with a diffusers Wan VACE folder as its video model
(issue 23, :mod:`lyra3d.models.diffusers_vace`): the warped cache is VACE's control video, its holes the mask, the
input image frame 0, and the VACE's VAE the tokenizer.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from lyra3d.core.cache3d import (
    TrajectoryCondition,
    multi_trajectory_conditioning,
    per_frame_trajectory_conditioning,
    scene_center_depth,
)
from lyra3d.core.cameras import Cameras, plucker_rays
from lyra3d.core.progress import Progress, no_progress
from lyra3d.core.trajectories import LYRA_TRAJECTORIES
from lyra3d.errors import InputError
from lyra3d.models.depth import DepthEstimator
from lyra3d.models.hf_depth import load_depth
from lyra3d.models.modeling import shipped_weights
from lyra3d.models.tokenizer import Tokenizer, load_tokenizer
from lyra3d.models.video_model import VideoDiffusionModel, sample

DEFAULT_TOKENIZER_WEIGHTS = "tokenizer"
DEFAULT_VIDEO_MODEL_WEIGHTS = "video_model"


@dataclass
class TeacherConfig:
    num_frames: int = 17  # per trajectory (1 + k·m for the tokenizer)
    steps: int = 4  # Euler steps of the flow sampler
    guidance: float = 1.0  # classifier-free guidance on cache + rays (1 = off, half the cost)
    movement_factor: float = 1.0
    trajectories: tuple[str, ...] = LYRA_TRAJECTORIES
    far_ratio: float = 20.0  # depths beyond this × the 10th-percentile depth are sky: left out of the cache
    # the tokenizer's encoder (the CPU's largest cost): "bf16" autocast, "fp32", or "auto" = bf16 on CUDA and on a
    # CPU with native bf16 arithmetic (AVX512-BF16 or AMX: about 2x faster there, latents within 0.4 %), else fp32
    encode_precision: str = "auto"
    # the video model's sampler: "bf16" autocast, "fp32", or "auto" = bf16 on CUDA (flash attention), fp32 elsewhere
    sample_precision: str = "auto"
    # torch.compile the tokenizer's per-frame encoder: "on", "off", or "auto" = on CUDA once a batch is generated
    # (about 3x faster there; compiling takes seconds once per process, so one image alone stays eager)
    compile_encoder: str = "auto"
    # a diffusers Wan VACE video model (issue 23): where its parts live on the GPU ("auto", "none", "model_offload",
    # "group_offload": lyra3d.models.vace_memory) and its VAE's tiling ("auto", "on", "off")
    video_memory: str = "auto"
    vae_tiling: str = "auto"


@dataclass
class TeacherSample:
    """One input's multi-trajectory generation.

    ``latents (V, T', C, h, w)`` for the V trajectories ``names``; ``cameras`` are all frames' cameras,
    trajectory-major ``(V·T)``; ``image (3, H, W)`` and ``depth (1, H, W)`` are the input and its estimated
    depth; ``cache_rgb``/``cache_mask`` ``(V, T, ·, H, W)`` the warped cache (kept for evaluation)."""

    names: tuple[str, ...]
    latents: Tensor
    cameras: Cameras
    image: Tensor
    depth: Tensor
    center_depth: float
    cache_rgb: Tensor | None = None
    cache_mask: Tensor | None = None
    meta: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return len(self.cameras) // len(self.names)


def drop_far(depth: Tensor, ratio: float) -> Tensor:
    """Zero (unknown) the depths beyond ``ratio`` × the 10th-percentile valid depth: the sky, which a depth
    network saturates at its far limit. The video model was trained on caches without sky points, and a
    saturated sky would otherwise set the scene's centre depth, and with it the trajectories' size."""
    valid = depth[(depth > 0) & torch.isfinite(depth)]
    if valid.numel() == 0:
        raise InputError("depth has no positive finite value")
    near = torch.quantile(valid.float()[:: max(1, valid.numel() // 100_000)], 0.1)
    return torch.where(depth <= ratio * near, depth, torch.zeros_like(depth))


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX tiles), where oneDNN's bf16
    convolutions beat fp32; elsewhere they are emulated and slower."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


PRECISIONS = ("auto", "bf16", "fp32")


def uses_bf16(precision: str, device: torch.device, what: str = "precision", cpu_bf16: bool = False) -> bool:
    """Whether ``precision`` (:data:`PRECISIONS`) means bf16 autocast on ``device``: ``"auto"`` is bf16 on CUDA
    (and on a CPU when ``cpu_bf16``), fp32 elsewhere. ``what`` names the setting in the error."""
    if precision not in PRECISIONS:
        raise InputError(f"{what} must be auto, bf16 or fp32, got {precision!r}")
    auto = device.type == "cuda" or (device.type == "cpu" and cpu_bf16)
    return precision == "bf16" or (precision == "auto" and auto)


def precision_autocast(precision: str, device: torch.device, what: str = "precision", cpu_bf16: bool = False):
    """The autocast context for ``precision`` on ``device`` (:func:`uses_bf16`)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=uses_bf16(precision, device, what, cpu_bf16))


def encode_autocast(precision: str, device: torch.device):
    """The autocast context for the tokenizer's encoder (``TeacherConfig.encode_precision``) on ``device``."""
    return precision_autocast(precision, device, "encode precision",
                              cpu_bf16=device.type == "cpu" and cpu_has_native_bf16())


COMPILE_SETTINGS = ("auto", "on", "off")


def wants_compile(setting: str, device: torch.device, batch: bool) -> bool:
    """Whether ``TeacherConfig.compile_encoder`` = ``setting`` compiles the encoder for a call on ``device``
    (``batch``: a call of a batch of scenes)."""
    if setting not in COMPILE_SETTINGS:
        raise InputError(f"compile encoder must be auto, on or off, got {setting!r}")
    return setting == "on" or (setting == "auto" and batch and device.type == "cuda")


def compile_encoder(tokenizer: Tokenizer) -> None:
    """Compile lyra3d's tokenizer's per-frame encoder (:meth:`~lyra3d.models.tokenizer.VideoTokenizer.compile_encoder`);
    other tokenizers (diffusers VAEs) are left as they are."""
    if hasattr(tokenizer, "compile_encoder"):
        tokenizer.compile_encoder()


def cache_videos(cond: dict[str, TrajectoryCondition]) -> tuple[Tensor, Tensor, Cameras]:
    """The warped cache of every trajectory in ``cond`` as the video model reads it: ``rgb (V, T, 3, H, W)`` (holes
    black), ``mask (V, T, 1, H, W)`` and all frames' cameras (trajectory-major ``V·T``)."""
    rgb = torch.stack([c.warped.rgb * c.warped.mask for c in cond.values()])
    mask = torch.stack([c.warped.mask for c in cond.values()])
    return rgb, mask, Cameras.cat([c.cameras for c in cond.values()])


class Teacher:
    """Depth estimator + tokenizer + video model."""

    def __init__(self, depth: DepthEstimator, tokenizer: Tokenizer, video_model: VideoDiffusionModel,
                 config: TeacherConfig | None = None):
        self.depth, self.tokenizer, self.video_model = depth, tokenizer, video_model.eval()
        self.config = config or TeacherConfig()
        on_cpu = isinstance(tokenizer, torch.nn.Module) and next(tokenizer.parameters()).device.type == "cpu"
        if on_cpu:  # convolutions run ~20% faster channels-last on a CPU (and ~20% slower on an H200)
            tokenizer.to(memory_format=torch.channels_last)

    @classmethod
    def from_pretrained(cls, tokenizer: str | Path | None = None, video_model: str | Path | None = None,
                        depth: str | Path | None = None, device: str | torch.device = "cpu",
                        config: TeacherConfig | None = None) -> "Teacher":
        """The shipped teacher, or parts from folders (a diffusers VAE folder works as the tokenizer, a transformers
        depth-estimation folder as the depth: :func:`lyra3d.models.hf_depth.load_depth`). A diffusers Wan VACE folder
        (``model_index.json``) as ``video_model`` gives a :class:`VACETeacher`, whose
        tokenizer is the VACE's own VAE."""
        from lyra3d.models.diffusers_vace import is_diffusers_folder

        if video_model is not None and is_diffusers_folder(video_model):
            return VACETeacher.from_pretrained(tokenizer, video_model, depth, device, config)
        if config is not None and (config.video_memory, config.vae_tiling) != ("auto", "auto"):
            raise InputError("--video-memory and --vae-tiling are for a diffusers Wan VACE video model (--video-model "
                             "DIR or WEIGHTS/video_model holding one); leave them out for lyra3d's own video model")
        estimator = load_depth(depth, device)  # first: a bad depth folder is refused before the larger parts load
        tok = load_tokenizer(tokenizer or shipped_weights(DEFAULT_TOKENIZER_WEIGHTS), device)
        vm = VideoDiffusionModel.from_pretrained(video_model or shipped_weights(DEFAULT_VIDEO_MODEL_WEIGHTS), device)
        want = (vm.config.latent_channels, vm.config.temporal_factor, vm.config.spatial_factor)
        have = (tok.latent_channels, tok.temporal_factor, tok.spatial_factor)
        if have != want:
            raise InputError(f"the video model expects {want[0]}-channel latents with temporal factor {want[1]} and "
                             f"spatial factor {want[2]}; the tokenizer gives {have[0]}, {have[1]} and {have[2]}: train "
                             "a video model on this tokenizer (`lyra3d train video-model --tokenizer DIR`) and put it "
                             "in --weights DIR/video_model, or use a tokenizer of the video model's latent shape")
        return cls(estimator, tok, vm, config)

    @property
    def device(self) -> torch.device:
        return next(self.video_model.parameters()).device

    def clean_depth(self, depth: Tensor) -> Tensor:
        """A depth map ``(1, H, W)`` made ready for the 3D cache: depths at the estimator's saturation limit (its
        ``max_depth``, where it has one: a depth network saturates the sky there) become unknown (0),
        then the far sky is dropped (:func:`drop_far` with ``config.far_ratio``)."""
        depth = depth.to(self.device)
        limit = getattr(self.depth, "max_depth", None)
        if limit is not None:
            depth = torch.where(depth < 0.99 * limit, depth, torch.zeros_like(depth))
        return drop_far(depth, self.config.far_ratio)

    @torch.no_grad()
    def __call__(self, image: Tensor, camera: Cameras, depth: Tensor | None = None, seed: int = 0,
                 keep_cache: bool = False, progress: Progress | None = None) -> TeacherSample:
        """Generate the latents of every trajectory for one ``image (3, H, W)`` seen by ``camera`` (one).

        ``depth (1, H, W)`` replaces the estimator's (e.g. a user's depth file). ``progress`` (:class:`~lyra3d.core.progress.Progress`)
        is told ``(stage, 1, 1)`` as each stage ends: ``depth``, ``cache``, ``encode``, ``sample``."""
        cfg = self.config
        say = progress or no_progress
        image, camera, depth, center, record = self.input_depth(image, camera, depth, say)
        cond = multi_trajectory_conditioning(image, depth[None], camera, cfg.num_frames, cfg.movement_factor,
                                             center_depth=center, names=cfg.trajectories)
        say("cache", 1, 1)
        names, latents, cams, rgb, mask = self.generate(cond, image, seed, say)
        return TeacherSample(names, latents, cams, image, depth, center, rgb if keep_cache else None,
                             mask if keep_cache else None, {"seed": seed, "steps": cfg.steps, "guidance": cfg.guidance,
                                                            "movement_factor": cfg.movement_factor,
                                                            "depth": record})

    def input_depth(self, image: Tensor, camera: Cameras, depth: Tensor | None, say: Progress
                    ) -> tuple[Tensor, Cameras, Tensor, float, dict]:
        """The checked input on the device and its cleaned depth (``depth``, else the estimator's), the scene's centre
        depth and the depth's record; ``say`` is told ``("depth", 1, 1)``."""
        if image.ndim != 3 or image.shape[0] != 3:
            raise InputError(f"image must be (3, H, W), got {tuple(image.shape)}")
        if len(camera) != 1 or (camera.width, camera.height) != (image.shape[-1], image.shape[-2]):
            raise InputError(f"camera must be one camera of the image's size {image.shape[-1]}x{image.shape[-2]}")
        image, camera = image.to(self.device), camera.to(self.device)
        record = {"kind": "given", "done": "the depth map given with the image, used as it is"}
        if depth is None:
            estimate = self.depth(image[None], camera.intrinsics)
            depth, record = estimate.depth[0], estimate.record
        say("depth", 1, 1)
        depth = self.clean_depth(depth)
        return image, camera, depth, scene_center_depth(depth), record

    @torch.no_grad()
    def generate(self, cond: dict[str, TrajectoryCondition], first: Tensor, seed: int = 0,
                 progress: Progress | None = None) -> tuple[tuple[str, ...], Tensor, Cameras, Tensor, Tensor]:
        """Encode a warped cache and sample: ``cond`` (trajectory name → its cameras and warped cache, e.g.
        :func:`~lyra3d.core.cache3d.multi_trajectory_conditioning` or the per-frame cache of a video) and the first
        frame ``first (3, H, W)`` → ``(names, latents (V, T', C, h, w), cameras (V·T, trajectory-major),
        cache_rgb (V, T, 3, H, W), cache_mask (V, T, 1, H, W))``. ``progress`` is told
        ``("encode", 1, 1)`` and ``("sample", 1, 1)`` after those stages."""
        cfg = self.config
        say = progress or no_progress
        names = tuple(cond)
        rgb, mask, cams = cache_videos(cond)
        t = rgb.shape[1]
        cache_lat = self.encode(rgb)
        mask_lat = self.encode(mask.expand(-1, -1, 3, -1, -1))
        first_lat = self.encode(first[None, None])[:, 0]
        rays = plucker_rays(cams).reshape(len(names), t, 6, *first.shape[-2:])
        say("encode", 1, 1)
        with precision_autocast(cfg.sample_precision, rays.device, "sample precision"):
            latents = sample(self.video_model, first_lat.expand(len(names), -1, -1, -1), cache_lat, mask_lat, rays,
                             steps=cfg.steps, guidance=cfg.guidance, seed=seed).float()
        say("sample", 1, 1)
        return names, latents, cams, rgb, mask

    @torch.no_grad()
    def encode(self, video: Tensor, batch: bool = False) -> Tensor:
        """The tokenizer's latents of ``video (B, T, 3, H, W)``, at ``config.encode_precision``, in the
        video's dtype; ``batch``: part of a batch of scenes (``compile_encoder="auto"`` compiles then)."""
        if wants_compile(self.config.compile_encoder, video.device, batch):
            compile_encoder(self.tokenizer)
        with encode_autocast(self.config.encode_precision, video.device):
            try:
                return self.tokenizer.encode(video).to(video.dtype)
            except torch._dynamo.exc.TorchDynamoException as e:  # no compiler here (a C compiler, Triton): eager
                self.tokenizer.uncompile_encoder()
                self.config.compile_encoder = "off"
                warnings.warn(f"the tokenizer's encoder could not be compiled ({type(e).__name__}); it runs eagerly "
                              "(about 3x slower on a GPU)", stacklevel=2)
                return self.tokenizer.encode(video).to(video.dtype)

    @torch.no_grad()
    def decode(self, latents: Tensor, batch: int = 2) -> Tensor:
        """The teacher's frames ``(V, T, 3, H, W)`` from latents ``(V, T', C, h, w)`` (the RGB decoder)."""
        return torch.cat([self.tokenizer.decode(latents[i:i + batch]) for i in range(0, latents.shape[0], batch)])


# -- a Wan VACE video model as the teacher (issue 23) ------------------------------------------------------------
class VACETeacher(Teacher):
    """Depth estimator + a Wan VACE video model (its VAE is the tokenizer). ``prompt``: the text every call is
    guided by (``""``: none)."""

    takes_prompt = True

    def __init__(self, depth: DepthEstimator, video_model, config: TeacherConfig | None = None,
                 prompt: str = ""):
        self.depth, self.video_model, self.tokenizer = depth, video_model, video_model.tokenizer
        self.config = config or TeacherConfig()
        self.prompt = prompt

    @classmethod
    def from_pretrained(cls, tokenizer: str | Path | None = None, video_model: str | Path | None = None,
                        depth: str | Path | None = None, device: str | torch.device = "cpu",
                        config: TeacherConfig | None = None, vace=None) -> "VACETeacher":
        """The depth part (``depth``: a folder, default the shipped one) and the VACE folder ``video_model``.
        ``tokenizer`` must be left out: the VACE's own VAE is the tokenizer."""
        if video_model is None:
            raise InputError("a VACE teacher needs its video model folder (--video-model DIR)")
        if tokenizer is not None:
            raise InputError(f"the tokenizer of a Wan VACE teacher is its own VAE ({Path(video_model) / 'vae'}); "
                             "leave out the tokenizer part (--tokenizer, WEIGHTS/tokenizer)")
        from lyra3d.models.diffusers_vace import VACEConfig, VACEVideoModel

        if vace is None and config is not None:  # the memory settings a TeacherConfig carries (--video-memory, ...)
            vace = VACEConfig(memory=config.video_memory, vae_tiling=config.vae_tiling)
        vace = (vace or VACEConfig()).validate()  # a bad setting fails before anything loads
        estimator = load_depth(depth, device)
        return cls(estimator, VACEVideoModel.from_pretrained(video_model, device, vace), config)

    @property
    def device(self) -> torch.device:
        return self.video_model.device

    @torch.no_grad()
    def __call__(self, image: Tensor, camera: Cameras, depth: Tensor | None = None, seed: int = 0,
                 keep_cache: bool = False, progress: Progress | None = None, prompt: str | None = None):
        """:meth:`Teacher.__call__`, with ``prompt`` (default :attr:`prompt`) guiding the video model."""
        kept = self.prompt
        self.prompt = kept if prompt is None else prompt
        try:
            sample = super().__call__(image, camera, depth=depth, seed=seed, keep_cache=keep_cache, progress=progress)
        finally:
            self.prompt = kept
        if prompt:
            sample.meta["prompt"] = prompt
        return sample

    @torch.no_grad()
    def generate(self, cond: dict[str, TrajectoryCondition], first: Tensor, seed: int = 0,
                 progress: Progress | None = None) -> tuple[tuple[str, ...], Tensor, Cameras, Tensor, Tensor]:
        """:meth:`Teacher.generate` with VACE: the warped cache and its holes → control video and mask (frame 0 the
        input image) → VACE's conditioning latents (``encode``) → the denoised latents of every trajectory
        (``sample``), as many trajectories per transformer call as memory allows."""
        from lyra3d.models.diffusers_vace import vace_control

        cfg = self.config
        say = progress or no_progress
        names = tuple(cond)
        rgb, mask, cams = cache_videos(cond)
        h, w = first.shape[-2:]
        if h % 16 or w % 16:
            raise InputError(f"Wan VACE takes frames whose sides are multiples of 16, got {w}x{h}")
        self.tokenizer.latent_frames(rgb.shape[1])  # 1 + 4·m frames, else one line
        video, vmask = vace_control(rgb, mask, first)
        conditioning = self.video_model.condition(video, vmask)
        say("encode", 1, 1)
        latents = self.video_model.sample(conditioning, cfg.steps, cfg.guidance, seed, self.prompt)
        say("sample", 1, 1)
        return names, latents, cams, rgb, mask


# -- the video teacher ---------------------------------------------------------------------------------------
@dataclass
class VideoTeacherSample(TeacherSample):
    """A :class:`~lyra3d.pipelines.teacher.TeacherSample` of a video: frame ``t`` of every trajectory shows the time of
    input frame ``t``. ``image``/``depth`` are input frame 0 and its depth (as for one image); ``video
    (T, 3, H, W)``, ``video_depth (T, 1, H, W)`` (sky dropped), ``input_cameras`` (T) and ``times (T,)``
    (seconds of the input frames when known, else the frame indices) describe the whole input;
    ``input_latents (T', C, h, w)`` is the tokenizer's encoding of the input video (what a 4D decoder with
    ``input_view`` reads as one more view)."""

    video: Tensor | None = None
    video_depth: Tensor | None = None
    input_cameras: Cameras | None = None
    times: Tensor | None = None
    input_latents: Tensor | None = None


def _check_video(teacher: Teacher, frames: Tensor, cameras: Cameras) -> Cameras:
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise InputError(f"frames must be a video (T, 3, H, W), got {tuple(frames.shape)}")
    t, k = frames.shape[0], teacher.video_model.config.temporal_factor
    if t < 2 or (t - 1) % k:
        raise InputError(f"a video of {t} frames does not fit the tokenizer: use 1 + {k}·m frames (e.g. 17)")
    if (cameras.width, cameras.height) != (frames.shape[-1], frames.shape[-2]):
        raise InputError(f"cameras of {cameras.width}x{cameras.height} do not match frames of "
                         f"{frames.shape[-1]}x{frames.shape[-2]}")
    if len(cameras) == 1:
        return cameras[[0] * t]
    if len(cameras) != t:
        raise InputError(f"give one camera (a still camera) or one per frame: {len(cameras)} cameras, {t} frames")
    return cameras


@torch.no_grad()
def video_teacher(teacher: Teacher, frames: Tensor, cameras: Cameras, seed: int = 0, depth: Tensor | None = None,
                  times: Tensor | None = None, keep_cache: bool = False, encode_input: bool = True,
                  progress: Progress | None = None) -> VideoTeacherSample:
    """The teacher re-rendering a video along its trajectories, one 3D cache per frame.

    Per input frame: the teacher's depth estimate (far sky dropped as the teacher does); the frames'
    caches warped frame by frame into the trajectories (frame ``t`` of each trajectory is its camera ``t``,
    trajectories starting at the first input camera and scaled by the first frame's centre depth); the
    tokenizer encodes the warped rgb and masks, and the input video itself (``input_latents``); the video
    model samples with input frame 0 as the first latent. The teacher's settings (steps, guidance, movement
    factor, trajectories) apply; the trajectories have as many frames as the video (``1 + k·m``), whatever
    ``teacher.config.num_frames`` says.

    Args:
        frames: ``(T, 3, H, W)`` in [0, 1] (e.g. :func:`lyra3d.io.video.load_video`).
        cameras: one camera per frame, or one for a still camera.
        depth: ``(T, 1, H, W)`` z-depth replacing the estimator's.
        times: ``(T,)`` seconds of the frames (recorded in the result; default the frame indices).
        keep_cache: keep the warped cache ``(V, T, ·, H, W)`` (evaluation).
        encode_input: encode the input video (``input_latents``; ``None`` without): only a 4D decoder with
            ``input_view`` and SDG read it.
        progress: a :class:`~lyra3d.core.progress.Progress`, told ``(stage, 1, 1)`` as each stage ends
            (those of :meth:`Teacher.__call__`).
    """
    cfg, dev = teacher.config, teacher.device
    say = progress or no_progress
    cameras = _check_video(teacher, frames, cameras)
    frames, cameras = frames.to(dev), cameras.to(dev)
    t = frames.shape[0]
    record = {"kind": "given", "done": "the depth maps given with the video, used as they are"}
    if depth is None:
        step = 1 if dev.type == "cpu" else 8  # on a CPU one frame at a time is fastest (measured)
        estimates = [teacher.depth(frames[i:i + step], cameras.intrinsics[i:i + step]) for i in range(0, t, step)]
        depth, record = torch.cat([e.depth for e in estimates]), estimates[0].record  # the first frames' record
    elif depth.shape != (t, 1, *frames.shape[-2:]):
        raise InputError(f"depth must be (T, 1, H, W) = {(t, 1, *frames.shape[-2:])}, got {tuple(depth.shape)}")
    say("depth", 1, 1)
    depth = torch.stack([teacher.clean_depth(d) for d in depth])
    center = scene_center_depth(depth[0])
    cond = per_frame_trajectory_conditioning(frames, depth, cameras, cfg.movement_factor, center_depth=center,
                                             names=cfg.trajectories)
    say("cache", 1, 1)
    input_latents = teacher.encode(frames[None])[0] if encode_input else None  # in the "encode" stage
    names, latents, cams, rgb, mask = teacher.generate(cond, frames[0], seed, say)  # as for one image
    times = torch.arange(t, dtype=torch.float32) if times is None else torch.as_tensor(times, dtype=torch.float32)
    meta = {"seed": seed, "steps": cfg.steps, "guidance": cfg.guidance, "movement_factor": cfg.movement_factor,
            "per_frame_cache": True, "times": [round(float(x), 6) for x in times], "depth": record}
    return VideoTeacherSample(names, latents, cams, frames[0], depth[0], center, rgb if keep_cache else None,
                              mask if keep_cache else None, meta, video=frames, video_depth=depth,
                              input_cameras=cameras, times=times, input_latents=input_latents)
