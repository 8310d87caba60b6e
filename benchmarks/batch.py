"""Benchmark many scenes on one device (issue 25): scenes per second, seconds per stage and peak memory of the
batched image pipeline (:meth:`lyra3d.pipelines.ImageTo3DPipeline.batch`) for several batch sizes, warm.

    PYTHONUNBUFFERED=1 python benchmarks/batch.py --device cuda --batches 1,4,16,64 [--repeats 3]
        [--trajectories 6] [--steps 4] [--frames 17] [--precision auto] [--backend auto] [--weights DIR]
        [--write] [--write-threads 8] [--checks] [--save FILE]
    python benchmarks/batch.py --device cuda --batches 128,256 --no-single      # larger batches
    python benchmarks/batch.py --device cpu --batches 1,2 --trajectories 1 --frames 5   # a quick CPU check

The shipped models at 320×176 (the default preset). Per batch size ``b``: ``b`` distinct held-out procedural worlds
(seeds from 1,000,100) as inputs; one untimed warm-up batch (CUDA kernels, cuDNN autotuning, allocator); then
``--repeats`` timed batches, CUDA-synchronised, model loading excluded. "pipeline" is the generation alone (depth,
cache, encode, sample, decoder, input view: what :meth:`batch` returns, Gaussians on the device). With ``--write``
each scene of the timed batches is also written as ``lyra3d generate`` writes it (fly-through render + MP4, PLY,
PNG, JSON; ``save_scene`` into a temporary folder): "write s/scene" is writing alone, one scene after another (at
most 8 scenes of the batch); "end to end" is the wall time of the timed batches with each batch's scenes written by
a pool of ``--write-threads`` threads while the next batch generates (what ``generate_many`` does), until the last
scene is on disk. Peak memory: ``torch.cuda.max_memory_allocated`` over the timed batches on CUDA, the process's
peak resident set on a CPU. The first row, "single calls", is ``pipe(image)`` one at a time (today's ``lyra3d
generate``) over ``max(batches)`` images (at most 16). Prints a Markdown table and the seconds per scene of each
stage (the batch's stage time / batch size).

``--checks`` (default on CUDA) also measures, on 4 scenes: a batch against single calls (PSNR of their renders at
the input camera and the ends of two trajectories: equal to float tolerance is ≥ 50 dB), the tokenizer's encoder
in bf16 against fp32 (relative difference of the latents of the warped cache and mask), and scenes with
``precision="auto"`` (bf16 sampler and decoder on CUDA) against ``"fp32"`` (render PSNR). The checks run after the
batches, so on CUDA the encoder is the compiled one (``TeacherConfig.compile_encoder``) in batches and single calls
alike; ``benchmarks/encoder.py`` compares the encoder's variants alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from lyra3d import pipelines as pl
from lyra3d.core.device import peak_memory_mb
from lyra3d.pipelines.config import parse_trajectories

STAGES = ("depth", "cache", "encode", "sample", "decoder", "input_view", "total")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return peak_memory_mb() / 1024


def _images(n: int, preset: pl.Preset) -> list[torch.Tensor]:
    from lyra3d.core.cameras import default_camera
    from lyra3d.data import worlds

    cam = default_camera(preset.width, preset.height, preset.fov_y_degrees)
    return [worlds.render(worlds.make_world(1_000_100 + i), cam).rgb[0] for i in range(n)]


def _write_one(scene, folder: Path, flythrough_frames: int) -> None:
    pl.save_scene(scene, folder, flythrough_frames=flythrough_frames)


def _write(scenes, flythrough_frames: int) -> float:
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for i, scene in enumerate(scenes):
            _write_one(scene, Path(tmp) / f"s{i}", flythrough_frames)
    return time.perf_counter() - t0


def _end_to_end(pipe, images, overrides: dict, repeats: int, threads: int, flythrough_frames: int,
                device: torch.device) -> float:
    """Wall seconds of ``repeats`` batches with every scene written by a thread pool while the next batch
    generates, until the last one is on disk."""
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(threads) as pool:
        t0 = time.perf_counter()
        jobs = []
        for r in range(repeats):
            scenes = pipe.batch(images, **overrides)
            jobs += [pool.submit(_write_one, s, Path(tmp) / f"r{r}_s{i}", flythrough_frames)
                     for i, s in enumerate(scenes)]
            del scenes
        for job in jobs:
            job.result()
        _sync(device)
        return time.perf_counter() - t0


def _renders(scene, frames: int) -> list[torch.Tensor]:
    from lyra3d.core.render import rasterize

    ends = [scene.cameras[k * frames - 1:k * frames] for k in (1, 2) if k * frames <= len(scene.cameras)]
    cams = [scene.input_camera, *ends]
    return [rasterize(scene.gaussians, c.to(scene.gaussians.device)).rgb[0].clamp(0, 1) for c in cams]


def _psnrs(a, b, frames: int) -> list[float]:
    from lyra3d.core.metrics import psnr

    return [round(float(psnr(x, y)), 1) for x, y in zip(_renders(a, frames), _renders(b, frames))]


def checks(pipe, images, overrides: dict, frames: int) -> list[str]:
    """Batch vs single calls, bf16 vs fp32 encoding, bf16 vs fp32 sampler + decoder, on (at most) 4 scenes."""
    from lyra3d.core.cache3d import multi_trajectory_conditioning

    out = []
    images = images[:4]
    seeds = [11 + i for i in range(len(images))]
    for precision in dict.fromkeys([overrides.get("precision", "auto"), "fp32"]):
        over = {**overrides, "precision": precision}
        batch = pipe.batch(images, seeds, **over)
        single = [pipe(im, seed=s, **over) for im, s in zip(images, seeds)]
        worst = min(min(_psnrs(m, o, frames)) for m, o in zip(batch, single))
        out.append(f"precision {precision}: batch of {len(images)} vs single calls, lowest render PSNR (input view, "
                   f"two trajectory ends) {worst:.1f} dB (float tolerance: >= 50)")
    t, cfg = pipe.teacher, pipe.config.replace(**overrides)
    cam = batch[0].input_camera
    diffs = {"cache": [], "mask": []}
    keep = t.config
    for im in images:
        im = im.to(pipe.device)
        d = t.clean_depth(t.depth(im[None], cam.intrinsics).depth[0])
        cond = multi_trajectory_conditioning(im, d[None], cam, cfg.frames, names=cfg.trajectories)
        videos = {"cache": torch.stack([c.warped.rgb * c.warped.mask for c in cond.values()]),
                  "mask": torch.stack([c.warped.mask for c in cond.values()]).expand(-1, -1, 3, -1, -1)}
        for name, video in videos.items():
            lat = {}
            for p in ("fp32", "bf16"):
                t.config = dataclasses.replace(keep, encode_precision=p)
                lat[p] = t.encode(video)
            diffs[name].append(float((lat["bf16"] - lat["fp32"]).norm() / lat["fp32"].norm()))
    t.config = keep
    out.append(f"encoder bf16 vs fp32, relative difference of the latents (largest of {len(images)} scenes): "
               + ", ".join(f"{k} {100 * max(v):.3f} %" for k, v in diffs.items()) + " (accepted on CPUs: 0.4 %)")
    # the input-view render per backend, 16 scenes
    from lyra3d.core.render import rasterize
    from lyra3d.core.render.rasterize import available_backends

    many = pipe.batch((images * 16)[:16], **overrides)
    renders = []
    for backend in available_backends(pipe.device):
        rasterize(many[0].gaussians, many[0].input_camera, backend=backend)
        _sync(pipe.device)
        t0 = time.perf_counter()
        for sc in many:
            rasterize(sc.gaussians, sc.input_camera, backend=backend)
        _sync(pipe.device)
        renders.append(f"{backend} {(time.perf_counter() - t0) / len(many):.4f}")
    from lyra3d.core.render.rasterize import rasterize_each

    cams = many[0].input_camera[[0] * len(many)]
    rasterize_each([sc.gaussians for sc in many], cams, backend="torch")
    _sync(pipe.device)
    t0 = time.perf_counter()
    rasterize_each([sc.gaussians for sc in many], cams, backend="torch")
    _sync(pipe.device)
    renders.append(f"torch, all {len(many)} scenes in one pass (rasterize_each) "
                   f"{(time.perf_counter() - t0) / len(many):.4f}")
    out.append(f"input-view render, seconds per scene ({len(many[0].gaussians)} Gaussians): " + ", ".join(renders))
    fp32 = [pipe(im, seed=s, **{**overrides, "precision": "fp32"}) for im, s in zip(images, seeds)]
    bf16 = [pipe(im, seed=s, **{**overrides, "precision": "bf16"}) for im, s in zip(images, seeds)]
    ps = [_psnrs(b, f, frames) for b, f in zip(bf16, fp32)]
    out.append("sampler + decoder bf16 vs fp32 (same encoder): render PSNR per scene (input view, two trajectory "
               f"ends) {ps}; input-view PSNR to the image bf16 {[round(s.input_view_psnr, 2) for s in bf16]} vs fp32 "
               f"{[round(s.input_view_psnr, 2) for s in fp32]}")
    return out


def profile(pipe, images, overrides: dict, device: torch.device) -> str:
    """The top operators of one batch under ``torch.profiler`` (device time, then host time)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    pipe.batch(images, **overrides)
    _sync(device)
    with torch_profile(activities=acts) as prof:
        pipe.batch(images, **overrides)
        _sync(device)
    table = prof.key_averages()
    out = [f"profile of one batch of {len(images)}:"]
    keys = [("self_device_time_total", "self_cuda_time_total")] if device.type == "cuda" else []
    for names in keys + [("self_cpu_time_total",)]:
        for key in names:  # the device-time key's name differs between torch versions
            try:
                out.append(table.table(sort_by=key, row_limit=25, max_name_column_width=60))
                break
            except (AttributeError, KeyError, ValueError) as e:
                out.append(f"(no {key} table: {e})")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batches", default="1,4,16,64", help="comma-separated batch sizes (e.g. 128,256)")
    ap.add_argument("--repeats", type=int, default=None, help="timed batches per size (default: 3 on CUDA, 1 on CPU)")
    ap.add_argument("--weights", default=None, help="weights folder (default: the shipped models)")
    ap.add_argument("--trajectories", default="6", help="names, or N for the first N of Lyra's six")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--precision", default=None, help="sampler + decoder: auto, bf16 or fp32 (default: auto)")
    ap.add_argument("--encode-precision", default=None, help="tokenizer encoder: auto, bf16 or fp32 (default: auto)")
    ap.add_argument("--backend", default=None, help="input-view rasterizer: auto, torch, gsplat, cpu")
    ap.add_argument("--write", action="store_true", help="also time writing each scene's folder")
    ap.add_argument("--write-threads", type=int, default=8, help="writer threads of the end-to-end column")
    ap.add_argument("--flythrough-frames", type=int, default=48)
    ap.add_argument("--no-single", action="store_true", help="skip the single-call row")
    ap.add_argument("--checks", action=argparse.BooleanOptionalAction, default=None,
                    help="batch vs single, bf16 vs fp32 (default: on CUDA)")
    ap.add_argument("--profile", type=int, default=0, help="also profile one batch of this size (torch.profiler)")
    ap.add_argument("--save", default=None, help="also write the table to this file")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")
        torch.backends.cudnn.benchmark = True
    repeats = args.repeats or (3 if device.type == "cuda" else 1)
    sizes = [int(b) for b in args.batches.split(",")]
    overrides = {"trajectories": parse_trajectories(args.trajectories)}
    for key in ("steps", "precision", "backend"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    if args.frames is not None:
        overrides["num_frames"] = args.frames
    t0 = time.perf_counter()
    pipe = pl.ImageTo3DPipeline.from_pretrained(args.weights, device=str(device))
    if args.encode_precision is not None:
        pipe.teacher.config = dataclasses.replace(pipe.teacher.config, encode_precision=args.encode_precision)
    cfg = pipe.config.replace(**overrides)
    from lyra3d.core.render.rasterize import available_backends

    print(f"loaded in {time.perf_counter() - t0:.1f} s on {device}"
          f" ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}, torch {torch.__version__}); "
          f"{len(cfg.trajectories)} trajectories x {cfg.frames} frames, {cfg.steps} steps, "
          f"{cfg.resolution.width}x{cfg.resolution.height}; precision {cfg.precision}, encoder "
          f"{pipe.teacher.config.encode_precision}, input-view backend {cfg.backend} "
          f"(available: {', '.join(available_backends(device))})", flush=True)
    t0 = time.perf_counter()
    images = _images(max(sizes), cfg.resolution)
    print(f"{len(images)} input images rendered in {time.perf_counter() - t0:.1f} s", flush=True)
    head = "| batch | scenes | pipeline s/scene | pipeline scenes/s | peak memory GB |"
    rule = "|---|---|---|---|---|"
    if args.write:
        head += " write s/scene (serial) | end to end scenes/s (written by a pool) |"
        rule += "---|---|"
    rows, stages = [], []

    def stage_row(name: str, per_stage: dict) -> str:
        return f"| {name} | " + " | ".join(f"{per_stage[k]:.4f}" if k in per_stage else "" for k in STAGES) + " |"

    if not args.no_single:
        n = min(max(sizes), 16)
        pipe(images[0], **overrides)  # warm-up
        _sync(device)
        _reset_peak(device)
        t0 = time.perf_counter()
        scenes = [pipe(im, **overrides) for im in images[:n]]
        _sync(device)
        dt = time.perf_counter() - t0
        per_stage = {k: sum(s.timings.get(k, 0.0) for s in scenes) / n for k in STAGES}
        stages.append(stage_row("single calls", per_stage))
        row = f"| single calls | {n} | {dt / n:.3f} | {n / dt:.2f} | {_peak_gb(device):.2f} |"
        if args.write:
            w = _write(scenes, args.flythrough_frames)
            row += f" {w / n:.3f} | |"
        rows.append(row)
        print(row, flush=True)
        del scenes
    for b in sizes:
        try:
            pipe.batch(images[:b], **overrides)  # warm-up
            _sync(device)
            _reset_peak(device)
            seconds, written, per_stage = 0.0, 0.0, {}
            for _ in range(repeats):
                t0 = time.perf_counter()
                scenes = pipe.batch(images[:b], **overrides)
                _sync(device)
                seconds += time.perf_counter() - t0
                for k, v in scenes[0].timings.items():  # each scene's share of the batch's stage seconds
                    per_stage[k] = per_stage.get(k, 0.0) + v / repeats
                if args.write and not written:  # once, on at most 8 scenes: serial writing per scene
                    written = _write(scenes[:8], args.flythrough_frames) / min(b, 8)
                del scenes
            n = b * repeats
            row = f"| {b} | {n} | {seconds / n:.3f} | {n / seconds:.2f} | {_peak_gb(device):.2f} |"
            if args.write:
                wall = _end_to_end(pipe, images[:b], overrides, repeats, args.write_threads, args.flythrough_frames,
                                   device)
                row += f" {written:.3f} | {n / wall:.2f} |"
            stages.append(stage_row(f"batch {b}", per_stage))
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            row = f"| {b} | - | out of memory | | |" + (" | |" if args.write else "")
        rows.append(row)
        print(row, flush=True)
    table = "\n".join([head, rule, *rows])
    stage_table = "\n".join(["| seconds per scene | " + " | ".join(STAGES) + " |",
                             "|---|" + "---|" * len(STAGES), *stages])
    text = f"{table}\n\nseconds per scene of each stage (the batch's stage time / batch size):\n\n{stage_table}\n"
    if args.checks if args.checks is not None else device.type == "cuda":
        lines = checks(pipe, images, overrides, cfg.frames)
        text += f"\nchecks ({min(4, len(images))} scenes):\n" + "\n".join(f"- {line}" for line in lines)
        text += "\n"
    if args.profile:
        text += "\n" + profile(pipe, images[:args.profile], overrides, device) + "\n"
    print("\n" + text)
    if args.save:
        Path(args.save).write_text(" ".join(sys.argv) + "\n\n" + text)


if __name__ == "__main__":
    main()
