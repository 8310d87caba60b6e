"""The 3DGS decoder on held-out worlds: student vs teacher frames, the input view, held-out cameras between
trajectories vs the ray-cast truth, and the depth of the Gaussians; at several opacity-pruning fractions."""

from __future__ import annotations

import time

import torch
from torch import Tensor

from lyra3d.core.cameras import Cameras, default_camera
from lyra3d.core.metrics import depth_errors, mean_psnr, ssim
from lyra3d.core.render import rasterize
from lyra3d.data import worlds
from lyra3d.evaluation.teacher import between_cameras
from lyra3d.models.decoder import GaussianDecoder
from lyra3d.pipelines.teacher import Teacher


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
    return {"student_vs_teacher_psnr": mean_psnr(student, frames), "input_view_psnr": mean_psnr(inp, image),
            "heldout_psnr": mean_psnr(out.rgb, truth.rgb), "heldout_ssim": float(ssim(out.rgb, truth.rgb).mean()),
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
