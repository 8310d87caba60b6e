"""Video → 4D, the data and the teacher (DESIGN §1 "Dynamic", issue 9).

* **Dynamic clips**: :func:`make_clip` renders a monocular input video of a procedural world with moving
  objects (:func:`lyra3d.worlds.make_world` with ``dynamic=True``): 17 frames at 320×176 by default, a
  static or slowly moving camera, frame times spread over :data:`lyra3d.worlds.DYNAMIC_HORIZON`. The clip
  keeps its world so that the ground truth at any (time, camera) can be ray cast, for evaluation only
  (:meth:`DynamicClip.truth`, :func:`moving_mask`). :func:`reverse_clip` / :func:`with_reversed` give the
  time-reversed copy that doubles the time coverage of 4D training data.
* **The video teacher**: :func:`video_teacher` is the teacher with one 3D cache per input frame
  (:func:`lyra3d.cache3d.per_frame_trajectory_conditioning`): each input frame is lifted with its own
  estimated depth and warped into the camera at the same index of every trajectory, so frame ``t`` of each
  of the six trajectories shows the scene at the time of input frame ``t``. The first-frame latent is input
  frame 0 and the shipped video model samples, exactly as for one image.
* **Measured**: :func:`evaluate_video_teacher` compares the video teacher's decoded frames with the
  ray-cast truth at the trajectory cameras at the right times, overall and on the pixels that move, against
  the static teacher run on frame 0 alone (which cannot move anything). ``python -m lyra3d.dynamic``.
"""

from __future__ import annotations

import time as _time
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from lyra3d import worlds
from lyra3d.cache3d import per_frame_trajectory_conditioning, scene_center_depth
from lyra3d.cameras import LYRA_MOVEMENT_RANGES, LYRA_TRAJECTORIES, Cameras, default_camera, trajectory
from lyra3d.errors import InputError
from lyra3d.metrics import psnr, ssim
from lyra3d.teacher import Teacher, TeacherSample
from lyra3d.worlds import DYNAMIC_HORIZON, World, WorldRender

__all__ = ["CLIP_FRAMES", "CAMERA_MOTIONS", "SLOW_MOVEMENT", "DynamicClip", "VideoTeacherSample", "clip_times",
           "make_clip", "reverse_clip", "with_reversed", "moving_mask", "moving_object_mask", "pooled_psnr",
           "dynamic_eval_seeds", "video_teacher", "evaluate_video_teacher"]

#: Frames of a clip by default (``1 + 4·4``: what the tokenizer compresses to 5 latent frames).
CLIP_FRAMES = 17
#: Camera paths of a clip: a still camera, or a slow move along one of Lyra's six (whose paths the
#: moving objects of :func:`~lyra3d.worlds.make_world` keep clear of).
CAMERA_MOTIONS = ("static",) + LYRA_TRAJECTORIES
#: Movement of a "slowly moving" camera over the whole clip, as a fraction of the scene's centre depth.
SLOW_MOVEMENT = 0.05


# -- dynamic clips --------------------------------------------------------------------------------------------
@dataclass
class DynamicClip:
    """A monocular video of a dynamic procedural world.

    Attributes:
        frames: ``(T, 3, H, W)`` the input video in [0, 1].
        cameras: the ``T`` cameras that filmed it.
        times: ``(T,)`` seconds of each frame (increasing, or decreasing for a reversed clip).
        world: the scene. Its truth is for evaluation only: nothing that trains or runs a model reads it.
        seed: the world's seed.
        camera_motion: the camera path's name (:data:`CAMERA_MOTIONS`).
        reversed: whether this is the time-reversed copy of a clip.
    """

    frames: Tensor
    cameras: Cameras
    times: Tensor
    world: World
    seed: int
    camera_motion: str = "static"
    reversed: bool = False

    def __len__(self) -> int:
        return self.frames.shape[0]

    def truth(self, cameras: Cameras, times: float | Tensor) -> WorldRender:
        """Ray-cast ground truth of the world at ``cameras`` and ``times`` (a number, or one per camera).
        Evaluation only."""
        with torch.no_grad():
            return worlds.render(self.world, cameras, times)


def clip_times(num_frames: int = CLIP_FRAMES, duration: float = DYNAMIC_HORIZON, start: float = 0.0) -> Tensor:
    """``(T,)`` frame times spread evenly over ``[start, start + duration]`` seconds (within the horizon for
    which :func:`~lyra3d.worlds.make_world` keeps moving objects clear of the camera paths)."""
    if num_frames < 2:
        raise InputError(f"a clip needs at least 2 frames, got {num_frames}")
    if not (duration > 0 and start >= 0 and start + duration <= DYNAMIC_HORIZON + 1e-9):
        raise InputError(f"clip times must lie in [0, {DYNAMIC_HORIZON}] s; got start {start}, duration {duration}")
    return torch.linspace(start, start + duration, num_frames)


def make_clip(seed: int, num_frames: int = CLIP_FRAMES, width: int = 320, height: int = 176,
              camera_motion: str = "static", movement: float = SLOW_MOVEMENT, duration: float = DYNAMIC_HORIZON,
              dynamic: bool = True, device: str | torch.device = "cpu") -> DynamicClip:
    """The input video of world ``seed`` (dynamic by default) filmed from the default camera.

    Args:
        camera_motion: ``"static"``, or one of Lyra's six trajectory names for a slow camera move along it.
        movement: how far the camera moves over the clip (fraction of the centre depth); at most the top of
            that trajectory's range (the paths moving objects keep clear of).
        duration: seconds the clip spans (frame times from 0, evenly spaced).
        dynamic: ``False`` films the static world of the same seed (same layout, nothing moves).
        device: where to ray-cast the frames (the clip is returned on the CPU).
    """
    if camera_motion not in CAMERA_MOTIONS:
        raise InputError(f"unknown camera motion {camera_motion!r}; choose from {', '.join(CAMERA_MOTIONS)}")
    if camera_motion != "static" and not 0 <= movement <= LYRA_MOVEMENT_RANGES[camera_motion][1]:
        raise InputError(f"movement must be in [0, {LYRA_MOVEMENT_RANGES[camera_motion][1]}] for a "
                         f"{camera_motion} camera, got {movement}")
    world = worlds.make_world(seed, dynamic=dynamic)
    times = clip_times(num_frames, duration)
    cams = trajectory(camera_motion, default_camera(width, height), num_frames, worlds.center_depth(world),
                      movement=movement)
    with torch.no_grad():
        frames = worlds.render(world, cams.to(device), times.to(device)).rgb.cpu()
    return DynamicClip(frames, cams, times, world, int(seed), camera_motion)


def reverse_clip(clip: DynamicClip) -> DynamicClip:
    """The clip played backwards: frame ``i`` is frame ``T − 1 − i``, with its camera and its time (times
    stay absolute, so a reversed clip's times decrease). Reversing twice gives the clip back."""
    idx = torch.arange(len(clip) - 1, -1, -1)
    return replace(clip, frames=clip.frames[idx], cameras=clip.cameras[idx], times=clip.times[idx],
                   reversed=not clip.reversed)


def with_reversed(clip: DynamicClip) -> list[DynamicClip]:
    """``[clip, reversed copy]``: each starts at one end of the time span, where the video teacher is best
    (its first frame is the input's), so together they cover both ends (DESIGN §4 "Dynamic")."""
    return [clip, reverse_clip(clip)]


def moving_object_mask(world: World, surface: Tensor) -> Tensor:
    """``bool`` mask of the pixels of a render's ``surface (B, 1, H, W)`` ids that show a moving object."""
    first = len(world.planes)
    ids = [first + i for i, o in enumerate(world.objects) if o.motion.moves]
    if not ids:
        return torch.zeros_like(surface, dtype=torch.bool)
    return torch.isin(surface, torch.tensor(ids, device=surface.device))


def moving_mask(world: World, cameras: Cameras, times: float | Tensor, reference_time: float = 0.0,
                tolerance: float = 2 / 255, truth: WorldRender | None = None,
                reference: WorldRender | None = None) -> Tensor:
    """``(B, 1, H, W) bool``: the pixels whose truth at ``times`` differs from the truth at ``reference_time``
    seen by the same camera: another surface (an object came or went) or a colour change above
    ``tolerance`` (a textured object turned or slid, a shadow moved). Empty for a static world.

    ``truth`` / ``reference``: renders already made at (cameras, times) / (cameras, reference_time).
    """
    with torch.no_grad():
        now = truth if truth is not None else worlds.render(world, cameras, times)
        ref = reference if reference is not None else worlds.render(world, cameras, reference_time)
    changed = (now.rgb - ref.rgb).abs().amax(1, keepdim=True) > tolerance
    return changed | (now.surface != ref.surface)


def dynamic_eval_seeds(n: int, offset: int = 0, min_fraction: float = 0.01, width: int = 160,
                       height: int = 88) -> list[int]:
    """The first ``n`` held-out seeds (from :data:`~lyra3d.worlds.EVAL_SEED_START` + ``offset``) whose dynamic
    world visibly moves in the default view over the horizon (at least ``min_fraction`` of the pixels change
    between time 0 and the end)."""
    out, seed = [], worlds.EVAL_SEED_START + offset
    cam = default_camera(width, height)
    while len(out) < n:
        world = worlds.make_world(seed, dynamic=True)
        if world.dynamic and float(moving_mask(world, cam, DYNAMIC_HORIZON).float().mean()) >= min_fraction:
            out.append(seed)
        seed += 1
    return out


# -- the video teacher ---------------------------------------------------------------------------------------
@dataclass
class VideoTeacherSample(TeacherSample):
    """A :class:`~lyra3d.teacher.TeacherSample` of a video: frame ``t`` of every trajectory shows the time of
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
                  progress=None) -> VideoTeacherSample:
    """The teacher re-rendering a video along its trajectories, one 3D cache per frame.

    Per input frame: the teacher's depth estimate (far sky dropped as the teacher does); the frames'
    caches warped frame by frame into the trajectories (frame ``t`` of each trajectory is its camera ``t``,
    trajectories starting at the first input camera and scaled by the first frame's centre depth); the
    tokenizer encodes the warped rgb and masks, and the input video itself (``input_latents``); the video
    model samples with input frame 0 as the first latent. The teacher's settings (steps, guidance, movement
    factor, trajectories) apply; the trajectories have as many frames as the video (``1 + k·m``), whatever
    ``teacher.config.num_frames`` says.

    Args:
        frames: ``(T, 3, H, W)`` in [0, 1] (e.g. :func:`lyra3d.inputs.load_video`).
        cameras: one camera per frame, or one for a still camera.
        depth: ``(T, 1, H, W)`` z-depth replacing the estimator's.
        times: ``(T,)`` seconds of the frames (recorded in the result; default the frame indices).
        keep_cache: keep the warped cache ``(V, T, ·, H, W)`` (evaluation).
        encode_input: encode the input video (``input_latents``; ``None`` without): only a 4D decoder with
            ``input_view`` and SDG read it.
        progress: ``progress(stage)`` after each stage, if given.
    """
    cfg, dev = teacher.config, teacher.device
    say = progress or (lambda stage: None)
    cameras = _check_video(teacher, frames, cameras)
    frames, cameras = frames.to(dev), cameras.to(dev)
    t = frames.shape[0]
    if depth is None:
        step = 1 if dev.type == "cpu" else 8  # on a CPU one frame at a time is fastest (measured)
        depth = torch.cat([teacher.depth(frames[i:i + step], cameras.intrinsics[i:i + step]).depth
                           for i in range(0, t, step)])
    elif depth.shape != (t, 1, *frames.shape[-2:]):
        raise InputError(f"depth must be (T, 1, H, W) = {(t, 1, *frames.shape[-2:])}, got {tuple(depth.shape)}")
    say("depth")
    depth = torch.stack([teacher.clean_depth(d) for d in depth])
    center = scene_center_depth(depth[0])
    cond = per_frame_trajectory_conditioning(frames, depth, cameras, cfg.movement_factor, center_depth=center,
                                             names=cfg.trajectories)
    say("cache")
    input_latents = teacher.encode(frames[None])[0] if encode_input else None  # in the "encode" stage
    names, latents, cams, rgb, mask = teacher.generate(cond, frames[0], seed, say)  # as for one image
    times = torch.arange(t, dtype=torch.float32) if times is None else torch.as_tensor(times, dtype=torch.float32)
    meta = {"seed": seed, "steps": cfg.steps, "guidance": cfg.guidance, "movement_factor": cfg.movement_factor,
            "per_frame_cache": True, "times": [round(float(x), 6) for x in times]}
    return VideoTeacherSample(names, latents, cams, frames[0], depth[0], center, rgb if keep_cache else None,
                              mask if keep_cache else None, meta, video=frames, video_depth=depth,
                              input_cameras=cameras, times=times, input_latents=input_latents)


# -- measured --------------------------------------------------------------------------------------------------
def pooled_psnr(pred: Tensor, target: Tensor, mask: Tensor) -> float:
    """One PSNR over the pixels of ``mask (..., 1, H, W)`` of all frames ``(..., 3, H, W)`` pooled (NaN when
    the mask is empty): frames where little or nothing moves weigh by their moving pixels."""
    m = mask.expand_as(pred).float()
    if float(m.sum()) == 0:
        return float("nan")
    mse = (((pred.float() - target.float()) ** 2) * m).sum() / m.sum()
    return float(-10 * torch.log10(mse.clamp_min(1e-12)))


def _psnr(a: Tensor, b: Tensor, mask: Tensor | None = None) -> float:
    """Mean of the per-frame PSNRs; with a mask, :func:`pooled_psnr`."""
    return float(psnr(a, b).mean()) if mask is None else pooled_psnr(a, b, mask)


@dataclass
class _Scored:
    gen: VideoTeacherSample
    frames: Tensor  # (V, T, 3, H, W) decoded
    truth: Tensor  # (V, T, 3, H, W) at each frame's camera and time
    reference: Tensor  # (V, T, 3, H, W) at each frame's camera at time 0
    moving: Tensor  # (V, T, 1, H, W) bool
    objects: Tensor  # (V, T, 1, H, W) bool
    seconds: float


def _run_and_truth(teacher: Teacher, clip: DynamicClip, seed: int) -> _Scored:
    t0 = _time.time()
    gen = video_teacher(teacher, clip.frames, clip.cameras, seed=seed, times=clip.times, encode_input=False)
    seconds = _time.time() - t0
    frames = teacher.decode(gen.latents)
    v, t, _, h, w = frames.shape
    times = clip.times.repeat(v)
    truth, ref = clip.truth(gen.cameras, times), clip.truth(gen.cameras, 0.0)
    moving = moving_mask(clip.world, gen.cameras, times, truth=truth, reference=ref).reshape(v, t, 1, h, w)
    objects = moving_object_mask(clip.world, truth.surface).reshape(v, t, 1, h, w)
    return _Scored(gen, frames, truth.rgb.reshape(frames.shape), ref.rgb.reshape(frames.shape), moving, objects,
                   seconds)


def _scores(pred: Tensor, s: _Scored, frames: slice, prefix: str) -> dict:
    gt, mv, ob = s.truth[:, frames], s.moving[:, frames], s.objects[:, frames]
    p = pred[:, frames]
    return {f"{prefix}psnr": _psnr(p, gt), f"{prefix}ssim": float(ssim(p.flatten(0, 1), gt.flatten(0, 1)).mean()),
            f"{prefix}moving_psnr": _psnr(p, gt, mv), f"{prefix}object_psnr": _psnr(p, gt, ob)}


@torch.no_grad()
def evaluate_video_teacher(teacher: Teacher, seeds: list[int], num_frames: int = CLIP_FRAMES, width: int = 320,
                           height: int = 176, camera_motion: str = "static", baseline: bool = True,
                           reverse: bool = False) -> list[dict]:
    """Per held-out dynamic world (:func:`make_clip`): the video teacher's decoded frames vs the ray-cast truth
    at every trajectory camera at the time of its frame index, over all pixels (``psnr``, ``ssim``), the
    moving pixels (``moving_psnr``: the truth differs from time 0, :func:`moving_mask`) and the pixels showing
    a moving object (``object_psnr``); ``late_*`` the same on the second half of the clip (frames ``T//2..``,
    where things have moved most); the first frame vs input frame 0.

    ``baseline``: the same numbers (``static_*``) for the static teacher run on input frame 0 alone with the
    same trajectories, and its PSNR against the time-0 truth (``static_psnr_vs_t0``: what it does show).
    ``reverse``: the video teacher on the time-reversed clip too; ``reversed_late_*`` scores its frames
    ``0..T//2``, which show the same times as the forward clip's ``late_*`` frames (the end of the clip),
    now next to its first frame.

    Unmasked PSNRs are means over frames; masked ones pool the masked pixels of all frames (NaN where empty).
    """
    rows = []
    for seed in seeds:
        clip = make_clip(seed, num_frames, width, height, camera_motion)
        fwd = _run_and_truth(teacher, clip, seed)
        v, t = fwd.frames.shape[:2]
        all_, late = slice(None), slice(t // 2, None)
        row = {"seed": seed, **_scores(fwd.frames, fwd, all_, ""), **_scores(fwd.frames, fwd, late, "late_"),
               "first_frame_psnr": _psnr(fwd.frames[:, 0], clip.frames[:1].expand(v, -1, -1, -1)),
               "moving_fraction": float(fwd.moving.float().mean()),
               "object_fraction": float(fwd.objects.float().mean()),
               "video_teacher_s": fwd.seconds}
        if baseline:
            old = teacher.config.num_frames
            teacher.config.num_frames = t
            try:
                t0 = _time.time()
                sgen = teacher(clip.frames[0], clip.cameras[0], seed=seed)
                static_s = _time.time() - t0
            finally:
                teacher.config.num_frames = old
            if not torch.allclose(sgen.cameras.world_to_camera, fwd.gen.cameras.world_to_camera, atol=1e-3):
                raise RuntimeError("the static and the video teacher chose different trajectories")
            sframes = teacher.decode(sgen.latents)
            row.update(_scores(sframes, fwd, all_, "static_"))
            row.update(_scores(sframes, fwd, late, "static_late_"))
            row["static_psnr_vs_t0"] = _psnr(sframes, fwd.reference)
            row["static_teacher_s"] = static_s
        if reverse:
            rev = _run_and_truth(teacher, reverse_clip(clip), seed)
            row.update(_scores(rev.frames, rev, slice(0, t - t // 2), "reversed_late_"))
            row["reversed_psnr"] = _psnr(rev.frames, rev.truth)
        for i, n in enumerate(fwd.gen.names):
            row[f"psnr_{n}"] = _psnr(fwd.frames[i], fwd.truth[i])
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    """``python -m lyra3d.dynamic --worlds N [--json FILE]``: the video teacher vs the static teacher on held-out
    dynamic worlds; prints a table."""
    import argparse

    from lyra3d.evaluation import summarize, table, write_results

    p = argparse.ArgumentParser(prog="python -m lyra3d.dynamic", description=main.__doc__)
    p.add_argument("--worlds", type=int, default=4, help="held-out dynamic worlds (seeds from 1,000,000)")
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default: the teacher's)")
    p.add_argument("--guidance", type=float, default=None)
    p.add_argument("--trajectories", default="", help="comma-separated subset of the six (default all)")
    p.add_argument("--frames", type=int, default=CLIP_FRAMES)
    p.add_argument("--camera", default="static", choices=CAMERA_MOTIONS, help="camera motion of the input clip")
    p.add_argument("--no-baseline", action="store_true", help="skip the static teacher")
    p.add_argument("--reversed", action="store_true", help="also run the video teacher on the reversed clips")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None, help="also write the rows and summary here")
    a = p.parse_args(argv)
    teacher = Teacher.from_pretrained(device=a.device)
    if a.steps is not None:
        teacher.config.steps = a.steps
    if a.guidance is not None:
        teacher.config.guidance = a.guidance
    if a.trajectories:
        teacher.config.trajectories = tuple(a.trajectories.split(","))
    seeds = dynamic_eval_seeds(a.worlds)
    rows = evaluate_video_teacher(teacher, seeds, a.frames, camera_motion=a.camera, baseline=not a.no_baseline,
                                  reverse=a.reversed)
    summary = summarize(rows)
    print(table(summary, f"video teacher on {len(seeds)} held-out dynamic worlds (seeds {seeds})"))
    if a.json:
        write_results(a.json, vars(a), seeds, summary, rows)


if __name__ == "__main__":
    main()
