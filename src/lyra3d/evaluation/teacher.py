"""The teacher on held-out worlds: its decoded frames vs the ray-cast truth (overall, per trajectory, on the
disoccluded pixels, the cache alone), and how well its frames reproject into each other with the true depth."""

from __future__ import annotations

import time

import torch
from torch import Tensor

from lyra3d.core.cache3d import unproject, warp
from lyra3d.core.cameras import Cameras, default_camera, look_at
from lyra3d.core.metrics import mean_psnr, ssim
from lyra3d.data import worlds
from lyra3d.errors import InputError
from lyra3d.pipelines.teacher import Teacher, TeacherSample


def reprojection_psnr(frames: Tensor, depth: Tensor, cameras: Cameras) -> float:
    """Consistency of consecutive frames ``(T, 3, H, W)`` with their cameras: frame ``i`` warped into
    camera ``i + 1`` with the true z-depth ``depth (T, 1, H, W)`` (0 = sky) vs frame ``i + 1``, PSNR over the
    co-visible pixels of all pairs."""
    cache = unproject(frames[:-1], depth[:-1], cameras[:-1])
    errs, counts = [], []
    for i in range(len(cameras) - 1):
        w = warp(cache, cameras[i + 1], source=i)
        m = w.mask.expand(-1, 3, -1, -1) > 0
        errs.append(((w.rgb - frames[i + 1:i + 2]) ** 2)[m].sum())
        counts.append(m.sum())
    mse = torch.stack(errs).sum() / torch.stack(counts).sum().clamp_min(1)
    return float(-10 * torch.log10(mse.clamp_min(1e-10)))


@torch.no_grad()
def evaluate_teacher(teacher: Teacher, seeds: list[int], width: int = 320, height: int = 176) -> list[dict]:
    """Per world: generated frames (decoded) vs truth along every trajectory, overall and on the pixels the
    cache leaves empty (disoccluded), against the cache-only baseline (warped input, holes black); the
    first frame vs the input; reprojection consistency of the generated frames (and of the true ones)."""
    rows = []
    cam = default_camera(width, height).to(teacher.device)
    for seed in seeds:
        world = worlds.make_world(seed)
        src = worlds.render(world, cam)
        t0 = time.time()
        gen = teacher(src.rgb[0], cam, seed=seed, keep_cache=True)
        seconds = time.time() - t0
        frames = teacher.decode(gen.latents)
        v, t = frames.shape[:2]
        truth = worlds.render(world, gen.cameras)
        gt = truth.rgb.reshape(frames.shape)
        # disoccluded: surfaces the cache does not reach (the sky is never in the cache, and counted apart)
        surface = truth.mask.reshape(v, t, 1, height, width) > 0
        hole = ((gen.cache_mask < 0.5) & surface).expand_as(gt)
        gt_depth = (truth.depth * truth.mask).reshape(v, t, 1, height, width)
        reproj = [reprojection_psnr(frames[i], gt_depth[i], gen.cameras[i * t:(i + 1) * t]) for i in range(v)]
        reproj_gt = [reprojection_psnr(gt[i], gt_depth[i], gen.cameras[i * t:(i + 1) * t]) for i in range(v)]
        rows.append({"seed": seed, "psnr": mean_psnr(frames, gt), "ssim": float(ssim(frames.flatten(0, 1), gt.flatten(0, 1)).mean()),
                     "cache_only_psnr": mean_psnr(gen.cache_rgb, gt),
                     "disoccluded_psnr": mean_psnr(frames, gt, hole), "disoccluded_cache_only_psnr": mean_psnr(gen.cache_rgb, gt, hole),
                     "disoccluded_fraction": float(hole.float().mean()),
                     "first_frame_psnr": mean_psnr(frames[:, 0], src.rgb.expand(v, -1, -1, -1)),
                     "reprojection_psnr": sum(reproj) / v, "reprojection_psnr_truth": sum(reproj_gt) / v,
                     "generate_s": seconds,
                     **{f"psnr_{n}": mean_psnr(frames[i], gt[i]) for i, n in enumerate(gen.names)}})
    return rows


def between_cameras(gen: TeacherSample, fractions=(0.5,), frames=(4, 8, 12, 16), min_offset: float = 0.05) -> Cameras:
    """Held-out cameras between the trajectories: for neighbouring trajectory pairs, eyes on the segment
    between their frame-``j`` centres, aimed at the scene centre (on the input's optical axis). Eyes within
    ``min_offset`` × the centre depth of the input camera are left out: mirror pairs (left/right, zoom-out/
    zoom-in) meet there, and the input view is not a held-out view."""
    v, t = len(gen.names), gen.num_frames
    centres = gen.cameras.centers.reshape(v, t, 3)
    c2w0 = gen.cameras[0].camera_to_world[0]
    target = c2w0[:3, 3] + c2w0[:3, 2] * gen.center_depth
    eyes = []
    for a in range(v):
        b = (a + 1) % v
        for j in frames:
            if j < t:
                for f in fractions:
                    eye = centres[a, j] * (1 - f) + centres[b, j] * f
                    if float((eye - c2w0[:3, 3]).norm()) >= min_offset * gen.center_depth:
                        eyes.append(eye)
    if not eyes:
        raise InputError("no held-out camera lies away from the input camera; use other trajectories")
    eyes = torch.stack(eyes)
    up = -c2w0[:3, 1]  # the input camera's up (OpenCV y points down)
    w2c = look_at(eyes, target.expand_as(eyes), up)
    k = gen.cameras.intrinsics[:1].expand(len(eyes), 4)
    return Cameras(w2c, k, gen.cameras.width, gen.cameras.height)
