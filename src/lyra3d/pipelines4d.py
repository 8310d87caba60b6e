"""Video → 4D (DESIGN §1 "Dynamic", issue 9): a monocular video to 3D Gaussians at chosen times.

::

    from lyra3d.pipelines4d import VideoTo4DPipeline, save_scene4d

    pipe = VideoTo4DPipeline.from_pretrained()          # the shipped models (or a weights folder)
    scene = pipe("clip.mp4", seed=0)                    # a path, or a video tensor (T, 3, H, W) in [0, 1]
    scene.gaussians[k], scene.times[k]                  # the scene at output time k (seconds of the video)
    save_scene4d(scene, "out")                          # what `lyra3d generate --video` writes

:class:`VideoTo4DPipeline` reads the video (:func:`lyra3d.inputs.load_video`: any video ffmpeg reads, an
animated GIF/WebP, or a folder of frames; every frame center-cropped or padded to the preset's size, like an
image), chooses the frames the models read (:func:`choose_frames`), runs the video teacher (one 3D cache per
frame, :func:`lyra3d.dynamic.video_teacher`) and then the time-conditioned decoder
(:class:`lyra3d.decoder4d.GaussianDecoder4D`) once per output time (the shipped one also reads the input
video's own latents as a seventh view, ``input_view``), prunes each time's Gaussians by opacity
rank and renders them at the input camera against the input frame (PSNR). Loading, saving, devices and
settings are :class:`lyra3d.pipelines.TeacherPipeline`'s; the decoder is the weights folder's ``decoder4d/``
part (default: the shipped one, ``lyra3d/weights/decoder4d``).

Choices (each one is recorded in the scene's report):

* **Frames.** The tokenizer compresses ``1 + 4·m`` frames. The models read ``F`` frames (the preset's
  count, 17, the clip length the shipped 4D decoder was trained on; ``num_frames`` / ``--frames`` sets
  another ``1 + 4·m``) spread evenly over the whole video: a longer video is subsampled, a shorter one is
  stretched by repeating frames, each copy keeping its frame's time (a 9-frame video: frames 0, 1, 1, 2, 2,
  ...; measured on held-out 9-frame clips, the shipped decoder scores about 6 dB higher at the input camera
  and at novel cameras than when it reads the 9 frames as they are). ``max_frames`` / ``--max-frames`` reads
  only the first N frames, to keep a shorter stretch at its own pace. Fewer than 5 frames is refused.
* **Camera.** Unless cameras are given (Python only), the video is taken as filmed by a **still camera**
  at the identity pose with the preset's intrinsics (320×176, 50° vertical field of view): the world frame
  of the output is that camera's OpenCV frame, as for an image.
* **Time.** Times are seconds of the video (frame index / its frame rate; 24 fps for a tensor unless
  ``fps`` is given). The span from the first to the last frame read is mapped onto the 4D decoder's time
  range (the 4 s of procedural motion it was trained on), so every clip looks alike to it. Output times
  default to one per distinct frame read; ``output_times=N`` (``--times N``) spreads N over the span,
  ``times=`` names them.
* **Result.** A :class:`Scene4D`: one :class:`~lyra3d.gaussians.Gaussians` per output time (each with
  ``times`` filled), not one set with per-Gaussian times: the decoder outputs a whole scene per time, and a
  scene per time is what any 3DGS viewer opens. :func:`save_scene4d` writes them as
  ``gaussians/scene_t000.ply ...`` (standard 3DGS PLYs, plus a ``t`` property that viewers ignore).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor

from lyra3d.cameras import Cameras, default_camera, trajectory
from lyra3d.errors import InputError
from lyra3d.gaussians import Gaussians
from lyra3d.inputs import VideoInfo
from lyra3d.pipelines import (IMAGE_STAGES, MAX_OUTPUT_TIMES, GenerateConfig, Preset, Scene, TeacherPipeline,
                              check_flythrough, film_path, finish_report, fit_image_tensor, flythrough_cameras,
                              json_ready, write_png, write_teacher_videos)
from lyra3d.timing import StageClock

__all__ = ["VideoTo4DPipeline", "Scene4D", "VIDEO_STAGES", "DEFAULT_FPS", "BULLET_TIME_SWING", "choose_frames",
           "load_input_video", "bullet_time_cameras", "save_scene4d"]

#: Stages of a video → 4D call, in order: reading the video (decoding a file, fitting the frames to the preset,
#: choosing them), then an image's stages, with ``decoder`` and ``input_view`` run once per output time
#: (``step_progress`` counts them).
VIDEO_STAGES = ("read_video",) + IMAGE_STAGES
#: Frame rate of a video given as a tensor without ``fps`` (and of a file that does not say).
DEFAULT_FPS = 24.0
#: The bullet-time camera swings from −this to +this of a half turn about the scene centre (±18°).
BULLET_TIME_SWING = 0.1
#: Columns of ``input_view.png``: the input at up to this many output times over the render there.
STRIP_TIMES = 5


# -- the input video -------------------------------------------------------------------------------------------
def load_input_video(path: str | Path, preset: Preset, fit: str = "crop", max_frames: int | None = None
                     ) -> tuple[Tensor, VideoInfo]:
    """A video file or a folder of frames at the preset's size: ``(N, 3, H, W)`` and what was done
    (:func:`lyra3d.inputs.load_video`: one-line errors for a missing, empty, corrupt or unreadable file, zero
    frames, a single frame, frames over :data:`lyra3d.inputs.MAX_VIDEO_SIDE` px or more than
    :data:`lyra3d.inputs.MAX_VIDEO_FRAMES` frames). ``max_frames``: read only the first N."""
    from lyra3d.inputs import load_video

    return load_video(path, preset.width, preset.height, max_frames=max_frames, fit=fit)


def choose_frames(available: int, wanted: int, temporal_factor: int = 4, what: str = "the video") -> list[int]:
    """Indices of the frames the models read out of ``available``: ``wanted`` (``1 + k·m``) spread evenly over
    all of them, first and last included (rounded half up): a longer video is subsampled, a shorter one has
    frames repeated."""
    k = temporal_factor
    if available < 1 + k:
        raise InputError(f"{what} has {available} frames; the video model needs at least {1 + k} "
                         f"(1 + {k}·m: {1 + k}, {1 + 2 * k}, {1 + 4 * k}, ...)")
    return [math.floor(i * (available - 1) / (wanted - 1) + 0.5) for i in range(wanted)]


def _describe_choice(idx: Sequence[int], available: int) -> str:
    n = len(idx)
    if list(idx) == list(range(available)):
        return f"all {n} frames"
    if n > available:
        return (f"all {available} frames stretched to {n} by repeating frames (each about {n / available:.2g} "
                "times), the clip length the 4D decoder reads")
    return f"{n} of {available} frames spread evenly over the video (one every {(available - 1) / (n - 1):.3g} frames)"


def _nearest(frame_times: Tensor, t: float) -> int:
    """Index of the frame time ``(T,)`` nearest ``t``."""
    return int((frame_times - t).abs().argmin())


# -- the result ----------------------------------------------------------------------------------------------
@dataclass
class Scene4D:
    """One generated dynamic scene: the Gaussians at each output time.

    Attributes:
        gaussians: ``K`` Gaussian sets, one per output time (pruned by opacity rank; each one's ``times``
            holds its time).
        times: ``(K,)`` the output times, seconds of the video.
        cameras: every trajectory frame's camera, trajectory-major ``(V·T)``.
        trajectories: the ``V`` trajectory names.
        input_video: ``(T, 3, H, W)`` the frames the models read, as they saw them (fitted to the preset).
        input_cameras: the ``T`` cameras of those frames (a still camera unless cameras were given).
        frame_indices: ``T`` indices of those frames in the input video.
        frame_times: ``(T,)`` seconds of those frames (index / fps).
        center_depth: the scene centre's depth in front of the first input camera (the trajectories' scale).
        input_view_psnrs: ``K`` PSNRs (dB): the Gaussians of each time rendered at the camera of the frame
            nearest that time, against that frame.
        input_views: ``(K, 3, H, W)`` those renders.
        timings: seconds per stage (:data:`VIDEO_STAGES`, [``teacher_frames``], ``total``).
        seed: the seed used.
        config: the settings used.
        fps: the video's frame rate (times are seconds at this rate).
        frames_in_input: frames the video had (as read; ``max_frames`` reads fewer).
        info: what was done to the input video (file or tensor), or ``None``.
        cameras_given: whether the input cameras came from the caller (else: the still camera assumed).
        frames: the teacher's RGB frames ``(V, T, 3, H, W)`` when ``keep_frames``, else ``None``.
        gaussians_before_pruning: the decoder's Gaussian count per time before opacity-rank pruning.
        preset: the resolution preset used.
    """

    gaussians: list[Gaussians]
    times: Tensor
    cameras: Cameras
    trajectories: tuple[str, ...]
    input_video: Tensor
    input_cameras: Cameras
    frame_indices: tuple[int, ...]
    frame_times: Tensor
    center_depth: float
    input_view_psnrs: tuple[float, ...]
    input_views: Tensor
    timings: dict[str, float]
    seed: int
    config: GenerateConfig
    fps: float = DEFAULT_FPS
    frames_in_input: int = 0
    info: VideoInfo | None = None
    cameras_given: bool = False
    frames: Tensor | None = None
    gaussians_before_pruning: int = 0
    preset: Preset | None = None

    def __len__(self) -> int:
        return len(self.gaussians)

    @property
    def input_view_psnr(self) -> float:
        """The input-view PSNR averaged over the output times (dB)."""
        return sum(self.input_view_psnrs) / len(self.input_view_psnrs)

    def nearest_frame(self, k: int) -> int:
        """Index (into the frames read) of the input frame nearest output time ``k``."""
        return _nearest(self.frame_times, float(self.times[k]))

    def at(self, k: int) -> Scene:
        """The scene at output time ``k`` as a static :class:`~lyra3d.pipelines.Scene` (its input image and
        camera: the nearest input frame's), e.g. for :func:`lyra3d.pipelines.save_scene`."""
        j = self.nearest_frame(k)
        return Scene(gaussians=self.gaussians[k], cameras=self.cameras, trajectories=self.trajectories,
                     input_camera=self.input_cameras[j], input_image=self.input_video[j],
                     center_depth=self.center_depth, input_view_psnr=self.input_view_psnrs[k], timings=self.timings,
                     seed=self.seed, config=self.config, gaussians_before_pruning=self.gaussians_before_pruning,
                     preset=self.preset)

    def cameras_record(self) -> dict:
        """The ``cameras.json`` record: :meth:`Scene.cameras_record` (every trajectory frame's camera, the
        first input camera as ``input_camera``) plus every input frame's camera, the frames' and the
        output times."""
        return {**self.at(0).cameras_record(), "input_camera": self.input_cameras[0].to_dict(),
                "input_cameras": self.input_cameras.to_dict(), "frame_indices": list(self.frame_indices),
                "frame_times_s": [round(float(t), 6) for t in self.frame_times],
                "times_s": [round(float(t), 6) for t in self.times]}

    def input_record(self) -> dict:
        """What the input video was and what was done to it (for a report)."""
        if self.info is None:
            return {"kind": "video"}
        kind = "tensor" if self.info.path == "<tensor>" else "video"
        return {"kind": kind, "description": self.info.describe(), **self.info.to_dict()}

    def report(self) -> dict:
        """A JSON-ready summary: :meth:`Scene.report`'s (settings, timings, ...) with the input video, the
        frames read, the camera, the output times, the Gaussian count and input-view PSNR per time."""
        record = self.at(0).report()
        idx = list(self.frame_indices)
        record.update({
            "input": self.input_record(),
            "frames_used": {"count": len(idx), "of": self.frames_in_input, "indices": idx, "fps": self.fps,
                            "times_s": [round(float(t), 6) for t in self.frame_times],
                            "description": _describe_choice(idx, self.frames_in_input)},
            "camera": "given" if self.cameras_given else
                      "assumed: a still camera at the identity pose with the preset's field of view",
            "times_s": [round(float(t), 6) for t in self.times],
            "gaussians": [len(g) for g in self.gaussians],
            "gaussians_before_pruning": self.gaussians_before_pruning,
            "input_view_psnr": round(self.input_view_psnr, 4),
            "input_view_psnr_per_time": [round(v, 4) for v in self.input_view_psnrs],
            "input_view_frame_per_time": [idx[self.nearest_frame(k)] for k in range(len(self))],
        })
        return json_ready(record)


# -- video → 4D ----------------------------------------------------------------------------------------------
class VideoTo4DPipeline(TeacherPipeline):
    """Video → 4D Gaussians: the video teacher's multi-trajectory latents (one 3D cache per frame), then the
    time-conditioned decoder once per output time. Loading, saving and settings:
    :class:`~lyra3d.pipelines.TeacherPipeline` (the decoder is the weights folder's ``decoder4d/``)."""

    decoder_part = "decoder4d"
    decoder_name = "4D decoder"
    decoder_training = "lyra3d train decoder --dynamic 1"
    STAGES = VIDEO_STAGES

    @classmethod
    def _decoder_class(cls) -> type:
        from lyra3d.decoder4d import GaussianDecoder4D

        return GaussianDecoder4D

    def prepare_video(self, video: Tensor | str | Path, config: GenerateConfig | None = None,
                      max_frames: int | None = None, fps: float = DEFAULT_FPS, info: VideoInfo | None = None
                      ) -> tuple[Tensor, list[int], VideoInfo]:
        """A path or a tensor ``(N, 3, H, W)`` in [0, 1] → the frames the models read ``(F, 3, h, w)`` at the
        preset's size, their indices in the video (:meth:`frame_indices`) and what was done to it
        (``max_frames``: the first N frames only; ``fps``: a tensor's frame rate; ``info``: what was already
        done to a prepared tensor, kept as the record)."""
        cfg = config or self.config
        p = cfg.resolution
        if isinstance(video, (str, Path)):
            frames, info = load_input_video(video, p, cfg.fit, max_frames)
            idx = self._choose(cfg, len(frames), info.path)
            return frames[idx], idx, info
        if not isinstance(video, Tensor):
            raise InputError(f"video must be a tensor (T, 3, H, W) or a file path, got {type(video).__name__}")
        if video.ndim != 4 or video.shape[1] != 3:
            raise InputError(f"video must be (T, 3, H, W) RGB, got shape {tuple(video.shape)}")
        if video.shape[0] < 2:
            raise InputError(f"the video has {video.shape[0]} frame(s); a video needs at least 2 frames; for one "
                             "image use ImageTo3DPipeline (--image)")
        count = video.shape[0]
        video = video[:max_frames] if max_frames is not None else video
        what = info.path if info is not None and info.path != "<tensor>" else "the video"
        idx = self._choose(cfg, len(video), what)
        frames, fitted = fit_image_tensor(video[idx], p.width, p.height, cfg.fit)
        if info is None:
            info = VideoInfo(path="<tensor>", format=None, size=fitted.size, fps=fps, frames=len(video),
                             frames_in_file=count, truncated=len(video) < count, alpha_background=None,
                             conversions=(), fit=fitted.fit, box=fitted.box, pad_color=fitted.pad_color,
                             scale=fitted.scale, output_size=fitted.output_size)
        return frames, idx, info

    def frame_indices(self, available: int, what: str = "the video", **overrides) -> list[int]:
        """The indices of the frames a call with these settings reads out of a video of ``available`` frames
        (:func:`choose_frames`; a one-line error naming ``what`` when it is too short)."""
        return self._choose(self.check(self._call_config(None, overrides)), available, what)

    def _choose(self, cfg: GenerateConfig, available: int, what: str) -> list[int]:
        return choose_frames(available, cfg.frames, self.teacher.tokenizer.temporal_factor, what)

    def _input_cameras(self, cameras: Cameras | None, available: int, idx: list[int], p: Preset) -> Cameras:
        if cameras is None:
            return default_camera(p.width, p.height, p.fov_y_degrees)[[0] * len(idx)]
        if (cameras.width, cameras.height) != (p.width, p.height):
            raise InputError(f"cameras of {cameras.width}×{cameras.height} do not match the preset's "
                             f"{p.width}×{p.height}; resize them (Cameras.resized)")
        if len(cameras) == 1:
            return cameras[[0] * len(idx)]
        if len(cameras) != available:
            raise InputError(f"give one camera (a still camera) or one per video frame: {len(cameras)} cameras, "
                             f"{available} frames")
        return cameras[idx]

    @staticmethod
    def _output_times(times, frame_times: Tensor, count: int | None) -> Tensor:
        first, last = float(frame_times[0]), float(frame_times[-1])
        if times is None:
            if count is None:  # one per distinct frame read (a stretched video repeats frames)
                return torch.unique_consecutive(frame_times)
            return torch.tensor([(first + last) / 2]) if count == 1 else torch.linspace(first, last, count)
        try:
            out = torch.as_tensor(times, dtype=torch.float32).reshape(-1)
        except (TypeError, ValueError, RuntimeError):
            raise InputError(f"times must be numbers (seconds of the video), got {times!r}") from None
        if not 1 <= len(out) <= MAX_OUTPUT_TIMES:
            raise InputError(f"give 1 to {MAX_OUTPUT_TIMES} output times, got {len(out)}")
        eps = 1e-4 * max(1.0, last - first)
        if not bool(torch.isfinite(out).all()) or float(out.min()) < first - eps or float(out.max()) > last + eps:
            raise InputError(f"times must lie within the frames read, {first:.4g} to {last:.4g} s, "
                             f"got {[round(float(t), 4) for t in out]}")
        return out.clamp(first, last)

    def _model_times(self, seconds: Tensor, frame_times: Tensor) -> Tensor:
        """Seconds of the video → the decoder's time (the clip's span mapped onto its trained range)."""
        first, last = float(frame_times[0]), float(frame_times[-1])
        return (seconds - first) / (last - first) / self.decoder.config.time_scale

    @torch.no_grad()
    def __call__(self, video: Tensor | str | Path, seed: int | None = None,
                 progress: Callable[[str], None] | None = None, *, times: Sequence[float] | Tensor | None = None,
                 cameras: Cameras | None = None, fps: float | None = None, info: VideoInfo | None = None,
                 max_frames: int | None = None, step_progress: Callable[[str, int, int], None] | None = None,
                 **overrides) -> Scene4D:
        """Generate the dynamic scene of one video.

        Args:
            video: a video file or a folder of frames, or a tensor ``(N, 3, H, W)`` in [0, 1] (another size is
                cropped/padded and resampled to the preset's).
            seed: the sampler's seed (default ``config.seed``); the same seed gives the same scene.
            progress: called with each stage's name (:meth:`stages`) as the stage ends.
            times: output times, seconds of the video within the frames read (default: ``output_times``
                spread evenly, else one per distinct frame read).
            cameras: the input cameras at the preset's size: one (a still camera) or one per video frame
                (``N``); default: the still identity camera with the preset's field of view.
            fps: frames per second of a tensor (default 24); a file's own rate otherwise.
            info: what was done to an already prepared video tensor (kept in the scene's report).
            max_frames: read only the first N frames.
            step_progress: ``step_progress(stage, done, total)`` as each output time is decoded
                (``"decoder"``) and rendered (``"input_view"``).
            **overrides: any :class:`~lyra3d.pipelines.GenerateConfig` field for this call
                (``num_frames``: frames read, ``output_times``, ``trajectories``, ``steps``, ...).
        """
        from lyra3d.dynamic import video_teacher
        from lyra3d.metrics import psnr
        from lyra3d.render import rasterize

        cfg = self.check(self._call_config(seed, overrides))
        clock = StageClock(self.device, progress)
        step = step_progress or (lambda stage, done, total: None)
        fps = DEFAULT_FPS if fps is None else fps
        if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
            raise InputError(f"fps must be a positive number, got {fps!r}")
        frames, idx, info = self.prepare_video(video, cfg, max_frames, fps, info)
        fps = info.fps if isinstance(video, (str, Path)) else fps
        available, p = info.frames, cfg.resolution
        cams = self._input_cameras(cameras, available, idx, p)
        frame_times = torch.tensor(idx, dtype=torch.float32) / float(fps)
        out_times = self._output_times(times, frame_times, cfg.output_times)
        model_frame_times = self._model_times(frame_times, frame_times)
        clock.mark("read_video")

        self._set_teacher(cfg, len(idx))
        gen = video_teacher(self.teacher, frames, cams, seed=cfg.seed, times=model_frame_times,
                            encode_input=self.decoder.config.input_view,
                            progress=clock.mark)
        scenes, before = [], 0
        for k, t in enumerate(out_times):
            g = self.decoder.decode(gen.latents, gen.cameras, model_frame_times,
                                    target_time=float(self._model_times(t, frame_times)),
                                    input_latents=gen.input_latents, input_cameras=gen.input_cameras)
            before = len(g)
            g = g.prune_by_opacity(keep_fraction=cfg.keep_fraction) if cfg.keep_fraction < 1 else g
            g.times = torch.full((len(g),), float(t), device=g.device)
            scenes.append(g)
            step("decoder", k + 1, len(out_times))
        clock.mark("decoder")
        cams_dev, video_dev = cams.to(self.device), gen.video
        renders, scores = [], []
        for k, g in enumerate(scenes):
            j = _nearest(frame_times, float(out_times[k]))
            render = rasterize(g, cams_dev[j], backend=cfg.backend).rgb[0].clamp(0, 1)
            scores.append(float(psnr(render, video_dev[j].to(render))))
            renders.append(render.cpu())
            step("input_view", k + 1, len(out_times))
        clock.mark("input_view")
        teacher_frames = None
        if cfg.keep_frames:
            teacher_frames = self.teacher.decode(gen.latents).cpu()
            clock.mark("teacher_frames")
        return Scene4D(gaussians=scenes, times=out_times, cameras=gen.cameras, trajectories=tuple(gen.names),
                       input_video=frames.cpu(), input_cameras=cams.to("cpu"), frame_indices=tuple(idx),
                       frame_times=frame_times, center_depth=float(gen.center_depth), input_view_psnrs=tuple(scores),
                       input_views=torch.stack(renders), timings=clock.total(), seed=cfg.seed, config=cfg,
                       fps=float(fps), frames_in_input=available, info=info,
                       cameras_given=cameras is not None, frames=teacher_frames, gaussians_before_pruning=before,
                       preset=p)


# -- output folder -------------------------------------------------------------------------------------------
def bullet_time_cameras(start: Cameras, center_depth: float, frames: int, swing: float = BULLET_TIME_SWING
                        ) -> Cameras:
    """``frames`` cameras swinging about the scene centre (``center_depth`` in front of ``start``) from
    ``−swing`` to ``+swing`` of a half turn (:func:`lyra3d.cameras.trajectory` ``"orbit"``); the middle one of
    an odd count is ``start``."""
    if frames < 2:
        raise InputError(f"a bullet-time video needs at least 2 frames, got {frames}")
    first = trajectory("orbit", start, 2, center_depth, movement=-swing)[1]
    return trajectory("orbit", first, frames, center_depth, movement=2 * swing)


def _strip(scene: Scene4D, columns: int = STRIP_TIMES) -> Tensor:
    """``(3, 2H, n·W)``: the input frame nearest each of ``n`` output times spread over the clip (top) over
    the Gaussians of that time rendered at its camera (bottom)."""
    k, n = len(scene), min(columns, len(scene))
    picks = [round(i * (k - 1) / max(1, n - 1)) for i in range(n)]
    top = torch.cat([scene.input_video[scene.nearest_frame(i)] for i in picks], -1)
    bottom = torch.cat([scene.input_views[i] for i in picks], -1)
    return torch.cat([top, bottom], -2)


def save_scene4d(scene: Scene4D, out: str | Path, force: bool = False, flythrough_frames: int = 48,
                 flythrough_path: str = "flythrough", fps: float = 24.0, report: dict | None = None,
                 progress: Callable[[str, int, int], None] | None = None, started: float | None = None) -> dict:
    """Write a video → 4D output folder, whole or not at all (:func:`lyra3d.files.staged_dir`):

    * ``gaussians/scene_t000.ply ...``: the Gaussians at each output time (standard 3DGS PLYs, plus a ``t``
      property with the time in seconds, which viewers ignore);
    * ``flythrough.mp4``: the camera moves along ``flythrough_path`` from the input camera while the time
      runs from the first to the last output time;
    * ``bullet_time.mp4``: the time frozen at the middle output time, the camera swinging about the scene
      centre (:func:`bullet_time_cameras`);
    * ``input_view.png``: the input frames at up to 5 output times (top row) over the Gaussians of those
      times rendered at the input camera (bottom row);
    * ``cameras.json`` (:meth:`Scene4D.cameras_record`), ``report.json`` (:meth:`Scene4D.report` +
      ``report``, timings of the videos and the writing, file sizes) and, when the scene kept them,
      ``teacher/<trajectory>.mp4``.

    Arguments as :func:`lyra3d.pipelines.save_scene` (``progress(what, done, total)`` is told about the
    frames of both videos as they render, ``what`` = ``"flythrough"`` / ``"bullet_time"``, and each file
    written, ``"write"``). Returns the report."""
    from lyra3d.export import export_gaussians
    from lyra3d.files import staged_dir

    check_flythrough(flythrough_path, flythrough_frames)
    say = progress or (lambda what, done, total: None)
    k = len(scene)
    width = max(3, len(str(k - 1)))
    plys = [f"gaussians/scene_t{i:0{width}d}.ply" for i in range(k)]
    files = plys + ["flythrough.mp4", "bullet_time.mp4", "input_view.png", "cameras.json"]
    if scene.frames is not None:
        files += [f"teacher/{name}.mp4" for name in scene.trajectories]
    record = scene.report()
    record.update(report or {})
    timings = dict(record.get("timings_s", {}))
    backend = scene.config.backend
    with staged_dir(out, force=force) as tmp:
        t0 = time.perf_counter()
        start = scene.at(0)
        cams = flythrough_cameras(start, flythrough_path, flythrough_frames)
        which = [round(i * (k - 1) / (len(cams) - 1)) for i in range(len(cams))]
        film_path(scene.gaussians, which, cams, tmp / "flythrough.mp4", fps, backend,
                  lambda done: say("flythrough", done, len(cams)))
        timings["flythrough"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        cams = bullet_time_cameras(start.input_camera.to("cpu"), scene.center_depth, flythrough_frames)
        film_path(scene.gaussians, [(k - 1) // 2] * len(cams), cams, tmp / "bullet_time.mp4", fps, backend,
                  lambda done: say("bullet_time", done, len(cams)))
        timings["bullet_time"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        (tmp / "gaussians").mkdir()
        for i, (g, name) in enumerate(zip(scene.gaussians, plys)):
            export_gaussians(g.detach().to("cpu"), tmp / name)
            say("write", i + 1, len(files))
        write_png(_strip(scene), tmp / "input_view.png")
        (tmp / "cameras.json").write_text(json.dumps(scene.cameras_record(), indent=1) + "\n")
        say("write", k + 2, len(files))
        write_teacher_videos(scene, tmp, fps, lambda i: say("write", k + 3 + i, len(files)))
        timings["write"] = time.perf_counter() - t0
        record["flythrough"] = {"path": flythrough_path, "frames": flythrough_frames, "fps": fps,
                                "time_index_per_frame": which}
        record["bullet_time"] = {"frames": flythrough_frames, "fps": fps, "swing_half_turns": BULLET_TIME_SWING,
                                 "time_s": round(float(scene.times[(k - 1) // 2]), 6)}
        record = finish_report(tmp, record, timings, files, started)
    return record
