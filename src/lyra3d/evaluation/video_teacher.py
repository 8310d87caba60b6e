"""The video teacher on held-out dynamic clips (docs/design.md §1 "Dynamic").

:func:`evaluate_video_teacher` compares the video teacher's decoded frames
(:func:`lyra3d.pipelines.teacher.video_teacher`) with the ray-cast truth at the trajectory cameras at the
right times, overall and on the pixels that move, against the static teacher run on frame 0 alone (which
cannot move anything)."""

from __future__ import annotations

import time as _time
from dataclasses import dataclass

import torch
from torch import Tensor

from lyra3d.core.metrics import mean_psnr, pooled_psnr, ssim
from lyra3d.data.clips import CLIP_FRAMES, DynamicClip, make_clip, moving_mask, moving_object_mask, reverse_clip
from lyra3d.pipelines.teacher import Teacher, VideoTeacherSample, video_teacher


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
    return {f"{prefix}psnr": mean_psnr(p, gt), f"{prefix}ssim": float(ssim(p.flatten(0, 1), gt.flatten(0, 1)).mean()),
            f"{prefix}moving_psnr": pooled_psnr(p, gt, mv), f"{prefix}object_psnr": pooled_psnr(p, gt, ob)}


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
               "first_frame_psnr": mean_psnr(fwd.frames[:, 0], clip.frames[:1].expand(v, -1, -1, -1)),
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
            row["static_psnr_vs_t0"] = mean_psnr(sframes, fwd.reference)
            row["static_teacher_s"] = static_s
        if reverse:
            rev = _run_and_truth(teacher, reverse_clip(clip), seed)
            row.update(_scores(rev.frames, rev, slice(0, t - t // 2), "reversed_late_"))
            row["reversed_psnr"] = mean_psnr(rev.frames, rev.truth)
        for i, n in enumerate(fwd.gen.names):
            row[f"psnr_{n}"] = mean_psnr(fwd.frames[i], fwd.truth[i])
        rows.append(row)
    return rows
