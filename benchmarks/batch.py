"""Benchmark many scenes on one device (issue 25): scenes per second and peak memory of the batched image
pipeline (:meth:`lyra3d.pipelines.ImageTo3DPipeline.batch`) for several batch sizes, warm.

    PYTHONUNBUFFERED=1 python benchmarks/batch.py --device cuda --batches 1,4,16,64 [--repeats 3]
        [--trajectories 6] [--steps 4] [--frames 17] [--weights DIR] [--write] [--save FILE]
    python benchmarks/batch.py --device cpu --batches 1,2 --trajectories 1 --frames 5   # a quick CPU check

The shipped models at 320×176 (the default preset). Per batch size ``b``: ``b`` distinct held-out procedural
worlds (seeds from 1,000,100) as inputs; one untimed warm-up batch (CUDA kernels, cuDNN autotuning, allocator);
then ``--repeats`` timed batches, CUDA-synchronised, model loading excluded. "pipeline" is the generation alone
(depth, cache, encode, sample, decoder, input view: what :meth:`batch` returns, Gaussians on the device).
With ``--write`` each scene of the timed batches is also written as ``lyra3d generate`` writes it (fly-through
render + MP4, PLY, PNG, JSON; ``save_scene`` into a temporary folder), timed separately, so the table shows
whether writing dominates. Peak memory: ``torch.cuda.max_memory_allocated`` over the timed batches on CUDA,
the process's peak resident set on a CPU. The first row, "single calls", is ``pipe(image)`` one at a time
(today's ``lyra3d generate``) over ``max(batches)`` images (at most 16). Prints a Markdown table (and the stage
seconds per scene of each batch size).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from lyra3d import pipelines as pl
from lyra3d.core.device import peak_memory_mb
from lyra3d.pipelines.config import parse_trajectories


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


def _write(scenes, flythrough_frames: int) -> float:
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for i, scene in enumerate(scenes):
            pl.save_scene(scene, Path(tmp) / f"s{i}", flythrough_frames=flythrough_frames)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batches", default="1,4,16,64", help="comma-separated batch sizes")
    ap.add_argument("--repeats", type=int, default=None, help="timed batches per size (default: 3 on CUDA, 1 on CPU)")
    ap.add_argument("--weights", default=None, help="weights folder (default: the shipped models)")
    ap.add_argument("--trajectories", default="6", help="names, or N for the first N of Lyra's six")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--write", action="store_true", help="also time writing each scene's folder")
    ap.add_argument("--flythrough-frames", type=int, default=48)
    ap.add_argument("--no-single", action="store_true", help="skip the single-call row")
    ap.add_argument("--save", default=None, help="also write the table to this file")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")
        torch.backends.cudnn.benchmark = True
    repeats = args.repeats or (3 if device.type == "cuda" else 1)
    sizes = [int(b) for b in args.batches.split(",")]
    overrides = {"trajectories": parse_trajectories(args.trajectories)}
    if args.steps is not None:
        overrides["steps"] = args.steps
    if args.frames is not None:
        overrides["num_frames"] = args.frames
    t0 = time.perf_counter()
    pipe = pl.ImageTo3DPipeline.from_pretrained(args.weights, device=str(device))
    cfg = pipe.config.replace(**overrides)
    print(f"loaded in {time.perf_counter() - t0:.1f} s on {device}"
          f" ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}); "
          f"{len(cfg.trajectories)} trajectories x {cfg.frames} frames, {cfg.steps} steps, "
          f"{cfg.resolution.width}x{cfg.resolution.height}", flush=True)
    images = _images(max(sizes), cfg.resolution)
    head = "| batch | scenes | pipeline s/scene | pipeline scenes/s | peak memory GB |"
    rule = "|---|---|---|---|---|"
    if args.write:
        head += " write s/scene | with writing scenes/s |"
        rule += "---|---|"
    rows, stages = [], []
    if not args.no_single:
        n = min(max(sizes), 16)
        pipe(images[0], **overrides)  # warm-up
        _sync(device)
        _reset_peak(device)
        t0 = time.perf_counter()
        scenes = [pipe(im, **overrides) for im in images[:n]]
        _sync(device)
        dt = time.perf_counter() - t0
        row = f"| single calls | {n} | {dt / n:.3f} | {n / dt:.2f} | {_peak_gb(device):.2f} |"
        if args.write:
            w = _write(scenes, args.flythrough_frames)
            row += f" {w / n:.3f} | {n / (dt + w):.2f} |"
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
                if args.write:
                    written += _write(scenes, args.flythrough_frames)
                del scenes
            n = b * repeats
            row = f"| {b} | {n} | {seconds / n:.3f} | {n / seconds:.2f} | {_peak_gb(device):.2f} |"
            if args.write:
                row += f" {written / n:.3f} | {n / (seconds + written):.2f} |"
            stages.append(f"batch {b}: " + ", ".join(f"{k} {v:.4f}" for k, v in per_stage.items()))
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            row = f"| {b} | - | out of memory | | |" + (" | |" if args.write else "")
        rows.append(row)
        print(row, flush=True)
    table = "\n".join([head, rule, *rows])
    text = (f"{table}\n\nstage seconds per scene (the batch's stage time / batch size):\n" + "\n".join(stages) + "\n")
    print("\n" + text)
    if args.save:
        Path(args.save).write_text(" ".join(sys.argv) + "\n\n" + text)


if __name__ == "__main__":
    main()
