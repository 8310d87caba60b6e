"""Quality, measured on held-out procedural worlds (seeds >= 1,000,000) against their ray-cast truth
(DESIGN §7): the teacher (issue "teacher") and the 3DGS decoder (issue "self-distillation").

Every function returns per-world rows (dicts of floats); :func:`summarize` averages them and
:func:`table` prints them.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import Tensor

from lyra3d import worlds
from lyra3d.cache3d import unproject, warp
from lyra3d.cameras import Cameras, default_camera, look_at
from lyra3d.decoder import GaussianDecoder
from lyra3d.metrics import depth_errors, psnr, ssim
from lyra3d.render import rasterize
from lyra3d.teacher import Teacher, TeacherSample


def _psnr(a: Tensor, b: Tensor, mask: Tensor | None = None) -> float:
    return float(psnr(a, b, mask).mean()) if mask is None or mask.sum() > 0 else float("nan")


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
        rows.append({"seed": seed, "psnr": _psnr(frames, gt), "ssim": float(ssim(frames.flatten(0, 1), gt.flatten(0, 1)).mean()),
                     "cache_only_psnr": _psnr(gen.cache_rgb, gt),
                     "disoccluded_psnr": _psnr(frames, gt, hole), "disoccluded_cache_only_psnr": _psnr(gen.cache_rgb, gt, hole),
                     "disoccluded_fraction": float(hole.float().mean()),
                     "first_frame_psnr": _psnr(frames[:, 0], src.rgb.expand(v, -1, -1, -1)),
                     "reprojection_psnr": sum(reproj) / v, "reprojection_psnr_truth": sum(reproj_gt) / v,
                     "generate_s": seconds,
                     **{f"psnr_{n}": _psnr(frames[i], gt[i]) for i, n in enumerate(gen.names)}})
    return rows


def between_cameras(gen: TeacherSample, fractions=(0.5,), frames=(4, 8, 12, 16)) -> Cameras:
    """Held-out cameras between the trajectories: for neighbouring trajectory pairs, eyes on the segment
    between their frame-``j`` centres, aimed at the scene centre (on the input's optical axis)."""
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
                    eyes.append(centres[a, j] * (1 - f) + centres[b, j] * f)
    eyes = torch.stack(eyes)
    up = -c2w0[:3, 1]  # the input camera's up (OpenCV y points down)
    w2c = look_at(eyes, target.expand_as(eyes), up)
    k = gen.cameras.intrinsics[:1].expand(len(eyes), 4)
    return Cameras(w2c, k, gen.cameras.width, gen.cameras.height)


@torch.no_grad()
def evaluate_decoder(teacher: Teacher, decoder: GaussianDecoder, seeds: list[int], views: list[int] | None = None,
                     keep_fraction: float = 0.5, backend: str = "auto", width: int = 320,
                     height: int = 176) -> list[dict]:
    """Per world: (a) student vs teacher frames at the trajectory cameras, (b) student at the input camera vs
    the input, (c) student vs truth at held-out cameras between the trajectories (PSNR, SSIM, depth AbsRel),
    Gaussian counts before and after opacity-rank pruning (``keep_fraction``), decoder seconds.
    ``views``: indices of the trajectories the decoder reads (ablation); default all."""
    rows = []
    dev = teacher.device
    cam = default_camera(width, height).to(dev)
    for seed in seeds:
        world = worlds.make_world(seed)
        src = worlds.render(world, cam)
        gen = teacher(src.rgb[0], cam, seed=seed)
        frames = teacher.decode(gen.latents)
        v, t = frames.shape[:2]
        use = list(range(v)) if views is None else list(views)
        cams_used = Cameras.cat([gen.cameras[i * t:(i + 1) * t] for i in use])
        t0 = time.time()
        g = decoder.decode(gen.latents[use], cams_used)
        dec_s = time.time() - t0
        n_before = len(g)
        g = g.prune_by_opacity(keep_fraction=keep_fraction)
        student = rasterize(g, gen.cameras, backend=backend).rgb.reshape(frames.shape)
        inp = rasterize(g, cam, backend=backend).rgb
        held = between_cameras(gen)
        truth = worlds.render(world, held)
        out = rasterize(g, held, backend=backend)
        m = (truth.mask > 0) & (out.alpha > 0.5)
        derr = depth_errors(out.depth, truth.depth, m)
        derr_median = depth_errors(out.depth, truth.depth, m, align="median")
        rows.append({"seed": seed, "student_vs_teacher_psnr": _psnr(student, frames),
                     "input_view_psnr": _psnr(inp, src.rgb), "heldout_psnr": _psnr(out.rgb, truth.rgb),
                     "heldout_ssim": float(ssim(out.rgb, truth.rgb).mean()), "heldout_depth_absrel": float(derr["abs_rel"]),
                     "heldout_depth_absrel_median_aligned": float(derr_median["abs_rel"]),
                     "gaussians": n_before, "gaussians_pruned": len(g), "decoder_s": dec_s})
    return rows


def summarize(rows: list[dict]) -> dict[str, float]:
    """Mean of every numeric column (NaNs skipped)."""
    keys = [k for k in rows[0] if k != "seed"]
    out = {}
    for k in keys:
        vals = [r[k] for r in rows if isinstance(r[k], (int, float)) and r[k] == r[k]]
        out[k] = sum(vals) / len(vals) if vals else float("nan")
    return out


def table(summary: dict[str, float], title: str = "") -> str:
    """A Markdown table of a summary."""
    lines = ([f"### {title}", ""] if title else []) + ["| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4g} |" for k, v in summary.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """``python -m lyra3d.evaluation teacher|decoder --worlds N [--json FILE]``: evaluate on held-out worlds
    and print a table."""
    import argparse
    import json

    p = argparse.ArgumentParser(prog="lyra3d eval", description=main.__doc__)
    p.add_argument("what", choices=["teacher", "decoder"])
    p.add_argument("--worlds", type=int, default=8, help="held-out worlds (seeds from 1,000,000)")
    p.add_argument("--steps", type=int, default=None, help="teacher sampler steps (default: the teacher's)")
    p.add_argument("--guidance", type=float, default=None)
    p.add_argument("--tokenizer", default=None)
    p.add_argument("--video-model", default=None)
    p.add_argument("--decoder", default=None)
    p.add_argument("--views", default="", help="comma-separated trajectory indices the decoder reads (ablation)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None, help="also write the rows and summary here")
    a = p.parse_args(argv)
    teacher = Teacher.from_pretrained(a.tokenizer, a.video_model, device=a.device)
    if a.steps is not None:
        teacher.config.steps = a.steps
    if a.guidance is not None:
        teacher.config.guidance = a.guidance
    seeds = worlds.eval_seeds(a.worlds)
    if a.what == "teacher":
        rows = evaluate_teacher(teacher, seeds)
    else:
        decoder = GaussianDecoder.from_pretrained(a.decoder) if a.decoder else GaussianDecoder.default(a.device)
        views = [int(v) for v in a.views.split(",")] if a.views else None
        rows = evaluate_decoder(teacher, decoder.to(a.device), seeds, views=views)
    summary = summarize(rows)
    print(table(summary, f"{a.what} on {len(seeds)} held-out worlds"))
    if a.json:
        from lyra3d.files import atomic_path

        with atomic_path(a.json) as tmp:
            Path(tmp).write_text(json.dumps({"settings": vars(a), "summary": summary, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
