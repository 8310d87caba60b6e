"""Video → 4D (docs/design.md §1 "Dynamic", issue 9): a monocular video to 3D Gaussians at chosen times.

::

    from lyra3d.pipelines import VideoTo4DPipeline, save_scene4d

    pipe = VideoTo4DPipeline.from_pretrained()          # the shipped models (or a weights folder)
    scene = pipe("clip.mp4", seed=0)                    # a path, or a video tensor (T, 3, H, W) in [0, 1]
    scene.gaussians[k], scene.times[k]                  # the scene at output time k (seconds of the video)
    save_scene4d(scene, "out")                          # what `lyra3d generate --video` writes

:class:`VideoTo4DPipeline` reads the video (:func:`lyra3d.io.video.load_video`: any video ffmpeg reads, an
animated GIF/WebP, or a folder of frames; every frame center-cropped or padded to the preset's size, like an
image), chooses the frames the models read (:func:`choose_frames`), runs the video teacher (one 3D cache per
frame, :func:`lyra3d.pipelines.teacher.video_teacher`) and then the time-conditioned decoder
(:class:`lyra3d.models.decoder4d.GaussianDecoder4D`) once per output time (the shipped one also reads the input
video's own latents as a seventh view, ``input_view``), prunes each time's Gaussians by opacity
rank and renders them at the input camera against the input frame (PSNR). Loading, saving, devices and
settings are :class:`lyra3d.pipelines.base.TeacherPipeline`'s; the decoder is the weights folder's ``decoder4d/``
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
* **Result.** A :class:`Scene4D`: one :class:`~lyra3d.core.gaussians.Gaussians` per output time (each with
  ``times`` filled), not one set with per-Gaussian times: the decoder outputs a whole scene per time, and a
  scene per time is what any 3DGS viewer opens. :func:`save_scene4d` writes them as
  ``gaussians/scene_t000.ply ...`` (standard 3DGS PLYs, plus a ``t`` property that viewers ignore).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from lyra3d.core.cameras import Cameras, default_camera
from lyra3d.core.progress import Progress, StageClock
from lyra3d.errors import InputError
from lyra3d.io.images import fit_image_tensor
from lyra3d.io.video import VideoInfo
from lyra3d.pipelines.base import IMAGE_STAGES, TeacherPipeline
from lyra3d.pipelines.config import MAX_OUTPUT_TIMES, GenerateConfig, Preset
from lyra3d.pipelines.outputs import DEFAULT_FPS, Scene4D, _nearest

#: Stages of a video → 4D call, in order: reading the video (decoding a file, fitting the frames to the preset,
#: choosing them), then an image's stages, with ``decoder`` and ``input_view`` run once per output time
#: (``progress`` is told their counts).
VIDEO_STAGES = ("read_video",) + IMAGE_STAGES


# -- the input video -------------------------------------------------------------------------------------------
def load_input_video(path: str | Path, preset: Preset, fit: str = "crop", max_frames: int | None = None
                     ) -> tuple[Tensor, VideoInfo]:
    """A video file or a folder of frames at the preset's size: ``(N, 3, H, W)`` and what was done
    (:func:`lyra3d.io.video.load_video`: one-line errors for a missing, empty, corrupt or unreadable file, zero
    frames, a single frame, frames over :data:`lyra3d.io.video.MAX_VIDEO_SIDE` px or more than
    :data:`lyra3d.io.video.MAX_VIDEO_FRAMES` frames). ``max_frames``: read only the first N."""
    from lyra3d.io.video import load_video

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


# -- video → 4D ----------------------------------------------------------------------------------------------
class VideoTo4DPipeline(TeacherPipeline):
    """Video → 4D Gaussians: the video teacher's multi-trajectory latents (one 3D cache per frame), then the
    time-conditioned decoder once per output time. Loading, saving and settings:
    :class:`~lyra3d.pipelines.base.TeacherPipeline` (the decoder is the weights folder's ``decoder4d/``)."""

    decoder_part = "decoder4d"
    decoder_name = "4D decoder"
    decoder_training = "lyra3d train decoder --dynamic 1"
    STAGES = VIDEO_STAGES

    @classmethod
    def _decoder_class(cls) -> type:
        from lyra3d.models.decoder4d import GaussianDecoder4D

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
                 progress: Progress | None = None, *, times: Sequence[float] | Tensor | None = None,
                 cameras: Cameras | None = None, fps: float | None = None, info: VideoInfo | None = None,
                 max_frames: int | None = None, **overrides) -> Scene4D:
        """Generate the dynamic scene of one video.

        Args:
            video: a video file or a folder of frames, or a tensor ``(N, 3, H, W)`` in [0, 1] (another size is
                cropped/padded and resampled to the preset's).
            seed: the sampler's seed (default ``config.seed``); the same seed gives the same scene.
            progress: a :class:`~lyra3d.core.progress.Progress`, told each stage of :meth:`stages` as it
                ends, in that order; ``decoder`` and ``input_view`` also count the output times on the way.
            times: output times, seconds of the video within the frames read (default: ``output_times``
                spread evenly, else one per distinct frame read).
            cameras: the input cameras at the preset's size: one (a still camera) or one per video frame
                (``N``); default: the still identity camera with the preset's field of view.
            fps: frames per second of a tensor (default 24); a file's own rate otherwise.
            info: what was done to an already prepared video tensor (kept in the scene's report).
            max_frames: read only the first N frames.
            **overrides: any :class:`~lyra3d.pipelines.GenerateConfig` field for this call
                (``num_frames``: frames read, ``output_times``, ``trajectories``, ``steps``, ...).
        """
        from lyra3d.core.metrics import psnr
        from lyra3d.core.render import rasterize
        from lyra3d.pipelines.teacher import video_teacher

        cfg = self.check(self._call_config(seed, overrides))
        clock = StageClock(self.device, progress)
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
                            progress=clock)
        scenes, before = [], 0
        for k, t in enumerate(out_times):
            g = self.decoder.decode(gen.latents, gen.cameras, model_frame_times,
                                    target_time=float(self._model_times(t, frame_times)),
                                    input_latents=gen.input_latents, input_cameras=gen.input_cameras)
            before = len(g)
            g = g.prune_by_opacity(keep_fraction=cfg.keep_fraction) if cfg.keep_fraction < 1 else g
            g.times = torch.full((len(g),), float(t), device=g.device)
            scenes.append(g)
            clock("decoder", k + 1, len(out_times))  # the last one ends the stage
        cams_dev, video_dev = cams.to(self.device), gen.video
        renders, scores = [], []
        for k, g in enumerate(scenes):
            j = _nearest(frame_times, float(out_times[k]))
            render = rasterize(g, cams_dev[j], backend=cfg.backend).rgb[0].clamp(0, 1)
            scores.append(float(psnr(render, video_dev[j].to(render))))
            renders.append(render.cpu())
            clock("input_view", k + 1, len(out_times))
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
                       preset=p, depth=gen.meta.get("depth"))
