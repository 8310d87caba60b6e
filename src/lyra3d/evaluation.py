"""Quality, measured on held-out procedural worlds (seeds >= 1,000,000) against their ray-cast truth
(DESIGN §7): the teacher (issue "teacher"), the 3DGS decoder (issue "self-distillation") and the 4D
decoder on held-out dynamic clips (issue "Video → 4D").

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
from lyra3d.errors import InputError
from lyra3d.metrics import depth_errors, psnr, ssim
from lyra3d.render import rasterize
from lyra3d.teacher import Teacher, TeacherSample
from lyra3d.tokenizer import check_trajectory_frames


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


@torch.no_grad()
def evaluate_decoder(teacher: Teacher, decoder: GaussianDecoder, seeds: list[int], views: list[int] | None = None,
                     keep_fraction: float | tuple[float, ...] = 0.5, backend: str = "auto", width: int = 320,
                     height: int = 176) -> list[dict]:
    """Per world: (a) student vs teacher frames at the trajectory cameras, (b) student at the input camera vs
    the input, (c) student vs truth at held-out cameras between the trajectories (PSNR, SSIM, depth AbsRel),
    Gaussian counts before and after opacity-rank pruning (``keep_fraction``), decoder seconds.
    ``views``: indices of the trajectories the decoder reads (ablation); default all. Several keep fractions
    score the same decoded Gaussians pruned each way: the first one's columns are unsuffixed, the others'
    end in ``_keep<fraction>``."""
    fractions = (keep_fraction,) if isinstance(keep_fraction, (int, float)) else tuple(keep_fraction)
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
        held = between_cameras(gen)
        truth = worlds.render(world, held)
        row = {"seed": seed, "gaussians": len(g), "decoder_s": dec_s}
        for i, f in enumerate(fractions):
            scores = _student_scores(g.prune_by_opacity(keep_fraction=f) if f < 1 else g, gen.cameras, frames,
                                     cam, src.rgb, held, truth, backend)
            row.update({(k if i == 0 else f"{k}_keep{f:g}"): v for k, v in scores.items()})
        rows.append(row)
    return rows


def _student_scores(g, cameras: Cameras, frames: Tensor, cam: Cameras, image: Tensor, held: Cameras, truth,
                    backend: str) -> dict:
    """(a), (b), (c) of :func:`evaluate_decoder` for Gaussians ``g``: rendered at the trajectory ``cameras``
    vs the teacher's ``frames``, at the input camera vs ``image``, at the ``held`` cameras vs ``truth``."""
    student = rasterize(g, cameras, backend=backend).rgb.reshape(frames.shape)
    inp = rasterize(g, cam, backend=backend).rgb
    out = rasterize(g, held, backend=backend)
    m = (truth.mask > 0) & (out.alpha > 0.5)
    derr = depth_errors(out.depth, truth.depth, m)
    derr_median = depth_errors(out.depth, truth.depth, m, align="median")
    return {"student_vs_teacher_psnr": _psnr(student, frames), "input_view_psnr": _psnr(inp, image),
            "heldout_psnr": _psnr(out.rgb, truth.rgb), "heldout_ssim": float(ssim(out.rgb, truth.rgb).mean()),
            "heldout_depth_absrel": float(derr["abs_rel"]),
            "heldout_depth_absrel_median_aligned": float(derr_median["abs_rel"]), "gaussians_pruned": len(g)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cpu_decode_seconds(decoder, latents: Tensor, cameras: Cameras, times: Tensor, target: float,
                        threads: int = 2, input_latents: Tensor | None = None,
                        input_cameras: Cameras | None = None) -> float:
    """Seconds of one decode by a CPU copy of ``decoder`` with ``threads`` torch threads (the CPU default)."""
    import copy

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        cpu = copy.deepcopy(decoder).cpu().float()
        args = (latents.cpu().float(), cameras.to("cpu"), times.cpu())
        inputs = {} if input_latents is None else {"input_latents": input_latents.cpu().float(),
                                                   "input_cameras": input_cameras.to("cpu")}
        t0 = time.time()
        cpu.decode(*args, target_time=target, **inputs)
        return time.time() - t0
    finally:
        torch.set_num_threads(old)


@torch.no_grad()
def evaluate_decoder4d(teacher: Teacher, decoder4d, seeds: list[int], static_decoder: GaussianDecoder | None = None,
                       frames: tuple[int, ...] | None = None, backend: str = "auto", width: int = 320,
                       height: int = 176, cpu_time: bool = True, progress=None, num_frames: int = 17) -> list[dict]:
    """Per held-out dynamic world (:func:`lyra3d.dynamic.make_clip`, a still camera; seeds from
    :func:`~lyra3d.dynamic.dynamic_eval_seeds`): the video teacher's latents of the clip, then per evaluated
    time ``times[f]`` (``frames``, default ``0, T/4, T/2, 3T/4, T − 1``) the 4D decoder's Gaussians at that
    time (:meth:`~lyra3d.decoder4d.GaussianDecoder4D.decode`; one with ``input_view`` also reads the clip's
    own latents), rendered at

    (a) novel cameras: frame ``f`` of every trajectory (``traj_*``) and the held-out cameras between the
        trajectories (``between_*``, :func:`between_cameras`), vs the ray-cast truth at that time: PSNR
        (``novel_psnr``: mean over images and times) and PSNR of the moving pixels (``novel_moving_psnr``:
        the truth differs from time 0, :func:`~lyra3d.dynamic.moving_mask`, pooled over images and times);
    (b) the input camera vs input frame ``f`` (``input_view_psnr``, ``input_view_moving_psnr``).

    ``static_decoder``: the same numbers (``static_*``) for a static decoder decoding the same latents
    (ignoring time: one scene rendered at every time). ``teacher_traj_*``: the video teacher's own decoded
    frames at those cameras (a reference). ``decoder_s``: seconds of one 4D decode on the decoder's device;
    ``cpu_decoder_s``: one decode by a CPU copy with 2 threads (first world only; NaN on the others).
    ``progress(row)`` after each world, if given. ``num_frames``: of the clip (``1 + 4·m``).
    """
    from lyra3d.dynamic import make_clip, moving_mask, pooled_psnr, video_teacher

    rows = []
    dev = teacher.device
    for n, seed in enumerate(seeds):
        clip = make_clip(seed, num_frames, width=width, height=height, device=dev)
        gen = video_teacher(teacher, clip.frames, clip.cameras, seed=seed, times=clip.times,
                            encode_input=getattr(decoder4d.config, "input_view", False))
        v, t = len(gen.names), gen.num_frames
        picks = frames if frames is not None else tuple(sorted({0, t // 4, t // 2, (3 * t) // 4, t - 1}))
        teacher_frames = teacher.decode(gen.latents)  # (V, T, 3, H, W)
        held = between_cameras(gen)
        times = clip.times.to(dev)
        inputs = {"input_latents": gen.input_latents, "input_cameras": gen.input_cameras}
        static_g = static_decoder.decode(gen.latents, gen.cameras) if static_decoder is not None else None
        acc: dict[str, list] = {}

        def add(key: str, pred: Tensor, truth: Tensor, moving: Tensor) -> None:
            acc.setdefault(key, []).append((pred.float().cpu(), truth.float().cpu(), moving.cpu()))

        decode_s, gaussians = [], 0
        for f in picks:
            target = float(clip.times[f])
            traj_cams = gen.cameras[[i * t + f for i in range(v)]]
            novel = Cameras.cat([traj_cams, held])
            truth = clip.truth(novel, target)
            moving = moving_mask(clip.world, novel, target, truth=truth)
            inp_cam = clip.cameras[f].to(dev)
            inp_moving = moving_mask(clip.world, inp_cam, target)
            _sync(dev)
            t0 = time.time()
            g = decoder4d.decode(gen.latents, gen.cameras, times, target_time=target, **inputs)
            _sync(dev)
            decode_s.append(time.time() - t0)
            gaussians = len(g)
            for prefix, gauss in (("", g), ("static_", static_g)):
                if gauss is None:
                    continue
                out = rasterize(gauss, novel, backend=backend).rgb
                add(prefix + "traj", out[:v], truth.rgb[:v], moving[:v])
                add(prefix + "between", out[v:], truth.rgb[v:], moving[v:])
                add(prefix + "novel", out, truth.rgb, moving)
                add(prefix + "input_view", rasterize(gauss, inp_cam, backend=backend).rgb, clip.frames[f:f + 1].to(dev),
                    inp_moving)
            add("teacher_traj", teacher_frames[:, f], truth.rgb[:v], moving[:v])
        row = {"seed": seed}
        for key, items in acc.items():
            pred, truth, moving = (torch.cat(x) for x in zip(*items))
            row[f"{key}_psnr"] = _psnr(pred, truth)
            row[f"{key}_moving_psnr"] = pooled_psnr(pred, truth, moving)
        row["moving_fraction"] = float(torch.cat([m for _, _, m in acc["novel"]]).float().mean())
        row["gaussians"] = gaussians
        row["decoder_s"] = sum(decode_s) / len(decode_s)
        row["cpu_decoder_s"] = float("nan")
        if cpu_time and n == 0:
            row["cpu_decoder_s"] = row["decoder_s"] if dev.type == "cpu" else \
                _cpu_decode_seconds(decoder4d, gen.latents, gen.cameras, times, float(clip.times[-1]), **inputs)
        rows.append(row)
        if progress is not None:
            progress(row)
    return rows


def summarize(rows: list[dict]) -> dict[str, float]:
    """Mean of every numeric column (NaNs skipped)."""
    keys = [k for k in rows[0] if k != "seed"]
    out = {}
    for k in keys:
        vals = [r[k] for r in rows if isinstance(r[k], (int, float)) and r[k] == r[k]]
        out[k] = sum(vals) / len(vals) if vals else float("nan")
    return out


def write_results(path: str | Path, settings: dict, seeds: list[int], summary: dict, rows: list[dict]) -> None:
    """An evaluation's JSON file (written atomically): settings, seeds, summary and per-world rows."""
    import json

    from lyra3d.files import atomic_path

    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps({"settings": settings, "seeds": seeds, "summary": summary, "rows": rows},
                                        indent=1))


def table(summary: dict[str, float], title: str = "") -> str:
    """A Markdown table of a summary."""
    lines = ([f"### {title}", ""] if title else []) + ["| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4g} |" for k, v in summary.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """``python -m lyra3d.evaluation teacher|decoder|decoder4d --worlds N [--json FILE]``: evaluate on held-out
    worlds (dynamic ones for decoder4d, against the static decoder ``--decoder``) and print a table."""
    import argparse
    import json

    p = argparse.ArgumentParser(prog="lyra3d eval", description=main.__doc__)
    p.add_argument("what", choices=["teacher", "decoder", "decoder4d"])
    p.add_argument("--worlds", type=int, default=8, help="held-out worlds (seeds from 1,000,000)")
    p.add_argument("--steps", type=int, default=None, help="teacher sampler steps (default: the teacher's)")
    p.add_argument("--guidance", type=float, default=None)
    p.add_argument("--tokenizer", default=None)
    p.add_argument("--video-model", default=None)
    p.add_argument("--decoder", default=None)
    p.add_argument("--decoder4d", default=None, help="4D decoder folder (decoder4d)")
    p.add_argument("--no-baseline", action="store_true", help="decoder4d: skip the static decoder baseline")
    p.add_argument("--backend", default="auto", help="rasterizer: auto, gsplat or torch")
    p.add_argument("--width", type=int, default=320, help="decoder4d: clip frame size")
    p.add_argument("--height", type=int, default=176)
    p.add_argument("--clip-frames", type=int, default=17, help="decoder4d: frames per clip (1 + 4·m)")
    p.add_argument("--frames", type=int, default=None,
                   help="teacher, decoder: frames per trajectory (1 + 4·m; default: the teacher's, 17)")
    p.add_argument("--views", default="", help="comma-separated trajectory indices the decoder reads (ablation)")
    p.add_argument("--keep-fraction", default="0.5",
                   help="decoder: opacity-rank pruning share(s), comma-separated (the first is the main column)")
    p.add_argument("--train-worlds-from", type=int, default=None, metavar="SEED",
                   help="teacher, decoder: score training worlds from this seed instead (to choose settings "
                        "without looking at the held-out worlds)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None, help="also write the rows and summary here")
    a = p.parse_args(argv)
    try:
        keep = tuple(float(f) for f in a.keep_fraction.split(","))
    except ValueError:
        keep = ()
    if not keep or not all(0 < f <= 1 for f in keep):
        raise InputError(f"--keep-fraction takes numbers in (0, 1], comma-separated; got {a.keep_fraction!r}")
    split = "held-out"
    teacher = Teacher.from_pretrained(a.tokenizer, a.video_model, device=a.device)
    if a.steps is not None:
        teacher.config.steps = a.steps
    if a.guidance is not None:
        teacher.config.guidance = a.guidance
    if a.frames is not None:
        check_trajectory_frames(a.frames, teacher.tokenizer.temporal_factor, "--frames")
        teacher.config.num_frames = a.frames
    if a.what == "decoder4d":
        from lyra3d.decoder4d import GaussianDecoder4D
        from lyra3d.dynamic import dynamic_eval_seeds

        if not a.decoder4d:
            raise InputError("eval decoder4d needs --decoder4d DIR (a 4D decoder: lyra3d train decoder --dynamic 1)")
        seeds = dynamic_eval_seeds(a.worlds)
        d4 = GaussianDecoder4D.from_pretrained(a.decoder4d, a.device).eval()
        static = None if a.no_baseline else \
            (GaussianDecoder.from_pretrained(a.decoder, a.device) if a.decoder else GaussianDecoder.default(a.device))
        rows = evaluate_decoder4d(teacher, d4, seeds, static_decoder=static, backend=a.backend, width=a.width,
                                  height=a.height, num_frames=a.clip_frames,
                                  progress=lambda row: print(json.dumps(row), flush=True))
    elif a.train_worlds_from is not None:
        seeds, split = worlds.train_seeds(a.worlds, a.train_worlds_from), "training"
    else:
        seeds = worlds.eval_seeds(a.worlds)
    if a.what == "teacher":
        rows = evaluate_teacher(teacher, seeds)
    elif a.what == "decoder":
        decoder = GaussianDecoder.from_pretrained(a.decoder) if a.decoder else GaussianDecoder.default(a.device)
        views = [int(v) for v in a.views.split(",")] if a.views else None
        rows = evaluate_decoder(teacher, decoder.to(a.device), seeds, views=views, keep_fraction=keep)
    summary = summarize(rows)
    print(table(summary, f"{a.what} on {len(seeds)} {split} {'dynamic ' * (a.what == 'decoder4d')}worlds"))
    if a.json:
        write_results(a.json, vars(a), seeds, summary, rows)


if __name__ == "__main__":
    main()
