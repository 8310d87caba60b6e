"""The 4D decoder on held-out dynamic clips: novel cameras and the input camera at several times vs the
ray-cast truth, overall and on the pixels that move, beside the static decoder on frame 0."""

from __future__ import annotations

import time

import torch
from torch import Tensor

from lyra3d.core.cameras import Cameras
from lyra3d.core.metrics import mean_psnr
from lyra3d.core.render import rasterize
from lyra3d.evaluation.decoder import _cpu_decode_seconds, _sync
from lyra3d.evaluation.teacher import between_cameras
from lyra3d.models.decoder import GaussianDecoder
from lyra3d.pipelines.teacher import Teacher


@torch.no_grad()
def evaluate_decoder4d(teacher: Teacher, decoder4d, seeds: list[int], static_decoder: GaussianDecoder | None = None,
                       frames: tuple[int, ...] | None = None, backend: str = "auto", width: int = 320,
                       height: int = 176, cpu_time: bool = True, on_row=None, num_frames: int = 17) -> list[dict]:
    """Per held-out dynamic world (:func:`lyra3d.data.clips.make_clip`, a still camera; seeds from
    :func:`~lyra3d.data.clips.dynamic_eval_seeds`): the video teacher's latents of the clip, then per evaluated
    time ``times[f]`` (``frames``, default ``0, T/4, T/2, 3T/4, T − 1``) the 4D decoder's Gaussians at that
    time (:meth:`~lyra3d.models.decoder4d.GaussianDecoder4D.decode`; one with ``input_view`` also reads the clip's
    own latents), rendered at

    (a) novel cameras: frame ``f`` of every trajectory (``traj_*``) and the held-out cameras between the
        trajectories (``between_*``, :func:`between_cameras`), vs the ray-cast truth at that time: PSNR
        (``novel_psnr``: mean over images and times) and PSNR of the moving pixels (``novel_moving_psnr``:
        the truth differs from time 0, :func:`~lyra3d.data.clips.moving_mask`, pooled over images and times);
    (b) the input camera vs input frame ``f`` (``input_view_psnr``, ``input_view_moving_psnr``).

    ``static_decoder``: the same numbers (``static_*``) for a static decoder decoding the same latents
    (ignoring time: one scene rendered at every time). ``teacher_traj_*``: the video teacher's own decoded
    frames at those cameras (a reference). ``decoder_s``: seconds of one 4D decode on the decoder's device;
    ``cpu_decoder_s``: one decode by a CPU copy with 2 threads (first world only; NaN on the others).
    ``on_row(row)``, if given, gets each world's row as soon as it is measured (results as they come, e.g.
    to print them on a long run; not a progress callback). ``num_frames``: of the clip (``1 + 4·m``).
    """
    from lyra3d.data.clips import make_clip, moving_mask
    from lyra3d.evaluation.video_teacher import pooled_psnr
    from lyra3d.pipelines.teacher import video_teacher

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
            row[f"{key}_psnr"] = mean_psnr(pred, truth)
            row[f"{key}_moving_psnr"] = pooled_psnr(pred, truth, moving)
        row["moving_fraction"] = float(torch.cat([m for _, _, m in acc["novel"]]).float().mean())
        row["gaussians"] = gaussians
        row["decoder_s"] = sum(decode_s) / len(decode_s)
        row["cpu_decoder_s"] = float("nan")
        if cpu_time and n == 0:
            row["cpu_decoder_s"] = row["decoder_s"] if dev.type == "cpu" else \
                _cpu_decode_seconds(decoder4d, gen.latents, gen.cameras, times, float(clip.times[-1]), **inputs)
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows
