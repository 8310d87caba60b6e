"""What a pipeline returns and writes: :class:`Scene` (image/text → 3D) and :class:`Scene4D` (video → 4D),
and their output folders, written whole or not at all (:func:`save_scene`, :func:`save_scene4d`):
Gaussians as PLY, a fly-through video, the input view, the cameras and a report."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from lyra3d.core.cameras import Cameras
from lyra3d.core.device import peak_memory_mb
from lyra3d.core.gaussians import Gaussians
from lyra3d.core.progress import Progress, no_progress
from lyra3d.core.trajectories import trajectory
from lyra3d.errors import InputError
from lyra3d.io.images import ImageInfo
from lyra3d.io.video import VideoInfo
from lyra3d.pipelines.config import GenerateConfig, Preset


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
        input_depth: the input's z-depth ``(1, H, W)`` as the teacher used it (0 = sky), when known.
        keep_input: what ``keep_input`` did (:func:`lyra3d.pipelines.keep_input.keep_input`), ``None`` when off.
        depth: what gave the input's depth and what was done to it (``DepthResult.record``: kind metric/relative/
            given, model, folder, conversion), ``None`` when not known.
        reconstruction: which reconstructor made the Gaussians (``{"reconstructor": "decoder"}``, or
            ``"optimize"`` with its steps, seconds, strategy, counts: :class:`lyra3d.pipelines.optimize.Optimized`).
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
    input_depth: Tensor | None = None
    keep_input: dict | None = None
    depth: dict | None = None
    reconstruction: dict | None = None

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
            **({"keep_input": self.keep_input} if self.keep_input is not None else {}),
            **({"depth": self.depth} if self.depth is not None else {}),
            **({"reconstruct": self.reconstruction} if self.reconstruction is not None else {}),
        })


def json_ready(record: dict) -> dict:
    """JSON types only (tuples become lists), as the record reads back from a file."""
    return json.loads(json.dumps(record))


#: Files of a generate output folder (besides ``teacher/<trajectory>.mp4`` with ``keep_frames``).
OUTPUT_FILES = ("scene.ply", "flythrough.mp4", "input_view.png", "cameras.json", "report.json")


def save_scene(scene: Scene, out: str | Path, force: bool = False, flythrough_frames: int = 48,
               flythrough_path: str = "flythrough", fps: float = 24.0, report: dict | None = None,
               progress: Progress | None = None, started: float | None = None) -> dict:
    """Write a generate output folder, whole or not at all (:func:`lyra3d.core.files.staged_dir`):
    ``scene.ply`` (standard 3DGS PLY), ``flythrough.mp4`` (the Gaussians rendered along a smooth camera path
    from the input camera), ``input_view.png`` (the input image as the models saw it), ``cameras.json``
    (:meth:`Scene.cameras_record`), ``report.json`` (:meth:`Scene.report` + ``report``, timings of the
    fly-through and the writing, file sizes) and, when the scene kept them, ``teacher/<trajectory>.mp4``.

    An existing ``out`` is refused unless ``force``. ``progress`` (:class:`~lyra3d.core.progress.Progress`) is
    told the fly-through's frames as they render (stage ``"flythrough"``), then each file written (``"write"``).
    ``started`` (a ``time.perf_counter()`` value) adds ``end_to_end`` seconds from then to the timings.
    Returns the report."""
    from lyra3d.core.files import staged_dir
    from lyra3d.io.export import export_gaussians

    check_flythrough(flythrough_path, flythrough_frames)
    say = progress or no_progress
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
                  say, "flythrough")
        timings["flythrough"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        n = len(files)  # written in "write": all but flythrough.mp4, and report.json last
        say("write", 0, n)
        export_gaussians(scene.gaussians.detach().to("cpu"), tmp / "scene.ply")
        say("write", 1, n)
        write_png(scene.input_image, tmp / "input_view.png")
        say("write", 2, n)
        (tmp / "cameras.json").write_text(json.dumps(scene.cameras_record(), indent=1) + "\n")
        say("write", 3, n)
        write_teacher_videos(scene, tmp, fps, say, 3, n)
        timings["write"] = time.perf_counter() - t0
        record["flythrough"] = {"path": flythrough_path, "frames": flythrough_frames, "fps": fps}
        record = finish_report(tmp, record, timings, files, started)
        say("write", n, n)
    return record


# -- pieces of an output folder (shared with lyra3d.pipelines.video_to_4d) --------------------------------------------------
def check_flythrough(path: str, frames: int) -> None:
    """A one-line error for an unknown fly-through camera path or fewer than 2 frames."""
    from lyra3d.core import flythrough as fly

    if path not in fly.PATHS:
        raise InputError(f"unknown fly-through path {path!r}; choose from {', '.join(fly.PATHS)}")
    if not isinstance(frames, int) or frames < 2:
        raise InputError(f"a fly-through needs at least 2 frames, got {frames}")


def flythrough_cameras(scene: Scene, path: str, frames: int) -> Cameras:
    """The ``frames`` cameras of a fly-through along ``path`` from the scene's input camera, at its size
    (:func:`lyra3d.core.flythrough.camera_path`; the ``"flythrough"`` path is seeded by the scene's seed)."""
    from lyra3d.core import flythrough as fly

    p = scene.preset or scene.config.resolution
    config = fly.FlythroughConfig(path=path, num_frames=frames, width=p.width, height=p.height,
                                  fov_y_degrees=p.fov_y_degrees, backend=scene.config.backend, seed=scene.seed)
    return fly.camera_path(scene.input_camera.to("cpu"), scene.center_depth, config)


def film_path(scenes: Sequence[Gaussians], which: Sequence[int], cameras: Cameras, out: Path, fps: float,
              backend: str = "auto", progress: Progress | None = None, stage: str = "flythrough") -> Path:
    """Render frame ``i`` of a video from ``scenes[which[i]]`` at ``cameras[i]`` and write it to ``out``: one
    scene throughout (a fly-through) or a scene per time (the time runs while the camera moves).
    ``progress(stage, frames done, len(cameras))`` as the frames render."""
    from lyra3d.core import flythrough as fly
    from lyra3d.io.video import write_video

    if len(which) != len(cameras):
        raise InputError(f"{len(which)} scene indices for {len(cameras)} cameras")
    say = progress or no_progress
    say(stage, 0, len(cameras))
    parts, i = [], 0
    while i < len(which):
        j = i
        while j < len(which) and which[j] == which[i]:
            j += 1
        g = scenes[which[i]]
        parts.append(fly.render_frames(g, cameras[i:j].to(g.device), backend=backend,
                                       progress=lambda _, done, __, before=i: say(stage, before + done, len(cameras))))
        i = j
    return write_video(torch.cat(parts), out, fps=fps)


def write_png(image: Tensor, path: Path) -> None:
    """``image (3, H, W)`` in [0, 1] as an 8-bit PNG."""
    import imageio.v3 as iio

    from lyra3d.io.video import to_uint8

    iio.imwrite(path, to_uint8(image[None])[0])


def write_teacher_videos(scene, tmp: Path, fps: float, progress: Progress, done: int, total: int) -> None:
    """``teacher/<trajectory>.mp4`` from ``scene.frames (V, T, 3, H, W)``, when the scene kept them; each
    video written is one more file of the ``"write"`` stage (``done`` before them, of ``total``)."""
    from lyra3d.io.video import write_video

    if scene.frames is None:
        return
    (tmp / "teacher").mkdir()
    for i, name in enumerate(scene.trajectories):
        write_video(scene.frames[i], tmp / "teacher" / f"{name}.mp4", fps=fps)
        progress("write", done + i + 1, total)


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


#: Frame rate of a video given as a tensor without ``fps`` (and of a file that does not say).
DEFAULT_FPS = 24.0
#: The bullet-time camera swings from −this to +this of a half turn about the scene centre (±18°).
BULLET_TIME_SWING = 0.1
#: Columns of ``input_view.png``: the input at up to this many output times over the render there.
STRIP_TIMES = 5


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
        depth: what gave the frames' depth (:attr:`Scene.depth`; the record of the first frames), or ``None``.
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
    depth: dict | None = None

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
                     preset=self.preset, depth=self.depth)

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


# -- output folder -------------------------------------------------------------------------------------------
def bullet_time_cameras(start: Cameras, center_depth: float, frames: int, swing: float = BULLET_TIME_SWING
                        ) -> Cameras:
    """``frames`` cameras swinging about the scene centre (``center_depth`` in front of ``start``) from
    ``−swing`` to ``+swing`` of a half turn (:func:`lyra3d.core.trajectories.trajectory` ``"orbit"``); the middle one of
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
                 progress: Progress | None = None, started: float | None = None) -> dict:
    """Write a video → 4D output folder, whole or not at all (:func:`lyra3d.core.files.staged_dir`):

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

    Arguments as :func:`lyra3d.pipelines.save_scene` (``progress`` is told the frames of both videos as they
    render, stages ``"flythrough"`` and ``"bullet_time"``, then each file written, ``"write"``). Returns the
    report."""
    from lyra3d.core.files import staged_dir
    from lyra3d.io.export import export_gaussians

    check_flythrough(flythrough_path, flythrough_frames)
    say = progress or no_progress
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
        film_path(scene.gaussians, which, cams, tmp / "flythrough.mp4", fps, backend, say, "flythrough")
        timings["flythrough"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        cams = bullet_time_cameras(start.input_camera.to("cpu"), scene.center_depth, flythrough_frames)
        film_path(scene.gaussians, [(k - 1) // 2] * len(cams), cams, tmp / "bullet_time.mp4", fps, backend, say,
                  "bullet_time")
        timings["bullet_time"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        n = len(files) - 1  # written in "write": all but the two videos, and report.json last
        say("write", 0, n)
        (tmp / "gaussians").mkdir()
        for i, (g, name) in enumerate(zip(scene.gaussians, plys)):
            export_gaussians(g.detach().to("cpu"), tmp / name)
            say("write", i + 1, n)
        write_png(_strip(scene), tmp / "input_view.png")
        (tmp / "cameras.json").write_text(json.dumps(scene.cameras_record(), indent=1) + "\n")
        say("write", k + 2, n)
        write_teacher_videos(scene, tmp, fps, say, k + 2, n)
        timings["write"] = time.perf_counter() - t0
        record["flythrough"] = {"path": flythrough_path, "frames": flythrough_frames, "fps": fps,
                                "time_index_per_frame": which}
        record["bullet_time"] = {"frames": flythrough_frames, "fps": fps, "swing_half_turns": BULLET_TIME_SWING,
                                 "time_s": round(float(scene.times[(k - 1) // 2]), 6)}
        record = finish_report(tmp, record, timings, files, started)
        say("write", n, n)
    return record


def _describe_choice(idx: Sequence[int], available: int) -> str:
    n = len(idx)
    if list(idx) == list(range(available)):
        return f"all {n} frames"
    if n > available:
        return (f"all {available} frames stretched to {n} by repeating frames (each about {n / available:.2g} "
                "times), the clip length the 4D decoder reads")
    return f"{n} of {available} frames spread evenly over the video (one every {(available - 1) / (n - 1):.3g} frames)"
