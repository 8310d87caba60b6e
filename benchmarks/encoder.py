"""Benchmark the tokenizer's encoder alone (issue 25: at batch 64 it is 60 % of a scene's time on an H200): seconds
per scene (6 trajectories × the warped cache and its mask = 12 videos) for each way of running it, and how far its
latents are from the plain fp32 ones.

    PYTHONUNBUFFERED=1 python benchmarks/encoder.py --device cuda [--videos 96] [--variants all] [--save FILE]

Variants: ``eager`` / ``compile`` (``VideoTokenizer.compile_encoder``: the per-frame 2D encoder, the bulk of the
work, as one compiled graph), ``fp32`` /
``autocast`` (bf16 autocast: GroupNorm stays fp32, so every norm casts) / ``bf16`` (the encoder's weights in bf16),
``contiguous`` / ``channels_last``. Inputs: the warped caches of 4 held-out worlds (seeds from 1,000,100) along the
six trajectories, repeated to ``--videos`` videos per call. One untimed call first (cuDNN autotuning, compilation),
then ``--repeats`` timed calls, CUDA-synchronised.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import sys
import time
from pathlib import Path

import torch

from lyra3d import pipelines as pl


def _videos(pipe, n_worlds: int) -> torch.Tensor:
    from lyra3d.core.cache3d import multi_trajectory_conditioning
    from lyra3d.core.cameras import default_camera
    from lyra3d.data import worlds

    cfg, t = pipe.config, pipe.teacher
    cam = default_camera(cfg.resolution.width, cfg.resolution.height, cfg.resolution.fov_y_degrees).to(pipe.device)
    out = []
    for i in range(n_worlds):
        im = worlds.render(worlds.make_world(1_000_100 + i), cam.to("cpu")).rgb[0].to(pipe.device)
        d = t.clean_depth(t.depth(im[None], cam.intrinsics).depth[0])
        cond = multi_trajectory_conditioning(im, d[None], cam, cfg.frames, names=cfg.trajectories)
        out.append(torch.stack([c.warped.rgb * c.warped.mask for c in cond.values()]))
        out.append(torch.stack([c.warped.mask for c in cond.values()]).expand(-1, -1, 3, -1, -1))
    return torch.cat(out)


def _run(tok, videos: torch.Tensor, precision: str) -> torch.Tensor:
    if precision == "autocast":
        with torch.autocast(videos.device.type, dtype=torch.bfloat16):
            return tok.encode(videos).float()
    dtype = next(tok.parameters()).dtype
    return tok.encode(videos.to(dtype)).float()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--videos", type=int, default=96, help="videos per encoder call")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--variants", default="all", help="comma-separated mode/precision/format, or all")
    ap.add_argument("--save", default=None)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")
    pipe = pl.ImageTo3DPipeline.from_pretrained(device=str(device))
    base = copy.deepcopy(pipe.teacher.tokenizer).to(memory_format=torch.contiguous_format).float()
    with torch.no_grad():
        src = _videos(pipe, 4)
        videos = src[torch.arange(args.videos) % len(src)].contiguous()
        ref = base.encode(videos).float()
    per_scene = 12 / args.videos  # a scene is 12 videos (6 trajectories × cache + mask)
    if args.variants == "all":
        variants = list(itertools.product(("eager", "compile"), ("fp32", "autocast", "bf16"),
                                          ("contiguous", "channels_last")))
    else:
        variants = [tuple(v.split("/")) for v in args.variants.split(",")]
    rows = []
    for mode, precision, fmt in variants:
        name = f"{mode} {precision} {fmt}"
        try:
            tok = copy.deepcopy(base)
            if precision == "bf16":
                tok = tok.to(torch.bfloat16)
            memfmt = torch.channels_last if fmt == "channels_last" else torch.contiguous_format
            tok = tok.to(memory_format=memfmt)
            if mode == "compile":
                tok.compile_encoder()  # what the teacher does for batches on CUDA
            x = videos.contiguous(memory_format=torch.contiguous_format)
            with torch.no_grad():
                t0 = time.perf_counter()
                lat = _run(tok, x, precision)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                first = time.perf_counter() - t0
                t0 = time.perf_counter()
                for _ in range(args.repeats):
                    lat = _run(tok, x, precision)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                dt = (time.perf_counter() - t0) / args.repeats
            rel = float((lat - ref).norm() / ref.norm())
            rows.append(f"| {name} | {dt * per_scene:.4f} | {100 * rel:.3f} % | {first:.1f} |")
        except Exception as e:  # one variant failing (a compiler error, memory) must not end the table
            rows.append(f"| {name} | failed: {type(e).__name__}: {str(e).splitlines()[0][:80]} | | |")
        print(rows[-1], flush=True)
        del tok
        if device.type == "cuda":
            torch.cuda.empty_cache()
    head = (f"tokenizer encoder, {args.videos} videos of {videos.shape[1]} frames at {videos.shape[-1]}x"
            f"{videos.shape[-2]} per call, {device} "
            f"({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}, torch {torch.__version__})")
    table = "\n".join([head, "", "| variant | s per scene (12 videos) | latents vs eager fp32 | first call s |",
                       "|---|---|---|---|", *rows])
    print("\n" + table)
    if args.save:
        Path(args.save).write_text(" ".join(sys.argv) + "\n\n" + table + "\n")


if __name__ == "__main__":
    main()
