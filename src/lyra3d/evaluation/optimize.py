"""Per-scene 3DGS optimisation on held-out worlds (issue 22), scored exactly as the 3DGS decoder is
(:func:`lyra3d.evaluation.decoder.evaluate_decoder`): renders vs the teacher's frames, the input view, and held-out
cameras between the trajectories vs the ray-cast truth; at several step budgets, each a fresh run from the
input's own Gaussians (what a user gets at that budget), plus the start itself (``init_*``)."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from lyra3d.core.cameras import default_camera
from lyra3d.data import worlds
from lyra3d.evaluation.decoder import _student_scores
from lyra3d.evaluation.teacher import between_cameras
from lyra3d.pipelines.optimize import OptimizeConfig, initial_gaussians, optimize_sample
from lyra3d.pipelines.teacher import Teacher


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def evaluate_optimizer(teacher: Teacher, seeds: list[int], budgets: tuple[int, ...] = (300,),
                       config: OptimizeConfig | None = None, backend: str = "auto", width: int = 320,
                       height: int = 176, on_row: Callable[[dict], None] | None = None,
                       used: dict | None = None) -> list[dict]:
    """Per world: the teacher's output, then per step budget an optimisation from the input's own Gaussians
    (:func:`lyra3d.pipelines.optimize.optimize_sample`, ``config`` with ``steps`` set to the budget), scored
    as the decoder is. The first budget's columns are unsuffixed, the others' end in ``_steps<N>``; ``init_*``
    scores the start (the input's Gaussians alone). ``optimize_s``: the optimisation's seconds, its start
    included (the key frames' depth, the grown Gaussians), ``fit_s`` the steps alone; the teacher's frame
    decoding is ``frames_s``. ``on_row`` sees each world's row as it is measured; ``used``
    (a dict) is told the strategy and the rasterizer that ran (``strategy``, ``backend``)."""
    base = config or OptimizeConfig()
    dev = teacher.device
    cam = default_camera(width, height).to(dev)
    rows = []
    for seed in seeds:
        world = worlds.make_world(seed)
        src = worlds.render(world, cam)
        gen = teacher(src.rgb[0], cam, seed=seed)
        _sync(dev)
        t0 = time.perf_counter()
        frames = teacher.decode(gen.latents).clamp(0, 1)
        _sync(dev)
        frames_s = time.perf_counter() - t0
        held = between_cameras(gen)
        truth = worlds.render(world, held)
        init = initial_gaussians(gen.image, gen.depth, cam, teacher.config.far_ratio)
        row = {"seed": seed, "frames_s": frames_s, "initial_gaussians": len(init)}
        scores = _student_scores(init, gen.cameras, frames, cam, src.rgb, held, truth, backend)
        row.update({f"init_{k}": v for k, v in scores.items() if k != "gaussians_pruned"})
        for i, steps in enumerate(budgets):
            cfg = OptimizeConfig(**{**base.__dict__, "steps": steps})
            _sync(dev)
            t1 = time.perf_counter()
            result = optimize_sample(gen, frames, cam, cfg, teacher.config.far_ratio, teacher=teacher)
            _sync(dev)
            seconds = time.perf_counter() - t1
            scores = _student_scores(result.gaussians, gen.cameras, frames, cam, src.rgb, held, truth, backend)
            scores["gaussians"] = scores.pop("gaussians_pruned")
            scores.update(optimize_s=seconds, fit_s=result.seconds, optimize_steps=result.steps, first_loss=result.first_loss,
                          last_loss=result.last_loss)
            row.update({(k if i == 0 else f"{k}_steps{steps}"): v for k, v in scores.items()})
            if used is not None:
                used.update(strategy=result.strategy, backend=result.backend)
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows
